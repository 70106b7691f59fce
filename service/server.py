"""Building and running the gRPC server.

    handle, port = create_server("127.0.0.1:0", config)   # bound, started, models loaded, SERVING
    handle, port = create_server(addr, config, load=False) # bound, NOT_SERVING; handle.load() later
    handle.drain()                                          # NOT_SERVING, wait, finish calls, stop

The server is the synchronous grpc.server on a thread pool: the work (decode, resize, ONNX Runtime,
OpenCV) releases the GIL, and a measurement against grpc.aio found no gain (docs/service.md).
Health (grpc.health.v1) says NOT_SERVING while models load and warm up, SERVING after, and
NOT_SERVING for good as soon as draining starts; a balancer's agent check (agent_port,
service/agent.py) reads the same as one line. Health checks and ListModels run on their own
threads, outside the inference limits (stn_align.service.limits).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from stn_align.service.agent import AgentServer, start_agent
from stn_align.service.config import ServiceConfig
from stn_align.service.interceptors import Metrics, MetricsInterceptor, TokenInterceptor
from stn_align.service.limits import Admission, CallPool, DrainState, MemoryBudget
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


STOP_MARGIN_S = 2.0  # after the grace period, for calls to end with UNAVAILABLE before gRPC stops


class BindError(OSError):
    pass


class AlignmentServer:
    def __init__(self, config: ServiceConfig, pipeline: Pipeline | None = None) -> None:
        self.config = config
        self.pipeline: Pipeline | None = None
        self._preloaded = pipeline
        self.metrics = Metrics()
        self._metrics_http: Any = None  # prometheus_client's WSGI server, when started
        self._agent: AgentServer | None = None
        self.drain_state = DrainState()
        self._lock = threading.Lock()  # between load() finishing and a drain starting
        self._drain_thread: threading.Thread | None = None
        self.calls = CallPool(config.workers)
        self.control = ThreadPoolExecutor(config.control_workers, thread_name_prefix="control")
        self.watches = ThreadPoolExecutor(config.control_workers, thread_name_prefix="watch")
        self.budget = MemoryBudget(
            config.max_inflight_bytes, config.memory_wait_s, config.retry_after_ms
        )
        self.metrics.calls.set_function(self.calls.calls)
        self.metrics.image_memory.set_function(lambda: self.budget.used)
        # Blocking Watch (a thread per open stream, on self.watches): grpc_health's non-blocking
        # Watch sends under its lock from set(), and deadlocks when a Watch closes meanwhile.
        self.health = health.HealthServicer(experimental_non_blocking=False)
        self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        interceptors: list[grpc.ServerInterceptor] = [
            MetricsInterceptor(self.metrics),
            Admission(
                self.calls,
                self.control,
                self.watches,
                self.drain_state,
                config.max_concurrent_rpcs,
                config.retry_after_ms,
            ),
        ]
        if config.auth_token:
            interceptors.append(TokenInterceptor(config.auth_token))
        options = [
            *channel_options(config.max_message_bytes),
            ("grpc.so_reuseport", 1 if config.reuse_port else 0),
        ]
        # The concurrency limit is Admission's, so that health checks are not counted in it.
        self.grpc = grpc.server(self.calls, interceptors=interceptors, options=options)
        self.servicer = AlignmentServicer(self)
        alignment_pb2_grpc.add_AlignmentServicer_to_server(self.servicer, self.grpc)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.grpc)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), self.grpc
        )
        self.stopped = threading.Event()

    def _set_health(self, status) -> None:
        for name in ("", SERVICE_NAME):
            self.health.set(name, status)  # ignored once draining (enter_graceful_shutdown)

    def bind(self, address: str) -> int:
        try:
            if self.config.tls_cert:
                key = Path(self.config.tls_key).read_bytes()
                cert = Path(self.config.tls_cert).read_bytes()
                creds = grpc.ssl_server_credentials([(key, cert)])
                port = self.grpc.add_secure_port(address, creds)
            else:
                port = self.grpc.add_insecure_port(address)
        except RuntimeError:  # gRPC's "Failed to bind to address"
            port = 0
        if port == 0:
            hint = (
                ""
                if self.config.reuse_port
                else "; is another server listening there? (setting reuse_port lets several "
                "processes share a port)"
            )
            raise BindError(f"cannot listen on {address} (setting address){hint}")
        return port

    def load(self) -> None:
        """Load the models, warm them up, then report SERVING (unless a drain began meanwhile)."""
        if self.drain_state.draining.is_set():
            return  # stopped before loading: nothing to load
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
        with self._lock:
            if self.drain_state.draining.is_set():
                pipeline.close()
                log.info("loaded after draining began; not serving")
                return
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
        """Prometheus on metrics_port, on metrics_host (default: the host of address)."""
        if not self.config.metrics_port:
            return None
        from prometheus_client import start_http_server

        host = self.config.metrics_host or self.config.listen_host
        try:
            self._metrics_http, _ = start_http_server(
                self.config.metrics_port, addr=host, registry=self.metrics.registry
            )
        except OSError as exc:
            raise BindError(
                f"cannot serve metrics on {host}:{self.config.metrics_port} (settings "
                f"metrics_host, metrics_port): {exc}"
            ) from None
        return self._metrics_http.server_port

    def agent_reply(self) -> str:
        """What the balancer's agent check reads (service/agent.py)."""
        if self.drain_state.draining.is_set():
            return "drain"
        return "down" if self.pipeline is None else "ready up 100%"

    def start_agent(self) -> int | None:
        """The agent check on agent_port, on metrics_host (default: the host of address)."""
        if not self.config.agent_port:
            return None
        host = self.config.metrics_host or self.config.listen_host
        try:
            self._agent = start_agent(host, self.config.agent_port, self.agent_reply)
        except OSError as exc:
            raise BindError(
                f"cannot serve the agent check on {host}:{self.config.agent_port} (settings "
                f"metrics_host, agent_port): {exc}"
            ) from None
        return int(self._agent.server_address[1])

    def begin_drain(self) -> None:
        """Drain in the background (what a signal handler calls); later calls do nothing."""
        with self._lock:
            if self._drain_thread is not None:
                return
            self._drain_thread = threading.Thread(target=self.drain, name="drain", daemon=True)
        self._drain_thread.start()

    def drain(self, delay_s: float | None = None, grace_s: float | None = None) -> None:
        """NOT_SERVING first, so balancers stop sending, while calls are still served for the
        delay; then new calls get UNAVAILABLE and the calls in flight have the grace period to
        finish; any still running after it end with UNAVAILABLE, never a cancellation."""
        delay = self.config.drain_delay_s if delay_s is None else delay_s
        grace = self.config.drain_grace_s if grace_s is None else grace_s
        with self._lock:
            already = self.drain_state.draining.is_set()
            self.drain_state.draining.set()
            self.health.enter_graceful_shutdown()  # NOT_SERVING, and set() is ignored from now
        if already:
            self.stopped.wait(delay + grace + 2 * STOP_MARGIN_S)
            return
        log.info("draining", extra={"delay_s": delay, "grace_s": grace})
        time.sleep(delay)
        self.drain_state.refusing.set()
        # gRPC's own grace is longer than ours: calls must end with our status, not its cancel
        grpc_stopped = self.grpc.stop(grace + 2 * STOP_MARGIN_S)
        if not self.calls.wait_idle(grace):
            log.warning("drain grace ran out", extra={"calls": self.calls.calls()})
            self.drain_state.stopping.set()
            self.calls.wait_idle(STOP_MARGIN_S)
        grpc_stopped.wait()
        self.servicer.close()
        self.control.shutdown(wait=False, cancel_futures=True)
        self.watches.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            if self.pipeline is not None:
                self.pipeline.close()
        for http in (self._metrics_http, self._agent):
            if http is not None:
                http.shutdown()
                http.server_close()
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


