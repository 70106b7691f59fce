"""Phone photos of a page lying on a desk: a pinhole camera over a tilted plane (NumPy and OpenCV).

    photo, corners, conditions = phone_photo(page_rgb, rng, long_side=1200, recipe="eval")

The page lies flat on the desk plane, turned in-plane by any angle; the camera looks at it from
0-45 degrees off the plane's normal, from a distance that makes the page cover 20-95% of the
frame, sometimes with one or two corners outside it. The desk surface (textures.py) is drawn in the
plane's own coordinates and seen through the same homography as the page. Then, in this order:

- a drop shadow beside the page's edges (the sheet is never quite flat);
- light: exposure, a colour cast (the main light warm or cool), a gradient across the desk, uneven
  light, vignetting, and cast shadows: a shape between the light and the desk (an edge, a hand, an
  arm, a polygon) darkens whatever it covers to the ambient light, the same texture on both sides
  of its edge, which is hard or soft;
- glare: a soft patch where the surface reflects the light, its core clipped to white;
- the camera: defocus or motion blur, sensor noise, sharpening and JPEG (quality 60-90).

`corners` are where the page's own TL, TR, BR, BL land in photo pixels (pixel-edge convention, as in
synth.place_page); they may lie outside the photo. `conditions` says what was drawn, for evaluation
tables. recipe "train" draws the training desks and shadow shapes; "eval" also draws the held-out
ones (textures.HELD_OUT, SHADOWS_HELD_OUT), so validation photos are made another way than the
training photos, not only with other seeds. `randomise` (training only): that share of photos gets a
randomised desk (textures.RANDOMISED) and, of those with a cast shadow, that share gets several
shadows at once (RANDOM_SHADOW); 0 draws exactly the photos it drew before the option existed.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from stn_align.core import geometry
from stn_align.training.documents import textures

RECIPES = ("train", "eval")
SHADOWS = ("edge", "blob", "arm", "polygon")
SHADOWS_HELD_OUT = ("phone", "bars")
RANDOM_SHADOW = "several"  # two to four of SHADOWS at once, half the time cast from one side
OUT_OF_FRAME = 0.2  # share of photos with one or two corners outside the frame
CAST_SHADOW = 0.65  # share of photos with a shadow cast across the desk


def canvas_hw(rng: np.random.Generator, long_side: float) -> tuple[int, int]:
    ratio = float(rng.choice([4 / 3, 4 / 3, 3 / 2, 16 / 9, 1.0]))
    long_px, short_px = int(long_side), int(round(long_side / ratio))
    return (long_px, short_px) if rng.random() < 0.6 else (short_px, long_px)


def camera(rng, page_wh, hw, coverage: float, out_of_frame: bool):
    """(3x3 homography plane -> photo pixels, page corners in photo pixels, tilt degrees) for a
    camera that sees the page (corners at +-page_wh/2 on the plane) at about `coverage` of the
    frame's area; None when the page cannot be placed so.

    The camera looks at the page's centre; the photo is then a crop of a wider one around it
    (the principal point off-centre, still a pinhole camera), placed so that the page lies inside
    the frame, or, with `out_of_frame`, with one or two corners up to 15% of the frame outside."""
    h, w = hw
    f = (max(h, w) / 2) / math.tan(math.radians(rng.uniform(55, 75)) / 2)
    k = np.array([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1]])
    pw, ph = page_wh
    plane = np.array([[-pw, -ph], [pw, -ph], [pw, ph], [-pw, ph]]) / 2
    tilt = math.radians(min(45.0, abs(rng.normal(0, 18))))
    swing, roll = rng.uniform(0, 2 * math.pi), rng.uniform(-math.pi, math.pi)
    target, distance = np.zeros(3), 2.0
    for _ in range(4):
        hom = _homography(k, target, distance, tilt, swing, roll)
        distance *= math.sqrt(geometry.quad_area(_project(hom, plane)) / (coverage * h * w))
    hom = _homography(k, target, distance, tilt, swing, roll)
    quad = _project(hom, plane)
    size = np.array([w, h], np.float64)
    low, high = quad.min(axis=0), quad.max(axis=0)
    for _ in range(30):
        if out_of_frame:
            # any shift that leaves 1-2 corners out by less than 15% of the frame
            lo, hi = -low - 0.15 * size, size * 1.15 - high
            if np.any(lo > hi):
                return None
            shift = rng.uniform(lo, hi)
        else:
            margin = 0.01 * size
            lo, hi = margin - low, size - margin - high
            if np.any(lo > hi):
                return None
            shift = rng.uniform(lo, hi)
        moved = quad + shift
        out = _outside(moved, hw).sum()
        reach = np.maximum(np.maximum(-moved, moved - size), 0) / size
        if not out_of_frame or (1 <= out <= 2 and reach.max() < 0.15):
            move = np.array([[1, 0, shift[0]], [0, 1, shift[1]], [0, 0, 1]])
            return move @ hom, moved, math.degrees(tilt)
    return None


def _homography(k, target, distance, tilt, swing, roll) -> np.ndarray:
    """Plane (z = 0; x right, y down, z into the desk) -> photo pixels for a camera `distance` from
    `target`, `tilt` off the normal towards `swing`, turned by `roll` about its axis."""
    away = np.array([math.sin(tilt) * math.cos(swing), math.sin(tilt) * math.sin(swing)])
    centre = target + distance * np.array([*away, -math.cos(tilt)])
    forward = (target - centre) / np.linalg.norm(target - centre)
    right = np.cross([0.0, 1.0, 0.0], forward)
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    c, s = math.cos(roll), math.sin(roll)
    right, down = c * right + s * down, -s * right + c * down
    rot = np.stack([right, down, forward])
    t = -rot @ centre
    return k @ np.column_stack([rot[:, 0], rot[:, 1], t])


def _project(hom: np.ndarray, pts: np.ndarray) -> np.ndarray:
    p = np.column_stack([pts, np.ones(len(pts))]) @ hom.T
    return p[:, :2] / p[:, 2:3]


def _outside(quad: np.ndarray, hw) -> np.ndarray:
    h, w = hw
    return (quad[:, 0] < 0) | (quad[:, 0] > w) | (quad[:, 1] < 0) | (quad[:, 1] > h)


def desk(rng, kind: str, hom: np.ndarray, hw, page_wh, sheets) -> np.ndarray:
    """The desk surface seen through `hom` (RGB float32, hw): drawn on the plane, then warped."""
    h, w = hw
    inverse = np.linalg.inv(hom)
    seen = _project(inverse, np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float64))
    extent = 4.0 * max(page_wh)  # the far side of a tilted view is capped; texture repeats there
    lo = np.clip(seen.min(axis=0), -extent, extent)
    hi = np.clip(seen.max(axis=0), -extent, extent)
    size = np.maximum(hi - lo, 1e-3)
    scale = min(1.0 * max(h, w) / size.max(), 1600 / size.max())
    cw, ch = (int(v) + 2 for v in size * scale)
    surface = textures.surface(kind, rng, (ch, cw), sheets)
    plane_from_canvas = np.array([[1 / scale, 0, lo[0]], [0, 1 / scale, lo[1]], [0, 0, 1]])
    m = hom @ plane_from_canvas
    return cv2.warpPerspective(surface, m, (w, h), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REFLECT)  # fmt: skip


def place(page: np.ndarray, quad: np.ndarray, hw) -> tuple[np.ndarray, np.ndarray]:
    """(page warped onto the photo, its coverage 0-1) with the page's outer corners on `quad`."""
    h, w = hw
    extent = max(np.linalg.norm(quad[1] - quad[0]), np.linalg.norm(quad[2] - quad[1]),
                 np.linalg.norm(quad[3] - quad[2]), np.linalg.norm(quad[0] - quad[3]))  # fmt: skip
    shrink = min(1.0, 1.3 * extent / max(page.shape[:2]))
    if shrink < 1.0:
        page = cv2.resize(page, None, fx=shrink, fy=shrink, interpolation=cv2.INTER_AREA)
    ph, pw = page.shape[:2]
    src = np.array([[0, 0], [pw, 0], [pw, ph], [0, ph]], np.float32) - 0.5
    m = cv2.getPerspectiveTransform(src, quad.astype(np.float32) - 0.5)
    warped = cv2.warpPerspective(page.astype(np.float32), m, (w, h), flags=cv2.INTER_LINEAR)
    ones = np.ones((ph, pw), np.float32)
    alpha = cv2.warpPerspective(ones, m, (w, h), flags=cv2.INTER_LINEAR)
    return warped, np.clip(alpha, 0, 1)


