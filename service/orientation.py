"""What the pipeline does with a rotation model's orientation confidence.

A rotation model that reports how sure it is (doc-rotation: confidence column 0 for which way is
up, column 1 for the skew) gets three things from the pipeline, in this order:

1. `read_again`: below the setting `second_read_below`, a second, closer read. The localiser
   reads a small copy of the page (768 px for doc-rotation); on a newspaper of small type that
   leaves text lines about 5 px apart, too little to tell upright print from upside down. So the
   page's four overlapping quarters (stn_align.core.preprocess.quarters: 55% of each side, one
   from each corner) are read, each at the localiser's own input size, so at about twice the
   resolution, and the five reads vote (`vote`). Only the quarter turn can change: the skew
   stays the first read's, made on the whole page. Measured on the validation pages in
   exported/doc-rotation.md.
2. `hold`: below the setting `min_orientation_confidence` (the request's min_confidence), the
   page is not turned by quarter turns; its skew is still corrected when that part is sure.
3. `report`: the confidences and the review flag go into the result.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from stn_align.core import geometry
from stn_align.core.families import family_spec
from stn_align.core.preprocess import quarters
from stn_align.service.align_types import AlignResult
from stn_align.service.models import Model

TURNS = 4
CLIP = 1e-4  # confidences are kept inside (0, 1) so that their logarithms stay finite
SKEW_SURE = 0.5  # a skew confidence from here up: the skew part is corrected on its own


def vote(angles: np.ndarray, confidences: np.ndarray) -> tuple[int, float]:
    """R reads of one page, the whole page first: their content angles (degrees) and orientation
    confidences (each read's probability of the quarter turn it chose) -> (the quarter turns to
    add to the first read's angle, 0-3; how sure the vote is).

    Each read is taken as a distribution over the four turns: its confidence on its own turn, the
    rest shared by the other three. The reads' log-probabilities are averaged (a geometric mean:
    unsure reads that agree stay unsure, as reads of one page are not independent) and
    normalised."""
    angles = np.asarray(angles, np.float64)
    sure = np.clip(np.asarray(confidences, np.float64), 1.0 / TURNS, 1.0 - CLIP)
    turn = np.round(geometry.wrap_degrees(angles - angles[0]) / 90.0).astype(int) % TURNS
    mine = turn[:, None] == np.arange(TURNS)[None, :]
    log_q = np.where(mine, np.log(sure)[:, None], np.log((1.0 - sure) / (TURNS - 1))[:, None])
    mean = log_q.mean(0)
    p = np.exp(mean - mean.max())
    p /= p.sum()
    best = int(p.argmax())
    return best, float(p[best])


def read_again(
    model: Model,
    seen: np.ndarray,
    theta: np.ndarray,
    confidence: np.ndarray,
    below: float,
    localise: Callable[[Model, list[np.ndarray]], list[np.ndarray]],
) -> tuple[np.ndarray, np.ndarray, bool]:
    """The first read of `seen` (the image the stage reads) -> (theta, confidence, whether the
    page was read again): the first read's when its orientation confidence is `below` or over,
    else the vote of it and the four quarters' reads. `localise` runs the model's localiser on a
    list of inputs (the pipeline's, which queues them all at once)."""
    if float(confidence[0]) >= below:
        return theta, confidence, False
    crops = quarters(seen, model.input_size)
    if not crops:
        return theta, confidence, False
    smalls = [model.small_copy(crop) for crop in crops]
    first = geometry.angle_degrees(theta)
    angles, sure = [first], [float(confidence[0])]
    for row in localise(model, smalls):
        crop_theta, crop_confidence = model.split(row)
        assert crop_confidence is not None  # the same model as the first read's
        angles.append(geometry.angle_degrees(crop_theta))
        sure.append(float(crop_confidence[0]))
    turn, vote_sure = vote(np.array(angles), np.array(sure))
    voted = confidence.copy()
    voted[0] = vote_sure
    return geometry.rotation_params(first + 90.0 * turn), voted, True


def hold(theta: np.ndarray, confidence: np.ndarray) -> np.ndarray:
    """A rotation theta whose orientation is not sure -> the theta that leaves the orientation
    alone: only the skew (the angle less its nearest quarter turn) when the skew is sure
    (confidence column 1), else no turn at all (a page with nothing to read comes back as is)."""
    sure = len(confidence) < 2 or float(confidence[1]) >= SKEW_SURE
    angle = geometry.skew_degrees(geometry.angle_degrees(theta)) if sure else 0.0
    return geometry.rotation_params(angle)


def report(result: AlignResult) -> None:
    """The last rotation stage's confidences into the result, and whether it was held for
    review."""
    for stage in result.stages:
        what = family_spec(stage.family).confidence
        if stage.confidence is not None and "orientation" in what:
            result.orientation_confidence = float(stage.confidence[0])
            if len(stage.confidence) > 1:
                result.skew_confidence = float(stage.confidence[1])
            result.review = stage.held
