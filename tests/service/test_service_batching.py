from __future__ import annotations

import threading
import time
from concurrent.futures import CancelledError

import numpy as np
import pytest

from stn_align.service.align_types import Cancelled
from stn_align.service.batching import MicroBatcher, QueueFull


def _double(batch: np.ndarray) -> np.ndarray:
    return batch * 2


def _gated(gate: threading.Event, ran: list | None = None):
    """A run that waits for `gate` (so the test controls when the worker is busy) and keeps each
    batch it ran in `ran`."""

    def run(batch: np.ndarray) -> np.ndarray:
        gate.wait(5)
        if ran is not None:
            ran.append(batch)
        return batch

    return run


def test_concurrent_items_share_a_run_and_get_their_own_rows():
    batcher = MicroBatcher(_double, max_batch_size=8, max_delay_s=0.05, max_queue_size=100)
    try:
        futures = [batcher.submit(np.array([i], np.float32)) for i in range(20)]
        rows = [f.result(timeout=5)[0] for f in futures]
        assert [float(r[0]) for r in rows] == [2.0 * i for i in range(20)]
        assert max(batcher.stats.sizes) == 8  # never more than the max batch
        assert batcher.stats.runs == 3  # 8 + 8 + 4
    finally:
        batcher.stop()


def test_a_lone_item_waits_at_most_the_max_delay():
    batcher = MicroBatcher(_double, max_batch_size=64, max_delay_s=0.02, max_queue_size=10)
    try:
        started = time.perf_counter()
        batcher.submit(np.zeros(1)).result(timeout=5)
        assert time.perf_counter() - started < 1.0
    finally:
        batcher.stop()


def test_full_queue_refuses_at_once():
    gate = threading.Event()
    batcher = MicroBatcher(_gated(gate), max_batch_size=1, max_delay_s=0, max_queue_size=2)
    try:
        first = batcher.submit(np.zeros(1))
        time.sleep(0.1)  # the worker now holds the first item
        batcher.submit(np.zeros(1))
        batcher.submit(np.zeros(1))
        with pytest.raises(QueueFull, match="max_queue_size"):
            batcher.submit(np.zeros(1))
        gate.set()
        first.result(timeout=5)
    finally:
        gate.set()
        batcher.stop()


def test_items_whose_caller_left_are_dropped():
    seen = []

    def record(batch):
        seen.append(len(batch))
        return batch

    batcher = MicroBatcher(record, max_batch_size=4, max_delay_s=0.05, max_queue_size=10)
    try:
        dead = batcher.submit(np.zeros(1), alive=lambda: False)
        live = batcher.submit(np.ones(1))
        assert float(live.result(timeout=5)[0][0]) == 1.0
        with pytest.raises(CancelledError):
            dead.result(timeout=5)
        assert seen == [1] and batcher.stats.dropped == 1
    finally:
        batcher.stop()


def test_submit_all_gives_each_input_its_own_row_in_order():
    batcher = MicroBatcher(_double, max_batch_size=3, max_delay_s=0.05, max_queue_size=10)
    try:
        answers = batcher.submit_all([np.array([i], np.float32) for i in range(5)])
        assert [float(row[0]) for row, _, _ in answers] == [0.0, 2.0, 4.0, 6.0, 8.0]
        assert all(queue_s >= 0 and run_s >= 0 for _, queue_s, run_s in answers)
    finally:
        batcher.stop()


def test_submit_all_stops_waiting_when_its_caller_leaves_and_drops_what_is_not_run():
    gate = threading.Event()
    ran: list[np.ndarray] = []
    here = threading.Event()
    here.set()
    batcher = MicroBatcher(_gated(gate, ran), max_batch_size=1, max_delay_s=0, max_queue_size=10)
    try:
        threading.Timer(0.3, here.clear).start()  # the caller leaves while the first one runs
        with pytest.raises(Cancelled, match="cancelled"):
            batcher.submit_all([np.zeros(1)] * 3, alive=here.is_set)
        gate.set()
        assert batcher.submit(np.ones(1)).result(timeout=5)[0][0] == 1.0
        # the first (already running) and the new one; two dropped
        assert [len(batch) for batch in ran] == [1, 1]
    finally:
        gate.set()
        batcher.stop()


