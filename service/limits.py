"""Server-wide limits: which calls get in, which threads run them, and how much image memory the
calls being worked on may hold.

- `Admission` (a server interceptor) sends health checks and ListModels to their own small
  thread pool, never counted against the inference limits, so a busy replica still answers
  its load balancer within milliseconds; health Watch streams, which hold a thread while they are
  open, get a pool of their own, so they cannot starve the checks. Align and AlignStream run on
  the `workers` pool (`CallPool`, which counts the calls queued for it or running on it); past
  `max_concurrent_rpcs` a new call is refused at once with RESOURCE_EXHAUSTED and a
  `retry-after-ms` hint in the trailing metadata. While the server drains, new calls get
  UNAVAILABLE (retryable elsewhere).
- `MemoryBudget`: each call reserves its decoded and output image bytes (estimated from the image
  header before decoding) from one server-wide budget (`max_inflight_mb`); a call that would go
  over waits its turn for up to `memory_wait_s`, then gets RESOURCE_EXHAUSTED naming the setting.
- `DrainState`: the three stages of a drain (docs/service.md, Draining).
"""

from __future__ import annotations

import collections
import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import grpc

from stn_align.service.align_types import Cancelled
from stn_align.service.interceptors import HEALTH_PREFIX, HEALTH_WATCH, without_reading

RETRY_AFTER_KEY = "retry-after-ms"
CONTROL_METHODS = ("/stn.alignment.v1.Alignment/ListModels",)
MIB = 1024 * 1024


class Overloaded(RuntimeError):
    """RESOURCE_EXHAUSTED that passes: the caller may retry after `retry_after_ms`."""

    def __init__(self, message: str, retry_after_ms: int) -> None:
        super().__init__(message)
        self.retry_after_ms = retry_after_ms


class TooLarge(RuntimeError):
    """RESOURCE_EXHAUSTED that a retry cannot cure: the call alone is over a server limit."""


class Draining(RuntimeError):
    """UNAVAILABLE: the server is draining; another replica can take the call."""


class DrainState:
    """draining: health says NOT_SERVING (for good); refusing: new calls and new stream items get
    UNAVAILABLE; stopping: the grace period ran out, calls still running end with UNAVAILABLE at
    their next check."""

    def __init__(self) -> None:
        self.draining = threading.Event()
        self.refusing = threading.Event()
        self.stopping = threading.Event()


class CallPool(ThreadPoolExecutor):
    """The workers that run Align and AlignStream, counting the calls queued for them or running.
    gRPC submits a call here only after the interceptors have run, from its one dispatch thread,
    so Admission's check and the count it reads cannot race with another dispatch."""

    def __init__(self, workers: int) -> None:
        super().__init__(workers, thread_name_prefix="grpc")
        self._count = 0
        self._idle = threading.Condition()

    def submit(self, fn, /, *args, **kwargs) -> Future:
        with self._idle:
            self._count += 1

        def counted():
            try:
                return fn(*args, **kwargs)
            finally:
                with self._idle:
                    self._count -= 1
                    self._idle.notify_all()

        try:
            return super().submit(counted)
        except BaseException:
            with self._idle:
                self._count -= 1
            raise

    def calls(self) -> int:
        return self._count

    def wait_idle(self, timeout: float) -> bool:
        with self._idle:
            return self._idle.wait_for(lambda: self._count == 0, timeout=timeout)


def _behaviour_name(handler) -> str:
    for name in ("unary_unary", "unary_stream", "stream_unary", "stream_stream"):
        if getattr(handler, name):
            return name
    raise ValueError("a method handler with no behaviour")


def _after(inner, before: Callable | None, streaming: bool) -> Callable:
    if streaming:

        def stream(request, context):
            if before is not None:
                before(context)
            yield from inner(request, context)

        return stream

    def unary(request, context):
        if before is not None:
            before(context)
        return inner(request, context)

    return unary


def _on_pool(handler, pool: ThreadPoolExecutor, before: Callable | None = None):
    """The handler with its behaviour run on `pool` (gRPC's per-method experimental_thread_pool),
    after `before(context)` when given (which may abort the call)."""
    name = _behaviour_name(handler)
    behaviour = _after(getattr(handler, name), before, handler.response_streaming)
    behaviour.experimental_thread_pool = pool  # type: ignore[attr-defined]
    return handler._replace(**{name: behaviour})


