"""The paper benchmark: CNN and FCN baselines vs ST-CNNs on 40x40 cluttered MNIST, over seeds.

Every run goes through the package's own `stn_align.training.train.train` in end-to-end mode; this
file only chooses the settings, evaluates the trained checkpoints on the test split, and aggregates.

One small extension is registered here rather than in the core package:
dataset "paper-mnist": the package's ClutteredMNIST, optionally cut to data.train_size /
  data.val_size items (smoke runs) and optionally rotated at random within data.max_rotation
  degrees (the generalisation follow-up);
The initialisation follow-up uses the core's `model.localiser_init=random`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from stn_align.training import data as data_registry
from stn_align.training import train as train_module
from stn_align.training.config import TrainConfig, load_config
from stn_align.training.data import ClutteredMNIST

DEFAULT_DATA = "../shared/data/cluttered-mnist/mnist_cluttered_40x40.npz"

# Shared by every run: same data, classifier, optimiser and budget. The localiser and its learning
# rate are what the pilot runs in docs/paper-benchmark.md settled on.
BASE = [
    "mode=end_to_end",
    "data.dataset=paper-mnist",
    "data.train_size=10000",
    "data.val_size=1000",
    "data.max_rotation=0",
    "model.input_size=40",
    "model.channels=1",
    "model.classifier=cnn",
    "model.localiser=fc",
    "model.hidden=64",
    "batch_size=64",
    "lr=0.001",
    "localiser_lr=0",
    "warmup_steps=50",
]


@dataclass
class Experiment:
    name: str
    group: str  # "main" (the table), "rotation", "init", "double"
    overrides: list[str]
    label: str
    test_angles: tuple[float, ...] = (0.0,)


def experiments(out_size: int) -> list[Experiment]:
    st = [f"model.output_size={out_size}"]
    main = [
        Experiment("fcn", "main", ["model.family=none", "model.classifier=fcn"], "FCN"),
        Experiment("cnn", "main", ["model.family=none"], "CNN"),
    ]
    for family in ("affine", "projective", "tps", "rotation", "attention"):
        main.append(
            Experiment(f"st-{family}", "main", [f"model.family={family}", *st], f"ST-CNN {family}")
        )
    angles = (0.0, 45.0, 60.0, 75.0, 90.0)
    rot = ["data.max_rotation=45"]
    follow = [
        Experiment("rot45-cnn", "rotation", ["model.family=none", *rot], "CNN, rot. +-45", angles),
        Experiment(
            "rot45-st-affine",
            "rotation",
            ["model.family=affine", *st, *rot],
            "ST-CNN affine, rot. +-45",
            angles,
        ),
        Experiment(
            "st-affine-random-init",
            "init",
            ["model.family=affine", "model.localiser_init=random", *st],
            "ST-CNN affine, random init",
        ),
        Experiment(
            "2x-st-affine",
            "double",
            ["model.family=affine", "model.transformers=2", *st],
            "2xST-CNN affine",
        ),
    ]
    return main + follow


# ---------------------------------------------------------------------------------------------
# Data


def rotate(image: np.ndarray, degrees: float) -> np.ndarray:
    """Rotate a (S, S) image counter-clockwise about its centre, zero fill."""
    size = image.shape[-1]
    m = cv2.getRotationMatrix2D(((size - 1) / 2, (size - 1) / 2), degrees, 1.0)
    return cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR, borderValue=0)


_LOADED: dict[tuple[str, str], ClutteredMNIST] = {}


def cluttered_mnist(cfg: TrainConfig, split: str) -> ClutteredMNIST:
    """Loaded once per process: a bench trains dozens of models on the same arrays."""
    key = (cfg.data.path, split)
    if key not in _LOADED:
        _LOADED[key] = ClutteredMNIST(cfg, split)
    return _LOADED[key]


class PaperMNIST(Dataset):
    """ClutteredMNIST, cut to a size and rotated within +-data.max_rotation (0 = untouched)."""

    def __init__(self, cfg: TrainConfig, split: str, angle: float | None = None):
        self.base = cluttered_mnist(cfg, split)
        limit = {"train": cfg.data.train_size, "val": cfg.data.val_size}.get(split, len(self.base))
        self.length = min(len(self.base), limit)
        self.max_rotation = cfg.data.max_rotation if split != "test" else 0.0
        self.angle = angle  # a fixed test-time rotation
        # num_workers=0 in these runs, so one seeded stream keeps a run reproducible.
        self.rng = np.random.default_rng([cfg.seed, data_registry.SPLIT_IDS[split]])

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict:
        item = self.base[index]
        angle = self.angle
        if angle is None and self.max_rotation > 0:
            angle = float(self.rng.uniform(-self.max_rotation, self.max_rotation))
        if not angle:
            return item
        image = rotate(item["image"][0].numpy(), angle)
        return {"image": torch.from_numpy(image)[None], "label": item["label"]}


data_registry.DATASETS["paper-mnist"] = PaperMNIST


# ---------------------------------------------------------------------------------------------
# Training and evaluation


@torch.no_grad()
def test_error(model: nn.Module, cfg: TrainConfig, angle: float, limit: int, device) -> float:
    """Error on the test split, every digit rotated counter-clockwise by `angle` degrees."""
    test_set = PaperMNIST(cfg, "test", angle=angle)
    indices = range(min(limit, len(test_set))) if limit else range(len(test_set))
    loader = DataLoader(torch.utils.data.Subset(test_set, list(indices)), batch_size=250)
    model.eval()
    wrong = total = 0
    for batch in loader:
        logits, _ = model(batch["image"].to(device))
        wrong += (logits.argmax(1).cpu() != batch["label"]).sum().item()
        total += len(batch["label"])
    return wrong / total


def run_one(
    exp: Experiment,
    seed: int,
    steps: int,
    out: Path,
    device: str,
    extra: list[str],
    test_limit: int,
) -> dict:
    """Train one (experiment, seed) unless a finished result with the same settings exists."""
    run_dir = out / exp.name / f"seed{seed}"
    cfg = load_config(
        None,
        [
            *BASE,
            f"data.path={DEFAULT_DATA}",
            *exp.overrides,
            *extra,
            f"seed={seed}",
            f"steps={steps}",
            f"eval_every={max(1, steps // 5)}",
            f"out_dir={run_dir}",
            f"device={device}",
        ],
    )
    settings = {
        "train_config": dataclasses.asdict(cfg),
        "test_angles": list(exp.test_angles),
        "test_limit": test_limit,
    }
    result_path = run_dir / "result.json"
    if result_path.is_file():
        done = json.loads(result_path.read_text())
        if done.get("settings") == settings:
            return done
    if run_dir.exists():
        shutil.rmtree(run_dir)  # train() appends to metrics.jsonl; a rerun starts clean
    t0 = time.perf_counter()
    val = train_module.train(cfg)
    train_s = time.perf_counter() - t0
    model, _ = train_module.load_checkpoint(
        run_dir / "ckpt.pt", device=str(train_module.pick_device(device))
    )
    dev = next(model.parameters()).device
    errors = {str(a): test_error(model, cfg, a, test_limit, dev) for a in exp.test_angles}
    for a in exp.test_angles:  # rotations both ways: the training range is symmetric
        if a:
            neg = test_error(model, cfg, -a, test_limit, dev)
            errors[str(a)] = (errors[str(a)] + neg) / 2
    result = {
        "name": exp.name,
        "seed": seed,
        "steps": steps,
        "val_error": val.get("val_error"),
        "test_error": errors[str(exp.test_angles[0])],
        "test_errors": errors,
        "train_s": train_s,
        "wall_s": time.perf_counter() - t0,
        "settings": settings,
    }
    result_path.write_text(json.dumps(result, indent=1))
    return result


def mean_std(values: list[float]) -> tuple[float, float]:
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


@dataclass
class Summary:
    exp: Experiment
    results: list[dict] = field(default_factory=list)

    def errors(self, angle: str | None = None) -> list[float]:
        if angle is None:
            return [r["test_error"] for r in self.results]
        return [r["test_errors"][angle] for r in self.results]


def fmt(values: list[float]) -> str:
    m, s = mean_std(values)
    return f"{100 * m:.2f} ± {100 * s:.2f}"


def tables(summaries: list[Summary]) -> str:
    """Markdown tables of test error (%), mean ± sample std over seeds."""
    lines = [
        "| model | test error % (mean ± std) | per seed % | val error % | train s/run |",
        "|---|---|---|---|---|",
    ]
    for s in summaries:
        if s.exp.group == "rotation" or not s.results:
            continue
        per_seed = ", ".join(f"{100 * e:.1f}" for e in s.errors())
        val = [r["val_error"] for r in s.results]
        wall = statistics.fmean(r["train_s"] for r in s.results)
        lines.append(
            f"| {s.exp.label} | {fmt(s.errors())} | {per_seed} | {fmt(val)} | {wall:.0f} |"
        )
    rot = [s for s in summaries if s.exp.group == "rotation" and s.results]
    if rot:
        angles = list(rot[0].exp.test_angles)
        lines += [
            "",
            "Trained with random rotations within ±45°, tested with every test digit "
            "rotated by ± each angle (test error %, mean ± std over seeds):",
            "",
            "| model | " + " | ".join(f"{a:g}°" for a in angles) + " |",
            "|---|" + "---|" * len(angles),
        ]
        for s in rot:
            cells = " | ".join(fmt(s.errors(str(a))) for a in angles)
            lines.append(f"| {s.exp.label} | {cells} |")
    return "\n".join(lines) + "\n"


def run_benchmark(
    seeds: int,
    steps: int,
    out: Path,
    device: str,
    groups: set[str],
    only: set[str] | None = None,
    extra: list[str] | None = None,
    out_size: int = 20,
    test_limit: int = 0,
    followup_seeds: int = 0,
) -> list[Summary]:
    chosen = [
        e for e in experiments(out_size) if e.group in groups and (only is None or e.name in only)
    ]
    if not chosen:
        raise ValueError("no experiment selected; check --only and --skip-followups")
    summaries = [Summary(e) for e in chosen]
    # The main table first, seed by seed, so an interrupted bench still leaves a whole table.
    jobs = sorted(
        (
            (s, seed)
            for s in summaries
            for seed in range(seeds if s.exp.group == "main" else followup_seeds or seeds)
        ),
        key=lambda job: (job[0].exp.group != "main", job[1]),
    )
    for s, seed in tqdm(jobs, desc="bench paper", unit="run"):
        result = run_one(s.exp, seed, steps, out, device, extra or [], test_limit)
        s.results.append(result)
        tqdm.write(
            f"{s.exp.name} seed {seed}: test error {100 * result['test_error']:.2f}% "
            f"({result['train_s']:.0f} s)"
        )
    (out / "results.json").write_text(
        json.dumps(
            [
                {"name": s.exp.name, "label": s.exp.label, "group": s.exp.group, "runs": s.results}
                for s in summaries
            ],
            indent=1,
        )
    )
    return summaries
