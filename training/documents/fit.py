"""`stn fit doc-rotation`: doc-rotation from nothing but the repository, ../shared and a seed.

    stn fit doc-rotation --config configs/doc-rotation.toml          # -> OUT_DIR/ckpt.pt
    stn export runs/doc-rotation/ckpt.pt -o exported/doc-rotation.onnx --name doc-rotation

(or `export = "exported/doc-rotation.onnx"` in the config, or `--export PATH`, to export at the
end). The stages, each skipped when its output is already there:

1. the synthetic page bank (bank.py), rendered once;
2. the training examples (orientation_cache.py): real train pages and synthetic pages, degraded
   and turned, plus pages with nothing to read, through the model's weight-free front (the
   profile skew, skew.py), cached as the classifier's views;
3. the validation examples: the val split's pages turned as `stn evaluate --split val` does;
4. the orientation classifier (orientation.py), trained on the cached views; the step kept is
   the one with the best validation log-likelihood;
5. calibration: the softmax temperature, by log-likelihood of the four-turn vote on the
   validation views (as the exported model reads a page: OrientationNet.every_turn), and the
   curve that turns the skew search's peak contrast into the skew confidence (training views);
6. the checkpoint (plain data: `torch.load(path, weights_only=True)`), then the export.

The only weights are the classifier's; the skew search has none. Progress goes to `logging`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import platform
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from stn_align.training.build import build_model
from stn_align.training.config import ModelConfig
from stn_align.training.documents.fit_config import FitConfig, FitTrain, as_dict
from stn_align.training.documents.orientation import (
    OrientationNet,
    dequantise,
    soft_targets,
    to_rows_frame,
    vote,
)
from stn_align.training.documents.orientation_cache import (
    build_train_cache,
    build_val_cache,
    shard_stream,
)
from stn_align.training.documents.orientation_data import quarter_turned
from stn_align.training.documents.rotation_model import RotationLocaliser

log = logging.getLogger("stn.fit")


def model_config(cfg: FitConfig) -> ModelConfig:
    return ModelConfig(
        family="rotation", localiser="doc", input_size=cfg.input_size, channels=1, letterbox_fill=0
    )


def build(cfg: FitConfig):
    """(the SpatialTransformer, its RotationLocaliser) for this recipe, untrained."""
    import stn_align.training.documents  # noqa: F401  (registers the `doc` localiser)

    stn = build_model(model_config(cfg))
    localiser = stn.localiser
    assert isinstance(localiser, RotationLocaliser)
    localiser.orientation = OrientationNet(cfg.input_size, dropout=cfg.train.dropout)
    return stn.eval(), localiser


def copies(arrays: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Cached arrays (a batch) -> the classifier's inputs: view, rows (channels-last: PyTorch's
    CPU convolutions train about twice as fast in that layout) and along."""
    view, rows = (
        dequantise(torch.from_numpy(np.ascontiguousarray(arrays[k]))).contiguous(
            memory_format=torch.channels_last
        )
        for k in ("view", "rows")
    )
    return view, rows, torch.from_numpy(arrays["along"].astype(np.float32))


def _batch(stream, rng: np.random.Generator, t: FitTrain):
    items = [next(stream) for _ in range(t.batch_size)]
    if t.quarter_turns:
        for item in items:
            turned = quarter_turned(
                item["view"], item["rows"], item["along"], item["turn"], int(rng.integers(4))
            )
            item["view"], item["rows"], item["along"], item["turn"] = turned
    arrays = {k: np.stack([i[k] for i in items]) for k in ("view", "rows", "along")}
    turns = torch.tensor([int(i["turn"]) for i in items])
    readable = torch.tensor([bool(i["readable"]) for i in items])
    clear = torch.tensor([abs(float(i["left"])) <= t.label_limit for i in items])
    weight = (clear | ~readable).float()
    return copies(arrays), soft_targets(turns, readable, t.smoothing), weight


def half_turn_loss(logits, targets, weight, along) -> torch.Tensor:
    """The line branch's loss: logistic on its vote (logits [v, 0, -v, 0] in the rows' frame),
    upright against upside down in that frame; turns of the rows' frame that are quarter turns
    (the axis was wrong) and blank pages do not count."""
    line_vote = to_rows_frame(logits, along)[:, 0]
    target = to_rows_frame(targets, along)
    certain = (targets.max(1).values > 0.5).float()  # not the uniform targets of blank pages
    loss = target[:, 0] * F.softplus(-2 * line_vote) + target[:, 2] * F.softplus(2 * line_vote)
    return (loss * weight * certain).sum()


def lr_at(step: int, cfg: FitConfig) -> float:
    t = cfg.train
    if step < t.warmup_steps:
        return t.lr * (step + 1) / t.warmup_steps
    progress = (step - t.warmup_steps) / max(1, t.steps - t.warmup_steps)
    return t.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


