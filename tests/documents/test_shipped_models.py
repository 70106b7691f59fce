"""Regression guard for the shipped document models in exported/.

Fails when a model file is missing, broken or swapped (wrong family or name); on real pages
(../shared/data/documents, skipped without it) every cardinal page must get its quadrant right, the
turned copies of the music score their half turn, the perspective model, with the service's
page-edge snapping, must find a page's corners to 1% of its diagonal, and the dewarping model must
take most of a curl out of a bent page.
"""

from pathlib import Path

import numpy as np
import pytest

from stn_align.training.documents import evaluate, metrics

ROOT = Path(__file__).resolve().parents[2]
EXPORTED = ROOT / "exported"
SHIPPED = {"doc-rotation": "rotation", "doc-perspective": "projective", "doc-dewarp": "tps"}
CARDINALS = ("cardinal-1.png", "cardinal-2.png", "cardinal-3.png", "cardinal-4.png")
FLOOR_PCT = 4.0  # median outline error on 7 validation phone photos (the shipped file: 2.26)


def metadata(path: Path) -> dict:
    import onnx

    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


@pytest.mark.parametrize("name,family", sorted(SHIPPED.items()))
def test_shipped_model_is_whole_and_the_right_one(name, family):
    localiser, warper = EXPORTED / f"{name}.onnx", EXPORTED / f"{name}.warp.onnx"
    assert localiser.is_file() and warper.is_file(), f"{name} is not shipped in {EXPORTED}"
    assert localiser.stat().st_size < 10 * 1024 * 1024, "models must stay under 10 MB"
    meta = metadata(localiser)
    assert meta["family"] == family and meta["name"] == name
    assert (EXPORTED / f"{name}.md").is_file(), "every shipped model has a model card"


@pytest.fixture(scope="module")
def pipeline():
    from stn_align.service.config import ServiceConfig
    from stn_align.service.pipeline import Pipeline

    pipe = Pipeline.from_dir(str(EXPORTED), ServiceConfig(models=",".join(SHIPPED), device="cpu"))
    yield pipe
    pipe.close()


def test_cardinal_pages_get_their_quadrant(pipeline, documents_dir):
    from stn_align.service.pipeline import AlignOptions

    truth = dict(evaluate.read_truth(documents_dir))
    options = AlignOptions(models=["doc-rotation"], encoding="none")
    for name in CARDINALS:
        image = evaluate.load_rgb(documents_dir / name)
        angle = pipeline.align(image, options).angle
        assert metrics.angle_error(angle, truth[name]) < 45.0, f"{name}: predicted {angle:.1f}"


def test_perspective_corners_within_a_floor(pipeline, documents_dir):
    from stn_align.service.pipeline import AlignOptions

    options = AlignOptions(models=["doc-perspective"], encoding="none")
    errors = []
    pages = {"cardinal-1.png", "skew.png", "epson.png"}
    for sample in evaluate.perspective_samples(documents_dir, 1, seed=0, only=pages):
        corners = pipeline.align(sample.image, options).corners
        errors.append(metrics.corner_error(corners, sample.truth_corners))
    assert len(errors) == 3
    # The service snaps the model's corners to the page's edges (setting page_edges): the model
    # alone scores 2-4.5% here, snapped 0.02-0.05%; a model that returns the whole photo scores
    # 29-90%, too far off for the snapping to rescue.
    assert float(np.median(errors)) < 1.0, errors


