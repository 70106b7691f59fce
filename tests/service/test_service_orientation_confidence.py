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
from stn_align.core.preprocess import quarters
from stn_align.service import orientation
from stn_align.service.config import ConfigError, ServiceConfig
from stn_align.service.pipeline import AlignOptions, BadOptions, Pipeline

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
    assert geometry.angle_degrees(orientation.hold(theta, np.array([0.4, 0.8]))) == pytest.approx(
        -7.0, abs=1e-4
    )
    assert geometry.angle_degrees(orientation.hold(theta, np.array([0.4, 0.2]))) == 0.0
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
    assert held.stages[0].read_again  # 0.6 is under second_read_below, 48 px over the input's 32


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
    assert all(x["read_again"] for x in lines)  # 48 px pages, over the tiny model's input
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


def test_quarters_are_the_four_corners_and_only_when_they_show_more():
    image = np.arange(200 * 100).reshape(200, 100, 1)
    crops = quarters(image, 32)
    assert [c.shape[:2] for c in crops] == [(110, 55)] * 4
    assert [int(c[0, 0, 0]) for c in crops] == [0, 45, 90 * 100, 90 * 100 + 45]
    assert int(crops[3][-1, -1, 0]) == int(image[-1, -1, 0])
    assert len(quarters(image, 199)) == 4
    assert quarters(image, 200) == []  # the first read's copy already shows every pixel


@pytest.mark.parametrize(
    "angles,confidences,turn",
    [
        ([10.0, 10.2, 9.8, 10.1, 10.0], [0.6] * 5, 0),  # all agree
        ([10.0, -80.0, -79.0, -81.0, 100.0], [0.6, 0.9, 0.9, 0.9, 0.5], 3),  # outvoted
        ([10.0, -80.0, 100.0, 190.0, 10.0], [0.99, 0.5, 0.5, 0.5, 0.6], 0),  # sure and alone
    ],
)
def test_the_vote(angles, confidences, turn):
    chosen, sure = orientation.vote(np.array(angles), np.array(confidences))
    assert chosen == turn
    assert 0.25 <= sure <= 1.0


def test_agreeing_unsure_reads_stay_unsure():
    assert orientation.vote(np.zeros(5), np.full(5, 0.6))[1] == pytest.approx(0.6)
    assert orientation.vote(np.zeros(5), np.full(5, 0.25))[1] == pytest.approx(0.25)


def test_read_again_turns_by_the_vote_and_keeps_the_first_skew(tmp_path):
    from stn_align.service.models import load_model

    model = load_model(confident_dir(tmp_path, 0.6, 0.9) / "doc-rotation.onnx", "cpu", 1)
    first = geometry.rotation_params(7.0)
    quarter = np.concatenate([geometry.rotation_params(-82.5), [0.9, 0.9]])
    seen = np.full((200, 200, 3), GREY, np.uint8)
    asked = []

    def localise(m, smalls):
        asked.extend(smalls)
        return [quarter] * len(smalls)

    theta, confidence, again = orientation.read_again(
        model, seen, first, np.array([0.6, 0.8]), 0.95, localise
    )
    assert again and len(asked) == 4 and asked[0].shape == (32, 32, 3)
    assert geometry.angle_degrees(theta) == pytest.approx(-83.0, abs=1e-3)
    assert confidence[0] > 0.6 and confidence[1] == pytest.approx(0.8)
    theta, _, again = orientation.read_again(
        model, seen, first, np.array([0.96, 0.8]), 0.95, localise
    )
    assert not again and geometry.angle_degrees(theta) == pytest.approx(7.0, abs=1e-3)


@pytest.mark.parametrize(
    "below,side,again", [(0.95, 200, True), (0.0, 200, False), (0.95, 32, False)]
)
def test_the_pipeline_reads_unsure_pages_again(tmp_path, below, side, again):
    folder = confident_dir(tmp_path, 0.6, 0.9)
    config = ServiceConfig(
        model_dir=str(folder), device="cpu", min_orientation_confidence=0.0,
        second_read_below=below,
    )  # fmt: skip
    pipe = Pipeline.from_dir(str(folder), config)
    try:
        image = np.full((side, side, 3), GREY, np.uint8)
        result = pipe.align(image, AlignOptions(encoding="none"))
    finally:
        pipe.close()
    assert result.stages[0].read_again is again
    assert result.angle == pytest.approx(ANGLE, abs=0.2)  # five reads of one grey agree
    assert result.orientation_confidence == pytest.approx(0.6, abs=1e-4)
