"""Deployment without Docker: the compose file's structure, the Dockerfile's promises, and the
container's entrypoint and healthcheck run as plain processes (tests/deploy/ builds and runs
them in Docker)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from stn_align.service.client import AlignClient
from stn_align.service.config import SETTINGS, load_config

ROOT = Path(__file__).resolve().parents[2]
ENTRYPOINT = ROOT / "deploy" / "entrypoint.sh"
KNOWN_ENV = {s.env for s in SETTINGS}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _default(value) -> str:
    """${VAR:-default} -> default, as compose does with VAR unset."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", str(value))


def _defaults(environment: dict) -> dict[str, str]:
    return {k: _default(v) for k, v in environment.items()}


def test_compose_gpu_service(compose):
    stn = compose["services"]["stn"]
    assert stn["build"]["dockerfile"] == "Dockerfile"
    assert _default(stn["build"]["args"]["BASE_IMAGE"]).startswith("nvidia/cuda:13")
    devices = stn["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    (models,) = [v for v in stn["volumes"] if v["target"] == "/models"]
    assert models["source"] == "./exported" and models["read_only"] is True
    assert {"0.0.0.0:50051:50051", "0.0.0.0:9100:9100"} <= {_default(p) for p in stn["ports"]}
    assert stn["healthcheck"]["test"] == ["CMD", "python", "-m", "stn_align.service.healthcheck"]
    assert stn["user"] == "10001:10001" and stn["read_only"] is True
    env = _defaults(stn["environment"])
    assert env["STN_REQUIRE_GPU"] == "true" and env["STN_MODEL_DIR"] == "/models"


def test_compose_environment_is_valid_config(compose):
    for name, service in compose["services"].items():
        if "environment" not in service:
            continue
        env = _defaults(service["environment"])
        assert set(env) <= KNOWN_ENV, f"{name}: unknown settings {set(env) - KNOWN_ENV}"
        config = load_config(env, None)  # raises ConfigError naming a bad setting
        grace = float(re.sub(r"s$", "", service["stop_grace_period"]))
        assert grace > config.drain_delay_s + config.drain_grace_s, name


def test_compose_cpu_variant_and_replicas_profiles(compose):
    services = compose["services"]
    cpu = services["stn-cpu"]
    assert cpu["profiles"] == ["cpu"] and "deploy" not in cpu
    assert _default(cpu["build"]["args"]["BASE_IMAGE"]).startswith("python:")
    for name, profile, lb in (
        ("stn-replica", "replicas", "lb"),
        ("stn-replica-cpu", "replicas-cpu", "lb-cpu"),
    ):
        replica = services[name]
        assert replica["profiles"] == [profile] and replica["deploy"]["replicas"] == 3
        assert "ports" not in replica  # only the balancer is published
        assert replica["networks"]["default"]["aliases"] == ["stn-replicas"]
        assert services[lb]["profiles"] == [profile] and services[lb]["depends_on"] == [name]
        (mount,) = services[lb]["volumes"]
        assert (ROOT / mount["source"]).is_file() and mount["read_only"] is True
    assert "resources" not in services["stn-replica-cpu"]["deploy"]  # no GPU reservation
    stats = [_default(p) for p in services["lb"]["ports"] if _default(p).endswith(":8404")]
    assert stats and all(p.startswith("127.0.0.1:") for p in stats)  # counters: this host only


def test_haproxy_balances_each_grpc_call_over_the_replicas(compose):
    text = (ROOT / "deploy" / "haproxy" / "haproxy.cfg").read_text()
    lines = [line.split("#")[0].strip() for line in text.splitlines()]
    assert "bind :8080 proto h2" in lines  # HTTP/2 in, so each call is its own stream
    (server,) = [line for line in lines if line.startswith("server-template")]
    words = server.split()
    assert words[3] == "stn-replicas:50051" and "proto h2" in server and " check" in server
    assert "resolvers docker" in server  # replicas join and leave as DNS says
    # The replicas' agent tells HAProxy to stop sending calls as soon as a drain starts.
    agent = compose["x-environment"]["STN_AGENT_PORT"]
    assert f"agent-check agent-port {agent} " in server
    for name in ("stn-replica", "stn-replica-cpu"):
        assert agent in compose["services"][name]["expose"]
    assert "balance roundrobin" in lines and "nameserver dns 127.0.0.11:53" in lines
    dockerfile = (ROOT / "deploy" / "haproxy" / "Dockerfile").read_text()
    assert "apt-get install" in dockerfile and "haproxy" in dockerfile


def test_dockerfile_promises():
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^ARG BASE_IMAGE=nvidia/cuda:13[\w.-]*cudnn[\w.-]*runtime", text, re.M)
    user = re.findall(r"^USER (\S+)", text, re.M)
    assert user and not user[-1].startswith(("0", "root"))
    assert 'ENTRYPOINT ["/app/deploy/entrypoint.sh"]' in text
    assert "stn_align.service.healthcheck" in text and "EXPOSE 50051 9100 9101" in text
    assert "torch" not in re.sub(r"#.*", "", text)
    copies = re.findall(r"^COPY (.+)$", text, re.M)
    assert not any("training" in line for line in copies)  # the serving distribution only
    for line in copies:
        for source in line.split()[:-1]:
            assert (ROOT / source).exists(), f"Dockerfile copies {source}, which is missing"


def _entrypoint(*args: str, env: dict | None = None, timeout: float = 60):
    full = {"PATH": os.environ["PATH"], "STN_PYTHON": sys.executable, **(env or {})}
    return subprocess.run(
        ["sh", str(ENTRYPOINT), *args],
        cwd=ROOT,
        env=full,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_entrypoint_refuses_root():
    if os.geteuid() != 0:
        pytest.skip("not running as root here, so the refusal cannot be shown")
    out = _entrypoint("serve")
    assert out.returncode == 64 and "refusing to run as root" in out.stderr


def test_entrypoint_checks_settings_and_passes_other_commands_through(tmp_path):
    root_ok = {"STN_ALLOW_ROOT": "1"}
    out = _entrypoint("serve", env={**root_ok, "STN_MODEL_DIR": str(tmp_path / "none")})
    assert out.returncode == 64 and "STN_MODEL_DIR" in out.stderr
    out = _entrypoint(
        "serve", env={**root_ok, "STN_MODEL_DIR": str(tmp_path), "STN_MAX_BATCH_SIZE": "lots"}
    )
    assert out.returncode == 2 and "STN_MAX_BATCH_SIZE" in out.stderr
    out = _entrypoint("serve", env={**root_ok, "STN_AUTH_TOKEN_FILE": str(tmp_path / "nope")})
    assert out.returncode == 64 and "STN_AUTH_TOKEN_FILE" in out.stderr
    assert _entrypoint("echo", "passed through").stdout.strip() == "passed through"
    assert "--max-batch-size" in _entrypoint("serve", "--help", env=root_ok).stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_entrypoint_serves_then_drains_on_sigterm(model_dir, tmp_path):
    token = tmp_path / "token"
    token.write_text("from-a-secret\n")
    port = _free_port()
    env = {
        "PATH": os.environ["PATH"], "STN_PYTHON": sys.executable, "STN_ALLOW_ROOT": "1",
        "STN_MODEL_DIR": str(model_dir), "STN_ADDRESS": f"127.0.0.1:{port}",
        "STN_METRICS_PORT": "0", "STN_DEVICE": "cpu", "STN_AUTH_TOKEN_FILE": str(token),
        "STN_DRAIN_DELAY_S": "0.2",
    }  # fmt: skip
    proc = subprocess.Popen(
        ["sh", str(ENTRYPOINT)], cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        health = [
            sys.executable,
            "-m",
            "stn_align.service.healthcheck",
            "--address",
            f"127.0.0.1:{port}",
        ]
        deadline = time.monotonic() + 60
        while subprocess.run(health, cwd=ROOT, capture_output=True).returncode != 0:
            assert proc.poll() is None and time.monotonic() < deadline, (
                "server did not become healthy"
            )
            time.sleep(0.3)
        with AlignClient(f"127.0.0.1:{port}", token="from-a-secret") as client:
            assert {m.name for m in client.list_models().models} == {
                "doc-rotation",
                "doc-perspective",
            }
        proc.send_signal(signal.SIGTERM)  # reaches python: the entrypoint exec'd it
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0
    events = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    messages = [e["message"] for e in events]
    assert "serving" in messages and "draining" in messages and messages[-1] == "stopped"
    assert any(e.get("provider") == "CPUExecutionProvider" for e in events)
    assert "is writable; mount it read-only" in err
    assert subprocess.run(health, cwd=ROOT, capture_output=True).returncode == 1
