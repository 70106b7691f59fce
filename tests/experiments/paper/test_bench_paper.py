"""Smoke test of `stn bench paper`: the real command path with tiny steps; no accuracy claims."""

import json
import re
from pathlib import Path

import pytest

DATA = Path("../shared/data/cluttered-mnist/mnist_cluttered_40x40.npz")

pytestmark = pytest.mark.skipif(not DATA.is_file(), reason=f"cluttered MNIST not found at {DATA}")


def test_bench_paper_smoke(tmp_path):
    from stn_align.experiments.paper.benchmark import experiments
    from stn_align.service.cli import main

    out, report = tmp_path / "runs", tmp_path / "docs"
    report.mkdir()
    (report / "paper-benchmark.md").write_text("# Title\n\nhand-written text\n")
    assert main(["bench", "paper", "--smoke", "--out", str(out), "--report", str(report)]) == 0

    text = (report / "paper-benchmark.md").read_text()
    assert text.startswith("# Title\n\nhand-written text\n")  # prose around the block is kept
    assert text.count("<!-- bench-paper:start -->") == 1
    names = experiments(20)
    for exp in names:
        if exp.group == "rotation":
            continue
        row = next(line for line in text.splitlines() if line.startswith(f"| {exp.label} |"))
        mean, std = (float(v) for v in re.findall(r"(\d+\.\d+) ± (\d+\.\d+)", row)[0])
        assert 0 <= mean <= 100 and 0 <= std <= 100
    rot_rows = [line for line in text.splitlines() if "rot. +-45 |" in line]
    assert len(rot_rows) == 2 and all(line.count("±") == 5 for line in rot_rows)

    results = json.loads((out / "results.json").read_text())
    assert {r["name"] for r in results} == {e.name for e in names}
    for entry in results:
        assert [r["seed"] for r in entry["runs"]] == [0, 1]
        for run in entry["runs"]:
            assert all(0.0 <= e <= 1.0 for e in run["test_errors"].values())
            assert (out / entry["name"] / f"seed{run['seed']}" / "ckpt.pt").is_file()
    figures = report / "figures" / "paper"
    for name in ("training-curves", "panel-st-affine", "panel-st-tps", "rotation-generalisation"):
        png = figures / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"figures/paper/{name}.png" in text

    # A second call reuses every finished run rather than training again.
    before = (out / "cnn" / "seed0" / "ckpt.pt").stat().st_mtime_ns
    assert (
        main(
            [
                "bench",
                "paper",
                "--smoke",
                "--out",
                str(out),
                "--report",
                str(report),
                "--only",
                "cnn,fcn",
                "--skip-followups",
            ]
        )
        == 0
    )
    assert (out / "cnn" / "seed0" / "ckpt.pt").stat().st_mtime_ns == before
    assert (report / "paper-benchmark.md").read_text().count("<!-- bench-paper:start -->") == 1
