"""What one ONNX Runtime CPU GridSample (and a Gather) costs per output sample, by mode and by
where the grid points fall: the doc-rotation localiser's turned rows (a 768 x 192 grid over a
768 x 768 page) on their own, in a one-node graph, one thread.

    .venv/bin/python -m bench.gridsample_cost

Prints ms a page and ns an output sample for a rotation grid (bilinear and nearest), for grids
whose points all fall on one pixel or all outside the image (no memory traffic to speak of), and
for a Gather of as many elements.
"""

from __future__ import annotations

import math
import sys

import numpy as np

from bench.common import argument_parser, cpu_session, median_ms


def one_node_session(op: str, second_input_type: int, **attributes):
    """A graph of one `op` node with inputs x (float) and a second of the given TensorProto type."""
    # onnx builds graphs on the training side only; the serving install does not carry it.
    from onnx import TensorProto, helper

    node = helper.make_node(op, ["x", "i"], ["y"], **attributes)
    graph = helper.make_graph(
        [node],
        op,
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, None),
            helper.make_tensor_value_info("i", second_input_type, None),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 16)], ir_version=8)
    return cpu_session(model.SerializeToString(), 1)


def turned_rows_grid(batch: int, angle: float) -> np.ndarray:
    """The grid of skew.turned_rows for a 768 px page turned by `angle` radians, batch times."""
    # torch and the training package load only when the grid is made: `--help` stays quick.
    import torch

    from stn_align.training.documents.skew import ALONG, coords, rotation_grid

    pair = torch.tensor([[math.cos(angle), math.sin(angle)]]).repeat(batch, 1)
    grid = rotation_grid(pair[:, 0], pair[:, 1], coords(768 // ALONG), coords(768))
    return grid.numpy().astype(np.float32)


def main(argv: list[str] | None = None) -> int:
    parser = argument_parser(__file__, __doc__)
    parser.add_argument("--batch", type=int, default=2, help="pages a call (default 2)")
    parser.add_argument("--calls", type=int, default=70, help="calls timed (default 70)")
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    page = rng.random((args.batch, 1, 768, 768), dtype=np.float32)
    turned = turned_rows_grid(args.batch, 0.3)
    samples = turned.shape[1] * turned.shape[2]
    # Gather on the flattened pages, as many elements, sorted indices (as a rotation reads them).
    flat = np.sort(rng.integers(0, page.size, size=args.batch * samples))
    from onnx import TensorProto  # training side only, as in one_node_session

    cases = [
        ("GridSample bilinear", "rotation grid", "GridSample", "bilinear", page, turned),
        ("GridSample nearest", "rotation grid", "GridSample", "nearest", page, turned),
        (
            "GridSample bilinear",
            "every point on the centre",
            "GridSample",
            "bilinear",
            page,
            np.zeros_like(turned),
        ),
        (
            "GridSample bilinear",
            "every point outside",
            "GridSample",
            "bilinear",
            page,
            np.full_like(turned, 5.0),
        ),
        ("Gather", "as many elements", "Gather", None, page.reshape(-1), flat),
    ]
    print(f"{turned.shape[1]} x {turned.shape[2]} samples over a 768 x 768 page, one thread")
    for name, where, op, mode, x, second in cases:
        if op == "GridSample":
            session = one_node_session(op, TensorProto.FLOAT, mode=mode, align_corners=0)
        else:
            session = one_node_session(op, TensorProto.INT64, axis=0)
        feed = {"x": x, "i": second}
        ms = median_ms(lambda s=session, f=feed: s.run(None, f), args.calls)
        per_page = ms / args.batch
        print(
            f"{name:20s} {where:26s} {per_page:6.2f} ms a page {per_page * 1e6 / samples:5.1f} ns"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
