"""The page bank: synthetic base pages rendered once and cached as PNG files.

Rendering with fonts is slow (tens of milliseconds a page); warping is fast. So pages are rendered
once into a folder (default runs/pages/, git-ignored) and training draws transforms on the fly.
The bank is keyed by its seed, size and style: the same ones always give the same pages (with
the same fonts installed).

    stn pages --count 800 --seed 1000 --out runs/pages
    stn pages --count 3000 --seed 1000 --out runs/pages-rotation --style varied

Style "standard" draws layout.py's kinds (articles, books, letters, forms, tables, receipts,
landscape pages); "varied" (doc-rotation's bank) adds special_pages.py's (newspapers, music, a
picture with a caption, title pages, forms of boxes, tables of figures, near-empty pages, vertical
CJK) and more scripts, and writes each page's kind into kinds.json.
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
KINDS = "kinds.json"
STYLES = ("standard", "varied")
# The varied style's pages for a given seed change with this number (special_pages.py): a bank
# records it (one that records none is version 1), and a bank of another version is refused, not
# mixed. Bump it with any change to what a seed draws.
VARIED_GENERATOR = 1


def page_seed(bank_seed: int, index: int) -> int:
    # Spread indices so banks with nearby seeds share no pages.
    return int(np.random.SeedSequence([bank_seed, index]).generate_state(1)[0])


def _render_one(job: tuple[int, int, str, str]) -> str:
    bank_seed, index, folder, style = job
    path = Path(folder) / f"page-{index:05d}.png"
    if not path.is_file():
        if style == "varied":
            from stn_align.training.documents.special_pages import render_varied_page

            page, _ = render_varied_page(page_seed(bank_seed, index))
        else:
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
    style: str = "standard",
) -> Path:
    """Render `count` pages into `folder` (pages already there are kept) and write the manifest."""
    from tqdm import tqdm

    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}, got {style!r}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    manifest = folder / MANIFEST
    if manifest.is_file():
        check_bank(folder, seed, style)
    jobs = [(seed, i, str(folder), style) for i in range(count)]
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
    if style == "varied":
        (folder / KINDS).write_text(json.dumps(varied_kinds(seed, count)) + "\n")
    meta = {"seed": seed, "count": count} | ({"style": style} if style != "standard" else {})
    if style == "varied":
        meta["generator"] = VARIED_GENERATOR
    manifest.write_text(json.dumps(meta, indent=1) + "\n")
    return folder


def check_bank(folder: str | Path, seed: int, style: str) -> None:
    """Refuse a bank folder drawn with another seed or style, or (varied style) by another
    version of the generator, rather than mix its pages with the ones this code would draw."""
    old = json.loads((Path(folder) / MANIFEST).read_text())
    found = (old.get("seed"), old.get("style", "standard"))
    if found != (seed, style):
        raise ValueError(
            f"{folder} holds a bank with seed {found[0]} and style {found[1]}, not {seed} and "
            f"{style}: use another folder"
        )
    if style == "varied" and old.get("generator", 1) != VARIED_GENERATOR:
        raise ValueError(
            f"{folder} was drawn by version {old.get('generator', 1)} of the varied page "
            f"generator, this code draws version {VARIED_GENERATOR}: use another folder or "
            "delete it"
        )


def varied_kinds(bank_seed: int, count: int) -> list[str]:
    """The kind of each page of a varied bank (drawn from its seed without rendering it)."""
    from stn_align.training.documents.special_pages import VariedPageRenderer

    return [VariedPageRenderer(page_seed(bank_seed, i)).kind for i in range(count)]


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
