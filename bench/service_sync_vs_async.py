"""Sync (thread pool) vs asyncio gRPC servers for the service's kind of call, to choose one.

    .venv/bin/python -m bench.service_sync_vs_async [--runs 3] [--calls 96]

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
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import cv2
import grpc
import numpy as np

from bench.common import (
    ROOT,
    argument_parser,
    concurrent_calls,
    free_port,
    markdown_table,
    striped_page,
)

METHOD = "/bench.Echo/Decode"


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
    """The striped synthetic page as a JPEG, about a quarter of a megabyte."""
    return cv2.imencode(".jpg", striped_page(), [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()


def run_client(port: int, concurrency: int, calls: int, payload: bytes) -> tuple[float, float]:
    """(calls/s, p50 ms) of `calls` calls from `concurrency` threads on one channel."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        grpc.channel_ready_future(channel).result(timeout=30)
        call = channel.unary_unary(METHOD, _identity, _identity)
        rate, latencies = concurrent_calls(
            lambda data: call(data, timeout=60), [payload], concurrency, calls
        )
    return rate, statistics.median(latencies)


def main(argv: list[str] | None = None) -> int:
    parser = argument_parser(__file__, __doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--calls", type=int, default=96)
    parser.add_argument("--serve", choices=("sync", "async"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve == "sync":
        serve_sync(args.port)
        return 0
    if args.serve == "async":
        asyncio.run(serve_async(args.port))
        return 0
    payload = page()
    print(f"payload {len(payload)} bytes; {args.runs} runs of {args.calls} calls; medians")
    print(markdown_table(("server", "concurrency", "calls/s", "p50 ms"), [], "lrrr"))
    for kind in ("sync", "async"):
        port = free_port()
        cmd = [sys.executable, "-m", "bench.service_sync_vs_async", "--serve", kind]
        cmd += ["--port", str(port)]
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
