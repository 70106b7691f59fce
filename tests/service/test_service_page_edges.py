"""Snapping a projective model's corners to the page's own edges (service/page_edges.py)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from stn_align.core import geometry
from stn_align.service.config import ServiceConfig
from stn_align.service.models import ModelError
from stn_align.service.page_edges import snap_corners
from stn_align.service.pipeline import AlignOptions, Pipeline


def _photo(
    quad: np.ndarray, hw=(480, 640), paper=225, background=70, seed=0, frame=0, margin=0
) -> np.ndarray:
    """A grey page (with dark text lines, away from its edges) under the homography that takes its
    corners (at pixel edges) to `quad`, on a noisy background. frame: the width of a scanner's
    dark frame around the sheet, inside the page's outline. margin: where set, the text comes
    that close to all four edges (page pixels)."""
    rng = np.random.default_rng(seed)
    page = np.full((400, 300), paper, np.float32)
    for y in range(60, 340, 18):  # text lines: strong steps inside the page, parallel to its edges
        page[y : y + 6, 40 : int(rng.integers(150, 260))] = 20
    if margin:
        page[margin : margin + 6, margin:-margin] = 20  # a rule along the top and bottom
        page[-margin - 6 : -margin, margin:-margin] = 20
        page[margin:-margin, margin : margin + 6] = 20  # and down both sides
        page[margin:-margin, -margin - 6 : -margin] = 20
    if frame:
        border = np.full_like(page, 15)
        border[frame:-frame, frame:-frame] = page[frame:-frame, frame:-frame]
        page = border
    src = np.array([[-0.5, -0.5], [299.5, -0.5], [299.5, 399.5], [-0.5, 399.5]], np.float32)
    m = cv2.getPerspectiveTransform(src, quad.astype(np.float32))
    photo = rng.normal(background, 6, hw).astype(np.float32)
    mask = cv2.warpPerspective(np.ones_like(page), m, hw[::-1], flags=cv2.INTER_LINEAR)
    warped = cv2.warpPerspective(page, m, hw[::-1], flags=cv2.INTER_LINEAR)
    return np.clip(warped + (1 - mask) * photo, 0, 255).astype(np.uint8)


QUAD = np.array([[150.0, 60.0], [470.0, 85.0], [500.0, 430.0], [120.0, 410.0]])


@pytest.mark.parametrize("paper, background", [(225, 70), (40, 200)])
def test_snaps_rough_corners_to_the_page_edges(paper, background):
    photo = _photo(QUAD, paper=paper, background=background)
    rough = QUAD + np.random.default_rng(1).uniform(-25, 25, QUAD.shape)  # ~4% of the diagonal
    found = snap_corners(photo, rough)
    assert np.abs(found - QUAD).max() < 0.4, found - QUAD  # a tenth of a pixel or two off
    assert np.abs(rough - QUAD).max() > 10  # the test starts far enough away to mean something


def test_finds_the_edges_of_a_page_printed_close_to_them():
    # Ink 16 page pixels (about 1.8% of the photo's diagonal) inside every edge, as on newspapers
    # and scans cropped close: the clean margin wanted inside an edge must be narrower than that.
    photo = _photo(QUAD, margin=16)
    rough = QUAD + np.random.default_rng(5).uniform(-12, 12, QUAD.shape)
    found = snap_corners(photo, rough)
    assert np.abs(found - QUAD).max() < 0.5, found - QUAD
    assert np.abs(rough - QUAD).max() > 6


def test_a_scanners_dark_frame_is_part_of_the_page():
    # The sheet's own edge, inside the frame, is the stronger step (paper against near-black); a
    # guess near the scan's outline keeps to the outline, the edge the model was trained to find.
    photo = _photo(QUAD, background=150, frame=25)
    rough = QUAD + np.random.default_rng(3).uniform(-8, 8, QUAD.shape)
    found = snap_corners(photo, rough)
    assert np.abs(found - QUAD).max() < 0.5, found - QUAD


def test_a_straight_object_beside_the_page_is_not_its_edge():
    photo = _photo(QUAD)
    photo[:, 530:600] = 245  # a light ruler on the table, parallel to the page's right edge
    rough = QUAD + np.random.default_rng(4).uniform(-15, 15, QUAD.shape)
    found = snap_corners(photo, rough)
    assert np.abs(found - QUAD).max() < 0.5, found - QUAD


def test_keeps_the_corners_when_no_edge_is_seen():
    flat = np.full((300, 400), 128, np.uint8)
    guess = np.array([[100.0, 50.0], [300.0, 60.0], [310.0, 250.0], [90.0, 240.0]])
    np.testing.assert_array_equal(snap_corners(flat, guess), guess)
    tiny = np.array([[100.0, 50.0], [101.0, 50.0], [101.0, 51.0], [100.0, 51.0]])
    np.testing.assert_array_equal(snap_corners(_photo(QUAD), tiny), tiny)


def test_corner_params_inverts_page_corners():
    params = np.random.default_rng(2).uniform(-0.3, 0.3, 8)
    corners = geometry.page_corners(params, (480, 640))
    np.testing.assert_allclose(geometry.corner_params(corners, (480, 640)), params, atol=1e-12)


def test_pipeline_snaps_the_projective_stage(model_dir, base_config):
    # The test model's guess is a centred crop, some 20 px inside this page's edges.
    quad = np.array([[59.5, 47.5], [579.5, 47.5], [579.5, 431.5], [59.5, 431.5]])
    rgb = np.repeat(_photo(quad)[:, :, None], 3, axis=2)
    options = AlignOptions(models=["doc-perspective"], encoding="none")
    snapped = Pipeline.from_dir(str(model_dir), base_config)
    plain = Pipeline.from_dir(str(model_dir), base_config.replace(page_edges="none"))
    try:
        found = snapped.align(rgb, options)
        rough = plain.align(rgb, options)
    finally:
        snapped.close()
        plain.close()
    assert np.abs(rough.corners - quad).max() > 10
    assert np.abs(found.corners - quad).max() < 1.5, found.corners - quad
    # theta, corners and the pixel matrix stay one transform
    stage = found.stages[0]
    np.testing.assert_allclose(geometry.page_corners(stage.theta, rgb.shape[:2]), found.corners)


def test_page_edges_setting_accepts_only_projective_models(model_dir, base_config):
    with pytest.raises(ModelError, match="page_edges.*doc-rotation is a rotation model"):
        Pipeline.from_dir(str(model_dir), base_config.replace(page_edges="doc-rotation"))
    # a name that is not loaded is no error
    Pipeline.from_dir(str(model_dir), base_config.replace(page_edges="not-loaded")).close()


def test_page_edges_auto_follows_the_model_contracts(model_dir, base_config):
    assert ServiceConfig().page_edges == "auto"
    pipe = Pipeline.from_dir(str(model_dir), base_config)  # doc-perspective's contract asks
    assert pipe.page_edge_models == {"doc-perspective"}
    pipe.close()
    pipe = Pipeline.from_dir(str(model_dir), base_config.replace(page_edges="none"))
    assert pipe.page_edge_models == set()
    pipe.close()
