"""Phone photos rendered once to disk for training doc-perspective (photos.py is costly, about
0.1 s a photo, so each is rendered once and read many times).

    build_cache("runs/photos/train-s5", "train", count=60000, seed=5, size=384)
    cache = PhotoCache("runs/photos/train-s5")   # cache.image(i), cache.params[i], ...

A cache holds, per photo, the localiser's input (size x size grey, `preprocess.localiser_input`
with "stretch", as the service makes it) as a JPEG at quality 95, the true corners as projective
params (the page's own TL, TR, BR, BL in the photo's axis frame), the photo's size (to turn the
params into pixels), and whether a page is in it at all. Photo i is drawn from (seed, split, i)
alone, so a cache is the same on every machine; the manifest records how it was made.

Pages: split "train" photographs the training sources of the real page bank (real_pages, minus
the few that are themselves photos of a sheet on a desk: their outline would be the photo's) and,
one photo in three, a synthetic bank page (bank.py) with paper, ink and scan artefacts; split
"val" photographs only the validation sources, with the evaluation recipe (held-out desks and
shadow shapes). One photo in twelve has no page (a desk or a wall).
"""

from __future__ import annotations

import json
import logging
import multiprocessing
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np

from stn_align.core.preprocess import localiser_input
from stn_align.training.documents import photos, synth
from stn_align.training.documents.real_pages import DEFAULT_PAGES, load_pages, split_pages

log = logging.getLogger(__name__)

CACHE_VERSION = 1
SPLIT_IDS = {"train": 0, "val": 1}
LONG_SIDE = 512  # pixels on the rendered photo's longer side
PAGE_SIDE = 640  # pages are shrunk to this once, enough for a photo of LONG_SIDE
BLANK_SHARE = 1 / 12
SYNTHETIC_SHARE = 1 / 3
# Training-source pages that are themselves phone photos of a sheet on a coloured desk, in
# perspective: as pages, their outline would be the photo's edge, not the sheet's.
NOT_PAGES = (
    "238-form-adrian_omr.jpg",
    "239-form-adrian_omr.jpg",
    "240-form-omr_survey_1.jpg",
    "241-form-omr_survey_2.jpg",
)


def _shrink(image: np.ndarray, longest: int) -> np.ndarray:
    scale = longest / max(image.shape[:2])
    if scale >= 1:
        return image
    return cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)


class RealPages:
    """The real pages of a split, RGB, shrunk to PAGE_SIDE, each read from disk on first use."""

    def __init__(self, split: str, folder: str | Path = DEFAULT_PAGES):
        records = split_pages(load_pages(folder), split)
        self.paths = [r.path for r in records if r.path.name not in NOT_PAGES]
        self._loaded: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> np.ndarray:
        if index not in self._loaded:
            image = cv2.imread(str(self.paths[index]), cv2.IMREAD_COLOR)
            if image is None:
                raise ValueError(f"cannot read page {self.paths[index]}")
            self._loaded[index] = _shrink(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), PAGE_SIDE)
        return self._loaded[index]


_WORKER: dict = {}


def _init(
    split: str, seed: int, size: int, pages_dir: str, bank_dir: str, randomise: float = 0.0
) -> None:
    pages = RealPages(split, pages_dir)
    _WORKER.update(split=split, seed=seed, size=size, pages=pages, bank=[], randomise=randomise)
    if split == "train" and bank_dir:
        from stn_align.training.documents.bank import load_bank

        _WORKER["bank"] = [_shrink(p, PAGE_SIDE) for p in load_bank(bank_dir)]


def render(index: int) -> tuple[bytes, np.ndarray, tuple[int, int], bool]:
    """Photo `index` of the worker's split: (JPEG of the localiser input, params, photo hw,
    whether it has a page)."""
    from stn_align.training.documents import degrade

    w = _WORKER
    rng = np.random.default_rng([w["seed"], SPLIT_IDS[w["split"]], index])
    recipe = "train" if w["split"] == "train" else "eval"
    pages = w["pages"]
    sheets = [pages[int(rng.integers(len(pages)))] for _ in range(2)]
    if rng.random() < BLANK_SHARE:
        photo, _ = photos.blank_photo(rng, LONG_SIDE, recipe, w["randomise"])
        params, has_page = np.zeros(8, np.float32), False
    else:
        if w["bank"] and rng.random() < SYNTHETIC_SHARE:
            ink = w["bank"][int(rng.integers(len(w["bank"])))]
            page = degrade.ink_on_paper(ink, rng)
            if rng.random() < 0.2:
                page = synth.scanned_sheet(page, rng)
        else:
            page = pages[int(rng.integers(len(pages)))]
        photo, quad, _ = photos.phone_photo(page, rng, LONG_SIDE, recipe, sheets, w["randomise"])
        params, has_page = synth.quad_params(quad, photo.shape[:2]), True
    grey = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)
    small = localiser_input(grey, w["size"], "stretch")[:, :, 0]
    ok, buf = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 95])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes(), params, (photo.shape[0], photo.shape[1]), has_page


