"""How densely doc-rotation's full-size turned rows should sample along the lines: the half turn
and the skew on held-out synthetic pages, for several spacings (skew.turned_rows `along`).

The line reader's vote is a mean over the samples of each strip's rows. With one sample in four
along the lines (the shipped spacing) thin strokes are hit or missed depending on where the grid
falls, and the vote of a page with few text lines moves with a sub-pixel shift of the grid. Pages
come from a bank of base pages that training never saw (`stn pages --out runs/pages-val --count
300 --seed 3000`), through the training generator, turned over the whole circle:

    .venv/bin/python -m bench.direction_sampling exported/doc-rotation.onnx --pages 600

The model's own readers and vote weights are used (read back from the ONNX file by
stn_align.training.documents.graft, or from a checkpoint); only the sampling changes.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import argument_parser

SEED = 4000  # draws no training run makes (direction.py 77/78, layout_direction.py 91/92)


def main(argv: list[str] | None = None) -> int:
    # torch and the training package load inside main: importing the module and `--help` stay quick.
    import torch

    from stn_align.training.documents.bank import load_bank
    from stn_align.training.documents.dataset import rotation_item
    from stn_align.training.documents.direction import axis_found
    from stn_align.training.documents.graft import graft, load_snap

    parser = argument_parser(__file__, __doc__)
    parser.add_argument("model", help="doc-rotation ONNX file or snap checkpoint")
    parser.add_argument("--pages", type=int, default=600, help="synthetic pages (default 600)")
    parser.add_argument("--bank", default="runs/pages-val", help="held-out page bank")
    parser.add_argument(
        "--along", type=int, nargs="+", default=[4, 2, 1], help="spacings (default 4 2 1)"
    )
    parser.add_argument("--seed", type=int, default=SEED, help=f"draw seed (default {SEED})")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    source = args.model
    if source.endswith(".onnx"):
        source = str(graft(source, Path(tempfile.mkdtemp()) / "snap.pt"))
    snap, _ = load_snap(source)
    pages = load_bank(args.bank)
    rows: dict[int, list[tuple[float, ...]]] = {along: [] for along in args.along}
    seconds = dict.fromkeys(args.along, 0.0)
    for index in range(args.pages):
        rng = np.random.default_rng([args.seed, index])
        ink = pages[int(rng.integers(len(pages)))]
        other = pages[int(rng.integers(len(pages)))]
        image, params = rotation_item(ink, other, rng, snap.size, 180.0, 0)
        x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)[None])).float()
        x = x / 127.5 - 1.0
        truth = torch.tensor(np.asarray(params[:2], dtype=np.float32))
        for along in args.along:
            snap.along = along
            start = time.perf_counter()
            with torch.no_grad():
                base, cascade, profiles, page = snap.front(x)
                line = float(snap.direction(profiles)[0])
                layout = float(snap.layout(page).clamp(-snap.layout_clip, snap.layout_clip)[0])
            seconds[along] += time.perf_counter() - start
            turn = torch.atan2(base[0, 1], base[0, 0]) - torch.atan2(truth[1], truth[0])
            skew = abs((float(torch.rad2deg(turn)) + 90.0) % 180.0 - 90.0)
            agree = float((base[0] * truth).sum())
            rows[along].append((agree, line, float(cascade[0]), layout, skew))
        if (index + 1) % 100 == 0:
            print(f"{index + 1} pages", file=sys.stderr, flush=True)
    weights = (float(snap.reader_weight), float(snap.layout_weight))
    print(
        f"{args.pages} pages of {args.bank}, seed {args.seed}; vote weights (cascade, layout) "
        f"{weights[0]:g}, {weights[1]:g}"
    )
    print("| along | axis found | line alone | model's rule | skew median | <=0.1 | <=0.5 | ms |")
    print("|---|---|---|---|---|---|---|---|")
    for along, values in rows.items():
        agreed, line_vote, cascades, layouts, skew_error = map(np.array, zip(*values, strict=True))
        found = axis_found(torch.from_numpy(agreed)).numpy()
        upright = agreed[found] > 0
        rule = line_vote + weights[0] * cascades + weights[1] * layouts
        print(
            f"| {along} | {found.mean():.1%} | {np.mean((line_vote[found] > 0) == upright):.2%} "
            f"| {np.mean((rule[found] > 0) == upright):.2%} | {np.median(skew_error[found]):.4f} "
            f"| {np.mean(skew_error[found] <= 0.1):.1%} | {np.mean(skew_error[found] <= 0.5):.1%} "
            f"| {1000 * seconds[along] / args.pages:.1f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
