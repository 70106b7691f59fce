"""Which way up along the lines: a small learned reader of text-line profiles.

Once the skew and the axis of the lines are known (skew.ProfileSkew), a page is either upright or
upside down. The shape of a text line says which: in Latin-like scripts more ink rises above the
x-height band (ascenders, capitals, accents) than hangs below it (descenders), and the band's top
and bottom edges differ (Bloomberg, Kopec and Dasari, "Measuring document image skew and
orientation", SPIE 1995, count ascenders against descenders). Row profiles of narrow vertical
strips of the de-rotated page keep that shape; a profile across a whole page would blur it
(columns, curved lines). A 1-D conv net reads each strip's profile and the page's vote is the mean.

The vote is antisymmetric by construction, vote(profile reversed) = -vote(profile): turning the
page by a half turn reverses every profile, so the two answers can never agree.

Training (`python -m stn_align.training.documents.direction`): synthetic pages from the bank, turned
over the whole circle, go through the shipped model's fixed front (the profile skew and the axis,
which have no weights) at the model's input size; the profiles, the label (is the truth nearer the
base orientation or its half turn) and the learned cascade's own vote are cached, then the net is
fitted on the cache and the weight of the cascade's vote is chosen on held-out pages. Example:

    >>> net = ProfileDirection(768)
    >>> float(net(torch.rand(2, STRIPS, 768)).abs().max())  # untrained: no opinion
    0.0
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from stn_align.training.documents.skew import turned_rows

STRIPS = 16  # vertical strips per page: each one column or less of a multi-column page
WIDTH = 16  # channels of the 1-D net


def line_profiles(ink: torch.Tensor, pair: torch.Tensor) -> torch.Tensor:
    """Ink (N, 1, S, S) from skew.page_ink and (N, 2) cos, sin -> (N, STRIPS, S): the page turned
    by the inverse of `pair` (so that its lines run along the rows), then the ink of each row of
    each strip."""
    return strip_profiles(turned_rows(ink, pair))


def strip_profiles(rows: torch.Tensor) -> torch.Tensor:
    """(N, 1, S, W) from skew.turned_rows -> (N, STRIPS, S): the mean of each row of each strip."""
    width = int(rows.shape[-1])  # a Python int: export needs a fixed pooling window
    return F.avg_pool2d(rows, (1, width // STRIPS))[:, 0].transpose(1, 2)


class ProfileDirection(nn.Module):
    """Strip profiles (N, K, S) -> (N,) vote: positive where the lines read upright."""

    reverse: torch.Tensor

    def __init__(self, size: int, width: int = WIDTH):
        super().__init__()
        # Dilations 1, 2, 4: a receptive field of 43 rows, a line and its neighbours' gaps at the
        # body sizes a 768 px page shows. 1-D convolutions along each strip's profile, written as
        # 1 x 7 2-D ones over the strips stacked as rows: ONNX Runtime's 2-D kernels ran this net
        # about twice as fast as its 1-D ones (bench/localiser_ops.py). 1-D checkpoints still load.
        self.net = nn.Sequential(
            nn.Conv2d(1, width, (1, 7), padding=(0, 3)),
            nn.ReLU(),
            nn.Conv2d(width, width, (1, 7), padding=(0, 6), dilation=(1, 2)),
            nn.ReLU(),
            nn.Conv2d(width, width, (1, 7), padding=(0, 12), dilation=(1, 4)),
            nn.ReLU(),
            last := nn.Conv2d(width, 1, 1),
        )
        self.register_load_state_dict_pre_hook(_one_dimensional_weights)
        nn.init.zeros_(last.weight)  # untrained: votes 0, the learned cascade decides
        nn.init.zeros_(last.bias)  # type: ignore[arg-type]  # Conv2d(bias=True) has one
        # A constant index (Gather) rather than torch.flip: both export, Gather is on the list of
        # ops with CUDA kernels.
        self.register_buffer("reverse", torch.arange(size - 1, -1, -1), persistent=False)

    def forward(self, profiles: torch.Tensor) -> torch.Tensor:
        n = profiles.shape[0]
        # Scaled by the page's mean ink, so faint and bold pages look alike and blank strips add
        # next to nothing. One strip a row: (N, 1, K, S).
        q = (profiles / (profiles.mean((1, 2), keepdim=True) + 1e-4))[:, None]
        evidence = self.net(q) - self.net(q.index_select(3, self.reverse))
        return evidence.reshape(n, -1).mean(1)


def _one_dimensional_weights(module, state_dict, prefix, *_) -> None:
    """Load hook: conv weights (out, in, k) of the 1-D net become (out, in, 1, k)."""
    for key, value in list(state_dict.items()):
        if key.startswith(prefix + "net.") and key.endswith(".weight") and value.dim() == 3:
            state_dict[key] = value[:, :, None]


class FrontPages(torch.utils.data.Dataset):
    """Synthetic pages through a SnapRotation's fixed front: item i is drawn from (seed, i) alone.

    Each item: profiles (STRIPS, S) as float16, `agree` (the cosine between the truth and the base
    orientation: positive where the base is right, near +-1 where the axis is right), the
    learned cascade's vote (the cosine between its estimate and the base) and the page the layout
    reader sees (1, S / 4, S / 4) as float16."""

    def __init__(self, snap, pages: list[np.ndarray], count: int, seed: int):
        self.snap, self.pages, self.count, self.seed = snap, pages, count, seed

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        from stn_align.training.documents.dataset import rotation_item

        rng = np.random.default_rng([self.seed, index])
        ink = self.pages[int(rng.integers(len(self.pages)))]
        other = self.pages[int(rng.integers(len(self.pages)))]
        size = self.snap.size
        image, params = rotation_item(ink, other, rng, size, 180.0, 0)
        x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)[None])).float()
        x = x / 127.5 - 1.0
        with torch.no_grad():
            base, reader_vote, profiles, page = self.snap.front(x)
        truth = torch.tensor(np.asarray(params[:2], dtype=np.float32))
        return profiles[0].half(), (base[0] * truth).sum(), reader_vote[0], page[0].half()


def axis_found(agree: torch.Tensor) -> torch.Tensor:
    """Pages whose base orientation lies along the truth's axis (right, or a half turn off): the
    only ones where which way up is the question."""
    return agree.abs() > 0.7


def make_cache(snap, pages, count: int, seed: int, workers: int) -> dict[str, torch.Tensor]:
    from tqdm import tqdm

    loader = torch.utils.data.DataLoader(
        FrontPages(snap, pages, count, seed),
        batch_size=16,
        num_workers=workers,
        worker_init_fn=lambda _: torch.set_num_threads(1),
    )
    keys = ("profiles", "agree", "reader_vote", "page")
    parts: list[list[torch.Tensor]] = [[] for _ in keys]
    for batch in tqdm(loader, desc=f"pages (seed {seed})", unit="batch"):
        for part, value in zip(parts, batch, strict=True):
            part.append(value)
    return {key: torch.cat(part) for key, part in zip(keys, parts, strict=True)}


def train_direction(
    net: ProfileDirection,
    cache: dict[str, torch.Tensor],
    steps: int,
    batch_size: int = 64,
    strips_per_page: int = 4,
    lr: float = 2e-3,
    seed: int = 0,
) -> list[float]:
    """Fit `net` on the cached pages whose axis was found. Each step reads a few random strips of
    each page: the page's vote is a mean over strips, so that is an unbiased, cheaper estimate."""
    from tqdm import tqdm

    generator = torch.Generator().manual_seed(seed)
    usable = torch.nonzero(axis_found(cache["agree"]))[:, 0]
    label = (cache["agree"] > 0).float()
    optimiser = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    losses = []
    bar = tqdm(range(steps), desc="direction", unit="step")
    for step in bar:
        pick = usable[torch.randint(len(usable), (batch_size,), generator=generator)]
        strips = torch.randperm(STRIPS, generator=generator)[:strips_per_page]
        vote = net(cache["profiles"][pick][:, strips].float())
        loss = F.binary_cross_entropy_with_logits(vote, label[pick])
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
        if step % 50 == 0:
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")
    return losses