@torch.no_grad()
def val_logits(net: OrientationNet, val: dict, batch: int = 64, every: bool = False):
    """The classifier's logits on the validation copies (N, 4); with `every`, a list: the sum's
    and each branch's."""
    net.eval()
    out: list[list[torch.Tensor]] = []
    for i in range(0, len(val["turn"]), batch):
        part = {k: val[k][i : i + batch] for k in ("view", "rows", "along")}
        out.append(list(net.classify(*copies(part))))
    joined = [torch.cat(parts) for parts in zip(*out, strict=True)]
    return joined if every else joined[0]


@torch.no_grad()
def val_every_turn(net: OrientationNet, val: dict, batch: int = 32) -> torch.Tensor:
    """The classifier's logits (4, N, 4) on the validation copies read in every quarter turn, as
    the exported model reads them (OrientationNet.every_turn)."""
    net.eval()
    out = []
    for i in range(0, len(val["turn"]), batch):
        part = {k: val[k][i : i + batch] for k in ("view", "rows", "along")}
        view, rows, along = copies(part)
        out.append(net.every_turn(view.contiguous(), rows.contiguous(), along))
    return torch.cat(out, 1)


def branch_accuracies(logits: list[torch.Tensor], val: dict) -> str:
    """The val accuracy of each branch alone (the line branch's on the half turn only)."""
    turns = torch.from_numpy(val["turn"]).long()
    names = ("view", "rows", "lines")
    return ", ".join(
        f"{name} {(x.argmax(1) == turns).float().mean().item():.3f}"
        for name, x in zip(names, logits[1:], strict=True)
    )


def vote_nll(logits: torch.Tensor, turns: torch.Tensor, temperature: float) -> float:
    """The mean negative log-likelihood of `turns` under `vote` of logits (N, 4) or (A, N, 4)."""
    every = logits if logits.dim() == 3 else logits[None]
    p = vote(every, temperature).gather(1, turns[:, None])
    return float(-torch.log(p.clamp_min(1e-12)).mean())


def scores(logits: torch.Tensor, val: dict, temperature: float = 1.0) -> dict:
    """Validation log-likelihood, accuracy and wrong answers, overall and by kind, of logits
    (N, 4) or of the vote of (A, N, 4)."""
    turns = torch.from_numpy(val["turn"]).long()
    nll = vote_nll(logits, turns, temperature)
    every = logits if logits.dim() == 3 else logits[None]
    wrong = (vote(every).argmax(1) != turns).numpy()
    kinds = val["kind"]
    by_kind = {str(k): int(wrong[kinds == k].sum()) for k in np.unique(kinds)}
    return {
        "val_nll": nll,
        "val_accuracy": float(1.0 - wrong.mean()),
        "val_errors": int(wrong.sum()),
        "val_errors_by_kind": by_kind,
    }


def train_classifier(cfg: FitConfig, net: OrientationNet, shards, val: dict) -> dict:
    """Fit `net` on the cached views; keep the weights of the evaluation with the best val
    log-likelihood. Returns that evaluation's scores."""
    t = cfg.train
    torch.manual_seed(cfg.seed)
    # See copies(); Module.to takes memory_format, though its type stubs do not say so.
    net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    rng = np.random.default_rng([cfg.seed, 1])
    stream = shard_stream(shards, rng)
    optimiser = torch.optim.AdamW(net.parameters(), lr=t.lr, weight_decay=t.weight_decay)
    best: dict = {"val_nll": float("inf")}
    best_state = {k: v.clone() for k, v in net.state_dict().items()}
    started, running = time.perf_counter(), []
    for step in range(t.steps):
        net.train()
        for group in optimiser.param_groups:
            group["lr"] = lr_at(step, cfg)
        inputs, targets, weight = _batch(stream, rng, t)
        # The sum's loss, and each branch's at half weight, so that none leans on the others.
        # (The line branch only tells a half turn: its loss counts where the view's frame and
        # the rows' agree on the axis, turns 0 and 2 of the rows.)
        outputs = net.classify(*inputs)
        loss = sum(
            share * (-(targets * F.log_softmax(logits, 1)).sum(1) * weight).sum()
            for share, logits in zip((1.0, 0.5, 0.5), outputs[:3], strict=True)
        )
        line_loss = half_turn_loss(outputs[3], targets, weight, inputs[2])
        loss = (loss + 0.5 * line_loss) / weight.sum().clamp_min(1.0)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        optimiser.step()
        running.append(loss.item())
        if (step + 1) % t.eval_every == 0 or step + 1 == t.steps:
            every = val_logits(net, val, every=True)
            found = scores(every[0], val)
            found["branches"] = branch_accuracies(every, val)
            found.update(step=step + 1, train_loss=float(np.mean(running)))
            running = []
            if found["val_nll"] < best["val_nll"]:
                best = found
                best_state = {k: v.clone() for k, v in net.state_dict().items()}
            log.info(
                "step %d: train loss %.4f, val nll %.4f, val accuracy %.4f (%d wrong: %s; "
                "branches alone: %s), %.0f s", step + 1, found["train_loss"], found["val_nll"],
                found["val_accuracy"], found["val_errors"], found["val_errors_by_kind"],
                found["branches"], time.perf_counter() - started,
            )  # fmt: skip
    net.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
    net.load_state_dict(best_state)
    net.eval()
    return best


