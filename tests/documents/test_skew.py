"""Projection-profile skew: the angle helpers and the estimate on synthetic pages."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from stn_align.core.geometry import skew_degrees
from stn_align.core.preprocess import localiser_input
from stn_align.training.documents.layout import render_page
from stn_align.training.documents.rotation_model import RotationLocaliser
from stn_align.training.documents.skew import (
    ProfileSkew,
    SkewRefine,
    away_from_padding,
    coords,
    degrees,
    first_value,
    half_angle,
    multiply,
    page_ink,
    shift_bank,
    spread,
    stroke_contrast,
    turned_rows,
)
from stn_align.training.documents.synth import rotate_expand


def pair(deg):
    return torch.tensor([math.cos(math.radians(deg)), math.sin(math.radians(deg))])


def test_multiply_adds_angles_and_half_angle_halves():
    assert float(degrees(multiply(pair(30), pair(-75)))) == pytest.approx(-45, abs=1e-4)
    for deg in (-170, -90, -10, 0, 44, 89, 179):
        assert float(degrees(half_angle(pair(deg)))) == pytest.approx(deg / 2, abs=1e-3)


@pytest.mark.parametrize("seed,angle", [(21, 7.3), (22, -31.0), (23, 112.4), (24, -168.8)])
def test_profile_skew_finds_the_skew_modulo_90(seed, angle):
    page = render_page(seed)
    turned = rotate_expand(page, angle, 255)
    small = localiser_input(turned[:, :, None], 384, "letterbox", 0)
    x = torch.from_numpy(small).float().permute(2, 0, 1)[None] / 127.5 - 1.0
    skew, along = ProfileSkew(384, -1.0).measure(x)
    found = float(degrees(skew)[0])
    error = abs((found - angle + 45) % 90 - 45)
    assert error < 0.5, (angle, found)
    # Once the skew is undone, an even number of quarter turns is left when the lines run along
    # the rows, an odd number when they run down the columns.
    quarters = round((angle - found) / 90.0)
    assert float(along[0]) == (1.0 if quarters % 2 == 0 else 0.0), (angle, found)


@pytest.mark.parametrize("seed,angle,start", [(25, 3.2, 3.9), (26, -52.4, -53.1), (27, 96.8, 96.2)])
def test_skew_refine_pulls_a_rough_estimate_to_the_lines(seed, angle, start):
    page = rotate_expand(render_page(seed), angle, 255)
    # At the shipped model's input size: on a 384 px copy of the largest page the lines blur.
    x = torch.from_numpy(localiser_input(page[:, :, None], 768, "letterbox", 0)).float()
    x = x.permute(2, 0, 1)[None] / 127.5 - 1.0
    rough = pair(start)[None]  # 0.6-0.7 degrees off, as a half-size estimate can be
    refined = SkewRefine(768)(turned_rows(page_ink(x, -1.0), rough), rough)
    error = abs((float(degrees(refined)[0]) - angle + 45) % 90 - 45)
    assert error < 0.25, (angle, float(degrees(refined)[0]))  # from 0.6-0.7 off
    # Denser rows (every other pixel along the lines) keep the strips' width in pixels.
    dense = SkewRefine(768)(turned_rows(page_ink(x, -1.0), rough, along=2), rough)
    assert abs(float(degrees(dense)[0]) - float(degrees(refined)[0])) < 0.1


def test_untrained_rotation_localiser_returns_the_skew():
    # Untrained, the orientation classifier picks some quarter turn; the skew modulo 90 degrees
    # is the profile search's, which has no weights.
    model = RotationLocaliser(1, 384, -1.0).eval()
    page = rotate_expand(render_page(30), 4.0, 255)
    x = torch.from_numpy(localiser_input(page[:, :, None], 384, "letterbox", 0)).float()
    with torch.no_grad():
        out = model(x.permute(2, 0, 1)[None] / 127.5 - 1.0)
    assert out.shape == (1, 2)
    assert float(out.norm()) == pytest.approx(1.0, abs=1e-5)
    assert skew_degrees(float(degrees(out)[0])) == pytest.approx(4.0, abs=0.5)
    assert np.isfinite(out.numpy()).all()


def test_shift_bank_matches_a_grid_sample_shear():
    size, pool = 192, 16
    strips = torch.rand(1, size // pool, size)  # (N, J, S): J strips of S pixels
    shears = torch.deg2rad(torch.tensor([-3.0, 0.7, 2.5]))
    shifted = F.conv1d(strips, shift_bank(shears, size, pool), padding="same", groups=size // pool)
    shifted = shifted.reshape(1, size // pool, 3, size)
    # The same shifts by grid_sample: strip j, candidate k samples y + shears[k] * x_j.
    xs, ys = coords(size // pool), coords(size)
    for k in range(3):
        x = ys[None, :] + shears[k] * xs[:, None]  # along the strip
        y = xs[:, None].expand(-1, size)  # which strip
        want = F.grid_sample(
            strips[:, None],
            torch.stack([x, y], -1)[None],
            mode="bilinear",
            padding_mode="zeros",
            align_corners=False,
        )
        assert float((shifted[0, :, k] - want[0, 0]).abs().max()) < 1e-4


def test_profile_skew_shift_banks_are_small():
    skew = ProfileSkew(384, -1.0)
    weights = sum(b.numel() for name, b in skew.named_buffers() if "bank" in name)
    assert weights < 100_000  # the model file must stay small


def test_page_ink_masks_each_block_by_its_small_copy_and_clears_the_padding():
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(2, 1, 64, 64, generator=generator) * 2 - 1
    x[:, :, :, :20] = -1.0  # a letterbox strip, at the padding value
    keep = away_from_padding(x, -1.0)
    blocks = keep.repeat_interleave(4, 2).repeat_interleave(4, 3)
    ink = page_ink(x, -1.0)
    assert torch.equal(ink, stroke_contrast(x) * blocks)
    assert float(ink[:, :, :, :24].abs().max()) < 1e-4  # the padding and one block beyond
    assert torch.equal(ink[:, :, :, 24:], stroke_contrast(x)[:, :, :, 24:])


def test_first_value_and_spread():
    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).reshape(2, 1, 4, 4) + 3.0
    assert first_value(x).tolist() == [3.0]
    keep = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])
    spread_out = spread(keep, torch.zeros(1, 1, 8, 8))
    assert spread_out.shape == (1, 1, 8, 8)
    assert torch.equal(spread_out, keep.repeat_interleave(4, 2).repeat_interleave(4, 3))
