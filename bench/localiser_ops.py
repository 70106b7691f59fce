"""ONNX Runtime's CPU time for alternative ways of writing two parts of doc-rotation's graph, each
pair computing the same numbers (checked here before timing):

- spreading the padding mask (S/4 x S/4) over the full-size ink: Expand then Mul (the fifth
  version), a 6-D broadcast Mul, or a nearest Resize then Mul (shipped since);
- the coarse search's 15 fixed de-rotations: GridSample of 15 stacked copies, or one Gather by a
  constant index (shipped).

(The line reader of an earlier doc-rotation, timed here as 1-D against 1 x k 2-D convolutions, is
gone: the orientation classifier replaced it.)

    .venv/bin/python -m bench.localiser_ops --batch 4 --threads 1

Prints each variant's median ms per page over alternating rounds, so that a busy machine weighs
on all of them alike.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

from bench.common import alternate, argument_parser, cpu_session


def variants(batch: int):
    """{part: [(name, module, inputs)]}; the modules of one part give the same output."""
    import torch
    import torch.nn.functional as F

    from stn_align.training.documents import skew

    torch.manual_seed(0)
    size, pool = 768, 4
    side = size // pool
    ink, keep = torch.rand(batch, 1, size, size), (torch.rand(batch, 1, side, side) > 0.3).float()

    class ExpandMul(torch.nn.Module):
        def forward(self, x, k):
            n = x.shape[0]
            spread = k[:, :, :, None, :, None].expand(n, 1, side, pool, side, pool)
            return x * spread.reshape(n, 1, size, size)

    class BroadcastMul(torch.nn.Module):
        def forward(self, x, k):
            blocks = x.reshape(-1, 1, side, pool, side, pool) * k[:, :, :, None, :, None]
            return blocks.reshape(-1, 1, size, size)

    class ResizeMul(torch.nn.Module):
        def forward(self, x, k):
            return x * F.interpolate(k, scale_factor=pool, mode="nearest")

    search = skew.ProfileSkew(size // 2)
    small = size // 2 // skew.COARSE_POOL
    grids = skew.rotation_grid(search.coarse_cos, search.coarse_sin, skew.coords(small))

    class CoarseGridSample(torch.nn.Module):
        def forward(self, p):
            n, k = p.shape[0], grids.shape[0]
            stack = p[:, None].expand(n, k, 1, small, small).reshape(n * k, 1, small, small)
            tiled = grids[None].expand(n, *grids.shape).reshape(n * k, *grids.shape[1:])
            turned = F.grid_sample(stack, tiled, mode="nearest", align_corners=False)
            turned = turned.reshape(n, k, small, small)
            return turned.sum(-1).square().mean(-1) + turned.sum(-2).square().mean(-1)

    class CoarseGather(torch.nn.Module):
        def forward(self, p):
            return search._coarse_scores(p)

    pooled = torch.rand(batch, 1, small, small)
    return {
        "padding mask": [
            ("Expand, Mul", ExpandMul(), (ink, keep)),
            ("6-D broadcast Mul", BroadcastMul(), (ink, keep)),
            ("Resize, Mul", ResizeMul(), (ink, keep)),
        ],
        "coarse search": [
            ("GridSample", CoarseGridSample(), (pooled,)),
            ("constant Gather", CoarseGather(), (pooled,)),
        ],
    }


def main(argv: list[str] | None = None) -> int:
    import torch

    parser = argument_parser(__file__, __doc__)
    parser.add_argument("--batch", type=int, default=4, help="pages a call (default 4)")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads (default 1)")
    parser.add_argument("--rounds", type=int, default=15, help="alternating rounds (default 15)")
    parser.add_argument("--calls", type=int, default=5, help="calls per variant a round")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        for part, candidates in variants(args.batch).items():
            sessions, reference = [], None
            for i, (name, module, inputs) in enumerate(candidates):
                path = str(Path(tmp) / f"{part.replace(' ', '_')}{i}.onnx")
                names = [f"x{j}" for j in range(len(inputs))]
                torch.onnx.export(module, inputs, path, input_names=names, dynamo=False)
                session = cpu_session(path, args.threads)
                feed = {n: t.numpy() for n, t in zip(names, inputs, strict=True)}
                out = session.run(None, feed)[0]
                reference = out if reference is None else reference
                if not np.allclose(out, reference, rtol=1e-4, atol=1e-4):
                    print(f"error: {part}: {name} differs from the first", file=sys.stderr)
                    return 1
                sessions.append((name, session, feed))
            runs = [(session, feed) for _, session, feed in sessions]
            times = alternate(runs, args.rounds, args.calls)
            for (name, _, _), spent in zip(sessions, times, strict=True):
                print(f"{part}: {name}: median {np.median(spent) / args.batch:.2f} ms a page")
    return 0


if __name__ == "__main__":
    sys.exit(main())
