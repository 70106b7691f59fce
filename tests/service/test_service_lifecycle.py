"""Health transitions, draining, cancellation, deadlines, overload, token, TLS, metrics HTTP."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import pytest
from service_testlib import SlowSession, png

from stn_align.service.client import AlignClient
from stn_align.service.server import create_server


def _slow(handle, delay: float, model: str = "doc-rotation") -> SlowSession:
    m = handle.pipeline.models[model]
    m.session = SlowSession(m.session, delay)
    return m.session


def _codes(client, n: int, timeout: float = 30) -> list[grpc.StatusCode]:
    def call(i):
        try:
            client.align(
                png(100 + i, (32, 32)), model="doc-rotation", encoding="none", timeout=timeout
            )
            return grpc.StatusCode.OK
        except grpc.RpcError as exc:
            return exc.code()

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(call, range(n)))


def test_health_not_serving_while_loading_then_serving_then_draining(base_config):
    handle, port = create_server("127.0.0.1:0", base_config, load=False)
    client = AlignClient(f"127.0.0.1:{port}")
    try:
        assert client.health() == "NOT_SERVING"
        assert client.health("stn.alignment.v1.Alignment") == "NOT_SERVING"
        with pytest.raises(grpc.RpcError) as info:
            client.align(png(), model="doc-rotation")
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        handle.load()
        assert client.health() == "SERVING"
        _slow(handle, 1.0)
        in_flight = ThreadPoolExecutor(1).submit(
            client.align, png(150, (32, 32)), model="doc-rotation"
        )
        time.sleep(0.2)
        drain = threading.Thread(target=handle.drain, args=(0.6, 5.0))
        drain.start()
        time.sleep(0.2)
        assert client.health() == "NOT_SERVING"  # balancers see this before calls are refused
        reply = in_flight.result(timeout=10)  # the call in flight finished
        assert reply.angle_degrees == pytest.approx(11.0, abs=1e-3)
        drain.join(timeout=10)
        with pytest.raises(grpc.RpcError) as info:
            client.align(png(), model="doc-rotation", timeout=2)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        client.close()
        if not handle.stopped.is_set():
            handle.drain(0, 0)


def test_deadline_expiry_drops_the_queued_work(base_config):
    # One localiser run at a time, so that the slow first call holds it.
    config = base_config.replace(max_batch_size=1, batch_workers=1)
    handle, port = create_server("127.0.0.1:0", config)
    client = AlignClient(f"127.0.0.1:{port}")
    try:
        slow = _slow(handle, 0.8)
        batcher = handle.pipeline.batchers["doc-rotation"]
        first = ThreadPoolExecutor(1).submit(client.align, png(130, (32, 32)), model="doc-rotation")
        time.sleep(0.2)  # the first call now holds the localiser
        with pytest.raises(grpc.RpcError) as info:
            client.align(png(140, (32, 32)), model="doc-rotation", timeout=0.3)
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        first.result(timeout=10)
        time.sleep(1.0)
        assert slow.images == 1  # the expired call never reached the localiser
        assert batcher.stats.dropped >= 1
    finally:
        client.close()
        handle.drain(0, 0)


def test_cancelled_stream_stops_its_work(base_config):
    handle, port = create_server(
        "127.0.0.1:0",
        base_config.replace(max_batch_size=1, stream_concurrency=2, batch_workers=1),
    )
    client = AlignClient(f"127.0.0.1:{port}")
    try:
        slow = _slow(handle, 0.3)
        from stn_align.service.client import make_request

        requests = [
            make_request(png(120, (32, 32)), f"r{i}", "doc-rotation", encoding="none")
            for i in range(40)
        ]
        call = client.align_stream(requests)
        first = next(call)
        assert first.HasField("result")
        call.cancel()
        time.sleep(1.5)
        assert slow.images < 10  # far fewer than 40 were localised
    finally:
        client.close()
        handle.drain(0, 0)


def test_full_queue_is_resource_exhausted(base_config):
    config = base_config.replace(max_batch_size=1, max_queue_size=1, batch_workers=1)
    handle, port = create_server("127.0.0.1:0", config)
    client = AlignClient(f"127.0.0.1:{port}")
    try:
        _slow(handle, 0.4)
        codes = _codes(client, 8)
        assert grpc.StatusCode.OK in codes
        assert grpc.StatusCode.RESOURCE_EXHAUSTED in codes
        assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}
    finally:
        client.close()
        handle.drain(0, 0)


def test_too_many_concurrent_calls_is_resource_exhausted(base_config):
    handle, port = create_server("127.0.0.1:0", base_config.replace(max_concurrent_rpcs=2))
    client = AlignClient(f"127.0.0.1:{port}")
    try:
        _slow(handle, 0.5)
        codes = _codes(client, 8)
        assert codes.count(grpc.StatusCode.OK) >= 2
        assert grpc.StatusCode.RESOURCE_EXHAUSTED in codes
    finally:
        client.close()
        handle.drain(0, 0)


def test_shared_token(base_config):
    handle, port = create_server("127.0.0.1:0", base_config.replace(auth_token="s3cret"))
    try:
        with AlignClient(f"127.0.0.1:{port}") as anonymous:
            with pytest.raises(grpc.RpcError) as info:
                anonymous.list_models()
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert anonymous.health() == "SERVING"  # probes need no secret
        with AlignClient(f"127.0.0.1:{port}", token="wrong") as wrong, pytest.raises(grpc.RpcError):
            wrong.align(png(), model="doc-rotation")
        with AlignClient(f"127.0.0.1:{port}", token="s3cret") as good:
            assert good.align(png(), model="doc-rotation").model == "doc-rotation"
    finally:
        handle.drain(0, 0)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_tls(base_config, tmp_path):
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost"],
        check=True, capture_output=True,
    )  # fmt: skip
    handle, port = create_server(
        "127.0.0.1:0", base_config.replace(tls_cert=str(cert), tls_key=str(key))
    )
    try:
        with AlignClient(f"localhost:{port}", tls_ca=str(cert)) as client:
            assert client.align(png(), model="doc-rotation", timeout=10).model == "doc-rotation"
        with AlignClient(f"localhost:{port}") as plain, pytest.raises(grpc.RpcError):
            plain.list_models(timeout=3)
    finally:
        handle.drain(0, 0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_metrics_http_endpoint(base_config):
    handle, port = create_server("127.0.0.1:0", base_config.replace(metrics_port=_free_port()))
    try:
        metrics_port = handle.start_metrics()
        with AlignClient(f"127.0.0.1:{port}") as client:
            client.align(png(), model="doc-rotation")
        text = (
            urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5)
            .read()
            .decode()
        )
        assert (
            'stn_requests_total{code="OK",method="/stn.alignment.v1.Alignment/Align"} 1.0' in text
        )
        assert "stn_request_seconds_bucket" in text
    finally:
        handle.drain(0, 0)


def test_message_size_limit_is_configurable(base_config):
    handle, port = create_server("127.0.0.1:0", base_config.replace(max_message_mb=1))
    try:
        with AlignClient(f"127.0.0.1:{port}") as client:
            big = np.zeros((800, 800, 3), np.uint8)  # 1.9 MB raw: over the server's 1 MiB
            with pytest.raises(grpc.RpcError) as info:
                client.align(big, model="doc-rotation", timeout=10)
            assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            small = np.zeros((300, 300, 3), np.uint8)
            reply = client.align(small, model="doc-rotation", encoding="none")
            assert reply.model == "doc-rotation"
    finally:
        handle.drain(0, 0)
