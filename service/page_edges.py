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
whole. The settings were chosen on synthetic photos (bank pages, the training generator), and
MARGIN then on phone photos of the training sources' real pages (bench/photo_snapping.py), never
on the test pages.

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

from stn_align.core import geometry
from stn_align.core.preprocess import to_channels
from stn_align.service import warp
from stn_align.service.models import ModelError

EDGE_SAMPLES = 48  # cuts across each edge
SEARCH = 0.12  # half-width of the band searched on each side of an edge, as a share of the diagonal
STEP_WIDTH = 0.012  # each side of the step filter, as a share of the diagonal
# Clean paper wanted just inside an edge, as a share of the diagonal: narrow, since real pages are
# often printed close to their edges (newspapers, music, scans cropped close).
MARGIN = 0.01
DARK_MARGIN = 0.008  # the same for a step down into a scanner's dark frame, which may be narrow
MIN_AGREE = 0.4  # share of an edge's cuts that must agree with its fitted line
REACH = 0.02  # how far from the predicted line a step keeps its weight, as a share of the diagonal
MAX_TURN = math.tan(math.radians(25))  # the most a found edge may turn from the predicted one
CANDIDATES = 2  # steps each cut offers to the line fit
MIN_CONTRAST = 12.0  # grey levels: a weaker step is not taken for the page's edge
SNAP_SIZE = 768  # longer side of the grey copy searched, pixels


def models_to_snap(setting: str, models: dict) -> set[str]:
    """The loaded models whose corners are snapped, from the page_edges setting: "auto" (those
    whose contract lists the page_edges post-processing), "none", or names (absent ones are
    fine). Checked at start-up."""
    if setting == "auto":
        return {n for n, m in models.items() if "page_edges" in m.contract.postprocess}
    names = {n.strip() for n in setting.split(",") if n.strip() and n.strip() != "none"}
    for name in sorted(names & set(models)):
        if models[name].family != "projective":
            raise ModelError(
                f"setting page_edges (STN_PAGE_EDGES): {name} is a {models[name].family} model; "
                "only projective models have page corners to snap"
            )
    return names & set(models)


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
    cuts = _cuts(grey.astype(np.float32), segments, diagonal)
    lines = []
    for k, (start, end) in enumerate(segments):
        found = _edge_offsets(cuts, k, diagonal)  # the edge's offsets from the segment, inward
        a, b = found if found is not None else (0.0, 0.0)
        if abs(b - a) > MAX_TURN * float(np.linalg.norm(end - start)):
            a, b = 0.0, 0.0  # a short edge's band admits steep lines that no page edge makes
        lines.append((start + a * cuts.inward[k], end + b * cuts.inward[k]))
    snapped = np.array([_meet(lines[k - 1], lines[k]) for k in range(4)])
    if not geometry.is_convex(snapped):
        return corners
    if np.linalg.norm(snapped - corners, axis=1).max() > 2 * SEARCH * diagonal:
        return corners
    return snapped


class _Cuts(NamedTuple):
    """The four edges' cuts, stacked edge by edge (one remap and one filter pass for all)."""

    t: np.ndarray  # (EDGE_SAMPLES,) where each cut crosses its segment: 0 start, 1 end
    offsets: np.ndarray  # (D,) where each step lies from the segment along `inward`, pixels
    near: np.ndarray  # (D,) weight of a step at that offset: nearer the predicted line, more
    inward: np.ndarray  # (4, 2) unit normals of the segments, pointing into the page
    response: np.ndarray  # (4 * EDGE_SAMPLES, D) step strengths, outside to inside; 0: no step
    usable: np.ndarray  # (4 * EDGE_SAMPLES,) whether the cut crosses the image at all


