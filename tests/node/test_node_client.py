"""The API from outside Python: a Node.js client (@grpc/grpc-js + @grpc/proto-loader, loading the
.proto at run time) calls Align on a real server. Skips, with the reason, when node or npm is
missing or the npm registry cannot be reached."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "service"))

import service_testlib  # noqa: E402

from stn_align.service.config import ServiceConfig  # noqa: E402
from stn_align.service.server import create_server  # noqa: E402


def _node_modules() -> None:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node or npm is not installed")
    if (HERE / "node_modules" / "@grpc" / "grpc-js").is_dir() and (
        HERE / "node_modules" / "@grpc" / "proto-loader"
    ).is_dir():
        return
    try:
        out = subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--no-package-lock"],
            cwd=HERE, capture_output=True, text=True, timeout=240,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        pytest.skip("npm install took over 240 s (registry unreachable?)")
    if out.returncode != 0:
        pytest.skip(f"npm install failed (registry unreachable?): {out.stderr.strip()[-300:]}")


def test_node_client_calls_align(tmp_path):
    _node_modules()
    service_testlib.build(tmp_path / "doc-rotation.onnx", "rotation", size=32, channels=3)
    config = ServiceConfig(model_dir=str(tmp_path), device="cpu", metrics_port=0, warmup_runs=1)
    handle, port = create_server("127.0.0.1:0", config)
    image = tmp_path / "page.png"
    cv2.imwrite(str(image), np.full((64, 64, 3), 168, np.uint8))
    try:
        script = str(HERE / "align_client.js")
        out = subprocess.run(
            ["node", script, f"127.0.0.1:{port}", str(image), "doc-rotation"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    finally:
        handle.drain(0, 1)
    assert out.returncode == 0, out.stderr
    reply = json.loads(out.stdout)
    assert reply["models"] == [
        {"name": "doc-rotation", "family": "rotation", "provider": "CPUExecutionProvider"}
    ]
    assert reply["id"] == "node-1" and reply["model"] == "doc-rotation"
    assert reply["angle_degrees"] == pytest.approx(20.0, abs=1e-3)
    assert len(reply["theta"]) == 2 and len(reply["matrix"]) == 9
    assert reply["rectified"] == {"width": 64, "height": 64, "png_signature": "PNG"}
