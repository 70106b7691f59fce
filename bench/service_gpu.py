"""Localiser batch throughput and the warper graph vs OpenCV, on whatever provider binds.

    .venv/bin/python bench/service_gpu.py --model-dir exported [--device auto] [--runs 5]

For each model with a warper: images/s of the localiser at batch 1, 8, 32 and 64 (fixed random
inputs, after warm-up), and the time to rectify a 1-megapixel RGB page with OpenCV on the CPU and
with the exported warper graph through ONNX Runtime I/O binding (on the GPU when CUDA binds,
otherwise on the CPU). Medians over --runs. Prints a markdown table with the provider in use.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stn_align.core import geometry  # noqa: E402
from stn_align.service import warp  # noqa: E402
from stn_align.service.models import CUDA, load_repository  # noqa: E402


def timed(fn, runs: int) -> float:
    fn()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", default="exported")
    parser.add_argument("--device", default="auto", choices=("auto", "cuda", "cpu"))
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--write", action="store_true", help="write the results into BENCHMARKS.md")
    args = parser.parse_args()
    models = load_repository(args.model_dir, None, args.device)
    rng = np.random.default_rng(0)
    page = rng.integers(0, 255, (1155, 866, 3), dtype=np.uint8)
    providers = sorted({m.provider for m in models.values()})
    lines = [
        "### Localiser batches and the warper graph",
        "",
        f"Command: `.venv/bin/python bench/service_gpu.py --model-dir {args.model_dir} "
        f"--device {args.device} --runs {args.runs}`; provider: {', '.join(providers)}; "
        f"{os.cpu_count()} CPU cores. Medians of {args.runs} runs.",
        "",
        "| model | batch | localiser images/s |",
        "|---|---:|---:|",
    ]
    for name, m in models.items():
        for batch in (1, 8, 32, 64):
            x = rng.integers(
                0, 255, (batch, m.input_size, m.input_size, m.input_channels), np.uint8
            )
            seconds = timed(lambda x=x, m=m: m.localise(x), args.runs)
            lines.append(f"| {name} | {batch} | {batch / seconds:.0f} |")
    lines += ["", "| model | rectifying an 866x1155 RGB page | ms |", "|---|---|---:|"]
    out_hw = (page.shape[0], page.shape[1])
    for name, m in models.items():
        if m.warper is None:
            continue
        theta = geometry.identity_params(m.family, m.contract.tps_grid)
        if m.family == "rotation":
            theta = geometry.rotation_params(7.0)
        matrix = geometry.pixel_matrix(m.family, theta, out_hw, out_hw)
        cv_s = timed(lambda mx=matrix: warp.warp_matrix(page, mx, out_hw), args.runs)
        device = "cuda" if m.provider == CUDA else "cpu"
        channels = m.warper.get_inputs()[0].shape[3]
        image = page if not isinstance(channels, int) or channels == 3 else page[:, :, :1].copy()

        def graph(m=m, t=theta, image=image, device=device):
            return warp.warp_graph(m.warper, image, t, out_hw, 255.0, device)

        graph_s = timed(graph, args.runs)
        lines.append(f"| {name} | OpenCV (CPU) | {cv_s * 1000:.1f} |")
        lines.append(
            f"| {name} | warper graph, I/O binding ({m.provider}) | {graph_s * 1000:.1f} |"
        )
    report = "\n".join(lines) + "\n"
    print(report)
    if args.write:
        sys.path.insert(0, str(Path(__file__).parent))
        from service_bench import write_section

        write_section(ROOT / "BENCHMARKS.md", report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
