"""Procedural desk surfaces for phone photos of pages (NumPy and OpenCV only, no image files).

Each kind draws an RGB float32 surface of a given size in the desk plane's own pixels, so the
photo generator (photos.py) can lay it under the same perspective as the page. Kinds:

- wood: boards with seams, grain that wanders, colour from pale oak to walnut;
- cloth: a woven cloth (threads in two directions), plain, striped or checked, with folds;
- laminate: a plain plastic or painted surface with fine speckle and a sheen;
- dark: a near-black table with faint texture and reflections;
- stone: concrete or granite (noise at several scales, coloured grains);
- clutter: a plain desk with other papers, sticky notes and pens on it;
- carpet: short fibres, noisy at a fine scale;
- marble, tiles, knit: used only for evaluation photos (HELD_OUT), so the validation desks include
  surfaces no training photo had: marble veins, square tiles with grout lines (straight lines
  beside the page) and a knitted wool throw.
- random: domain randomisation (RANDOMISED, only where a training recipe asks for it with
  `randomise`): a base of noise at a random scale, under up to three layers of lines, grids, bands
  bent by noise, or patches, each with random period, width, angle and colour. No drawn kind can
  cover every desk; a model that has seen many random ones learns what a page edge is rather than
  which seven desks are not pages.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

TRAIN_KINDS = ("wood", "cloth", "laminate", "dark", "stone", "clutter", "carpet")
HELD_OUT = ("marble", "tiles", "knit")
RANDOMISED = "random"
KINDS = TRAIN_KINDS + HELD_OUT + (RANDOMISED,)


def noise(rng: np.random.Generator, hw: tuple[int, int], cells: float) -> np.ndarray:
    """Smooth noise in about [-1, 1]: `cells` random values across the longer side, upsampled."""
    h, w = hw
    cy = max(2, round(cells * h / max(h, w)) + 1)
    cx = max(2, round(cells * w / max(h, w)) + 1)
    small = rng.uniform(-1, 1, (cy, cx)).astype(np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def fractal(rng: np.random.Generator, hw: tuple[int, int], cells: float, octaves: int = 4):
    """Noise summed over octaves (each twice as fine, half as strong), about [-1, 1]."""
    out = np.zeros(hw, np.float32)
    amp, total = 1.0, 0.0
    for k in range(octaves):
        out += amp * noise(rng, hw, cells * 2**k)
        total += amp
        amp *= 0.5
    return out / total


def _colour(rng: np.random.Generator, base, spread: float = 20.0) -> np.ndarray:
    return np.clip(np.asarray(base, np.float32) + rng.normal(0, spread, 3), 0, 255)


def _shade(field: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """A grey-level field (1 = the colour itself) times an RGB colour -> HxWx3."""
    return field[:, :, None] * colour[None, None, :]


def wood(rng, hw):
    h, w = hw
    base = _colour(
        rng, [[205, 165, 115], [150, 100, 60], [95, 60, 35], [190, 185, 175]][int(rng.integers(4))]
    )
    boards = int(rng.integers(1, 6))
    ys = np.arange(h, dtype=np.float32)[:, None] / max(h, w)
    xs = np.arange(w, dtype=np.float32)[None, :] / max(h, w)
    wobble = fractal(rng, hw, 3, 3) * rng.uniform(0.01, 0.05)
    rings = np.sin((ys + wobble) * rng.uniform(60, 220) + noise(rng, hw, 6) * 2.0)
    streaks = cv2.resize(rng.normal(0, 1, (h, max(2, w // 40))).astype(np.float32), (w, h))
    field = 1.0 + rings * rng.uniform(0.03, 0.12) + streaks * rng.uniform(0.02, 0.06)
    board = np.floor(ys * boards + rng.uniform(0, 1)).astype(np.int32)
    tones = rng.uniform(0.85, 1.12, boards + 2).astype(np.float32)
    field *= tones[np.clip(board, 0, boards + 1)]
    seams = np.abs((ys * boards + 0.5) % 1.0 - 0.5) * max(h, w) / max(1, boards) < 1.0
    field[np.broadcast_to(seams, hw)] *= 0.55
    out = _shade(field, base)
    if rng.random() < 0.5:  # boards run across the other way
        out = cv2.resize(out.transpose(1, 0, 2).copy(), (w, h))
    del xs
    return out


def cloth(rng, hw):
    h, w = hw
    base = _colour(rng, rng.uniform(30, 220, 3), 10)
    period = rng.uniform(2.0, 6.0)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, math.pi)
    u = xs * math.cos(angle) + ys * math.sin(angle)
    v = -xs * math.sin(angle) + ys * math.cos(angle)
    weave = np.sin(u * 2 * math.pi / period) * np.sin(v * 2 * math.pi / period)
    field = 1.0 + weave * rng.uniform(0.03, 0.12)
    pattern = rng.random()
    colour = _shade(field, base)
    if pattern < 0.5:  # stripes or checks in a second colour
        other = _colour(rng, rng.uniform(30, 220, 3), 10)
        width = rng.uniform(0.02, 0.1) * max(h, w)
        stripe = (np.sin(u * math.pi / width) > 0.3).astype(np.float32)
        if pattern < 0.25:
            stripe = np.maximum(stripe, (np.sin(v * math.pi / width) > 0.3).astype(np.float32))
        colour = colour * (1 - stripe[:, :, None]) + _shade(field, other) * stripe[:, :, None]
    folds = 1.0 + noise(rng, hw, rng.uniform(2, 5)) * rng.uniform(0.05, 0.25)
    return colour * folds[:, :, None]


def laminate(rng, hw):
    base = _colour(rng, rng.uniform(60, 245, 3), 15)
    speckle = rng.normal(0, rng.uniform(0.01, 0.05), hw).astype(np.float32)
    field = 1.0 + speckle + noise(rng, hw, 2) * rng.uniform(0.02, 0.1)
    return _shade(field, base)


def dark(rng, hw):
    base = _colour(rng, [25, 22, 20], 8)
    field = 1.0 + fractal(rng, hw, 6, 3) * rng.uniform(0.1, 0.4)
    sheen = np.maximum(noise(rng, hw, 2), 0) * rng.uniform(0, 40)
    return _shade(field, base) + sheen[:, :, None]


def stone(rng, hw):
    base = _colour(rng, [150, 148, 145], 35)
    field = 1.0 + fractal(rng, hw, rng.uniform(8, 30), 5) * rng.uniform(0.08, 0.25)
    out = _shade(field, base)
    if rng.random() < 0.6:  # granite: coloured grains
        grains = rng.random(hw) < rng.uniform(0.02, 0.12)
        tone = _colour(rng, rng.uniform(20, 240, 3), 30)
        out[grains] = out[grains] * 0.3 + tone * 0.7
        out = cv2.GaussianBlur(out, (0, 0), 0.7)
    return out


def carpet(rng, hw):
    base = _colour(rng, rng.uniform(40, 200, 3), 15)
    fibres = rng.normal(0, 1, hw).astype(np.float32)
    fibres = cv2.GaussianBlur(fibres, (0, 0), rng.uniform(0.6, 1.5)) * rng.uniform(0.2, 0.5)
    field = 1.0 + fibres + noise(rng, hw, 4) * 0.08
    return _shade(field, base)


def clutter(rng, hw, sheets: list[np.ndarray] | None = None):
    """A plain desk with other papers, sticky notes and pens: straight edges that are not the
    page's own."""
    h, w = hw
    out = laminate(rng, hw) if rng.random() < 0.5 else wood(rng, hw)
    side = max(h, w)
    for _ in range(int(rng.integers(1, 6))):
        sw, sh = (rng.uniform(0.15, 0.5, 2) * side).astype(int)
        centre = rng.uniform(0, 1, 2) * (w, h)
        box = cv2.boxPoints(((float(centre[0]), float(centre[1])), (float(sw), float(sh)),
                             float(rng.uniform(0, 180))))  # fmt: skip
        if sheets and rng.random() < 0.6:
            sheet = sheets[int(rng.integers(len(sheets)))].astype(np.float32)
            if sheet.ndim == 2:
                sheet = np.repeat(sheet[:, :, None], 3, axis=2)
            src = np.array([[0, 0], [sheet.shape[1], 0], [sheet.shape[1], sheet.shape[0]],
                            [0, sheet.shape[0]]], np.float32)  # fmt: skip
            m = cv2.getPerspectiveTransform(src, box.astype(np.float32))
            cv2.warpPerspective(sheet, m, (w, h), dst=out, borderMode=cv2.BORDER_TRANSPARENT)
        else:
            tone = [250, 245, 240] if rng.random() < 0.6 else rng.uniform(120, 255, 3)
            cv2.fillConvexPoly(out, box.astype(np.int32), _colour(rng, tone, 8).tolist())
    for _ in range(int(rng.integers(0, 4))):  # pens and pencils
        p = rng.uniform(0, 1, 2) * (w, h)
        a = rng.uniform(0, math.pi)
        q = p + np.array([math.cos(a), math.sin(a)]) * rng.uniform(0.1, 0.25) * side
        thick = max(1, int(rng.uniform(0.004, 0.012) * side))
        colour = _colour(rng, rng.uniform(0, 255, 3), 20).tolist()
        cv2.line(out, tuple(int(v) for v in p), tuple(int(v) for v in q), colour, thick)
    return out