def test_perspective_finds_pages_in_phone_photos_and_none_on_a_bare_desk(pipeline, shared_data):
    # Phone photos of validation pages (photo_eval, the evaluation recipe) and photos with no page:
    # the pages' outlines within a floor, and the bare desks and walls below the service's
    # min_corner_confidence, which answers them with the identity.
    from stn_align.service.pipeline import AlignOptions
    from stn_align.training.documents import photo_eval

    options = AlignOptions(models=["doc-perspective"], encoding="none")
    threshold = pipeline.config.min_corner_confidence
    errors, page_conf, blank_conf = [], [], []
    names = [name for name, _ in photo_eval.page_images(shared_data / "pages", "val")][::9]
    pages = photo_eval.phone_samples(shared_data / "pages", 1, 7, "val", blank=4, only=set(names))
    for sample in pages:
        result = pipeline.align(sample.image, options)
        if sample.truth_corners is None:
            blank_conf.append(result.corner_confidence)
            h, w = sample.image.shape[:2]
            whole = [[-0.5, -0.5], [w - 0.5, -0.5], [w - 0.5, h - 0.5], [-0.5, h - 0.5]]
            if result.corner_confidence < threshold:
                np.testing.assert_allclose(result.corners, whole, atol=1e-6)
        else:
            page_conf.append(result.corner_confidence)
            errors.append(photo_eval.outline_error(result.corners, sample.truth_corners))
    assert len(errors) == 7 and len(blank_conf) == 4
    assert float(np.median(errors)) < FLOOR_PCT, errors
    assert float(np.median(page_conf)) > threshold > float(np.median(blank_conf)), (
        page_conf,
        blank_conf,
    )


def test_dewarp_takes_most_of_the_curl_out(pipeline, documents_dir):
    from stn_align.service.pipeline import AlignOptions

    options = AlignOptions(models=["doc-dewarp"], encoding="none")
    model, identity = [], []
    pages = {"cardinal-1.png", "cardinal-2.png", "deskew-8.png"}
    for sample in evaluate.dewarp_samples(documents_dir, 1, seed=0, only=pages):
        theta = pipeline.align(sample.image, options).stages[-1].theta
        hw = sample.image.shape[:2]
        model.append(metrics.grid_error(theta, sample.truth_params, hw))
        identity.append(metrics.grid_error(np.zeros(32), sample.truth_params, hw))
    assert len(model) == 3
    # The shipped file leaves 0.29-0.47 of the identity's error on these three; an untrained or
    # broken model (the identity, or worse) leaves 1 or more.
    assert float(np.mean(model)) < 0.7 * float(np.mean(identity)), (model, identity)


def test_upside_down_pages_are_read_the_right_way_up(pipeline, documents_dir):
    # Pages whose half turn the first shipped model (layout reader only) got wrong; the text-line
    # reader must get them right.
    from stn_align.service.pipeline import AlignOptions

    truth = dict(evaluate.read_truth(documents_dir))
    options = AlignOptions(models=["doc-rotation"], encoding="none")
    for name in ("deskew-3.png", "francais.png", "typewriter.png", "cardinal-1.png"):
        image = evaluate.load_rgb(documents_dir / name)[::-1, ::-1].copy()  # a half turn
        angle = pipeline.align(image, options).angle
        want = truth[name] + 180.0
        assert metrics.angle_error(angle, want) < 2.0, f"{name}: predicted {angle:.1f}"


def test_skew_of_the_real_pages_as_they_are(pipeline, documents_dir):
    # The skew's last level runs at full size (skew.SkewRefine): the fourth doc-rotation is off by
    # a median of 0.08 degrees here, worst 0.43; the third (half size only) 0.11, which fails.
    from stn_align.service.pipeline import AlignOptions

    options = AlignOptions(models=["doc-rotation"], encoding="none")
    errors = [
        metrics.angle_error(pipeline.align(sample.image, options).angle, sample.truth_angle)
        for sample in evaluate.rotation_samples(documents_dir, 0, 0)
    ]
    assert len(errors) == 19
    assert max(errors) < 0.6, errors
    assert float(np.median(errors)) < 0.1, errors


def test_turned_copies_of_the_music_score_are_read_the_right_way_up(pipeline, documents_dir):
    # A page with few text lines: the fourth doc-rotation (line reader and cascade only) read one of
    # these eight copies upside down; the fifth has the layout reader's vote as well.
    from stn_align.service.pipeline import AlignOptions

    options = AlignOptions(models=["doc-rotation"], encoding="none")
    samples = list(evaluate.rotation_samples(documents_dir, 8, 0, only={"deskew-2.png"}))
    assert len(samples) == 8
    for sample in samples:
        angle = pipeline.align(sample.image, options).angle
        error = metrics.angle_error(angle, sample.truth_angle)
        assert error < 45.0, f"{sample.name}: predicted {angle:.1f}, truth {sample.truth_angle:.1f}"