def shadow_mask(rng, shape: str, hw, quad: np.ndarray, angle: float | None = None) -> np.ndarray:
    """A hard-edged mask (float32 0/1) of a shadow of `shape` that crosses the page's quad, cast
    from the direction `angle` (radians; default random)."""
    h, w = hw
    side = max(h, w)
    mask = np.zeros(hw, np.float32)
    inside = quad.mean(axis=0) + (rng.uniform(-0.35, 0.35, 2) * (quad.max(0) - quad.min(0)))
    angle = rng.uniform(0, 2 * math.pi) if angle is None else angle
    direction = np.array([math.cos(angle), math.sin(angle)])
    if shape == "edge":  # everything beyond a straight line through the page
        normal = direction
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        mask[(xs - inside[0]) * normal[0] + (ys - inside[1]) * normal[1] > 0] = 1
    elif shape in ("blob", "arm", "phone"):
        start = inside - direction * side  # from beyond the frame, towards the page
        thick = int(rng.uniform(0.06, 0.16) * side)
        cv2.line(mask, _pt(start), _pt(inside), 1.0, thick)
        tip = inside + direction * rng.uniform(0, 0.1) * side
        if shape == "phone":
            size = (rng.uniform(0.12, 0.2) * side, rng.uniform(0.25, 0.4) * side)
            box = cv2.boxPoints((tuple(tip), size, math.degrees(angle) + 90))
            cv2.fillConvexPoly(mask, box.astype(np.int32), 1.0)
        elif shape == "blob":
            for _ in range(int(rng.integers(2, 6))):
                centre = tip + rng.normal(0, 0.06, 2) * side
                axes = (rng.uniform(0.04, 0.14, 2) * side).astype(int)
                cv2.ellipse(mask, _pt(centre), tuple(int(a) for a in axes),
                            rng.uniform(0, 180), 0, 360, 1.0, -1)  # fmt: skip
    elif shape == "polygon":
        n = int(rng.integers(3, 8))
        radius = rng.uniform(0.15, 0.45) * side
        angles = np.sort(rng.uniform(0, 2 * math.pi, n))
        pts = inside + np.stack([np.cos(angles), np.sin(angles)], 1) * radius
        pts += direction * radius * 0.6
        cv2.fillPoly(mask, [pts.astype(np.int32)], 1.0)
    elif shape == RANDOM_SHADOW:
        parallel = rng.random() < 0.5
        for _ in range(int(rng.integers(2, 5))):
            part = shadow_mask(rng, str(rng.choice(SHADOWS)), hw, quad, angle if parallel else None)
            mask = np.maximum(mask, part)
    elif shape == "bars":  # the shadow of a chair back or blinds: parallel bands
        normal = direction
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        along = (xs - inside[0]) * normal[0] + (ys - inside[1]) * normal[1]
        period = rng.uniform(0.08, 0.25) * side
        mask[(along % period) < period * rng.uniform(0.3, 0.6)] = 1
    else:
        raise ValueError(f"unknown shadow shape {shape!r}")
    return mask


