"""Shared fixtures: tiny contract-honouring models (service_testlib.py) and a running server on a
loopback port."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import service_testlib  # noqa: E402

from stn_align.service.config import ServiceConfig  # noqa: E402


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("models")
    service_testlib.build(directory / "doc-rotation.onnx", "rotation", size=32, channels=3)
    service_testlib.build(directory / "doc-perspective.onnx", "projective", size=32, channels=1)
    return directory


@pytest.fixture(scope="session")
def base_config(model_dir) -> ServiceConfig:
    return ServiceConfig(
        model_dir=str(model_dir),
        device="cpu",
        metrics_port=0,
        warmup_runs=1,
        drain_delay_s=0.0,
        drain_grace_s=5.0,
        workers=80,
        log_format="text",
    )


@pytest.fixture(scope="session")
def server(base_config):
    from stn_align.service.server import create_server

    handle, port = create_server("127.0.0.1:0", base_config)
    yield handle, port
    handle.drain(0.0, 2.0)


@pytest.fixture
def client(server):
    from stn_align.service.client import AlignClient

    _, port = server
    with AlignClient(f"127.0.0.1:{port}", timeout=30) as c:
        yield c
