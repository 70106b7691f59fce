"""Building and running the gRPC server.

    handle, port = create_server("127.0.0.1:0", config)   # bound, started, models loaded, SERVING
    handle, port = create_server(addr, config, load=False) # bound, NOT_SERVING; handle.load() later
    handle.drain()                                          # NOT_SERVING, wait, finish calls, stop

The server is the synchronous grpc.server on a thread pool: the work (decode, resize, ONNX Runtime,
OpenCV) releases the GIL, and a measurement against grpc.aio found no gain (docs/service.md).
Health (grpc.health.v1) says NOT_SERVING while models load and warm up, SERVING after, and
NOT_SERVING again as soon as draining starts.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from stn_align.service.config import ServiceConfig
from stn_align.service.interceptors import Metrics, MetricsInterceptor, TokenInterceptor
from stn_align.service.pipeline import Pipeline
from stn_align.service.proto import alignment_pb2, alignment_pb2_grpc
from stn_align.service.servicer import AlignmentServicer

log = logging.getLogger("stn.service")

SERVICE_NAME = alignment_pb2.DESCRIPTOR.services_by_name["Alignment"].full_name


def channel_options(max_message_bytes: int) -> list[tuple[str, int]]:
    return [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
    ]


class AlignmentServer:
    def __init__(self, config: ServiceConfig, pipeline: Pipeline | None = None) -> None:
        self.config = config
        self.pipeline: Pipeline | None = None
        self._preloaded = pipeline
        self.metrics = Metrics()
        self._metrics_http: Any = None  # prometheus_client's WSGI server, when started
        self.health = health.HealthServicer()
        self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        interceptors = [MetricsInterceptor(self.metrics)]
        if config.auth_token:
            interceptors.append(TokenInterceptor(config.auth_token))
        self.grpc = grpc.server(
            ThreadPoolExecutor(config.workers, thread_name_prefix="grpc"),
            interceptors=interceptors,
            options=channel_options(config.max_message_bytes),
            maximum_concurrent_rpcs=config.max_concurrent_rpcs,
        )
        self.servicer = AlignmentServicer(self)
        alignment_pb2_grpc.add_AlignmentServicer_to_server(self.servicer, self.grpc)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.grpc)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), self.grpc
        )
        self.stopped = threading.Event()

    def _set_health(self, status) -> None:
        for name in ("", SERVICE_NAME):
            self.health.set(name, status)

    def bind(self, address: str) -> int:
        if self.config.tls_cert:
            key = Path(self.config.tls_key).read_bytes()
            cert = Path(self.config.tls_cert).read_bytes()
            port = self.grpc.add_secure_port(address, grpc.ssl_server_credentials([(key, cert)]))
        else:
            port = self.grpc.add_insecure_port(address)
        if port == 0:
            raise OSError(f"cannot bind {address} (setting address)")
        return port

    def load(self) -> None:
        """Load the models, warm them up, then report SERVING."""
        started = time.perf_counter()
        if self._preloaded is not None:
            pipeline = self._preloaded
        else:
            pipeline = Pipeline.from_dir(
                self.config.model_dir, self.config, on_batch=self._on_batch
            )
        pipeline.warmup(self.config.warmup_runs)
        for name, model in pipeline.models.items():
            self.metrics.provider.labels(name, model.provider).set(1)
            batcher = pipeline.batchers[name]
            self.metrics.queue_depth.labels(name).set_function(batcher.depth)
            log.info(
                "model ready",
                extra={"model": name, "family": model.family, "provider": model.provider,
                       "warp": pipeline.warp_backend(model), "batch_workers": batcher.workers},
            )  # fmt: skip
        self.pipeline = pipeline
        self._set_health(health_pb2.HealthCheckResponse.SERVING)
        log.info(
            "serving",
            extra={
                "models": sorted(pipeline.models),
                "load_s": round(time.perf_counter() - started, 2),
            },
        )

    def _on_batch(self, model: str, size: int) -> None:
        self.metrics.batch.labels(model).observe(size)

    def start_metrics(self) -> int | None:
        if not self.config.metrics_port:
            return None
        from prometheus_client import start_http_server

        self._metrics_http, _ = start_http_server(
            self.config.metrics_port, registry=self.metrics.registry
        )
        return self._metrics_http.server_port

    def drain(self, delay_s: float | None = None, grace_s: float | None = None) -> None:
        """NOT_SERVING first, so balancers stop sending; then refuse new calls and let the calls in
        flight finish within the grace period."""
        delay = self.config.drain_delay_s if delay_s is None else delay_s
        grace = self.config.drain_grace_s if grace_s is None else grace_s
        log.info("draining", extra={"delay_s": delay, "grace_s": grace})
        self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        time.sleep(delay)
        self.grpc.stop(grace).wait()
        self.servicer.close()
        if self.pipeline is not None:
            self.pipeline.close()
        if self._metrics_http is not None:
            self._metrics_http.shutdown()
            self._metrics_http.server_close()
        log.info("stopped")
        self.stopped.set()


def create_server(
    address: str, config: ServiceConfig, *, pipeline: Pipeline | None = None, load: bool = True
) -> tuple[AlignmentServer, int]:
    """Build, bind and start the server; with load=True also load models and warm up (blocking)."""
    server = AlignmentServer(config, pipeline)
    port = server.bind(address)
    server.grpc.start()
    if load:
        server.load()
    return server, port


def serve(config: ServiceConfig) -> int:
    """Run until SIGTERM or SIGINT, then drain. Returns the process exit status."""
    server, port = create_server(config.address, config, load=False)
    metrics_port = server.start_metrics()
    log.info(
        "listening",
        extra={"port": port, "metrics_port": metrics_port, "tls": bool(config.tls_cert)},
    )

    def on_signal(signum, frame) -> None:
        log.info("signal", extra={"signal": signal.Signals(signum).name})
        threading.Thread(target=server.drain, name="drain", daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        server.load()
    except Exception:
        log.exception("start-up failed")
        server.grpc.stop(0)
        return 1
    while not server.stopped.wait(1.0):
        pass
    return 0