def marble(rng, hw):
    base = _colour(rng, [225, 222, 215], 20)
    turb = fractal(rng, hw, rng.uniform(3, 8), 5)
    ys, xs = np.mgrid[0 : hw[0], 0 : hw[1]].astype(np.float32) / max(hw)
    veins = np.abs(np.sin((xs + ys) * rng.uniform(4, 12) + turb * rng.uniform(4, 9)))
    field = 1.0 - (1.0 - veins) ** rng.uniform(6, 20) * rng.uniform(0.2, 0.5)
    return _shade(field, base)


def tiles(rng, hw):
    h, w = hw
    base = _colour(rng, rng.uniform(80, 240, 3), 15)
    size = rng.uniform(0.08, 0.3) * max(h, w)
    grout = max(1.0, rng.uniform(0.004, 0.012) * max(h, w))
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    offset = rng.uniform(0, size, 2)
    gx, gy = (xs + offset[0]) % size, (ys + offset[1]) % size
    lines = (gx < grout) | (gy < grout)
    cells = (np.floor((xs + offset[0]) / size) * 7 + np.floor((ys + offset[1]) / size)) % 5
    field = 1.0 + (cells - 2) * rng.uniform(0, 0.02) + noise(rng, hw, 3) * 0.04
    out = _shade(field.astype(np.float32), base)
    out[lines] = _colour(rng, [120, 115, 110], 30)
    return out


