"""Localiser latency of several exported models of the same kind, timed in alternation on one real
page, so that a busy or throttled machine weighs on all of them alike. Prints each model's output
(the theta it gives: a check that they agree) and its median over the rounds.

    .venv/bin/python -m bench.localiser_alternating runs/old/doc-rotation.onnx \
        exported/doc-rotation.onnx --threads 1
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from bench.common import DOCUMENTS, alternate, argument_parser, cpu_session, read_rgb
from stn_align.core.preprocess import localiser_input, to_channels


def main(argv: list[str] | None = None) -> int:
    parser = argument_parser(__file__, __doc__)
    parser.add_argument("models", nargs="+", help="ONNX localiser files (same input)")
    parser.add_argument("--page", default=str(DOCUMENTS / "deskew-1.png"), help="page image")
    parser.add_argument("--size", type=int, default=768, help="localiser input (default 768)")
    parser.add_argument("--rounds", type=int, default=15, help="alternating rounds (default 15)")
    parser.add_argument("--calls", type=int, default=10, help="calls per model a round")
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads (default 2)")
    args = parser.parse_args(argv)
    try:
        page = read_rgb(Path(args.page))
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    sessions = [cpu_session(path, args.threads) for path in args.models]
    x = localiser_input(to_channels(page, 1), args.size, "letterbox", 0)[None]
    feeds = [{s.get_inputs()[0].name: x} for s in sessions]
    for path, session, feed in zip(args.models, sessions, feeds, strict=True):
        print(f"{path}: theta {np.round(session.run(None, feed)[0], 4).tolist()}")
    times = alternate(list(zip(sessions, feeds, strict=True)), args.rounds, args.calls)
    for path, spent in zip(args.models, times, strict=True):
        print(f"{path}: median {np.median(spent):.2f} ms a call over {args.rounds} rounds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
