"""Localiser latency in ONNX Runtime (CPU provider): batch 1 and 32, input 128 and 256.

    .venv/bin/python bench/localiser_latency.py [--repeats 30] [--threads 2] [--json out.json]

Exports an untrained `conv` localiser (weights do not change the cost) for each family asked for,
times session.run on random uint8 images, and prints the median and p90 over the repeats, per
batch and per image. Results go into BENCHMARKS.md by hand, with the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def time_session(path: Path, batch: int, size: int, channels: int, repeats: int, threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    images = np.random.default_rng(0).integers(0, 256, (batch, size, size, channels), np.uint8)
    for _ in range(3):  # warm-up: first runs allocate and pick kernels
        session.run(["theta"], {"image": images})
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        session.run(["theta"], {"image": images})
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return statistics.median(times), times[int(0.9 * (len(times) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--families", nargs="+", default=["rotation", "projective"])
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()

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
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"intra-op threads {args.threads}, {args.repeats} repeats"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
