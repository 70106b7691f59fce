"""Health under load, overload with a retry hint, the server-wide memory budget, and the limits on
what a caller may send (issue 19, items 3, 4 and 10)."""

from __future__ import annotations

import struct
import time
import zlib
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from service_testlib import gate, png, wait_until

from stn_align.service.client import AlignClient
from stn_align.service.server import create_server


def _align(client, value: int = 120, timeout: float = 30, hw=(32, 32)):
    """The call's status code, details and trailing metadata."""
    try:
        client.align(png(value, hw), model="doc-rotation", encoding="png", timeout=timeout)
        return grpc.StatusCode.OK, "", {}
    except grpc.RpcError as exc:
        return exc.code(), exc.details(), dict(exc.trailing_metadata() or ())


def _timed(fn):
    started = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - started


def _check_health_and_models(client) -> list[float]:
    seconds = []
    for _ in range(8):
        status, s = _timed(lambda: client.health(timeout=1.0))
        assert status == "SERVING"
        seconds.append(s)
    for _ in range(4):
        reply, s = _timed(lambda: client.list_models(timeout=1.0))
        assert {m.name for m in reply.models} == {"doc-rotation", "doc-perspective"}
        seconds.append(s)
    return seconds


@pytest.mark.parametrize(
    ("limit", "workers"), [(8, 8), (256, 8)], ids=["calls-at-the-limit", "workers-all-busy"]
)
def test_health_and_list_models_answer_while_align_calls_fill_the_server(
    base_config, limit, workers
):
    """Item 3: 24 Align calls held in flight; health and ListModels still answer at once."""
    config = base_config.replace(max_concurrent_rpcs=limit, workers=workers)
    handle, port = create_server("127.0.0.1:0", config)
    session = gate(handle)
    pool = ThreadPoolExecutor(24)
    try:
        with AlignClient(f"127.0.0.1:{port}") as client:
            calls = [pool.submit(_align, client, 100 + i) for i in range(24)]
            assert wait_until(lambda: session.arrived >= 1)
            time.sleep(0.3)  # for the other calls to land behind the first
            seconds = _check_health_and_models(client)
            assert max(seconds) < 0.5, seconds
            session.gate.set()
            codes = {c.result(timeout=30)[0] for c in calls}
            assert codes <= {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}
    finally:
        session.gate.set()
        pool.shutdown()
        handle.drain(0, 0)


def test_overload_fails_fast_with_a_retry_hint_and_health_stays_serving(base_config):
    handle, port = create_server("127.0.0.1:0", base_config.replace(max_concurrent_rpcs=2))
    session = gate(handle)
    pool = ThreadPoolExecutor(2)
    try:
        with AlignClient(f"127.0.0.1:{port}") as client:
            held = [pool.submit(_align, client, 100 + i) for i in range(2)]
            assert wait_until(lambda: session.arrived >= 1)
            time.sleep(0.3)
            (code, details, trailers), seconds = _timed(lambda: _align(client))
            assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and seconds < 0.5
            assert "max_concurrent_rpcs" in details
            assert trailers.get("retry-after-ms") == "1000"  # retry_after_ms
            assert client.health(timeout=1.0) == "SERVING"
            session.gate.set()
            assert [h.result(timeout=30)[0] for h in held] == [grpc.StatusCode.OK] * 2
    finally:
        session.gate.set()
        pool.shutdown()
        handle.drain(0, 0)


def test_a_full_queue_sends_the_retry_hint_too(base_config):
    config = base_config.replace(max_batch_size=1, max_queue_size=1, batch_workers=1)
    handle, port = create_server("127.0.0.1:0", config)
    session = gate(handle)
    pool = ThreadPoolExecutor(8)
    try:
        with AlignClient(f"127.0.0.1:{port}") as client:
            results = [pool.submit(_align, client, 100 + i) for i in range(8)]
            # one call holds the localiser, one waits in the queue, the other six are refused
            assert wait_until(lambda: sum(r.done() for r in results) >= 6)
            full = [r.result() for r in results if r.done()]
            for code, details, trailers in full:
                assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "max_queue_size" in details
                assert trailers.get("retry-after-ms") == "1000"
            session.gate.set()
    finally:
        session.gate.set()
        pool.shutdown()
        handle.drain(0, 0)


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares width x height RGB but carries almost no data."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = chunk(b"IDAT", zlib.compress(b"\0" * 64))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + idat + chunk(b"IEND", b"")


def test_an_image_larger_than_the_whole_memory_budget_is_refused_from_its_header(base_config):
    """Item 4: 10,000 x 10,000 pixels (at the pixel limit) cost about 1.3 GB to decode and warp;
    over max_inflight_mb it is refused before decoding, naming the setting."""
    handle, port = create_server("127.0.0.1:0", base_config.replace(max_inflight_mb=512))
    try:
        with AlignClient(f"127.0.0.1:{port}") as client:
            data = _png_header_only(10_000, 10_000)
            started = time.perf_counter()
            with pytest.raises(grpc.RpcError) as info:
                client.align(data, model="doc-rotation", timeout=10)
            assert time.perf_counter() - started < 1.0
            assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "max_inflight_mb" in info.value.details()
    finally:
        handle.drain(0, 0)


