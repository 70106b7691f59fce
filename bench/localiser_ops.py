"""ONNX Runtime's CPU time for alternative ways of writing three parts of doc-rotation's graph, each
pair computing the same numbers (checked here before timing):

- spreading the padding mask (S/4 x S/4) over the full-size ink: Expand then Mul, a 6-D broadcast
  Mul, or a nearest Resize then Mul (the shipped graph's way);
- the line reader's net: 1-D convolutions, or the same as 1 x k 2-D ones (shipped);
- the coarse search's 15 fixed de-rotations: GridSample of 15 stacked copies, or one Gather by a
  constant index (shipped).

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
    from stn_align.training.documents.direction import STRIPS, ProfileDirection

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

    net = ProfileDirection(size)
    for p in net.parameters():
        torch.nn.init.normal_(p, 0, 0.2)
        p.requires_grad_(False)  # the 1-D variant's weights become graph constants

    class Net2d(torch.nn.Module):
        def forward(self, q):  # (N, 1, K, S)
            return net.net(q)

    class Net1d(torch.nn.Module):
        def forward(self, q):
            x = q.reshape(-1, 1, size)
            for layer in net.net:
                if isinstance(layer, torch.nn.Conv2d):
                    x = F.conv1d(
                        x,
                        layer.weight[:, :, 0],
                        layer.bias,
                        padding=layer.padding[1],
                        dilation=layer.dilation[1],
                    )
                else:
                    x = layer(x)
            return x.reshape(q.shape[0], -1, STRIPS, size).transpose(1, 2)[:, None, :, 0]

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

    profiles = torch.rand(batch, 1, STRIPS, size)
    pooled = torch.rand(batch, 1, small, small)
    return {
        "padding mask": [
            ("Expand, Mul", ExpandMul(), (ink, keep)),
            ("6-D broadcast Mul", BroadcastMul(), (ink, keep)),
            ("Resize, Mul", ResizeMul(), (ink, keep)),
        ],
        "line reader net": [
            ("1-D Conv", Net1d(), (profiles,)),
            ("1 x k 2-D Conv", Net2d(), (profiles,)),
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
