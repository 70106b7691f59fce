"""Draining and start-up: calls in flight finish, new ones get UNAVAILABLE, health never returns to
SERVING, the stop signal is caught before the models load, a taken port or a bad TLS pair stops
start-up with a clear error, and metrics listen where the server does (issue 19, items 6-10)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from prometheus_client import generate_latest
from service_testlib import gate, png, wait_until

from stn_align.service.client import AlignClient, make_request
from stn_align.service.config import ConfigError, ServiceConfig
from stn_align.service.server import create_server

ROOT = Path(__file__).resolve().parents[2]
ALIGN = "/stn.alignment.v1.Alignment/Align"


def _align(client, value: int = 120, timeout: float = 30):
    try:
        client.align(png(value, (32, 32)), model="doc-rotation", encoding="none", timeout=timeout)
        return grpc.StatusCode.OK, ""
    except grpc.RpcError as exc:
        return exc.code(), exc.details()


def _count(handle, code: str, method: str = ALIGN) -> float:
    prefix = f'stn_requests_total{{code="{code}",method="{method}"}}'
    for line in generate_latest(handle.metrics.registry).decode().splitlines():
        if line.startswith(prefix):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_drain_lets_calls_in_flight_finish_and_refuses_new_ones(base_config):
    """Item 6: 8 calls in flight (4 running, 4 waiting for a worker) when the drain starts; a call
    after the delay gets UNAVAILABLE; the 8 finish OK."""
    handle, port = create_server("127.0.0.1:0", base_config.replace(workers=4))
    session = gate(handle)
    pool = ThreadPoolExecutor(9)
    drain = threading.Thread(target=handle.drain, args=(0.2, 10.0))
    try:
        with AlignClient(f"127.0.0.1:{port}") as client:
            in_flight = [pool.submit(_align, client, 100 + i) for i in range(8)]
            assert wait_until(lambda: session.arrived >= 1)
            time.sleep(0.3)  # for the other calls to land behind the first
            drain.start()
            time.sleep(0.6)  # past the drain's 0.2 s delay
            code, details = pool.submit(_align, client, 99, 5).result(timeout=10)
            assert code == grpc.StatusCode.UNAVAILABLE, (code, details)
            session.gate.set()
            assert [f.result(timeout=30)[0] for f in in_flight] == [grpc.StatusCode.OK] * 8
        drain.join(timeout=15)
        assert handle.stopped.is_set()
        assert wait_until(lambda: _count(handle, "OK") == 8) and _count(handle, "CANCELLED") == 0
    finally:
        session.gate.set()
        pool.shutdown()
        if not handle.stopped.is_set():
            handle.drain(0, 0)


def test_calls_still_running_when_the_grace_runs_out_end_unavailable(base_config):
    """Item 6: a call that cannot finish within drain_grace_s ends UNAVAILABLE (retryable), on
    the client and in the server's metrics, never CANCELLED."""
    handle, port = create_server("127.0.0.1:0", base_config.replace(workers=2))
    session = gate(handle, timeout=20)
    pool = ThreadPoolExecutor(4)
    try:
        with AlignClient(f"127.0.0.1:{port}") as client:
            calls = [pool.submit(_align, client, 100 + i) for i in range(4)]
            assert wait_until(lambda: session.arrived >= 1)
            time.sleep(0.3)
            started = time.perf_counter()
            drain = threading.Thread(target=handle.drain, args=(0.0, 0.5))
            drain.start()
            results = [c.result(timeout=20) for c in calls]  # the localiser is still held
            assert {code for code, _ in results} == {grpc.StatusCode.UNAVAILABLE}
            assert all("drain_grace_s" in details for _, details in results), results
            assert wait_until(lambda: _count(handle, "UNAVAILABLE") == 4)
            assert _count(handle, "CANCELLED") == 0
            session.gate.set()
            drain.join(timeout=20)
            assert handle.stopped.is_set() and time.perf_counter() - started < 8
    finally:
        session.gate.set()
        pool.shutdown()
        if not handle.stopped.is_set():
            handle.drain(0, 0)


def test_a_stream_stops_taking_items_when_the_drain_refuses_calls(base_config):
    """Item 6: the items taken are answered, then the stream ends UNAVAILABLE so the client sends
    the rest elsewhere; it does not go on taking work until the grace runs out."""
    handle, port = create_server("127.0.0.1:0", base_config.replace(stream_concurrency=2))
    session = gate(handle)
    drain = threading.Thread(target=handle.drain, args=(0.0, 20.0))
    try:
        with AlignClient(f"127.0.0.1:{port}") as client:
            requests = [
                make_request(png(120), f"s{i}", "doc-rotation", encoding="none") for i in range(50)
            ]
            call = client.align_stream(requests)
            assert wait_until(lambda: session.arrived >= 1)
            started = time.perf_counter()
            drain.start()
            time.sleep(0.3)
            session.gate.set()
            ids = []
            with pytest.raises(grpc.RpcError) as info:
                for reply in call:
                    assert reply.HasField("result")
                    ids.append(reply.id)
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "draining" in info.value.details()
            assert 1 <= len(ids) < 50 and len(set(ids)) == len(ids)
            drain.join(timeout=15)
            assert handle.stopped.is_set() and time.perf_counter() - started < 10
    finally:
        session.gate.set()
        if not handle.stopped.is_set():
            handle.drain(0, 0)