def _pt(p) -> tuple[int, int]:
    return int(round(float(p[0]))), int(round(float(p[1])))


def _blur(image: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(image, (0, 0), sigma) if sigma > 0.3 else image


def lighting(rng, hw, quad, recipe: str, randomise: float = 0.0) -> tuple[np.ndarray, dict]:
    """An RGB illumination field (HxWx3, about 0-1.2) and what it holds."""
    h, w = hw
    side = max(h, w)
    exposure = rng.uniform(0.55, 1.1)
    cast = np.array([1.0, 1.0, 1.0]) + rng.normal(0, 0.06, 3)
    if rng.random() < 0.4:  # tungsten or shade: warmer or cooler
        cast = cast * (np.array([1.12, 1.0, 0.8]) if rng.random() < 0.6 else [0.9, 1.0, 1.12])
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, 2 * math.pi)
    ramp = ((xs - w / 2) * math.cos(angle) + (ys - h / 2) * math.sin(angle)) / side
    field = 1.0 + ramp * rng.uniform(0, 0.5) + textures.noise(rng, hw, 3) * rng.uniform(0, 0.15)
    radius = ((xs - w / 2) ** 2 + (ys - h / 2) ** 2) / ((w / 2) ** 2 + (h / 2) ** 2)
    field *= 1.0 - rng.uniform(0, 0.45) * radius  # vignetting
    info: dict = {"shadow": "none", "shadow_edge": "", "shadow_on_page": 0.0}
    shade = np.zeros(hw, np.float32)
    if rng.random() < CAST_SHADOW:
        shapes = SHADOWS + (SHADOWS_HELD_OUT if recipe == "eval" else ())
        several = randomise > 0 and rng.random() < randomise
        shape = RANDOM_SHADOW if several else str(rng.choice(shapes))
        hard = rng.random() < 0.5
        sigma = rng.uniform(0.0, 0.004) * side if hard else rng.uniform(0.006, 0.04) * side
        shade = _blur(shadow_mask(rng, shape, hw, quad), sigma)
        info.update(shadow=shape, shadow_edge="hard" if hard else "soft")
    darkness = rng.uniform(0.3, 0.75)  # the share of the light the caster takes away
    ambient = np.array([0.95, 1.0, 1.1]) if rng.random() < 0.6 else np.ones(3)
    direct = exposure * cast
    light = field[:, :, None] * (
        direct[None, None] * (1 - shade[:, :, None])
        + (direct * (1 - darkness) * ambient)[None, None] * shade[:, :, None]
    )
    info["shade"] = shade
    return light.astype(np.float32), info


