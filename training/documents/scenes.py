"""Pictures for synthetic pages: scenes with an up and a down, as illustrations and photos have.

A page that is mostly a picture says which way is up through the picture itself: a lighter sky
above a horizon, ground below, trees and houses standing on it, hatching in an engraving. None of
it is text, so the classifier has to learn it from pictures; `scene(rng, hw)` draws one, grey
uint8 HxW, upright, in one of three styles (a photo-like landscape, a line engraving, a plain
field with a figure standing in it).
"""

from __future__ import annotations

import cv2
import numpy as np

from stn_align.training.documents.degrade import smooth_field


def scene(rng: np.random.Generator, hw: tuple[int, int]) -> np.ndarray:
    style = rng.random()
    if style < 0.45:
        return _landscape(rng, hw)
    if style < 0.8:
        return _engraving(rng, hw)
    return _portrait(rng, hw)


def _horizon(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """The horizon's row at each column: a gentle line of hills."""
    base = h * rng.uniform(0.35, 0.7)
    xs = np.arange(w, dtype=np.float32)
    hills = np.zeros(w, np.float32)
    for _ in range(3):
        phase = xs / w * rng.uniform(1, 6) * np.pi + rng.uniform(0, 6)
        hills += rng.uniform(0.02, 0.08) * h * np.sin(phase)
    return (base + hills).astype(np.float32)


def _landscape(rng: np.random.Generator, hw: tuple[int, int]) -> np.ndarray:
    """Sky lighter at the top, ground darker and textured below a horizon, things standing."""
    h, w = hw
    rows = np.arange(h, dtype=np.float32)[:, None]
    horizon = _horizon(rng, h, w)[None, :]
    sky_top, sky_low = rng.uniform(170, 250), rng.uniform(140, 230)
    sky = sky_top + (sky_low - sky_top) * rows / max(1, h)
    ground_tone = rng.uniform(40, 140)
    ground = ground_tone + (smooth_field(rng, hw, 6) - 0.5) * 60 - rows / max(1, h) * 20
    image = np.where(rows < horizon, sky, ground).astype(np.float32)
    if rng.random() < 0.5:  # clouds
        image += (smooth_field(rng, hw, 5) - 0.5) * 30 * (rows < horizon)
    for _ in range(int(rng.integers(1, 7))):
        _standing_thing(rng, image, horizon[0])
    image += rng.standard_normal(hw).astype(np.float32) * rng.uniform(2, 10)
    return np.clip(image, 0, 255).astype(np.uint8)


def _standing_thing(rng: np.random.Generator, image: np.ndarray, horizon: np.ndarray) -> None:
    """A tree (trunk and crown) or a house (walls, a pitched roof, windows) on the ground."""
    h, w = image.shape
    x = int(rng.integers(0, w))
    foot = int(min(h - 1, horizon[x] + rng.uniform(0, 0.3) * (h - horizon[x])))
    size = rng.uniform(0.1, 0.45) * h
    tone = float(rng.uniform(10, 90))
    if rng.random() < 0.6:
        trunk = max(2, int(size * 0.08))
        top = int(foot - size)
        cv2.rectangle(image, (x - trunk, top + int(size * 0.4)), (x + trunk, foot), tone, -1)
        axes = (max(2, int(size * rng.uniform(0.2, 0.4))), max(2, int(size * 0.35)))
        cv2.ellipse(image, (x, top + axes[1]), axes, 0, 0, 360, tone + 20, -1)
    else:
        half = max(3, int(size * rng.uniform(0.3, 0.6)))
        top = int(foot - size * 0.6)
        cv2.rectangle(image, (x - half, top), (x + half, foot), tone + 60, -1)
        roof = np.array([[x - half - 4, top], [x + half + 4, top], [x, int(top - size * 0.4)]])
        cv2.fillPoly(image, [roof.astype(np.int32)], tone)
        for k in range(int(rng.integers(1, 4))):
            wx = x - half + (k + 1) * 2 * half // 4
            cv2.rectangle(image, (wx - 3, top + 6), (wx + 3, top + 14), tone, -1)


def _engraving(rng: np.random.Generator, hw: tuple[int, int]) -> np.ndarray:
    """Black lines on white: horizontal hatching, denser towards the ground, a horizon line and
    outlined things standing on it (a book plate, a woodcut)."""
    h, w = hw
    image = np.full(hw, 255.0, np.float32)
    horizon = _horizon(rng, h, w)
    spacing = rng.uniform(3, 8)
    y = 0.0
    while y < h:
        row = int(y)
        below = row > float(horizon.mean())
        if below or rng.random() < 0.4:
            wobble = (np.sin(np.arange(w) / rng.uniform(20, 80)) * rng.uniform(0, 2)).astype(int)
            pts = np.stack([np.arange(w), np.clip(row + wobble, 0, h - 1)], 1)
            cv2.polylines(image, [pts.astype(np.int32)], False, 0.0, 1)
        y += spacing * (0.5 if below else 1.6)
    pts = np.stack([np.arange(w), horizon], 1).astype(np.int32)
    cv2.polylines(image, [pts], False, 0.0, 2)
    canvas = image.copy()
    for _ in range(int(rng.integers(1, 5))):
        _standing_thing(rng, canvas, horizon)
    outline = cv2.Canny(canvas.astype(np.uint8), 20, 60)
    image = np.minimum(image, np.where(outline > 0, 0.0, 255.0))
    if rng.random() < 0.5:  # the sun or moon, up in the sky
        cx, cy = int(rng.integers(0, w)), int(rng.uniform(0.05, 0.3) * h)
        cv2.circle(image, (cx, cy), max(3, int(0.06 * min(h, w))), 0.0, 2)
    return image.astype(np.uint8)


def _portrait(rng: np.random.Generator, hw: tuple[int, int]) -> np.ndarray:
    """A figure standing in a plain field: a head above shoulders above a body, lit from above."""
    h, w = hw
    rows = np.arange(h, dtype=np.float32)[:, None]
    image = rng.uniform(150, 240) - rows / max(1, h) * rng.uniform(0, 60) + np.zeros(hw, np.float32)
    tone = float(rng.uniform(20, 110))
    cx = int(w * rng.uniform(0.3, 0.7))
    head = max(3, int(min(h, w) * rng.uniform(0.08, 0.16)))
    top = int(h * rng.uniform(0.08, 0.25))
    cv2.circle(image, (cx, top + head), head, tone + 40, -1)
    shoulders = np.array(
        [[cx - 3 * head, h], [cx - 2 * head, top + 3 * head], [cx + 2 * head, top + 3 * head],
         [cx + 3 * head, h]]
    )  # fmt: skip
    cv2.fillPoly(image, [shoulders.astype(np.int32)], tone)
    image += rng.standard_normal(hw).astype(np.float32) * rng.uniform(2, 8)
    return np.clip(image, 0, 255).astype(np.uint8)
