"""`stn evaluate --mode perspective` on phone photos (the default recipe): real pages photographed
by photos.py with the evaluation recipe, scored per condition.

    samples = phone_samples(Path("../shared/data/pages"), count=4, seed=0, split="val")
    samples = phone_samples(Path("../shared/data/documents"), count=4, seed=0)  # truth.csv

DIR is either the real page bank (it has pages.csv: the photos are of `split`'s pages, by source,
configs/pages-split.toml) or a folder with truth.csv (every page, e.g. the test set). Each page is
photographed `count` times, seeded by (seed, page index), at 1000-1600 px on the longer side;
`blank` photos with no page (a desk, a wall) are added to score the corner confidence.

Two scores per photo: the outline (the corners matched up to a cyclic shift, as a page's outline
does not say which corner is which) and the labelled corners (TL, TR, BR, BL in the photo's order,
perspective_model's convention: TL is the corner from which the next edge clockwise runs most
nearly to the right in the photo's normalised frame). `condition_table` prints both per condition
(shadow, turn, coverage, corners out of frame, glare, blur, held-out desk) beside the peers.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from stn_align.core import geometry
from stn_align.training.documents import metrics, photos, textures
from stn_align.training.documents.real_pages import load_pages, split_pages

LONG_SIDES = (1000, 1600)


@dataclass
class Photo:
    """One evaluation photo (the fields eval_pages.Sample has for perspective mode)."""

    name: str  # e.g. "page.png@3" for the page's 3rd photo, "blank@2" for a photo with no page
    source: str
    image: np.ndarray  # RGB uint8
    truth_corners: np.ndarray | None  # 4x2 pixels, the page's own TL, TR, BR, BL; None: no page
    conditions: dict


def _rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"cannot read image {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _shrink(image: np.ndarray, longest: int) -> np.ndarray:
    scale = longest / max(image.shape[:2])
    if scale >= 1:
        return image
    return cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)


def _truth_names(folder: Path) -> list[str]:
    path = folder / "truth.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: DIR must hold truth.csv or pages.csv")
    with path.open(newline="") as f:
        return [row["file"] for row in csv.DictReader(f)]


def photo_order(corners: np.ndarray, hw) -> np.ndarray:
    """Corners (4, 2) in pixels, clockwise -> relabelled in the photo's order (NumPy twin of
    perspective_model.photo_order, in the photo's normalised frame)."""
    corners = np.asarray(corners, dtype=np.float64).reshape(4, 2)
    axis = geometry.apply_matrix(geometry.pixel_to_axis(hw), corners)
    scores = []
    for k in range(4):
        r = np.roll(axis, -k, axis=0)
        along = (r[1] - r[0]) + (r[2] - r[3])
        scores.append(along[0] / max(1e-12, float(np.hypot(*along))))
    return np.roll(corners, -int(np.argmax(scores)), axis=0)


def outline_error(predicted, truth) -> float:
    """metrics.corner_error at the best cyclic shift of the predicted corners."""
    if predicted is None:
        return metrics.WORST_CORNER
    predicted = np.asarray(predicted, dtype=np.float64).reshape(4, 2)
    return min(metrics.corner_error(np.roll(predicted, -k, axis=0), truth) for k in range(4))


def labelled_error(predicted, truth, hw) -> float:
    """metrics.corner_error against the true corners in the photo's order."""
    return metrics.corner_error(predicted, photo_order(truth, hw))


def page_images(folder: Path, split: str) -> list[tuple[str, np.ndarray]]:
    """(name, RGB page) for every page to photograph: a split of the real bank, or truth.csv's."""
    if (folder / "pages.csv").is_file():
        records = split_pages(load_pages(folder), split)
        return [(r.path.name, _rgb(r.path)) for r in records]
    return [(name, _rgb(folder / name)) for name in _truth_names(folder)]


