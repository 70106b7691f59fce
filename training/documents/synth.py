"""Geometric transforms of pages with OpenCV: rotations on an expanded canvas and photographs of a
page on a background. NumPy and OpenCV only: training data and `stn evaluate` both use these, so a
model is scored on exactly the kind of transform it was trained on.

Targets follow core/geometry.py:
- rotation: the content's counter-clockwise angle in degrees (theta = cos, sin of it);
- projective: where the page's corners TL, TR, BR, BL land in the photo, in the photo's axis frame.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from stn_align.core import geometry
from stn_align.training.documents.degrade import smooth_field


def border_tone(image: np.ndarray) -> np.ndarray:
    """Median colour of the outer ring of an image: a natural fill when its canvas grows."""
    h, w = image.shape[:2]
    k = max(1, min(h, w) // 50)
    ring = np.concatenate(
        [
            image[:k].reshape(-1, *image.shape[2:]),
            image[-k:].reshape(-1, *image.shape[2:]),
            image[:, :k].reshape(-1, *image.shape[2:]),
            image[:, -k:].reshape(-1, *image.shape[2:]),
        ]
    )
    return np.median(ring, axis=0)


def rotate_expand(image: np.ndarray, angle: float, fill) -> np.ndarray:
    """Rotate the content counter-clockwise by `angle` degrees on a canvas grown to hold it all."""
    h, w = image.shape[:2]
    m = cv2.getRotationMatrix2D(((w - 1) / 2.0, (h - 1) / 2.0), angle, 1.0)
    c, s = abs(m[0, 0]), abs(m[0, 1])
    nw, nh = int(math.ceil(h * s + w * c - 1e-6)), int(math.ceil(h * c + w * s - 1e-6))
    m[0, 2] += (nw - w) / 2.0
    m[1, 2] += (nh - h) / 2.0
    values = [float(fill)] * 4 if np.ndim(fill) == 0 else [float(v) for v in np.ravel(fill)]
    border = tuple(values)
    return cv2.warpAffine(
        image,
        m,
        (nw, nh),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=border,
    )


def random_fill(image: np.ndarray, rng: np.random.Generator):
    """What fills the corners a rotation uncovers: white, black, the page's own tone or anything."""
    u = rng.random()
    if u < 0.35:
        return 255
    if u < 0.6:
        return border_tone(image)
    if u < 0.8:
        return int(rng.integers(0, 40))
    return int(rng.integers(0, 256))


