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
    h, w = grey.shape[:2]
    diagonal = float(np.hypot(h, w))
    image = grey.astype(np.float32)
    found_cuts = [_cuts(image, corners[k], corners[(k + 1) % 4], diagonal) for k in range(4)]
    cuts = [c for c in found_cuts if c is not None]
    if len(cuts) < 4:
        return corners
    # Paper is usually lighter than what it lies on; which way it is comes from the whole page, as
    # one edge alone can be fooled by a dark figure or a light object beside the page.
    inner = np.mean([c[0][:, -c[0].shape[1] // 4 :].mean() for c in cuts])
    outer = np.mean([c[0][:, : c[0].shape[1] // 4].mean() for c in cuts])
    sign = 1.0 if inner >= outer else -1.0
    lines = []
    for k in range(4):
        found = _edge_line(cuts[k], sign, corners[k], corners[(k + 1) % 4], diagonal)
        lines.append(found if found is not None else (corners[k], corners[(k + 1) % 4]))
    snapped = np.array([_meet(lines[k - 1], lines[k]) for k in range(4)])
    if not _convex(snapped):
        return corners
    if np.linalg.norm(snapped - corners, axis=1).max() > 2 * SEARCH * diagonal:
        return corners
    return snapped


def _cuts(image: np.ndarray, start: np.ndarray, end: np.ndarray, diagonal: float):
    """(values (EDGE_SAMPLES, D) sampled across the segment start -> end from outside to inside,
    offsets (D,) in pixels, t (EDGE_SAMPLES,) along it, in-image mask (EDGE_SAMPLES, D)), or None
    for a segment too short to search."""
    length = float(np.linalg.norm(end - start))
    if length < 8:
        return None
    along = (end - start) / length
    inward = np.array([-along[1], along[0]])  # TL, TR, BR, BL run clockwise on screen (y down)
    reach = max(4, int(SEARCH * diagonal)) + max(2, int(STEP_WIDTH * diagonal))
    t = np.linspace(0.06, 0.94, EDGE_SAMPLES)
    d = np.arange(-reach, reach + 1, dtype=np.float64)
    points = start + t[:, None, None] * (end - start) + d[None, :, None] * inward
    xs, ys = points[..., 0].astype(np.float32), points[..., 1].astype(np.float32)
    h, w = image.shape
    inside = (xs >= 0) & (xs <= w - 1) & (ys >= 0) & (ys <= h - 1)
    values = cv2.remap(image, xs, ys, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return values, d, t, inside


def _edge_line(cuts, sign: float, start, end, diagonal: float):
    """Two points on the page's edge near the segment start -> end, or None where the cuts find no
    edge that enough of them agree on. sign: 1 for paper lighter than its background, -1 darker."""
    values, d, t, inside = cuts
    half = max(2, int(STEP_WIDTH * diagonal))
    rows = np.arange(len(t))
    centre = np.arange(half, len(d) - half)
    total = np.concatenate([np.zeros((len(t), 1), np.float32), np.cumsum(values, axis=1)], axis=1)
    outside = (total[:, centre] - total[:, centre - half]) / half
    # The page side of an edge is clean paper for a while (the margin): its darkest value (lightest
    # for a dark page) must still clear the outside. A text line or a rule has ink just inside it.
    inward = (total[:, centre + half] - total[:, centre]) / half
    kernel = np.ones((1, max(2, int(MARGIN * diagonal))), np.uint8)
    gap = 2  # pixels: the edge itself is blurred by the resize
    if sign > 0:
        clean = cv2.erode(values, kernel, anchor=(0, 0), borderType=cv2.BORDER_REPLICATE)
        response, margin = (
            inward - outside,
            clean[:, np.minimum(centre + gap, len(d) - 1)] - outside,
        )
    else:
        clean = cv2.dilate(values, kernel, anchor=(0, 0), borderType=cv2.BORDER_REPLICATE)
        response, margin = (
            outside - inward,
            outside - clean[:, np.minimum(centre + gap, len(d) - 1)],
        )
    response = np.where(margin > MIN_CONTRAST, response, 0.0)
    at = response.argmax(axis=1)
    strength = response[rows, at]
    offset = d[centre][at] - 0.5  # the step lies between the sample before `at` and `at`
    usable = inside[:, centre].any(axis=1)
    keep = usable & (strength > MIN_CONTRAST)
    fit = _robust_line(t[keep], offset[keep], strength[keep], max(1.5, 0.004 * diagonal))
    if fit is None or fit[2] < MIN_AGREE * max(1, usable.sum()):
        return None
    a, b = fit[0], fit[1]
    length = float(np.linalg.norm(end - start))
    inward = np.array([-(end - start)[1], (end - start)[0]]) / length
    return start + a * inward, end + (a + b) * inward


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


def _convex(quad: np.ndarray) -> bool:
    if not np.isfinite(quad).all():
        return False
    edges = np.roll(quad, -1, axis=0) - quad
    turns = (
        edges[:, 0] * np.roll(edges, -1, axis=0)[:, 1]
        - edges[:, 1] * np.roll(edges, -1, axis=0)[:, 0]
    )
    return bool((turns > 0).all() or (turns < 0).all())
