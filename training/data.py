"""Datasets, in a plain-dict registry: DATASETS[name](cfg: TrainConfig, split) -> torch Dataset.

Items are dicts. `image` is always pixels in [0, 255], shape (C, S, S) (uint8, or float for
data that comes as floats). Supervised items add `params`, the family's target theta; end-to-end
items add `label`.

Synthetic data is seeded per item, so item i of a split is the same on every run and machine:

    >>> from stn_align.training.config import TrainConfig
    >>> cfg = TrainConfig()
    >>> cfg.model.family, cfg.model.input_size = "rotation", 32
    >>> ds = ShapesDataset(cfg, "train")
    >>> item = ds[7]
    >>> item["image"].shape, item["params"].shape
    (torch.Size([1, 32, 32]), torch.Size([2]))
    >>> bool((ShapesDataset(cfg, "train")[7]["image"] == item["image"]).all())
    True
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from stn_align.core import geometry
from stn_align.training.config import DataConfig, TrainConfig

SPLIT_IDS = {"train": 0, "val": 1, "test": 2}


def random_params(
    family: str, rng: np.random.Generator, d: DataConfig, tps_grid: int = 4
) -> np.ndarray:
    """Draw a random transform of `family` with the magnitudes in DataConfig."""
    angle = math.radians(rng.uniform(-d.max_rotation, d.max_rotation))
    scale = math.exp(rng.uniform(-1, 1) * math.log1p(d.max_scale))
    tx, ty = rng.uniform(-d.max_shift, d.max_shift, size=2)
    if family == "rotation":
        return np.array([math.cos(angle), math.sin(angle)])
    if family == "similarity":
        return np.array([scale * math.cos(angle), scale * math.sin(angle), tx, ty])
    if family == "attention":
        return np.array([scale, tx, ty])
    if family == "affine":
        c, s = math.cos(angle), math.sin(angle)
        shear = rng.uniform(-d.max_shear, d.max_shear, size=2)
        m = scale * np.array([[c, s], [-s, c]]) + np.array([[0, shear[0]], [shear[1], 0]])
        return np.array([m[0, 0], m[0, 1], tx, m[1, 0], m[1, 1], ty])
    if family == "projective":
        return rng.uniform(-d.max_corner, d.max_corner, size=8)
    return rng.uniform(-d.max_tps, d.max_tps, size=2 * tps_grid * tps_grid)


def distort(
    canonical: np.ndarray, family: str, params: np.ndarray, tps_grid: int = 4
) -> np.ndarray:
    """The image that `params` maps back to `canonical`: sampling the result with theta = params
    gives `canonical` again (inside the field of view)."""
    hw = canonical.shape[:2]
    if family == "tps":
        raise ValueError(
            "supervised tps data needs the spline's inverse; train tps end_to_end instead"
        )
    m = geometry.pixel_matrix(family, params, hw, hw)
    # Without WARP_INVERSE_MAP OpenCV treats m as the forward map canonical -> distorted.
    return cv2.warpPerspective(canonical, m, (hw[1], hw[0]), flags=cv2.INTER_LINEAR)


def random_shapes(rng: np.random.Generator, size: int) -> np.ndarray:
    """A grey canvas with an asymmetric scene (shapes, lines, a glyph) so every pose is distinct."""
    img = np.zeros((size, size), np.uint8)
    margin = size // 5
    for _ in range(rng.integers(3, 7)):
        colour = int(rng.integers(80, 256))
        x0, y0, x1, y1 = (int(v) for v in rng.integers(margin, size - margin, size=4))
        kind = rng.integers(0, 3)
        if kind == 0:
            cv2.rectangle(img, (x0, y0), (x1, y1), colour, -1)
        elif kind == 1:
            cv2.circle(img, (x0, y0), int(rng.integers(2, max(3, size // 8))), colour, -1)
        else:
            cv2.line(img, (x0, y0), (x1, y1), colour, max(1, size // 32))
    # A big "L" marker in one corner breaks the symmetries that would make rotations ambiguous.
    cv2.line(img, (margin, margin), (margin, size // 2), 255, max(2, size // 16))
    cv2.line(img, (margin, margin), (size // 2, margin), 255, max(2, size // 16))
    return img


class ShapesDataset(Dataset):
    """Supervised synthetic data: random scenes distorted by random transforms of the family."""

    def __init__(self, cfg: TrainConfig, split: str):
        self.family = cfg.model.family
        self.size = cfg.model.input_size
        self.channels = cfg.model.channels
        self.tps_grid = cfg.model.tps_grid
        self.data = cfg.data
        self.seed = (cfg.seed, SPLIT_IDS[split])
        self.length = cfg.data.train_size if split == "train" else cfg.data.val_size

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict:
        rng = np.random.default_rng([*self.seed, index])
        canonical = random_shapes(rng, self.size)
        params = random_params(self.family, rng, self.data, self.tps_grid)
        image = distort(canonical, self.family, params, self.tps_grid)
        image = np.repeat(image[None], self.channels, axis=0)
        return {
            "image": torch.from_numpy(image),
            "params": torch.tensor(params, dtype=torch.float32),
        }


class ClutteredMNIST(Dataset):
    """The 40x40 cluttered MNIST of public STN code: cfg.data.path is mnist_cluttered_40x40.npz."""

    def __init__(self, cfg: TrainConfig, split: str):
        path = Path(cfg.data.path or "../shared/data/cluttered-mnist/mnist_cluttered_40x40.npz")
        if not path.is_file():
            raise FileNotFoundError(f"data.path: cluttered MNIST file {path} not found")
        key = {"train": "train", "val": "valid", "test": "test"}[split]
        with np.load(path) as arrays:
            images = arrays[f"X_{key}"].reshape(-1, 1, 40, 40) * 255.0
            self.labels = torch.from_numpy(arrays[f"y_{key}"].reshape(-1).astype(np.int64))
        self.images = torch.from_numpy(images.astype(np.float32))

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict:
        return {"image": self.images[index], "label": self.labels[index]}


# The document layer adds "documents" when stn_align.training.documents is imported.
DATASETS: dict[str, Callable[[TrainConfig, str], Dataset]] = {
    "shapes": ShapesDataset,
    "cluttered-mnist": ClutteredMNIST,
}


def build_dataset(cfg: TrainConfig, split: str) -> Dataset:
    if cfg.data.dataset not in DATASETS:
        raise ValueError(
            f"data.dataset: unknown {cfg.data.dataset!r}; expected one of {list(DATASETS)}"
            + (
                " (import stn_align.training.documents to add it)"
                if cfg.data.dataset == "documents"
                else ""
            )
        )
    return DATASETS[cfg.data.dataset](cfg, split)
