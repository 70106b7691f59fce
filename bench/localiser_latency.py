"""Localiser latency in ONNX Runtime (CPU provider): batch 1 and 32, input 128 and 256.

    .venv/bin/python -m bench.localiser_latency [--repeats 30] [--threads 2] [--json out.json]

Exports an untrained `conv` localiser (weights do not change the cost) for each family asked for,
times session.run on random uint8 images, and prints the median and p90 over the repeats, per
batch and per image. Results go into BENCHMARKS.md by hand, with the machine.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

from bench.common import argument_parser, call_seconds, cpu_session, machine


def time_session(
    path: Path, batch: int, size: int, channels: int, repeats: int, threads: int
) -> tuple[float, float]:
    """(median, p90) ms of a localiser call on random uint8 images, after 3 warm-up calls."""
    session = cpu_session(str(path), threads)
    images = np.random.default_rng(0).integers(0, 256, (batch, size, size, channels), np.uint8)
    times = sorted(
        1000 * t
        for t in call_seconds(lambda: session.run(["theta"], {"image": images}), repeats, 3)
    )
    return statistics.median(times), times[int(0.9 * (len(times) - 1))]


def main(argv: list[str] | None = None) -> int:
    parser = argument_parser(__file__, __doc__)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--families", nargs="+", default=["rotation", "projective"])
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args(argv)

    # torch and the training package load only after the arguments: `--help` stays quick.
    from stn_align.training.build import build_transformer
    from stn_align.training.config import ModelConfig
    from stn_align.training.export import export_model

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for family in args.families:
            for size in (128, 256):
                cfg = ModelConfig(family=family, localiser="conv", input_size=size, channels=1)
                path = Path(tmp) / f"{family}-{size}.onnx"
                export_model(build_transformer(cfg), path, input_channels=3)
                for batch in (1, 32):
                    med, p90 = time_session(path, batch, size, 3, args.repeats, args.threads)
                    rows.append(
                        {
                            "family": family,
                            "input": size,
                            "batch": batch,
                            "median_ms": round(med, 3),
                            "p90_ms": round(p90, 3),
                            "median_ms_per_image": round(med / batch, 3),
                            "images_per_s": round(1000 * batch / med, 1),
                            "size_mb": round(path.stat().st_size / 2**20, 2),
                        }
                    )
                    print(json.dumps(rows[-1]), flush=True)
    print(f"machine: {machine()}, intra-op threads {args.threads}, {args.repeats} repeats")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
