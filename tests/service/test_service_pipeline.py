"""The in-process pipeline: geometry of single models and chains, provider selection, GPU paths."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from service_testlib import expected_angle

from stn_align.core import geometry
from stn_align.core.preprocess import localiser_input
from stn_align.service import warp
from stn_align.service.imageio import ImageError
from stn_align.service.models import CUDA, ModelError, load_repository
from stn_align.service.pipeline import AlignOptions, BadOptions, Pipeline, UnknownModel


@pytest.fixture(scope="module")
def pipeline(model_dir, base_config):
    pipe = Pipeline.from_dir(str(model_dir), base_config)
    yield pipe
    pipe.close()


def _page(hw=(120, 160)) -> np.ndarray:
    rng = np.random.default_rng(3)
    image = np.full((*hw, 3), 230, np.uint8)
    image[20:-20, 30:-30] = rng.integers(0, 120, (hw[0] - 40, hw[1] - 60, 3), dtype=np.uint8)
    return image


def test_rectified_image_is_the_original_warped_once_by_the_matrix(pipeline):
    image = _page()
    result = pipeline.align(image, AlignOptions(models=["doc-perspective", "doc-rotation"]))
    expected = cv2.warpPerspective(
        image, result.matrix, result.out_hw[::-1], flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT, borderValue=(255, 255, 255),
    )  # fmt: skip
    np.testing.assert_array_equal(result.rectified, expected)


def test_chain_second_model_sees_the_first_models_output(pipeline):
    image = _page()
    result = pipeline.align(
        image, AlignOptions(models=["doc-perspective", "doc-rotation"], encoding="none")
    )
    first, second = result.stages
    assert result.rectified is None
    intermediate = warp.warp_matrix(image, first.matrix, first.out_hw)
    rot = pipeline.models["doc-rotation"]
    c = rot.contract
    small = localiser_input(intermediate, c.input_size, c.preprocess, c.letterbox_fill)
    # the pipeline warps straight to a reduced size; the localiser input agrees to resampling error
    assert second.angle == pytest.approx(expected_angle(small), abs=1.0)
    np.testing.assert_allclose(
        result.matrix, geometry.compose(first.matrix, second.matrix), atol=1e-9
    )
    np.testing.assert_allclose(result.corners, first.corners)  # first stage: original pixels


def test_rotation_default_size_and_requested_size(pipeline):
    image = np.full((50, 90, 3), 255, np.uint8)  # 63.5 degrees: output turns portrait
    result = pipeline.align(image, AlignOptions(models=["doc-rotation"]))
    assert result.out_hw == (90, 50) and result.rectified.shape == (90, 50, 3)
    sized = pipeline.align(image, AlignOptions(models=["doc-rotation"], out_hw=(20, 30)))
    assert sized.rectified.shape == (20, 30, 3)


def test_rotation_matrix_turns_content_by_the_reported_angle(pipeline):
    image = np.full((64, 64, 3), 148, np.uint8)  # 10 degrees counter-clockwise content
    result = pipeline.align(image, AlignOptions(models=["doc-rotation"], encoding="none"))
    assert result.angle == pytest.approx(10.0, abs=1e-3)
    # an output pixel to the right of centre samples the input up and to the right (content was
    # turned counter-clockwise, y down): its input y is above the centre row
    x, y, w = geometry.apply_matrix(result.matrix, np.array([[63.5, 31.5]]))[0].tolist() + [1]
    assert y < 31.5 and x < 63.5


def test_grey_input_and_raw_channels(pipeline):
    grey = np.full((40, 40), 128, np.uint8)
    result = pipeline.align(grey, AlignOptions(models=["doc-perspective"]))
    assert result.rectified.shape[2] == 1


def test_align_many_keeps_good_items_and_returns_errors(pipeline):
    ok = cv2.imencode(".png", _page())[1].tobytes()
    results = pipeline.align_many(
        [ok, b"junk", _page()], AlignOptions(models=["doc-rotation"]), workers=3
    )
    assert (
        results[0].encoded
        and isinstance(results[1], ImageError)
        and results[2].rectified is not None
    )


def test_unknown_model_and_no_default(model_dir, base_config):
    pipe = Pipeline.from_dir(
        str(model_dir), base_config.replace(models="doc-rotation,doc-perspective")
    )
    try:
        with pytest.raises(UnknownModel, match="doc-x"):
            pipe.resolve(["doc-rotation+doc-x"])
    finally:
        pipe.close()
    models = load_repository(model_dir, ["doc-rotation", "doc-perspective"], "cpu")
    pipe = Pipeline(models, base_config.replace(default_model=""))
    pipe.default_chain = []
    try:
        with pytest.raises(UnknownModel, match="default_model"):
            pipe.resolve(None)
    finally:
        pipe.close()


def test_repository_errors_name_the_problem(tmp_path, model_dir):
    with pytest.raises(ModelError, match="does not exist"):
        load_repository(tmp_path / "nowhere")
    with pytest.raises(ModelError, match="no models"):
        load_repository(tmp_path)
    with pytest.raises(ModelError, match="doc-missing"):
        load_repository(model_dir, ["doc-missing"], "cpu")
    (tmp_path / "broken.onnx").write_bytes(b"not onnx")
    with pytest.raises(ModelError, match="broken.onnx"):
        load_repository(tmp_path, None, "cpu")


def test_model_files_outside_the_contract_are_refused(tmp_path, model_dir):
    import onnx

    model = onnx.load(str(model_dir / "doc-rotation.onnx"))
    for version, message in (
        ("99", "contract_version '99' is newer"),
        (None, "no contract_version"),
    ):
        props = {p.key: p.value for p in model.metadata_props}
        if version is None:
            del props["contract_version"]
        else:
            props["contract_version"] = version
        del model.metadata_props[:]
        onnx.helper.set_model_props(model, props)
        onnx.save(model, str(tmp_path / "doc-rotation.onnx"))
        with pytest.raises(ModelError, match=f"doc-rotation.onnx: {message}"):
            load_repository(tmp_path, None, "cpu")


def test_chain_roles_from_the_contracts(pipeline):
    with pytest.raises(BadOptions, match="doc-perspective can only be first"):
        pipeline.resolve(["doc-rotation+doc-perspective"])
    assert [m.name for m in pipeline.resolve(["doc-perspective+doc-rotation"])] == [
        "doc-perspective",
        "doc-rotation",
    ]


def test_auto_device_reports_the_provider_actually_bound(model_dir):
    models = load_repository(model_dir, ["doc-rotation"], "auto")
    provider = models["doc-rotation"].provider
    assert provider == models["doc-rotation"].session.get_providers()[0]


def _cuda_binds(model_dir) -> bool:
    return load_repository(model_dir, ["doc-rotation"], "auto")["doc-rotation"].provider == CUDA


def test_require_gpu_fails_start_up_without_cuda(model_dir):
    if _cuda_binds(model_dir):
        pytest.skip("CUDA binds on this machine; the failure path cannot be shown")
    with pytest.raises(ModelError, match="require_gpu"):
        load_repository(model_dir, ["doc-rotation"], "auto", require_gpu=True)


@pytest.mark.gpu
def test_cuda_provider_binds_on_a_gpu(model_dir):
    if not _cuda_binds(model_dir):
        pytest.skip("no CUDA device bound (no GPU, or CUDA libraries missing)")
    models = load_repository(model_dir, ["doc-rotation"], "auto", require_gpu=True)
    assert models["doc-rotation"].provider == CUDA


def test_chained_small_copy_matches_a_full_resolution_warp(pipeline):
    """The second model's input is made from a reduced warp; it must show the same pixels as
    warping at full resolution and then shrinking."""
    rng = np.random.default_rng(5)
    blocks = rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)
    image = cv2.resize(blocks, (1200, 900), interpolation=cv2.INTER_NEAREST)  # 30 px blocks
    model = pipeline.models["doc-rotation"]
    stage_hw = (700, 1000)
    acc = geometry.pixel_matrix("rotation", geometry.rotation_params(8.0), (900, 1200), stage_hw)
    seen = pipeline._stage_image(model, image, acc, stage_hw, AlignOptions())
    ours = model.small_copy(seen)
    full = warp.warp_matrix(image, acc, stage_hw)
    c = model.contract
    reference = localiser_input(full, c.input_size, c.preprocess, c.letterbox_fill)
    diff = np.abs(ours.astype(int) - reference.astype(int))
    assert diff.mean() < 4, diff.mean()
