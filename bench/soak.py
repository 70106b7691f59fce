"""Soak test: mixed traffic at a fixed rate against a server in a child process (not run in CI).

    .venv/bin/python -m bench.soak --model-dir exported --minutes 15 --rate 6 [--out runs/soak.md]

The server is `python -m stn_align.service.commands serve` on a free loopback port (its log goes
to --server-log). Calls start on a fixed schedule (open loop: a slow call does not slow the
offered rate), each one of these kinds, drawn with fixed weights from a seeded generator:

- page: Align of a ~1 MP page (PNG or JPEG in, the same format out);
- raw: the same page with RAW output;
- large: Align of a ~12 MP page;
- stream: AlignStream of 8 pages, one of them corrupt (its error is expected);
- bad: Align of corrupt bytes (INVALID_ARGUMENT expected);
- cancel: Align cancelled by the client after 30 ms (CANCELLED expected, or OK if it was quicker);
- deadline: Align with a 20 ms deadline (DEADLINE_EXCEEDED expected, or OK);
- chain: doc-perspective+doc-rotation, when both models are loaded.

Every minute it prints one row: calls started and finished, p50/p99 latency of the successful
page calls, the slowest health check, status codes (expected ones apart from the rest), and the
server's resident memory (VmRSS from /proc). At the end, a markdown table and the RSS growth over
the second half of the run. "Levels off" means RSS grew less than 5% over the second half.
"""

from __future__ import annotations

import collections
import os
import platform
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import grpc
import numpy as np

from bench.common import (
    ROOT,
    argument_parser,
    cpu_name,
    free_port,
    read_rgb,
    striped_page,
    to_megapixel,
)
from bench.service_bench import encode
from stn_align.service.client import AlignClient, make_request

WEIGHTS = {"page": 40, "raw": 8, "large": 4, "stream": 12, "bad": 10, "cancel": 8,
           "deadline": 8, "chain": 10}  # fmt: skip
EXPECTED = {"bad": {"INVALID_ARGUMENT"}, "cancel": {"CANCELLED"},
            "deadline": {"DEADLINE_EXCEEDED"}}  # fmt: skip
LATENCY_KINDS = ("page", "raw", "chain")  # the ~1 MP unary calls that latency is reported for


