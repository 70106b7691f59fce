"""Throughput of the document models in-process: localise + warp of a 1-megapixel page.

Decode and encode are excluded (pages are decoded once up front; encoding "raw" warps but does not
encode). Runs through stn_align.service.pipeline.Pipeline, as the server does, with the pages
submitted from a few threads so the micro-batcher can batch them. Prints the median of several runs.

    .venv/bin/python -m bench.documents_throughput --model doc-rotation --pages 100 --runs 5
    .venv/bin/python -m bench.documents_throughput --model doc-perspective+doc-rotation
    .venv/bin/python -m bench.documents_throughput --batch-workers 1 --threads 2  # serial batches
    .venv/bin/python -m bench.documents_throughput --second-read-below 1  # every page read twice

The localiser runs as the service's settings say (batch_workers, ort_threads; 0 for either means
the service's default). Besides pages/s it prints the cores kept busy (process CPU time over wall
time): with the pages/s, that tells a slow machine from idle cores.

Target (issue 4): at least 50 pages/s on 2 CPU cores for one model.
"""

from __future__ import annotations

import os
import statistics
import sys
import time

from bench.common import ROOT, argument_parser, machine, turned_page
from stn_align.service.config import ServiceConfig
from stn_align.service.pipeline import AlignOptions, Pipeline


def main(argv: list[str] | None = None) -> int:
    parser = argument_parser(__file__, __doc__)
    parser.add_argument("--model", default="doc-rotation", help="model or chain (a+b)")
    parser.add_argument("--model-dir", default=str(ROOT / "exported"))
    parser.add_argument("--pages", type=int, default=100, help="pages per run")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--workers", type=int, default=4, help="submitting threads")
    parser.add_argument(
        "--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0: the service's)"
    )
    parser.add_argument(
        "--batch-workers", type=int, default=0, help="localiser runs at once (0: the service's)"
    )
    parser.add_argument(
        "--second-read-below",
        type=float,
        default=None,
        help="the service setting (default: its default); 1 reads every page's corners again, "
        "0 none: the cost of the second read (service/orientation.py)",
    )
    args = parser.parse_args(argv)

    names = sorted(set(args.model.split("+")))
    config = ServiceConfig(
        model_dir=args.model_dir,
        models=",".join(names),
        device="cpu",
        ort_threads=args.threads,
        batch_workers=args.batch_workers,
        warp="opencv",
    )
    if args.second_read_below is not None:
        config = config.replace(second_read_below=args.second_read_below)
    pipe = Pipeline.from_dir(args.model_dir, config)
    pipe.warmup(2)
    page = turned_page()
    options = AlignOptions(models=[args.model], encoding="raw")
    pages = [page] * args.pages
    rates: list[float] = []
    busy: list[float] = []
    timings: list[dict[str, float]] = []
    read_again = 0
    for _ in range(args.runs):
        t, cpu = time.perf_counter(), time.process_time()
        results = pipe.align_many(pages, options, workers=args.workers)
        wall = time.perf_counter() - t
        rates.append(args.pages / wall)
        busy.append((time.process_time() - cpu) / wall)
        errors = [r for r in results if isinstance(r, Exception)]
        if errors:
            raise errors[0]
        timings.extend(r.timings for r in results if not isinstance(r, Exception))
        read_again += sum(
            any(s.read_again for s in r.stages) for r in results if not isinstance(r, Exception)
        )
    pipe.close()
    mean = {
        k: statistics.median(t[k] for t in timings) for k in ("resize_ms", "localise_ms", "warp_ms")
    }
    print(f"machine: {machine()}")
    print(f"page: {page.shape[1]}x{page.shape[0]} ({page.shape[0] * page.shape[1] / 1e6:.2f} MP)")
    print(
        f"model: {args.model}, {args.runs} runs of {args.pages} pages, {args.workers} threads, "
        f"{config.cpu_batch_workers()} batch workers of {config.intra_op_threads()} ORT threads"
    )
    print(f"pages read again (second read): {read_again} of {args.runs * args.pages}")
    print(f"pages/s per run: {', '.join(f'{r:.1f}' for r in rates)}")
    print(f"median pages/s: {statistics.median(rates):.1f}")
    # Cores kept busy: with the pages/s, this tells a slow machine (busy cores, few pages) from
    # idle cores (waiting on one another).
    print(f"median cores busy: {statistics.median(busy):.2f} of {os.cpu_count()}")
    print("median per page: " + ", ".join(f"{k} {v:.1f}" for k, v in mean.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
