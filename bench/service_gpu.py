"""Localiser batch throughput and the warper graph vs OpenCV, on whatever provider binds.

    .venv/bin/python -m bench.service_gpu --model-dir exported [--device auto] [--runs 5] [--write]

For each model with a warper: images/s of the localiser at batch 1, 8, 32 and 64 (fixed random
inputs, after warm-up), and the time to rectify a 1-megapixel RGB page with OpenCV on the CPU and
with the exported warper graph through ONNX Runtime I/O binding (on the GPU when CUDA binds,
otherwise on the CPU). Medians over --runs. Prints a markdown table with the provider in use;
with --write, puts it into BENCHMARKS.md under the service benchmark's section.
"""

from __future__ import annotations

import sys

import numpy as np

from bench import service_bench
from bench.common import (
    argument_parser,
    machine,
    markdown_table,
    median_ms,
    utc_now,
    write_section,
)
from stn_align.core import geometry
from stn_align.service import warp
from stn_align.service.models import CUDA, Model, load_repository

HEADING = "### Localiser batches and the warper graph"


def opencv_rectify(model: Model, page: np.ndarray, theta: np.ndarray, out_hw: tuple[int, int]):
    """The service's OpenCV path for one model: its family's sampling, then the warp."""
    sampling = model.spec.sampling(theta, out_hw, out_hw, model.contract.tps_grid)
    if sampling.maps is None:
        return warp.warp_matrix(page, sampling.matrix, out_hw)
    return warp.warp_maps(page, *sampling.maps)


def main(argv: list[str] | None = None) -> int:
    parser = argument_parser(__file__, __doc__)
    parser.add_argument("--model-dir", default="exported")
    parser.add_argument("--device", default="auto", choices=("auto", "cuda", "cpu"))
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--write", action="store_true", help="write the results into BENCHMARKS.md")
    args = parser.parse_args(argv)
    models = load_repository(args.model_dir, None, args.device)
    rng = np.random.default_rng(0)
    page = rng.integers(0, 255, (1155, 866, 3), dtype=np.uint8)
    providers = sorted({m.provider for m in models.values()})
    lines = [
        HEADING,
        "",
        "Images/s of each localiser at batch 1, 8, 32 and 64, and the time to rectify a "
        "1-megapixel RGB page with OpenCV on the CPU and with the exported warper graph through "
        "ONNX Runtime I/O binding.",
        "",
        f"Command: `.venv/bin/python -m bench.service_gpu --model-dir {args.model_dir} "
        f"--device {args.device} --runs {args.runs}`; provider: {', '.join(providers)}; "
        f"machine: {machine()}; {utc_now()}. Medians of {args.runs} runs.",
        "",
    ]
    batches = []
    for name, m in models.items():
        for batch in (1, 8, 32, 64):
            x = rng.integers(
                0, 255, (batch, m.input_size, m.input_size, m.input_channels), np.uint8
            )
            ms = median_ms(lambda x=x, m=m: m.localise(x), args.runs)
            batches.append((name, batch, f"{1000 * batch / ms:.0f}"))
    rectify = []
    out_hw = (page.shape[0], page.shape[1])
    for name, m in models.items():
        if m.warper is None:
            continue
        theta = geometry.identity_params(m.family, m.contract.tps_grid)
        if m.family == "rotation":
            theta = geometry.rotation_params(7.0)
        cv_ms = median_ms(lambda m=m, t=theta: opencv_rectify(m, page, t, out_hw), args.runs)
        device = "cuda" if m.provider == CUDA else "cpu"
        channels = m.warper.get_inputs()[0].shape[3]
        image = page if not isinstance(channels, int) or channels == 3 else page[:, :, :1].copy()

        def graph(m=m, t=theta, image=image, device=device):
            return warp.warp_graph(m.warper, image, t, out_hw, 255.0, device)

        graph_ms = median_ms(graph, args.runs)
        rectify.append((name, "OpenCV (CPU)", f"{cv_ms:.1f}"))
        rectify.append((name, f"warper graph, I/O binding ({m.provider})", f"{graph_ms:.1f}"))
    lines += [
        markdown_table(("model", "batch", "localiser images/s"), batches, "lrr"),
        "",
        markdown_table(("model", "rectifying an 866x1155 RGB page", "ms"), rectify, "llr"),
    ]
    report = "\n".join(lines) + "\n"
    print(report)
    if args.write:
        write_section(report, parent=service_bench.HEADING)
    return 0


if __name__ == "__main__":
    sys.exit(main())
