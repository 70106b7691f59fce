"""The one place that defines what theta means. NumPy only: the service imports this without torch.

Convention (grid_sample, align_corners=False):
- Normalised coordinates run from -1 to 1 across each image, measured at pixel *edges*:
  pixel column x (centre at x, edges at x-0.5 and x+0.5) has normalised x_n = (2x + 1) / W - 1.
- Theta maps the *output* grid to *input* coordinates (inverse mapping), as grid_sample wants.
- Sizes are always (height, width).

Two frames:
- "axis" frame: grid_sample's own per-axis coordinates. Used by the general families (affine,
  projective, tps). They are invariant to any resize of the input, so the localiser can see a
  stretched square copy.
- "iso" frame: centred, divided by half the *longer* side, so one unit is the same length along x
  and y. Used by the physical families (rotation, similarity, attention), whose angles and scales
  must mean the same thing on a non-square page. The iso frame of an image is the axis frame of its
  letterboxed square copy, which is what those localisers see.

Family parameters (what the localiser graph outputs as `theta`):
- affine (6): the 2x3 matrix, row-major, axis frame.
- rotation (2): (cos a, sin a), a = counter-clockwise angle of the content, iso frame.
- similarity (4): (s cos a, s sin a, tx, ty), iso frame.
- attention (3): (s, tx, ty), iso frame.
- projective (8): where the output's corners TL, TR, BR, BL land in the input, as displacements
  (dx, dy) from (-1,-1), (1,-1), (1,1), (-1,1); axis frame.
- tps (2 n^2): displacements of an n x n grid of control points; axis frame.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

Size = tuple[int, int]  # (height, width)

ISO_FAMILIES = ("rotation", "similarity", "attention")
MATRIX_FAMILIES = ("affine", "rotation", "similarity", "attention", "projective")
FAMILIES = (*MATRIX_FAMILIES, "tps")
FIXED_PARAM_COUNTS = {"affine": 6, "rotation": 2, "similarity": 4, "attention": 3, "projective": 8}
CORNERS = np.array([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]])  # TL, TR, BR, BL


def param_count(family: str, tps_grid: int = 4) -> int:
    check_family(family)
    return 2 * tps_grid * tps_grid if family == "tps" else FIXED_PARAM_COUNTS[family]


def check_family(family: str) -> None:
    if family not in FAMILIES:
        raise ValueError(
            f"unknown transform family {family!r}; expected one of {', '.join(FAMILIES)}"
        )


def identity_params(family: str, tps_grid: int = 4) -> np.ndarray:
    """The parameters of the identity transform: the localiser's last-layer bias at init."""
    ident = {
        "affine": [1, 0, 0, 0, 1, 0],
        "rotation": [1, 0],
        "similarity": [1, 0, 0, 0],
        "attention": [1, 0, 0],
    }
    if family in ident:
        return np.array(ident[family], dtype=np.float32)
    return np.zeros(param_count(family, tps_grid), dtype=np.float32)


def frame(family: str) -> str:
    check_family(family)
    return "iso" if family in ISO_FAMILIES else "axis"


def preprocess_mode(family: str) -> str:
    """How the localiser's small copy is made: letterboxed for iso families, stretched otherwise."""
    return "letterbox" if frame(family) == "iso" else "stretch"


# ---------------------------------------------------------------------------------------------
# Frames and pixels


def pixel_to_axis(hw: Size) -> np.ndarray:
    """3x3 matrix from pixel coordinates (x, y, 1) to axis-frame normalised coordinates."""
    h, w = hw
    return np.array([[2.0 / w, 0.0, 1.0 / w - 1.0], [0.0, 2.0 / h, 1.0 / h - 1.0], [0.0, 0.0, 1.0]])


def axis_to_pixel(hw: Size) -> np.ndarray:
    h, w = hw
    return np.array([[w / 2.0, 0.0, (w - 1) / 2.0], [0.0, h / 2.0, (h - 1) / 2.0], [0.0, 0.0, 1.0]])


