"""Figures for the paper benchmark: a Figure-1-like panel per transformer, training curves, and
test error against test-time rotation."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from stn_align.experiments.paper.benchmark import PaperMNIST, Summary  # noqa: E402
from stn_align.training.train import load_checkpoint  # noqa: E402


def box_outline(family, theta: torch.Tensor, in_hw, out_hw, per_edge: int = 16) -> np.ndarray:
    """Where the border of the transformer's output lands in the input, in input pixels:
    (N, 4 * per_edge + 1, 2). Tracing the whole border, not just four corners, also shows TPS
    and projective warps faithfully."""
    t = torch.linspace(-1, 1, per_edge + 1)[:-1]
    one = torch.ones_like(t)
    edges = [
        torch.stack([t, -one], 1),
        torch.stack([one, t], 1),
        torch.stack([-t, one], 1),
        torch.stack([-one, -t], 1),
    ]
    pts = torch.cat([*edges, edges[0][:1]])  # closed loop, in the output's axis frame
    xy = family.points(theta, pts, in_hw, out_hw)
    h, w = in_hw
    # align_corners=False: normalised -1 and 1 are the outer pixel edges.
    return torch.stack([((xy[..., 0] + 1) * w - 1) / 2, ((xy[..., 1] + 1) * h - 1) / 2], -1).numpy()


@torch.no_grad()
def transformer_panel(ckpt: Path, path: Path, title: str, count: int = 8, angle: float = 0.0):
    """Like the paper's Figure 1: input with the predicted sampling box, the transformer's output,
    and the prediction, for the first `count` test digits."""
    model, state = load_checkpoint(ckpt)
    cfg_dict = state["train_config"]
    from stn_align.training.config import load_config  # rebuilt from the run's own settings

    cfg = load_config(None, [f"data.path={cfg_dict['data']['path']}", "data.dataset=paper-mnist"])
    test = PaperMNIST(cfg, "test", angle=angle or None)
    items = [test[i] for i in range(count)]
    x = torch.stack([it["image"] for it in items])
    labels = [int(it["label"]) for it in items]
    logits, thetas = model(x)
    preds = logits.argmax(1).tolist()
    side = model.config.output_size or model.config.input_size
    rows = 2 + len(model.transformers)
    fig, axes = plt.subplots(rows, count, figsize=(1.3 * count, 1.4 * rows + 0.4), squeeze=False)
    colours = ["#ff4040", "#40c0ff"]
    for j in range(count):
        axes[0, j].imshow(x[j, 0].numpy(), cmap="gray", vmin=0, vmax=255)
        axes[0, j].set_title(f"label {labels[j]}", fontsize=8)
        for k, st in enumerate(model.transformers):
            loop = box_outline(st.family, thetas[k][j : j + 1], (40, 40), (side, side))[0]
            axes[0, j].plot(loop[:, 0], loop[:, 1], color=colours[k % 2], lw=1.2)
            out, _ = st(x[j : j + 1], (side, side))
            axes[1 + k, j].imshow(out[0, 0].numpy(), cmap="gray")
        # A box reaching outside the input would otherwise rescale this one axis.
        axes[0, j].set_xlim(-0.5, x.shape[-1] - 0.5)
        axes[0, j].set_ylim(x.shape[-2] - 0.5, -0.5)
        ok = preds[j] == labels[j]
        axes[-1, j].text(
            0.5,
            0.5,
            str(preds[j]),
            fontsize=22,
            ha="center",
            va="center",
            color="green" if ok else "red",
        )
        for ax in axes[:, j]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_ylabel("input + box", fontsize=8)
    for k in range(len(model.transformers)):
        axes[1 + k, 0].set_ylabel(f"ST output {k + 1}" if k else "ST output", fontsize=8)
    axes[-1, 0].set_ylabel("prediction", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def read_curve(run_dir: Path) -> tuple[list[int], list[float]]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines if line.strip()]
    return [r["step"] for r in records], [r["val_error"] for r in records]


def training_curves(summaries: list[Summary], out: Path, path: Path) -> None:
    """Validation error against step: mean over seeds, band from min to max."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for s in summaries:
        if s.exp.group == "rotation" or not s.results:
            continue
        curves = [read_curve(out / s.exp.name / f"seed{r['seed']}") for r in s.results]
        steps = curves[0][0]
        errs = np.array([c[1][: len(steps)] for c in curves]) * 100
        line = ax.plot(steps, errs.mean(0), label=s.exp.label, lw=1.5)[0]
        ax.fill_between(steps, errs.min(0), errs.max(0), color=line.get_color(), alpha=0.15)
    ax.set_xlabel("training step (batch 64)")
    ax.set_ylabel("validation error %")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("Cluttered MNIST 40x40: validation error (mean over seeds, min-max band)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def rotation_plot(summaries: list[Summary], path: Path) -> bool:
    rot = [s for s in summaries if s.exp.group == "rotation" and s.results]
    if not rot:
        return False
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for s in rot:
        angles = list(s.exp.test_angles)
        errs = [[100 * e for e in s.errors(str(a))] for a in angles]
        means = [statistics.fmean(e) for e in errs]
        stds = [statistics.stdev(e) if len(e) > 1 else 0.0 for e in errs]
        ax.errorbar(angles, means, yerr=stds, marker="o", capsize=3, label=s.exp.label)
    ax.axvspan(0, 45, color="grey", alpha=0.12, label="training range")
    ax.set_xlabel("test rotation (± degrees)")
    ax.set_ylabel("test error %")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def make_figures(summaries: list[Summary], out: Path, fig_dir: Path) -> list[Path]:
    fig_dir.mkdir(parents=True, exist_ok=True)
    made = [fig_dir / "training-curves.png"]
    training_curves(summaries, out, made[0])
    for s in summaries:
        if not s.results or s.exp.group == "rotation" or s.exp.name in ("cnn", "fcn"):
            continue
        path = fig_dir / f"panel-{s.exp.name}.png"
        transformer_panel(
            out / s.exp.name / "seed0" / "ckpt.pt",
            path,
            f"{s.exp.label} (seed 0): input, sampling box, output, prediction",
        )
        made.append(path)
    for s in summaries:  # the rotation follow-up's transformer, on digits rotated by 90 degrees
        if s.exp.name == "rot45-st-affine" and s.results:
            path = fig_dir / "panel-rot45-st-affine-at-90.png"
            transformer_panel(
                out / s.exp.name / "seed0" / "ckpt.pt",
                path,
                f"{s.exp.label}, test digits rotated 90°",
                angle=90.0,
            )
            made.append(path)
    if rotation_plot(summaries, fig_dir / "rotation-generalisation.png"):
        made.append(fig_dir / "rotation-generalisation.png")
    return made
