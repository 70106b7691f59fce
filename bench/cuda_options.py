"""Document chain throughput in-process under different CUDA session options (run it on a GPU).

    python -m bench.cuda_options [--model doc-perspective+doc-rotation] [--calls 48]

For each variant, fresh sessions (the service's warm-up, then, where the variant says so, one run
at every batch size up to max_batch_size), then JPEG pages through `Pipeline.align_bytes` from 1,
8 and 32 threads (--calls calls, at least 3 a thread): pages/s, and the median queue and localise
milliseconds per page at concurrency 1. The variants: the service's CUDA_OPTIONS, and
onnxruntime's default exhaustive cuDNN algorithm search, without and with every batch size warmed
up. Without CUDA every variant runs on the CPU and the options do nothing (the provider column
says which ran). One run per variant: the GPU time that a lent machine gives is short.
"""

from __future__ import annotations

import statistics
import sys
import time

from bench.common import (
    argument_parser,
    concurrent_calls,
    document_pages,
    machine,
    markdown_table,
)
from bench.service_bench import encode
from stn_align.service import models
from stn_align.service.config import ServiceConfig
from stn_align.service.pipeline import AlignOptions, Pipeline

SERVICE = dict(models.CUDA_OPTIONS)
EXHAUSTIVE = {**SERVICE, "cudnn_conv_algo_search": "EXHAUSTIVE"}  # onnxruntime's own default
VARIANTS = [  # (name, CUDA provider options, warm every batch size)
    ("the service's CUDA_OPTIONS", SERVICE, False),
    ("exhaustive cuDNN search", EXHAUSTIVE, False),
    ("exhaustive, every batch size warmed", EXHAUSTIVE, True),
]


def measure(model_dir: str, chain: str, options: dict, warm_all: bool, args) -> list[str]:
    service_options = models.CUDA_OPTIONS
    models.CUDA_OPTIONS = options  # read by providers_for when the sessions are made
    try:
        config = ServiceConfig(model_dir=model_dir)
        started = time.perf_counter()
        pipeline = Pipeline.from_dir(model_dir, config)
    finally:
        models.CUDA_OPTIONS = service_options
    try:
        pipeline.warmup(config.warmup_runs)
        if warm_all:
            for model in pipeline.models.values():
                for batch in range(1, config.max_batch_size + 1):
                    model.warmup(1, batch)
        ready = time.perf_counter() - started
        pages = [encode(image, "jpeg") for image in document_pages(4)]
        request = AlignOptions(models=chain.split("+"), encoding="jpeg")
        timings = [pipeline.align_bytes(page, request).timings for page in pages * 2]
        queue = statistics.median(t["queue_ms"] for t in timings)
        localise = statistics.median(t["localise_ms"] for t in timings)
        rates = [
            concurrent_calls(
                lambda p: pipeline.align_bytes(p, request), pages, c, max(args.calls, 3 * c)
            )[0]
            for c in args.concurrency
        ]
        provider = ", ".join(sorted({m.provider for m in pipeline.models.values()}))
    finally:
        pipeline.close()
    return [
        provider,
        f"{ready:.1f}",
        f"{queue:.1f}",
        f"{localise:.1f}",
        *(f"{rate:.1f}" for rate in rates),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argument_parser(__file__, __doc__)
    parser.add_argument("--model-dir", default="exported")
    parser.add_argument("--model", default="doc-perspective+doc-rotation", help="the chain")
    parser.add_argument(
        "--calls", type=int, default=48, help="calls at each level (at least 3 a thread)"
    )
    parser.add_argument("--concurrency", default="1,8,32", help="comma-separated thread counts")
    args = parser.parse_args(argv)
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    rows = []
    for name, options, warm_all in VARIANTS:
        rows.append([name, *measure(args.model_dir, args.model, options, warm_all, args)])
        print(f"{name} done", file=sys.stderr)
    header = ["CUDA options", "provider", "ready s", "queue ms", "localise ms"]
    header += [f"pages/s at {c}" for c in args.concurrency]
    levels = ",".join(str(c) for c in args.concurrency)
    command = f"python -m bench.cuda_options --model {args.model} --calls {args.calls}"
    print(f"`{command} --concurrency {levels}`; {machine()}")
    print()
    print(markdown_table(header, rows, "ll" + "r" * (len(header) - 2)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