def test_submit_all_on_a_full_queue_runs_none_of_its_inputs():
    gate = threading.Event()
    ran: list[np.ndarray] = []
    batcher = MicroBatcher(_gated(gate, ran), max_batch_size=1, max_delay_s=0, max_queue_size=2)
    try:
        first = batcher.submit(np.full(1, -1.0))
        time.sleep(0.1)  # the worker now holds the first item; two places are left
        with pytest.raises(QueueFull, match="max_queue_size"):
            batcher.submit_all([np.full(1, float(i)) for i in range(3)])
        gate.set()
        first.result(timeout=5)
        assert batcher.submit(np.full(1, 9.0)).result(timeout=5)[0][0] == 9.0
        assert [float(batch[0][0]) for batch in ran] == [-1.0, 9.0]
    finally:
        gate.set()
        batcher.stop()


def test_a_failing_run_fails_its_callers_and_the_worker_goes_on():
    calls = []

    def flaky(batch):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("boom")
        return batch

    batcher = MicroBatcher(flaky, max_batch_size=1, max_delay_s=0, max_queue_size=10)
    try:
        with pytest.raises(RuntimeError, match="boom"):
            batcher.submit(np.zeros(1)).result(timeout=5)
        assert batcher.submit(np.ones(1)).result(timeout=5)[0][0] == 1.0
    finally:
        batcher.stop()


def test_no_wait_when_no_one_else_is_in_progress():
    batcher = MicroBatcher(
        _double, max_batch_size=8, max_delay_s=1.0, max_queue_size=10, active=lambda: 1
    )
    try:
        started = time.perf_counter()
        batcher.submit(np.zeros(1)).result(timeout=5)
        assert time.perf_counter() - started < 0.5  # did not sit out the 1 s delay
    finally:
        batcher.stop()


def test_two_workers_run_two_batches_at_once():
    # Each run waits for a second run to start: with one worker at a time this would time out.
    both_running = threading.Barrier(2, timeout=5)

    def meet(batch):
        both_running.wait()
        return batch

    batcher = MicroBatcher(meet, max_batch_size=1, max_delay_s=0, max_queue_size=10, workers=2)
    try:
        futures = [batcher.submit(np.full(1, i, np.float32)) for i in range(2)]
        assert sorted(float(f.result(timeout=10)[0][0]) for f in futures) == [0.0, 1.0]
        assert batcher.stats.runs == 2
    finally:
        batcher.stop()


def test_each_worker_takes_its_share_of_the_calls_in_progress():
    sizes = []

    def record(batch):
        sizes.append(len(batch))
        return batch

    # Four calls in progress and two workers: a worker stops at two, leaving the rest to the other.
    batcher = MicroBatcher(
        record, max_batch_size=8, max_delay_s=2.0, max_queue_size=10, active=lambda: 4, workers=2
    )
    try:
        futures = [batcher.submit(np.zeros(1)) for _ in range(4)]
        for future in futures:
            future.result(timeout=5)
        assert sorted(sizes) == [2, 2]
    finally:
        batcher.stop()


def test_stop_ends_every_worker():
    batcher = MicroBatcher(_double, max_batch_size=2, max_delay_s=0, max_queue_size=10, workers=3)
    batcher.submit(np.zeros(1)).result(timeout=5)
    batcher.stop()
    assert not any(thread.is_alive() for thread in batcher._threads)


def test_workers_must_be_positive():
    with pytest.raises(ValueError, match="workers"):
        MicroBatcher(_double, max_batch_size=2, max_delay_s=0, max_queue_size=10, workers=0)
