"""The orientation classifier's examples, rendered once through the model's front and cached.

    cache = build_train_cache(cfg, localiser)   # OUT/cache/train/shard-00000-n500.npz ...
    val = build_val_cache(cfg, localiser)       # OUT/cache/val-r8-s0.npz

Each shard holds `shard_size` examples drawn from (seed, 0, shard, index) alone, so a shard is the
same on every run and an interrupted build picks up where it stopped. Arrays per example: `view`
(uint8 S/2 x S/2) and `rows` (uint8 S x S/4), orientation.quantise'd, `along` (the axis the
front found), `turn` (the label), `left` (degrees between the truth and the labelled quarter
turn), `readable`, `angle` (truth), `coarse` (the front's estimate), `peak` (how far its best
angle stood out) and `kind`.

The validation examples are the pages of the bank's val split turned exactly as
`stn evaluate DIR --split val --rotations K --seed S` turns them, so that what training chooses
on is what the evaluation scores.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from stn_align.core.preprocess import localiser_input, to_channels
from stn_align.training.documents import orientation_data as od
from stn_align.training.documents.bank import KINDS, MANIFEST, build_bank, check_bank, load_bank
from stn_align.training.documents.fit_config import FitConfig, FitData
from stn_align.training.documents.real_pages import load_pages, split_pages

log = logging.getLogger("stn.fit.cache")
BATCH = 16  # examples through the front at once


def _split_kwargs(cfg: FitConfig) -> dict:
    return {"split_file": cfg.data.split_file} if cfg.data.split_file else {}


def _check_manifest(folder: Path, key: dict) -> None:
    """A cache folder is for one data recipe: refuse to mix shards of two."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "cache.json"
    if path.is_file():
        old = json.loads(path.read_text())
        if old != key:
            raise ValueError(
                f"{folder} holds examples of another recipe ({old}); use another data.cache "
                "folder or delete it"
            )
    else:
        path.write_text(json.dumps(key, indent=1) + "\n")


class Sources:
    """The pages examples are made from: real train pages (kept in memory, shrunk) and the
    synthetic bank."""

    def __init__(self, cfg: FitConfig):
        d = cfg.data
        self.real: list = []
        self.bank: list = []
        self.bank_kinds: list[str] = []
        if d.real_share > 0:
            records = split_pages(load_pages(d.pages), "train", **_split_kwargs(cfg))
            self.real = [(r, od.load_real_page(r)) for r in records]
        if d.real_share < 1:
            self.ensure_bank(cfg)
            self.bank = load_bank(d.bank, d.bank_count)
            self.bank_kinds = _bank_kinds(Path(d.bank), len(self.bank))

    @staticmethod
    def ensure_bank(cfg: FitConfig) -> None:
        """Render the synthetic bank if it is not there yet (its pages do not depend on how
        many processes draw them)."""
        d = cfg.data
        if d.real_share >= 1:
            return  # no synthetic pages in this recipe
        if (Path(d.bank) / MANIFEST).is_file():
            check_bank(d.bank, d.bank_seed, "varied")
        else:
            log.info("rendering the synthetic page bank into %s (once)", d.bank)
            build_bank(d.bank, d.bank_count, d.bank_seed, cfg.workers, False, style="varied")

    def example(self, rng: np.random.Generator, d: FitData, size: int) -> od.Example:
        u = rng.random()
        if u < d.real_share and self.real:
            record, page = self.real[int(rng.integers(len(self.real)))]
            other = self.real[int(rng.integers(len(self.real)))][1]
            return od.real_example(page, record, rng, other, size)
        if u < d.real_share + d.blank_share or not self.bank:
            other = self.bank[int(rng.integers(len(self.bank)))] if self.bank else None
            return od.blank_example(rng, other, size)
        i = int(rng.integers(len(self.bank)))
        other = self.bank[int(rng.integers(len(self.bank)))]
        return od.synthetic_example(self.bank[i], other, rng, self.bank_kinds[i], size)


def _bank_kinds(folder: Path, count: int) -> list[str]:
    """Each bank page's kind, from the bank's kinds.json when it has one."""
    path = folder / KINDS
    kinds = json.loads(path.read_text()) if path.is_file() else []
    return [kinds[i] if i < len(kinds) else "page" for i in range(count)]


def render_shard(cfg: FitConfig, front, sources: Sources, shard: int) -> dict[str, np.ndarray]:
    d = cfg.data
    start = shard * d.shard_size
    count = min(d.shard_size, d.examples - start)
    images, angles, readable, kinds = [], [], [], []
    for j in range(count):
        rng = np.random.default_rng([cfg.seed, 0, shard, j])
        example = sources.example(rng, d, cfg.input_size)
        images.append(example.image)
        angles.append(example.angle)
        readable.append(example.readable)
        kinds.append(example.kind)
    seen = od.views(front, np.stack(images), BATCH)
    turn, left = od.turn_label(np.array(angles), seen["coarse"])
    return {
        **seen,
        "turn": turn,
        "left": left.astype(np.float32),
        "readable": np.array(readable),
        "angle": np.array(angles, np.float32),
        "kind": np.array(kinds),
    }


