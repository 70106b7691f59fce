"""A projective model's corner confidence: read from its declared output, reported per stage and in
the response, and below min_corner_confidence the stage is the identity (no page found)."""

from __future__ import annotations

import numpy as np
import pytest
import service_testlib

from stn_align.service.config import ConfigError, ServiceConfig, load_config
from stn_align.service.pipeline import AlignOptions, Pipeline
from stn_align.service.servicer import response_from


@pytest.fixture(scope="module")
def confident_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("confident")
    # confidence = mean grey / 255; theta moves each corner inward by 0.2 * mean / 255
    service_testlib.build(directory / "doc-perspective.onnx", "projective", 32, 1, confidence=True)
    service_testlib.build(directory / "doc-rotation.onnx", "rotation", 32, 3)
    return directory


def _align(directory, threshold: float, grey: int, models=("doc-perspective",)):
    config = ServiceConfig(device="cpu", page_edges="none", min_corner_confidence=threshold)
    pipe = Pipeline.from_dir(str(directory), config)
    options = AlignOptions(models=list(models), encoding="png")
    try:
        result = pipe.align(np.full((60, 80, 3), grey, np.uint8), options)
        pipe.encode(result, options)
    finally:
        pipe.close()
    return result, options


def test_confidence_is_reported_in_the_result_and_the_response(confident_dir):
    result, options = _align(confident_dir, 0.5, 204)
    assert result.corner_confidence == pytest.approx(0.8, abs=0.01)
    assert np.abs(result.stages[0].theta).max() > 0.1  # kept: the model's crop
    reply = response_from("r", result, options)
    assert reply.HasField("corner_confidence") and reply.stages[0].HasField("corner_confidence")
    assert reply.corner_confidence == pytest.approx(0.8, abs=0.01)


def test_below_the_threshold_the_stage_is_the_identity(confident_dir):
    result, _ = _align(confident_dir, 0.5, 51, ("doc-perspective", "doc-rotation"))
    assert result.corner_confidence == pytest.approx(0.2, abs=0.01)
    np.testing.assert_array_equal(result.stages[0].theta, np.zeros(8))
    np.testing.assert_allclose(
        result.corners, [[-0.5, -0.5], [79.5, -0.5], [79.5, 59.5], [-0.5, 59.5]]
    )
    assert result.stages[1].corner_confidence is None  # rotation models have no corners


def test_models_without_a_confidence_leave_the_field_unset(model_dir, base_config):
    pipe = Pipeline.from_dir(str(model_dir), base_config)
    options = AlignOptions(models=["doc-perspective"], encoding="none")
    try:
        result = pipe.align(np.full((60, 80, 3), 100, np.uint8), options)
    finally:
        pipe.close()
    assert result.corner_confidence is None
    assert not response_from("r", result, options).HasField("corner_confidence")


def test_the_threshold_setting_is_checked():
    assert load_config({"STN_MIN_CORNER_CONFIDENCE": "0.3"}).min_corner_confidence == 0.3
    with pytest.raises(ConfigError, match="min_corner_confidence.*above 1"):
        load_config({"STN_MIN_CORNER_CONFIDENCE": "1.5"})
    with pytest.raises(ConfigError, match="min_corner_confidence"):
        load_config({"STN_MIN_CORNER_CONFIDENCE": "-0.1"})