@pytest.mark.parametrize("wait_s", [0.0, 10.0], ids=["refused", "queued"])
def test_the_memory_budget_holds_across_calls(base_config, wait_s):
    """Item 4: each 420 x 420 call reserves about 2.3 MB; two do not fit in 4 MiB at once. The
    second waits for the first (memory_wait_s) or, without a wait, is refused with a retry hint."""
    config = base_config.replace(max_inflight_mb=4, memory_wait_s=wait_s)
    handle, port = create_server("127.0.0.1:0", config)
    session = gate(handle)
    pool = ThreadPoolExecutor(2)
    try:
        with AlignClient(f"127.0.0.1:{port}") as client:
            first = pool.submit(_align, client, 120, 30, (420, 420))
            assert wait_until(lambda: session.arrived >= 1)
            assert 0 < handle.budget.used <= handle.budget.limit
            second = pool.submit(_align, client, 130, 30, (420, 420))
            if wait_s:
                assert wait_until(lambda: len(handle.budget._turns) == 1)
                assert session.arrived == 1  # the second waits before decoding
                session.gate.set()
                assert first.result(timeout=30)[0] == grpc.StatusCode.OK
                assert second.result(timeout=30)[0] == grpc.StatusCode.OK
            else:
                code, details, trailers = second.result(timeout=10)
                assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
                assert "max_inflight_mb" in details and trailers.get("retry-after-ms") == "1000"
                session.gate.set()
                assert first.result(timeout=30)[0] == grpc.StatusCode.OK
            assert wait_until(lambda: handle.budget.used == 0)
    finally:
        session.gate.set()
        pool.shutdown()
        handle.drain(0, 0)


def test_a_huge_unknown_model_name_is_not_found_with_a_short_message(client):
    """Item 10: a 100 KB model name used to come back whole (RESOURCE_EXHAUSTED)."""
    name = "x" * 100_000
    with pytest.raises(grpc.RpcError) as info:
        client.align(png(), model=name)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert len(info.value.details()) < 400 and "100000 characters" in info.value.details()


def test_the_chain_length_is_limited(client):
    """Item 10: doc-rotation+ x 1000 ran until the deadline; now it is refused at once."""
    started = time.perf_counter()
    with pytest.raises(grpc.RpcError) as info:
        client.align(png(), model="doc-rotation+" * 1000, timeout=20)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "max_chain_length" in info.value.details()
    assert time.perf_counter() - started < 2
    reply = client.align(png(), model="doc-rotation+doc-rotation", encoding="none")
    assert len(reply.stages) == 2


def test_open_health_watches_cannot_starve_the_checks(base_config):
    """Watch streams hold a thread each while open, on a pool of their own: with every one of
    those threads taken (and more watches waiting), Check still answers at once."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    handle, port = create_server("127.0.0.1:0", base_config.replace(control_workers=2))
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            watches = [stub.Watch(health_pb2.HealthCheckRequest(), timeout=10) for _ in range(2)]
            assert [next(w).status for w in watches] == [health_pb2.HealthCheckResponse.SERVING] * 2
            watches += [stub.Watch(health_pb2.HealthCheckRequest(), timeout=10) for _ in range(2)]
            time.sleep(0.2)  # the two more wait for a watch thread
            for _ in range(4):
                reply, seconds = _timed(
                    lambda: stub.Check(health_pb2.HealthCheckRequest(), timeout=1.0)
                )
                assert reply.status == health_pb2.HealthCheckResponse.SERVING and seconds < 0.5
            for w in watches:
                w.cancel()
    finally:
        handle.drain(0, 0)


def test_a_drain_with_watches_closing_meanwhile_finishes(base_config):
    """Watchers hanging up just as the drain tells them NOT_SERVING: the drain still finishes
    (grpc_health's non-blocking Watch deadlocked here: set() sends under the lock that a closing
    Watch needs)."""
    import threading

    from grpc_health.v1 import health_pb2, health_pb2_grpc

    for _ in range(4):  # a race: give it a few chances
        handle, port = create_server("127.0.0.1:0", base_config.replace(warmup_runs=0))
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            watches = [stub.Watch(health_pb2.HealthCheckRequest(), timeout=10) for _ in range(4)]
            assert all(next(w).status == health_pb2.HealthCheckResponse.SERVING for w in watches)
            drain = threading.Thread(target=handle.drain, args=(0.0, 1.0), daemon=True)
            for w in watches:
                w.cancel()
            drain.start()
            drain.join(timeout=15)
            assert not drain.is_alive() and handle.stopped.is_set(), "the drain is stuck"


def test_refusals_do_not_receive_the_request_first(base_config):
    """A call refused without a token (or for overload) is answered before its message is read:
    a request over max_message_mb gets UNAUTHENTICATED, not the transport's size error, and a
    large or slowly sent request holds no thread just to be refused."""
    import numpy as np

    handle, port = create_server(
        "127.0.0.1:0", base_config.replace(auth_token="s3cret", max_message_mb=1)
    )
    try:
        with AlignClient(f"127.0.0.1:{port}", max_message_mb=8) as client:
            big = np.zeros((1000, 1000, 3), np.uint8)  # 3 MB raw
            with pytest.raises(grpc.RpcError) as info:
                client.align(big, model="doc-rotation", timeout=10)
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        handle.drain(0, 0)
