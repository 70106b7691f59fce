"""The torch transform families and the sampler."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from stn_align.core import geometry
from stn_align.training.families import build_family
from stn_align.training.sampler import sample


@pytest.mark.parametrize("family", geometry.FAMILIES)
def test_identity_reproduces_the_input(family):
    fam = build_family(family)
    image = torch.rand(2, 3, 23, 31, dtype=torch.float64)
    theta = fam.identity().double()[None].repeat(2, 1)
    out = sample(image, fam.grid(theta, (23, 31), (23, 31)))
    torch.testing.assert_close(out, image, atol=1e-6, rtol=0)


def test_affine_matches_affine_grid():
    theta = torch.tensor([[0.9, 0.2, 0.1, -0.15, 1.1, -0.05]], dtype=torch.float64)
    ours = build_family("affine").grid(theta, (40, 30), (25, 35))
    theirs = F.affine_grid(theta.reshape(1, 2, 3), [1, 1, 25, 35], align_corners=False)
    torch.testing.assert_close(ours, theirs)


def test_projective_matches_cv2_warp_perspective():
    rng = np.random.default_rng(0)
    params = rng.uniform(-0.2, 0.2, 8)
    in_hw, out_hw = (90, 120), (70, 50)
    image = rng.uniform(0, 255, in_hw).astype(np.float32)
    image = cv2.GaussianBlur(image, (0, 0), 2)
    # OpenCV's own homography from the output's edge corners to where theta puts them.
    edges = np.float32(
        [
            [-0.5, -0.5],
            [out_hw[1] - 0.5, -0.5],
            [out_hw[1] - 0.5, out_hw[0] - 0.5],
            [-0.5, out_hw[0] - 0.5],
        ]
    )
    corners = geometry.page_corners(params, in_hw).astype(np.float32)
    h = cv2.getPerspectiveTransform(edges, corners)
    want = cv2.warpPerspective(
        image, h, (out_hw[1], out_hw[0]), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    )
    grid = build_family("projective").grid(torch.tensor(params)[None], in_hw, out_hw)
    got = sample(torch.from_numpy(image.astype(np.float64))[None, None], grid)[0, 0].numpy()
    inside = np.zeros(out_hw, bool)
    inside[2:-2, 2:-2] = True
    inside &= cv2.erode((want > 0).astype(np.uint8), np.ones((3, 3))).astype(bool)
    assert np.abs(got - want)[inside].max() < 0.5


def test_tps_passes_exactly_through_its_control_points():
    fam = build_family("tps", tps_grid=4)
    theta = torch.randn(3, 32, dtype=torch.float64) * 0.1
    control = fam.control.double()
    mapped = fam.points(theta, control, None, None)
    torch.testing.assert_close(mapped, control + theta.reshape(3, 16, 2), atol=1e-5, rtol=0)


def test_rotation_params_are_unit_vectors_whatever_the_raw_output():
    theta = build_family("rotation").params(torch.tensor([[3.0, 4.0], [-0.1, 0.0]]))
    torch.testing.assert_close(theta, torch.tensor([[0.6, 0.8], [-1.0, 0.0]]))


@pytest.mark.parametrize("family", ["affine", "rotation", "projective", "tps"])
def test_sampler_gradients_with_respect_to_image_and_theta(family):
    fam = build_family(family, tps_grid=2)
    torch.manual_seed(0)
    image = torch.rand(1, 2, 6, 7, dtype=torch.float64, requires_grad=True)
    raw = fam.identity().double() + 0.1 * torch.randn(fam.num_params, dtype=torch.float64)
    raw = raw[None].requires_grad_(True)

    def warp(img, r):
        return sample(img, fam.grid(fam.params(r), (6, 7), (5, 4)))

    assert torch.autograd.gradcheck(warp, (image, raw), eps=1e-6, atol=1e-4)


def test_unknown_family_and_padding_are_clear_errors():
    with pytest.raises(ValueError, match="unknown transform family"):
        build_family("shear")
    with pytest.raises(ValueError, match="padding_mode"):
        sample(torch.zeros(1, 1, 4, 4), torch.zeros(1, 2, 2, 2), padding_mode="wrap")
