"""One AlignStream call: requests in, one response per request, in the order they finish.

Flow control: a reader thread takes a request only while fewer than `stream_concurrency` items are
taken and not yet sent back, and an item's slot is freed only once gRPC has taken its response
(gRPC waits while the client's HTTP/2 window is full). So a client that reads slowly slows its
stream down, and the server holds at most `stream_concurrency` finished results for it.

Ids: a request without an id gets `item-INDEX-TOKEN`, TOKEN random per stream, so a made-up id
cannot equal an id the client chose. While the server drains, the reader takes no more requests;
the items taken are answered, then the call ends with UNAVAILABLE so the client sends the rest to
another replica.
"""

from __future__ import annotations

import queue
import threading
import time
import uuid

import grpc

from stn_align.service.proto import alignment_pb2 as pb

_END = object()  # the reader is done: (_END, number of requests taken)
POLL_S = 0.5  # how often waiting threads look whether the caller is still there
END_SETTLE_S = 0.05


class AlignStreamCall:
    def __init__(self, servicer, request_iterator, context) -> None:
        self.servicer = servicer  # stn_align.service.servicer.AlignmentServicer
        self.requests = request_iterator
        self.context = context
        self.alive = servicer._alive(context)
        server = servicer.server
        self.metrics = server.metrics
        self.refusing = server.drain_state.refusing
        self.slots = threading.Semaphore(server.config.stream_concurrency)
        self.results: queue.Queue = queue.Queue()  # at most stream_concurrency: see slots
        self.token = uuid.uuid4().hex[:8]
        self.cut_short = False  # the drain stopped the reading before the client's end

    def responses(self):
        threading.Thread(target=self._read, name="stream-reader", daemon=True).start()
        expected, sent = None, 0
        while expected is None or sent < expected:
            try:
                item = self.results.get(timeout=POLL_S)
            except queue.Empty:
                if not self.context.is_active():
                    return
                continue
            if isinstance(item, tuple) and item[0] is _END:
                expected = item[1]
                continue
            yield item  # returns once gRPC has sent it (or the call has ended)
            sent += 1
            self.slots.release()
        if self.cut_short:
            self.context.abort(
                grpc.StatusCode.UNAVAILABLE,
                f"the server is draining: {sent} requests of this stream were answered and no "
                "more are taken; send the rest to another replica",
            )

    def _take_slot(self) -> bool:
        while not self.slots.acquire(timeout=POLL_S):
            if not self.context.is_active():
                return False
        return True

    def _read(self) -> None:
        taken = 0
        try:
            requests = iter(self.requests)
            while self._take_slot():
                if self.refusing.is_set():
                    self.cut_short = True
                    return
                try:
                    request = next(requests)
                except StopIteration:
                    self._settle()
                    return
                self.servicer._pool.submit(self._work, request, taken)
                taken += 1
        except Exception:  # the client went away mid-stream; nothing more to read
            pass
        finally:
            self.results.put((_END, taken))

    def _settle(self) -> None:
        """gRPC ends the input this same way when it refuses a message (over max_message_mb),
        and marks the call cancelled a moment later; wait that moment (while the items taken are
        still being worked on) so such a call is not logged as one that ended well."""
        deadline = time.monotonic() + END_SETTLE_S
        while self.context.is_active() and time.monotonic() < deadline:
            time.sleep(0.005)

    def _work(self, request: pb.AlignRequest, index: int) -> None:
        rid = request.id or f"item-{index}-{self.token}"
        try:
            result = self.servicer._align(request, rid, self.alive)
            response = pb.AlignStreamResponse(id=rid, result=result)
            self.metrics.items.labels("OK").inc()
        except Exception as exc:
            code, message, retry_after_ms = self.servicer._status(exc, self.context, rid)
            self.metrics.items.labels(code.name).inc()
            error = pb.ItemError(
                code=code.value[0],
                code_name=code.name,
                message=message,
                retry_after_ms=retry_after_ms or 0,
            )
            response = pb.AlignStreamResponse(id=rid, error=error)
        self.results.put(response)
