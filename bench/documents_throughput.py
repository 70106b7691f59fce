"""Throughput of the document models in-process: localise + warp of a 1-megapixel page.

Decode and encode are excluded (pages are decoded once up front; encoding "raw" warps but does not
encode). Runs through stn_align.service.pipeline.Pipeline, as the server does, with the pages
submitted from a few threads so the micro-batcher can batch them. Prints the median of several runs.

    .venv/bin/python -m bench.documents_throughput --model doc-rotation --pages 100 --runs 5
    .venv/bin/python -m bench.documents_throughput --model doc-perspective+doc-rotation
    .venv/bin/python -m bench.documents_throughput --batch-workers 1 --threads 2  # serial batches
    .venv/bin/python -m bench.documents_throughput --second-read-below 1  # every page read twice
    .venv/bin/python -m bench.documents_throughput --model doc-perspective --photos  # phone photos

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

from bench.common import PAGES, ROOT, argument_parser, machine, to_megapixel, turned_page
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
    parser.add_argument(
        "--one-corner-read",
        action="store_true",
        help="setting second_corner_read off: the cost of the closer corner read",
    )
    parser.add_argument(
        "--photos",
        action="store_true",
        help="phone photos of the validation sources' pages (one per page, seed 0, each at 1 MP: "
        "pages of every size, so some are read again closer, service/corners.py) instead of the "
        "turned scan",
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
    if args.one_corner_read:
        config = config.replace(second_corner_read=False)
    pipe = Pipeline.from_dir(args.model_dir, config)
    pipe.warmup(2)
    if args.photos:
        pages = phone_photos(args.pages)
        page = pages[0]
    else:
        page = turned_page()
        pages = [page] * args.pages
    options = AlignOptions(models=[args.model], encoding="raw")
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
    what = f"{len(pages)} phone photos, the first" if args.photos else "page"
    print(f"{what}: {page.shape[1]}x{page.shape[0]} ({page.shape[0] * page.shape[1] / 1e6:.2f} MP)")
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


def phone_photos(count: int) -> list:
    """The first `count` phone photos of the validation pages (one per page, cycled), at 1 MP."""
    from stn_align.training.documents import photo_eval

    photos = [to_megapixel(p.image) for p in photo_eval.phone_samples(PAGES, 1, 0, "val")]
    return [photos[i % len(photos)] for i in range(count)]


if __name__ == "__main__":
    sys.exit(main())
