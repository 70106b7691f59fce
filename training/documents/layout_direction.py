"""Which way up from the page's layout: a small learned 2-D reader of the de-skewed page.

The line reader (direction.py) reads the shapes of text lines and has nothing to go on where a
page has few of them (a music score, a page of pictures). The layout says which way up too:
headings and titles sit at the top, page numbers at a top or bottom corner, lines start at a
common left margin and end raggedly, paragraphs end in short lines and start indented. Once the
skew and the axis of the lines are known (skew.ProfileSkew) this is a yes-or-no question about a
page whose lines run along the rows, which is far easier to learn than the whole-circle angle
the layout cascade (model.Cascade) regresses.

`LayoutDirection` reads the ink of the rows that SnapRotation turns for its last skew level and
the line reader (every row, one point in four along them), averaged to a square a quarter of the
input size. Like the line reader its vote is antisymmetric by construction: the net's evidence on
the page minus its evidence on the page turned by a half turn.

Training (`python -m stn_align.training.documents.layout_direction`): synthetic pages from the bank
through the model's fixed front, cached with the line reader's profiles and the cascade's vote; the
net is fitted on them, then the weights of its vote and the cascade's, beside the line reader's, are
chosen on held-out pages drawn from a bank of other base pages (a 2-D net could learn a page it has
seen; the held-out pages must be new). Example:

    >>> net = LayoutDirection()
    >>> float(net(torch.rand(2, 1, 192, 192)).abs().max())  # untrained: no opinion
    0.0
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from stn_align.training.documents.direction import axis_found, make_cache, votes
from stn_align.training.documents.skew import row_spacing

LARGE = 1e4  # an unbounded layout vote, as a finite number (ONNX Clip bounds)
POOL_ROWS = 4  # the turned rows averaged over this many rows (and pixels along): a square S / 4


def layout_page(rows: torch.Tensor) -> torch.Tensor:
    """Rows (N, 1, S, S / along) from skew.turned_rows -> (N, 1, S / 4, S / 4): the page the
    layout reader sees, each pixel the mean ink of a 4 x 4 patch of the input."""
    return F.avg_pool2d(rows, (POOL_ROWS, POOL_ROWS // row_spacing(rows)))


class LayoutDirection(nn.Module):
    """Turned pages (N, 1, P, P), lines along the rows -> (N,) vote: positive where upright."""

    reverse: torch.Tensor

    CELL = 48  # the evidence keeps a map of where on the page it was seen, in cells this wide

    def __init__(self, size: int = 192, width: int = 16):
        super().__init__()
        if size % self.CELL:
            raise ValueError(f"layout page size must be a multiple of {self.CELL}, got {size}")
        cells = size // self.CELL
        self.features = nn.Sequential(
            nn.Conv2d(1, width // 2, 5, stride=2, padding=2),
            nn.ReLU(),
            nn.Conv2d(width // 2, width, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(2 * width, 2 * width, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.AvgPool2d(self.CELL // 16),
        )
        # Where things are matters (a title at the top, a number in a corner), so the last layer
        # weighs a coarse map rather than a global mean.
        self.head = nn.Linear(2 * width * cells * cells, 1)
        nn.init.zeros_(self.head.weight)  # untrained: votes 0, the other readers decide
        nn.init.zeros_(self.head.bias)
        # Gather with a constant index rather than torch.flip: Gather has CUDA kernels (export).
        self.register_buffer("reverse", torch.arange(size - 1, -1, -1), persistent=False)

    def evidence(self, q: torch.Tensor) -> torch.Tensor:
        features = F.dropout(self.features(q).flatten(1), 0.2, self.training)
        return self.head(features)[:, 0]

    def forward(self, page: torch.Tensor) -> torch.Tensor:
        # Scaled by the page's mean ink, so faint and bold pages look alike.
        q = page / (page.mean((1, 2, 3), keepdim=True) + 1e-4)
        turned = q.index_select(2, self.reverse).index_select(3, self.reverse)
        return self.evidence(q) - self.evidence(turned)


def jitter(pages: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Pages (N, 1, P, P) moved by random small similarities: zoom 0.85-1.15, shifts up to 8% of
    the side, turns up to 1.5 degrees. A real page lands in the square at another size and place
    than any synthetic one did; without this the net learned where things were to the pixel, and
    near-identical copies of a page got opposite votes."""
    n = pages.shape[0]
    scale = 0.85 + 0.3 * torch.rand(n, generator=generator)
    turn = (torch.rand(n, generator=generator) - 0.5) * math.radians(3.0)
    shift = (torch.rand(n, 2, generator=generator) - 0.5) * 0.16
    c, s = torch.cos(turn) / scale, torch.sin(turn) / scale
    theta = torch.stack(
        [torch.stack([c, -s, shift[:, 0]], 1), torch.stack([s, c, shift[:, 1]], 1)], 1
    )
    grid = F.affine_grid(theta, list(pages.shape), align_corners=False)
    return F.grid_sample(pages, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def train_layout(
    net: LayoutDirection,
    cache: dict[str, torch.Tensor],
    steps: int,
    batch_size: int = 64,
    lr: float = 2e-3,
    seed: int = 0,
    smoothing: float = 0.05,
) -> list[float]:
    """Fit `net` on the cached pages whose axis was found (logistic loss on upright-or-not), each
    page jittered anew at each draw, with cosine decay of the learning rate. The labels are
    smoothed (`smoothing` and 1 - `smoothing`): without it the net's votes grew without bound
    (held-out votes up to 59, where the line reader's stay under 16), so that on a kind of page
    it had not learned it outvoted two readers that were right."""
    from tqdm import tqdm

    generator = torch.Generator().manual_seed(seed)
    usable = torch.nonzero(axis_found(cache["agree"]))[:, 0]
    label = (cache["agree"] > 0).float() * (1 - 2 * smoothing) + smoothing
    optimiser = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, max(steps, 1))
    losses = []
    net.train()
    bar = tqdm(range(steps), desc="layout", unit="step")
    for step in bar:
        pick = usable[torch.randint(len(usable), (batch_size,), generator=generator)]
        pages = jitter(cache["page"][pick].float(), generator)
        loss = F.binary_cross_entropy_with_logits(net(pages), label[pick])
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
        losses.append(float(loss.detach()))
        if step % 50 == 0:
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")
    net.eval()
    return losses


