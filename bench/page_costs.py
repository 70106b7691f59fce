"""Where a page's CPU time goes: a localiser's ONNX Runtime profile, summed by op type (and by
module for the learned readers), and the pipeline's steps outside the graph (grey copy, resize to
the localiser's input, warp of the full page), single-threaded, on the throughput benchmark's
1-megapixel page.

    .venv/bin/python -m bench.page_costs exported/doc-rotation.onnx --batch 4

All figures are milliseconds a page.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

from bench.common import argument_parser, cpu_options, cpu_session, median_ms, turned_page
from stn_align.core.preprocess import localiser_input, to_channels
from stn_align.service import warp


def graph_costs(path: str, x: np.ndarray, calls: int) -> dict[str, float]:
    """{op type, or module for nodes under /localiser/<module>/: ms a page}, from a profile."""
    options = cpu_options(1)
    with tempfile.TemporaryDirectory() as tmp:
        options.enable_profiling = True
        options.profile_file_prefix = os.path.join(tmp, "profile")
        session = cpu_session(path, 1, options)
        feed = {session.get_inputs()[0].name: x}
        for _ in range(calls):
            session.run(None, feed)
        events = json.loads(Path(session.end_profiling()).read_text())
    costs: dict[str, float] = {}
    for event in events:
        if event.get("cat") != "Node" or not event["name"].endswith("_kernel_time"):
            continue
        parts = event["name"].split("/")
        key = parts[2] if len(parts) > 3 else event["args"]["op_name"]
        costs[key] = costs.get(key, 0.0) + event["dur"] / 1000 / calls / len(x)
    return costs


def main(argv: list[str] | None = None) -> int:
    # The training side reads the metadata with onnx, which the serving install does not carry.
    from stn_align.training.export import read_metadata

    parser = argument_parser(__file__, __doc__)
    parser.add_argument("model", help="localiser ONNX file")
    parser.add_argument("--batch", type=int, default=4, help="pages a localiser call (default 4)")
    parser.add_argument("--calls", type=int, default=20, help="calls timed (default 20)")
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)
    meta = read_metadata(args.model)
    size, channels = int(meta["input_size"]), int(meta["input_channels"])
    page = turned_page()
    grey = to_channels(page, channels)
    small = localiser_input(grey, size, meta["preprocess"], int(meta["letterbox_fill"]))
    turn = np.array([[0.99, -0.12, 60.0], [0.12, 0.99, -50.0], [0.0, 0.0, 1.0]])
    outside = {
        "grey copy": median_ms(lambda: to_channels(page, channels), args.calls),
        "resize to the localiser's input": median_ms(
            lambda: localiser_input(grey, size, meta["preprocess"], int(meta["letterbox_fill"])),
            args.calls,
        ),
        "warp of the page": median_ms(
            lambda: warp.warp_matrix(page, turn, page.shape[:2], "linear", "constant", 255.0),
            args.calls,
        ),
    }
    inside = graph_costs(args.model, np.repeat(small[None], args.batch, 0), args.calls)
    print(f"page {page.shape[1]}x{page.shape[0]}, {args.model} at batch {args.batch}, one thread")
    print(f"localiser, all nodes: {sum(inside.values()):.2f}")
    for key, value in sorted(inside.items(), key=lambda kv: -kv[1])[:12]:
        print(f"  {key}: {value:.2f}")
    for key, value in outside.items():
        print(f"{key}: {value:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
