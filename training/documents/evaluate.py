"""`stn evaluate`: score document models (and, with --peers, today's tools) on real pages.

Rotation mode: every page in DIR/truth.csv is turned by K seeded angles over the whole circle on an
expanded canvas (the border filled with the page's own edge tone) and each method's content angle
is compared with content_angle + applied angle. With K = 0 the pages are scored as they are.

Perspective mode: every page is laid on K seeded backgrounds under random homographies (the same
generator as training, see synth.py) and scored by the mean corner error in % of the page diagonal.

Dewarp mode: every upright page is bent by K seeded book curls (the generator of training, curl.py)
and scored by the mean distance between where the predicted and the true thin-plate splines send a
16 x 16 grid of points, in % of the page diagonal; "no dewarping" (the identity) is scored beside
the model, for scale.

Models are run through stn_align.service.pipeline.Pipeline, the code path the server and `stn
rectify` use, so the pages/s column is localise + warp as users get it (decode and page generation
excluded).
"""

from __future__ import annotations

import csv
import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from stn_align.core.geometry import identity_params
from stn_align.training.documents import metrics, peers, photo_eval, report
from stn_align.training.documents.eval_pages import (
    Sample,
    dewarp_samples,
    perspective_samples,
    read_table,
    rotation_samples,
    shrink,
    split_files,
)

log = logging.getLogger(__name__)

# Rotation peers get a copy at most this long: a 50 MP page (a 25 MP scan turned on an expanded
# canvas) keeps skimage's Hough transform and Tesseract busy for many minutes on a small machine.
# The shrink is timed with the peer and helps its speed, not ours.
PEER_MAX_SIDE = 2000


@dataclass
class MethodResult:
    errors: list[float] = field(default_factory=list)
    skew_ok: list[bool] = field(default_factory=list)  # rotation mode: per error
    predictions: list = field(default_factory=list)
    seconds: float = 0.0
    failed: int = 0


def model_method(pipeline, model: str, mode: str):
    """A method function for one exported model, through the service pipeline."""
    from stn_align.service.pipeline import AlignOptions

    options = AlignOptions(models=[model], encoding="raw")

    def run(image: np.ndarray):
        result = pipeline.align(image, options)
        answers = {"rotation": result.angle, "perspective": result.corners}
        answer = answers[mode] if mode in answers else result.stages[-1].theta
        confidence = (
            result.corner_confidence if mode == "perspective" else result.orientation_confidence
        )
        return answer, result.rectified, confidence

    return run


def peer_method(fn, longest: int):
    """A method function for a peer: its answer on a copy at most `longest` px long; a peer that
    says how sure it is returns (answer, confidence)."""

    def run(image: np.ndarray):
        answer = fn(shrink(image, longest))
        if isinstance(answer, tuple):
            return answer[0], None, answer[1]
        return answer, None, None

    return run


