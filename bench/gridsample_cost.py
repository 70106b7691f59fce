"""What one ONNX Runtime CPU GridSample costs per output sample, by mode and by where the grid
points fall: the doc-rotation localiser's turned rows (a 768 x 192 grid over a 768 x 768 page) on
their own, in a one-node graph, one thread.

    .venv/bin/python bench/gridsample_cost.py

Prints ms a page and ns an output sample for a rotation grid (bilinear and nearest) and for grids
whose points all fall on one pixel or all outside the image (no memory traffic to speak of).
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import numpy as np


def one_node_session(mode: str):
    import onnxruntime as ort
    from onnx import TensorProto, helper

    node = helper.make_node("GridSample", ["x", "grid"], ["y"], mode=mode, align_corners=0)
    graph = helper.make_graph(
        [node],
        "grid_sample",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, None),
            helper.make_tensor_value_info("grid", TensorProto.FLOAT, None),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 16)], ir_version=8)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), options, ["CPUExecutionProvider"])


def rotation_grid(batch: int, rows: int, cols: int, angle: float) -> np.ndarray:
    xs = (np.arange(cols) * 2 + 1) / cols - 1
    ys = (np.arange(rows) * 2 + 1) / rows - 1
    x, y = np.meshgrid(xs, ys)
    c, s = math.cos(angle), math.sin(angle)
    grid = np.stack([c * x + s * y, c * y - s * x], -1)[None]
    return np.repeat(grid, batch, 0).astype(np.float32)


def median_ms(session, feed: dict, calls: int, rounds: int) -> float:
    session.run(None, feed)
    spent = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            session.run(None, feed)
        spent.append((time.perf_counter() - start) / calls * 1000)
    return float(np.median(spent))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=2, help="pages a call (default 2)")
    parser.add_argument("--rounds", type=int, default=7, help="rounds, median taken (default 7)")
    parser.add_argument("--calls", type=int, default=10, help="calls a round (default 10)")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    page = rng.random((args.batch, 1, 768, 768), dtype=np.float32)
    turned = rotation_grid(args.batch, 768, 192, 0.3)
    cases = [
        ("bilinear", "rotation grid", turned),
        ("nearest", "rotation grid", turned),
        ("bilinear", "every point on the centre", np.zeros_like(turned)),
        ("bilinear", "every point outside", np.full_like(turned, 5.0)),
    ]
    samples = turned.shape[1] * turned.shape[2]
    print(f"GridSample, {turned.shape[1]} x {turned.shape[2]} grid over 768 x 768, one thread")
    for mode, where, grid in cases:
        ms = median_ms(one_node_session(mode), {"x": page, "grid": grid}, args.calls, args.rounds)
        per_page = ms / args.batch
        print(f"{mode:8s} {where:26s} {per_page:6.2f} ms a page {per_page * 1e6 / samples:5.1f} ns")
    return 0


if __name__ == "__main__":
    sys.exit(main())
