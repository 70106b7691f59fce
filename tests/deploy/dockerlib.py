"""Helpers for the deployment tests: the engine, compose (v2 plugin or v1), the projects they
start, and a gRPC client that retries like a production client should."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from stn_align.service.proto import alignment_pb2_grpc as pb_grpc

ROOT = Path(__file__).resolve().parents[2]

# Align is idempotent, so a call that met a replica on its way out (UNAVAILABLE) is sent again.
RETRY_CONFIG = {
    "methodConfig": [
        {
            "name": [{"service": "stn.alignment.v1.Alignment"}],
            "retryPolicy": {
                "maxAttempts": 5,
                "initialBackoff": "0.2s",
                "maxBackoff": "2s",
                "backoffMultiplier": 2,
                "retryableStatusCodes": ["UNAVAILABLE"],
            },
        }
    ]
}


def run(cmd: Sequence[str], timeout: float = 600, env: dict | None = None, check: bool = True):
    out = subprocess.run(
        list(cmd), cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    if check and out.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {out.returncode}:\n{out.stderr[-3000:]}")
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def retrying_stub(address: str) -> tuple[grpc.Channel, pb_grpc.AlignmentStub]:
    channel = grpc.insecure_channel(
        address,
        options=[("grpc.enable_retries", 1), ("grpc.service_config", json.dumps(RETRY_CONFIG))],
    )
    return channel, pb_grpc.AlignmentStub(channel)


@dataclass
class Docker:
    """An engine that runs, a base image, and the compose command that works here."""

    base: str
    compose: list[str]
    suffix: str  # image tag suffix: this checkout's builds apart from another's
    say: object  # writes a line to the test report

    def env(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "STN_BASE_IMAGE": self.base,
            "STN_IMAGE_SUFFIX": self.suffix,
            "STN_PUBLISH_IP": "127.0.0.1",
            **extra,
        }

    def image(self, name: str) -> str:
        return f"{name}{self.suffix}"


def start_docker(say) -> Docker:
    """The engine and base via scripts/docker-base.sh; skip only when no engine can run here."""
    if shutil.which("docker") is None:
        pytest.skip("docker is not installed (bash scripts/docker-base.sh --install)")
    prepared = run(["bash", "scripts/docker-base.sh"], timeout=900, check=False)
    if prepared.returncode == 3:
        pytest.skip(f"no Docker engine can run here: {prepared.stderr.strip()}")
    assert prepared.returncode == 0, prepared.stderr
    say(prepared.stderr.strip())
    base = os.environ.get("STN_BASE_IMAGE") or prepared.stdout.split()[-1]
    if run(["docker", "compose", "version"], check=False).returncode == 0:
        compose = ["docker", "compose"]
    elif shutil.which("docker-compose"):
        compose = ["docker-compose"]
    else:
        pytest.skip("no Docker Compose here (bash scripts/docker-base.sh --install)")
    suffix = "-test-" + hashlib.sha256(str(ROOT).encode()).hexdigest()[:8]
    return Docker(base, compose, suffix, say)


@dataclass
class Project:
    """One `docker compose -p NAME` deployment of this checkout's docker-compose.yml."""

    docker: Docker
    name: str
    profiles: list[str]
    env: dict[str, str] = field(default_factory=dict)

    def cmd(self, *args: str) -> list[str]:
        profiles = [a for p in self.profiles for a in ("--profile", p)]
        return [*self.docker.compose, "-p", self.name, *profiles, *args]

    def run(self, *args: str, timeout: float = 300, check: bool = True):
        return run(self.cmd(*args), timeout, self.docker.env(**self.env), check)

    def containers(self, service: str) -> list[str]:
        return self.run("ps", "-q", service).stdout.split()

    def down(self) -> None:
        self.run("down", "--remove-orphans", "-t", "60", check=False, timeout=180)


def inspect(container: str, template: str) -> str:
    return run(["docker", "inspect", "-f", template, container]).stdout.strip()


def wait_healthy(containers: Sequence[str], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while True:
        states = [inspect(c, "{{.State.Health.Status}}") for c in containers]
        if all(s == "healthy" for s in states):
            return
        assert "unhealthy" not in states and time.monotonic() < deadline, (
            states,
            [run(["docker", "logs", "--tail", "20", c], check=False).stderr for c in containers],
        )
        time.sleep(1)


def haproxy_servers(stats_port: int) -> dict[str, dict[str, str]]:
    """HAProxy's per-server rows for the replicas backend, from its CSV stats page."""
    url = f"http://127.0.0.1:{stats_port}/stats;csv"
    with urllib.request.urlopen(url, timeout=5) as reply:
        text = reply.read().decode().lstrip("# ")
    rows = csv.DictReader(io.StringIO(text))
    return {
        r["svname"]: r
        for r in rows
        if r["pxname"] == "replicas" and r["svname"] not in ("FRONTEND", "BACKEND")
    }
