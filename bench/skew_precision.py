"""Skew precision of doc-rotation's profile search, with and without the full-size level, on
synthetic pages: bank pages through the training generator (rotation_item), turned over the whole
circle, with seeds the training never draws. The skew has no learned weights, so no checkpoint is
needed; errors are modulo 90 degrees (which way up is the orientation classifier's job).

    .venv/bin/python -m bench.skew_precision --pages 300

The full-size level's span and step (skew.REFINE) were chosen with this script.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from bench.common import argument_parser

SEED = 999  # the rotation cascade's training drew (config seed, split id, index): no collision


def main(argv: list[str] | None = None) -> int:
    # torch and the training package load inside main: importing the module and `--help` stay quick.
    import torch
    import torch.nn.functional as F

    from stn_align.training.documents import skew
    from stn_align.training.documents.bank import load_bank
    from stn_align.training.documents.dataset import rotation_item

    parser = argument_parser(__file__, __doc__)
    parser.add_argument("--pages", type=int, default=300, help="synthetic pages (default 300)")
    parser.add_argument("--bank", default="runs/pages", help="page bank (default runs/pages)")
    parser.add_argument("--size", type=int, default=768, help="model input (default 768)")
    parser.add_argument(
        "--refine", type=float, nargs=2, default=skew.REFINE, metavar=("SPAN", "STEP"),
        help=f"full-size level, degrees (default {skew.REFINE[0]} {skew.REFINE[1]})",
    )  # fmt: skip
    parser.add_argument(
        "--pool", type=int, default=skew.SkewRefine.POOL,
        help=f"full-size strip width (default {skew.SkewRefine.POOL})",
    )  # fmt: skip
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    pages = load_bank(args.bank)
    fill = -1.0
    half = args.size // 2
    methods = {
        "half size, two levels (doc-rotation v3)": skew.ProfileSkew(half, fill),
        "half size, one level": skew.ProfileSkew(half, fill, levels=skew.FINE_LEVELS[:1]),
    }
    span, step = args.refine
    refine = skew.SkewRefine(args.size, span, step, pool=args.pool)
    last = f"half size, one level + full size +-{span}/{step}, strips of {args.pool}"
    names = [*methods, last]
    errors: dict[str, list[float]] = {name: [] for name in names}
    seconds = dict.fromkeys(names, 0.0)
    for index in range(args.pages):
        rng = np.random.default_rng([SEED, index])
        ink = pages[int(rng.integers(len(pages)))]
        other = pages[int(rng.integers(len(pages)))]
        image, params = rotation_item(ink, other, rng, args.size, 180.0, 0)
        x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)[None])).float()
        x = x / 127.5 - 1.0
        truth = float(skew.degrees(torch.tensor(np.asarray(params[:2], np.float32))))
        found = {}
        with torch.no_grad():
            for name, method in methods.items():
                start = time.perf_counter()
                found[name], along = method.measure(F.avg_pool2d(x, 2))
                taken = time.perf_counter() - start
                seconds[name] += taken
            # The last method: the one-level estimate turned to its axis, then refined.
            start = time.perf_counter()
            rough = skew.multiply(found[names[1]], torch.stack([along, 1.0 - along], 1))
            found[names[-1]] = refine(skew.turned_rows(skew.page_ink(x, fill), rough), rough)
            seconds[names[-1]] += time.perf_counter() - start + taken
        for name, pair in found.items():
            errors[name].append(abs((float(skew.degrees(pair)[0]) - truth + 45) % 90 - 45))
    print(f"{args.pages} synthetic pages (seed {SEED}), input {args.size}, skew modulo 90 degrees")
    print("| Method | Median | <=0.1 | <=0.5 | Mean of those <=2 | ms/page (PyTorch) |")
    print("|---|---|---|---|---|---|")
    for name in names:
        e = np.array(errors[name])
        print(
            f"| {name} | {np.median(e):.4f} | {(e <= 0.1).mean():.1%} | {(e <= 0.5).mean():.1%} "
            f"| {e[e <= 2].mean():.4f} | {1000 * seconds[name] / args.pages:.1f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