def build_train_cache(cfg: FitConfig, localiser) -> list[Path]:
    """Render the training shards that are not there yet; the list of all of them."""
    folder = cfg.cache_dir / "train"
    d = cfg.data
    # A shard's examples do not depend on how many are asked for, so a longer run reuses a
    # shorter one's shards (the count is in each shard's name: a last shard cut short is redone).
    unused = ("cache", "examples", "val_rotations", "val_seed")
    key = {k: v for k, v in vars(d).items() if k not in unused}
    _check_manifest(folder, {**key, "seed": cfg.seed, "input_size": cfg.input_size})
    count = -(-d.examples // d.shard_size)
    sizes = [min(d.shard_size, d.examples - i * d.shard_size) for i in range(count)]
    shards = [folder / f"shard-{i:05d}-n{n}.npz" for i, n in enumerate(sizes)]
    missing = [i for i, path in enumerate(shards) if not path.is_file()]
    if not missing:
        return shards
    front = od.FrontSession(localiser, cfg.input_size)
    workers = min(cfg.workers, len(missing))
    if workers > 1:
        Sources.ensure_bank(cfg)  # rendered once here, not by every process
        rendered = _render_in_processes(cfg, front.onnx, shards, missing, workers)
    else:
        sources = Sources(cfg)
        rendered = (_write(cfg, front, sources, shards, i) for i in missing)
    for n, i in enumerate(rendered):
        log.info("training cache: shard %d of %d written (%d to go)", i + 1, len(shards),
                 len(missing) - n - 1)  # fmt: skip
    return shards


def _write(cfg: FitConfig, front, sources: Sources, shards: list[Path], i: int) -> int:
    od.write_shard(shards[i], **render_shard(cfg, front, sources, i))
    return i


# A shard depends on the seed, its index and the sources alone, so shards can be rendered in any
# order by any number of processes. Each process loads the sources once (the bank: a few GB) and
# opens the front from its ONNX bytes; "spawn" keeps torch's thread pools out of the children.
_worker: dict = {}


def _start_worker(cfg: FitConfig, onnx: bytes, shards: list[Path]) -> None:
    import cv2

    cv2.setNumThreads(1)
    front, sources = od.FrontSession.from_onnx(onnx), Sources(cfg)
    _worker.update(cfg=cfg, front=front, sources=sources, shards=shards)


def _write_in_worker(i: int) -> int:
    w = _worker
    return _write(w["cfg"], w["front"], w["sources"], w["shards"], i)


def _render_in_processes(cfg, onnx: bytes, shards, missing, workers: int):
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    with context.Pool(workers, _start_worker, (cfg, onnx, shards)) as pool:
        yield from pool.imap_unordered(_write_in_worker, missing)


def build_val_cache(cfg: FitConfig, localiser) -> dict[str, np.ndarray]:
    """The val pages turned as `stn evaluate --split val` turns them, through the front."""
    from stn_align.training.documents import eval_pages

    d = cfg.data
    path = cfg.cache_dir / f"val-r{d.val_rotations}-s{d.val_seed}.npz"
    if path.is_file():
        return od.read_shard(path)
    folder = Path(d.pages)
    records = split_pages(load_pages(folder), "val", **_split_kwargs(cfg))
    only = {r.path.name for r in records}
    images, angles, kinds, scripts, skew_ok, names = [], [], [], [], [], []
    for sample in eval_pages.rotation_samples(folder, d.val_rotations, d.val_seed, only=only):
        grey = to_channels(sample.image, 1)
        images.append(localiser_input(grey, cfg.input_size, "letterbox", 0)[:, :, 0])
        angles.append(sample.truth_angle)
        kinds.append(sample.kind)
        scripts.append(sample.script)
        skew_ok.append(sample.skew_ok)
        names.append(sample.name)
    front = od.FrontSession(localiser, cfg.input_size)
    seen = od.views(front, np.stack(images), BATCH)
    turn, left = od.turn_label(np.array(angles), seen["coarse"])
    arrays = {
        **seen,
        "turn": turn,
        "left": left.astype(np.float32),
        "readable": np.ones(len(turn), bool),
        "angle": np.array(angles, np.float32),
        "kind": np.array(kinds),
        "script": np.array(scripts),
        "skew_ok": np.array(skew_ok),
        "name": np.array(names),
    }
    od.write_shard(path, **arrays)
    log.info("validation cache: %d images of %d pages", len(turn), len(records))
    return arrays


def shard_stream(shards: list[Path], rng: np.random.Generator, mix: int = 2):
    """Endless examples for training: shards in a fresh random order each pass, `mix` at a time
    shuffled together. Yields dicts of arrays, one example each."""
    while True:
        order = rng.permutation(len(shards))
        for start in range(0, len(order), mix):
            parts = [od.read_shard(shards[i]) for i in order[start : start + mix]]
            merged = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
            for i in rng.permutation(len(merged["turn"])):
                yield {k: v[i] for k, v in merged.items()}