def axis_to_iso(hw: Size) -> np.ndarray:
    """Scale from axis-frame to iso-frame coordinates: iso = A @ axis."""
    h, w = hw
    longer = max(h, w)
    return np.diag([w / longer, h / longer, 1.0])


def iso_to_axis(hw: Size) -> np.ndarray:
    h, w = hw
    longer = max(h, w)
    return np.diag([longer / w, longer / h, 1.0])


# ---------------------------------------------------------------------------------------------
# Family parameters -> 3x3 matrices


def frame_matrix(family: str, params: Sequence[float] | np.ndarray) -> np.ndarray:
    """The family's 3x3 matrix in its own frame (iso or axis), output coords -> input coords."""
    p = np.asarray(params, dtype=np.float64).reshape(-1)
    if p.size != FIXED_PARAM_COUNTS.get(family, -1):
        check_family(family)
        expected = FIXED_PARAM_COUNTS.get(family, "a dense map, not")
        raise ValueError(f"{family} takes {expected} parameters, got {p.size}")
    if family == "affine":
        return np.vstack([p.reshape(2, 3), [0.0, 0.0, 1.0]])
    if family == "rotation":
        c, s = p / max(float(np.hypot(p[0], p[1])), 1e-12)
        return np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])
    if family == "similarity":
        a, b, tx, ty = p
        return np.array([[a, b, tx], [-b, a, ty], [0.0, 0.0, 1.0]])
    if family == "attention":
        s, tx, ty = p
        return np.array([[s, 0.0, tx], [0.0, s, ty], [0.0, 0.0, 1.0]])
    return square_to_quad(CORNERS + p.reshape(4, 2))


def square_to_quad(quad: np.ndarray) -> np.ndarray:
    """Homography taking the corners of [-1, 1]^2 (TL, TR, BR, BL) to `quad`, in closed form.

    Closed form (Heckbert 1989, "Fundamentals of texture mapping", section 2.2.3) so that the torch
    and ONNX versions need only element-wise ops and a division, never a matrix inverse.
    """
    (x0, y0), (x1, y1), (x2, y2), (x3, y3) = np.asarray(quad, dtype=np.float64)
    sx, sy = x0 - x1 + x2 - x3, y0 - y1 + y2 - y3
    dx1, dx2, dy1, dy2 = x1 - x2, x3 - x2, y1 - y2, y3 - y2
    det = dx1 * dy2 - dx2 * dy1
    g = (sx * dy2 - dx2 * sy) / det
    h = (dx1 * sy - sx * dy1) / det
    # Unit square [0, 1]^2 -> quad, with (0,0)->TL, (1,0)->TR, (1,1)->BR, (0,1)->BL.
    unit = np.array(
        [
            [x1 - x0 + g * x1, x3 - x0 + h * x3, x0],
            [y1 - y0 + g * y1, y3 - y0 + h * y3, y0],
            [g, h, 1.0],
        ]
    )
    to_unit = np.array([[0.5, 0.0, 0.5], [0.0, 0.5, 0.5], [0.0, 0.0, 1.0]])
    return unit @ to_unit


def normalised_matrix(family: str, params, in_hw: Size, out_hw: Size) -> np.ndarray:
    """3x3 matrix from output axis-frame coordinates to input axis-frame coordinates."""
    m = frame_matrix(family, params)
    if frame(family) == "iso":
        m = iso_to_axis(in_hw) @ m @ axis_to_iso(out_hw)
    return m


def pixel_matrix(family: str, params, in_hw: Size, out_hw: Size) -> np.ndarray:
    """3x3 matrix mapping output pixels to input pixels, for cv2 warps with WARP_INVERSE_MAP."""
    m = (
        axis_to_pixel(in_hw)
        @ normalised_matrix(family, params, in_hw, out_hw)
        @ pixel_to_axis(out_hw)
    )
    return m / m[2, 2]


def angle_degrees(params) -> float:
    """Counter-clockwise content angle in (-180, 180], from rotation or similarity params."""
    p = np.asarray(params, dtype=np.float64).reshape(-1)
    return wrap_degrees(math.degrees(math.atan2(p[1], p[0])))


