"""Skew by projection profiles, in-graph: the weight-free front of doc-rotation.

Text lines make the row (or column) sums of a page's ink peaky when the page is straight and flat
when it is turned, so the skew modulo 90 degrees is the angle whose de-rotated page has the most
peaked profiles (the classic projection-profile method, e.g. Postl 1986). Done here coarse to
fine: 15 fixed candidate angles (nearest-pixel sampling by a constant Gather), then small turns as
shears done by fixed 1-D convolutions; no weights, no data-dependent control flow and no ArgMax or
Atan (softmax-weighted means instead), so it exports to ONNX.

The profiles also tell which axis the lines lie on once the skew is undone. rotation_model.py's
`RotationLocaliser` takes the skew and axis from here (ProfileSkew on a half-size copy, then
SkewRefine at full size) and which quarter turn is upright from the orientation classifier
(orientation.py), and composes them: one (cos, sin), the original warped once.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

COARSE_STEP = 6.0  # degrees, over [-45, 45)
COARSE_POOL = 4  # the coarse search runs on a copy this many times smaller
FINE_LEVELS = (
    (4.0, 0.5),
    (0.5, 0.05),
)  # (half span, step) in degrees around the last estimate
REFINE = (1.0, 0.1)  # (half span, step) in degrees of SkewRefine's level on the full-size page
ALONG = 4  # full-size turned copies sample every row but one point in ALONG along the lines
SHARPNESS = 8.0  # softmax temperature on the z-scored profile scores
PEAK_SHARPNESS = 20.0  # peak_contrast's soft maximum is within 1/20 * log(K) of the maximum
PEAK_CAP = 3.0  # ... of a contrast capped here (well past sure), so that Exp cannot overflow


def coords(n: int) -> torch.Tensor:
    """Axis-frame coordinates of n pixel centres (align_corners=False), as in
    stn_align.training.families."""
    return (torch.arange(n, dtype=torch.float32) * 2 + 1) / n - 1


def rotation_grid(
    cos: torch.Tensor, sin: torch.Tensor, xs: torch.Tensor, ys: torch.Tensor | None = None
) -> torch.Tensor:
    """Grids (M, len(ys), len(xs), 2) that de-rotate a square image by angles with these cos, sin
    (the rotation family's convention: content turned counter-clockwise by a is made upright),
    sampled at output columns xs and rows ys (ys defaults to xs).

    Built from the 1-D coordinates at run time: a grid stored in the ONNX file would cost
    megabytes, and the model must stay small."""
    ys = xs if ys is None else ys
    c, s = cos[:, None, None], sin[:, None, None]
    x, y = xs[None, None, :], ys[None, :, None]
    return torch.stack([c * x + s * y, c * y - s * x], dim=-1)


def nearest_index(grids: torch.Tensor, side: int) -> torch.Tensor:
    """Grids (K, h, w, 2) over a side x side image -> (K * h * w,) int32 positions in the image
    flattened with one zero appended (position side * side): the pixels grid_sample reads in
    nearest mode with zeros padding (align_corners=False)."""
    cell = torch.round(((grids + 1) * side - 1) / 2)  # half to even, as grid_sample rounds
    inside = ((cell >= 0) & (cell < side)).all(-1)
    index = cell[..., 1] * side + cell[..., 0]
    return torch.where(inside, index, torch.full_like(index, side * side)).int().flatten()


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


class Survey(NamedTuple):
    """What ProfileSkew.survey finds, per page (N pages)."""

    skew: torch.Tensor  # (N, 2) cos, sin of the skew modulo 90 degrees, in [-45, 45]
    along: torch.Tensor  # (N,) 1 where the de-skewed lines run along the rows, 0 down the columns
    coarse: torch.Tensor  # (N, 2) the coarse estimate, which `view` is de-rotated by
    view: torch.Tensor  # (N, 1, S, S) the page's stroke contrast de-rotated by `coarse`
    peak: torch.Tensor  # (N,) how far the best coarse angle's profiles stand out (peak_contrast)


class ProfileSkew(nn.Module):
    """Images (N, 1, S, S), normalised, dark ink -> skew modulo 90 as (N, 2) cos, sin.

    Coarse: 15 candidate angles (6-degree steps) on a quarter-size copy. Fine: the page is
    de-rotated once by the estimate and small turns are tried as shears of copies squashed along
    the lines (rows averaged over POOL columns for the row profile, and the other way round):
    by default +-4 degrees in 0.5-degree steps, then +-0.5 in 0.05 (`levels`). A shear of a
    squashed copy is a fixed shift of each strip, so each level is one grouped 1-D convolution
    with constant weights. `measure` also says which axis the lines lie on.
    """

    coarse_cos: torch.Tensor
    coarse_sin: torch.Tensor
    coarse_pairs4: torch.Tensor
    xs_full: torch.Tensor
    coarse_index: torch.Tensor
    xs_narrow: torch.Tensor

    POOL = 16

    def __init__(self, size: int, fill_value: float = -1.0, levels=FINE_LEVELS):
        super().__init__()
        self.levels = len(levels)
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
        side = size // COARSE_POOL
        grids = rotation_grid(coarse.cos(), coarse.sin(), coords(side))
        self.register_buffer("coarse_index", nearest_index(grids, side), False)
        self.register_buffer("xs_narrow", coords(size // self.POOL), False)
        for i, (span, step) in enumerate(levels):
            offsets = torch.deg2rad(torch.arange(-span, span + step / 2, step))
            self.register_buffer(f"offsets{i}", offsets, False)
            # Rows of the squashed copy are shifted by -d x (pixels) for each candidate shear d,
            # columns by +d y: fixed shifts, so a grouped 1-D convolution does them all at once.
            self.register_buffer(f"row_bank{i}", shift_bank(-offsets, size, self.POOL), False)
            self.register_buffer(f"col_bank{i}", shift_bank(offsets, size, self.POOL), False)

    def ink(self, x: torch.Tensor, disc: torch.Tensor) -> torch.Tensor:
        return ink_map(x, disc, self.fill_value)

    def _coarse_scores(self, pooled: torch.Tensor) -> torch.Tensor:
        """(N, 1, s, s) -> (N, K) profile scores of the copy de-rotated by each candidate angle,
        nearest pixel (the coarse search only ranks candidates 6 degrees apart). The angles are
        fixed, so the de-rotation is one Gather by a constant index, about four times cheaper in
        ONNX Runtime than GridSample (bench/localiser_ops.py); on pixels laid out (s * s, N) it
        copies N at a time."""
        n, side = pooled.shape[0], int(pooled.shape[-1])
        flat = pooled.reshape(n, side * side).t()
        padded = torch.cat([flat, flat[:1] * 0.0], 0)  # the zero that points outside read
        turned = padded.index_select(0, self.coarse_index).reshape(-1, side, side, n)
        score = turned.sum(2).square().mean(1) + turned.sum(1).square().mean(1)
        return score.t()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.measure(x)[0]

    @torch.no_grad()
    def measure(
        self, x: torch.Tensor, keep: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(skew (N, 2) as in forward, along (N,)): along is 1 where, once the skew is undone, the
        lines run along the rows (text upright or upside down), 0 where they run down the columns
        (a quarter turn either way). See `survey`."""
        found = self.survey(x, keep)
        return found.skew, found.along

    def survey(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> Survey:
        """Everything the search finds: the skew and the axis (as `measure`), the coarse estimate,
        the page de-rotated by it and how much the best angle stands out.

        Lines make a profile jump from line to gap every few pixels; the other direction's profile
        changes slowly (margins, column gutters), so the profile that changes more from one pixel
        to the next is the one across the lines. `keep` (N, 1, S, S), 1 on the page and 0 on and
        near the letterbox padding, replaces ink_map's own mask when the caller has one."""
        n = x.shape[0]
        # Coordinates tied to the input, so that export does not fold the grids into constants.
        one = first_value(x) * 0.0 + 1.0
        full, narrow = self.xs_full * one, self.xs_narrow * one
        disc = ((1.0 - full[None, :] ** 2 - full[:, None] ** 2) * 1e4).clamp(0.0, 1.0)
        if keep is None:
            page = ink_map(x[:, :1], torch.ones_like(disc), self.fill_value)
        else:
            page = stroke_contrast(x[:, :1]) * keep
        ink = page * disc
        coarse_scores = self._coarse_scores(F.avg_pool2d(ink, COARSE_POOL))
        estimate = half_angle(
            half_angle(unit(candidate_weights(coarse_scores) @ self.coarse_pairs4))
        )
        # Fine: one de-rotation by the coarse estimate, then small turns d as shears of copies
        # squashed along the lines (rows averaged over POOL columns for the row profile, and the
        # other way round). A shear keeps lines straight, so it finds their slope exactly.
        # Nearest pixel: the squashed strips average the jagged lines out, this level only has to
        # come within a degree of the answer, and in ONNX Runtime it is about twice as cheap.
        # The whole page is turned (the disc only afterwards: it is the same disc in both frames),
        # so that the orientation classifier can read its corners too.
        view = F.grid_sample(
            page,
            rotation_grid(estimate[:, 0], estimate[:, 1], full),
            mode="nearest",
            padding_mode="zeros",
            align_corners=False,
        )
        straight = view * disc
        rows0 = F.avg_pool2d(straight, (1, self.POOL))  # (N, 1, S, J)
        cols0 = F.avg_pool2d(straight, (self.POOL, 1))  # (N, 1, J, S)
        rows, cols = rows0, cols0
        delta = estimate[:, 0] * 0.0
        for i in range(self.levels):
            offsets = getattr(self, f"offsets{i}")
            if i:  # shear by what the earlier levels found (per image, so by grid_sample)
                rows, cols = self._shear(rows0, cols0, delta, full, narrow)
            score = profile_scores(rows[:, 0].transpose(1, 2), getattr(self, f"row_bank{i}"))
            score = score + profile_scores(cols[:, 0], getattr(self, f"col_bank{i}"))
            delta = delta + candidate_weights(score) @ offsets
        rows, cols = self._shear(rows0, cols0, delta, full, narrow)
        across_rows = rows.sum(-1).reshape(n, -1)  # the row profile: one value per row
        across_cols = cols.sum(-2).reshape(n, -1)
        along = (jumps(across_cols) < jumps(across_rows)).float()
        skew = multiply(estimate, small_turn(delta))
        return Survey(skew, along, estimate, view, peak_contrast(coarse_scores))

    @staticmethod
    def _shear(rows, cols, delta, full, narrow):
        """Rows (N, 1, S, J) sampled at y - d x and columns (N, 1, J, S) at x + d y, d per image."""
        d = delta[:, None, None]
        zero = d * 0.0
        row_grid = torch.stack(
            [
                narrow[None, None, :] + zero + full[None, :, None] * 0.0,
                full[None, :, None] - d * narrow[None, None, :],
            ],
            -1,
        )
        col_grid = torch.stack(
            [
                full[None, None, :] + d * narrow[None, :, None],
                narrow[None, :, None] + zero + full[None, None, :] * 0.0,
            ],
            -1,
        )
        kw = {"mode": "bilinear", "padding_mode": "zeros", "align_corners": False}
        return F.grid_sample(rows, row_grid, **kw), F.grid_sample(cols, col_grid, **kw)


def profile_scores(lines: torch.Tensor, bank: torch.Tensor) -> torch.Tensor:
    """Squashed copies (N, J, S) and a shift bank (J*K, 1, taps) -> (N, K) profile scores: each
    of the J strips shifted by the K candidates' amounts, summed into K profiles."""
    n, j = lines.shape[0], lines.shape[1]
    shifted = F.conv1d(lines, bank, padding=bank.shape[-1] // 2, groups=j)
    profiles = shifted.reshape(n, j, -1, lines.shape[2]).sum(1)
    return profiles.square().mean(-1)


def candidate_weights(score: torch.Tensor) -> torch.Tensor:
    """Softmax over z-scored candidates (N, K), written out: z is bounded by sqrt(K), so exp
    cannot overflow, and Softmax, ReduceProd (std) and ReduceMax have no CUDA kernel in the list."""
    centred = score - score.mean(1, keepdim=True)
    z = centred / ((centred * centred).mean(1, keepdim=True).sqrt() + 1e-6)
    e = torch.exp(SHARPNESS * z)
    return e / e.sum(1, keepdim=True)


def peak_contrast(score: torch.Tensor) -> torch.Tensor:
    """Candidates' profile scores (N, K) -> (N,) how far the best stands out: a soft maximum of
    score / mean - 1. Lines make one angle's profiles far peakier than the others' (1 and more);
    paper, noise and pictures without lines make them all about alike (near 0). Written with Exp
    and Log: ReduceMax has no CUDA kernel in the allow-list."""
    relative = (score / (score.mean(1, keepdim=True) + 1e-12) - 1.0).clamp(-1.0, PEAK_CAP)
    return torch.log(torch.exp(PEAK_SHARPNESS * relative).sum(1)) / PEAK_SHARPNESS


def small_turn(delta: torch.Tensor) -> torch.Tensor:
    """(N,) angles in radians under 5 degrees -> (N, 2) cos, sin by their series (no Cos, Sin)."""
    return unit(torch.stack([1.0 - delta * delta / 2.0, delta], 1))


def ink_map(x: torch.Tensor, disc: torch.Tensor, fill_value: float) -> torch.Tensor:
    """Local contrast (strokes, not paper or shading), zero near the letterbox padding and where
    `disc` is 0 (rotating a disc crops nothing)."""
    # Padding holds exactly fill_value and its straight edge would vote for 0 degrees, so areas
    # of it (not thin strokes of the same value) are found, grown, and masked out.
    pad = ((fill_value + 1e-3 - x) * 1000.0).clamp(0.0, 1.0)
    pad = -max_pool_square(-pad, 5)
    pad = max_pool_square(pad, 13)
    return stroke_contrast(x) * (1.0 - pad) * disc


def page_ink(x: torch.Tensor, fill_value: float, pool: int = 4) -> torch.Tensor:
    """Images (N, 1, S, S), normalised -> stroke contrast, zero on and near the letterbox padding:
    ink_map's work with a cheaper mask (away_from_padding, on a copy `pool` times smaller), for the
    full-size input."""
    return stroke_contrast(x) * spread(away_from_padding(x, fill_value, pool), x)


def spread(keep: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A mask (N, 1, s, s) from away_from_padding -> (N, 1, S, S) as `like`, each cell repeated."""
    # A nearest-neighbour Resize: in ONNX Runtime an Expand, or a 6-D broadcast, of the small mask
    # took about twice as long (bench/localiser_ops.py).
    return F.interpolate(keep, scale_factor=int(like.shape[-1]) // int(keep.shape[-1]))


def first_value(x: torch.Tensor) -> torch.Tensor:
    """x's first element as a (1,) tensor, by one Slice of the flattened tensor: x[:1, :1, :1, 0]
    exports as a chain of Slices, the first of which copies a whole page."""
    return x.reshape(-1)[:1]


def away_from_padding(x: torch.Tensor, fill_value: float, pool: int = 4) -> torch.Tensor:
    """(N, 1, S, S) -> (N, 1, S / pool, S / pool): 1 where the page is, 0 on and near the letterbox
    padding (areas of exactly `fill_value`, not thin strokes of that value). Found on a copy `pool`
    times smaller: at full size the max pools cost more than the rest of the full-size work."""
    pad = ((fill_value + 1e-3 - F.avg_pool2d(x, pool)) * 1000.0).clamp(0.0, 1.0)
    return 1.0 - max_pool_square(-max_pool_square(-pad, 3), 5)


def turned_rows(ink: torch.Tensor, pair: torch.Tensor, along: int = ALONG) -> torch.Tensor:
    """Ink (N, 1, S, S) and (N, 2) cos, sin -> (N, 1, S, S / along): the page turned by the inverse
    of `pair` (so that its lines run along the rows), every row but only every `along`-th column.
    Means over strips of the rows need no more, and this resampling is the costliest op of the
    model: done once, for the skew's last level and the direction readers."""
    size = int(ink.shape[-1])
    one = first_value(ink) * 0.0 + 1.0  # grids tied to the input: not folded by export
    rows = coords(size).to(ink.device) * one
    grid = rotation_grid(pair[:, 0], pair[:, 1], coords(size // along).to(ink.device) * one, rows)
    return F.grid_sample(ink, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def row_spacing(rows: torch.Tensor) -> int:
    """The `along` that turned_rows sampled `rows` (N, 1, S, S / along) at, as a Python int: pooling
    windows must be fixed at export."""
    return int(rows.shape[-2]) // int(rows.shape[-1])


def stroke_contrast(x: torch.Tensor) -> torch.Tensor:
    """|x - its 5 x 5 local mean|: strokes stand out, paper and shading do not."""
    # Square windows as a row pass then a column pass: the same result, far fewer operations.
    local = F.avg_pool2d(x, (1, 5), 1, (0, 2), count_include_pad=False)
    local = F.avg_pool2d(local, (5, 1), 1, (2, 0), count_include_pad=False)
    return (x - local).abs()


def shift_bank(shears: torch.Tensor, size: int, pool: int) -> torch.Tensor:
    """Weights (J*K, 1, taps) of a grouped conv1d over J = size/pool strips: output k of strip j is
    the strip moved by shears[k] * x_j * size / 2 pixels (x_j its normalised centre), with linear
    interpolation; channel j*K + k, as conv1d orders a grouped output."""
    xs = coords(size // pool).double()
    shift = shears.double()[None, :] * xs[:, None] * size / 2  # (J, K), out[y] = in[y + shift]
    half = int(math.ceil(float(shift.abs().max()))) + 1
    base = torch.floor(shift)
    frac = shift - base
    bank = torch.zeros(*shift.shape, 2 * half + 1, dtype=torch.float64)
    index = (base + half).long()
    bank.scatter_(2, index[..., None], (1 - frac)[..., None])
    bank.scatter_add_(2, (index + 1)[..., None], frac[..., None])
    return bank.reshape(-1, 1, 2 * half + 1).float()


def jumps(profile: torch.Tensor) -> torch.Tensor:
    """(N, S) profiles -> (N,) mean absolute difference of neighbouring values. Absolute, not
    squared: a page edge is one big step and must not outweigh dozens of lines."""
    return (profile[:, 1:] - profile[:, :-1]).abs().mean(1)


def max_pool_square(x: torch.Tensor, k: int) -> torch.Tensor:
    """k x k max pool, stride 1, same size (k odd), as a row pass and a column pass."""
    x = F.max_pool2d(x, (1, k), 1, (0, k // 2))
    return F.max_pool2d(x, (k, 1), 1, (k // 2, 0))


class SkewRefine(nn.Module):
    """(rows (N, 1, S, S / along) from turned_rows, the pair that turned them) -> the pair refined
    by one more level at full size.

    Lines a few pixels high blur on a half-size copy, and the profile peaks with them. Here the
    full-size rows, turned so that the lines run along them (upright or upside down: the axis is
    known), are squashed into strips of `pool` pixels as in ProfileSkew, and small turns of
    +-REFINE[0] degrees in REFINE[1] steps are tried as shears. Only the row profile is scored:
    the column profile halves the noise a little more but costs a second full-size resampling.
    """

    offsets: torch.Tensor
    bank: torch.Tensor

    POOL = 32  # strip width, pixels: 16 and 64 did no better on synthetic pages

    def __init__(self, size: int, span: float = REFINE[0], step: float = REFINE[1], pool=POOL):
        super().__init__()
        self.pool = pool
        offsets = torch.deg2rad(torch.arange(-span, span + step / 2, step))
        self.register_buffer("offsets", offsets, False)
        self.register_buffer("bank", shift_bank(-offsets, size, pool), False)

    def forward(self, rows: torch.Tensor, pair: torch.Tensor) -> torch.Tensor:
        strips = F.avg_pool2d(rows, (1, self.pool // row_spacing(rows)))[:, 0].transpose(1, 2)
        score = profile_scores(strips, self.bank)
        return multiply(pair, small_turn(candidate_weights(score) @ self.offsets))


def degrees(pair: torch.Tensor) -> torch.Tensor:
    return torch.atan2(pair[..., 1], pair[..., 0]) * 180.0 / math.pi
