"""bench/cuda_options.py runs every variant (on the CPU here, where the options do nothing) and
leaves the service's CUDA options as it found them."""

from __future__ import annotations

from bench import cuda_options
from stn_align.service import models


def test_every_variant_runs_and_the_service_options_are_restored(capsys):
    before = dict(models.CUDA_OPTIONS)
    assert cuda_options.main(["--calls", "2", "--concurrency", "1"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    assert len(rows) == 1 + len(cuda_options.VARIANTS)  # the header, then one row each
    for row, (name, _, _) in zip(rows[1:], cuda_options.VARIANTS, strict=True):
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[0] == name and cells[1] == "CPUExecutionProvider"
        assert float(cells[-1]) > 0  # pages/s at concurrency 1
    after = models.CUDA_OPTIONS
    assert after == before
    assert cuda_options.EXHAUSTIVE["cudnn_conv_algo_search"] == "EXHAUSTIVE"
