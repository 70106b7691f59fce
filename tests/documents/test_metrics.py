"""Metrics on hand-made predictions."""

import math

import numpy as np
import pytest

from stn_align.training.documents import metrics


def test_angle_error_wraps_around_the_circle():
    assert metrics.angle_error(179.0, -179.0) == pytest.approx(2.0)
    assert metrics.angle_error(-90.0, 90.0) == pytest.approx(180.0)
    assert metrics.angle_error(10.5, 10.0) == pytest.approx(0.5)
    assert metrics.angle_error(None, 3.0) == 180.0
    assert metrics.angle_error(math.nan, 3.0) == 180.0


def test_rotation_summary_by_hand():
    # Ten pages: errors chosen so every figure can be checked by eye.
    errors = [0.05, 0.08, 0.2, 0.3, 0.4, 0.6, 0.9, 2.0, 50.0, 180.0]
    s = metrics.rotation_summary(errors, seconds=5.0, failed=1)
    assert s["count"] == 10 and s["failed"] == 1
    assert s["orientation_accuracy"] == pytest.approx(0.8)
    assert s["mae_deg"] == pytest.approx(sum(errors) / 10)
    assert s["top80_deg"] == pytest.approx(sum(errors[:8]) / 8)
    assert s["median_deg"] == pytest.approx((0.4 + 0.6) / 2)
    assert s["within_0.1"] == pytest.approx(0.2)
    assert s["within_0.5"] == pytest.approx(0.5)
    assert s["within_1"] == pytest.approx(0.7)
    assert s["worst_deg"] == 180.0
    assert s["pages_per_s"] == pytest.approx(2.0)


def test_corner_error_in_percent_of_diagonal():
    truth = np.array([[0, 0], [300, 0], [300, 400], [0, 400]], float)  # diagonal 500
    shifted = truth + np.array([5.0, 0.0])  # every corner 5 px off: 1% of the diagonal
    assert metrics.corner_error(shifted, truth) == pytest.approx(1.0)
    assert metrics.corner_error(truth, truth) == 0.0
    assert metrics.corner_error(None, truth) == 100.0


def test_corner_summary_by_hand():
    s = metrics.corner_summary([0.5, 1.0, 1.5, 3.0, 10.0], seconds=2.0)
    assert s["mean_pct"] == pytest.approx(3.2)
    assert s["median_pct"] == pytest.approx(1.5)
    assert s["within_1pct"] == pytest.approx(0.4)
    assert s["within_2pct"] == pytest.approx(0.6)
    assert s["top80_pct"] == pytest.approx(1.5)  # the best 4 of 5
    assert s["worst_pct"] == 10.0
    assert s["pages_per_s"] == pytest.approx(2.5)


def test_empty_errors_are_an_error():
    with pytest.raises(ValueError):
        metrics.rotation_summary([], 1.0)


def test_table_has_a_row_per_method():
    rows = {"a": metrics.rotation_summary([1.0], 1.0), "b": metrics.rotation_summary([2.0], 1.0)}
    text = metrics.format_table(rows, metrics.ROTATION_COLUMNS)
    assert text.count("\n") == 3 and "| a |" in text and "| b |" in text


def test_grid_error_in_percent_of_diagonal():
    truth = np.zeros(32)
    shifted = np.tile([0.02, 0.0], 16)  # every control point 1% of the width to the right
    # A TPS through displaced control points moves every point alike: 0.01 * 300 px = 3 px.
    assert metrics.grid_error(shifted, truth, (400, 300)) == pytest.approx(3 / 500 * 100)
    assert metrics.grid_error(truth, truth, (400, 300)) == 0.0
    assert metrics.grid_error(None, truth, (400, 300)) == 100.0
    assert metrics.grid_error(np.full(32, np.nan), truth, (400, 300)) == 100.0
