"""Localiser latency of several exported models of the same kind, timed in alternation on one real
page, so that a busy or throttled machine weighs on all of them alike. Prints each model's output
(the theta it gives: a check that they agree) and its median over the rounds.

    .venv/bin/python bench/localiser_alternating.py runs/v4/doc-rotation.onnx \
        exported/doc-rotation.onnx runs/along2/doc-rotation.onnx
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def cpu_options(threads: int):
    """ONNX Runtime session options: `threads` intra-op threads, errors-only logging."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    return options


def alternate(runs: list[tuple], rounds: int, calls: int) -> list[list[float]]:
    """(session, feed) pairs timed in turn, `calls` calls each a round -> per pair, the mean ms a
    call of each round. Taking turns makes a busy or throttled machine weigh on all alike."""
    times: list[list[float]] = [[] for _ in runs]
    for _ in range(rounds):
        for spent, (session, feed) in zip(times, runs, strict=True):
            start = time.perf_counter()
            for _ in range(calls):
                session.run(None, feed)
            spent.append((time.perf_counter() - start) / calls * 1000)
    return times


def main(argv: list[str] | None = None) -> int:
    import cv2
    import onnxruntime as ort

    from stn_align.core.preprocess import localiser_input, to_channels

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", help="ONNX localiser files (same input)")
    parser.add_argument("--page", default="../shared/data/documents/deskew-1.png")
    parser.add_argument("--size", type=int, default=768, help="localiser input (default 768)")
    parser.add_argument("--rounds", type=int, default=15, help="alternating rounds (default 15)")
    parser.add_argument("--calls", type=int, default=10, help="calls per model a round")
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads (default 2)")
    args = parser.parse_args(argv)
    options = cpu_options(args.threads)
    sessions = [
        ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        for path in args.models
    ]
    page = cv2.imread(args.page, cv2.IMREAD_COLOR)
    if page is None:
        print(f"error: cannot read {args.page}", file=sys.stderr)
        return 2
    x = localiser_input(to_channels(page[:, :, ::-1], 1), args.size, "letterbox", 0)[None]
    feeds = [{s.get_inputs()[0].name: x} for s in sessions]
    for path, session, feed in zip(args.models, sessions, feeds, strict=True):
        print(f"{path}: theta {np.round(session.run(None, feed)[0], 4).tolist()}")
    times = alternate(list(zip(sessions, feeds, strict=True)), args.rounds, args.calls)
    for path, spent in zip(args.models, times, strict=True):
        print(f"{path}: median {np.median(spent):.2f} ms a call over {args.rounds} rounds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
