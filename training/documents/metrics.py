"""Scores for document alignment: angle errors, page-corner errors and dewarping grid errors, and
their summaries.

A method that gives no answer for an image (a peer that found no text, no page outline) is scored
with the worst possible error (180 degrees, or 100% of the diagonal) and counted in `failed`.
"""

from __future__ import annotations

import math

import numpy as np

from stn_align.core import geometry
from stn_align.core.geometry import wrap_degrees

WORST_ANGLE = 180.0
WORST_CORNER = 100.0


def angle_error(predicted: float | None, truth: float) -> float:
    """Absolute angle difference in degrees, on the circle (0 to 180)."""
    if predicted is None or not math.isfinite(predicted):
        return WORST_ANGLE
    return abs(float(wrap_degrees(predicted - truth)))


def corner_error(predicted: np.ndarray | None, truth: np.ndarray) -> float:
    """Mean distance between predicted and true corners (4x2, pixels), as % of the page diagonal.

    The diagonal is the mean length of the true quad's two diagonals, so the score means the same
    on a page shot close up or from afar.
    """
    truth = np.asarray(truth, dtype=np.float64).reshape(4, 2)
    if predicted is None:
        return WORST_CORNER
    predicted = np.asarray(predicted, dtype=np.float64).reshape(4, 2)
    if not np.all(np.isfinite(predicted)):
        return WORST_CORNER
    diagonal = (np.linalg.norm(truth[2] - truth[0]) + np.linalg.norm(truth[3] - truth[1])) / 2.0
    return float(np.linalg.norm(predicted - truth, axis=1).mean() / diagonal * 100.0)


def grid_error(predicted, truth, hw: tuple[int, int], tps_grid: int = 4, points: int = 16) -> float:
    """Mean distance between where the predicted and the true thin-plate splines send a
    points x points grid of output points (pixels of an image of size hw), as % of its diagonal."""
    if predicted is None:
        return WORST_CORNER
    predicted = np.asarray(predicted, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(predicted)):
        return WORST_CORNER
    grid = geometry.axis_grid((points, points)).reshape(-1, 2)
    h, w = hw
    scale = np.array([w / 2.0, h / 2.0])
    moved = geometry.tps_points(predicted, tps_grid, grid) - geometry.tps_points(
        np.asarray(truth, dtype=np.float64), tps_grid, grid
    )
    return float(np.linalg.norm(moved * scale, axis=1).mean() / math.hypot(h, w) * 100.0)


def top_mean(errors: np.ndarray, share: float = 0.8) -> float:
    """Mean over the best `share` of the errors (TOP80 for 0.8); at least one value."""
    ordered = np.sort(errors)
    keep = max(1, math.ceil(share * len(ordered)))
    return float(ordered[:keep].mean())


def rotation_summary(errors, seconds: float, failed: int = 0, skew_ok=None) -> dict:
    """Orientation accuracy, MAE, TOP80, median, shares within 0.1/0.5/1 degree, worst, pages/s.

    `skew_ok` (one bool per error, default all True): the images whose true skew is trusted. The
    orientation is scored on every image, the skew figures only on those (`count_skew`)."""
    e = np.asarray(errors, dtype=np.float64)
    if e.size == 0:
        raise ValueError("no errors to summarise")
    trusted = np.ones(e.size, bool) if skew_ok is None else np.asarray(skew_ok, bool)
    s = e[trusted] if trusted.any() else np.array([np.nan])
    return {
        "count": int(e.size),
        "count_skew": int(trusted.sum()),
        "failed": int(failed),
        "orientation_accuracy": float((e < 45.0).mean()),
        "mae_deg": float(s.mean()),
        "top80_deg": top_mean(s, 0.8),
        "median_deg": float(np.median(s)),
        "within_0.1": float((s <= 0.1).mean()),
        "within_0.5": float((s <= 0.5).mean()),
        "within_1": float((s <= 1.0).mean()),
        "worst_deg": float(s.max()),
        "pages_per_s": float(e.size / seconds) if seconds > 0 else float("nan"),
    }


