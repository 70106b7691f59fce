"""The doc-rotation recipe's settings (`stn fit doc-rotation --config configs/doc-rotation.toml`).

Loaded like the training configs (TOML or YAML, `--set key=value` overrides, every key checked
and an error that names it). Stored as a plain dict inside the checkpoint.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from stn_align.training.config import ConfigError, apply_values, load_file, parse_overrides


@dataclass
class FitData:
    pages: str = "../shared/data/pages"  # the real page bank (pages.csv); "" for none
    split_file: str = ""  # its split by source; "" is configs/pages-split.toml
    bank: str = "runs/pages-rotation"  # the synthetic page bank (rendered on first use)
    bank_count: int = 3000
    bank_seed: int = 1000
    examples: int = 60000  # training examples rendered into the cache
    real_share: float = 0.5  # of them from real train pages
    blank_share: float = 0.05  # with nothing to read; the rest synthetic pages
    shard_size: int = 500
    val_rotations: int = 8  # validation: each val page turned as `stn evaluate --split val` does
    val_seed: int = 0
    cache: str = ""  # "" is OUT_DIR/cache


@dataclass
class FitTrain:
    steps: int = 8000
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 200
    smoothing: float = 0.05  # label smoothing of the readable examples' targets
    eval_every: int = 500
    label_limit: float = 30.0  # degrees: a label further from its quarter turn is not used
    dropout: float = 0.2
    quarter_turns: bool = True  # turn each example by a random quarter turn (quarter_turned)


@dataclass
class FitConfig:
    seed: int = 16
    out_dir: str = "runs/doc-rotation"
    input_size: int = 768
    export: str = ""  # e.g. exported/doc-rotation.onnx: exported once fitted
    workers: int = 2  # processes rendering the bank and the cache (the data do not depend on it)
    data: FitData = field(default_factory=FitData)
    train: FitTrain = field(default_factory=FitTrain)

    @property
    def cache_dir(self) -> Path:
        return Path(self.data.cache or Path(self.out_dir) / "cache")


def validate(cfg: FitConfig) -> FitConfig:
    d, t = cfg.data, cfg.train
    checks = [
        (cfg.input_size % 64 == 0 and cfg.input_size >= 128, "input_size", "a multiple of 64"),
        (cfg.workers > 0, "workers", "positive"),
        (d.examples > 0, "data.examples", "positive"),
        (0 <= d.real_share <= 1, "data.real_share", "in [0, 1]"),
        (0 <= d.blank_share <= 1 - d.real_share, "data.blank_share", "in [0, 1 - real_share]"),
        (d.shard_size > 0, "data.shard_size", "positive"),
        (d.bank_count > 0, "data.bank_count", "positive"),
        (d.val_rotations > 0, "data.val_rotations", "positive"),
        (t.steps > 0, "train.steps", "positive"),
        (t.batch_size > 0, "train.batch_size", "positive"),
        (t.lr > 0, "train.lr", "positive"),
        (0 <= t.smoothing < 1, "train.smoothing", "in [0, 1)"),
        (t.eval_every > 0, "train.eval_every", "positive"),
        (0 < t.label_limit <= 45, "train.label_limit", "in (0, 45]"),
        (0 <= t.dropout < 1, "train.dropout", "in [0, 1)"),
    ]
    for ok, key, want in checks:
        if not ok:
            raise ConfigError(f"{key}: must be {want}")
    if d.real_share > 0 and not d.pages:
        raise ConfigError("data.pages: needed when data.real_share > 0")
    return cfg


def load_fit_config(path: str | Path | None, overrides: list[str] | None = None) -> FitConfig:
    cfg = FitConfig()
    if path is not None:
        apply_values(cfg, load_file(path))
    apply_values(cfg, parse_overrides(overrides or []))
    return validate(cfg)


def as_dict(cfg: FitConfig) -> dict:
    return dataclasses.asdict(cfg)