def refuse(context, code: grpc.StatusCode, message: str, retry_after_ms: int | None) -> None:
    if retry_after_ms is not None:
        context.set_trailing_metadata(((RETRY_AFTER_KEY, str(retry_after_ms)),))
    context.abort(code, message)


class Admission(grpc.ServerInterceptor):
    """Routes calls to their thread pool and refuses the ones over the limit or during a drain."""

    def __init__(
        self,
        calls: CallPool,
        control: ThreadPoolExecutor,
        watches: ThreadPoolExecutor,
        drain: DrainState,
        max_calls: int,
        retry_after_ms: int,
    ) -> None:
        self.calls = calls
        self.control = control
        self.watches = watches
        self.drain = drain
        self.max_calls = max_calls
        self.retry_after_ms = retry_after_ms

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None:
            return None
        if method == HEALTH_WATCH:
            return _on_pool(handler, self.watches)  # holds a thread as long as it is open
        if method.startswith(HEALTH_PREFIX) or method in CONTROL_METHODS:
            return _on_pool(handler, self.control)  # quick, and never counted
        if self.drain.refusing.is_set():
            return self._refusal(handler, grpc.StatusCode.UNAVAILABLE, DRAINING, None)
        in_progress = self.calls.calls()
        if in_progress >= self.max_calls:
            message = (
                f"server busy: {in_progress} calls in progress, the limit is {self.max_calls} "
                "(setting max_concurrent_rpcs)"
            )
            return self._refusal(
                handler, grpc.StatusCode.RESOURCE_EXHAUSTED, message, self.retry_after_ms
            )
        return _on_pool(handler, self.calls, self._not_stopping)

    def _refusal(self, handler, code, message: str, retry_after_ms: int | None):
        def now(context) -> None:
            refuse(context, code, message, retry_after_ms)

        return _on_pool(without_reading(handler, now), self.control)

    def _not_stopping(self, context) -> None:
        """A call that waited for a worker until the grace period ran out never starts."""
        if self.drain.stopping.is_set():
            context.abort(grpc.StatusCode.UNAVAILABLE, STOPPED)


DRAINING = "the server is draining; send the call to another replica"
STOPPED = "the server stopped before the call finished (setting drain_grace_s); send it again"


class MemoryBudget:
    """Bytes of decoded and output images held by the calls being worked on, server-wide. Calls
    wait first come, first served, so a large page is not passed over for ever by small ones."""

    def __init__(self, limit_bytes: int, wait_s: float, retry_after_ms: int) -> None:
        self.limit = limit_bytes
        self.wait_s = wait_s
        self.retry_after_ms = retry_after_ms
        self.used = 0
        self._turns: collections.deque[object] = collections.deque()
        self._changed = threading.Condition()

    @contextlib.contextmanager
    def hold(
        self, nbytes: int, what: str, alive: Callable[[], bool], drain: DrainState
    ) -> Iterator[None]:
        if nbytes > self.limit:
            raise TooLarge(
                f"{what} needs about {_mib(nbytes)} MiB of image memory, more than the whole "
                f"budget of {_mib(self.limit)} MiB (setting max_inflight_mb)"
            )
        self._take(nbytes, what, alive, drain)
        try:
            yield
        finally:
            with self._changed:
                self.used -= nbytes
                self._changed.notify_all()

    def _take(self, nbytes: int, what: str, alive, drain: DrainState) -> None:
        turn = object()
        deadline = time.monotonic() + self.wait_s
        with self._changed:
            self._turns.append(turn)
            try:
                while self._turns[0] is not turn or self.used + nbytes > self.limit:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise Overloaded(
                            f"server busy: {what} needs about {_mib(nbytes)} MiB of image memory "
                            f"and {_mib(self.used)} of {_mib(self.limit)} MiB are in use (setting "
                            f"max_inflight_mb; waited memory_wait_s = {self.wait_s} s)",
                            self.retry_after_ms,
                        )
                    if not alive():
                        raise Cancelled("the call was cancelled or its deadline expired")
                    if drain.refusing.is_set():
                        raise Draining(DRAINING)
                    self._changed.wait(min(remaining, 0.1))
                self.used += nbytes
            finally:
                self._turns.remove(turn)
                self._changed.notify_all()


def _mib(nbytes: int) -> str:
    return f"{nbytes / MIB:.1f}"
