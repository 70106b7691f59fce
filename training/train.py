"""The training loop: `stn train --config FILE [--set key=value ...]`.

One short loop for both modes:
- supervised: the target theta is known; the loss is the mean squared distance between where the
  predicted and the true transform send a grid of output points (comparable across families, and
  free of the wrap-around of raw angles);
- end_to_end: a classifier sits behind the transformer and only the class labels are seen.

Multi-GPU: launch with `torchrun --nproc_per_node N -m stn_align.service.cli train ...`; each
process takes every N-th batch of the same seeded stream (DistributedDataParallel averages the
gradients).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from stn_align.training.build import build_model
from stn_align.training.config import TrainConfig, model_config_from_dict, validate
from stn_align.training.data import build_dataset
from stn_align.training.families import axis_grid

log = logging.getLogger(__name__)
CONFIDENCE_FIT_ITEMS = 16000  # training items the confidence refit reads (about 1,300 with no page)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device: {name!r} asked for, but torch sees no CUDA device")
    return torch.device(name)


def point_loss(family, theta_pred, theta_true, size: int) -> torch.Tensor:
    """Mean squared distance between the input points that pred and true send 8x8 grid points to."""
    pts = axis_grid((8, 8), device=theta_pred.device)
    hw = (size, size)
    return (
        ((family.points(theta_pred, pts, hw, hw) - family.points(theta_true, pts, hw, hw)) ** 2)
        .sum(-1)
        .mean()
    )


def corner_loss(theta_pred, theta_true) -> torch.Tensor:
    """Mean squared distance between predicted and true corners (projective theta is the four
    corners' displacements): the four-point loss of DeTone et al., "Deep Image Homography
    Estimation" (2016). The point loss would divide by each grid point's homogeneous coordinate,
    which crosses zero when an early guess folds the quad over itself."""
    return ((theta_pred - theta_true) ** 2).reshape(len(theta_pred), -1, 2).sum(-1).mean()


def param_groups(model, cfg: TrainConfig) -> list[dict]:
    loc = [p for n, p in model.named_parameters() if ".localiser." in f".{n}"]
    rest = [p for n, p in model.named_parameters() if ".localiser." not in f".{n}"]
    groups = [
        {"params": loc, "lr": cfg.localiser_lr or cfg.lr, "base_lr": cfg.localiser_lr or cfg.lr}
    ]
    if rest:
        groups.append({"params": rest, "lr": cfg.lr, "base_lr": cfg.lr})
    return groups


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up then cosine decay to a tenth."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def batches(loader: DataLoader, sampler):
    epoch = 0
    while True:
        if sampler is not None:
            sampler.set_epoch(epoch)
        yield from loader
        epoch += 1


def compute_loss(model, batch: dict, cfg: TrainConfig, device) -> tuple[torch.Tensor, dict]:
    x = batch["image"].to(device, non_blocking=True)
    if cfg.mode == "supervised":
        # Through forward() so that DistributedDataParallel sees the call and syncs gradients.
        out = model(x, warp=False)
        raw = getattr(model, "module", model)
        if len(out) > 2:  # a localiser with a confidence has its own loss (e.g. doc-photo)
            return raw.localiser.loss(out[1], out[2], batch)
        theta = out[1]
        target = batch["params"].to(device)
        family, size = raw.family, cfg.model.input_size
        if cfg.model.family == "projective":
            loss = corner_loss(theta, target)
            points = point_loss(family, theta.detach(), target, size)
            stats = {"point_rmse": points.sqrt().item(), "corner_rmse": loss.detach().sqrt().item()}
            return loss, stats
        loss = point_loss(family, theta, target, size)
        stats = {"point_rmse": loss.detach().sqrt().item()}
        if cfg.model.family in ("rotation", "similarity"):
            err = torch.atan2(theta[:, 1], theta[:, 0]) - torch.atan2(target[:, 1], target[:, 0])
            err = torch.remainder(err + math.pi, 2 * math.pi) - math.pi
            stats["angle_mae_deg"] = err.abs().mean().item() * 180 / math.pi
        return loss, stats
    logits, _ = model(x)
    labels = batch["label"].to(device)
    loss = F.cross_entropy(logits, labels)
    return loss, {"error": (logits.argmax(1) != labels).float().mean().item()}


@torch.no_grad()
def evaluate(model, loader: DataLoader, cfg: TrainConfig, device) -> dict:
    model.eval()
    totals: dict[str, float] = {}
    count = 0
    for batch in loader:
        loss, stats = compute_loss(model, batch, cfg, device)
        n = len(batch["image"])
        for k, v in {"loss": loss.item(), **stats}.items():
            totals[k] = totals.get(k, 0.0) + v * n
        count += n
    model.train()
    return {k: v / max(1, count) for k, v in totals.items()}


def save_checkpoint(
    path: Path, model, optimizer, cfg: TrainConfig, step: int, metrics: dict
) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(
        {
            "model": model.state_dict(),
            "model_config": dataclasses.asdict(cfg.model),
            "train_config": dataclasses.asdict(cfg),
            "optimizer": optimizer.state_dict(),
            "step": step,
            "metrics": metrics,
        },
        tmp,
    )
    os.replace(tmp, path)  # atomic: an interrupted save never leaves a half-written checkpoint


def train(cfg: TrainConfig) -> dict:
    """Train as configured; returns the last validation metrics. Writes out_dir/ckpt.pt and
    out_dir/metrics.jsonl (one JSON object per evaluation, for curves)."""
    validate(cfg)
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    rank = 0
    if distributed:
        torch.distributed.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        rank = torch.distributed.get_rank()
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    device = (
        pick_device(cfg.device)
        if not distributed or not torch.cuda.is_available()
        else (torch.device("cuda", torch.cuda.current_device()))
    )
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)

    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / "ckpt.pt"
    train_set, val_set = build_dataset(cfg, "train"), build_dataset(cfg, "val")
    sampler: DistributedSampler | None = (
        DistributedSampler(train_set, seed=cfg.seed) if distributed else None
    )
    loader = DataLoader(
        train_set,
        batch_size=cfg.batch_size,
        shuffle=sampler is None,
        sampler=sampler,
        num_workers=cfg.num_workers,
        drop_last=True,
        generator=torch.Generator().manual_seed(cfg.seed),
    )
    val_loader = DataLoader(val_set, batch_size=cfg.batch_size, num_workers=cfg.num_workers)

    model = build_model(cfg.model).to(device)
    optimizer = torch.optim.AdamW(param_groups(model, cfg), weight_decay=cfg.weight_decay)
    step = 0
    if cfg.resume and ckpt_path.is_file():
        state = torch.load(ckpt_path, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step = state["step"]
        log.info("resumed from %s at step %d", ckpt_path, step)
    raw_model = model
    if distributed:
        model = torch.nn.parallel.DistributedDataParallel(model)

    metrics: dict = {}
    metrics_file = (out / "metrics.jsonl").open("a")
    stream = batches(loader, sampler)
    bar = tqdm(
        total=cfg.steps,
        initial=step,
        desc="train",
        disable=rank != 0,
        unit="step",
        mininterval=0.2 if sys.stderr.isatty() else 10.0,
    )
    t0, seen, skipped = time.perf_counter(), 0, 0
    while step < cfg.steps:
        for group in optimizer.param_groups:
            group["lr"] = group["base_lr"] * lr_factor(step, cfg)
        batch = next(stream)
        loss, stats = compute_loss(model, batch, cfg, device)
        optimizer.zero_grad(set_to_none=True)
        # One degenerate batch (a projective guess folded over itself) must not poison the
        # weights: when its loss or its gradient is not finite, the update is skipped and
        # counted; evaluation and checkpoints go on. A finite loss can still give an infinite
        # gradient, and clipping that one would write NaN into every weight.
        update = all_finite(loss, distributed)
        if update:
            loss.backward()
            limit = cfg.grad_clip if cfg.grad_clip > 0 else math.inf
            norm = torch.nn.utils.clip_grad_norm_(model.parameters(), limit)
            update = bool(torch.isfinite(norm))
            if update:
                optimizer.step()
        if not update:
            skipped += 1
            log.warning("step %d: loss %s, update skipped (%d so far)", step, loss.item(), skipped)
        step += 1
        seen += len(batch["image"])
        bar.update(1)
        bar.set_postfix(
            loss=f"{loss.item():.4f}",
            img_s=f"{seen / (time.perf_counter() - t0):.0f}",
            refresh=False,
        )
        if rank == 0 and (step % cfg.eval_every == 0 or step == cfg.steps):
            metrics = {
                f"val_{k}": v for k, v in evaluate(raw_model, val_loader, cfg, device).items()
            }
            record = {
                "step": step,
                "train_loss": loss.item(),
                **stats,
                **metrics,
                "skipped_steps": skipped,
                "elapsed_s": time.perf_counter() - t0,
            }
            metrics_file.write(json.dumps(record) + "\n")
            metrics_file.flush()
            save_checkpoint(ckpt_path, raw_model, optimizer, cfg, step, metrics)
            log.info(
                " ".join(
                    f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                    for k, v in record.items()
                )
            )
    bar.close()
    metrics_file.close()
    # A localiser may finish its own fit once the loop is done (doc-photo refits its confidence
    # layer on the final corners, perspective_model.PhotoCascade.fit_confidence).
    localiser = getattr(raw_model, "localiser", None)  # classifiers have none
    finish = getattr(localiser, "fit_confidence", None) if rank == 0 else None
    if finish is not None:
        metrics.update(finish(raw_model, train_set, CONFIDENCE_FIT_ITEMS))
        save_checkpoint(ckpt_path, raw_model, optimizer, cfg, step, metrics)
    if distributed:
        # Every rank leaves together, so none tears its group down while rank 0 still evaluates
        # and saves (rank 1 of the CI smoke test once aborted, SIGABRT, at the end of its run).
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    return metrics


def all_finite(loss: torch.Tensor, distributed: bool) -> bool:
    """Whether the loss is finite on every process (they must all skip a step, or none)."""
    finite = torch.isfinite(loss.detach()).float()
    if distributed:
        torch.distributed.all_reduce(finite, op=torch.distributed.ReduceOp.MIN)
    return bool(finite.item())


def load_checkpoint(path: str | Path, device: str = "cpu"):
    """Rebuild a model from a checkpoint alone: (model in eval mode, checkpoint dict)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found")
    # Checkpoints hold plain data only (tensors, dicts, numbers, strings), so the safe loader reads
    # them and a checkpoint from elsewhere cannot run code.
    state = torch.load(path, map_location=device, weights_only=True)
    if "model_config" not in state:
        raise ValueError(f"{path} is not an stn checkpoint (no model_config inside)")
    model = build_model(model_config_from_dict(state["model_config"]))
    model.load_state_dict(state["model"])
    return model.eval(), state