def glare(rng, image: np.ndarray, quad) -> tuple[np.ndarray, bool]:
    """A soft patch of reflected light pushed towards white, often over the page."""
    if rng.random() > 0.3:
        return image, False
    h, w = image.shape[:2]
    side = max(h, w)
    centre = quad.mean(axis=0) + rng.normal(0, 0.2, 2) * (quad.max(0) - quad.min(0))
    axes = rng.uniform(0.04, 0.25, 2) * side
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    a = rng.uniform(0, math.pi)
    u = ((xs - centre[0]) * math.cos(a) + (ys - centre[1]) * math.sin(a)) / axes[0]
    v = (-(xs - centre[0]) * math.sin(a) + (ys - centre[1]) * math.cos(a)) / axes[1]
    blob = np.exp(-(u * u + v * v) * rng.uniform(1.0, 3.0)) * rng.uniform(0.4, 1.3)
    blob = np.clip(blob, 0, 1)[:, :, None]
    return image + blob * (255 * 1.05 - image), True


def camera_effects(rng, image: np.ndarray) -> tuple[np.ndarray, dict]:
    """Blur (defocus or motion), noise, sharpening and JPEG: RGB float32 in, uint8 out."""
    side = max(image.shape[:2])
    info: dict = {"blur": "none"}
    u = rng.random()
    if u < 0.3:
        radius = rng.uniform(0.5, 2.5) * side / 1000
        size = max(3, int(2 * radius) | 1)
        disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size)).astype(np.float32)
        image = cv2.filter2D(image, -1, disc / disc.sum())
        info["blur"] = "defocus"
    elif u < 0.5:
        length = max(2, int(rng.uniform(2, 9) * side / 1000))
        kernel = np.zeros((2 * length + 1, 2 * length + 1), np.float32)
        a = rng.uniform(0, math.pi)
        d = np.array([math.cos(a), math.sin(a)]) * length
        cv2.line(kernel, _pt((length - d[0], length - d[1])), _pt((length + d[0], length + d[1])),
                 1.0, 1)  # fmt: skip
        image = cv2.filter2D(image, -1, kernel / kernel.sum())
        info["blur"] = "motion"
    shot, read = rng.uniform(0, 0.6), rng.uniform(0.5, 4.0)
    noise = rng.standard_normal(image.shape).astype(np.float32)
    image = image + noise * np.sqrt(shot * np.clip(image, 0, 255) + read * read)
    if rng.random() < 0.6:  # phones sharpen
        soft = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.8, 2.0))
        image = image + rng.uniform(0.2, 1.2) * (image - soft)
    out = np.clip(image, 0, 255).astype(np.uint8)
    quality = int(rng.integers(60, 91))
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(out, cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, quality])  # fmt: skip
    decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else None
    if decoded is not None:
        out = cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)
    info["jpeg"] = quality
    return out, info


def _check(recipe: str, randomise: float) -> None:
    if recipe not in RECIPES:
        raise ValueError(f"recipe must be one of {RECIPES}, got {recipe!r}")
    if not 0.0 <= randomise <= 1.0:
        raise ValueError(f"randomise must be a share in [0, 1], got {randomise!r}")
    if randomise and recipe != "train":
        raise ValueError("randomise is for training photos: the eval recipe stays fixed")


