"""stn_align.core.geometry (NumPy) against torch's grid_sample, OpenCV and the torch families."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from stn_align.core import geometry
from stn_align.training.config import DataConfig
from stn_align.training.data import random_params
from stn_align.training.families import build_family

FAMILIES = geometry.FAMILIES
SIZES = [((300, 220), (180, 260)), ((257, 257), (257, 257)), ((200, 310), (310, 200))]


def grid_sample_reference(image: np.ndarray, family: str, params, out_hw) -> np.ndarray:
    """Warp with torch: the family's grid, then grid_sample(align_corners=False)."""
    fam = build_family(family)
    theta = torch.tensor(np.asarray(params), dtype=torch.float64)[None]
    grid = fam.grid(theta, image.shape[:2], out_hw)
    x = torch.from_numpy(image.astype(np.float64))[None, None]
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)[
        0, 0
    ].numpy()


def opencv_warp(image: np.ndarray, family: str, params, out_hw) -> np.ndarray:
    if family == "tps":
        map_x, map_y = geometry.sampling_maps(family, params, image.shape[:2], out_hw)
        return cv2.remap(
            image.astype(np.float32),
            map_x,
            map_y,
            cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=0,
        )
    m = geometry.pixel_matrix(family, params, image.shape[:2], out_hw)
    return cv2.warpPerspective(
        image.astype(np.float32),
        m,
        (out_hw[1], out_hw[0]),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )


def page(documents_dir, name="deskew-1.png", side=320) -> np.ndarray:
    img = cv2.imread(str(documents_dir / name), cv2.IMREAD_GRAYSCALE)
    scale = side / max(img.shape)
    return cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize(("in_size", "out_hw"), SIZES)
def test_pixel_matrix_matches_grid_sample_on_real_pages(documents_dir, family, in_size, out_hw):
    image = cv2.resize(page(documents_dir), (in_size[1], in_size[0]), interpolation=cv2.INTER_AREA)
    rng = np.random.default_rng(hash((family, in_size)) % 2**32)
    params = random_params(family, rng, DataConfig(max_rotation=180))
    want = grid_sample_reference(image, family, params, out_hw)
    got = opencv_warp(image, family, params, out_hw)
    # Away from the borders, where zero padding and OpenCV's border handling legitimately differ.
    inside = cv2.erode((want > 0).astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    inside[:3], inside[-3:], inside[:, :3], inside[:, -3:] = False, False, False, False
    assert inside.mean() > 0.2
    assert np.abs(got - want)[inside].mean() < 1.0


@pytest.mark.parametrize("family", geometry.MATRIX_FAMILIES)
def test_numpy_and_torch_families_agree(family):
    rng = np.random.default_rng(3)
    params = random_params(family, rng, DataConfig(max_rotation=180))
    in_hw, out_hw = (120, 200), (90, 70)
    pts = geometry.axis_grid(out_hw).reshape(-1, 2)
    want = geometry.apply_matrix(geometry.normalised_matrix(family, params, in_hw, out_hw), pts)
    theta = torch.tensor(params, dtype=torch.float64)[None]
    got = build_family(family).points(theta, torch.from_numpy(pts), in_hw, out_hw)[0].numpy()
    np.testing.assert_allclose(got, want, atol=1e-6)  # iso scales are float32


def test_tps_numpy_and_torch_agree():
    params = np.random.default_rng(4).normal(0, 0.05, 32)
    pts = geometry.axis_grid((17, 23)).reshape(-1, 2)
    want = geometry.tps_points(params, 4, pts)
    got = build_family("tps").points(torch.tensor(params)[None], torch.from_numpy(pts), None, None)
    np.testing.assert_allclose(got[0].numpy(), want, atol=1e-5)


def test_rotation_follows_the_content_angle_convention():
    """Content rotated counter-clockwise by a (OpenCV's positive angle) is undone by theta(a)."""
    image = np.zeros((101, 101), np.float32)
    image[20:30, 45:56] = 255  # a block above the centre
    rotated = cv2.warpAffine(image, cv2.getRotationMatrix2D((50, 50), 90, 1), (101, 101))
    assert rotated[45:56, 20:30].mean() > 200  # counter-clockwise: the block went to the left
    restored = opencv_warp(rotated, "rotation", geometry.rotation_params(90), (101, 101))
    assert restored[20:30, 45:56].mean() > 200
    assert geometry.angle_degrees(geometry.rotation_params(90)) == pytest.approx(90)


def test_rotation_by_90_swaps_a_non_square_page_exactly():
    image = np.arange(60 * 40, dtype=np.float32).reshape(60, 40)
    out = opencv_warp(image, "rotation", geometry.rotation_params(90), (40, 60))
    np.testing.assert_allclose(out, np.rot90(image, k=-1), atol=1e-3)


def test_page_corners_and_compose():
    params = np.random.default_rng(5).uniform(-0.2, 0.2, 8)
    in_hw, out_hw = (400, 300), (220, 160)
    corners = geometry.page_corners(params, in_hw)
    m = geometry.pixel_matrix("projective", params, in_hw, out_hw)
    edges = np.array(
        [
            [-0.5, -0.5],
            [out_hw[1] - 0.5, -0.5],
            [out_hw[1] - 0.5, out_hw[0] - 0.5],
            [-0.5, out_hw[0] - 0.5],
        ]
    )
    np.testing.assert_allclose(geometry.apply_matrix(m, edges), corners, atol=1e-9)
    rot = geometry.pixel_matrix("rotation", geometry.rotation_params(30), out_hw, out_hw)
    both = geometry.compose(m, rot)
    p = np.array([[10.0, 20.0]])
    np.testing.assert_allclose(
        geometry.apply_matrix(both, p),
        geometry.apply_matrix(m, geometry.apply_matrix(rot, p)),
        atol=1e-9,
    )


def test_wrap_and_errors():
    assert geometry.wrap_degrees(-180.0) == 180.0
    assert geometry.wrap_degrees(540.0) == 180.0
    assert geometry.wrap_degrees(-190.0) == pytest.approx(170.0)
    with pytest.raises(ValueError, match="unknown transform family 'warp'"):
        geometry.pixel_matrix("warp", [1, 0], (10, 10), (10, 10))
    with pytest.raises(ValueError, match="affine takes 6 parameters, got 2"):
        geometry.pixel_matrix("affine", [1, 0], (10, 10), (10, 10))


@pytest.mark.parametrize("out_hw", [(1001, 777), (2000, 1500), (9, 5), (1, 1)])
def test_tps_maps_from_a_coarse_grid_match_the_exact_ones(out_hw):
    from stn_align.training.documents.curl import random_curl

    params = random_curl(np.random.default_rng(7), scale=1.5)
    exact = geometry.sampling_maps("tps", params, (1200, 900), out_hw)
    coarse = geometry.tps_sampling_maps(params, (1200, 900), out_hw)
    for a, b in zip(exact, coarse, strict=True):
        assert a.shape == b.shape == out_hw and b.dtype == np.float32
        assert float(np.abs(a - b).max()) < 0.1


def test_quad_area_is_the_same_for_either_winding():
    square = np.array([[0, 0], [4, 0], [4, 3], [0, 3]], float)
    assert geometry.quad_area(square) == 12.0
    assert geometry.quad_area(square[::-1]) == 12.0
