"""Projection-profile skew: the angle helpers and the estimate on synthetic pages."""

import math

import numpy as np
import pytest
import torch

from training.documents.layout import render_page
from training.documents.skew import (
    ProfileSkew,
    SnapRotation,
    degrees,
    half_angle,
    multiply,
    nearest_quarter,
)
from training.documents.synth import rotate_expand
from training.preprocess import localiser_input


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
    found = float(degrees(ProfileSkew(384, -1.0)(x))[0])
    error = abs((found - angle + 45) % 90 - 45)
    assert error < 0.5, (angle, found)


def test_nearest_quarter():
    for deg, want in ((10, 0), (50, 90), (-100, -90), (170, 180), (-150, 180), (-44, 0)):
        got = float(degrees(nearest_quarter(pair(deg))))
        assert abs((got - want + 180) % 360 - 180) < 1e-4, (deg, got)


def test_untrained_rotation_localiser_returns_the_skew():
    # The learned reader starts at the identity (upright), so the localiser gives the skew alone.
    model = SnapRotation(1, 384, 32, -1.0).eval()
    page = rotate_expand(render_page(30), 4.0, 255)
    x = torch.from_numpy(localiser_input(page[:, :, None], 384, "letterbox", 0)).float()
    with torch.no_grad():
        out = model(x.permute(2, 0, 1)[None] / 127.5 - 1.0)
    assert out.shape == (1, 2)
    assert float(out.norm()) == pytest.approx(1.0, abs=1e-5)
    assert float(degrees(out)[0]) == pytest.approx(4.0, abs=0.5)
    assert np.isfinite(out.numpy()).all()