def fit_temperature(logits: torch.Tensor, turns: np.ndarray) -> float:
    """The softmax temperature with the best log-likelihood of the vote of logits (N, 4) or
    (A, N, 4) (a grid, then a finer one)."""
    target = torch.from_numpy(turns).long()

    def nll(t: float) -> float:
        return vote_nll(logits, target, t)

    grid = np.exp(np.linspace(np.log(0.25), np.log(8.0), 61))
    best = min(grid, key=nll)
    fine = best * np.exp(np.linspace(-0.06, 0.06, 25))
    return float(min(fine, key=nll))


def fit_skew_curve(peak: np.ndarray, found: np.ndarray) -> tuple[float, float]:
    """(centre, width) of the logistic curve from peak contrast to P(the skew search found the
    lines), by log-likelihood on a grid. `found` is 1 where the front's estimate was within a
    few degrees of the truth on a page with something to read."""
    peak, found = peak.astype(np.float64), found.astype(np.float64)
    best, best_nll = (0.15, 0.03), float("inf")
    for centre in np.linspace(0.0, 1.0, 101):
        for width in (0.01, 0.02, 0.03, 0.05, 0.08, 0.12, 0.2):
            p = 1.0 / (1.0 + np.exp(-np.clip((peak - centre) / width, -30, 30)))
            p = np.clip(p, 1e-6, 1 - 1e-6)
            nll = -np.mean(found * np.log(p) + (1 - found) * np.log(1 - p))
            if nll < best_nll:
                best, best_nll = (float(centre), float(width)), nll
    return best


def skew_found(shards, limit: float = 2.0, count: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """(peak contrast, found) over the first training shards: found where the page is readable
    and the front's coarse estimate is within `limit` degrees of the truth modulo 90."""
    from stn_align.training.documents.orientation_data import read_shard

    peaks, found = [], []
    for path in shards[:count]:
        shard = read_shard(path)
        peaks.append(shard["peak"])
        found.append(shard["readable"] & (np.abs(shard["left"]) <= limit))
    return np.concatenate(peaks), np.concatenate(found)


def library_versions() -> dict[str, str]:
    """The libraries that draw and train on the data, for the checkpoint. Two from-nothing runs
    on different machines trained to different weights though training on one cache repeats, so
    the data differed; these versions are the first thing to compare."""
    import cv2
    import PIL

    return {
        "python": platform.python_version(),
        "torch": str(torch.__version__),
        "numpy": str(np.__version__),
        "opencv": str(cv2.__version__),
        "pillow": str(PIL.__version__),
    }


def save_checkpoint(path: Path, stn, cfg: FitConfig, metrics: dict) -> Path:
    """Plain data only: tensors, numbers, strings, dicts (loadable with weights_only=True)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "model": stn.state_dict(),
        "model_config": dataclasses.asdict(model_config(cfg)),
        "fit_config": as_dict(cfg),
        "metrics": metrics,
        "step": int(metrics.get("step", cfg.train.steps)),
        "versions": library_versions(),
    }
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)
    return path


def fit(cfg: FitConfig) -> dict:
    """Run the recipe; returns the metrics stored in the checkpoint (and the export report)."""
    torch.manual_seed(cfg.seed)
    stn, localiser = build(cfg)
    started = time.perf_counter()
    shards = build_train_cache(cfg, localiser)
    val = build_val_cache(cfg, localiser)
    log.info("data ready: %d shards, %d val images (%.0f s)", len(shards), len(val["turn"]),
             time.perf_counter() - started)  # fmt: skip
    trained = time.perf_counter()
    best = train_classifier(cfg, localiser.orientation, shards, val)
    logits = val_every_turn(localiser.orientation, val)  # as the exported model reads a page
    temperature = fit_temperature(logits, val["turn"])
    centre, width = fit_skew_curve(*skew_found(shards))
    with torch.no_grad():
        localiser.temperature.fill_(temperature)
        localiser.skew_centre.fill_(centre)
        localiser.skew_width.fill_(width)
    metrics = {
        **best,
        **{f"calibrated_{k}": v for k, v in scores(logits, val, temperature).items()},
        "temperature": temperature,
        "skew_centre": centre,
        "skew_width": width,
        "train_seconds": time.perf_counter() - trained,
        "total_seconds": time.perf_counter() - started,
    }
    out = save_checkpoint(Path(cfg.out_dir) / "ckpt.pt", stn, cfg, metrics)
    log.info("checkpoint %s: %s", out, metrics)
    if cfg.export:
        from stn_align.training.export import export_model

        report = export_model(stn, cfg.export, name=Path(cfg.export).stem, metrics=metrics)
        log.info("exported %s", report["localiser"])
        metrics["export"] = report
    return metrics
