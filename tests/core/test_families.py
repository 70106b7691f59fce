"""The family registry: one entry per family of the convention, and what each one reports."""

import numpy as np

from stn_align.core import geometry
from stn_align.core.families import FAMILIES, family_spec


def test_every_family_of_the_convention_has_an_entry():
    assert set(FAMILIES) == set(geometry.FAMILIES)
    for name, spec in FAMILIES.items():
        assert spec.name == name and spec.meaning
        assert spec.param_count() == geometry.param_count(name)


def test_rotation_reports_its_angle_and_swaps_sides_near_a_quarter_turn():
    spec = family_spec("rotation")
    assert abs(spec.angle(geometry.rotation_params(30.0)) - 30.0) < 1e-5  # float32 theta
    assert spec.output_size(geometry.rotation_params(30.0), (600, 400)) == (600, 400)
    assert spec.output_size(geometry.rotation_params(-100.0), (600, 400)) == (400, 600)
    assert spec.corners(geometry.rotation_params(30.0), (600, 400)) is None


def test_projective_reports_corners_and_the_page_size():
    spec = family_spec("projective")
    corners = np.array([[10.0, 20.0], [310.0, 20.0], [310.0, 420.0], [10.0, 420.0]])
    theta = geometry.corner_params(corners, (500, 400))
    np.testing.assert_allclose(spec.corners(theta, (500, 400)), corners, atol=1e-9)
    assert spec.output_size(theta, (500, 400)) == (400, 300)
    assert spec.angle(theta) is None


def test_only_dense_families_sample_by_maps():
    for name, spec in FAMILIES.items():
        theta = geometry.identity_params(name)
        sampling = spec.sampling(theta, (40, 60), (30, 50))
        assert (sampling.maps is not None) == (name == "tps")
        if sampling.maps is None:
            expected = geometry.pixel_matrix(name, theta, (40, 60), (30, 50))
            np.testing.assert_allclose(sampling.matrix, expected)
        else:
            assert sampling.maps[0].shape == (30, 50)
