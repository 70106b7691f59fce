"""ONNX export: parity with PyTorch, dynamic batch, the op allow-list, metadata."""

from __future__ import annotations

import json

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from stn_align.core import geometry
from stn_align.training.build import build_transformer
from stn_align.training.config import ModelConfig
from stn_align.training.export import CUDA_OPS, export_model, graph_ops, read_metadata


def perturbed(cfg: ModelConfig):
    """A model whose head is not at the identity, so parity covers real outputs."""
    torch.manual_seed(0)
    stn = build_transformer(cfg)
    head = [m for m in stn.localiser.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        head.weight.normal_(0, 0.02)
    for m in stn.modules():  # non-trivial BatchNorm statistics
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return stn.eval()


@pytest.mark.parametrize(
    ("family", "localiser", "channels"),
    [
        ("affine", "svhn", 1),
        ("rotation", "conv", 1),
        ("similarity", "fc", 3),
        ("attention", "fc", 1),
        ("projective", "conv", 3),
        ("tps", "fc", 1),
    ],
)
def test_export_parity_ops_and_metadata(tmp_path, family, localiser, channels):
    cfg = ModelConfig(family=family, localiser=localiser, input_size=32, channels=channels)
    stn = perturbed(cfg)
    report = export_model(stn, tmp_path / "m.onnx", input_channels=3, metrics={"val_loss": 0.5})
    assert report["localiser_max_abs_diff"] < 1e-4
    assert report["warper_max_grey_diff"] <= 1
    for path in (tmp_path / "m.onnx", tmp_path / "m.warp.onnx"):
        onnx.checker.check_model(str(path))
        ops = graph_ops(path)
        assert "AffineGrid" not in ops and "Inverse" not in ops
        assert ops <= CUDA_OPS
        assert "GridSample" in ops or path.name == "m.onnx"
        assert 17 <= onnx.load(str(path)).opset_import[0].version <= 20
    meta = read_metadata(tmp_path / "m.onnx")
    assert meta["family"] == family and meta["input_size"] == "32"
    assert meta["input_channels"] == "3" and meta["input_dtype"] == "uint8"
    assert meta["preprocess"] == geometry.preprocess_mode(family)
    assert meta["param_count"] == str(geometry.param_count(family))
    assert json.loads(meta["metrics"]) == {"val_loss": 0.5}
    assert "align_corners=False" in meta["convention"]


def test_localiser_graph_has_a_dynamic_batch(tmp_path):
    stn = perturbed(ModelConfig(family="rotation", localiser="conv", input_size=32))
    export_model(stn, tmp_path / "r.onnx", input_channels=3)
    session = ort.InferenceSession(str(tmp_path / "r.onnx"), providers=["CPUExecutionProvider"])
    images = np.random.default_rng(0).integers(0, 256, (7, 32, 32, 3), dtype=np.uint8)
    batched = session.run(["theta"], {"image": images})[0]
    singles = np.concatenate([session.run(["theta"], {"image": im[None]})[0] for im in images])
    assert batched.shape == (7, 2)
    np.testing.assert_allclose(batched, singles, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)


def test_warper_graph_matches_the_numpy_convention_and_opencv(tmp_path, documents_dir):
    """The exported warper and geometry.pixel_matrix + cv2 warp the same real page alike."""
    stn = build_transformer(ModelConfig(family="rotation", localiser="fc", input_size=16))
    export_model(stn, tmp_path / "r.onnx", input_channels=3)
    session = ort.InferenceSession(
        str(tmp_path / "r.warp.onnx"), providers=["CPUExecutionProvider"]
    )
    image = cv2.cvtColor(cv2.imread(str(documents_dir / "skew.png")), cv2.COLOR_BGR2RGB)
    image = cv2.resize(image, (300, 400), interpolation=cv2.INTER_AREA)
    theta = geometry.rotation_params(-1.89 + 90)
    out_hw = (300, 400)
    got = session.run(
        ["rectified"],
        {
            "image": image[None],
            "theta": theta[None],
            "out_size": np.array(out_hw),
            "fill": np.array([255.0], np.float32),
        },
    )[0][0]
    m = geometry.pixel_matrix("rotation", theta, image.shape[:2], out_hw)
    want = cv2.warpPerspective(
        image,
        m,
        (out_hw[1], out_hw[0]),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(255, 255, 255),
    )
    assert got.shape == want.shape
    diff = np.abs(got.astype(int) - want.astype(int))[3:-3, 3:-3]
    assert diff.mean() < 1.0


def test_float_input_graph(tmp_path):
    stn = perturbed(ModelConfig(family="affine", localiser="fc", input_size=16))
    report = export_model(stn, tmp_path / "f.onnx", input_channels=3, input_dtype="float32")
    assert report["localiser_max_abs_diff"] < 1e-4
    assert read_metadata(tmp_path / "f.onnx")["input_dtype"] == "float32"
    session = ort.InferenceSession(str(tmp_path / "f.onnx"), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].type == "tensor(float)"


def test_export_rejects_bad_requests(tmp_path):
    stn = build_transformer(ModelConfig(family="affine", localiser="fc", input_size=16, channels=3))
    with pytest.raises(ValueError, match="NAME.onnx"):
        export_model(stn, tmp_path / "m.pt")
    with pytest.raises(ValueError, match="cannot feed a 3-channel model"):
        export_model(stn, tmp_path / "m.onnx", input_channels=1)
    with pytest.raises(ValueError, match="input_dtype must be"):
        export_model(stn, tmp_path / "m.onnx", input_dtype="float16")


def test_normalise_matches_its_definition():
    from stn_align.training.model import Normalise

    x = torch.arange(256, dtype=torch.uint8).reshape(1, 1, 16, 16)
    for mean, std in ((0.5, 0.5), (0.1307, 0.3081)):
        want = (x.double() / 255.0 - mean) / std
        assert float((Normalise(mean, std)(x).double() - want).abs().max()) < 1e-6
