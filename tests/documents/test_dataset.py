"""Training data: deterministic, the right shapes, and targets that really undo the transform."""

import cv2
import numpy as np
import pytest

from stn_align.core import geometry
from stn_align.training.config import TrainConfig
from stn_align.training.documents import synth
from stn_align.training.documents.bank import build_bank
from stn_align.training.documents.dataset import build_dataset


@pytest.fixture(scope="module")
def bank(tmp_path_factory):
    return build_bank(tmp_path_factory.mktemp("bank") / "pages", count=4, seed=3, progress=False)


def config(bank, family, size=64):
    cfg = TrainConfig()
    cfg.seed = 9
    cfg.model.family, cfg.model.input_size, cfg.model.localiser = family, size, "doc"
    cfg.data.dataset, cfg.data.path = "documents", str(bank)
    cfg.data.max_rotation = 180.0 if family == "rotation" else 10.0
    cfg.data.max_corner, cfg.data.train_size, cfg.data.val_size = 0.08, 50, 10
    return cfg


@pytest.mark.parametrize("family,count", [("rotation", 2), ("projective", 8), ("tps", 32)])
def test_items_are_deterministic_and_well_formed(bank, family, count):
    cfg = config(bank, family)
    a, b = build_dataset(cfg, "train"), build_dataset(cfg, "train")
    for i in (0, 7):
        x, y = a[i], b[i]
        assert x["image"].dtype.is_floating_point is False
        assert tuple(x["image"].shape) == (1, 64, 64)
        assert x["params"].shape == (count,)
        assert bool((x["image"] == y["image"]).all()) and bool((x["params"] == y["params"]).all())
    assert not bool((a[0]["image"] == build_dataset(cfg, "val")[0]["image"]).all())


def test_rotation_targets_are_unit_vectors(bank):
    ds = build_dataset(config(bank, "rotation"), "train")
    norms = [float(ds[i]["params"].norm()) for i in range(6)]
    assert np.allclose(norms, 1.0, atol=1e-5)


def test_three_channel_items(bank):
    cfg = config(bank, "rotation")
    cfg.model.channels = 3
    assert tuple(build_dataset(cfg, "train")[0]["image"].shape) == (3, 64, 64)


def test_unknown_family_is_a_clear_error(bank):
    with pytest.raises(ValueError, match="documents dataset"):
        build_dataset(config(bank, "affine"), "train")


def marker_image():
    image = np.zeros((90, 60), np.uint8)
    cv2.rectangle(image, (5, 5), (25, 40), 255, -1)
    cv2.circle(image, (45, 70), 8, 128, -1)
    return image


def test_rotation_convention_matches_geometry():
    """Turning content by +a degrees (counter-clockwise) then warping with theta(a) undoes it."""
    image = marker_image()
    for angle in (30.0, 90.0, -135.0):
        turned = synth.rotate_expand(image, angle, 0)
        # Straighten onto a square canvas as long as the turned one (same iso scale), centred.
        side = max(turned.shape)
        theta = geometry.rotation_params(angle)
        m = geometry.pixel_matrix("rotation", theta, turned.shape[:2], (side, side))
        back = cv2.warpPerspective(
            turned, m, (side, side), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        )
        top, left = (back.shape[0] - 90) // 2, (back.shape[1] - 60) // 2
        crop = back[top : top + 90, left : left + 60].astype(float)
        assert np.abs(crop - image).mean() < 12, angle


def test_quad_params_rectify_the_page():
    """A page placed on a canvas is recovered by warping with its projective theta."""
    rng = np.random.default_rng(0)
    page = np.full((120, 90), 230, np.uint8)
    page[10:40, 10:50] = 20
    canvas = np.zeros((200, 240), np.uint8)
    quad = synth.random_quad(rng, page.shape, canvas.shape, 0.06, 10.0)
    photo = synth.place_page(page, canvas, quad)
    theta = synth.quad_params(quad, canvas.shape)
    assert np.allclose(geometry.page_corners(theta, canvas.shape), quad, atol=1e-6)
    m = geometry.pixel_matrix("projective", theta, canvas.shape, page.shape)
    flat = cv2.warpPerspective(
        photo, m, page.shape[::-1], flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    )
    assert np.abs(flat[3:-3, 3:-3].astype(float) - page[3:-3, 3:-3]).mean() < 15


def test_scanned_sheet_frames_the_page_in_dark():
    page = np.full((200, 150), 240, np.uint8)
    scans = [synth.scanned_sheet(page, np.random.default_rng(seed)) for seed in range(20)]
    again = synth.scanned_sheet(page, np.random.default_rng(3))
    np.testing.assert_array_equal(scans[3], again)  # deterministic for a seed
    for scan in scans:
        h, w = scan.shape
        assert h >= 200 and w >= 150 and (h, w) != (200, 150)  # a frame on at least one side
        ring = np.concatenate([scan[0], scan[-1], scan[:, 0], scan[:, -1]])
        assert (ring < 70).mean() > 0.2  # the lid shows along the scan's outline
        assert (scan > 200).mean() > 0.5  # the sheet is still most of the scan
