"""Orientation confidence: a rotation model that reports one (doc-rotation's `confidence` output)
has its page left unturned below the threshold (only its skew corrected when that part is sure,
nothing at all when not), and the confidence and the review flag reach the caller: the pipeline,
the gRPC response, `stn align` JSON and `stn rectify`'s manifest and summary."""

from __future__ import annotations

import json

import numpy as np
import pytest
import service_testlib

from stn_align.core import geometry
from stn_align.service.config import ConfigError, ServiceConfig
from stn_align.service.pipeline import AlignOptions, BadOptions, Pipeline, hold_orientation

# Mean grey 248: the tiny model says (248 - 128) / 2 = 60 degrees, whose skew part is -30.
GREY = 248
ANGLE, SKEW = 60.0, -30.0


def confident_dir(tmp_path, orientation: float, skew: float):
    folder = tmp_path / f"m-{orientation}-{skew}"
    folder.mkdir()
    service_testlib.build(folder / "doc-rotation.onnx", "rotation", confidence=(orientation, skew))
    return folder


def align(folder, threshold=None, config_threshold=0.0):
    config = ServiceConfig(
        model_dir=str(folder), device="cpu", min_orientation_confidence=config_threshold
    )
    pipe = Pipeline.from_dir(str(folder), config)
    try:
        image = np.full((48, 48, 3), GREY, np.uint8)
        return pipe.align(image, AlignOptions(encoding="none", min_confidence=threshold))
    finally:
        pipe.close()


@pytest.mark.parametrize(
    "orientation,skew,threshold,angle,review",
    [
        (0.95, 0.9, 0.9, ANGLE, False),  # sure: turned as the model says
        (0.6, 0.9, 0.9, SKEW, True),  # orientation unsure, skew sure: the skew only
        (0.3, 0.1, 0.9, 0.0, True),  # nothing sure (a blank page): left as it is
        (0.6, 0.9, 0.0, ANGLE, False),  # threshold 0: every answer stands
    ],
)
def test_low_confidence_leaves_the_orientation_alone(
    tmp_path, orientation, skew, threshold, angle, review
):
    result = align(confident_dir(tmp_path, orientation, skew), threshold)
    assert result.angle == pytest.approx(angle, abs=0.2)
    assert result.review is review
    assert result.orientation_confidence == pytest.approx(orientation)
    assert result.skew_confidence == pytest.approx(skew)
    assert result.stages[0].held is review


def test_the_setting_is_the_default_threshold(tmp_path):
    folder = confident_dir(tmp_path, 0.6, 0.9)
    assert align(folder, None, config_threshold=0.9).review
    assert not align(folder, None, config_threshold=0.5).review
    assert not align(folder, 0.5, config_threshold=0.9).review  # the request's wins


def test_models_without_a_confidence_are_never_held(model_dir):
    result = align(model_dir, 0.99)
    assert result.orientation_confidence is None and not result.review


def test_bad_thresholds_are_refused(tmp_path):
    with pytest.raises(BadOptions, match="min_confidence"):
        align(confident_dir(tmp_path, 0.6, 0.9), 1.5)
    with pytest.raises(ConfigError, match="min_orientation_confidence"):
        ServiceConfig().replace(min_orientation_confidence=2.0)


def test_hold_orientation_keeps_the_skew_part():
    theta = geometry.rotation_params(-97.0)
    assert geometry.angle_degrees(hold_orientation(theta, np.array([0.4, 0.8]))) == pytest.approx(
        -7.0, abs=1e-4
    )
    assert geometry.angle_degrees(hold_orientation(theta, np.array([0.4, 0.2]))) == 0.0
    assert geometry.skew_degrees(44.0) == pytest.approx(44.0)
    assert geometry.skew_degrees(46.0) == pytest.approx(-44.0)
    assert geometry.skew_degrees(-180.0) == pytest.approx(0.0)


def test_grpc_response_carries_the_confidence(tmp_path):
    from stn_align.service.client import AlignClient, make_request
    from stn_align.service.server import create_server

    folder = confident_dir(tmp_path, 0.6, 0.9)
    config = ServiceConfig(model_dir=str(folder), device="cpu", metrics_port=0, warmup_runs=0)
    handle, port = create_server("127.0.0.1:0", config)
    try:
        with AlignClient(f"127.0.0.1:{port}", timeout=30) as client:
            image = np.full((48, 48, 3), GREY, np.uint8)
            held = client.align(make_request(image, "a", encoding="none", min_confidence=0.9))
            kept = client.align(make_request(image, "b", encoding="none"))
    finally:
        handle.drain(0.0, 2.0)
    assert held.review and held.angle_degrees == pytest.approx(SKEW, abs=0.2)
    assert held.orientation_confidence == pytest.approx(0.6)
    assert held.skew_confidence == pytest.approx(0.9)
    assert not kept.review and kept.angle_degrees == pytest.approx(ANGLE, abs=0.2)


def test_align_json_and_rectify_manifest_list_the_pages_to_review(tmp_path, capsys):
    import cv2

    from stn_align.service.cli import main

    folder = confident_dir(tmp_path, 0.6, 0.9)
    pages = tmp_path / "in"
    pages.mkdir()
    for name in ("a.png", "b.png"):
        cv2.imwrite(str(pages / name), np.full((48, 48, 3), GREY, np.uint8))
    common = ["--local", "--model-dir", str(folder)]
    assert (
        main(["align", str(pages / "a.png"), "--no-output", *common, "--min-confidence", "0.9"])
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["review"] is True and out["orientation_confidence"] == pytest.approx(0.6)
    out_dir = tmp_path / "out"
    assert main(["rectify", str(pages), str(out_dir), *common, "--min-confidence", "0.9"]) == 0
    lines = [json.loads(x) for x in (out_dir / "manifest.jsonl").read_text().splitlines()]
    assert {x["input"] for x in lines if x["review"]} == {"a.png", "b.png"}
    assert all(x["orientation_confidence"] == pytest.approx(0.6) for x in lines)
    assert "2 left unturned for review" in capsys.readouterr().err
    assert (
        main(["rectify", str(pages), str(tmp_path / "out2"), *common, "--min-confidence", "0.5"])
        == 0
    )
    again = [json.loads(x) for x in (tmp_path / "out2" / "manifest.jsonl").read_text().splitlines()]
    assert not any(x["review"] for x in again)
    with pytest.raises(SystemExit):  # argparse refuses it, naming the flag
        main(["align", str(pages / "a.png"), *common, "--min-confidence", "1.5"])
    assert "--min-confidence: must be 0..1" in capsys.readouterr().err
