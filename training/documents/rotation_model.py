"""doc-rotation's localiser, the decision: the skew from the profile search, which way up from the
orientation classifier, and how sure each part is.

The parts live in their own files: `skew.py` (ProfileSkew, SkewRefine: the skew modulo 90 degrees,
without weights) and `orientation.py` (OrientationNet: which of the four quarter turns is
upright, learned). This file composes them into one answer and its confidences.

Outputs (the export declares both; the service reads both):
- theta (N, 2): (cos a, sin a), a the content's counter-clockwise angle over the whole circle;
- confidence (N, 2): column 0 how sure the orientation is (the classifier's calibrated
  probability of the quarter turn it chose, 0.25 to 1), column 1 how sure the skew is (0 to 1,
  from how far the best angle's profiles stand out; 0.5 is the line between sure and not).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from stn_align.training.documents.orientation import (
    OrientationNet,
    best_turn,
    normalise_view,
    turn_pairs,
    vote,
)
from stn_align.training.documents.skew import (
    ALONG,
    FINE_LEVELS,
    ProfileSkew,
    SkewRefine,
    Survey,
    away_from_padding,
    max_pool_square,
    multiply,
    spread,
    stroke_contrast,
    turned_rows,
)

OUTPUTS = ("theta", "confidence")


class RotationLocaliser(nn.Module):
    """Normalised page (N, C, S, S), letterboxed with `fill_value` -> theta (N, 2); `outputs`
    gives the confidences as well.

    1. ProfileSkew on a half-size copy: the skew modulo 90 degrees, the axis of the lines, and
       the page de-rotated by the coarse estimate (the classifier's view).
    2. SkewRefine at full size on rows turned by skew and axis (lines along the rows): the
       precise skew, `base`.
    3. OrientationNet on the view and the full-size rows (turned by the half-size skew and the
       axis, which SkewRefine also reads): which quarter turn of the view's frame is upright,
       with a probability (softmax at `temperature`).
    4. theta = base turned by the chosen quarter turn, less the axis turn already in `base`.
    """

    temperature: torch.Tensor
    skew_centre: torch.Tensor
    skew_width: torch.Tensor
    output_names = OUTPUTS

    def __init__(self, channels: int, size: int, fill_value: float):
        super().__init__()
        if size % 64:
            raise ValueError(
                f"input size must be a multiple of 64 for the rotation model, got {size}"
            )
        self.size, self.fill_value, self.along = size, fill_value, ALONG
        self.channels = channels
        self.skew = ProfileSkew(size // 2, fill_value, levels=FINE_LEVELS[:1])
        self.refine = SkewRefine(size)
        self.orientation = OrientationNet(size)
        # Chosen on validation pages by fit.py; 1, and a skew confidence of 0.5 at a peak
        # contrast of 0.15, until then.
        self.register_buffer("temperature", torch.ones(()))
        self.register_buffer("skew_centre", torch.full((), 0.15))
        self.register_buffer("skew_width", torch.full((), 0.03))

    def survey(self, x: torch.Tensor) -> tuple[Survey, torch.Tensor, torch.Tensor]:
        """(what the profile search found on the half-size copy; the precise skew `base` (N, 2)
        with the axis turn in it; the full-size rows turned by the half-size skew and the axis,
        lines along the rows, upright or upside down (N, 1, S, S / ALONG))."""
        found, keep = self.half_survey(x)
        rough, rows = self.turned(x, found, keep)
        return found, self.refine(rows, rough), rows

    def turned(self, x: torch.Tensor, found: Survey, keep: torch.Tensor):
        """(the half-size skew with the axis turn, the full-size rows turned by it)."""
        grey = x if x.shape[1] == 1 else x[:, :1]
        rough = multiply(found.skew, axis_pair(found.along))
        return rough, turned_rows(stroke_contrast(grey) * spread(keep, grey), rough, self.along)

    def half_survey(self, x: torch.Tensor) -> tuple[Survey, torch.Tensor]:
        """(ProfileSkew's survey of the half-size copy, the half-size padding mask): all that the
        orientation classifier needs, without the full-size refinement."""
        half = F.avg_pool2d(x, 2)
        # Slicing a one-channel input still copies the page in ONNX Runtime, so only slice RGB.
        half_grey = half if x.shape[1] == 1 else half[:, :1]
        # One padding mask for both sizes, from the half-size copy: a quarter of the reads of the
        # full-size one, and the half-size level needs no max pools of its own.
        keep = away_from_padding(half_grey, self.fill_value, 2)
        # Grown by one more cell for the half-size level: its 5 x 5 contrast reaches twice as far.
        wider = 1.0 - max_pool_square(1.0 - keep, 3)
        return self.skew.survey(half_grey, spread(wider, half_grey)), keep

    def decide(
        self, found: Survey, base: torch.Tensor, logits: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(theta, confidence) from the survey, the precise skew and the classifier's logits:
        (N, 4), or (A, N, 4) for A readings of the page (OrientationNet.every_turn) whose
        probabilities are averaged."""
        every = logits if logits.dim() == 3 else logits[None]
        probabilities = vote(every, self.temperature)
        pick = best_turn(probabilities)
        # base = coarse skew x axis turn (to within the refinement); the classifier's turn is
        # counted from the coarse frame, so the axis turn comes out again (its conjugate).
        axis = axis_pair(found.along)
        undo_axis = torch.stack([axis[:, 0], -axis[:, 1]], 1)
        theta = multiply(multiply(base, turn_pairs(pick)), undo_axis)
        sure_turn = (probabilities * pick).sum(1)
        z = (found.peak - self.skew_centre) / self.skew_width
        # A logistic curve, written out (no Sigmoid or Reciprocal kernel in the allow-list).
        e = torch.exp(z.clamp(-30.0, 30.0))
        sure_skew = e / (1.0 + e)
        return theta, torch.stack([sure_turn, sure_skew], 1)

    @staticmethod
    def parity_images(rng, batch: int, size: int, channels: int):
        """(batch, size, size, channels) uint8 test pages for export's parity check: dark text
        lines of random lengths on light paper, turned by a random angle, smoothed. On pure noise
        no angle stands out, so the profile search's choice (and with it every output) turns on
        float rounding, and ONNX Runtime and PyTorch would differ for no reason of substance."""
        import cv2
        import numpy as np

        images = []
        for _ in range(batch):
            page = np.full((size, size), rng.uniform(200, 250), np.float32)
            for y in range(int(0.1 * size), int(0.9 * size), max(4, size // 40)):
                x0 = int(rng.uniform(0.1, 0.2) * size)
                x1 = int(rng.uniform(0.5, 0.9) * size)
                cv2.line(page, (x0, y), (x1, y), float(rng.uniform(20, 80)), max(1, size // 200))
            turn = cv2.getRotationMatrix2D((size / 2, size / 2), float(rng.uniform(-180, 180)), 1)
            turned = cv2.warpAffine(page, turn, (size, size), borderValue=float(page[0, 0]))
            noisy = cv2.GaussianBlur(turned, (0, 0), 0.8) + rng.normal(0, 3, turned.shape)
            images.append(np.repeat(noisy[:, :, None], channels, axis=2))
        return np.clip(np.stack(images), 0, 255).astype(np.uint8)

    def outputs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        found, base, rows = self.survey(x)
        # The page is read in all four quarter turns and the readings averaged: fewer orientation
        # errors on the validation pages than one reading (exported/doc-rotation.md).
        every = self.orientation.every_turn(
            normalise_view(found.view), normalise_view(rows), found.along
        )
        return self.decide(found, base, every)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.outputs(x)[0]


def axis_pair(along: torch.Tensor) -> torch.Tensor:
    """(N,) 1 (lines along the rows) or 0 (down the columns) -> (N, 2) the turn (0 or 90
    degrees) that lays the lines along the rows."""
    return torch.stack([along, 1.0 - along], 1)