WEIGHTS = np.arange(0.0, 8.01, 0.25)  # the grid searched for each reader's weight
CLIPS = (1.0, 2.0, 3.0, 4.0, 6.0, 8.0, math.inf)  # and for the bound on the layout vote


def choose_weights(line: torch.Tensor, layout: torch.Tensor, cascade: torch.Tensor, agree):
    """The bound c and weights (w_layout, w_cascade) in
    `line + w_layout * clip(layout, -c, c) + w_cascade * cascade` that fit held-out pages best
    (log-likelihood, on the pages whose axis was found), searched on a grid. The bound keeps a
    net that is sure and wrong, on a kind of page it never saw, from outvoting the other two.
    Returns ({"layout_weight", "reader_weight", "layout_clip"}, accuracy with them,
    {name: accuracy} of the readers alone and of the combinations with their own best weights)."""
    usable = axis_found(agree)
    label = (agree[usable] > 0).float()
    line, layout, cascade = line[usable], layout[usable], cascade[usable]

    def fit(total):
        return (
            float(F.binary_cross_entropy_with_logits(total, label)),
            float(((total > 0).float() == label).float().mean()),
        )

    table = {
        (float(a), float(b), c): fit(line + a * layout.clamp(-c, c) + b * cascade)
        for c in CLIPS
        for a in WEIGHTS
        for b in WEIGHTS
    }
    best = min(table, key=lambda key: table[key][0])
    pair = min((k for k in table if k[0] == 0.0), key=lambda key: table[key][0])
    unbounded = min((k for k in table if k[2] == math.inf), key=lambda key: table[key][0])
    accuracy = {
        "line": table[(0.0, 0.0, math.inf)][1],
        "layout": fit(layout)[1],
        "cascade": fit(cascade)[1],
        "line+cascade": table[pair][1],
        "line+layout+cascade, unbounded": table[unbounded][1],
        "line+layout+cascade": table[best][1],
    }
    chosen = {"layout_weight": best[0], "reader_weight": best[1], "layout_clip": best[2]}
    return chosen, table[best][1], accuracy


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Train the layout direction reader of a doc-rotation checkpoint (made by "
        "stn_align.training.documents.graft, its line reader fitted) and choose the weights of "
        "the votes "
        "on held-out pages from another bank; write the checkpoint with them."
    )
    parser.add_argument("checkpoint", help="snap checkpoint with a fitted line reader")
    parser.add_argument("-o", "--output", required=True, help="checkpoint to write")
    parser.add_argument(
        "--bank", default="runs/pages", help="training page bank (default runs/pages)"
    )
    parser.add_argument(
        "--val-bank",
        default="runs/pages-val",
        help="held-out page bank of other base pages (default runs/pages-val; render it with "
        "`stn pages --out runs/pages-val --count 300 --seed 3000`)",
    )
    parser.add_argument("--pages", type=int, default=10000, help="training pages (default 10000)")
    parser.add_argument("--val-pages", type=int, default=1500, help="held-out pages (default 1500)")
    parser.add_argument("--steps", type=int, default=3000, help="training steps (default 3000)")
    parser.add_argument("--seed", type=int, default=91, help="data and training seed (default 91)")
    parser.add_argument("--workers", type=int, default=2, help="data processes (default 2)")
    parser.add_argument(
        "--cache", help="folder to keep the cached pages in, and read them back from on a re-run"
    )
    parser.add_argument(
        "--weights-only",
        action="store_true",
        help="keep the checkpoint's fitted layout reader and only choose the votes' weights again "
        "on the held-out pages (after a change to the model's front)",
    )
    args = parser.parse_args(argv)
    try:
        run(args)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def cached(folder: str | None, name: str, make):
    """make(), kept in folder/name.pt when a folder is given: caching the pages through the front
    is most of the run, and fitting again (other steps, other seeds) need not redo it. The folder
    is for one checkpoint, bank and seed: nothing checks that they match."""
    if folder is None:
        return make()
    path = Path(folder) / f"{name}.pt"
    if path.is_file():
        return torch.load(path)
    value = make()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(value, path)
    return value


