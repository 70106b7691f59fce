"""A projective model's second, closer read: the photo cropped to the page the first read found.

The localiser sees the whole photo squeezed to its input (doc-perspective: 384 px), so a page that
covers a third of the frame gets a third of those pixels. Cropped to the first read's corners,
with MARGIN of the page's width and height added on each side (clipped to the photo), the page
fills the input, and the second read's corners are kept; the corner confidence stays the first
read's, which is what the threshold was chosen on. A crop that would keep nearly all of the photo
is not read again (it would see the same thing), nor is a page covering MAX_PAGE_AREA of the photo
or more.

MARGIN was chosen on phone photos of the training sources' pages (0, 5, 10, 25 and 50%; a third
read gained little more), MAX_PAGE_AREA on the same photos against the chain's speed, and both
were confirmed on the validation photos (exported/doc-perspective.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from stn_align.core import geometry
from stn_align.service.models import Model

MARGIN = 0.1  # of the first read's page width (height) added left and right (above and below)
MAX_AREA = 0.9  # crops keeping more of the photo's area than this are not read again
# Pages the first read found covering this share of the photo or more are not read again: the
# gain is in small pages, and the chain doc-perspective+doc-rotation must keep 25 pages/s.
MAX_PAGE_AREA = 0.4
MIN_SIDE = 64  # pixels; a smaller crop is not read again

Localise = Callable[[Model, Sequence[np.ndarray]], list[np.ndarray]]


def crop_box(corners: np.ndarray, hw: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) of the crop around four corners (pixels, x, y) in a photo of size hw, or
    None when it is not worth a second read."""
    h, w = hw
    corners = np.asarray(corners, dtype=np.float64).reshape(4, 2)
    if not np.isfinite(corners).all():
        return None
    if geometry.quad_area(corners) >= MAX_PAGE_AREA * h * w:
        return None
    (left, top), (right, bottom) = corners.min(axis=0), corners.max(axis=0)
    pad_x, pad_y = MARGIN * (right - left), MARGIN * (bottom - top)
    x0, y0 = max(0, int(np.floor(left - pad_x))), max(0, int(np.floor(top - pad_y)))
    x1, y1 = min(w, int(np.ceil(right + pad_x))), min(h, int(np.ceil(bottom + pad_y)))
    if min(x1 - x0, y1 - y0) < MIN_SIDE or (x1 - x0) * (y1 - y0) > MAX_AREA * h * w:
        return None
    return x0, y0, x1, y1


def read_again(
    model: Model, seen: np.ndarray, theta: np.ndarray, localise: Localise
) -> tuple[np.ndarray, bool]:
    """theta of the first read on `seen` (the stage's input, in the model's channels) -> the
    second read's theta on the crop around its page, and whether it was read again."""
    hw = (int(seen.shape[0]), int(seen.shape[1]))
    box = crop_box(geometry.page_corners(theta, hw), hw)
    if box is None:
        return theta, False
    x0, y0, x1, y1 = box
    crop = np.ascontiguousarray(seen[y0:y1, x0:x1])
    (row,) = localise(model, [model.small_copy(crop)])
    again, _ = model.split(row)
    if not np.isfinite(again).all():
        return theta, False
    found = geometry.page_corners(again, (y1 - y0, x1 - x0)) + np.array([x0, y0])
    return geometry.corner_params(found, hw).astype(np.float32), True
