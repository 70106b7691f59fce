"""Snap a page's predicted corners to the page's own edges (NumPy and OpenCV only).

A projective localiser that sees a 128 px copy places corners to a few percent of the page; the
page's outline, where it shows, is a straight step in brightness that a grey copy of a few hundred
pixels locates to about a pixel. Each edge of the predicted quad is searched in a band on either
side of it, along EDGE_SAMPLES cuts across it. On each cut the edge is the strongest step from the
background to paper (a box-filter difference) that is followed by clean paper, the margin: text
lines, rules and figures inside the page have ink just inside their steps, so they do not qualify.
A line is fitted to the cuts' steps robustly (the pair of cuts that most others agree with, then
least squares on those), and neighbouring edges' lines meet at the new corners. An edge whose cuts
do not agree keeps its predicted line; a result that is not a convex quad, or that moved a corner
further than the search reached, is dropped whole. The settings were chosen on synthetic photos
(bank pages, the training generator), not on the real evaluation pages.

    >>> photo = np.full((300, 400), 60, np.uint8)
    >>> photo[50:250, 100:300] = 230  # a page with corners at pixel edges: (99.5, 49.5) ...
    >>> guess = np.array([[104, 44], [296, 57], [303, 246], [95, 254]], np.float64)
    >>> found = snap_corners(photo, guess)
    >>> truth = [[99.5, 49.5], [299.5, 49.5], [299.5, 249.5], [99.5, 249.5]]
    >>> bool(np.abs(found - truth).max() < 0.2)
    True
"""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np

from service import warp
from service.models import ModelError
from training import geometry
from training.preprocess import to_channels

EDGE_SAMPLES = 48  # cuts across each edge
SEARCH = 0.12  # half-width of the band searched on each side of an edge, as a share of the diagonal
STEP_WIDTH = 0.012  # each side of the step filter, as a share of the diagonal
MARGIN = 0.025  # clean paper wanted just inside an edge, as a share of the diagonal
MIN_AGREE = 0.4  # share of an edge's cuts that must agree with its fitted line
MIN_CONTRAST = 12.0  # grey levels: a weaker step is not taken for the page's edge
SNAP_SIZE = 768  # longer side of the grey copy searched, pixels


def check_models(names: set[str], models: dict) -> None:
    """Start-up check of the page_edges setting against the loaded models (absent ones are fine)."""
    for name in sorted(names & set(models)):
        if models[name].family != "projective":
            raise ModelError(
                f"setting page_edges (STN_PAGE_EDGES): {name} is a {models[name].family} model; "
                "only projective models have page corners to snap"
            )


def snap_params(image, params, matrix, stage_hw, border: str, fill: float) -> np.ndarray:
    """A projective stage's params -> params with the corners snapped to the page's edges.

    `image` is the original; `matrix` maps the stage's input pixels to it (None: the stage's input
    is the original) and `stage_hw` is that input's size. The search runs on a grey copy of the
    stage's input at SNAP_SIZE; the params are normalised, so they hold at any size."""
    matrix = np.eye(3) if matrix is None else matrix
    grey = to_channels(image, 1)  # before the warp: one channel to resample, not three
    grey = warp.warp_reduced(grey, matrix, stage_hw, SNAP_SIZE, border, fill)[:, :, 0]
    hw = (int(grey.shape[0]), int(grey.shape[1]))
    corners = snap_corners(grey, geometry.page_corners(params, hw))
    return geometry.corner_params(corners, hw).astype(np.float32)


