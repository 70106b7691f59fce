"""Helpers for the service tests: test images, a slow-session wrapper, and tiny localiser graphs
that honour the model contract (stn_align.core.contract), built with onnx.helper (no torch, no
training). Their theta depends on the mean grey level of the localiser's input, so tests can tell
which answer belongs to which image in a batch:

- rotation: angle = (mean - 128) / 2 degrees, theta = (cos, sin);
- projective: every corner moves inward by 0.2 * mean / 255 (a centred crop).

A rotation model built with `confidence=(orientation, skew)` also has doc-rotation's `confidence`
output, those two constants for every image.
"""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from stn_align.core.contract import ModelContract


def expected_angle(small: np.ndarray) -> float:
    return (float(small.astype(np.float32).mean()) - 128.0) / 2.0


def _const(name: str, value) -> onnx.NodeProto:
    return helper.make_node(
        "Constant", [], [name], value=numpy_helper.from_array(np.asarray(value), name)
    )


def build(
    path: Path,
    family: str,
    size: int = 32,
    channels: int = 3,
    confidence: bool | tuple[float, ...] = False,
) -> Path:
    """A test localiser. `confidence`: True adds a `confidence` output of one column, the image's
    mean / 255 (as a projective model's corner confidence); a tuple adds those constant columns
    for every image (as a rotation model's orientation and skew confidences)."""
    name = path.name[: -len(".onnx")]
    image = helper.make_tensor_value_info("image", TensorProto.UINT8, ["N", size, size, channels])
    nodes = [
        helper.make_node("Cast", ["image"], ["f"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["f"], ["mean"], axes=[1, 2, 3], keepdims=1),  # [N,1,1,1]
        _const("flat", np.array([-1, 1], dtype=np.int64)),
        helper.make_node("Reshape", ["mean", "flat"], ["m"]),  # [N, 1]
    ]
    if family == "rotation":
        params = 2
        nodes += [
            _const("c128", np.array(128.0, np.float32)),
            _const("k", np.array(math.pi / 360.0, np.float32)),  # half a degree per grey level
            helper.make_node("Sub", ["m", "c128"], ["d"]),
            helper.make_node("Mul", ["d", "k"], ["a"]),
            helper.make_node("Cos", ["a"], ["cos"]),
            helper.make_node("Sin", ["a"], ["sin"]),
            helper.make_node("Concat", ["cos", "sin"], ["theta"], axis=1),
        ]
    elif family == "projective":
        params = 8
        inward = np.array([1, 1, -1, 1, -1, -1, 1, -1], np.float32) * (0.2 / 255.0)
        nodes += [
            _const("inward", inward[None]),
            helper.make_node("Mul", ["m", "inward"], ["theta"]),
        ]
    else:
        raise ValueError(family)
    outputs = [helper.make_tensor_value_info("theta", TensorProto.FLOAT, ["N", params])]
    if confidence is True:
        nodes += [
            _const("c255", np.array(255.0, np.float32)),
            helper.make_node("Div", ["m", "c255"], ["confidence"]),
        ]
        outputs.append(helper.make_tensor_value_info("confidence", TensorProto.FLOAT, ["N", 1]))
    elif confidence:
        columns = len(confidence)
        nodes += [
            _const("sure", np.array([confidence], np.float32)),  # (1, K)
            _const("zero", np.array(0.0, np.float32)),
            helper.make_node("Mul", ["m", "zero"], ["z"]),  # (N, 1) zeros, for the batch axis
            helper.make_node("Add", ["z", "sure"], ["confidence"]),  # (N, K)
        ]
        outputs.append(
            helper.make_tensor_value_info("confidence", TensorProto.FLOAT, ["N", columns])
        )
    graph = helper.make_graph(nodes, name, [image], outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    contract = ModelContract(
        name=name,
        family=family,
        input_size=size,
        input_channels=channels,
        letterbox_fill=255,
        producer="tests/service/service_testlib.py",
        # as doc-perspective's: first in a chain, its corners snapped to the page's edges
        chain_role="first" if family == "projective" else "any",
        postprocess=("page_edges",) if family == "projective" else (),
        outputs=("theta", "confidence") if confidence else ("theta",),
    )
    helper.set_model_props(model, contract.to_metadata())
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def png(value: int = 200, hw=(64, 96), channels: int = 3, noise: bool = False) -> bytes:
    image = np.full((*hw, channels), value, np.uint8)
    if noise:
        image = np.random.default_rng(value).integers(0, 255, (*hw, channels), dtype=np.uint8)
    ok, buf = cv2.imencode(".png", image)
    assert ok
    return buf.tobytes()


class SlowSession:
    """Wraps an onnxruntime session so each localiser run takes `delay` seconds; counts images."""

    def __init__(self, session, delay: float):
        self.session, self.delay, self.images = session, delay, 0

    def run(self, outputs, feeds):
        time.sleep(self.delay)
        self.images += len(feeds["image"])
        return self.session.run(outputs, feeds)

    def __getattr__(self, name):
        return getattr(self.session, name)


class GatedSession:
    """Wraps an onnxruntime session so each localiser run waits for `gate` (at most `timeout` s),
    holding its calls in flight until a test lets them go; counts the images that arrived."""

    def __init__(self, session, timeout: float = 10.0):
        self.session, self.timeout = session, timeout
        self.gate = threading.Event()
        self.arrived = 0
        self._lock = threading.Lock()

    def run(self, outputs, feeds):
        with self._lock:
            self.arrived += len(feeds["image"])
        self.gate.wait(self.timeout)
        return self.session.run(outputs, feeds)

    def __getattr__(self, name):
        return getattr(self.session, name)


def gate(handle, model: str = "doc-rotation", timeout: float = 10.0) -> GatedSession:
    """Put a GatedSession in front of a served model."""
    m = handle.pipeline.models[model]
    m.session = GatedSession(m.session, timeout)
    return m.session


def wait_until(condition, timeout: float = 10.0, step: float = 0.02) -> bool:
    """Poll `condition` until it holds or `timeout` passes; returns whether it held."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return bool(condition())
