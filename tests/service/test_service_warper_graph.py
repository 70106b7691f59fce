"""The exported warper graphs (NAME.warp.onnx, from `stn export`) against OpenCV, through the
pipeline's graph backend with I/O binding: on the CPU here, on CUDA when a GPU is bound. Uses the
shipped models in exported/ or a development export in runs/dev/, and skips when neither exists
(these tests do not build the warper themselves: that needs torch)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from stn_align.service.config import ServiceConfig
from stn_align.service.models import CUDA
from stn_align.service.pipeline import AlignOptions, Pipeline

ROOT = Path(__file__).resolve().parents[2]


def _export_dir() -> Path:
    for candidate in (ROOT / "exported", ROOT / "runs" / "dev"):
        if list(candidate.glob("*.warp.onnx")):
            return candidate
    pytest.skip("no exported warper graphs in exported/ or runs/dev/ (run `stn export` first)")


def _image() -> np.ndarray:
    rng = np.random.default_rng(7)
    image = np.full((300, 220, 3), 240, np.uint8)
    image[40:260, 30:190] = rng.integers(0, 200, (220, 160, 3), dtype=np.uint8)
    return np.ascontiguousarray(image)


def _compare(device: str, want_cuda: bool = False) -> None:
    directory = _export_dir()
    names = sorted(p.name[: -len(".warp.onnx")] for p in directory.glob("*.warp.onnx"))
    config = ServiceConfig(model_dir=str(directory), models=",".join(names), device=device)
    graph = Pipeline.from_dir(str(directory), config.replace(warp="graph"))
    opencv = Pipeline.from_dir(str(directory), config.replace(warp="opencv"))
    try:
        if want_cuda and any(m.provider != CUDA for m in graph.models.values()):
            pytest.skip("no CUDA device bound (no GPU, or CUDA libraries missing)")
        for name in names:
            assert graph.warp_backend(graph.models[name]) == "graph"
            options = AlignOptions(models=[name], fill=128.0)
            a = graph.align(_image(), options)
            b = opencv.align(_image(), options)
            np.testing.assert_allclose(a.theta, b.theta, atol=1e-4)
            assert a.rectified.shape == b.rectified.shape
            diff = np.abs(a.rectified.astype(int) - b.rectified.astype(int))
            assert diff.max() <= 2 and diff.mean() < 0.05, (name, diff.max(), diff.mean())
    finally:
        graph.close()
        opencv.close()


def test_warper_graph_matches_opencv_on_cpu():
    _compare("cpu")


@pytest.mark.gpu
def test_warper_graph_on_cuda_with_io_binding_matches_opencv():
    _compare("auto", want_cuda=True)
