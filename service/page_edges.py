"""Snap a page's predicted corners to the page's own edges (NumPy and OpenCV only).

A projective localiser that sees a 128 px copy places corners to a few percent of the page; the
page's outline, where it shows, is a straight step in brightness that a grey copy of a few hundred
pixels locates to about a pixel. Each edge of the predicted quad is searched in a band on either
side of it, along EDGE_SAMPLES cuts across it. On each cut the candidates are steps from the
background into a clean region (a box-filter difference): up into paper with a plain margin inside
it, or down into a scanner's dark frame. Text lines, rules and figures have ink just inside their
steps, so they rarely qualify. Each cut offers its few strongest steps, favouring those near the
predicted line. A line is fitted through them robustly: the pair of steps whose line the most
others agree with, weighed by its distance from the predicted line, then least squares on those.
The distance matters where two straight steps compete, such as a scan's outline and the sheet's own
edge inside its dark frame, or a page's edge and a ruler beside it: the model, trained on both,
says which is the page. Neighbouring edges' lines meet at the new corners. An edge whose cuts do
not agree, or whose line turns too far from the predicted one, keeps its predicted line; a result
that is not a convex quad, or that moved a corner further than the search reached, is dropped
whole. The settings were chosen on synthetic photos (bank pages, the training generator), not on
the real evaluation pages.

    >>> photo = np.full((300, 400), 60, np.uint8)
    >>> photo[50:250, 100:300] = 230  # a page with corners at pixel edges: (99.5, 49.5) ...
    >>> guess = np.array([[104, 44], [296, 57], [303, 246], [95, 254]], np.float64)
    >>> found = snap_corners(photo, guess)
    >>> truth = [[99.5, 49.5], [299.5, 49.5], [299.5, 249.5], [99.5, 249.5]]
    >>> bool(np.abs(found - truth).max() < 0.2)
    True
"""

from __future__ import annotations

import math
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
DARK_MARGIN = 0.008  # the same for a step down into a scanner's dark frame, which may be narrow
MIN_AGREE = 0.4  # share of an edge's cuts that must agree with its fitted line
REACH = 0.02  # how far from the predicted line a step keeps its weight, as a share of the diagonal
MAX_TURN = math.tan(math.radians(25))  # the most a found edge may turn from the predicted one
CANDIDATES = 3  # steps each cut offers to the line fit
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
    lines = []
    for (start, end), cut in zip(segments, cuts, strict=True):
        found = _edge_offsets(cut, diagonal)  # the edge's offsets from the segment, inward
        a, b = found if found is not None else (0.0, 0.0)
        if abs(b - a) > MAX_TURN * float(np.linalg.norm(end - start)):
            a, b = 0.0, 0.0  # a short edge's band admits steep lines that no page edge makes
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


def _edge_offsets(cuts: _Cuts, diagonal: float) -> tuple[float, float] | None:
    """The page edge's offsets along `inward` at the segment's start and end, or None where the
    cuts find no edge that enough of them agree on."""
    t, inside = cuts.t, cuts.inside
    half = max(2, int(STEP_WIDTH * diagonal))
    centre = np.arange(half, len(cuts.d) - half)
    paper = _steps(cuts.values, half, int(MARGIN * diagonal))
    frame = _steps(-cuts.values, half, int(DARK_MARGIN * diagonal))
    response = np.maximum(paper, frame)
    # Each cut offers its few strongest steps near the predicted line (local maxima at least a
    # filter width apart): the page's edge is not always the strongest, e.g. inside a scanner's
    # dark frame, where the sheet's own edge is.
    peak = cv2.dilate(response, np.ones((1, 2 * half + 1), np.uint8))
    response = np.where((response >= peak) & (response > MIN_CONTRAST), response, 0.0)
    near = np.exp(-0.5 * (cuts.d[centre] / (REACH * diagonal)) ** 2)
    ranked = np.argsort(-response * near[None, :], axis=1)[:, :CANDIDATES]
    rows = np.repeat(np.arange(len(t)), CANDIDATES)
    cols = ranked.reshape(-1)
    strength = response[rows, cols]
    usable = np.asarray(inside[:, centre].any(axis=1))
    keep = usable[rows] & (strength > 0)
    rows, cols, strength = rows[keep], cols[keep], strength[keep]
    offset = cuts.d[centre][cols] - 0.5  # a step lies between the samples before and at it
    needed = MIN_AGREE * max(1, usable.sum())
    tolerance = max(1.5, 0.004 * diagonal)
    fit = _nearest_line(t[rows], offset, strength, needed, tolerance, REACH * diagonal)
    if fit is None:
        return None
    a, b = fit
    return a, a + b


