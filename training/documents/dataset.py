"""Training data for document localisers: bank pages, degraded and transformed on the fly.

`build_dataset(cfg, split)` is the `documents` entry of stn_align.training.data.DATASETS. Config
keys used:
- model.family: "rotation" (pages turned over up to data.max_rotation degrees; 180 = whole circle),
  "projective" (pages photographed on a background: in-plane turn up to data.max_rotation,
  corners pushed by up to data.max_corner of the page size) or "tps" (flat-framed pages bent by a
  book's curl, stn_align.training.documents.curl; model.tps_grid control points);
- model.input_size, model.channels, model.letterbox_fill: the localiser's input;
- data.path: the page bank folder (default runs/pages; rendered on first use if missing);
- data.train_size, data.val_size: items per epoch; seed: everything is drawn from (seed, split, i).

Train and validation share the bank's pages but draw different transforms and artefacts (their seeds
differ); real pages (../shared/data) are never used here.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from stn_align.core import geometry
from stn_align.core.preprocess import localiser_input, to_channels
from stn_align.training.documents import curl, degrade, synth
from stn_align.training.documents.bank import DEFAULT_BANK, MANIFEST, build_bank, load_bank

log = logging.getLogger(__name__)

SPLIT_IDS = {"train": 0, "val": 1, "test": 2}
FAMILIES = ("rotation", "projective", "tps")
SCANNED_SHEETS = 0.2  # share of photographed pages that are scans with a dark frame


def sample_angle(rng: np.random.Generator, max_rotation: float) -> float:
    """Uniform over the range, with extra weight on near-cardinal angles: most real scans are
    upright or a quarter turn off, with a few degrees of skew."""
    if max_rotation >= 90 and rng.random() < 0.35:
        cardinal = float(rng.choice([0.0, 90.0, 180.0, -90.0]))
        return float(geometry.wrap_degrees(cardinal + rng.normal(0, 3)))
    return float(rng.uniform(-max_rotation, max_rotation))


def coloured_page(
    ink: np.ndarray, rng: np.random.Generator, long_side: float, other: np.ndarray | None
) -> np.ndarray:
    """A bank page at about `long_side` pixels, with paper, ink and scan artefacts."""
    if rng.random() < 0.25:
        ink = degrade.partial(ink, rng)
    scale = long_side / max(ink.shape)
    ink = cv2.resize(ink, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    page = degrade.ink_on_paper(ink, rng, other)
    if rng.random() < 0.1:
        page = degrade.binarise(page, rng)
    return page


def rotation_item(ink, other, rng, size: int, max_rotation: float, fill: int):
    """(localiser input HxWx1, params) for a page turned by a random angle."""
    page = coloured_page(ink, rng, size * rng.uniform(1.2, 2.2), other)
    if rng.random() < 0.2:
        page = degrade.dark_border(page, rng)
    page = degrade.lighting(page, rng)
    angle = sample_angle(rng, max_rotation)
    turned = synth.rotate_expand(page, angle, synth.random_fill(page, rng))
    turned = degrade.camera(turned, rng)
    return localiser_input(turned[:, :, None], size, "letterbox", fill), geometry.rotation_params(
        angle
    )


def projective_item(ink, other, rng, size: int, max_rotation: float, max_corner: float):
    """(localiser input HxWx1, params) for a page photographed on a background."""
    long_side = size * rng.uniform(1.3, 2.2)
    photo, quad = photograph(ink, other, rng, long_side, max_rotation, max_corner)
    params = synth.quad_params(quad, photo.shape[:2])
    return localiser_input(photo[:, :, None], size, "stretch"), params


def photograph(ink, other, rng, long_side: float, max_rotation: float, max_corner: float):
    """(grey photo HxW of about `long_side` px on its longer side, true page corners 4x2 in its
    pixels): a bank page with paper, ink and scan artefacts, on a background, under a random
    homography, lit unevenly and through a camera."""
    canvas_hw = synth.canvas_size(rng, long_side)
    page = coloured_page(ink, rng, max(canvas_hw) * 0.9, other)
    if rng.random() < SCANNED_SHEETS:
        page = synth.scanned_sheet(page, rng)
    canvas = synth.background(rng, canvas_hw, other if rng.random() < 0.5 else None)
    quad = synth.random_quad(rng, page.shape[:2], canvas_hw, max_corner, max_rotation)
    photo = degrade.camera(degrade.lighting(synth.place_page(page, canvas, quad), rng), rng)
    return photo, quad


def dewarp_item(ink, other, rng, size: int, grid: int):
    """(localiser input HxWx1, params) for a page bent by a book's curl: the page fills the frame
    (as after doc-perspective), lit unevenly and through a camera."""
    page = coloured_page(ink, rng, size * rng.uniform(1.3, 2.2), other)
    params = curl.random_curl(rng, grid)
    fill = int(rng.integers(0, 256))
    bent = curl.curl_page(page, params, fill, grid)
    bent = degrade.camera(degrade.lighting(bent, rng), rng)
    return localiser_input(bent[:, :, None], size, "stretch"), params


class DocumentDataset(Dataset):
    def __init__(self, cfg, split: str):
        family = cfg.model.family
        if family not in FAMILIES:
            raise ValueError(
                f"model.family: the documents dataset makes {FAMILIES}, not {family!r}"
            )
        if split not in SPLIT_IDS:
            raise ValueError(f"split must be one of {list(SPLIT_IDS)}, got {split!r}")
        self.family = family
        self.size, self.channels = cfg.model.input_size, cfg.model.channels
        self.fill = cfg.model.letterbox_fill
        self.tps_grid = cfg.model.tps_grid
        self.data = cfg.data
        self.seed = (cfg.seed, SPLIT_IDS[split])
        self.length = cfg.data.train_size if split == "train" else cfg.data.val_size
        self.folder = Path(cfg.data.path or DEFAULT_BANK)
        if not (self.folder / MANIFEST).is_file():
            log.info("rendering the page bank into %s (once)", self.folder)
            build_bank(self.folder)
        # Pages are shrunk once to the largest size an item uses, so each item resizes less.
        longest = int(self.size * 2.25)
        self.pages = [_shrink(page, longest) for page in load_bank(self.folder)]

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict:
        rng = np.random.default_rng([*self.seed, index])
        ink = self.pages[int(rng.integers(len(self.pages)))]
        other = self.pages[int(rng.integers(len(self.pages)))]
        d = self.data
        if self.family == "rotation":
            image, params = rotation_item(ink, other, rng, self.size, d.max_rotation, self.fill)
        elif self.family == "tps":
            image, params = dewarp_item(ink, other, rng, self.size, self.tps_grid)
        else:
            image, params = projective_item(
                ink, other, rng, self.size, d.max_rotation, d.max_corner
            )
        image = to_channels(image, self.channels)
        return {
            "image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))),
            "params": torch.from_numpy(np.asarray(params, dtype=np.float32)),
        }


def _shrink(page: np.ndarray, longest: int) -> np.ndarray:
    scale = longest / max(page.shape)
    if scale >= 1:
        return page
    return cv2.resize(page, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)


class PhotoDataset(Dataset):
    """Phone photos of real pages (data.recipe = "phone"), rendered once into data.path
    (photo_cache.py): data.train_size training photos, data.val_size validation photos (other
    sources, the evaluation recipe). Training items also go through the eight quarter turns and
    mirror images of each photo, with the corners moved to match (the corner order stays
    clockwise), so one epoch is 8 x train_size items."""

    def __init__(self, cfg, split: str):
        from stn_align.training.documents.photo_cache import chunked_cache

        if cfg.model.family != "projective":
            raise ValueError("data.recipe phone makes page photos for the projective family")
        count = cfg.data.train_size if split == "train" else cfg.data.val_size
        root = cfg.data.path or "runs/photos"
        # Only training photos are randomised: validation keeps the fixed evaluation recipe.
        randomise = cfg.data.randomise if split == "train" else 0.0
        self.caches = chunked_cache(
            root,
            "train" if split == "train" else "val",
            count,
            cfg.seed,
            cfg.model.input_size,
            randomise=randomise,
        )
        self.count = count
        self.variants = 8 if split == "train" else 1

    def __len__(self) -> int:
        return self.count * self.variants

    def __getitem__(self, index: int) -> dict:
        photo, variant = index % self.count, index // self.count
        cache = self.caches[photo // len(self.caches[0])]
        i = photo % len(self.caches[0])
        image = cache.image(i)
        corners = cache.params[i].reshape(4, 2) + geometry.CORNERS
        h, w = (int(v) for v in cache.hw[i])
        image, corners, (h, w) = turn(image, corners, (h, w), variant)
        longer = max(h, w)
        return {
            "image": torch.from_numpy(np.ascontiguousarray(image[None])),
            "params": torch.from_numpy((corners - geometry.CORNERS).reshape(-1).astype(np.float32)),
            "scale": torch.tensor([w / longer, h / longer], dtype=torch.float32),
            "hw": torch.tensor([h, w], dtype=torch.float32),
            "has_page": torch.tensor(float(cache.has_page[i])),
        }


def turn(image: np.ndarray, corners: np.ndarray, hw, variant: int):
    """One of the eight quarter turns and mirror images (variant 0-7) of a square localiser input,
    its corners (axis frame, clockwise) and its photo's (h, w) moved to match."""
    h, w = hw
    if variant >= 4:  # mirror left-right; reversing the order keeps the corners clockwise
        image = image[:, ::-1]
        corners = corners[[1, 0, 3, 2]] * np.array([-1.0, 1.0])
    for _ in range(variant % 4):  # a quarter turn counter-clockwise: (x, y) -> (y, -x)
        image = np.rot90(image)
        corners = np.stack([corners[:, 1], -corners[:, 0]], axis=1)
        h, w = w, h
    return image, corners, (h, w)


def build_dataset(cfg, split: str) -> Dataset:
    if cfg.data.recipe == "phone":
        return PhotoDataset(cfg, split)
    return DocumentDataset(cfg, split)