def phone_samples(
    folder: Path, count: int, seed: int, split: str = "val", blank: int = 0, only=None
):
    """Yield Photos: `count` of each page, then `blank` with no page (truth_corners None).
    `only` (a set of file names) limits the pages; the seeds stay those of the full list."""
    pages = page_images(folder, split)
    sheets = [_shrink(image, 640) for _, image in pages[:: max(1, len(pages) // 8)]]
    for index, (name, page) in enumerate(pages):
        if only is not None and name not in only:
            continue
        rng = np.random.default_rng([seed, index, 3])
        for k in range(max(1, count)):
            long_side = rng.uniform(*LONG_SIDES)
            shown = _shrink(page, int(long_side * 1.3))
            photo, quad, conditions = photos.phone_photo(shown, rng, long_side, "eval", sheets)
            yield Photo(f"{name}@{k}", name, photo, quad, conditions)
    for k in range(blank):
        rng = np.random.default_rng([seed, 10**6 + k, 3])
        photo, conditions = photos.blank_photo(rng, rng.uniform(*LONG_SIDES), "eval")
        yield Photo(f"blank@{k}", "blank", photo, None, conditions)


def sample_count(folder: Path, count: int, split: str, blank: int) -> int:
    if (folder / "pages.csv").is_file():
        pages = len(split_pages(load_pages(folder), split))
    else:
        pages = len(_truth_names(folder))
    return pages * max(1, count) + blank


def conditions_of(c: dict) -> list[str]:
    """The condition buckets a photo falls in (one photo falls in several)."""
    turn = abs(float(c["turn"]))
    shadow = c["shadow"] != "none" and c["shadow_on_page"] > 0.02
    out = ["all photos"]
    out.append(
        f"shadow across the page, {c['shadow_edge']} edge" if shadow else "no shadow on the page"
    )
    if turn <= 15:
        out.append("turned within 15 degrees")
    elif turn <= 45:
        out.append("turned 15-45 degrees")
    elif turn <= 135:
        out.append("turned 45-135 degrees")
    else:
        out.append("turned over 135 degrees")
    cover = float(c["coverage"])
    if cover < 0.4:
        out.append("page under 40% of the frame")
    else:
        out.append("page 40-70% of the frame" if cover < 0.7 else "page over 70% of the frame")
    out.append("a corner out of frame" if c["corners_out"] else "all corners in frame")
    if c["glare"]:
        out.append("glare")
    if c["blur"] != "none":
        out.append(f"{c['blur']} blur")
    if c["desk"] in textures.HELD_OUT:
        out.append("held-out desk (marble, tiles, knit)")
    return out


def condition_rows(predictions: dict[str, list[dict]]) -> dict[str, dict[str, dict]]:
    """{condition: {method: summary}} from the per-photo predictions (photos with a page)."""
    table: dict[str, dict[str, dict]] = {}
    for method, rows in predictions.items():
        groups: dict[str, list[dict]] = {}
        for row in rows:
            if row.get("conditions") is None or row.get("outline_pct") is None:
                continue
            for name in conditions_of(row["conditions"]):
                groups.setdefault(name, []).append(row)
        for name, members in groups.items():
            outline = np.array([r["outline_pct"] for r in members])
            labelled = np.array([r["corner_error_pct"] for r in members])
            table.setdefault(name, {})[method] = {
                "count": len(members),
                "mean_pct": float(outline.mean()),
                "median_pct": float(np.median(outline)),
                "within_1pct": float((outline <= 1).mean()),
                "within_2pct": float((outline <= 2).mean()),
                "labelled_mean_pct": float(labelled.mean()),
            }
    return table


def condition_table(predictions: dict[str, list[dict]]) -> str:
    """Markdown: one row per condition, each method's outline mean, median, share within 2% and
    labelled mean side by side."""
    table = condition_rows(predictions)
    methods = list(predictions)
    head = (
        "| Condition | n | "
        + " | ".join(f"{m}: mean | median | <=2% | labelled mean" for m in methods)
        + " |"
    )
    rule = "|---|---|" + "---|---|---|---|" * len(methods)
    lines = [head, rule]
    for name, by_method in table.items():
        n = max(s["count"] for s in by_method.values())
        cells = []
        for m in methods:
            s = by_method.get(m)
            if s is None:
                cells.append("| | |")
                continue
            cells.append(
                f"{s['mean_pct']:.2f} | {s['median_pct']:.2f} | {100 * s['within_2pct']:.0f}% | "
                f"{s['labelled_mean_pct']:.2f}"
            )
        lines.append(f"| {name} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def blank_summary(predictions: dict[str, list[dict]], threshold: float) -> dict[str, dict]:
    """Per method that gives a confidence: on photos with no page, how many got the identity."""
    out = {}
    for method, rows in predictions.items():
        blanks = [r for r in rows if r.get("conditions") is not None and r["source"] == "blank"]
        confident = [r["confidence"] for r in blanks if r.get("confidence") is not None]
        if not confident:
            continue
        values = np.array(confident)
        out[method] = {
            "count": len(values),
            "median_confidence": float(np.median(values)),
            "identity_share": float((values < threshold).mean()),
        }
    return out
