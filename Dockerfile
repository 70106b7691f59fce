# The alignment service image: the serving distribution only (core + service; no torch, no
# training code). One Dockerfile, variants chosen by build arguments:
#   GPU, route 1 (default): the CUDA 13 + cuDNN 9 runtime image supplies the libraries that
#       onnxruntime-gpu needs:   docker build -t stn-align:gpu .
#   GPU, route 2: any Python base, with CUDA and cuDNN from the package index (the `gpu` extra:
#       onnxruntime-gpu[cuda,cudnn]); the service binds them with onnxruntime.preload_dlls():
#       docker build --build-arg BASE_IMAGE=python:3.12-slim --build-arg STN_EXTRAS=gpu -t stn-align:gpu .
#   CPU: docker build --build-arg BASE_IMAGE=python:3.12-slim -t stn-align:cpu .
# onnxruntime-gpu runs on the CPU too (the service probes for CUDA quietly and logs the provider it
# uses), so the CPU variant installs the same packages without the CUDA libraries.
# Without a registry, scripts/docker-base.sh builds a local Debian base to use as BASE_IMAGE.
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
# Dependencies first, from pyproject.toml alone, so that a change to the code reuses this layer.
ARG STN_EXTRAS=
COPY pyproject.toml ./
RUN python -c 'import sys, tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]; \
        extras = [e for e in sys.argv[1].split(",") if e]; \
        print("\n".join(p["dependencies"] + [d for e in extras for d in p["optional-dependencies"][e]]))' \
        "$STN_EXTRAS" > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt && rm /tmp/requirements.txt
COPY README.md ./
COPY core/ core/
COPY service/ service/
COPY protos/ protos/
RUN pip install --no-deps ".${STN_EXTRAS:+[$STN_EXTRAS]}" && pip check
COPY deploy/entrypoint.sh deploy/entrypoint.sh

# A fixed non-root user; the model directory is mounted read-only at /models.
RUN groupadd --gid 10001 stn && useradd --uid 10001 --gid stn --no-create-home --shell /usr/sbin/nologin stn
USER 10001:10001
# HOME on the tmpfs: onnxruntime keeps a telemetry id under ~/.cache and warns at import when it
# cannot (the root filesystem is read-only under compose).
ENV HOME=/tmp \
    STN_MODEL_DIR=/models \
    STN_ADDRESS=0.0.0.0:50051 \
    STN_METRICS_PORT=9100 \
    STN_LOG_FORMAT=json
EXPOSE 50051 9100 9101
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-m", "stn_align.service.healthcheck"]
ENTRYPOINT ["/app/deploy/entrypoint.sh"]
CMD ["serve"]