def rotation_params(angle_deg: float) -> np.ndarray:
    a = math.radians(angle_deg)
    return np.array([math.cos(a), math.sin(a)], dtype=np.float32)


def skew_degrees(angle: float) -> float:
    """The skew part of a content angle: the angle less its nearest quarter turn, in [-45, 45).
    Straightening by it lays text lines along an axis without choosing which way is up."""
    return float(np.mod(angle + 45.0, 90.0) - 45.0)


def wrap_degrees(angle: float | np.ndarray):
    """Wrap to (-180, 180]."""
    wrapped = 180.0 - np.mod(180.0 - np.asarray(angle, dtype=np.float64), 360.0)
    return float(wrapped) if np.ndim(wrapped) == 0 else wrapped


def page_corners(params, in_hw: Size) -> np.ndarray:
    """Projective params -> the four page corners (TL, TR, BR, BL) in input pixel coordinates.

    The output's corners are at its pixel edges, so these are where those edges land.
    """
    quad = CORNERS + np.asarray(params, dtype=np.float64).reshape(4, 2)
    return apply_matrix(axis_to_pixel(in_hw), quad)


def corner_params(corners: np.ndarray, in_hw: Size) -> np.ndarray:
    """The inverse of page_corners: four corners in input pixels -> projective params."""
    quad = apply_matrix(pixel_to_axis(in_hw), np.asarray(corners, dtype=np.float64).reshape(4, 2))
    return (quad - CORNERS).reshape(8)


