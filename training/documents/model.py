"""The learned two-stage cascade of the document models: doc-perspective, the whole-page reader
inside doc-rotation, and (one stage) doc-dewarp. `localiser.build_localiser` picks the model for a
configuration.

Stage one looks at a half-size copy and makes a coarse estimate over the whole range. The input is
then re-sampled by that estimate (grid_sample, in-graph) and stage two, at full size, predicts the
residual transform of the re-sampled page. The two are composed into one transform, so the caller
warps the original image once (the inverse-compositional idea of Lin and Lucey, CVPR 2017).

- rotation: theta = (cos, sin); composition is the product of the two unit complex numbers.
- projective: theta = corner displacements; the final corners are the residual corners mapped
  through the coarse homography (all element-wise maths and one division, no matrix inverse).

Both stages end in a linear layer with zero weights and the identity as bias, so the untrained
cascade is the identity.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from stn_align.core.geometry import CORNERS, identity_params
from stn_align.training.families import build_family
from stn_align.training.localisers import identity_head

CASCADE_FAMILIES = ("rotation", "projective")
MIN_DIVISOR = 0.2  # the least homogeneous divisor composing projective stages


class Stage(nn.Module):
    """A small conv net: a 4x4 patch stem, conv blocks down to 5-8 cells a side, two linear layers.

    The last map is flattened rather than pooled: where things are on the page (a heading at the
    top, a page number at the bottom, the ragged end of lines) tells up from down.
    """

    def __init__(self, channels: int, size: int, hidden: int, identity: torch.Tensor):
        super().__init__()
        # The stem shrinks by 4 at once (4x4 patches, stride 4): on a 2-core CPU every
        # full-size layer costs dearly, and a patch filter still sees every pixel of a thin stroke.
        layers: list[nn.Module] = [
            nn.Conv2d(channels, 24, 4, stride=4, bias=False),
            nn.BatchNorm2d(24),
            nn.ReLU(inplace=True),
        ]
        cin, side, width = 24, size // 4, 32
        while side > 8:
            layers += [
                nn.Conv2d(cin, width, 3, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]
            cin, side, width = width, side // 2, min(width * 2, 64)
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.fc = nn.Sequential(nn.Linear(cin * side * side, hidden), nn.ReLU(inplace=True))
        self.head = identity_head(hidden, identity)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.fc(self.features(x)))


class Cascade(nn.Module):
    corners: torch.Tensor

    def __init__(self, family: str, channels: int, size: int, hidden: int):
        super().__init__()
        if family not in CASCADE_FAMILIES:
            raise ValueError(f"the doc localiser handles {CASCADE_FAMILIES}, not {family!r}")
        if size % 32:
            raise ValueError(
                f"model.input_size must be a multiple of 32 for the doc localiser, got {size}"
            )
        identity = torch.from_numpy(identity_params(family))
        self.family_name = family
        self.family = build_family(family)
        self.size = size
        self.coarse = Stage(channels, size // 2, hidden, identity)
        self.fine = Stage(channels, size, hidden, identity)
        self.register_buffer("corners", torch.from_numpy(CORNERS).float(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first = self.family.params(self.coarse(F.avg_pool2d(x, 2)))
        hw = (self.size, self.size)
        # The re-sampled page carries no gradient back to stage one: stage one still learns
        # through the composition, and skipping the full-size input gradient halves the cost.
        grid = self.family.grid(first.detach(), hw, hw)
        resampled = F.grid_sample(
            x, grid, mode="bilinear", padding_mode="zeros", align_corners=False
        )
        second = self.family.params(self.fine(resampled))
        return self.compose(first, second)

    def compose(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        """One transform doing `second` on the page already re-sampled by `first`."""
        if self.family_name == "rotation":
            c1, s1, c2, s2 = first[:, 0], first[:, 1], second[:, 0], second[:, 1]
            return torch.stack([c1 * c2 - s1 * s2, s1 * c2 + c1 * s2], dim=1)
        quad = self.corners + second.reshape(-1, 4, 2)  # residual corners, re-sampled frame
        homog = torch.cat([quad, torch.ones_like(quad[..., :1])], dim=2)
        mapped = torch.einsum("nij,nkj->nki", self.family.frame_matrix(first), homog)
        # A wild coarse guess early in training can put a residual corner near its homography's
        # horizon; the bound keeps that from dividing by zero (for the identity the divisor is 1).
        corners = mapped[..., :2] / mapped[..., 2:3].clamp_min(MIN_DIVISOR)
        return (corners - self.corners).reshape(-1, 8)
