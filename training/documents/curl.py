"""Curled pages for the dewarping model (doc-dewarp): a flat page bent by a known thin-plate spline.

A book page photographed open bends towards the spine: its lines bow, more towards the top and
bottom of the page, and the part near the spine is squeezed. Here the bend is drawn as the
displacements of the TPS control points (stn_align.training.families.ThinPlateSpline, axis frame):
each flat (output) point q goes to the curled (input) point g(q). The curled image is rendered so
that warping it by g gives the flat page back, so the drawn displacements are exactly the parameters
a dewarping localiser should predict.

    rng = np.random.default_rng(0)
    params = random_curl(rng)                        # (2 n^2,) TPS displacements
    curled = curl_page(flat, params, fill=200)       # flat HxW uint8 -> the same size, bent
    # sampling_maps("tps", params, ...) on `curled` gives `flat` back (up to resampling)
"""

from __future__ import annotations

import cv2
import numpy as np

from stn_align.core import geometry

MAX_BOW = 0.2  # axis-frame units (a page is 2 wide): the largest bow of a line, 10%
MAX_SQUEEZE = 0.1  # how far content near the spine moves towards it
NOISE = 0.006  # small independent wobble of each control point
INVERSE_STEPS = 8  # fixed-point steps of the inverse map; the field is smooth and small


def random_curl(rng: np.random.Generator, grid: int = 4, scale: float = 1.0) -> np.ndarray:
    """Seeded TPS displacements (2 grid^2,) of a page bent towards a spine on its left or right.

    With t in [0, 1] the distance from the outer edge towards the spine, the page rises as
    z = t^p; lines bow by bow * z * (v + tilt) (v the height on the page: more at top and bottom,
    with a tilt where the camera was not centred) and move towards the spine by squeeze * z.
    `scale` multiplies the bend and the wobble (1: the training range)."""
    control = geometry.tps_control_points(grid)
    u, v = control[:, 0], control[:, 1]
    side = float(rng.choice([-1.0, 1.0]))
    t = (u * side + 1.0) / 2.0
    z = t ** rng.uniform(1.5, 3.0)
    bow = rng.uniform(-MAX_BOW, MAX_BOW) * scale
    tilt = rng.uniform(-0.5, 0.5)
    squeeze = rng.uniform(0.0, MAX_SQUEEZE) * scale
    dx = side * squeeze * z
    dy = bow * z * (v + tilt)
    shift = np.stack([dx, dy], axis=1)
    shift += rng.normal(0.0, NOISE * scale, size=shift.shape)
    return shift.reshape(-1).astype(np.float32)


def curl_maps(params: np.ndarray, hw: tuple[int, int], grid: int = 4) -> tuple[np.ndarray, ...]:
    """(map_x, map_y) float32 for cv2.remap: for each pixel of the curled image, the flat page's
    pixel that lands there, i.e. the inverse of the TPS g. Found by fixed-point steps
    q <- p - (g(q) - q), with the displacement g(q) - q computed on a coarse grid and read back
    bilinearly (it is smooth)."""
    h, w = hw
    coarse_hw = (max(8, h // 8), max(8, w // 8))
    coarse = geometry.axis_grid(coarse_hw).reshape(-1, 2)
    moved = geometry.tps_points(params, grid, coarse) - coarse
    field = moved.reshape(coarse_hw[0], coarse_hw[1], 2).astype(np.float32)
    p = geometry.axis_grid((h, w)).astype(np.float32)
    q = p.copy()
    for _ in range(INVERSE_STEPS):
        # Axis-frame point -> coarse-grid pixel, to read the field at q.
        cx = (q[..., 0] + 1.0) * coarse_hw[1] / 2.0 - 0.5
        cy = (q[..., 1] + 1.0) * coarse_hw[0] / 2.0 - 0.5
        d = cv2.remap(field, cx, cy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        q = p - d
    map_x = (q[..., 0] + 1.0) * w / 2.0 - 0.5
    map_y = (q[..., 1] + 1.0) * h / 2.0 - 0.5
    return map_x.astype(np.float32), map_y.astype(np.float32)


def curl_page(page: np.ndarray, params: np.ndarray, fill: int, grid: int = 4) -> np.ndarray:
    """A flat page HxW (or HxWxC) uint8 -> the same page bent by `params`, the same size; what the
    bend pulls in from beyond the page is `fill`."""
    map_x, map_y = curl_maps(params, page.shape[:2], grid)
    value = (float(fill),) * 4
    return cv2.remap(
        page, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=value
    )
