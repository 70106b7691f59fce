"""Choosing the execution provider: CUDA is probed once, quietly, and start-up says in one line
which provider is in use and why."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from stn_align.service.models import CPU, CUDA, ModelError, load_repository, probe_cuda

ROOT = Path(__file__).resolve().parents[2]

START = """
import sys
from stn_align.service.logs import configure
configure("INFO", "json")
from stn_align.service.models import load_repository
models = load_repository(sys.argv[1], None, sys.argv[2])
print(sorted({m.provider for m in models.values()}))
"""


def _start(model_dir: Path, device: str) -> subprocess.CompletedProcess:
    # A fresh process: the probe runs once per process, and onnxruntime writes to fd 2 directly.
    return subprocess.run(
        [sys.executable, "-c", START, str(model_dir), device],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _events(stderr: str) -> list[dict]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def test_start_up_is_quiet_and_names_the_provider_once(model_dir):
    out = _start(model_dir, "auto")
    assert out.returncode == 0, out.stderr
    # Everything on stderr is our JSON log: no onnxruntime error lines, no preload messages.
    assert "[E:onnxruntime" not in out.stderr and "Failed to load" not in out.stderr + out.stdout
    assert all(line.startswith("{") for line in out.stderr.splitlines()), out.stderr
    (chosen,) = [e for e in _events(out.stderr) if e["message"] == "execution provider"]
    assert chosen["provider"] in (CUDA, CPU) and chosen["why"]
    assert repr([chosen["provider"]]) in out.stdout  # every model is on the provider announced
    if chosen["provider"] == CPU:
        assert chosen["why"] != "CUDA bound"
        assert chosen["level"] == ("WARNING" if Path("/dev/nvidia0").exists() else "INFO")


def test_device_cpu_skips_the_probe(model_dir):
    out = _start(model_dir, "cpu")
    assert out.returncode == 0, out.stderr
    (chosen,) = [e for e in _events(out.stderr) if e["message"] == "execution provider"]
    assert chosen["provider"] == CPU and chosen["why"] == "device=cpu"


def test_device_cuda_without_cuda_fails_with_the_reason(model_dir):
    probe = probe_cuda(sorted(model_dir.glob("*.onnx"))[0])
    if probe.bound:
        pytest.skip("CUDA binds on this machine; the failure path cannot be shown")
    with pytest.raises(ModelError, match="did not bind: " + probe.reason.split("(")[0]):
        load_repository(model_dir, ["doc-rotation"], "cuda")
    assert probe_cuda(model_dir / "any.onnx") is probe  # once per process


@pytest.mark.gpu
def test_cuda_sessions_keep_float32_and_the_heuristic_cudnn_search(model_dir):
    """onnxruntime accepted both CUDA options (an unknown option name would fail the session)."""
    if not probe_cuda(model_dir / "doc-rotation.onnx").bound:
        pytest.skip("no CUDA device bound (no GPU, or CUDA libraries missing)")
    model = load_repository(model_dir, ["doc-rotation"], "cuda")["doc-rotation"]
    options = model.session.get_provider_options()[CUDA]
    assert options["use_tf32"] == "0"
    assert options["cudnn_conv_algo_search"] in ("HEURISTIC", "1")  # by name or enum value