def _steps(values: np.ndarray, half: int, margin: int) -> np.ndarray:
    """(cuts, centres) strength of a step up (outside to inside) into a clean region: its lowest
    value over the next `margin` pixels still clears the outside. Paper has a margin inside its
    edge, and so does a scanner's dark frame (on `-values`); text lines, rules and figures have ink
    just inside their steps and do not qualify. The first `gap` pixels are skipped: the resize
    blurs the edge."""
    d = values.shape[1]
    centre = np.arange(half, d - half)
    total = np.concatenate([np.zeros((len(values), 1), np.float32), np.cumsum(values, axis=1)], 1)
    outside = (total[:, centre] - total[:, centre - half]) / half
    within = (total[:, centre + half] - total[:, centre]) / half
    gap = 2
    kernel = np.ones((1, max(2, margin)), np.uint8)
    clean = cv2.erode(values, kernel, anchor=(0, 0), borderType=cv2.BORDER_REPLICATE)
    lowest = clean[:, np.minimum(centre + gap, d - 1)] - outside
    return np.where(lowest > MIN_CONTRAST, within - outside, 0.0).astype(np.float32)


def _nearest_line(t, offset, strength, needed: float, tolerance: float, reach: float):
    """The line offset = a + b t best supported by the samples, near the predicted line -> (a, b)
    or None.

    Lines run through pairs of samples; one counts when at least `needed` samples lie within
    `tolerance` of it. Each is scored by the summed strength of its samples, weighed down with its
    distance from the predicted line (offset 0) on a scale of `reach`: beside a scanner's dark frame
    or a light object on the table, a step as strong as the page's own lies a little way off, and
    which of them is the page's edge is what the model learned. The chosen line is refitted by
    least squares on the samples that agree."""
    if len(t) < 2:
        return None
    i, j = np.triu_indices(len(t), 1)
    apart = np.abs(t[j] - t[i]) > 0.4  # close pairs pin the slope down poorly (and cost time)
    i, j = i[apart], j[apart]
    if len(i) == 0:
        return None
    slope = (offset[j] - offset[i]) / (t[j] - t[i])
    intercept = offset[i] - slope * t[i]
    agree = np.abs(intercept[:, None] + slope[:, None] * t[None, :] - offset[None, :]) < tolerance
    middle = intercept + slope / 2  # the line's offset at mid-edge
    score = (agree * strength[None, :]).sum(axis=1) * np.exp(-0.5 * (middle / reach) ** 2)
    score = np.where(agree.sum(axis=1) >= max(2.0, needed), score, -1.0)
    if score.max() <= 0:
        return None
    pick = agree[int(score.argmax())]
    b, a = np.polyfit(t[pick], offset[pick], 1)
    return float(a), float(b)


def _meet(first, second) -> np.ndarray:
    """The point where the line through `first`'s two points crosses the line through `second`'s."""
    (p, q), (r, s) = first, second
    u, v = q - p, s - r
    cross = u[0] * v[1] - u[1] * v[0]
    if abs(cross) < 1e-9:
        return np.array([np.nan, np.nan])
    k = ((r[0] - p[0]) * v[1] - (r[1] - p[1]) * v[0]) / cross
    return p + k * u