class Log:
    """Outcomes of finished calls, by minute of their start."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.rows: dict[int, dict] = collections.defaultdict(
            lambda: {
                "started": 0,
                "done": 0,
                "ms": [],
                "codes": collections.Counter(),
                "unexpected": collections.Counter(),
                "health_ms": 0.0,
            }  # fmt: skip
        )

    def started(self, minute: int) -> None:
        with self.lock:
            self.rows[minute]["started"] += 1

    def done(self, minute: int, kind: str, code: str, ms: float) -> None:
        with self.lock:
            row = self.rows[minute]
            row["done"] += 1
            row["codes"][code] += 1
            if code != "OK" and code not in EXPECTED.get(kind, ()):
                row["unexpected"][f"{kind}:{code}"] += 1
            if code == "OK" and kind in LATENCY_KINDS:
                row["ms"].append(ms)

    def health(self, minute: int, ms: float) -> None:
        with self.lock:
            row = self.rows[minute]
            row["health_ms"] = max(row["health_ms"], ms)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_server(args, port: int) -> subprocess.Popen:
    env = {**os.environ, "STN_MODEL_DIR": args.model_dir, "STN_ADDRESS": f"127.0.0.1:{port}",
           "STN_METRICS_PORT": "0", "STN_LOG_LEVEL": "WARNING", "STN_DEVICE": args.device,
           "STN_DRAIN_DELAY_S": "0"}  # fmt: skip
    log = open(args.server_log, "w")  # noqa: SIM115 - the child writes it until it stops
    proc = subprocess.Popen(
        [sys.executable, "-m", "stn_align.service.commands", "serve"],
        cwd=ROOT, env=env, stderr=log,
    )  # fmt: skip
    with AlignClient(f"127.0.0.1:{port}") as client:
        deadline = time.monotonic() + 180
        while True:
            try:
                if client.health(timeout=1) == "SERVING":
                    return proc
            except grpc.RpcError:  # not listening yet
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start; see {args.server_log}")
            time.sleep(0.5)


def soak_pages(count: int = 4) -> list[np.ndarray]:
    """A few upright pages from ../shared/data/pages (the training pages, not the test set),
    each about one megapixel, RGB; a synthetic striped page when they are absent."""
    directory = ROOT.parent / "shared" / "data" / "pages"
    files = sorted(p for p in directory.glob("*") if p.suffix in (".png", ".jpg"))[::60][:count]
    return [to_megapixel(read_rgb(f)) for f in files] or [striped_page()]


def payloads() -> dict[str, list]:
    small = soak_pages()
    large = [cv2.resize(im, None, fx=3.5, fy=3.5, interpolation=cv2.INTER_CUBIC) for im in small]
    return {
        "png": [encode(im, "png") for im in small],
        "jpeg": [encode(im, "jpeg") for im in small],
        "large": [encode(im, "jpeg") for im in large[:2]],
        "bad": [b"", b"not an image", encode(small[0], "png")[:5000]],
    }


class Traffic:
    def __init__(self, client: AlignClient, data: dict, chain_ok: bool, seed: int) -> None:
        self.client, self.data, self.chain_ok = client, data, chain_ok
        self.rng = np.random.default_rng(seed)
        self.lock = threading.Lock()

    def pick(self) -> tuple[str, int]:
        kinds = [k for k in WEIGHTS if k != "chain" or self.chain_ok]
        weights = np.array([WEIGHTS[k] for k in kinds], float)
        with self.lock:
            kind = str(self.rng.choice(kinds, p=weights / weights.sum()))
            return kind, int(self.rng.integers(1 << 30))

    def call(self, kind: str, n: int) -> str:
        fmt = "png" if n % 2 else "jpeg"
        page = self.data[fmt][n % len(self.data[fmt])]
        if kind in ("page", "raw", "chain"):
            model = "doc-perspective+doc-rotation" if kind == "chain" else None
            out = "raw" if kind == "raw" else fmt
            self.client.align(make_request(page, f"{kind}-{n}", model, encoding=out), timeout=60)
        elif kind == "large":
            large = self.data["large"][n % len(self.data["large"])]
            self.client.align(make_request(large, encoding="jpeg"), timeout=120)
        elif kind == "bad":
            self.client.align(self.data["bad"][n % 3], timeout=30)
        elif kind == "deadline":
            self.client.align(make_request(page, encoding=fmt), timeout=0.02)
        elif kind == "cancel":
            future = self.client.stub().Align.future(make_request(page, encoding=fmt), timeout=30)
            time.sleep(0.03)
            future.cancel()
            future.result()
        elif kind == "stream":
            requests = [make_request(page if i != 3 else b"corrupt", f"s{n}-{i}", encoding=fmt)
                        for i in range(8)]  # fmt: skip
            replies = list(self.client.align_stream(requests, timeout=120))
            bad = [r.error.code_name for r in replies if r.HasField("error")]
            if len(replies) != 8 or bad != ["INVALID_ARGUMENT"]:
                return f"STREAM_ITEMS({len(replies)},{','.join(bad)})"
        return "OK"


def run(args) -> int:
    data = payloads()
    port = free_port()
    server = start_server(args, port)
    log = Log()
    started = time.monotonic()
    end = started + args.minutes * 60
    rss: dict[int, float] = {}
    with AlignClient(f"127.0.0.1:{port}") as client:
        models = {m.name for m in client.list_models().models}
        traffic = Traffic(client, data, {"doc-perspective", "doc-rotation"} <= models, args.seed)
        pool = ThreadPoolExecutor(args.max_outstanding)
        stop = threading.Event()

        def one(kind: str, n: int, minute: int) -> None:
            t = time.perf_counter()
            try:
                code = traffic.call(kind, n)
            except grpc.FutureCancelledError:
                code = "CANCELLED"
            except grpc.RpcError as exc:
                code = exc.code().name
            except Exception as exc:  # a client-side failure is an outcome too
                code = f"CLIENT_{type(exc).__name__}"
            log.done(minute, kind, code, (time.perf_counter() - t) * 1000)

        def probe_health() -> None:  # what a load balancer sees, twice a second
            while not stop.wait(0.5):
                t = time.perf_counter()
                try:
                    client.health(timeout=2)
                    ms = (time.perf_counter() - t) * 1000
                except grpc.RpcError:
                    ms = float("inf")
                log.health(int((time.monotonic() - started) // 60), ms)

        threading.Thread(target=probe_health, daemon=True).start()
        next_at, minute_printed = started, -1
        print("minute | started | done | p50 ms | p99 ms | health max ms | RSS MB | codes",
              file=sys.stderr)  # fmt: skip
        while time.monotonic() < end:
            now = time.monotonic()
            minute = int((now - started) // 60)
            if minute != minute_printed and minute > 0:
                rss[minute - 1] = rss_mb(server.pid)
                print(row_text(minute - 1, log.rows[minute - 1], rss[minute - 1]), file=sys.stderr)
                minute_printed = minute
            if now < next_at:
                time.sleep(min(next_at - now, 0.05))
                continue
            next_at += 1.0 / args.rate
            kind, n = traffic.pick()
            log.started(minute)
            pool.submit(one, kind, n, minute)
        pool.shutdown(wait=True)
        stop.set()
        last = int(args.minutes) - 1 if args.minutes >= 1 else 0
        rss[last] = rss_mb(server.pid)
        print(row_text(last, log.rows[last], rss[last]), file=sys.stderr)
    server.send_signal(signal.SIGTERM)
    server.wait(timeout=120)
    report = render(args, log, rss, server.returncode)
    print(report)
    if args.out:
        Path(args.out).write_text(report)
    return 0


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def codes_text(row: dict) -> str:
    codes = ", ".join(f"{c} {k}" for k, c in sorted(row["codes"].items()))
    unexpected = sum(row["unexpected"].values())
    return f"{codes}; unexpected {unexpected}" + (
        f" ({', '.join(f'{k} {c}' for k, c in row['unexpected'].most_common(4))})"
        if unexpected
        else ""
    )


def row_text(minute: int, row: dict, rss: float) -> str:
    return (f"| {minute + 1} | {row['started']} | {row['done']} | {pct(row['ms'], 50):.0f} | "
            f"{pct(row['ms'], 99):.0f} | {row['health_ms']:.0f} | {rss:.0f} | "
            f"{codes_text(row)} |")  # fmt: skip


def render(args, log: Log, rss: dict[int, float], exit_status: int | None) -> str:
    minutes = sorted(rss)
    half = minutes[len(minutes) // 2] if minutes else 0
    growth = (rss[minutes[-1]] - rss[half]) / rss[half] * 100 if minutes else float("nan")
    if len(minutes) < 4:
        verdict = "too short a run to judge"
    else:
        verdict = "levels off" if growth < 5 else "still growing"
    lines = [
        "## Soak",
        "",
        f"Command: `.venv/bin/python -m bench.soak --model-dir {args.model_dir} "
        f"--minutes {args.minutes:g} --rate {args.rate:g} --seed {args.seed}`  ",
        f"Machine: {os.cpu_count()} CPU cores ({cpu_name()}); Python {platform.python_version()}; "
        f"load average {os.getloadavg()[0]:.1f} at the end. Mix (weights): "
        + ", ".join(f"{k} {w}" for k, w in WEIGHTS.items())
        + ".",  # fmt: skip
        "",
        "| minute | calls started | calls done | p50 ms | p99 ms | slowest health check ms | "
        "server RSS MB | status codes |",
        "|---:|---:|---:|---:|---:|---:|---:|---|",
        *(row_text(m, log.rows[m], rss[m]) for m in minutes),
        "",
        f"RSS from minute {half + 1} to minute {minutes[-1] + 1 if minutes else 0}: "
        f"{growth:+.1f}% ({verdict}). Server exit status "
        f"after SIGTERM: {exit_status}. p50/p99: successful ~1 MP unary calls "
        f"({', '.join(LATENCY_KINDS)}).",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argument_parser(__file__, __doc__)
    parser.add_argument("--model-dir", default="exported")
    parser.add_argument("--minutes", type=float, default=15.0)
    parser.add_argument("--rate", type=float, default=6.0, help="calls started per second")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument(
        "--max-outstanding", type=int, default=64, help="client threads (calls in flight at most)"
    )
    parser.add_argument("--server-log", default=str(ROOT / "runs" / "soak-server.log"))
    parser.add_argument("--out", default="", help="also write the markdown report here")
    args = parser.parse_args(argv)
    Path(args.server_log).parent.mkdir(parents=True, exist_ok=True)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
