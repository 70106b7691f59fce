"""The images `stn evaluate` scores: the page tables (truth.csv, or the real page bank's pages.csv
and its split by source), and the pages turned over the circle (rotation mode), photographed on
backgrounds under random homographies (perspective mode, the flat recipe) or bent by book curls
(dewarp mode), each a seeded `Sample` with its truth."""

from __future__ import annotations

import csv
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from stn_align.core.geometry import wrap_degrees
from stn_align.training.documents import curl, synth
from stn_align.training.documents.real_pages import load_pages, split_pages

PAGES_TABLE = "pages.csv"  # the real page bank's table (see ../shared/data/pages/README.md)
MAX_CANVAS = 2400  # perspective mode: pages are shrunk to fit a photo of at most this long side


@dataclass
class Sample:
    name: str  # e.g. "skew.png" or "skew.png@3" for the 3rd generated copy
    source: str
    image: np.ndarray  # RGB uint8
    applied: float | None = None  # rotation applied, degrees (rotation mode)
    truth_angle: float | None = None
    truth_corners: np.ndarray | None = None  # perspective mode, 4x2 pixels
    truth_params: np.ndarray | None = None  # dewarp mode, the curl's TPS displacements
    conditions: dict | None = None  # phone photos: what photos.py drew (None: no page at all)
    kind: str = ""  # from pages.csv, for the tables by kind and script
    script: str = ""
    skew_ok: bool = True  # False: the page's skew is not trusted, only its orientation is scored


class TruthRow(NamedTuple):
    file: str
    content_angle: float
    kind: str = ""  # pages.csv's kind and script ("" for a truth.csv folder)
    script: str = ""
    skew_ok: bool = True  # False: only the orientation is scored (the skew is not trusted)


def read_table(folder: Path) -> list[TruthRow]:
    """The pages of DIR and their truth, in file order (which seeds each page's copies): from
    pages.csv when there is one (the real page bank: kind, script, and skew_ok, whether its skew
    is trusted), else from truth.csv (file,content_angle)."""
    if (folder / PAGES_TABLE).is_file():
        return [
            TruthRow(r.path.name, float(r.content_angle), r.kind, r.script, r.skew_ok)
            for r in load_pages(folder)
        ]
    return [TruthRow(name, angle) for name, angle in read_truth(folder)]


def split_files(folder: Path, split: str | None) -> set[str] | None:
    """The files of one side ("train" or "val") of the bank's split by source
    (configs/pages-split.toml), or None (every page) without a split."""
    if not split:
        return None
    if not (folder / PAGES_TABLE).is_file():
        raise ValueError(f"--split needs a pages.csv in {folder} (the real page bank)")
    return {r.path.name for r in split_pages(load_pages(folder), split)}


def read_truth(folder: Path) -> list[tuple[str, float]]:
    path = folder / "truth.csv"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: DIR must hold images and a truth.csv (file,content_angle)"
        )
    rows = []
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or not {"file", "content_angle"} <= set(reader.fieldnames):
            raise ValueError(
                f"{path}: expected columns file,content_angle; got {reader.fieldnames}"
            )
        for row in reader:
            rows.append((row["file"], float(row["content_angle"])))
    if not rows:
        raise ValueError(f"{path} lists no images")
    return rows


def load_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"cannot read image {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def rotation_samples(folder: Path, rotations: int, seed: int, only=None):
    """Yield Samples: each page as is (rotations == 0) or turned by `rotations` seeded angles.
    `only` (a set of file names) limits the pages; the seeds stay those of the full list."""
    for index, row in enumerate(read_table(folder)):
        name, content = row.file, row.content_angle
        if only is not None and name not in only:
            continue
        image = load_rgb(folder / name)
        about = {"kind": row.kind, "script": row.script, "skew_ok": row.skew_ok}
        if rotations == 0:
            yield _about(Sample(name, name, image, 0.0, float(wrap_degrees(content))), about)
            continue
        rng = np.random.default_rng([seed, index])
        fill = synth.border_tone(image)
        for k in range(rotations):
            applied = float(rng.uniform(-180.0, 180.0))
            turned = synth.rotate_expand(image, applied, fill)
            truth = float(wrap_degrees(content + applied))
            yield _about(Sample(f"{name}@{k}", name, turned, applied, truth), about)


def _about(sample: Sample, about: dict) -> Sample:
    """The sample with pages.csv's kind, script and skew_ok."""
    return dataclasses.replace(sample, **about)


def perspective_samples(
    folder: Path,
    count: int,
    seed: int,
    max_corner: float = 0.08,
    max_rotation: float = 12.0,
    only=None,
):
    """Yield Samples: each upright page photographed on `count` seeded backgrounds."""
    for index, (name, content, *_) in enumerate(read_table(folder)):
        if only is not None and name not in only:
            continue
        page = upright_page(folder, name, content)
        rng = np.random.default_rng([seed, index, 1])
        for k in range(max(1, count)):
            long_side = min(MAX_CANVAS, max(page.shape[:2]) * rng.uniform(1.1, 1.4))
            canvas_hw = synth.canvas_size(rng, long_side)
            scale = min(1.0, max(canvas_hw) * 0.95 / max(page.shape[:2]))
            shown = (
                cv2.resize(page, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
                if scale < 1
                else page
            )
            background = synth.background(rng, canvas_hw)
            canvas = np.repeat(background[:, :, None], 3, axis=2)
            quad = synth.random_quad(rng, shown.shape[:2], canvas_hw, max_corner, max_rotation)
            photo = synth.place_page(shown, canvas, quad)
            yield Sample(f"{name}@{k}", name, photo, truth_corners=quad)


def upright_page(folder: Path, name: str, content: float) -> np.ndarray:
    """The page straightened by its known content angle: perspective and curl truth need one."""
    page = load_rgb(folder / name)
    if abs(content) > 0.01:
        page = synth.rotate_expand(page, -content, synth.border_tone(page))
    return page


def dewarp_samples(folder: Path, count: int, seed: int, only=None):
    """Yield Samples: each upright page (at most MAX_CANVAS px) bent by `count` seeded curls."""
    for index, (name, content, *_) in enumerate(read_table(folder)):
        if only is not None and name not in only:
            continue
        page = shrink(upright_page(folder, name, content), MAX_CANVAS)
        rng = np.random.default_rng([seed, index, 2])
        for k in range(max(1, count)):
            params = curl.random_curl(rng)
            bent = curl.curl_page(page, params, int(rng.integers(0, 256)))
            yield Sample(f"{name}@{k}", name, bent, truth_params=params)


def shrink(image: np.ndarray, longest: int) -> np.ndarray:
    scale = longest / max(image.shape[:2])
    if scale >= 1:
        return image
    return cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