def calibration(right, confidence, threshold: float) -> dict:
    """How a confidence serves as a threshold: the share of images at or above it (`kept`) and
    the share of those whose orientation is right (`right_when_kept`; NaN when none is kept)."""
    right = np.asarray(right, bool)
    confidence = np.asarray(confidence, np.float64)
    kept = confidence >= threshold
    return {
        "threshold": float(threshold),
        "kept": float(kept.mean()) if kept.size else float("nan"),
        "right_when_kept": float(right[kept].mean()) if kept.any() else float("nan"),
        "wrong_when_kept": int((~right[kept]).sum()),
        "count": int(right.size),
    }


def reliability(right, confidence, bins=(0.25, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99, 0.999, 1.0)):
    """Rows (low, high, images, mean confidence, share right) of confidence bins, for a
    reliability curve: a calibrated confidence sits on the diagonal."""
    right = np.asarray(right, bool)
    confidence = np.asarray(confidence, np.float64)
    rows = []
    edges = [0.0, *bins]
    for low, high in zip(edges[:-1], edges[1:], strict=True):
        inside = (confidence >= low) & ((confidence < high) | (high == edges[-1]))
        if inside.any():
            rows.append(
                (low, high, int(inside.sum()), float(confidence[inside].mean()),
                 float(right[inside].mean()))
            )  # fmt: skip
    return rows


def corner_summary(errors, seconds: float, failed: int = 0) -> dict:
    """Corner error (% of diagonal): mean, TOP80, median, share within 1% and 2%, worst, pages/s."""
    e = np.asarray(errors, dtype=np.float64)
    if e.size == 0:
        raise ValueError("no errors to summarise")
    return {
        "count": int(e.size),
        "failed": int(failed),
        "mean_pct": float(e.mean()),
        "top80_pct": top_mean(e, 0.8),
        "median_pct": float(np.median(e)),
        "within_1pct": float((e <= 1.0).mean()),
        "within_2pct": float((e <= 2.0).mean()),
        "worst_pct": float(e.max()),
        "pages_per_s": float(e.size / seconds) if seconds > 0 else float("nan"),
    }


ROTATION_COLUMNS = (
    ("orientation_accuracy", "Orientation", "pct"),
    ("median_deg", "Median", "deg"),
    ("mae_deg", "MAE", "deg"),
    ("top80_deg", "TOP80", "deg"),
    ("within_0.1", "<=0.1", "pct"),
    ("within_0.5", "<=0.5", "pct"),
    ("within_1", "<=1", "pct"),
    ("worst_deg", "Worst", "deg"),
    ("pages_per_s", "Pages/s", "rate"),
)
CORNER_COLUMNS = (
    ("mean_pct", "Mean err %diag", "num"),
    ("median_pct", "Median %diag", "num"),
    ("top80_pct", "TOP80 %diag", "num"),
    ("within_1pct", "<=1%", "pct"),
    ("within_2pct", "<=2%", "pct"),
    ("worst_pct", "Worst %diag", "num"),
    ("pages_per_s", "Pages/s", "rate"),
)


def format_table(rows: dict[str, dict], columns, first: str = "Method") -> str:
    """A Markdown table, one row per method (or per kind, script: `first` names the column)."""
    head = f"| {first} | " + " | ".join(title for _, title, _ in columns) + " | n |"
    rule = "|---|" + "---|" * (len(columns) + 1)
    lines = [head, rule]
    for name, summary in rows.items():
        cells = []
        for key, _, kind in columns:
            v = summary[key]
            if kind == "pct":
                cells.append(f"{100 * v:.1f}%")
            elif kind == "deg":
                cells.append(f"{v:.2f}°")
            elif kind == "rate":
                cells.append(f"{v:.2f}")
            elif kind == "int":
                cells.append(str(int(v)))
            else:
                cells.append(f"{v:.2f}")
        count = str(summary["count"])
        if summary.get("count_skew", summary["count"]) != summary["count"]:
            count += f" ({summary['count_skew']} skew)"
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {count} |")
    return "\n".join(lines)
