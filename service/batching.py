"""Dynamic micro-batching: concurrent requests for one model share a localiser run.

A few worker threads per model (`workers`) each take the first waiting item, then keep taking
items until they have `max_batch_size` or `max_delay_s` has passed since the first, stack them and
run the function once. A worker does not wait for more than its share of the requests in progress
(`active`, if given, counts them; the share is active / workers, rounded up), so a lone caller pays
no batching delay. On a CPU, two workers keep two cores busy: ONNX Runtime runs some ops (such as
GridSample) on one thread whatever its intra-op setting, so two single-threaded runs at once get
more from two cores than one run on two threads (docs/service.md). Items whose caller has gone
(cancelled, deadline expired) are dropped before the run. A full queue is refused at once with
QueueFull, so overload becomes RESOURCE_EXHAUSTED, not a pile-up.
"""

from __future__ import annotations

import collections
import math
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import CancelledError, Future
from dataclasses import dataclass, field

import numpy as np

from stn_align.service.align_types import Cancelled

ALIVE_POLL_S = 0.25  # how often a caller waiting for its items looks whether it is still there


class QueueFull(RuntimeError):
    pass


class Stopped(RuntimeError):
    pass


@dataclass
class BatchStats:
    """What the worker did, for metrics and tests."""

    runs: int = 0
    items: int = 0
    dropped: int = 0  # items skipped because their caller had gone
    sizes: collections.deque = field(default_factory=lambda: collections.deque(maxlen=1000))


@dataclass
class _Item:
    array: np.ndarray
    future: Future
    enqueued: float
    alive: Callable[[], bool]


class MicroBatcher:
    def __init__(
        self,
        run: Callable[[np.ndarray], np.ndarray],
        max_batch_size: int,
        max_delay_s: float,
        max_queue_size: int,
        name: str = "model",
        on_batch: Callable[[int], None] | None = None,
        active: Callable[[], int] | None = None,
        workers: int = 1,
    ):
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self._run = run
        self.workers = workers
        self.max_batch_size = max_batch_size
        self.max_delay_s = max_delay_s
        self._queue: queue.Queue[_Item | None] = queue.Queue(maxsize=max_queue_size)
        self._on_batch = on_batch
        self._active = active
        self.stats = BatchStats()
        self._stats_lock = threading.Lock()
        self._stopped = False
        self._threads = [
            threading.Thread(target=self._loop, name=f"batcher-{name}-{i}", daemon=True)
            for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    def depth(self) -> int:
        return self._queue.qsize()

    def submit(self, array: np.ndarray, alive: Callable[[], bool] = lambda: True) -> Future:
        """Queue one input (no batch axis); the future gives (output row, queue s, run s)."""
        if self._stopped:
            raise Stopped("the batcher is stopped")
        item = _Item(array, Future(), time.perf_counter(), alive)
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            raise QueueFull(
                f"queue full: {self._queue.maxsize} images waiting (setting max_queue_size)"
            ) from None
        return item.future

    def submit_all(
        self, arrays: Sequence[np.ndarray], alive: Callable[[], bool] = lambda: True
    ) -> list[tuple[np.ndarray, float, float]]:
        """Queue every input at once (so that the workers take them in parallel) and wait for
        each one's (output row, queue s, run s), looking every ALIVE_POLL_S whether the caller is
        still there. A caller gone raises Cancelled and drops the inputs not yet run; a full queue
        raises QueueFull and drops the ones already queued."""
        futures: list[Future] = []
        try:
            for array in arrays:
                futures.append(self.submit(array, alive))
        except BaseException:
            for future in futures:
                future.cancel()
            raise
        answers = []
        for future in futures:
            while True:
                try:
                    answers.append(future.result(timeout=ALIVE_POLL_S))
                    break
                except TimeoutError:
                    if alive():
                        continue
                except CancelledError:
                    pass
                for other in futures:
                    other.cancel()  # dropped before its run if it has not started
                raise Cancelled("the call was cancelled or its deadline expired")
        return answers

    def stop(self) -> None:
        self._stopped = True
        self._queue.put(None)  # each worker puts it back for the next one on its way out
        for thread in self._threads:
            thread.join(timeout=10)

    def _collect(self, first: _Item) -> list[_Item]:
        items = [first]
        deadline = first.enqueued + self.max_delay_s
        while len(items) < self.max_batch_size:
            remaining = deadline - time.perf_counter()
            if self._active is not None and len(items) >= math.ceil(self._active() / self.workers):
                break  # no one else could join, or the rest are the other workers' share
            try:
                item = (
                    self._queue.get(timeout=remaining)
                    if remaining > 0
                    else self._queue.get_nowait()
                )
            except queue.Empty:
                break
            if item is None:  # stop sentinel: finish this batch, then exit
                self._queue.put(None)
                break
            items.append(item)
        return items

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                self._queue.put(None)
                break
            items = self._collect(first)
            live = []
            for item in items:
                if item.alive() and item.future.set_running_or_notify_cancel():
                    live.append(item)
                else:
                    with self._stats_lock:
                        self.stats.dropped += 1
                    if not item.future.cancelled():
                        item.future.cancel()
            if not live:
                continue
            started = time.perf_counter()
            try:
                out = self._run(np.stack([i.array for i in live]))
            except Exception as exc:  # the error belongs to every caller in the batch
                for item in live:
                    item.future.set_exception(exc)
                continue
            with self._stats_lock:
                self.stats.runs += 1
                self.stats.items += len(live)
                self.stats.sizes.append(len(live))
            if self._on_batch:
                self._on_batch(len(live))
            run_s = time.perf_counter() - started
            for row, item in zip(out, live, strict=True):
                item.future.set_result((row, started - item.enqueued, run_s))
