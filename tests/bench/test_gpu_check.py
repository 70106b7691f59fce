"""bench/gpu_check.py's own dry run: every step of the GPU check, on the CPU provider."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


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
