"""Making the localiser's small copy of an image. NumPy and OpenCV only: the service uses it too.

Training data, evaluation and the service all call `localiser_input`, so the model sees the same
pixels in all three. Normalisation (scale to [0, 1], grey conversion, mean/std) is *not* here: it
lives inside the exported localiser graph.
"""

from __future__ import annotations

import cv2
import numpy as np

from stn_align.core.geometry import Size

PREPROCESS_MODES = ("stretch", "letterbox")


def to_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """HxW, HxWx1, HxWx3 or HxWx4 (RGB order) -> HxWxC with C = channels (1 grey or 3 RGB)."""
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise ValueError(
            f"expected an HxW or HxWxC image with C in 1, 3, 4; got shape {image.shape}"
        )
    if image.shape[2] == 4:
        image = image[:, :, :3]
    if image.shape[2] == channels:
        return image
    if channels == 1:
        return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)[:, :, None]
    if channels == 3:
        return np.repeat(image, 3, axis=2)
    raise ValueError(f"channels must be 1 or 3, got {channels}")


def letterbox_placement(hw: Size, size: int) -> tuple[int, int, int, int]:
    """Where an image of size hw goes inside a size x size square: (top, left, height, width).

    The scale is size / max(h, w); the image is centred. Its iso frame is then the square's axis
    frame (see stn_align.core.geometry), up to the rounding of the placed size.
    """
    h, w = hw
    scale = size / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    return (size - nh) // 2, (size - nw) // 2, nh, nw


def localiser_input(image: np.ndarray, size: int, mode: str, fill: int = 0) -> np.ndarray:
    """Resize an HxWxC uint8 image to the localiser's size x size x C input.

    mode "stretch" resizes each axis independently (axis-frame families); "letterbox" keeps the
    aspect and pads with `fill` (iso-frame families).
    """
    if mode not in PREPROCESS_MODES:
        raise ValueError(f"unknown preprocess mode {mode!r}; expected one of {PREPROCESS_MODES}")
    if image.ndim == 2:
        image = image[:, :, None]
    channels = image.shape[2]
    if mode == "stretch":
        out = cv2.resize(image, (size, size), interpolation=_interpolation(image.shape[:2], size))
    else:
        top, left, nh, nw = letterbox_placement(image.shape[:2], size)
        out = np.full((size, size, channels), fill, dtype=image.dtype)
        resized = cv2.resize(image, (nw, nh), interpolation=_interpolation(image.shape[:2], size))
        out[top : top + nh, left : left + nw] = resized.reshape(nh, nw, channels)
    return out.reshape(size, size, channels)


def _interpolation(hw: Size, size: int) -> int:
    # INTER_AREA averages when shrinking, which keeps thin text strokes visible at small sizes.
    # Below a 2x shrink linear already reads every input pixel, and OpenCV's area path for such
    # ratios took 6.3 ms against 1.3 for a 1 MP page (doc-rotation scored the same either way).
    return cv2.INTER_AREA if max(hw) >= 2 * size else cv2.INTER_LINEAR


# The service's second, closer read (service/orientation.py) reads an image's corners, each this
# share of its height and width.
QUARTER = 0.55


def quarter_boxes(hw: Size) -> list[tuple[int, int, int, int]]:
    """The four corner crops of an image of size hw as (top, left, height, width): top-left,
    top-right, bottom-left, bottom-right, each QUARTER of each side (they overlap a little)."""
    h, w = hw
    ch, cw = int(round(QUARTER * h)), int(round(QUARTER * w))
    return [(y, x, ch, cw) for y in (0, h - ch) for x in (0, w - cw)]


def quarters(image: np.ndarray, input_size: int) -> list[np.ndarray]:
    """HxW[xC] -> its four corner crops (quarter_boxes); none when the image is no larger than
    `input_size`, as then the localiser's copy of the whole image already shows every pixel."""
    hw = (int(image.shape[0]), int(image.shape[1]))
    if max(hw) <= input_size:
        return []
    return [image[y : y + ch, x : x + cw] for y, x, ch, cw in quarter_boxes(hw)]