def desk_kind(rng: np.random.Generator, recipe: str, randomise: float) -> str:
    """Which desk a photo is taken on (textures.KINDS)."""
    if randomise > 0 and rng.random() < randomise:
        return textures.RANDOMISED
    return str(rng.choice(textures.TRAIN_KINDS + (textures.HELD_OUT if recipe == "eval" else ())))


def phone_photo(
    page: np.ndarray,
    rng: np.random.Generator,
    long_side: float = 1200,
    recipe: str = "train",
    sheets: list[np.ndarray] | None = None,
    randomise: float = 0.0,
):
    """(RGB uint8 photo, page corners 4x2 in its pixels, conditions) of `page` (HxW or HxWx3
    uint8) on a desk. `sheets`: other pages that may lie on a cluttered desk."""
    _check(recipe, randomise)
    if page.ndim == 2:
        page = np.repeat(page[:, :, None], 3, axis=2)
    hw = canvas_hw(rng, long_side)
    ph, pw = page.shape[:2]
    page_wh = (pw / max(ph, pw), ph / max(ph, pw))
    out_of_frame = rng.random() < OUT_OF_FRAME
    coverage = rng.uniform(0.2, 0.95) if not out_of_frame else rng.uniform(0.3, 0.95)
    placed = None
    while placed is None:
        placed = camera(rng, page_wh, hw, coverage, out_of_frame)
        coverage *= 0.9  # a page that cannot fit (a long receipt at a steep angle) is shown smaller
    hom, quad, tilt = placed
    kind = desk_kind(rng, recipe, randomise)
    surface = desk(rng, kind, hom, hw, page_wh, sheets)
    warped, alpha = place(page, quad, hw)
    # The drop shadow: the sheet's outline, offset and blurred, darkens the desk beside it.
    if rng.random() < 0.7:
        side = max(hw)
        shift = rng.normal(0, 0.004, 2) * side
        m = np.array([[1, 0, shift[0]], [0, 1, shift[1]]], np.float32)
        drop = cv2.warpAffine(alpha, m, (hw[1], hw[0]))
        drop = _blur(drop, rng.uniform(0.002, 0.015) * side) * rng.uniform(0.1, 0.5)
        surface = surface * (1 - drop)[:, :, None]
    albedo = surface * (1 - alpha[:, :, None]) + warped * alpha[:, :, None]
    light, info = lighting(rng, hw, quad, recipe, randomise)
    image, glared = glare(rng, albedo * light, quad)
    photo, cam = camera_effects(rng, image)
    shade = info.pop("shade")
    page_shade = shade[alpha > 0.5]
    on_page = float(page_shade.mean()) if page_shade.size else 0.0
    top = quad[1] - quad[0]
    conditions = {
        "desk": kind,
        "coverage": round(geometry.quad_area(quad) / (hw[0] * hw[1]), 4),
        "turn": round(math.degrees(math.atan2(top[1], top[0])), 2),
        "tilt": round(tilt, 2),
        "corners_out": int(_outside(quad, hw).sum()),
        **info,
        "shadow_on_page": round(on_page, 3),
        "glare": glared,
        **cam,
    }
    return photo, quad, conditions


def blank_photo(
    rng: np.random.Generator, long_side: float = 1200, recipe: str = "train", randomise: float = 0.0
):
    """(RGB uint8 photo, conditions) with no page in it: a desk seen at an angle, or a blank wall;
    the light and the camera as in phone_photo."""
    _check(recipe, randomise)
    hw = canvas_hw(rng, long_side)
    h, w = hw
    centre = np.array(
        [[w * 0.3, h * 0.3], [w * 0.7, h * 0.3], [w * 0.7, h * 0.7], [w * 0.3, h * 0.7]]
    )
    if rng.random() < 0.3:  # a wall, a ceiling: nearly plain, smooth light
        colour = rng.uniform(120, 250, 3)
        surface = np.ones((h, w, 3), np.float32) * colour
        kind = "wall"
    else:
        kind = desk_kind(rng, recipe, randomise)
        placed = camera(rng, (1.0, 0.75), hw, rng.uniform(0.2, 0.6), False)
        hom = placed[0] if placed else np.array([[w / 2, 0, w / 2], [0, w / 2, h / 2], [0, 0, 1]])
        surface = desk(rng, kind, hom, hw, (1.0, 0.75), None)
    light, info = lighting(rng, hw, centre, recipe, randomise)
    info.pop("shade")
    image, glared = glare(rng, surface * light, centre)
    photo, cam = camera_effects(rng, image)
    return photo, {"desk": kind, **info, "glare": glared, **cam}
