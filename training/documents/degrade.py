"""Paper, ink and the artefacts of scanners and phone cameras, applied to a base page on the fly.

Each function takes a grey uint8 image and a seeded numpy Generator and returns a new image; none of
them moves content, so they never change the target transform.
"""

from __future__ import annotations

import cv2
import numpy as np


def smooth_field(rng: np.random.Generator, hw: tuple[int, int], cells: int = 4) -> np.ndarray:
    """A smooth random field in [0, 1] of size hw: bicubic upsampling of a few random values."""
    small = rng.random((cells, cells)).astype(np.float32)
    return np.clip(cv2.resize(small, (hw[1], hw[0]), interpolation=cv2.INTER_CUBIC), 0, 1)


def ink_on_paper(
    ink: np.ndarray, rng: np.random.Generator, bleed: np.ndarray | None = None
) -> np.ndarray:
    """Colour an ink mask (255 paper, 0 ink): paper tone, ink tone, texture, bleed-through."""
    hw = ink.shape[:2]
    coverage = 1.0 - ink.astype(np.float32) / 255.0
    paper = rng.uniform(175, 255)
    ink_tone = rng.uniform(0, min(110, paper - 60))
    page = paper - (paper - ink_tone) * coverage
    if rng.random() < 0.6:  # paper grain
        page += rng.standard_normal(hw, dtype=np.float32) * rng.uniform(1, 6)
    if rng.random() < 0.3:  # blotchy paper, e.g. old or recycled
        page += (smooth_field(rng, hw, 8) - 0.5) * rng.uniform(5, 30)
    if bleed is not None and rng.random() < 0.25:  # the other side of the sheet shows through
        back = cv2.resize(cv2.flip(bleed, 1), (hw[1], hw[0]), interpolation=cv2.INTER_AREA)
        page -= (1.0 - back.astype(np.float32) / 255.0) * rng.uniform(10, 45)
    return np.clip(page, 0, 255).astype(np.uint8)


def lighting(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Uneven light and a soft shadow, as on phone photos and book scans."""
    out = image.astype(np.float32)
    hw = image.shape[:2]
    if rng.random() < 0.5:
        out *= 1.0 - rng.uniform(0.1, 0.45) * smooth_field(rng, hw, 3)
    if rng.random() < 0.25:  # a shadow band along one edge (a hand, the book's gutter)
        h, w = hw
        ramp = np.linspace(
            1, 0, int(rng.integers(max(2, w // 20), max(3, w // 3))), dtype=np.float32
        )
        band = np.ones(w, np.float32)
        band[: len(ramp)] = 1 - rng.uniform(0.2, 0.6) * ramp
        band = band if rng.random() < 0.5 else band[::-1]
        out *= (
            band[None, :] if rng.random() < 0.5 else cv2.resize(band[None, :], (h, 1)).reshape(h, 1)
        )
    return np.clip(out, 0, 255).astype(np.uint8)


def binarise(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Fax-like or thresholded scans: black and white only."""
    if rng.random() < 0.5:
        _, out = cv2.threshold(image, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        return out
    block = int(rng.integers(5, 20)) * 2 + 1
    return cv2.adaptiveThreshold(
        image, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY, block, 10
    )


def dark_border(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Dark bands at some edges: the scanner lid or the table around a page."""
    h, w = image.shape[:2]
    tone = int(rng.integers(0, 70))
    sides = rng.random(4) < 0.5
    pad = [
        int(rng.uniform(0.01, 0.08) * (h if i < 2 else w)) if s else 0 for i, s in enumerate(sides)
    ]
    return cv2.copyMakeBorder(
        image, pad[0], pad[1], pad[2], pad[3], cv2.BORDER_CONSTANT, value=tone
    )


def partial(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A crop of the page: a zoomed-in scan, or a page cut off at an edge."""
    h, w = image.shape[:2]
    ch, cw = int(h * rng.uniform(0.4, 0.95)), int(w * rng.uniform(0.4, 0.95))
    y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    return image[y : y + ch, x : x + cw]


def camera(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Blur, sensor noise and JPEG, applied last (after the geometric transform)."""
    out = image
    if rng.random() < 0.4:
        sigma = rng.uniform(0.3, 1.5)
        out = cv2.GaussianBlur(out, (0, 0), sigma)
    if rng.random() < 0.5:
        noise = rng.standard_normal(out.shape, dtype=np.float32) * rng.uniform(2, 12)
        out = np.clip(out.astype(np.float32) + noise, 0, 255).astype(np.uint8)
    if rng.random() < 0.4:
        quality = int(rng.integers(25, 90))
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, quality])
        decoded = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE) if ok else None
        out = out if decoded is None else decoded
    return out
