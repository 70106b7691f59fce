# The alignment service image. One Dockerfile, two variants chosen by BASE_IMAGE:
#   GPU (default): a CUDA 13 + cuDNN 9 runtime, as onnxruntime-gpu 1.2x-1.3x wheels need;
#   CPU:           docker build --build-arg BASE_IMAGE=python:3.12-slim -t stn-align:cpu .
# onnxruntime-gpu runs on the CPU too (it falls back, and the service reports the provider in use),
# so both variants install the same Python packages. No torch: the serving path never imports it.
ARG BASE_IMAGE=nvidia/cuda:13.0.1-cudnn-runtime-ubuntu24.04
FROM ${BASE_IMAGE}

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

# The CUDA images have no Python; the python:*-slim images do. Either way, a venv owns the packages.
RUN if ! command -v python3 >/dev/null 2>&1 || ! python3 -c "import venv, ensurepip" 2>/dev/null; then \
        apt-get update \
        && apt-get install -y --no-install-recommends python3 python3-venv \
        && rm -rf /var/lib/apt/lists/*; \
    fi \
    && python3 -m venv /opt/venv

WORKDIR /app
COPY pyproject.toml README.md ./
COPY training/ training/
COPY service/ service/
COPY protos/ protos/
RUN pip install . && pip check
COPY deploy/entrypoint.sh deploy/entrypoint.sh

# A fixed non-root user; the model directory is mounted read-only at /models.
RUN groupadd --gid 10001 stn && useradd --uid 10001 --gid stn --no-create-home --shell /usr/sbin/nologin stn
USER 10001:10001
ENV STN_MODEL_DIR=/models \
    STN_ADDRESS=0.0.0.0:50051 \
    STN_METRICS_PORT=9100 \
    STN_LOG_FORMAT=json
EXPOSE 50051 9100
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-m", "stn_align.service.healthcheck"]
ENTRYPOINT ["/app/deploy/entrypoint.sh"]
CMD ["serve"]
