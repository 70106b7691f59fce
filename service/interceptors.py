"""Server interceptors: metrics and structured call logs (one interceptor), and the optional
shared-token check.

Prometheus metrics live in a per-server registry (tests run several servers in one process):
- stn_requests_total{method, code}: calls by RPC and final status code;
- stn_request_seconds{method}: call latency histogram;
- stn_stream_items_total{code}: AlignStream items by outcome;
- stn_batch_size{model}: images per localiser run;
- stn_queue_depth{model}: images waiting for a batch;
- stn_model_provider{model, provider}: 1 for the provider each model runs on;
- stn_calls_in_progress: Align and AlignStream calls running or waiting for a worker;
- stn_image_memory_bytes: image bytes reserved from the max_inflight_mb budget.

Health Watch streams are neither counted nor logged: they stay open as long as the watcher likes.
"""

from __future__ import annotations

import hmac
import logging
import time
import uuid
from collections.abc import Callable

import grpc
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

log = logging.getLogger("stn.service.calls")

HEALTH_PREFIX = "/grpc.health.v1.Health/"
HEALTH_WATCH = HEALTH_PREFIX + "Watch"
REQUEST_ID_KEY = "x-request-id"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "stn_requests", "Calls by RPC and status code", ["method", "code"], registry=r
        )
        self.latency = Histogram(
            "stn_request_seconds",
            "Call latency",
            ["method"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=r,
        )
        self.items = Counter(
            "stn_stream_items", "AlignStream items by outcome", ["code"], registry=r
        )
        self.batch = Histogram(
            "stn_batch_size",
            "Images per localiser run",
            ["model"],
            buckets=(1, 2, 4, 8, 16, 32, 64),
            registry=r,
        )
        self.queue_depth = Gauge(
            "stn_queue_depth", "Images waiting for a batch", ["model"], registry=r
        )
        self.provider = Gauge(
            "stn_model_provider", "Execution provider per model", ["model", "provider"], registry=r
        )
        self.calls = Gauge(
            "stn_calls_in_progress", "Align and AlignStream calls running or queued", registry=r
        )
        self.image_memory = Gauge(
            "stn_image_memory_bytes", "Image bytes reserved by calls in progress", registry=r
        )


def request_id(metadata) -> str:
    """The caller's `x-request-id` metadata, or "" when it sent none."""
    for key, value in metadata or ():
        if key == REQUEST_ID_KEY and value:
            return str(value)[:128]
    return ""


def _code_name(context, failed: bool) -> str:
    code = context.code()
    if code is not None:
        return code.name
    if not context.is_active():  # the caller cancelled, its deadline passed, or gRPC ended it
        remaining = context.time_remaining()
        return "DEADLINE_EXCEEDED" if remaining is not None and remaining <= 0 else "CANCELLED"
    return "UNKNOWN" if failed else "OK"


def _same_pool(wrapped, inner):
    """Keep the thread pool chosen for the inner behaviour (limits.Admission) on its wrapper."""
    pool = getattr(inner, "experimental_thread_pool", None)
    if pool is not None:
        wrapped.experimental_thread_pool = pool
    return wrapped


class MetricsInterceptor(grpc.ServerInterceptor):
    """Counts, times and logs every call, with the request id from `x-request-id` metadata."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def _done(self, method: str, rid: str, context, started: float, failed: bool) -> None:
        code = _code_name(context, failed)
        elapsed = time.perf_counter() - started
        self.metrics.requests.labels(method, code).inc()
        self.metrics.latency.labels(method).observe(elapsed)
        if method.startswith(HEALTH_PREFIX):
            return  # health probes every few seconds would drown the log
        level = logging.INFO if code in ("OK", "CANCELLED") else logging.WARNING
        log.log(
            level,
            "call",
            extra={
                "request_id": rid,
                "method": method,
                "code": code,
                "ms": round(elapsed * 1000, 2),
            },
        )

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method == HEALTH_WATCH:
            return handler
        sent_id = request_id(handler_call_details.invocation_metadata)

        def unary(inner):
            def wrapped(request, context):
                started, failed = time.perf_counter(), True
                # unary calls: fall back on the request's own id field (AlignRequest.id)
                rid = sent_id or str(getattr(request, "id", ""))[:128] or uuid.uuid4().hex[:16]
                try:
                    response = inner(request, context)
                    failed = False
                    return response
                finally:
                    self._done(method, rid, context, started, failed)

            return _same_pool(wrapped, inner)

        def streaming(inner):
            def wrapped(request_or_iterator, context):
                started, failed = time.perf_counter(), True
                rid = sent_id or uuid.uuid4().hex[:16]
                try:
                    yield from inner(request_or_iterator, context)
                    failed = False
                finally:
                    self._done(method, rid, context, started, failed)

            return _same_pool(wrapped, inner)

        if handler.unary_unary:
            return handler._replace(unary_unary=unary(handler.unary_unary))
        if handler.stream_unary:
            return handler._replace(stream_unary=unary(handler.stream_unary))
        if handler.unary_stream:
            return handler._replace(unary_stream=streaming(handler.unary_stream))
        return handler._replace(stream_stream=streaming(handler.stream_stream))


def without_reading(handler, respond: Callable):
    """A handler that calls `respond(context)` (which aborts) without receiving the request: as a
    request-streaming handler whose stream is never read, so a large or slowly sent request does
    not hold a thread just to be refused."""

    def unary(request_iterator, context):
        respond(context)

    def streaming(request_iterator, context):
        respond(context)
        yield from ()

    if handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(streaming)
    return grpc.stream_unary_rpc_method_handler(unary)


class TokenInterceptor(grpc.ServerInterceptor):
    """Refuses calls without metadata `authorization: Bearer TOKEN`. Health checks are exempt so
    orchestrators can probe without the secret."""

    def __init__(self, token: str) -> None:
        self._expected = f"Bearer {token}".encode()

    def intercept_service(self, continuation, handler_call_details):
        if handler_call_details.method.startswith(HEALTH_PREFIX):
            return continuation(handler_call_details)
        sent = ""
        for key, value in handler_call_details.invocation_metadata or ():
            if key == "authorization":
                sent = value if isinstance(value, str) else ""
        if hmac.compare_digest(sent.encode(), self._expected):
            return continuation(handler_call_details)
        handler = continuation(handler_call_details)
        if handler is None:
            return None

        def deny(context) -> None:
            context.abort(
                grpc.StatusCode.UNAUTHENTICATED, "missing or wrong 'authorization: Bearer' token"
            )

        return without_reading(handler, deny)
