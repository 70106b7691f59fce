"""Service benchmark: end-to-end throughput and latency over gRPC vs the same pipeline in-process.

    .venv/bin/python bench/service_bench.py --model-dir exported [--runs 3] [--write]

For 1-megapixel PNG and JPEG pages (from ../shared/data/documents, resized; a synthetic page when
that is absent), at concurrency 1, 8 and 32:
- gRPC: a server in a child process (`python -m stn_align.service.commands serve`), this process as
  the client with one thread per concurrent call; each call sends the encoded page and gets the
  rectified page back in the same format.
- in-process: `Pipeline.align_bytes` from the same number of threads.
Reports images/s and p50/p99 latency (medians over --runs runs), the gRPC / in-process throughput
ratio at concurrency 8, and the server-side step breakdown (decode, resize, localise, warp,
encode) at concurrency 1. With --write, replaces the `## Service` section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stn_align.service.client import AlignClient, make_request  # noqa: E402
from stn_align.service.config import ServiceConfig  # noqa: E402
from stn_align.service.pipeline import AlignOptions, Pipeline  # noqa: E402

STEPS = ("decode_ms", "resize_ms", "queue_ms", "localise_ms", "warp_ms", "encode_ms", "total_ms")


def pages(count: int = 4) -> list[np.ndarray]:
    """Up to `count` real pages, each resized to about one megapixel, RGB."""
    directory = ROOT.parent / "shared" / "data" / "documents"
    files = sorted(directory.glob("*.png"))[:count]
    out = []
    for f in files:
        bgr = cv2.imread(str(f))
        assert bgr is not None, f"cannot read {f}"
        image = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        scale = (1_000_000 / (image.shape[0] * image.shape[1])) ** 0.5
        out.append(cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA))
    if not out:  # a synthetic text-like page
        rng = np.random.default_rng(0)
        page = np.full((1155, 866, 3), 245, np.uint8)
        for y in range(80, 1080, 28):
            page[y : y + 10, 70:800] = rng.integers(0, 90, (10, 730, 3), dtype=np.uint8)
        out = [page]
    return out


def encode(image: np.ndarray, fmt: str) -> bytes:
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ext, params = (".png", []) if fmt == "png" else (".jpg", [cv2.IMWRITE_JPEG_QUALITY, 90])
    return cv2.imencode(ext, bgr, params)[1].tobytes()


def measure(call, payloads: list, concurrency: int, total: int) -> tuple[float, list[float]]:
    """Run `total` calls from `concurrency` threads; returns (images/s, latencies in ms)."""
    latencies: list[float] = []

    def one(i: int) -> None:
        started = time.perf_counter()
        call(payloads[i % len(payloads)])
        latencies.append((time.perf_counter() - started) * 1000)

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(concurrency)))  # warm the threads and connections
        latencies.clear()
        started = time.perf_counter()
        list(pool.map(one, range(total)))
        wall = time.perf_counter() - started
    return total / wall, latencies


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
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
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    images = pages()
    payloads = {fmt: [encode(im, fmt) for im in images] for fmt in ("png", "jpeg")}
    model = args.model or None
    config = ServiceConfig(model_dir=args.model_dir)
    rows, breakdown = [], {}

    load_before = os.getloadavg()
    port = free_port()
    server = start_server(args.model_dir, port, {})
    pipeline = Pipeline.from_dir(args.model_dir, config)
    pipeline.warmup(config.warmup_runs)
    chain = "+".join(m.name for m in pipeline.resolve([model] if model else None))
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
                        (measure(local, data, c, calls), measure(client.align, requests, c, calls))
                        for _ in range(args.runs)
                    ]
                    rows.append(("in-process", fmt, c, [p[0] for p in pairs]))
                    rows.append(("gRPC", fmt, c, [p[1] for p in pairs]))
                    print(f"{fmt} c={c} done", file=sys.stderr)
    finally:
        pipeline.close()
        server.terminate()
        server.wait(timeout=60)
    args.load = (load_before, os.getloadavg())

    report = render(rows, breakdown, args, chain, images)
    print(report)
    if args.write:
        write_section(ROOT / "BENCHMARKS.md", report)
    return 0


def summarise(results) -> tuple[float, float, float]:
    rate = statistics.median(r[0] for r in results)
    p50 = statistics.median(pct(r[1], 50) for r in results)
    p99 = statistics.median(pct(r[1], 99) for r in results)
    return rate, p50, p99


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def render(rows, breakdown, args, chain: str, images) -> str:
    sizes = ", ".join(f"{im.shape[1]}x{im.shape[0]}" for im in images)
    lines = [
        "## Service",
        "",
        "Command: `.venv/bin/python bench/service_bench.py "
        f"--model-dir {args.model_dir}{' --model ' + args.model if args.model else ''} "
        f"--runs {args.runs} --calls {args.calls}`  ",
        f"Machine: {os.cpu_count()} CPU cores ({cpu_name()}), no GPU; "
        f"Python {platform.python_version()}. Client and server share the machine. Load average "
        f"(1 min) {args.load[0][0]:.1f} before, {args.load[1][0]:.1f} after "
        "(other work was running).  ",
        f"Model chain: `{chain}`; pages: {sizes} RGB, PNG (level 1 output) and JPEG q90; each call "
        "returns the rectified page in the format it sent. Medians over the runs.",
        "",
        "| path | format | concurrency | images/s | p50 ms | p99 ms |",
        "|---|---|---:|---:|---:|---:|",
    ]
    summary = {}
    for path, fmt, c, results in rows:
        rate, p50, p99 = summarise(results)
        summary[(path, fmt, c)] = rate
        lines.append(f"| {path} | {fmt} | {c} | {rate:.1f} | {p50:.0f} | {p99:.0f} |")
    lines += ["", "gRPC / in-process throughput at concurrency 8 (target at least 0.9):", ""]
    for fmt in ("png", "jpeg"):
        if ("gRPC", fmt, 8) in summary:
            ratio = summary[("gRPC", fmt, 8)] / summary[("in-process", fmt, 8)]
            verdict = "meets" if ratio >= 0.9 else "misses"
            lines.append(f"- {fmt}: {ratio:.2f} ({verdict} the target)")
    lines += [
        "",
        "A ratio above 1 is possible: the gRPC server and its client are two processes with a GIL "
        "each, while the in-process run shares one interpreter among all its threads.",
    ]
    lines += ["", "Server-side breakdown, in-process at concurrency 1 (median ms per image):", ""]
    lines.append("| format | " + " | ".join(k[:-3] for k in STEPS) + " |")
    lines.append("|---|" + "---:|" * len(STEPS))
    for fmt, b in breakdown.items():
        lines.append(f"| {fmt} | " + " | ".join(f"{b[k]:.1f}" for k in STEPS) + " |")
    lines += ["", "GPU figures (localiser batch throughput, warper graph vs OpenCV): not measured, "
              "no GPU on this machine; bench/service_gpu.py measures them.", ""]  # fmt: skip
    return "\n".join(lines)


def write_section(path: Path, section: str) -> None:
    """Put `section` into BENCHMARKS.md. It starts with its heading: `## Service` (this script) or a
    `### ` subsection of it (bench/service_gpu.py). An existing copy is replaced, up to the next
    heading of any level, so each script's text replaces only itself; a new `### ` subsection goes
    at the end of the `## Service` section."""
    heading = section.splitlines()[0]
    section = section.rstrip() + "\n"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    start = text.find(heading + "\n")
    if start >= 0:
        ends = [
            k for k in (text.find("\n## ", start + 1), text.find("\n### ", start + 1)) if k >= 0
        ]
        end = min(ends) + 1 if ends else len(text)
        text = text[:start] + section + ("\n" if end < len(text) else "") + text[end:]
    elif heading.startswith("### ") and "## Service\n" in text:
        service = text.find("## Service\n")
        end = text.find("\n## ", service + 1)
        end = end + 1 if end >= 0 else len(text)
        text = (
            text[:end].rstrip() + "\n\n" + section + ("\n" if end < len(text) else "") + text[end:]
        )
    else:
        prefix = "## Service\n\n" if heading.startswith("### ") else ""
        text = text.rstrip() + "\n\n" + prefix + section
    path.write_text(text.rstrip() + "\n")


if __name__ == "__main__":
    sys.exit(main())
