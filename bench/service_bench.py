"""Service benchmark: end-to-end throughput and latency over gRPC vs the same pipeline in-process.

    .venv/bin/python -m bench.service_bench --model-dir exported [--runs 3] [--write]

For 1-megapixel PNG and JPEG pages (from ../shared/data/documents, resized; a synthetic page when
that is absent), at concurrency 1, 8 and 32:
- gRPC: a server in a child process (`python -m stn_align.service.commands serve`), this process as
  the client with one thread per concurrent call; each call sends the encoded page and gets the
  rectified page back in the same format.
- in-process: `Pipeline.align_bytes` from the same number of threads.
Reports images/s and p50/p99 latency (medians over --runs runs), the gRPC / in-process throughput
ratio at concurrency 8, and the server-side step breakdown (decode, resize, localise, warp,
encode) at concurrency 1. With --write, replaces this benchmark's section of BENCHMARKS.md.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from argparse import Namespace

import cv2
import numpy as np

from bench.common import (
    ROOT,
    argument_parser,
    concurrent_calls,
    document_pages,
    free_port,
    machine,
    markdown_table,
    utc_now,
    write_section,
)
from stn_align.service.client import AlignClient, make_request
from stn_align.service.config import ServiceConfig
from stn_align.service.pipeline import AlignOptions, Pipeline

HEADING = "## Service: gRPC against in-process"
STEPS = ("decode_ms", "resize_ms", "queue_ms", "localise_ms", "warp_ms", "encode_ms", "total_ms")


def encode(image: np.ndarray, fmt: str) -> bytes:
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ext, params = (".png", []) if fmt == "png" else (".jpg", [cv2.IMWRITE_JPEG_QUALITY, 90])
    return cv2.imencode(ext, bgr, params)[1].tobytes()


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def start_server(model_dir: str, port: int, extra_env: dict[str, str]) -> subprocess.Popen:
    env = {**os.environ, "STN_MODEL_DIR": model_dir, "STN_ADDRESS": f"127.0.0.1:{port}",
           "STN_METRICS_PORT": "0", "STN_LOG_LEVEL": "WARNING", **extra_env}  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "stn_align.service.commands", "serve"],
        cwd=ROOT, env=env, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    client = AlignClient(f"127.0.0.1:{port}")
    deadline = time.monotonic() + 120
    while True:
        try:
            if client.health(timeout=1) == "SERVING":
                break
        except Exception:  # not listening yet
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the benchmark server did not start")
        time.sleep(0.3)
    client.close()
    return proc


def main(argv: list[str] | None = None) -> int:
    parser = argument_parser(__file__, __doc__)
    parser.add_argument("--model-dir", default="exported")
    parser.add_argument("--model", default="", help="model or chain (default: the server default)")
    parser.add_argument(
        "--runs", type=int, default=3, help="runs per setting; medians are reported"
    )
    parser.add_argument(
        "--calls", type=int, default=48, help="calls per run (at least 2x concurrency)"
    )
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--write", action="store_true", help="write the results into BENCHMARKS.md")
    args = parser.parse_args(argv)
    levels = [int(c) for c in args.concurrency.split(",")]
    images = document_pages(4)
    payloads = {fmt: [encode(im, fmt) for im in images] for fmt in ("png", "jpeg")}
    model = args.model or None
    config = ServiceConfig(model_dir=args.model_dir)
    rows, breakdown = [], {}

    load_before, started = os.getloadavg(), utc_now()
    port = free_port()
    server = start_server(args.model_dir, port, {})
    pipeline = Pipeline.from_dir(args.model_dir, config)
    pipeline.warmup(config.warmup_runs)
    chain_models = pipeline.resolve([model] if model else None)
    chain = "+".join(m.name for m in chain_models)
    providers = ", ".join(sorted({m.provider for m in chain_models}))
    try:
        with AlignClient(f"127.0.0.1:{port}") as client:
            for fmt, data in payloads.items():
                opts = AlignOptions(models=[model] if model else None, encoding=fmt)
                timings = [pipeline.align_bytes(d, opts).timings for d in data * 3]
                breakdown[fmt] = {k: statistics.median(t[k] for t in timings) for k in STEPS}
                requests = [make_request(d, model=model, encoding=fmt) for d in data]
                local = lambda d, o=opts: pipeline.align_bytes(d, o)  # noqa: E731
                for c in levels:
                    calls = max(args.calls, 2 * c)
                    # alternate the two paths so both see the same background load
                    pairs = [
                        (
                            concurrent_calls(local, data, c, calls),
                            concurrent_calls(client.align, requests, c, calls),
                        )
                        for _ in range(args.runs)
                    ]
                    rows.append(("in-process", fmt, c, [p[0] for p in pairs]))
                    rows.append(("gRPC", fmt, c, [p[1] for p in pairs]))
                    print(f"{fmt} c={c} done", file=sys.stderr)
    finally:
        pipeline.close()
        server.terminate()
        server.wait(timeout=60)
    run = {
        "load": (load_before[0], os.getloadavg()[0]),
        "when": f"{started} to {utc_now()[11:]}",
        "chain": chain,
        "providers": providers,
    }
    report = render(rows, breakdown, args, run, images)
    print(report)
    if args.write:
        write_section(report)
    return 0


def summarise(results) -> tuple[float, float, float]:
    rate = statistics.median(r[0] for r in results)
    p50 = statistics.median(pct(r[1], 50) for r in results)
    p99 = statistics.median(pct(r[1], 99) for r in results)
    return rate, p50, p99


def render(rows, breakdown, args: Namespace, run: dict, images: list[np.ndarray]) -> str:
    """This benchmark's section of BENCHMARKS.md, heading first."""
    sizes = ", ".join(f"{im.shape[1]}x{im.shape[0]}" for im in images)
    model = f" --model {args.model}" if args.model else ""
    summary = {}
    table = []
    for path, fmt, c, results in rows:
        rate, p50, p99 = summarise(results)
        summary[(path, fmt, c)] = rate
        table.append((path, fmt, c, f"{rate:.1f}", f"{p50:.0f}", f"{p99:.0f}"))
    lines = [
        HEADING,
        "",
        "End-to-end throughput and latency of 1-megapixel pages: over gRPC (server in a child "
        "process, this process the client, one thread per concurrent call) against the same "
        "pipeline called in-process from as many threads. Target: gRPC at least 0.9 of "
        "in-process throughput at concurrency 8.",
        "",
        f"Command: `.venv/bin/python -m bench.service_bench --model-dir {args.model_dir}{model} "
        f"--runs {args.runs} --calls {args.calls}`  ",
        f"Machine: {machine()}; provider {run['providers']}; client and server share the machine. "
        f"{run['when']}; load average (1 min) {run['load'][0]:.1f} before, "
        f"{run['load'][1]:.1f} after.  ",
        f"Model chain: `{run['chain']}`; pages: {sizes} RGB, PNG (level 1 output) and JPEG q90; "
        "each call returns the rectified page in the format it sent. Medians over the runs.",
        "",
        markdown_table(
            ("path", "format", "concurrency", "images/s", "p50 ms", "p99 ms"), table, "llrrrr"
        ),
        "",
        "gRPC / in-process throughput at concurrency 8 (target at least 0.9):",
        "",
    ]
    for fmt in ("png", "jpeg"):
        if ("gRPC", fmt, 8) in summary:
            ratio = summary[("gRPC", fmt, 8)] / summary[("in-process", fmt, 8)]
            verdict = "meets" if ratio >= 0.9 else "misses"
            lines.append(f"- {fmt}: {ratio:.2f} ({verdict} the target)")
    lines += [
        "",
        "A ratio above 1 is possible: the gRPC server and its client are two processes with a GIL "
        "each, while the in-process run shares one interpreter among all its threads.",
        "",
        "Server-side breakdown, in-process at concurrency 1 (median ms per image):",
        "",
        markdown_table(
            ("format", *(k[:-3] for k in STEPS)),
            [(fmt, *(f"{b[k]:.1f}" for k in STEPS)) for fmt, b in breakdown.items()],
            "l" + "r" * len(STEPS),
        ),
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
