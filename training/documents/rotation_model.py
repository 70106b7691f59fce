"""doc-rotation's localiser: the profile skew (skew.py), then which way up from three readers.

It composes the parts that live in their own files: `skew.ProfileSkew` and `skew.SkewRefine` (the
skew modulo 90 degrees and the axis of the lines), `direction.ProfileDirection` (the line-profile
reader), `layout_direction.LayoutDirection` (the layout reader) and `model.Cascade` (the
whole-page reader).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from stn_align.training.documents.direction import ProfileDirection, strip_profiles
from stn_align.training.documents.layout_direction import (
    LARGE,
    POOL_ROWS,
    LayoutDirection,
    layout_page,
)
from stn_align.training.documents.model import Cascade
from stn_align.training.documents.skew import (
    ALONG,
    FINE_LEVELS,
    ProfileSkew,
    SkewRefine,
    away_from_padding,
    max_pool_square,
    multiply,
    spread,
    stroke_contrast,
    turned_rows,
    unit,
)


class SnapRotation(nn.Module):
    """The whole-circle rotation localiser: precise skew and axis, then which way up.

    - The profile skew (ProfileSkew, one level on a half-size copy, then SkewRefine at full size)
      gives the skew modulo 90 degrees to a few hundredths of a degree and which axis the lines
      lie on: the page is `base` or `base` turned by a half turn, with `base` the skew times
      (1, 0) (lines along the rows) or (0, 1).
    - Which of the two: the sum of two votes, the line-profile reader (direction.ProfileDirection,
      on the full-size input: the shapes of the text lines) and, weighted by `reader_weight`, a
      learned cascade (model.Cascade on a sixth-size copy, the whole circle to some degrees: the
      layout of the page) by the cosine between its estimate and `base`.
    One (cos, sin) comes out; the caller warps the original once.
    """

    reader_weight: torch.Tensor
    layout_weight: torch.Tensor
    layout_clip: torch.Tensor

    def __init__(self, channels: int, size: int, hidden: int, fill_value: float):
        super().__init__()
        if size % 192:
            raise ValueError(
                f"input size must be a multiple of 192 for the rotation model, got {size}"
            )
        self.size, self.fill_value, self.along = size, fill_value, ALONG
        self.skew = ProfileSkew(size // 2, fill_value, levels=FINE_LEVELS[:1])
        self.refine = SkewRefine(size)
        self.reader = Cascade("rotation", channels, size // 6, hidden)
        self.direction = ProfileDirection(size)
        self.layout = LayoutDirection(size // POOL_ROWS)
        self.register_buffer("reader_weight", torch.ones(()))
        # The layout vote's weight and bound, chosen by layout_direction.py.
        self.register_buffer("layout_weight", torch.zeros(()))
        self.register_buffer("layout_clip", torch.full((), LARGE))

    def front(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(base (N, 2), the cascade's vote (N,), the line reader's profiles, the layout reader's
        page): the parts that the direction readers' training treats as fixed. The profiles and
        the page come from the rows turned by the half-size estimate, which is within a degree of
        `base`: over a strip's width that moves a line by under a pixel."""
        half = F.avg_pool2d(x, 2)
        # Slicing a one-channel input still copies the page in ONNX Runtime, so only slice RGB.
        grey, half_grey = (x, half) if x.shape[1] == 1 else (x[:, :1], half[:, :1])
        # One padding mask for both sizes, from the half-size copy: a quarter of the reads of the
        # full-size one, and the half-size level needs no max pools of its own.
        keep = away_from_padding(half_grey, self.fill_value, 2)
        # Grown by one more cell for the half-size level: its 5 x 5 contrast reaches twice as far.
        wider = 1.0 - max_pool_square(1.0 - keep, 3)
        skew, along = self.skew.measure(half_grey, spread(wider, half_grey))
        rough = multiply(skew, torch.stack([along, 1.0 - along], 1))
        rows = turned_rows(stroke_contrast(grey) * spread(keep, grey), rough, self.along)
        base = self.refine(rows, rough)
        # A sixth-size copy is a third of the half-size one: the same means, a quarter the reads.
        cascade = unit(self.reader(F.avg_pool2d(half, 3)), 1e-6)
        return base, (cascade * base).sum(1), strip_profiles(rows), layout_page(rows)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        base, reader_vote, profiles, page = self.front(x)
        vote = self.direction(profiles) + self.reader_weight * reader_vote
        layout = self.layout(page).clamp(-self.layout_clip, self.layout_clip)
        vote = vote + self.layout_weight * layout
        one = torch.ones_like(vote)
        return base * torch.where(vote < 0, -one, one)[:, None]