def snap_corners(grey: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """grey (H, W) uint8 and corners (4, 2) TL, TR, BR, BL in its pixel coordinates (x, y) ->
    corners snapped to the page's edges (the input corners where the edges cannot be found)."""
    corners = np.asarray(corners, dtype=np.float64).reshape(4, 2)
    segments = [(corners[k], corners[(k + 1) % 4]) for k in range(4)]
    if min(float(np.linalg.norm(end - start)) for start, end in segments) < 8:
        return corners
    h, w = grey.shape[:2]
    diagonal = float(np.hypot(h, w))
    image = grey.astype(np.float32)
    cuts = [_cuts(image, start, end, diagonal) for start, end in segments]
    # Paper is usually lighter than what it lies on; which way it is comes from the whole page, as
    # one edge alone can be fooled by a dark figure or a light object beside the page.
    inner = np.mean([c.values[:, -c.values.shape[1] // 4 :].mean() for c in cuts])
    outer = np.mean([c.values[:, : c.values.shape[1] // 4].mean() for c in cuts])
    sign = 1.0 if inner >= outer else -1.0
    lines = []
    for (start, end), cut in zip(segments, cuts, strict=True):
        found = _edge_offsets(cut, sign, diagonal)  # the edge's offsets from the segment, inward
        a, b = found if found is not None else (0.0, 0.0)
        lines.append((start + a * cut.inward, end + b * cut.inward))
    snapped = np.array([_meet(lines[k - 1], lines[k]) for k in range(4)])
    if not geometry.is_convex(snapped):
        return corners
    if np.linalg.norm(snapped - corners, axis=1).max() > 2 * SEARCH * diagonal:
        return corners
    return snapped


class _Cuts(NamedTuple):
    values: np.ndarray  # (EDGE_SAMPLES, D) grey values across the edge, from outside to inside
    d: np.ndarray  # (D,) their offsets from the segment along `inward`, pixels
    t: np.ndarray  # (EDGE_SAMPLES,) where each cut crosses the segment: 0 start, 1 end
    inside: np.ndarray  # (EDGE_SAMPLES, D) whether the sample lies in the image
    inward: np.ndarray  # (2,) unit normal of the segment, pointing into the page


def _cuts(image: np.ndarray, start: np.ndarray, end: np.ndarray, diagonal: float) -> _Cuts:
    along = (end - start) / float(np.linalg.norm(end - start))
    inward = np.array([-along[1], along[0]])  # TL, TR, BR, BL run clockwise on screen (y down)
    reach = max(4, int(SEARCH * diagonal)) + max(2, int(STEP_WIDTH * diagonal))
    t = np.linspace(0.06, 0.94, EDGE_SAMPLES)
    d = np.arange(-reach, reach + 1, dtype=np.float64)
    points = start + t[:, None, None] * (end - start) + d[None, :, None] * inward
    xs, ys = points[..., 0].astype(np.float32), points[..., 1].astype(np.float32)
    h, w = image.shape
    inside = (xs >= 0) & (xs <= w - 1) & (ys >= 0) & (ys <= h - 1)
    values = cv2.remap(image, xs, ys, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return _Cuts(values, d, t, inside, inward)


def _edge_offsets(cuts: _Cuts, sign: float, diagonal: float) -> tuple[float, float] | None:
    """The page edge's offsets along `inward` at the segment's start and end, or None where the
    cuts find no edge that enough of them agree on. sign: 1 for paper lighter than its
    background, -1 darker (the values are flipped so that paper is always the high side)."""
    values, d, t, inside = sign * cuts.values, cuts.d, cuts.t, cuts.inside
    half = max(2, int(STEP_WIDTH * diagonal))
    centre = np.arange(half, len(d) - half)
    total = np.concatenate([np.zeros((len(t), 1), np.float32), np.cumsum(values, axis=1)], axis=1)
    outside = (total[:, centre] - total[:, centre - half]) / half
    within = (total[:, centre + half] - total[:, centre]) / half
    # The page side of an edge is clean paper for a while (the margin): its darkest value must
    # still clear the outside. A text line or a rule has ink just inside it. The first `gap`
    # pixels are skipped: the edge itself is blurred by the resize.
    gap = 2
    kernel = np.ones((1, max(2, int(MARGIN * diagonal))), np.uint8)
    clean = cv2.erode(values, kernel, anchor=(0, 0), borderType=cv2.BORDER_REPLICATE)
    margin = clean[:, np.minimum(centre + gap, len(d) - 1)] - outside
    response = np.where(margin > MIN_CONTRAST, within - outside, 0.0)
    at = response.argmax(axis=1)
    strength = response[np.arange(len(t)), at]
    offset = d[centre][at] - 0.5  # the step lies between the sample before `at` and `at`
    usable = inside[:, centre].any(axis=1)
    keep = usable & (strength > MIN_CONTRAST)
    fit = _robust_line(t[keep], offset[keep], strength[keep], max(1.5, 0.004 * diagonal))
    if fit is None or fit[2] < MIN_AGREE * max(1, usable.sum()):
        return None
    a, b = fit[0], fit[1]
    return a, a + b


def _robust_line(t: np.ndarray, offset: np.ndarray, strength: np.ndarray, tolerance: float):
    """offset = a + b t through the pair of samples that most others agree with, refitted on those.
    -> (a, b, number agreeing, their summed strength) or None."""
    if len(t) < 2:
        return None
    i, j = np.triu_indices(len(t), 1)
    slope = (offset[j] - offset[i]) / np.maximum(t[j] - t[i], 1e-9)
    intercept = offset[i] - slope * t[i]
    residual = np.abs(intercept[:, None] + slope[:, None] * t[None, :] - offset[None, :])
    agree = residual < tolerance
    score = (agree * strength[None, :]).sum(axis=1)
    pick = agree[int(score.argmax())]
    if pick.sum() < 2:
        return None
    b, a = np.polyfit(t[pick], offset[pick], 1)
    return float(a), float(b), int(pick.sum()), float(strength[pick].sum())


def _meet(first, second) -> np.ndarray:
    """The point where the line through `first`'s two points crosses the line through `second`'s."""
    (p, q), (r, s) = first, second
    u, v = q - p, s - r
    cross = u[0] * v[1] - u[1] * v[0]
    if abs(cross) < 1e-9:
        return np.array([np.nan, np.nan])
    k = ((r[0] - p[0]) * v[1] - (r[1] - p[1]) * v[0]) / cross
    return p + k * u
