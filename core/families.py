"""What differs between transform families once theta is known, in one plain-dict registry.

The maths is in `geometry`; this says which of it a family uses, so that the code that runs a chain
of models (the service's pipeline, evaluation) asks the family rather than branching on its name:

    spec = FAMILIES[model_family]
    spec.angle(theta)                    # the content's ccw angle in degrees, or None
    spec.corners(theta, in_hw)           # the page corners in input pixels, or None
    spec.output_size(theta, in_hw)       # the default output size of this stage
    spec.sampling(theta, in_hw, out_hw)  # a 3x3 pixel matrix, or dense maps (only last in a chain)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from stn_align.core import geometry
from stn_align.core.geometry import Size


@dataclass(frozen=True)
class Sampling:
    """How a stage samples its input: a matrix (output pixel -> input pixel), or for dense
    families the maps cv2.remap takes, with `matrix` the identity."""

    matrix: np.ndarray
    maps: tuple[np.ndarray, np.ndarray] | None = None


def _no_angle(theta: np.ndarray) -> float | None:
    return None


def _angle(theta: np.ndarray) -> float | None:
    return geometry.angle_degrees(theta)


def _no_corners(theta: np.ndarray, in_hw: Size) -> np.ndarray | None:
    return None


def _corners(theta: np.ndarray, in_hw: Size) -> np.ndarray | None:
    return geometry.page_corners(theta, in_hw)


def _same_size(theta: np.ndarray, in_hw: Size) -> Size:
    return in_hw


def _turned_size(theta: np.ndarray, in_hw: Size) -> Size:
    """Height and width swapped when the page is turned nearer a quarter turn than upright, so
    the whole page stays in view."""
    h, w = in_hw
    return (w, h) if 45.0 < abs(geometry.angle_degrees(theta)) < 135.0 else (h, w)


def _page_size(theta: np.ndarray, in_hw: Size) -> Size:
    """The page's own size: mean lengths of opposite edges of the predicted quad."""
    c = geometry.page_corners(theta, in_hw)
    width = (np.linalg.norm(c[1] - c[0]) + np.linalg.norm(c[2] - c[3])) / 2.0
    height = (np.linalg.norm(c[3] - c[0]) + np.linalg.norm(c[2] - c[1])) / 2.0
    return (max(1, round(float(height))), max(1, round(float(width))))


@dataclass(frozen=True)
class FamilySpec:
    name: str
    meaning: str  # what theta holds, for model cards and ListModels
    angle: Callable[[np.ndarray], float | None] = _no_angle
    corners: Callable[[np.ndarray, Size], np.ndarray | None] = _no_corners
    output_size: Callable[[np.ndarray, Size], Size] = _same_size
    dense: bool = False  # maps, not a matrix: nothing composes after it, so it comes last
    # What each column of a model's optional `confidence` output says, in order: the service
    # acts on "corners" (no page found: identity) and "orientation" (unsure: no quarter turn).
    confidence: tuple[str, ...] = ()

    @property
    def frame(self) -> str:
        return geometry.frame(self.name)

    @property
    def preprocess(self) -> str:
        return geometry.preprocess_mode(self.name)

    def param_count(self, tps_grid: int = 4) -> int:
        return geometry.param_count(self.name, tps_grid)

    def sampling(self, theta: np.ndarray, in_hw: Size, out_hw: Size, tps_grid: int = 4) -> Sampling:
        if self.dense:
            return Sampling(np.eye(3), geometry.tps_sampling_maps(theta, in_hw, out_hw, tps_grid))
        return Sampling(geometry.pixel_matrix(self.name, theta, in_hw, out_hw))


FAMILIES: dict[str, FamilySpec] = {
    "affine": FamilySpec("affine", "the 2x3 matrix, row-major, axis frame"),
    "rotation": FamilySpec(
        "rotation",
        "(cos a, sin a), a the content's counter-clockwise angle, iso frame",
        angle=_angle,
        output_size=_turned_size,
        confidence=("orientation", "skew"),
    ),
    "similarity": FamilySpec(
        "similarity",
        "(s cos a, s sin a, tx, ty), iso frame",
        angle=_angle,
        output_size=_turned_size,
    ),
    "attention": FamilySpec("attention", "(s, tx, ty): zoom and crop, iso frame"),
    "projective": FamilySpec(
        "projective",
        "the output's corners TL, TR, BR, BL in the input, as displacements, axis frame",
        corners=_corners,
        output_size=_page_size,
        confidence=("corners",),
    ),
    "tps": FamilySpec(
        "tps", "displacements of an n x n grid of control points, axis frame", dense=True
    ),
}


def family_spec(name: str) -> FamilySpec:
    if name not in FAMILIES:
        raise ValueError(
            f"unknown transform family {name!r}; expected one of {', '.join(FAMILIES)}"
        )
    return FAMILIES[name]
