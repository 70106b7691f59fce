"""The serving path must not import torch (a serving install has none), and the checked-in stubs
must match the .proto."""

from __future__ import annotations

import filecmp
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVING_MODULES = tuple(
    f"stn_align.service.{name}"
    for name in (
        "server", "servicer", "pipeline", "client", "rectify", "commands", "models", "batching",
        "imageio", "warp", "interceptors", "config", "logs",
    )
)  # fmt: skip


def test_serving_modules_do_not_import_torch(model_dir):
    code = (
        "import sys\n"
        f"for name in {SERVING_MODULES!r}: __import__(name)\n"
        "from stn_align.service.pipeline import Pipeline\n"
        f"Pipeline.from_dir({str(model_dir)!r}).close()\n"  # loading models and onnxruntime too
        "print('torch' in sys.modules, 'onnxruntime' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "True"]


def test_command_module_imports_nothing_heavy():
    heavy = ("torch", "onnxruntime", "grpc", "cv2")
    code = (
        "import sys, stn_align.service.commands; "
        f"print(sorted(m for m in {heavy} if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not available")
def test_checked_in_stubs_match_the_proto(tmp_path):
    subprocess.run(
        ["bash", str(ROOT / "scripts" / "gen_protos.sh"), str(tmp_path)],
        check=True, capture_output=True, env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    for name in ("alignment_pb2.py", "alignment_pb2.pyi", "alignment_pb2_grpc.py"):
        assert filecmp.cmp(tmp_path / name, ROOT / "service" / "proto" / name, shallow=False), (
            f"service/proto/{name} is stale: run scripts/gen_protos.sh"
        )