def quad_area(quad: np.ndarray) -> float:
    """The area of a polygon given by its corners in order (either winding), e.g. a page's four."""
    quad = np.asarray(quad, dtype=np.float64).reshape(-1, 2)
    x, y = quad[:, 0], quad[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def is_convex(quad: np.ndarray) -> bool:
    """Whether four (or more) points, in order, make a convex polygon (either winding); False for
    non-finite points."""
    quad = np.asarray(quad, dtype=np.float64)
    if not np.isfinite(quad).all():
        return False
    edges = np.roll(quad, -1, axis=0) - quad
    following = np.roll(edges, -1, axis=0)
    cross = edges[:, 0] * following[:, 1] - edges[:, 1] * following[:, 0]
    return bool(np.all(cross > 0) or np.all(cross < 0))


def apply_matrix(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    pts = np.asarray(points, dtype=np.float64)
    h = np.hstack([pts, np.ones((len(pts), 1))]) @ m.T
    return h[:, :2] / h[:, 2:3]


def compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """Compose two output->input pixel matrices: first `outer` (e.g. perspective) then `inner`.

    `outer` maps an intermediate image to the original; `inner` maps the final output to that
    intermediate. Their product maps the final output straight to the original, so the original is
    resampled once.
    """
    m = outer @ inner
    return m / m[2, 2]


# ---------------------------------------------------------------------------------------------
# Thin-plate spline


def tps_control_points(n: int) -> np.ndarray:
    """n x n control points spread over [-1, 1]^2 in the output's axis frame, row-major, (x, y)."""
    t = np.linspace(-1.0, 1.0, n)
    gx, gy = np.meshgrid(t, t)
    return np.stack([gx.ravel(), gy.ravel()], axis=1)


def tps_kernel(r2: np.ndarray) -> np.ndarray:
    """U(r) = r^2 log r^2, with U(0) = 0."""
    return np.where(r2 > 0, r2 * np.log(np.maximum(r2, 1e-30)), 0.0)


def tps_inverse_system(n: int) -> np.ndarray:
    """Inverse of the (p+3)x(p+3) TPS system L, solved once and kept as a constant."""
    c = tps_control_points(n)
    p = len(c)
    k = tps_kernel(((c[:, None, :] - c[None, :, :]) ** 2).sum(-1))
    big_p = np.hstack([np.ones((p, 1)), c])
    system = np.zeros((p + 3, p + 3))
    system[:p, :p], system[:p, p:], system[p:, :p] = k, big_p, big_p.T
    return np.linalg.inv(system)


def tps_points(params, n: int, points: np.ndarray) -> np.ndarray:
    """Map output axis-frame points (M, 2) to input axis-frame points under TPS params."""
    c = tps_control_points(n)
    target = c + np.asarray(params, dtype=np.float64).reshape(-1, 2)
    coef = tps_inverse_system(n) @ np.vstack([target, np.zeros((3, 2))])  # (p+3, 2)
    u = tps_kernel(((points[:, None, :] - c[None, :, :]) ** 2).sum(-1))
    basis = np.hstack([u, np.ones((len(points), 1)), points])
    return basis @ coef


def axis_grid(out_hw: Size) -> np.ndarray:
    """Axis-frame coordinates of every output pixel centre, shape (H, W, 2) as (x, y)."""
    h, w = out_hw
    xs = (2.0 * np.arange(w) + 1.0) / w - 1.0
    ys = (2.0 * np.arange(h) + 1.0) / h - 1.0
    gx, gy = np.meshgrid(xs, ys)
    return np.stack([gx, gy], axis=-1)


def sampling_maps(family: str, params, in_hw: Size, out_hw: Size, tps_grid: int = 4):
    """Dense (map_x, map_y) float32 input-pixel maps for cv2.remap; works for every family."""
    grid = axis_grid(out_hw).reshape(-1, 2)
    if family == "tps":
        src = tps_points(params, tps_grid, grid)
    else:
        src = apply_matrix(normalised_matrix(family, params, in_hw, out_hw), grid)
    px = apply_matrix(axis_to_pixel(in_hw), src).reshape(out_hw[0], out_hw[1], 2)
    return px[..., 0].astype(np.float32), px[..., 1].astype(np.float32)


def tps_sampling_maps(params, in_hw: Size, out_hw: Size, tps_grid: int = 4, step: int = 8):
    """sampling_maps("tps", ...) evaluated exactly every `step` output pixels (and at the last row
    and column) and linearly interpolated in between. The spline is smooth, so the maps stay
    within a tenth of a pixel of the exact ones (tests/training/test_geometry.py), and a dense
    evaluation (a kernel per control point per pixel) took seconds for a large page."""
    h, w = out_hw
    if h * w <= 256 * 256:  # small: exact is cheap, and a grid step would span much of the input
        return sampling_maps("tps", params, in_hw, out_hw, tps_grid)
    rows = np.unique(np.r_[np.arange(0, h, step), h - 1])
    cols = np.unique(np.r_[np.arange(0, w, step), w - 1])
    gx, gy = np.meshgrid((2.0 * cols + 1.0) / w - 1.0, (2.0 * rows + 1.0) / h - 1.0)
    src = tps_points(params, tps_grid, np.stack([gx.ravel(), gy.ravel()], axis=1))
    coarse = apply_matrix(axis_to_pixel(in_hw), src).reshape(len(rows), len(cols), 2)
    # Single precision from here: the maps end as float32 anyway, and it halves the memory traffic.
    coarse = coarse.astype(np.float32).transpose(2, 0, 1)  # (2, rows, cols): one map each
    along = _interpolate(coarse, cols, np.arange(w), axis=2)
    dense = _interpolate(along, rows, np.arange(h), axis=1)
    return dense[0], dense[1]


def _interpolate(values: np.ndarray, at: np.ndarray, to: np.ndarray, axis: int) -> np.ndarray:
    """Piecewise-linear resampling of `values` known at positions `at` (increasing) along `axis`."""
    if len(at) == 1:
        return np.repeat(values, len(to), axis=axis)
    i = np.clip(np.searchsorted(at, to, side="right") - 1, 0, len(at) - 2)
    t = ((to - at[i]) / (at[i + 1] - at[i])).astype(values.dtype)
    shape = [1] * values.ndim
    shape[axis] = len(to)
    t = t.reshape(shape)
    return np.take(values, i, axis=axis) * (1 - t) + np.take(values, i + 1, axis=axis) * t