def test_health_never_returns_to_serving_once_draining(base_config, monkeypatch):
    """Item 7: a drain that starts while the models warm up wins over the load finishing."""
    warming, release = threading.Event(), threading.Event()
    from stn_align.service.pipeline import Pipeline

    real_warmup = Pipeline.warmup

    def slow_warmup(self, runs):
        warming.set()
        release.wait(10)
        real_warmup(self, runs)

    monkeypatch.setattr(Pipeline, "warmup", slow_warmup)
    handle, port = create_server("127.0.0.1:0", base_config, load=False)
    loader = threading.Thread(target=handle.load)
    loader.start()
    drain = threading.Thread(target=handle.drain, args=(1.5, 1.0))
    try:
        with AlignClient(f"127.0.0.1:{port}") as client:
            assert warming.wait(10)
            drain.start()
            assert wait_until(lambda: client.health(timeout=1) == "NOT_SERVING")
            release.set()
            loader.join(timeout=10)
            assert not loader.is_alive()
            assert client.health(timeout=1) == "NOT_SERVING"  # still in the drain's delay
            assert handle.pipeline is None  # loaded too late: closed, never served
    finally:
        release.set()
        drain.join(timeout=15)
        if not handle.stopped.is_set():
            handle.drain(0, 0)


def _serve_process(model_dir, env_extra: dict[str, str]) -> subprocess.Popen:
    env = {**os.environ, "STN_MODEL_DIR": str(model_dir), "STN_METRICS_PORT": "0",
           "STN_DEVICE": "cpu", "STN_DRAIN_DELAY_S": "0", **env_extra}  # fmt: skip
    return subprocess.Popen(
        [sys.executable, "-m", "stn_align.service.commands", "serve"],
        cwd=ROOT,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )


def _catches_sigterm(pid: int) -> bool:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)))
    return False


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_sigterm_is_caught_before_the_models_load(model_dir):
    """Item 7: the handler is in before ONNX Runtime is even imported, so a SIGTERM at start-up
    drains (exit 0) instead of killing the process (-15)."""
    proc = _serve_process(model_dir, {"STN_ADDRESS": "127.0.0.1:0"})
    try:
        assert wait_until(lambda: proc.poll() is not None or _catches_sigterm(proc.pid), 30)
        maps = Path(f"/proc/{proc.pid}/maps").read_text()
        assert "onnxruntime" not in maps, "the handler came after the models started loading"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    messages = [json.loads(line)["message"] for line in err.splitlines() if line.startswith("{")]
    assert "signal" in messages and messages[-1] == "stopped" and "serving" not in messages


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_second_server_on_a_taken_port_refuses_to_start(base_config, model_dir):
    """Item 9: no silent port sharing; `stn serve` says why and exits 1."""
    port = _free_port()
    handle, _ = create_server(f"127.0.0.1:{port}", base_config)
    try:
        with pytest.raises(OSError, match="reuse_port"):
            create_server(f"127.0.0.1:{port}", base_config, load=False)
        proc = _serve_process(model_dir, {"STN_ADDRESS": f"127.0.0.1:{port}"})
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 1
        failure = [json.loads(line) for line in err.splitlines() if "start-up failed" in line]
        assert failure and f"cannot listen on 127.0.0.1:{port}" in failure[0]["error"]
        assert "Traceback" not in err
    finally:
        handle.drain(0, 0)


def test_reuse_port_lets_two_servers_share_on_request(base_config):
    port = _free_port()
    config = base_config.replace(reuse_port=True)
    first, _ = create_server(f"127.0.0.1:{port}", config, load=False)
    try:
        second, _ = create_server(f"127.0.0.1:{port}", config, load=False)
        second.drain(0, 0)
    finally:
        first.drain(0, 0)


def test_metrics_listen_on_the_host_of_the_address(base_config):
    """Item 8: not on 0.0.0.0 when the server itself listens on loopback; metrics_host overrides."""
    port = _free_port()
    config = base_config.replace(address="127.0.0.1:0", metrics_port=_free_port())
    handle, _ = create_server("127.0.0.1:0", config)
    try:
        handle.start_metrics()
        assert handle._metrics_http.server_address[0] == "127.0.0.1"
    finally:
        handle.drain(0, 0)
    config = base_config.replace(address="0.0.0.0:0", metrics_port=port, metrics_host="127.0.0.1")
    handle, _ = create_server("127.0.0.1:0", config)
    try:
        handle.start_metrics()
        assert handle._metrics_http.server_address[0] == "127.0.0.1"
    finally:
        handle.drain(0, 0)


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_a_certificate_and_key_that_do_not_match_is_a_config_error(tmp_path, model_dir):
    """Item 10: named settings at start-up (exit 2), not a traceback saying it failed to bind."""
    for name in ("a", "b"):
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                 str(tmp_path / f"{name}.key"), "-out", str(tmp_path / f"{name}.pem"),
                 "-days", "1", "-subj", "/CN=localhost")  # fmt: skip
    with pytest.raises(ConfigError, match="tls_cert and tls_key"):
        ServiceConfig(tls_cert=str(tmp_path / "a.pem"), tls_key=str(tmp_path / "b.key")).replace()
    assert (
        ServiceConfig()
        .replace(tls_cert=str(tmp_path / "a.pem"), tls_key=str(tmp_path / "a.key"))
        .tls_cert
    )
    proc = _serve_process(
        model_dir,
        {"STN_ADDRESS": "127.0.0.1:0", "STN_TLS_CERT": str(tmp_path / "a.pem"),
         "STN_TLS_KEY": str(tmp_path / "b.key")},
    )  # fmt: skip
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "tls_cert and tls_key" in err and "Traceback" not in err
