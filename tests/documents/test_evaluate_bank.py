"""`stn evaluate` on a folder with the real bank's pages.csv: the split by source, the skew scored
only where it is trusted, the tables by kind and by script, and the calibration of a model's
orientation confidence (with its reliability figure)."""

import json

import numpy as np
import pytest

from stn_align.service.cli import main
from stn_align.training.documents import eval_pages, evaluate, metrics, report


def test_pages_csv_gives_kinds_scripts_and_the_split(tmp_path, monkeypatch, fake_bank):
    pages, split = fake_bank
    monkeypatch.setattr(eval_pages, "split_pages", _split_with(split))
    rows = eval_pages.read_table(pages)
    assert len(rows) == 6 and rows[0].kind == "book" and rows[0].content_angle == -0.3
    assert [r.skew_ok for r in rows[:2]] == [True, False] and rows[5].script == "none"
    val = eval_pages.split_files(pages, "val")
    assert val == {"002-book-p2.png", "005-book-p5.png"}
    samples = list(eval_pages.rotation_samples(pages, 2, seed=3, only=val))
    assert [s.source for s in samples] == ["002-book-p2.png"] * 2 + ["005-book-p5.png"] * 2
    # The seeds are those of the whole table: page 5's copies do not depend on the split.
    alone = list(eval_pages.rotation_samples(pages, 2, seed=3, only={"005-book-p5.png"}))
    assert [s.applied for s in alone] == [s.applied for s in samples[2:]]
    with pytest.raises(ValueError, match="pages.csv"):
        eval_pages.split_files(tmp_path, "val")


def _split_with(split_file):
    from stn_align.training.documents.real_pages import split_pages

    return lambda pages, side: split_pages(pages, side, split_file)


def test_skew_figures_use_only_trusted_pages():
    errors = [0.1, 0.2, 170.0, 5.0]
    summary = metrics.rotation_summary(errors, 1.0, 0, [True, True, True, False])
    assert summary["count"] == 4 and summary["count_skew"] == 3
    assert summary["orientation_accuracy"] == 0.75  # every image
    assert summary["median_deg"] == pytest.approx(0.2)  # the trusted ones only
    assert summary["worst_deg"] == 170.0


def test_calibration_and_reliability():
    right = np.array([True, True, False, True, False])
    confidence = np.array([0.99, 0.95, 0.9, 0.6, 0.3])
    found = metrics.calibration(right, confidence, 0.92)
    assert found["kept"] == pytest.approx(0.4) and found["right_when_kept"] == 1.0
    assert metrics.calibration(right, confidence, 0.85)["wrong_when_kept"] == 1
    bins = metrics.reliability(right, confidence)
    assert sum(b[2] for b in bins) == 5
    assert all(0 <= b[4] <= 1 for b in bins)


def test_breakdown_by_kind_and_script():
    result = evaluate.MethodResult()
    for kind, script, error, conf in (
        ("book", "latin", 0.1, 0.99),
        ("book", "latin", 179.0, 0.5),
        ("music", "none", 0.3, 0.97),
    ):
        result.errors.append(error)
        result.skew_ok.append(True)
        result.predictions.append(
            {"kind": kind, "script": script, "skew_ok": True, "confidence": conf}
        )
    found = report.breakdown({"m": result}, 0.9)
    assert found["by_kind"]["m"]["book"]["orientation_accuracy"] == 0.5
    assert found["by_script"]["m"]["none"]["count"] == 1
    assert found["calibration"]["m"]["right_when_kept"] == 1.0
    text = report.tables({"summary": {"m": metrics.rotation_summary([0.1], 1.0)}, **found})
    assert "m, by kind" in text and "| music |" in text and "Right among those" in text


def test_cli_scores_a_split_with_a_confident_model(tmp_path, monkeypatch, fake_bank):
    import stn_align.training.documents  # noqa: F401
    from stn_align.training.build import build_model
    from stn_align.training.config import ModelConfig
    from stn_align.training.export import export_model

    pages, split = fake_bank
    monkeypatch.setattr(eval_pages, "split_pages", _split_with(split))
    cfg = ModelConfig(family="rotation", localiser="doc", input_size=256, letterbox_fill=0)
    export_model(build_model(cfg), tmp_path / "models" / "doc-rotation.onnx")
    out = tmp_path / "out"
    args = ["evaluate", str(pages), "--split", "val", "--model", "doc-rotation"]
    args += ["--model-dir", str(tmp_path / "models"), "--rotations", "2", "--out", str(out)]
    assert main([*args, "--min-confidence", "0.5"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["split"] == "val" and results["summary"]["doc-rotation"]["count"] == 4
    assert results["calibration"]["doc-rotation"]["threshold"] == 0.5
    assert (out / "reliability.png").stat().st_size > 0
