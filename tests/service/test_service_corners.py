"""A projective model's second, closer read (service/corners.py): the crop around the page the
first read found, the second read's corners mapped back into the photo, and the pipeline using
it for doc-perspective on a photo of a small page."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from stn_align.core import geometry
from stn_align.service import corners
from stn_align.service.config import ServiceConfig
from stn_align.service.pipeline import AlignOptions, Pipeline

EXPORTED = Path(__file__).resolve().parents[2] / "exported"


def test_the_crop_adds_a_tenth_of_the_page_around_it_within_the_photo():
    page = np.array([[100, 50], [300, 50], [300, 250], [100, 250]], float)
    assert corners.crop_box(page, (400, 600)) == (80, 30, 320, 270)
    near_the_edge = page + [-95, -45]  # the margin is clipped at the photo's frame
    assert corners.crop_box(near_the_edge, (400, 600)) == (0, 0, 225, 225)


def test_no_second_read_when_the_crop_would_see_the_same_or_too_little():
    whole = np.array([[10, 10], [590, 10], [590, 390], [10, 390]], float)
    assert corners.crop_box(whole, (400, 600)) is None  # nearly the whole photo
    tiny = np.array([[10, 10], [40, 10], [40, 40], [10, 40]], float)
    assert corners.crop_box(tiny, (400, 600)) is None
    assert corners.crop_box(np.full((4, 2), np.nan), (400, 600)) is None
    half = np.array([[100, 50], [500, 50], [500, 350], [100, 350]], float)  # half the photo
    assert corners.crop_box(half, (400, 600)) is None  # large pages gain little from it


class FrameModel:
    """Stands in for a projective Model whose every read finds the frame of what it is shown."""

    def small_copy(self, crop):
        self.shown = crop.shape[:2]
        return crop

    def split(self, row):
        return row[:8], row[8:]


def test_the_second_reads_corners_are_mapped_back_into_the_photo():
    seen = np.zeros((400, 600, 1), np.uint8)
    page = np.array([[100, 50], [300, 50], [300, 250], [100, 250]], float)
    theta = geometry.corner_params(page, (400, 600))
    model = FrameModel()
    again, read = corners.read_again(model, seen, theta, lambda m, smalls: [np.zeros(9)])
    assert read and model.shown == (240, 240)
    found = geometry.page_corners(again, (400, 600))
    np.testing.assert_allclose(found, [[79.5, 29.5], [319.5, 29.5], [319.5, 269.5], [79.5, 269.5]])


def _photo_of_a_small_page(hw=(900, 1200)) -> tuple[np.ndarray, np.ndarray]:
    """A white page with lines of text on a dark desk, a third of the photo's width."""
    rng = np.random.default_rng(3)
    photo = rng.normal(60, 8, (*hw, 3)).clip(0, 255).astype(np.uint8)
    page = np.array([[420, 260], [760, 280], [745, 720], [400, 700]], np.float32)
    flat = np.full((440, 340, 3), 245, np.uint8)
    for y in range(40, 400, 18):
        cv2.line(flat, (30, y), (int(rng.integers(200, 310)), y), (30, 30, 30), 3)
    h, w = flat.shape[:2]
    source = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    warp = cv2.getPerspectiveTransform(source, page)
    mask = cv2.warpPerspective(np.ones((h, w), np.uint8), warp, hw[::-1])
    drawn = cv2.warpPerspective(flat, warp, hw[::-1])
    photo[mask > 0] = drawn[mask > 0]
    return photo, page - 0.5


def _corners(photo, second: bool):
    config = ServiceConfig(device="cpu", page_edges="none", second_corner_read=second)
    pipe = Pipeline.from_dir(str(EXPORTED), config)
    try:
        result = pipe.align(photo, AlignOptions(models=["doc-perspective"], encoding="none"))
    finally:
        pipe.close()
    return result.stages[0].read_again, result.corners


def test_doc_perspective_reads_a_small_page_again_and_keeps_the_second_reads_corners():
    photo, truth = _photo_of_a_small_page()
    once, first = _corners(photo, second=False)
    again, second = _corners(photo, second=True)
    assert not once and again
    assert np.abs(second - first).max() > 1  # the second read's corners, not the first's
    diagonal = float(np.hypot(*photo.shape[:2]))
    assert np.linalg.norm(second - truth, axis=1).mean() / diagonal < 0.02