def knit(rng, hw):
    base = _colour(rng, rng.uniform(40, 230, 3), 15)
    period = rng.uniform(4, 10)
    ys, xs = np.mgrid[0 : hw[0], 0 : hw[1]].astype(np.float32)
    stitch = np.abs(np.sin(xs * math.pi / period + np.abs(np.sin(ys * math.pi / period)) * 1.5))
    field = 0.8 + 0.3 * stitch + noise(rng, hw, 3) * 0.1
    return _shade(field.astype(np.float32), base)


def randomised(rng, hw):
    h, w = hw
    side = max(h, w)
    pale = rng.random() < 0.3  # a white or pale desk: little contrast with the page
    base = _colour(rng, [232, 229, 224] if pale else rng.uniform(0, 255, 3), 15)
    octaves = int(rng.integers(1, 6))
    field = 1.0 + fractal(rng, hw, rng.uniform(2, 40), octaves) * rng.uniform(0, 0.35)
    out = _shade(field, base)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    for _ in range(int(rng.integers(0, 4))):
        angle = rng.uniform(0, math.pi)
        u = xs * math.cos(angle) + ys * math.sin(angle)
        v = -xs * math.sin(angle) + ys * math.cos(angle)
        layer = int(rng.integers(3))
        if layer == 0:  # parallel lines, or a grid of them
            period = rng.uniform(0.03, 0.3) * side
            width = max(1.0, rng.uniform(0.002, 0.02) * side)
            mask = (u % period) < width
            if rng.random() < 0.5:
                mask |= (v % (period * rng.uniform(0.5, 2.0))) < width
            alpha = mask.astype(np.float32)
        elif layer == 1:  # bands bent by noise: veins, grain, ripples
            turb = fractal(rng, hw, rng.uniform(2, 10), 4) * rng.uniform(0, 8)
            bands = np.abs(np.sin(u / side * rng.uniform(3, 40) + turb))
            alpha = (1.0 - bands) ** rng.uniform(1, 20)
        else:  # patches: noise above a level
            alpha = (noise(rng, hw, rng.uniform(3, 15)) > rng.uniform(0.0, 0.7)).astype(np.float32)
            alpha = cv2.GaussianBlur(alpha, (0, 0), rng.uniform(0.5, 3))
        alpha *= rng.uniform(0.2, 1.0)
        colour = _colour(rng, rng.uniform(0, 255, 3), 20)
        out = out * (1 - alpha[:, :, None]) + colour[None, None, :] * alpha[:, :, None]
    return out


DRAW = {
    "wood": wood,
    "cloth": cloth,
    "laminate": laminate,
    "dark": dark,
    "stone": stone,
    "carpet": carpet,
    "marble": marble,
    "tiles": tiles,
    "knit": knit,
    RANDOMISED: randomised,
}


def surface(
    kind: str, rng: np.random.Generator, hw: tuple[int, int], sheets: list | None = None
) -> np.ndarray:
    """An RGB float32 desk surface of `kind` (KINDS), hw pixels, values about 0-255."""
    if kind not in KINDS:
        raise ValueError(f"unknown surface {kind!r}; expected one of {KINDS}")
    out = clutter(rng, hw, sheets) if kind == "clutter" else DRAW[kind](rng, hw)
    return np.clip(out, 0, 255).astype(np.float32)
