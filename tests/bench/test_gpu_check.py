"""bench/gpu_check.py's own dry run: every step of the GPU check, on the CPU provider."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench import gpu_check
from stn_align.service.models import CPU, CUDA

ROOT = Path(__file__).resolve().parents[2]


def node(op: str, provider: str, **outputs: list[int]) -> dict:
    args = {"op_name": op, "provider": provider, "output_type_shape": [outputs]}
    return {"cat": "Node", "name": f"/{op}_kernel_time", "args": args}


def test_placement_allows_shape_arithmetic_off_the_gpu_but_not_tensor_data():
    events = [
        node("Conv", CUDA, float=[8, 16, 96, 96]),
        node("Gather", CPU, int64=[]),
        node("Concat", CPU, int64=[4]),
        node("Resize", CPU, float=[8, 1, 64, 64]),
        {"cat": "Session", "name": "model_run", "args": {}},
    ]
    bad, small = gpu_check.misplaced_nodes(events, CUDA)
    assert bad == ["Resize /Resize [32768]"]
    assert small == 2


def test_placement_reads_a_real_profile(tmp_path, monkeypatch):
    """A CPU run's profile, read as if the GPU had been asked for: the convolutions are flagged."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    x = np.zeros((1, 384, 384, 1), np.uint8)
    path = ROOT / "exported" / "doc-perspective.onnx"
    bad, _ = gpu_check.placement(path, CPU, lambda s: s.run(["theta"], {"image": x}))
    assert bad == []
    profiled = gpu_check.session(path, CPU, profile=True)
    profiled.run(["theta"], {"image": x})
    trace = Path(profiled.end_profiling())
    bad, _ = gpu_check.misplaced_nodes(json.loads(trace.read_text()), CUDA)
    assert any(b.startswith("Conv ") for b in bad)
    assert list(tmp_path.iterdir()) == [trace]  # placement() removed its own trace


@pytest.mark.slow
def test_gpu_check_dry_run_passes_and_says_it_is_no_gpu_figure(tmp_path):
    out = tmp_path / "gpu_check.md"
    run = subprocess.run(
        [sys.executable, "-m", "bench.gpu_check", "--dry-run", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    report = out.read_text()
    assert "DRY RUN on the CPU provider: not GPU figures" in report
    for model in ("doc-rotation", "doc-perspective", "doc-dewarp"):
        assert f"| {model} | localiser on CPUExecutionProvider (dry run) | ok:" in report
        assert (
            f"| {model} | warper on CPUExecutionProvider (dry run), I/O binding on cpu | ok:"
            in (report)
        )
        assert f"| {model} | 2 |" in report  # a throughput row per batch size
    assert "| 1 |" in report and "| 2 |" in report  # pages/s per concurrency level
    assert "Checks passed" in report