def background(
    rng: np.random.Generator, hw: tuple[int, int], clutter: np.ndarray | None = None
) -> np.ndarray:
    """A grey surface for a page to lie on: a table, a desk with papers, fabric, a dark scanner."""
    h, w = hw
    bg: np.ndarray
    kind = rng.integers(4)
    base = rng.uniform(0, 200)
    if kind == 0:  # plain, with uneven light
        bg = base + (smooth_field(rng, hw, 3) - 0.5) * rng.uniform(10, 80)
    elif kind == 1:  # wood-like stripes
        xs = np.linspace(0, rng.uniform(10, 60), w, dtype=np.float32)
        warp = smooth_field(rng, hw, 4) * rng.uniform(2, 10)
        stripes = np.sin(xs[None, :] + warp)
        bg = base + stripes * rng.uniform(5, 35)
        if rng.random() < 0.5:
            bg = bg.T if bg.shape[0] == bg.shape[1] else cv2.resize(bg.T.copy(), (w, h))
    elif kind == 2:  # clutter: random shapes
        bg = np.full(hw, base, np.float32)
        for _ in range(int(rng.integers(3, 15))):
            x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
            r = int(rng.integers(5, max(6, min(h, w) // 4)))
            tone = float(rng.uniform(0, 255))
            if rng.random() < 0.5:
                cv2.circle(bg, (x, y), r, tone, -1)
            else:
                cv2.rectangle(bg, (x, y), (x + r, y + int(r * rng.uniform(0.3, 2))), tone, -1)
        bg = cv2.GaussianBlur(bg, (0, 0), rng.uniform(0.5, 4))
    else:  # another sheet of text under the page
        if clutter is not None:
            bg = cv2.resize(clutter, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32)
            bg = bg * rng.uniform(0.4, 1.0)
        else:
            bg = np.full(hw, base, np.float32)
    bg = bg + rng.standard_normal(hw, dtype=np.float32) * rng.uniform(1, 8)
    return np.clip(bg, 0, 255).astype(np.uint8)


def random_quad(
    rng: np.random.Generator, page_hw, canvas_hw, max_corner: float, max_rotation: float
):
    """Where a page's corners (TL, TR, BR, BL) land on the canvas, in pixel coordinates.

    The page is scaled to fill 45-95% of the canvas, turned in-plane by up to max_rotation degrees,
    moved, and each corner is pushed by up to max_corner of the page's size (perspective).
    """
    ph, pw = page_hw
    ch, cw = canvas_hw
    for _ in range(50):
        fill = rng.uniform(0.45, 0.95)
        scale = fill * min(cw / pw, ch / ph)
        half = np.array([pw, ph]) * scale / 2
        rect = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * half
        a = math.radians(rng.uniform(-max_rotation, max_rotation))
        rot = np.array([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]])
        quad = rect @ rot.T + rng.uniform(-1, 1, (4, 2)) * max_corner * half * 2
        centre = np.array([cw, ch]) / 2 + rng.uniform(-0.15, 0.15, 2) * np.array([cw, ch])
        quad = quad + centre - 0.5
        # Keep the page mostly in view and convex (a photo always shows most of the page).
        margin = -0.03 * np.array([cw, ch])
        inside = np.all(quad >= margin) and np.all(quad <= np.array([cw, ch]) - 1 - margin)
        if inside and geometry.is_convex(quad):
            return quad
    raise RuntimeError("could not place the page on the canvas; lower max_corner or max_rotation")


def scanned_sheet(page: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The page as a scanner sees it: the sheet a little crooked and off-centre on the scanner's
    dark lid, whose frame shows along some edges. The whole scan is the page that a perspective
    target outlines (as in `stn evaluate`, where real scans with such frames are photographed).

    >>> rng = np.random.default_rng(0)
    >>> scan = scanned_sheet(np.full((100, 80), 250, np.uint8), rng)
    >>> scan.shape[0] >= 100 and scan.shape[1] >= 80 and int(scan.min()) < 70
    True
    """
    h, w = page.shape[:2]
    tone = int(rng.integers(0, 70))
    pads = [rng.uniform(0.01, 0.12) if rng.random() < 0.5 else 0.0 for _ in range(4)]
    if not any(pads):
        pads[int(rng.integers(4))] = rng.uniform(0.01, 0.12)
    top, bottom, left, right = (int(p * (h if k < 2 else w)) for k, p in enumerate(pads))
    size = (w + left + right, h + top + bottom)
    angle = rng.uniform(-5, 5) if rng.random() < 0.6 else 0.0
    m = cv2.getRotationMatrix2D(((w - 1) / 2.0, (h - 1) / 2.0), angle, 1.0)
    m[:, 2] += (left, top)
    return cv2.warpAffine(
        page, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=tone
    )


def place_page(page: np.ndarray, canvas: np.ndarray, quad: np.ndarray) -> np.ndarray:
    """Warp `page` so that its outer corners land on `quad` (pixel coordinates) over `canvas`."""
    ph, pw = page.shape[:2]
    src = np.array(
        [[-0.5, -0.5], [pw - 0.5, -0.5], [pw - 0.5, ph - 0.5], [-0.5, ph - 0.5]], np.float32
    )
    m = cv2.getPerspectiveTransform(src, quad.astype(np.float32))
    out = canvas.copy()
    cv2.warpPerspective(
        page,
        m,
        (canvas.shape[1], canvas.shape[0]),
        dst=out,
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_TRANSPARENT,
    )
    return out


def quad_params(quad: np.ndarray, canvas_hw) -> np.ndarray:
    """Projective theta for a page quad: corners in the canvas axis frame minus the unit corners."""
    axis = geometry.apply_matrix(geometry.pixel_to_axis(canvas_hw), quad)
    return (axis - geometry.CORNERS).reshape(-1).astype(np.float32)


def canvas_size(rng: np.random.Generator, long_side: float) -> tuple[int, int]:
    """A photo's (h, w): portrait or landscape, 4:3, 3:2, 16:9 or square."""
    ratio = float(rng.choice([4 / 3, 3 / 2, 16 / 9, 1.0]))
    short = long_side / ratio
    return (int(long_side), int(short)) if rng.random() < 0.6 else (int(short), int(long_side))
