"""`stn evaluate` plumbing on small made-up pages: seeded copies, scoring, outputs, CLI errors."""

import csv
import json

import cv2
import numpy as np
import pytest

from stn_align.service.cli import main
from stn_align.training.documents import eval_pages, evaluate
from stn_align.training.documents.layout import render_page


@pytest.fixture(scope="module")
def pages_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pages")
    rows = []
    for i, angle in enumerate((0.0, 3.0)):
        page = render_page(100 + i)
        page = cv2.resize(page, None, fx=0.4, fy=0.4, interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(folder / f"p{i}.png"), page)
        rows.append((f"p{i}.png", angle))
    with (folder / "truth.csv").open("w", newline="") as f:
        csv.writer(f).writerows([("file", "content_angle"), *rows])
    return folder


def test_rotation_samples_are_seeded_and_truthful(pages_dir):
    a = list(eval_pages.rotation_samples(pages_dir, 3, seed=1))
    b = list(eval_pages.rotation_samples(pages_dir, 3, seed=1))
    c = list(eval_pages.rotation_samples(pages_dir, 3, seed=2))
    assert len(a) == 6
    assert [s.applied for s in a] == [s.applied for s in b] != [s.applied for s in c]
    for s in a:
        content = 3.0 if s.source == "p1.png" else 0.0
        assert -180 < s.truth_angle <= 180
        assert abs((s.truth_angle - content - s.applied + 180) % 360 - 180) < 1e-9
        assert -180 <= s.applied < 180


def test_zero_rotations_scores_pages_as_they_are(pages_dir):
    samples = list(eval_pages.rotation_samples(pages_dir, 0, seed=0))
    assert [s.truth_angle for s in samples] == [0.0, 3.0]
    assert all(s.applied == 0.0 for s in samples)


def test_perspective_mode_with_the_contour_peer(pages_dir):
    report = evaluate.evaluate(
        pages_dir,
        None,
        mode="perspective",
        rotations=2,
        seed=0,
        use_peers=True,
        peer_names=["contour + 4 corners (OpenCV)"],
        progress=False,
    )
    summary = report["summary"]["contour + 4 corners (OpenCV)"]
    assert summary["count"] == 4
    rows = report["predictions"]["contour + 4 corners (OpenCV)"]
    assert len(rows) == 4 and all(len(r["true_corners"]) == 4 for r in rows)
    assert summary["mean_pct"] == pytest.approx(
        np.mean([r["corner_error_pct"] for r in rows]), abs=1e-3
    )


def test_cli_writes_results_and_predictions(pages_dir, tmp_path):
    out, preds = tmp_path / "out", tmp_path / "preds.csv"
    code = main(
        [
            "evaluate",
            str(pages_dir),
            "--mode",
            "perspective",
            "--rotations",
            "1",
            "--peers",
            "--peer",
            "contour + 4 corners (OpenCV)",
            "--out",
            str(out),
            "--predictions",
            str(preds),
        ]
    )
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert results["mode"] == "perspective" and results["rotations"] == 1
    assert (out / "errors.png").stat().st_size > 0
    with preds.open() as f:
        assert len(list(csv.DictReader(f))) == 2


def test_cli_errors_are_clear(tmp_path, capsys):
    # A model is named, so the run gets as far as reading DIR (with or without peers installed).
    assert main(["evaluate", str(tmp_path), "--model", "doc-rotation"]) == 2
    assert "truth.csv" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path)]) == 2
    assert "nothing to score" in capsys.readouterr().err


def test_dewarp_mode_scores_the_identity_beside_the_model(pages_dir):
    from stn_align.training.documents import metrics

    a = list(eval_pages.dewarp_samples(pages_dir, 2, seed=1))
    b = list(eval_pages.dewarp_samples(pages_dir, 2, seed=1))
    assert len(a) == 4
    assert all(np.array_equal(x.truth_params, y.truth_params) for x, y in zip(a, b, strict=True))
    report = evaluate.evaluate(pages_dir, None, mode="dewarp", rotations=2, seed=1, progress=False)
    rows = report["predictions"]["no dewarping"]
    want = [metrics.grid_error(np.zeros(32), s.truth_params, s.image.shape[:2]) for s in a]
    assert [r["grid_error_pct"] for r in rows] == pytest.approx(want, abs=1e-4)
    assert report["summary"]["no dewarping"]["mean_pct"] == pytest.approx(np.mean(want), abs=1e-3)
    assert min(want) > 0.0


def test_a_bad_second_read_setting_is_named(pages_dir, capsys):
    args = ["evaluate", str(pages_dir), "--model", "doc-rotation", "--second-read-below", "2"]
    assert main(args) == 2
    assert "second_read_below" in capsys.readouterr().err
