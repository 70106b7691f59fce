"""Skew by projection profiles, in-graph, and the rotation localiser built on it.

Text lines make the row (or column) sums of a page's ink peaky when the page is straight and flat
when it is turned, so the skew modulo 90 degrees is the angle whose de-rotated page has the most
peaked profiles (the classic projection-profile method, e.g. Postl 1986). Done here with
grid_sample over a few dozen candidate angles, coarse to fine, with no weights, no data-dependent
control flow and no ArgMax or Atan (softmax-weighted means instead), so it exports to ONNX.

`SnapRotation` takes the quadrant (0/90/180/270, read from the page) from a learned cascade and
the precise skew from the profiles, and composes them: one (cos, sin), the original warped once.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

COARSE_STEP = 6.0  # degrees, over [-45, 45)
COARSE_POOL = 4  # the coarse search runs on a copy this many times smaller
FINE_LEVELS = (
    (4.0, 1.0),
    (1.0, 0.25),
    (0.25, 0.05),
)  # (half span, step) in degrees around the last estimate
SHARPNESS = 8.0  # softmax temperature on the z-scored profile scores


def coords(n: int) -> torch.Tensor:
    """Axis-frame coordinates of n pixel centres (align_corners=False), as in training.families."""
    return (torch.arange(n, dtype=torch.float32) * 2 + 1) / n - 1


def rotation_grid(cos: torch.Tensor, sin: torch.Tensor, xs: torch.Tensor) -> torch.Tensor:
    """Grids (M, S, S, 2) that de-rotate a square image by angles with these cos, sin (the
    rotation family's convention: content turned counter-clockwise by a is made upright).

    Built from the 1-D coordinates xs at run time: a grid stored in the ONNX file would cost
    megabytes, and the model must stay small."""
    c, s = cos[:, None, None], sin[:, None, None]
    x, y = xs[None, None, :], xs[None, :, None]
    return torch.stack([c * x + s * y, c * y - s * x], dim=-1)


def multiply(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Angles as (..., 2) cos, sin pairs: the pair of the sum of the angles."""
    return torch.stack(
        [
            a[..., 0] * b[..., 0] - a[..., 1] * b[..., 1],
            a[..., 1] * b[..., 0] + a[..., 0] * b[..., 1],
        ],
        dim=-1,
    )


def unit(pair: torch.Tensor, eps: float = 1e-9) -> torch.Tensor:
    """Scale (..., 2) vectors to length one (sqrt of a sum: ONNX's ReduceL2 has no CUDA kernel)."""
    return pair / (pair * pair).sum(-1, keepdim=True).clamp_min(eps * eps).sqrt()


def half_angle(pair: torch.Tensor) -> torch.Tensor:
    """(cos, sin) of 2a -> (cos, sin) of a, with cos a >= 0 (a in [-90, 90])."""
    c, s = pair[..., 0], pair[..., 1]
    sign = torch.where(s < 0, -torch.ones_like(s), torch.ones_like(s))
    return torch.stack(
        [((1 + c) / 2).clamp_min(0).sqrt(), sign * ((1 - c) / 2).clamp_min(0).sqrt()], -1
    )


class ProfileSkew(nn.Module):
    """Images (N, 1, S, S), normalised, dark ink -> skew modulo 90 as (N, 2) cos, sin.

    Coarse: 30 candidate angles on a half-size copy. Fine: the page is de-rotated by the estimate
    and small turns are tried as shears of copies squashed along the lines (rows averaged over
    POOL columns for the row profile, and the other way round), which is what keeps it cheap.
    """

    POOL = 16

    def __init__(self, size: int, fill_value: float = -1.0):
        super().__init__()
        if size % (2 * self.POOL):
            raise ValueError(f"input size must be a multiple of {2 * self.POOL}, got {size}")
        self.size = size
        self.fill_value = fill_value
        coarse = torch.deg2rad(torch.arange(-45.0, 45.0, COARSE_STEP))
        self.register_buffer("coarse_cos", coarse.cos(), False)
        self.register_buffer("coarse_sin", coarse.sin(), False)
        # The coarse mean is taken on 4a, where -45 and +45 degrees meet, so skews near 45 work.
        pairs4 = torch.stack([(4 * coarse).cos(), (4 * coarse).sin()], 1)
        self.register_buffer("coarse_pairs4", pairs4, False)
        self.register_buffer("xs_full", coords(size), False)
        self.register_buffer("xs_coarse", coords(size // COARSE_POOL), False)
        self.register_buffer("xs_narrow", coords(size // self.POOL), False)
        for i, (span, step) in enumerate(FINE_LEVELS):
            offsets = torch.deg2rad(torch.arange(-span, span + step / 2, step))
            self.register_buffer(f"offsets{i}", offsets, False)

    def ink(self, x: torch.Tensor, disc: torch.Tensor) -> torch.Tensor:
        """Local contrast (strokes, not paper or shading), zero near the letterbox padding and
        outside the central disc (rotating a disc crops nothing)."""
        detail = (x - F.avg_pool2d(x, 5, 1, 2, count_include_pad=False)).abs()
        # Padding holds exactly fill_value and its straight edge would vote for 0 degrees, so
        # areas of it (not thin strokes of the same value) are found, grown, and masked out.
        pad = ((self.fill_value + 1e-3 - x) * 1000.0).clamp(0.0, 1.0)
        pad = -F.max_pool2d(-pad, 5, 1, 2)
        pad = F.max_pool2d(pad, 13, 1, 6)
        return detail * (1.0 - pad) * disc

    @staticmethod
    def _sample(images: torch.Tensor, grids: torch.Tensor) -> torch.Tensor:
        """Each of N images through each of K grids: (N*K, 1, h, w)."""
        n, k = images.shape[0], grids.shape[0]
        stack = images[:, None].expand(n, k, *images.shape[1:]).reshape(n * k, *images.shape[1:])
        tiled = grids[None].expand(n, *grids.shape).reshape(n * k, *grids.shape[1:])
        return F.grid_sample(
            stack, tiled, mode="bilinear", padding_mode="zeros", align_corners=False
        )

    @staticmethod
    def _weights(score: torch.Tensor) -> torch.Tensor:
        """Softmax over z-scored candidates, written out: z is bounded by sqrt(K), so exp cannot
        overflow, and Softmax, ReduceProd (std) and ReduceMax have no CUDA kernel in the list."""
        centred = score - score.mean(1, keepdim=True)
        z = centred / ((centred * centred).mean(1, keepdim=True).sqrt() + 1e-6)
        e = torch.exp(SHARPNESS * z)
        return e / e.sum(1, keepdim=True)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        # Coordinates tied to the input, so that export does not fold the grids into constants.
        one = x[:1, :1, :1, 0].reshape(1) * 0.0 + 1.0
        full, small, narrow = self.xs_full * one, self.xs_coarse * one, self.xs_narrow * one
        disc = ((1.0 - full[None, :] ** 2 - full[:, None] ** 2) * 1e4).clamp(0.0, 1.0)
        ink = self.ink(x[:, :1], disc)
        coarse_grid = rotation_grid(self.coarse_cos, self.coarse_sin, small)
        turned = self._sample(F.avg_pool2d(ink, COARSE_POOL), coarse_grid)
        k = self.coarse_cos.shape[0]
        score = turned.sum(-1).reshape(n, k, -1).square().mean(-1)
        score = score + turned.sum(-2).reshape(n, k, -1).square().mean(-1)
        estimate = half_angle(half_angle(unit(self._weights(score) @ self.coarse_pairs4)))
        for i in range(len(FINE_LEVELS)):
            offsets = getattr(self, f"offsets{i}")
            k = offsets.shape[0]
            d = offsets[:, None, None]
            grid = rotation_grid(estimate[:, 0], estimate[:, 1], full)
            straight = F.grid_sample(
                ink, grid, mode="bilinear", padding_mode="zeros", align_corners=False
            )
            # Small turns d as shears of squashed copies. Rows: output (S, S/P) samples y - d x.
            zero = d * 0.0 + full[None, :, None] * 0.0  # (K, S, 1)
            row_grid = torch.stack(
                [narrow[None, None, :] + zero, full[None, :, None] - d * narrow], -1
            )
            # Columns: output (S/P, S) samples x + d y.
            zero = d * 0.0 + full[None, None, :] * 0.0  # (K, 1, S)
            col_grid = torch.stack(
                [full[None, None, :] + d * narrow[None, :, None], narrow[None, :, None] + zero], -1
            )
            rows = self._sample(F.avg_pool2d(straight, (1, self.POOL)), row_grid)
            cols = self._sample(F.avg_pool2d(straight, (self.POOL, 1)), col_grid)
            score = rows.sum(-1).reshape(n, k, -1).square().mean(-1)
            score = score + cols.sum(-2).reshape(n, k, -1).square().mean(-1)
            delta = self._weights(score) @ offsets
            # delta is under 2 degrees: cos and sin by their series (no Cos/Sin op needed).
            estimate = multiply(estimate, unit(torch.stack([1.0 - delta * delta / 2.0, delta], 1)))
        return estimate


def nearest_quarter(pair: torch.Tensor) -> torch.Tensor:
    """(cos, sin) -> the nearest of (1, 0), (0, 1), (-1, 0), (0, -1)."""
    c, s = pair[..., 0], pair[..., 1]
    one, zero = torch.ones_like(c), torch.zeros_like(c)
    sign_c = torch.where(c < 0, -one, one)
    sign_s = torch.where(s < 0, -one, one)
    wide = c.abs() < s.abs()  # nearer to +-90 than to 0 or 180
    return torch.stack([torch.where(wide, zero, sign_c), torch.where(wide, sign_s, zero)], -1)


class SnapRotation(nn.Module):
    """The whole-circle rotation localiser: a learned estimate, snapped to the precise skew.

    A learned cascade (model.Cascade, on a third-size copy) estimates the angle over the whole
    circle, orientation included, but only to some degrees; the projection profiles give the skew
    modulo 90 to about a tenth of a degree but cannot tell the quadrant. The output is the skew
    turned by the quarter turn that brings it nearest the learned estimate: the learned part picks
    the quadrant, the profiles give the precision.
    """

    def __init__(self, channels: int, size: int, hidden: int, fill_value: float):
        super().__init__()
        from training.documents.model import Cascade

        if size % 96:
            raise ValueError(
                f"input size must be a multiple of 96 for the rotation model, got {size}"
            )
        self.skew = ProfileSkew(size, fill_value)
        self.reader = Cascade("rotation", channels, size // 3, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skew = self.skew(x)
        rough = unit(self.reader(F.avg_pool2d(x, 3)), 1e-6)
        # The learned angle relative to the skew: rough times the conjugate of skew.
        relative = multiply(rough, skew * torch.tensor([1.0, -1.0], device=x.device))
        return multiply(skew, nearest_quarter(relative))


def degrees(pair: torch.Tensor) -> torch.Tensor:
    return torch.atan2(pair[..., 1], pair[..., 0]) * 180.0 / math.pi