def build_cache(
    folder: str | Path,
    split: str,
    count: int,
    seed: int,
    size: int,
    workers: int = 2,
    pages_dir: str | Path = DEFAULT_PAGES,
    bank_dir: str | Path = "",
    start: int = 0,
    randomise: float = 0.0,
) -> Path:
    """Render photos start .. start + count - 1 of `split` into `folder` (replacing it);
    `randomise`: photos.phone_photo's share of randomised desks and shadows (training only)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    manifest = {"version": CACHE_VERSION, "split": split, "count": count, "seed": seed}
    manifest.update(size=size, long_side=LONG_SIDE, bank=str(bank_dir), start=start)
    if randomise:  # only when set, so caches made before the option still match
        manifest["randomise"] = randomise
    offsets = np.zeros((count, 2), np.int64)
    params = np.zeros((count, 8), np.float32)
    hws = np.zeros((count, 2), np.int32)
    has_page = np.zeros(count, bool)
    args = (split, seed, size, str(pages_dir), str(bank_dir), randomise)
    indices = range(start, start + count)
    results: Iterable[tuple[bytes, np.ndarray, tuple[int, int], bool]]
    with (folder / "images.bin").open("wb") as blob:
        if workers > 1 and count > 64:
            pool = multiprocessing.get_context("spawn").Pool(workers, _init, args)
            results = pool.imap(render, indices, chunksize=16)
        else:
            _init(*args)
            pool, results = None, map(render, indices)
        position = 0
        for i, (jpeg, p, hw, page) in enumerate(results):
            blob.write(jpeg)
            offsets[i] = (position, len(jpeg))
            position += len(jpeg)
            params[i], hws[i], has_page[i] = p, hw, page
            if (i + 1) % 500 == 0:
                log.info("rendered %d of %d %s photos into %s", i + 1, count, split, folder)
        if pool is not None:
            pool.close()
            pool.join()
    np.savez(folder / "labels.npz", offsets=offsets, params=params, hw=hws, has_page=has_page)
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return folder


CHUNK = 2000  # photos per cache folder: a long render can stop and go on where it was


def chunked_cache(
    root: str | Path,
    split: str,
    count: int,
    seed: int,
    size: int,
    workers: int = 2,
    randomise: float = 0.0,
) -> list[PhotoCache]:
    """The caches holding photos 0 .. count - 1 of `split` under `root`, in chunks of CHUNK,
    rendering the chunks not there yet."""
    caches = []
    tag = f"-random{randomise:g}" if randomise else ""
    for start in range(0, count, CHUNK):
        n = min(CHUNK, count - start)
        folder = Path(root) / f"{split}-seed{seed}-{size}px{tag}-{start:06d}"
        try:
            cache = PhotoCache(folder)
            ready = cache.matches(split, n, seed, size, start, randomise)
        except FileNotFoundError:
            ready = False
        if not ready:
            log.info(
                "rendering %s photos %d-%d into %s (once)", split, start, start + n - 1, folder
            )
            build_cache(folder, split, n, seed, size, workers, start=start, randomise=randomise)
            cache = PhotoCache(folder)
        caches.append(cache)
    return caches


class PhotoCache:
    """A rendered cache, read lazily: its images stay in one file on disk."""

    def __init__(self, folder: str | Path):
        folder = Path(folder)
        if not (folder / "manifest.json").is_file():
            raise FileNotFoundError(f"no photo cache in {folder} (manifest.json missing)")
        self.manifest = json.loads((folder / "manifest.json").read_text())
        with np.load(folder / "labels.npz") as labels:
            self.offsets = labels["offsets"]
            self.params = labels["params"]
            self.hw = labels["hw"]
            self.has_page = labels["has_page"]
        self.path = folder / "images.bin"
        self._blob: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.params)

    def image(self, index: int) -> np.ndarray:
        if self._blob is None:  # opened on first use, in each DataLoader worker
            self._blob = np.memmap(self.path, dtype=np.uint8, mode="r")
        start, length = self.offsets[index]
        data = np.asarray(self._blob[start : start + length])
        image = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE)
        if image is None:
            raise ValueError(f"{self.path}: photo {index} cannot be decoded")
        return image

    def matches(
        self, split: str, count: int, seed: int, size: int, start: int = 0, randomise: float = 0.0
    ) -> bool:
        m = self.manifest
        made = (m.get("version"), m.get("split"), m.get("count"), m.get("seed"), m.get("size"),
                m.get("start", 0), m.get("randomise", 0.0))  # fmt: skip
        return made == (CACHE_VERSION, split, count, seed, size, start, randomise)
