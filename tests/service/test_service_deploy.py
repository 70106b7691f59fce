"""Deployment without Docker: the compose file's structure, the Dockerfile's promises, and the
container's entrypoint and healthcheck run as plain processes."""

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


def _defaults(environment: dict) -> dict[str, str]:
    """${VAR:-default} -> default, as compose does with VAR unset."""
    return {k: re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", str(v)) for k, v in environment.items()}


def test_compose_gpu_service(compose):
    stn = compose["services"]["stn"]
    assert stn["build"]["dockerfile"] == "Dockerfile"
    devices = stn["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    (models,) = [v for v in stn["volumes"] if v["target"] == "/models"]
    assert models["source"] == "./exported" and models["read_only"] is True
    assert {"50051:50051", "9100:9100"} <= set(stn["ports"])
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


def test_compose_cpu_variant_and_replicas_profile(compose):
    cpu = compose["services"]["stn-cpu"]
    assert cpu["profiles"] == ["cpu"] and "deploy" not in cpu
    assert cpu["build"]["args"]["BASE_IMAGE"].startswith("python:")
    replica = compose["services"]["stn-replica"]
    assert replica["profiles"] == ["replicas"] and replica["deploy"]["replicas"] >= 2
    assert "ports" not in replica  # only Envoy is published
    envoy = compose["services"]["envoy"]
    assert envoy["profiles"] == ["replicas"]
    assert envoy["depends_on"]["stn-replica"]["condition"] == "service_healthy"
    (mount,) = envoy["volumes"]
    assert (ROOT / mount["source"]).is_file() and mount["read_only"] is True


def test_envoy_balances_grpc_over_the_replicas():
    config = yaml.safe_load((ROOT / "deploy" / "envoy.yaml").read_text())
    (cluster,) = config["static_resources"]["clusters"]
    assert cluster["type"] == "STRICT_DNS" and cluster["lb_policy"] == "ROUND_ROBIN"
    options = cluster["typed_extension_protocol_options"]
    assert "http2_protocol_options" in str(options)
    endpoint = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
    assert endpoint["address"]["socket_address"] == {"address": "stn-replica", "port_value": 50051}
    assert "grpc_health_check" in cluster["health_checks"][0]


def test_dockerfile_promises():
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^ARG BASE_IMAGE=nvidia/cuda:13[\w.-]*cudnn[\w.-]*runtime", text, re.M)
    user = re.findall(r"^USER (\S+)", text, re.M)
    assert user and not user[-1].startswith(("0", "root"))
    assert 'ENTRYPOINT ["/app/deploy/entrypoint.sh"]' in text
    assert "stn_align.service.healthcheck" in text and "EXPOSE 50051 9100" in text
    assert "torch" not in re.sub(r"#.*", "", text)
    for line in re.findall(r"^COPY (.+)$", text, re.M):
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
