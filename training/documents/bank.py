"""The page bank: synthetic base pages rendered once and cached as PNG files.

Rendering with fonts is slow (tens of milliseconds a page); warping is fast. So pages are rendered
once into a folder (default runs/pages/, git-ignored) and training draws transforms on the fly.
The bank is keyed by its seed and size: the same seed and count always give the same pages.

    stn pages --count 800 --seed 1000 --out runs/pages
"""

from __future__ import annotations

import json
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from stn_align.training.documents.layout import render_page

DEFAULT_BANK = Path("runs/pages")
MANIFEST = "manifest.json"


def page_seed(bank_seed: int, index: int) -> int:
    # Spread indices so banks with nearby seeds share no pages.
    return int(np.random.SeedSequence([bank_seed, index]).generate_state(1)[0])


def _render_one(job: tuple[int, int, str]) -> str:
    bank_seed, index, folder = job
    path = Path(folder) / f"page-{index:05d}.png"
    if not path.is_file():
        page = render_page(page_seed(bank_seed, index))
        tmp = path.with_suffix(".tmp.png")
        cv2.imwrite(str(tmp), page)
        tmp.replace(path)  # a killed run leaves no half-written page
    return path.name


def build_bank(
    folder: str | Path = DEFAULT_BANK,
    count: int = 800,
    seed: int = 1000,
    workers: int = 1,
    progress: bool = True,
) -> Path:
    """Render `count` pages into `folder` (pages already there are kept) and write the manifest."""
    from tqdm import tqdm

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    manifest = folder / MANIFEST
    if manifest.is_file():
        old = json.loads(manifest.read_text())
        if old.get("seed") != seed:
            raise ValueError(
                f"{folder} holds a bank with seed {old.get('seed')}, not {seed}: use another folder"
            )
    jobs = [(seed, i, str(folder)) for i in range(count)]
    bar = tqdm(total=count, desc="pages", unit="page", disable=not progress)
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            for _ in pool.map(_render_one, jobs, chunksize=8):
                bar.update(1)
    else:
        for job in jobs:
            _render_one(job)
            bar.update(1)
    bar.close()
    manifest.write_text(json.dumps({"seed": seed, "count": count}, indent=1) + "\n")
    return folder


def load_bank(folder: str | Path = DEFAULT_BANK, limit: int | None = None) -> list[np.ndarray]:
    """Read the bank's pages (grey uint8), in index order."""
    folder = Path(folder)
    manifest = folder / MANIFEST
    if not manifest.is_file():
        raise FileNotFoundError(
            f"no page bank at {folder}: render one with `stn pages --out {folder}`"
        )
    count = json.loads(manifest.read_text())["count"]
    count = min(count, limit) if limit else count
    pages = []
    for i in range(count):
        page = cv2.imread(str(folder / f"page-{i:05d}.png"), cv2.IMREAD_GRAYSCALE)
        if page is None:
            raise FileNotFoundError(
                f"{folder} is missing page {i}: re-run `stn pages --out {folder}`"
            )
        pages.append(page)
    return pages
