"""Sync (thread pool) vs asyncio gRPC servers for the service's kind of call, to choose one.

    .venv/bin/python bench/service_sync_vs_async.py [--runs 3] [--calls 96]

Each call sends a ~1-megapixel JPEG page (about 0.3 MB), the server decodes it with OpenCV (work
that releases the GIL, like the real pipeline's decode, ONNX Runtime and warp) and returns the
decoded pixels' first megabyte. The sync server runs handlers on a thread pool; the asyncio server
hands the decode to a thread pool with run_in_executor (running it on the event loop would
serialise every call). The server runs in a child process; this process is the client (threads).
Prints calls/s and p50 latency at concurrency 1, 8 and 32, medians over --runs.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import grpc
import numpy as np

METHOD = "/bench.Echo/Decode"
ROOT = Path(__file__).resolve().parents[1]


def decode(data: bytes) -> bytes:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "not an image"
    return image.tobytes()[: 1 << 20]


def _identity(x: bytes) -> bytes:
    return x


def serve_sync(port: int) -> None:
    handler = grpc.unary_unary_rpc_method_handler(
        lambda req, ctx: decode(req), _identity, _identity
    )
    service = grpc.method_handlers_generic_handler("bench.Echo", {"Decode": handler})
    server = grpc.server(ThreadPoolExecutor(32), handlers=(service,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    server.wait_for_termination()


async def serve_async(port: int) -> None:
    pool = ThreadPoolExecutor(32)

    async def handle(request: bytes, context) -> bytes:
        return await asyncio.get_running_loop().run_in_executor(pool, decode, request)

    handler = grpc.unary_unary_rpc_method_handler(handle, _identity, _identity)
    service = grpc.method_handlers_generic_handler("bench.Echo", {"Decode": handler})
    server = grpc.aio.server(handlers=(service,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


def page() -> bytes:
    rng = np.random.default_rng(0)
    image = np.full((1155, 866, 3), 245, np.uint8)
    for y in range(80, 1080, 28):
        image[y : y + 10, 70:800] = rng.integers(0, 90, (10, 730, 3), dtype=np.uint8)
    return cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()


def run_client(port: int, concurrency: int, calls: int, payload: bytes) -> tuple[float, float]:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        grpc.channel_ready_future(channel).result(timeout=30)
        call = channel.unary_unary(METHOD, _identity, _identity)
        latencies: list[float] = []

        def one(_):
            started = time.perf_counter()
            call(payload, timeout=60)
            latencies.append(time.perf_counter() - started)

        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(one, range(concurrency)))
            latencies.clear()
            started = time.perf_counter()
            list(pool.map(one, range(calls)))
            wall = time.perf_counter() - started
    return calls / wall, statistics.median(latencies) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--calls", type=int, default=96)
    parser.add_argument("--serve", choices=("sync", "async"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve == "sync":
        serve_sync(args.port)
        return 0
    if args.serve == "async":
        asyncio.run(serve_async(args.port))
        return 0
    payload = page()
    print(f"payload {len(payload)} bytes; {args.runs} runs of {args.calls} calls; medians")
    print("| server | concurrency | calls/s | p50 ms |\n|---|---:|---:|---:|")
    for kind in ("sync", "async"):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        cmd = [sys.executable, __file__, "--serve", kind, "--port", str(port)]
        server = subprocess.Popen(cmd, cwd=ROOT)
        try:
            for c in (1, 8, 32):
                results = [run_client(port, c, args.calls, payload) for _ in range(args.runs)]
                rate = statistics.median(r[0] for r in results)
                p50 = statistics.median(r[1] for r in results)
                print(f"| {kind} | {c} | {rate:.1f} | {p50:.1f} |")
        finally:
            server.terminate()
            server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