def run(args) -> None:
    from stn_align.training.documents.bank import load_bank
    from stn_align.training.documents.graft import load_snap, save_fitted

    snap, state = load_snap(args.checkpoint)
    started = time.time()
    val_pages = load_bank(args.val_bank)
    val = cached(
        args.cache,
        "val",
        lambda: make_cache(snap, val_pages, args.val_pages, args.seed + 1, args.workers),
    )
    fitted = {}
    if args.weights_only:
        net = snap.layout
    else:
        pages = load_bank(args.bank)
        train = cached(
            args.cache,
            "train",
            lambda: make_cache(snap, pages, args.pages, args.seed, args.workers),
        )
        torch.manual_seed(args.seed)
        net = LayoutDirection(snap.size // POOL_ROWS)
        losses = train_layout(net, train, args.steps, seed=args.seed)
        fitted["layout_final_loss"] = float(np.mean(losses[-100:]))
    line = votes(snap.direction, val["profiles"])
    layout = votes(net, val["page"])
    chosen, _, alone = choose_weights(line, layout, val["reader_vote"], val["agree"])
    snap.layout.load_state_dict(net.state_dict())
    for name, value in chosen.items():
        getattr(snap, name).fill_(min(value, LARGE))
    metrics = {
        **fitted,
        **{f"val_accuracy_{name}": value for name, value in alone.items()},
        **chosen,
        "axis_found_val": float(axis_found(val["agree"]).float().mean()),
        "layout_minutes": (time.time() - started) / 60,
    }
    save_fitted(snap, state, args, "layout_direction", metrics)


if __name__ == "__main__":
    sys.exit(main())
