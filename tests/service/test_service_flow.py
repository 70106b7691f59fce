"""AlignStream under a slow reader, per-item limits, made-up ids, and how stream calls are logged
(issue 19, items 1, 5 and 10)."""

from __future__ import annotations

import logging
import time

import grpc
import numpy as np
import pytest
from prometheus_client import generate_latest
from service_testlib import gate, png, wait_until

from stn_align.service.client import AlignClient, make_request
from stn_align.service.server import create_server

STREAM = "/stn.alignment.v1.Alignment/AlignStream"


def _sample(handle, name: str, labels: str) -> float:
    for line in generate_latest(handle.metrics.registry).decode().splitlines():
        if line.startswith(f"{name}{{{labels}}}"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _settled(read, timeout: float = 8.0, quiet: float = 0.8) -> float:
    """Poll `read` until its value has not changed for `quiet` seconds."""
    deadline = time.monotonic() + timeout
    value, since = read(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = read()
        if now != value:
            value, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            break
    return value


def test_a_stream_that_is_not_read_stops_taking_work(base_config):
    """Item 1: 40 items asking for 1 MB RAW results, none read. The server must stop working once
    stream_concurrency results (and what the HTTP/2 windows take) wait to be sent."""
    handle, port = create_server("127.0.0.1:0", base_config.replace(stream_concurrency=2))
    try:
        with AlignClient(f"127.0.0.1:{port}", timeout=60) as client:
            data = png(128, (600, 600))
            requests = [
                make_request(data, f"r{i}", "doc-rotation", encoding="raw") for i in range(40)
            ]
            call = client.align_stream(requests)
            done = _settled(lambda: _sample(handle, "stn_stream_items_total", 'code="OK"'))
            assert done <= 12, f"{done:.0f} of 40 items were worked on with nobody reading"
            replies = list(call)  # reading again lets the rest through
            assert sorted(r.id for r in replies) == sorted(f"r{i}" for i in range(40))
            assert all(len(r.result.rectified.data) == 600 * 600 * 3 for r in replies)
    finally:
        handle.drain(0, 0)


def test_an_item_whose_response_is_too_large_fails_alone(base_config):
    """Item 5: the first item asks for a RAW output over max_message_mb; it gets its own
    RESOURCE_EXHAUSTED and the ten good items behind it still arrive. Unary: refused before the
    work, and counted as RESOURCE_EXHAUSTED, not OK."""
    handle, port = create_server("127.0.0.1:0", base_config.replace(max_message_mb=2))
    try:
        with AlignClient(f"127.0.0.1:{port}", timeout=30) as client:
            big = make_request(png(), "big", "doc-rotation", (1200, 1200), encoding="raw")
            good = [make_request(png(120 + i), f"ok{i}", "doc-rotation") for i in range(10)]
            replies = {r.id: r for r in client.align_stream([big, *good])}
            assert set(replies) == {"big"} | {f"ok{i}" for i in range(10)}
            error = replies["big"].error
            assert error.code_name == "RESOURCE_EXHAUSTED" and "max_message_mb" in error.message
            assert all(replies[f"ok{i}"].HasField("result") for i in range(10))
            started = time.perf_counter()
            with pytest.raises(grpc.RpcError) as info:
                client.align(big)
            assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "1200x1200x3 raw output" in info.value.details()
            assert time.perf_counter() - started < 2
        align = 'code="{}",method="/stn.alignment.v1.Alignment/Align"'
        assert _sample(handle, "stn_requests_total", align.format("RESOURCE_EXHAUSTED")) == 1
        assert _sample(handle, "stn_requests_total", align.format("OK")) == 0
        assert _sample(handle, "stn_stream_items_total", 'code="RESOURCE_EXHAUSTED"') == 1
    finally:
        handle.drain(0, 0)


def test_a_compressed_output_over_the_limit_fails_alone(base_config):
    """Item 5, PNG: the encoded size is known only after encoding; the item still fails alone."""
    handle, port = create_server("127.0.0.1:0", base_config.replace(max_message_mb=1))
    noise = np.random.default_rng(5).integers(0, 255, (560, 560, 3), dtype=np.uint8)
    try:
        with AlignClient(f"127.0.0.1:{port}", timeout=30) as client:
            # 0.94 MB in; out, the noise resampled by nearest neighbour stays incompressible
            big = make_request(
                noise, "noise", "doc-rotation", (640, 640), "png", interpolation="nearest"
            )
            small = make_request(png(150), "small", "doc-rotation")
            replies = {r.id: r for r in client.align_stream([big, small])}
            assert replies["noise"].error.code_name == "RESOURCE_EXHAUSTED"
            assert "png output would be" in replies["noise"].error.message
            assert replies["small"].HasField("result")
    finally:
        handle.drain(0, 0)


def test_made_up_stream_ids_never_equal_the_clients(client):
    """Item 10: [no id, "item-0", no id] must come back as three different ids."""
    requests = [
        make_request(png(130), "", "doc-rotation", encoding="none"),
        make_request(png(140), "item-0", "doc-rotation", encoding="none"),
        make_request(png(150), "", "doc-rotation", encoding="none"),
    ]
    ids = [r.id for r in client.align_stream(requests)]
    assert len(ids) == 3 and len(set(ids)) == 3 and "item-0" in ids


def test_cancelled_streams_are_logged_and_counted_as_cancelled(base_config, caplog):
    """Item 10: a stream the client cancels is CANCELLED in the log and the metrics, not UNKNOWN."""
    handle, port = create_server("127.0.0.1:0", base_config.replace(stream_concurrency=1))
    session = gate(handle)
    try:
        with (
            caplog.at_level(logging.INFO, logger="stn.service.calls"),
            AlignClient(f"127.0.0.1:{port}") as client,
        ):
            requests = [make_request(png(120), f"c{i}", "doc-rotation") for i in range(5)]
            call = client.align_stream(requests)
            assert wait_until(lambda: session.arrived >= 1)
            call.cancel()
            assert wait_until(
                lambda: (
                    _sample(handle, "stn_requests_total", f'code="CANCELLED",method="{STREAM}"')
                    == 1
                )
            )
            session.gate.set()
        codes = [r.code for r in caplog.records if getattr(r, "method", "") == STREAM]
        assert codes == ["CANCELLED"]
        assert _sample(handle, "stn_requests_total", f'code="UNKNOWN",method="{STREAM}"') == 0
    finally:
        session.gate.set()
        handle.drain(0, 0)


def test_an_oversized_stream_request_is_not_logged_unknown(base_config, caplog):
    """Item 10: a stream message over max_message_mb ends the call; the log says why, not
    UNKNOWN."""
    handle, port = create_server("127.0.0.1:0", base_config.replace(max_message_mb=1))
    try:
        with (
            caplog.at_level(logging.INFO, logger="stn.service.calls"),
            AlignClient(f"127.0.0.1:{port}", max_message_mb=8, timeout=20) as client,
        ):
            huge = make_request(np.zeros((800, 800, 3), np.uint8), "huge", "doc-rotation")
            with pytest.raises(grpc.RpcError) as info:
                list(client.align_stream([huge]))
            assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert wait_until(lambda: any(getattr(r, "method", "") == STREAM for r in caplog.records))
        codes = [r.code for r in caplog.records if getattr(r, "method", "") == STREAM]
        assert codes and "UNKNOWN" not in codes and "OK" not in codes
    finally:
        handle.drain(0, 0)