def _cuts(image: np.ndarray, segments, diagonal: float) -> _Cuts:
    starts = np.array([start for start, _ in segments])
    ends = np.array([end for _, end in segments])
    along = (ends - starts) / np.linalg.norm(ends - starts, axis=1, keepdims=True)
    inward = np.stack([-along[:, 1], along[:, 0]], axis=1)  # TL, TR, BR, BL run clockwise (y down)
    half = max(2, int(STEP_WIDTH * diagonal))
    reach = max(4, int(SEARCH * diagonal)) + half
    t = np.linspace(0.06, 0.94, EDGE_SAMPLES)
    d = np.arange(-reach, reach + 1, dtype=np.float64)
    points = (
        starts[:, None, None]
        + t[None, :, None, None] * (ends - starts)[:, None, None]
        + d[None, None, :, None] * inward[:, None, None]
    ).reshape(len(segments) * EDGE_SAMPLES, len(d), 2)
    xs, ys = points[..., 0].astype(np.float32), points[..., 1].astype(np.float32)
    h, w = image.shape
    inside = (xs >= 0) & (xs <= w - 1) & (ys >= 0) & (ys <= h - 1)
    values = cv2.remap(image, xs, ys, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    centre = np.arange(half, len(d) - half)
    total = np.concatenate([np.zeros((len(values), 1), np.float32), np.cumsum(values, axis=1)], 1)
    outside = (total[:, centre] - total[:, centre - half]) / half
    within = (total[:, centre + half] - total[:, centre]) / half
    paper = _steps(values, outside, within, centre, int(MARGIN * diagonal))
    frame = _steps(-values, -outside, -within, centre, int(DARK_MARGIN * diagonal))
    response = np.maximum(paper, frame)
    # Each cut offers its few strongest steps near the predicted line (local maxima at least a
    # filter width apart): the page's edge is not always the strongest, e.g. inside a scanner's
    # dark frame, where the sheet's own edge is.
    peak = cv2.dilate(response, np.ones((1, 2 * half + 1), np.uint8))
    response = np.where((response >= peak) & (response > MIN_CONTRAST), response, 0.0)
    near = np.exp(-0.5 * (d[centre] / (REACH * diagonal)) ** 2)
    usable = np.asarray(inside[:, centre].any(axis=1))
    offsets = d[centre] - 0.5  # a step lies between the samples before and at it
    return _Cuts(t, offsets, near, inward, response, usable)


def _edge_offsets(cuts: _Cuts, edge: int, diagonal: float) -> tuple[float, float] | None:
    """Edge `edge`'s offsets along its `inward` at the segment's start and end, or None where the
    cuts find no edge that enough of them agree on."""
    t = cuts.t
    rows_of_edge = slice(edge * len(t), (edge + 1) * len(t))
    response, usable = cuts.response[rows_of_edge], cuts.usable[rows_of_edge]
    ranked = np.argsort(-response * cuts.near[None, :], axis=1)[:, :CANDIDATES]
    rows = np.repeat(np.arange(len(t)), CANDIDATES)
    cols = ranked.reshape(-1)
    strength = response[rows, cols]
    keep = usable[rows] & (strength > 0)
    rows, cols, strength = rows[keep], cols[keep], strength[keep]
    needed = MIN_AGREE * max(1, usable.sum())
    tolerance = max(1.5, 0.004 * diagonal)
    fit = _nearest_line(t[rows], cuts.offsets[cols], strength, needed, tolerance, REACH * diagonal)
    if fit is None:
        return None
    a, b = fit
    return a, a + b


def _steps(values, outside, within, centre, margin: int) -> np.ndarray:
    """(cuts, centres) strength of a step up (outside to inside) into a clean region: its lowest
    value over the next `margin` pixels still clears the outside (`outside` and `within`: the
    box means on either side of each centre). Paper has a margin inside its edge, and so does a
    scanner's dark frame (on `-values`); text lines, rules and figures have ink just inside their
    steps and do not qualify. The first `gap` pixels are skipped: the resize blurs the edge."""
    gap = 2
    kernel = np.ones((1, max(2, margin)), np.uint8)
    clean = cv2.erode(values, kernel, anchor=(0, 0), borderType=cv2.BORDER_REPLICATE)
    lowest = clean[:, np.minimum(centre + gap, values.shape[1] - 1)] - outside
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
    t32, offset32 = t.astype(np.float32), offset.astype(np.float32)
    slope = (offset32[j] - offset32[i]) / (t32[j] - t32[i])
    intercept = offset32[i] - slope * t32[i]
    residual = intercept[:, None] + slope[:, None] * t32[None, :] - offset32[None, :]
    agree = (np.abs(residual) < tolerance).astype(np.float32)
    middle = intercept + slope / 2  # the line's offset at mid-edge
    score = (agree @ strength.astype(np.float32)) * np.exp(-0.5 * (middle / reach) ** 2)
    score = np.where(agree.sum(axis=1) >= max(2.0, needed), score, -1.0)
    if score.max() <= 0:
        return None
    pick = agree[int(score.argmax())] > 0
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
