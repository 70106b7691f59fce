"""`stn evaluate`'s rotation report beyond the overall row: the same figures by kind of page and by
script (from the bank's pages.csv), and how well each method's confidence works as a threshold.

Pages/s is left out of the breakdowns (it is the whole run's); kinds and scripts are those of
pages.csv ("" for a truth.csv folder, which has one group).
"""

from __future__ import annotations

import numpy as np

from stn_align.training.documents import metrics

GROUPS = (("kind", "Kind"), ("script", "Script"))
BREAKDOWN_COLUMNS = tuple(c for c in metrics.ROTATION_COLUMNS if c[0] != "pages_per_s")
CALIBRATION_COLUMNS = (
    ("threshold", "Threshold", "num"),
    ("kept", "Share at or above", "pct"),
    ("right_when_kept", "Right among those", "pct"),
    ("wrong_when_kept", "Wrong among those", "int"),
)


def breakdown(results: dict, threshold: float) -> dict:
    """For each method (MethodResult with predictions): summaries by kind and by script, and
    for those that gave confidences, their calibration at `threshold` and reliability bins."""
    out: dict = {"by_kind": {}, "by_script": {}, "calibration": {}, "reliability": {}}
    for name, result in results.items():
        rows = result.predictions
        errors = np.asarray(result.errors, np.float64)
        for key, _ in GROUPS:
            groups: dict = {}
            for value in sorted({row[key] for row in rows}):
                inside = np.array([row[key] == value for row in rows])
                skew_ok = np.array([row["skew_ok"] for row in rows])[inside]
                groups[value or "all"] = metrics.rotation_summary(errors[inside], 0.0, 0, skew_ok)
            out[f"by_{key}"][name] = groups
        confidence = [row["confidence"] for row in rows]
        if rows and all(c is not None for c in confidence):
            right = errors < 45.0
            out["calibration"][name] = metrics.calibration(right, confidence, threshold)
            out["reliability"][name] = metrics.reliability(right, confidence)
    return out


def tables(found: dict) -> str:
    """Markdown: the overall table, then per method the tables by kind and by script, then the
    calibration of the methods that say how sure they are."""
    parts = [metrics.format_table(found["summary"], metrics.ROTATION_COLUMNS)]
    for key, title in GROUPS:
        for name, groups in found.get(f"by_{key}", {}).items():
            if len(groups) > 1:
                parts.append(f"{name}, by {key}:")
                parts.append(metrics.format_table(groups, BREAKDOWN_COLUMNS, title))
    calibration = found.get("calibration", {})
    if calibration:
        parts.append("Orientation confidence as a threshold (the answers at or above it):")
        parts.append(metrics.format_table(calibration, CALIBRATION_COLUMNS))
    return "\n\n".join(parts)