def evaluate(
    folder: str | Path,
    model: str | None,
    model_dir: str = "exported",
    mode: str = "rotation",
    rotations: int = 8,
    seed: int = 0,
    use_peers: bool = False,
    peer_names=None,
    contact: int = 8,
    progress: bool = True,
    page_edges: bool = True,
    recipe: str = "phone",
    split: str | None = None,
    blank: int = 0,
    threshold: float | None = None,
    second_read_below: float | None = None,
) -> dict:
    """Score the model (and peers) on the generated samples. Returns summaries (overall, and in
    rotation mode by kind and by script, and the calibration of the confidences at `threshold`,
    default the service's min_orientation_confidence), the per-sample predictions and a few
    before/after pairs for the contact sheet. The model's answers are its own, however unsure:
    the threshold is scored, not applied. `split`: one side of the bank's split (pages.csv).
    `second_read_below`: the service setting (None: its default)."""
    from stn_align.service.config import ServiceConfig

    folder = Path(folder)
    threshold = ServiceConfig().min_orientation_confidence if threshold is None else threshold
    methods: dict = {}
    pipeline = None
    if model:
        from stn_align.service.pipeline import Pipeline

        config = ServiceConfig(
            model_dir=model_dir, models=model, warmup_runs=1, min_orientation_confidence=0.0
        )
        if second_read_below is not None:
            config = config.replace(second_read_below=second_read_below)
        pipeline = Pipeline.from_dir(
            model_dir, config if page_edges else config.replace(page_edges="none")
        )
        pipeline.warmup(1)
        methods[model] = model_method(pipeline, model, mode)
    if mode == "dewarp":
        methods["no dewarping"] = lambda image: (identity_params("tps"), None, None)
    if use_peers:
        found = peers.available_peers(mode)
        if peer_names:
            found = {k: v for k, v in found.items() if k in peer_names}
        # Angles do not change with scale; corners would, so perspective peers see the full photo.
        longest = PEER_MAX_SIDE if mode == "rotation" else 10**9
        for name, fn in found.items():
            methods[name] = peer_method(fn, longest)
    if not methods:
        if use_peers:
            raise ValueError(
                "nothing to evaluate: no peer tool is installed (bash scripts/setup.sh --peers) "
                "and no --model was given"
            )
        raise ValueError("nothing to evaluate: give --model and/or --peers")
    makers: dict[str, Callable[..., Iterator[Sample]]] = {
        "rotation": rotation_samples,
        "perspective": perspective_samples,
        "dewarp": dewarp_samples,
    }
    phone = mode == "perspective" and recipe == "phone"
    if phone:
        split = split or "val"
        samples = photo_eval.phone_samples(folder, rotations, seed, split, blank)
        total = photo_eval.sample_count(folder, rotations, split, blank)
    else:
        only = split_files(folder, split)
        samples = makers[mode](folder, rotations, seed, only=only)
        total = (len(read_table(folder)) if only is None else len(only)) * max(1, rotations)
    results = {name: MethodResult() for name in methods}
    sheet: list[tuple[np.ndarray, np.ndarray | None, str]] = []
    try:
        for i, sample in enumerate(
            tqdm(samples, total=total, desc="evaluate", disable=not progress)
        ):
            for name, method in methods.items():
                t = time.perf_counter()
                confidence = None
                try:
                    answer, rectified, confidence = method(sample.image)
                except Exception as err:  # a peer crashing on one page fails that page only
                    answer, rectified, confidence = None, None, None
                    log.warning("%s failed on %s: %s", name, sample.name, err)
                results[name].seconds += time.perf_counter() - t
                if phone:
                    _score_photo(results[name], sample, answer, confidence)
                else:
                    _score(results[name], sample, answer, mode, confidence)
                if name == model and len(sheet) < contact and i % max(1, total // contact) == 0:
                    sheet.append(
                        (
                            _thumb(sample.image),
                            None if rectified is None else _thumb(rectified),
                            sample.name,
                        )
                    )
    finally:
        if pipeline is not None:
            pipeline.close()
    corner_threshold = pipeline.config.min_corner_confidence if pipeline is not None else 0.5
    if mode == "rotation":
        summary = {
            name: metrics.rotation_summary(r.errors, r.seconds, r.failed, r.skew_ok)
            for name, r in results.items()
        }
    else:
        summary = {
            name: metrics.corner_summary(r.errors, r.seconds, r.failed)
            for name, r in results.items()
        }
    if phone:  # the errors above are the outlines'; the labelled corners get rows of their own
        for name, r in results.items():
            labelled = [p["corner_error_pct"] for p in r.predictions if "outline_pct" in p]
            summary[f"{name} (labelled corners)"] = metrics.corner_summary(labelled, r.seconds)
    return {
        "mode": mode,
        "dir": str(folder),
        "model": model,
        "rotations": rotations,
        "seed": seed,
        "split": split,
        "summary": summary,
        "recipe": recipe if mode == "perspective" else None,
        "blank": photo_eval.blank_summary(
            {name: r.predictions for name, r in results.items()}, corner_threshold
        )
        if phone
        else {},
        "threshold": corner_threshold if mode == "perspective" else threshold,
        **(report.breakdown(results, threshold) if mode == "rotation" else {}),
        "missing_peers": peers.missing_peers(mode) if use_peers else [],
        "predictions": {name: r.predictions for name, r in results.items()},
        "errors": {name: r.errors for name, r in results.items()},
        "sheet": sheet,
    }


def _score(result: MethodResult, sample: Sample, answer, mode: str, confidence=None) -> None:
    if answer is None:
        result.failed += 1
    if mode == "rotation":
        assert sample.truth_angle is not None
        error = metrics.angle_error(answer, sample.truth_angle)
        result.predictions.append(
            {
                "file": sample.name,
                "content_angle": None if answer is None else round(float(answer), 3),
                "source": sample.source,
                "applied_angle": round(sample.applied or 0.0, 3),
                "true_angle": round(sample.truth_angle, 3),
                "error_deg": round(error, 4),
                "kind": sample.kind,
                "script": sample.script,
                "skew_ok": sample.skew_ok,
                "confidence": None if confidence is None else round(float(confidence), 5),
            }
        )
        result.skew_ok.append(sample.skew_ok)
    elif mode == "dewarp":
        assert sample.truth_params is not None
        error = metrics.grid_error(answer, sample.truth_params, sample.image.shape[:2])
        result.predictions.append(
            {"file": sample.name, "source": sample.source, "grid_error_pct": round(error, 4)}
        )
    else:
        assert sample.truth_corners is not None
        error = metrics.corner_error(answer, sample.truth_corners)
        result.predictions.append(
            {
                "file": sample.name,
                "source": sample.source,
                "corner_error_pct": round(error, 4),
                "corners": None if answer is None else np.round(np.asarray(answer), 2).tolist(),
                "true_corners": np.round(sample.truth_corners, 2).tolist(),
            }
        )
    result.errors.append(error)


def _score_photo(result: MethodResult, sample: Sample, answer, confidence) -> None:
    """A phone photo: the outline's error (scored), the labelled corners' error and the
    conditions; a photo with no page is only recorded (its confidence)."""
    row: dict = {"file": sample.name, "source": sample.source, "conditions": sample.conditions}
    row["confidence"] = None if confidence is None else round(float(confidence), 4)
    if sample.truth_corners is not None:
        if answer is None:
            result.failed += 1
        hw = sample.image.shape[:2]
        outline = photo_eval.outline_error(answer, sample.truth_corners)
        row["outline_pct"] = round(outline, 4)
        row["corner_error_pct"] = round(
            photo_eval.labelled_error(answer, sample.truth_corners, hw), 4
        )
        row["corners"] = None if answer is None else np.round(np.asarray(answer), 2).tolist()
        row["true_corners"] = np.round(sample.truth_corners, 2).tolist()
        result.errors.append(outline)
    result.predictions.append(row)


def _thumb(image: np.ndarray, side: int = 220) -> np.ndarray:
    if image.ndim == 2 or image.shape[2] == 1:
        image = np.repeat(image.reshape(*image.shape[:2], 1), 3, axis=2)
    scale = side / max(image.shape[:2])
    return cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)


def write_predictions(path: str | Path, report: dict) -> None:
    """One row per scored image and method: file, content_angle (predicted), source, applied..."""
    rows = [
        {"method": name, **row} for name, preds in report["predictions"].items() for row in preds
    ]
    if not rows:
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fields = list(dict.fromkeys(k for row in rows for k in row))
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {k: json.dumps(v) if isinstance(v, list | dict) else v for k, v in row.items()}
            )


def table(found: dict) -> str:
    """The printed tables: overall; in rotation mode by kind, by script and the calibration of
    the confidences; for phone photos per condition and on the photos with no page."""
    if found["mode"] == "rotation":
        return report.tables(found)
    text = metrics.format_table(found["summary"], metrics.CORNER_COLUMNS)
    if found.get("recipe") == "phone":
        text += "\n\n" + photo_eval.condition_table(found["predictions"])
        for name, b in found.get("blank", {}).items():
            text += (f"\n\n{name} on {b['count']} photos with no page: median corner confidence "
                     f"{b['median_confidence']:.3f}; {100 * b['identity_share']:.1f}% below "
                     f"{found['threshold']} (the identity, no warp)")  # fmt: skip
    return text