def serve(config: ServiceConfig, early_signals: Sequence[int] = ()) -> int:
    """Run until SIGTERM or SIGINT, then drain. Returns the process exit status. `early_signals`:
    stop signals that arrived before this was called (stn_align.service.commands catches them
    from the start); the handlers here go in before anything slow happens."""
    servers: list[AlignmentServer] = []
    pending = list(early_signals)
    for signum in pending:
        log.info("signal", extra={"signal": signal.Signals(signum).name, "early": True})

    def on_signal(signum, frame) -> None:
        log.info("signal", extra={"signal": signal.Signals(signum).name})
        if servers:
            servers[0].begin_drain()
        else:
            pending.append(signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        server, port = create_server(config.address, config, load=False)
    except BindError as exc:
        log.error("start-up failed", extra={"error": str(exc)})
        return 1
    servers.append(server)
    try:
        metrics_port = server.start_metrics()
        agent_port = server.start_agent()
    except BindError as exc:
        log.error("start-up failed", extra={"error": str(exc)})
        server.grpc.stop(0)
        return 1
    log.info(
        "listening",
        extra={
            "port": port,
            "metrics_port": metrics_port,
            "agent_port": agent_port,
            "tls": bool(config.tls_cert),
        },  # fmt: skip
    )
    if pending:
        server.begin_drain()
    try:
        server.load()
    except Exception:
        log.exception("start-up failed")
        server.grpc.stop(0)
        return 1
    while not server.stopped.wait(1.0):
        pass
    return 0