@torch.no_grad()
def votes(net: ProfileDirection, profiles: torch.Tensor, chunk: int = 256) -> torch.Tensor:
    return torch.cat([net(profiles[i : i + chunk].float()) for i in range(0, len(profiles), chunk)])


def choose_reader_weight(vote: torch.Tensor, reader_vote: torch.Tensor, agree: torch.Tensor):
    """The weight w of the cascade's vote in `vote + w * reader_vote` that fits held-out pages best
    (log-likelihood; the pages whose axis was found). Returns (w, accuracy with w, table)."""
    usable = axis_found(agree)
    label = (agree[usable] > 0).float()
    table = []
    for w in np.arange(0.0, 8.01, 0.25):
        total = vote[usable] + float(w) * reader_vote[usable]
        loss = float(F.binary_cross_entropy_with_logits(total, label))
        accuracy = float(((total > 0).float() == label).float().mean())
        table.append((float(w), loss, accuracy))
    best = min(table, key=lambda row: row[1])
    return best[0], best[2], table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Train the line-profile direction reader of a doc-rotation checkpoint (made "
        "by stn_align.training.documents.graft) and write the checkpoint with it."
    )
    parser.add_argument(
        "checkpoint", help="snap checkpoint from stn_align.training.documents.graft"
    )
    parser.add_argument("-o", "--output", required=True, help="checkpoint to write")
    parser.add_argument("--bank", default="runs/pages", help="page bank (default runs/pages)")
    parser.add_argument("--pages", type=int, default=8000, help="training pages (default 8000)")
    parser.add_argument("--val-pages", type=int, default=1000, help="held-out pages (default 1000)")
    parser.add_argument("--steps", type=int, default=1500, help="training steps (default 1500)")
    parser.add_argument("--seed", type=int, default=77, help="data and training seed (default 77)")
    parser.add_argument("--workers", type=int, default=2, help="data processes (default 2)")
    args = parser.parse_args(argv)
    try:
        run(args)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def run(args) -> None:
    from stn_align.training.documents.bank import load_bank
    from stn_align.training.documents.graft import load_snap, save_fitted

    snap, state = load_snap(args.checkpoint)
    pages = load_bank(args.bank)
    started = time.time()
    train = make_cache(snap, pages, args.pages, args.seed, args.workers)
    val = make_cache(snap, pages, args.val_pages, args.seed + 1, args.workers)
    torch.manual_seed(args.seed)
    net = ProfileDirection(snap.size)
    losses = train_direction(net, train, args.steps, seed=args.seed)
    weight, accuracy, table = choose_reader_weight(
        votes(net, val["profiles"]), val["reader_vote"], val["agree"]
    )
    alone = next(row[2] for row in table if row[0] == 0.0)
    snap.direction.load_state_dict(net.state_dict())
    snap.reader_weight.fill_(weight)
    metrics = {
        "direction_final_loss": float(np.mean(losses[-100:])),
        "direction_val_accuracy_alone": alone,
        "direction_val_accuracy": accuracy,
        "reader_weight": weight,
        "axis_found_val": float(axis_found(val["agree"]).float().mean()),
        "direction_minutes": (time.time() - started) / 60,
    }
    save_fitted(snap, state, args, "direction", metrics)


if __name__ == "__main__":
    sys.exit(main())
