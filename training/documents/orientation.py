"""Which way up: a small learned classifier of the de-skewed page, over the four quarter turns.

The profile skew search (skew.py) finds the skew modulo 90 degrees. What is left is which of the
four quarter turns is upright, and that is what this net says, from two copies of the page that
the search makes anyway:

- the view (`Survey.view`): the whole page's stroke contrast at half the model's input size,
  de-rotated by the coarse skew estimate (text lines along the rows or down the columns). Its
  branch reads the layout: titles at the top, indents and ragged line ends, page numbers,
  captions under pictures, clefs at the left of staves, and which axis the lines run along;
- the rows (`skew.turned_rows`): the full-size page turned by the skew and the axis of the lines,
  so that the lines run along the rows, every row kept but one point in four along them. Its
  branch reads the shape of the lines across them, at full resolution: ascenders above the
  x-height band, capitals, accents, a Devanagari headline, the side of a note's stem.

Each branch gives four logits; the rows' are counted from their own frame (the skew and axis
turn), so they are moved into the view's before the two are added. The net also says how sure it
is: its softmax over the four turns, sharpened or softened by a temperature chosen on validation
pages. Pages with nothing to read are trained towards the uniform answer, so they come out unsure.

    net = OrientationNet()
    logits = net(view, rows, along)  # view (N, 1, S/2, S/2), rows (N, 1, S, S/4), along (N,)
    turn = logits.argmax(1)          # k: the content stands turned k quarter turns
                                     # counter-clockwise from the view's frame

Training (fit.py) feeds it copies cached as `quantise(normalise_view(...))`; `classify` takes
those back (`dequantise`), so that the cache and the exported graph see the same numbers.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

TURNS = 4
VIEW_CLIP = 8.0  # normalised stroke contrast is clipped here (its mean over the copy is 1)
VIEW_EPS = 1e-3  # added to the mean: a blank page's noise is amplified, not divided by zero
# Both branches start with 4 x 4 patches, stride 4: every pixel is read (a patch's detail goes into
# the stem's channels) at a sixteenth of the cost of a full-resolution layer.
VIEW_STEM = (4, 4)
ROW_STEM = (4, 4)
WIDTHS = (24, 32, 64, 96)  # channels of the stem and of each stride-2 block after it
HEAD = 32  # channels of the map the head flattens: where things are on the page matters


def normalise_view(view: torch.Tensor) -> torch.Tensor:
    """(N, 1, H, W) stroke contrast -> the same divided by its mean over the copy and clipped:
    faint pencil and black print, blurred and sharp scans, read alike."""
    mean = view.mean((1, 2, 3), keepdim=True)
    return (view / (mean + VIEW_EPS)).clamp(0.0, VIEW_CLIP)


def quantise(view: torch.Tensor) -> np.ndarray:
    """normalise_view's output (N, 1, H, W) -> uint8 (N, H, W) for a cache on disk."""
    scaled = view[:, 0] * (255.0 / VIEW_CLIP)
    return scaled.round().clamp(0, 255).to(torch.uint8).numpy()


def dequantise(cached: torch.Tensor) -> torch.Tensor:
    """uint8 (N, H, W) from `quantise` -> float (N, 1, H, W) as normalise_view gave it."""
    return cached[:, None].float() * (VIEW_CLIP / 255.0)


def _block(cin: int, cout: int, kernel, stride) -> nn.Sequential:
    padding = 0 if kernel != 3 else 1  # the stems' patches do not overlap
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride, padding, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class Branch(nn.Module):
    """A copy of the page (N, 1, H, W) -> logits (N, 4). A patch stem (kernel = stride), 3 x 3
    stride-2 blocks, then a 1 x 1 convolution to HEAD channels whose map is flattened (not
    pooled: a title at the top and one at the bottom must differ), one hidden layer and the four
    logits. Plain convolutions: on a CPU, PyTorch trains them several times faster than
    depthwise ones."""

    def __init__(self, hw: tuple[int, int], stem: tuple[int, int], hidden: int, dropout: float):
        super().__init__()
        shrink = (stem[0] * 2 ** (len(WIDTHS) - 1), stem[1] * 2 ** (len(WIDTHS) - 1))
        cells = (hw[0] // shrink[0], hw[1] // shrink[1])
        if cells[0] * shrink[0] != hw[0] or cells[1] * shrink[1] != hw[1]:
            raise ValueError(f"a copy of {hw[0]} x {hw[1]} must divide by {shrink}")
        blocks, cin = [_block(1, WIDTHS[0], stem, stem)], WIDTHS[0]
        for width in WIDTHS[1:]:
            blocks.append(_block(cin, width, 3, 2))
            cin = width
        self.features = nn.Sequential(*blocks)
        self.squeeze = nn.Sequential(
            nn.Conv2d(cin, HEAD, 1, bias=False), nn.BatchNorm2d(HEAD), nn.ReLU(inplace=True)
        )
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(HEAD * cells[0] * cells[1], hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, TURNS),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.squeeze(self.features(x)))


def to_view_frame(logits: torch.Tensor, along: torch.Tensor) -> torch.Tensor:
    """Logits (N, 4) counted from the rows' frame -> counted from the view's. The rows are the
    view's frame turned by a further quarter turn where the lines ran down the columns
    (along = 0), so turn k of the view's frame is the rows' turn k - 1 there."""
    rolled = torch.cat([logits[:, 3:], logits[:, :3]], 1)  # rolled[:, k] = logits[:, k - 1]
    keep = along[:, None]
    return keep * logits + (1.0 - keep) * rolled


class LineBranch(nn.Module):
    """Rows (N, 1, S, W) -> logits (N, 4) in the rows' frame: whether the lines read upright or
    upside down, from their profiles across the lines.

    The rows are averaged along the lines in STRIPS strips (a column of a page at most, so curved
    or skewed lines stay sharp), and a small net of dilated 1-D convolutions reads each strip's
    profile. Its vote is antisymmetric by construction, the net's evidence on the profiles less
    its evidence on them reversed (a half turn reverses every profile), so a page and its half
    turn always get opposite answers: +vote for upright, -vote for upside down, and nothing for
    the quarter turns (the view branch's to judge). Shapes it can read: ascenders above the
    x-height band and capitals in Latin-like scripts (the cue that Bloomberg, Kopec and Dasari,
    SPIE 1995, count), a Devanagari headline, a note's stem.
    """

    STRIPS = 16
    TRAINING_STRIPS = 4
    WIDTH = 16

    def __init__(self):
        super().__init__()
        layers: list[nn.Module] = []
        cin = 1
        for dilation in (1, 2, 4, 8):
            layers += [
                nn.Conv2d(
                    cin, self.WIDTH, (9, 1), padding=(4 * dilation, 0), dilation=(dilation, 1)
                ),
                nn.ReLU(inplace=True),
            ]
            cin = self.WIDTH
        self.net = nn.Sequential(*layers, nn.Conv2d(cin, 1, 1))

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        width = int(rows.shape[-1])  # a Python int: export needs a fixed pooling window
        profiles = F.avg_pool2d(rows, (1, width // self.STRIPS))  # (N, 1, S, STRIPS)
        if self.training:  # a few strips at random: the vote is a mean, and training costs less
            pick = torch.randperm(self.STRIPS)[: self.TRAINING_STRIPS]
            profiles = profiles[..., pick]
        both = self.net(torch.cat([profiles, profiles.flip(2)], 0)).mean((1, 2, 3))
        vote = both[: rows.shape[0]] - both[rows.shape[0] :]
        zero = vote * 0.0
        return torch.stack([vote, zero, -vote, zero], 1)


def to_rows_frame(values: torch.Tensor, along: torch.Tensor) -> torch.Tensor:
    """to_view_frame's inverse: (N, 4) per turn of the view's frame -> of the rows' frame."""
    rolled = torch.cat([values[:, 1:], values[:, :1]], 1)  # rolled[:, m] = values[:, m + 1]
    keep = along[:, None]
    return keep * values + (1.0 - keep) * rolled


class OrientationNet(nn.Module):
    """(view (N, 1, S/2, S/2), rows (N, 1, S, S/4), along (N,)) -> logits (N, 4) over the quarter
    turns of the content (k = 0..3: turned k x 90 degrees counter-clockwise from the view's
    frame), the sum of the branches' logits (see the module's docstring)."""

    def __init__(self, size: int = 768, hidden: int = 64, dropout: float = 0.2):
        super().__init__()
        self.size = size
        self.view_branch = Branch((size // 2, size // 2), VIEW_STEM, hidden, dropout)
        self.row_branch = Branch((size, size // 4), ROW_STEM, hidden, dropout)
        self.line_branch = LineBranch()

    def classify(self, view: torch.Tensor, rows: torch.Tensor, along: torch.Tensor):
        """Normalised copies (normalise_view's or dequantise's) -> (the logits, then each
        branch's, in the view's frame: view, rows, lines)."""
        from_view = self.view_branch(view)
        from_rows = to_view_frame(self.row_branch(rows), along)
        from_lines = to_view_frame(self.line_branch(rows), along)
        return from_view + from_rows + from_lines, from_view, from_rows, from_lines

    def forward(self, view: torch.Tensor, rows: torch.Tensor, along: torch.Tensor):
        return self.classify(normalise_view(view), normalise_view(rows), along)[0]

    def every_turn(self, view: torch.Tensor, rows: torch.Tensor, along: torch.Tensor):
        """Normalised copies -> logits (4, N, 4): the page read again after each further quarter
        turn a = 0..3, each row a's logits counted back to the page as given (so that they can be
        averaged: `vote`). A turned page's copies are the given ones rearranged, as
        orientation_data.quarter_turned rearranges cached ones: the view turns with the page; the
        rows, laid along the lines, stay or make a half turn, and the axis swaps on odd turns. So
        the row branch runs twice (the rows, and their half turn), the view branch four times,
        and the line branch once (its vote on the half turn is minus its vote, by construction)."""
        n = view.shape[0]
        views = torch.cat([quarter_turn(view, a) for a in range(TURNS)], 0)
        from_views = self.view_branch(views)
        both = self.row_branch(torch.cat([rows, rows.flip(2).flip(3)], 0))
        rows_as_given, rows_half = both[:n], both[n:]
        lines = self.line_branch(rows)
        keep, swapped = along, 1.0 - along
        out = []
        for a in range(TURNS):
            # whether turn a puts the rows upside down (quarter_turned's `flip`)
            flip = (0.0, 1.0 - along, 1.0, along)[a]
            flip = torch.as_tensor(flip, dtype=view.dtype).reshape(-1, 1)
            in_rows = (1.0 - flip) * (rows_as_given + lines) + flip * (rows_half - lines)
            logits = from_views[a * n : (a + 1) * n] + to_view_frame(
                in_rows, keep if a % 2 == 0 else swapped
            )
            out.append(torch.roll(logits, -a, dims=1))  # back[:, k] = logits[:, k + a]
        return torch.stack(out, 0)


def quarter_turn(x: torch.Tensor, a: int) -> torch.Tensor:
    """(N, C, H, W) turned a quarter turns counter-clockwise, as numpy.rot90 turns a picture
    (torch.rot90 has no ONNX export)."""
    if a % 4 == 1:
        return x.transpose(2, 3).flip(2)
    if a % 4 == 2:
        return x.flip(2).flip(3)
    if a % 4 == 3:
        return x.transpose(2, 3).flip(3)
    return x


def vote(every: torch.Tensor, temperature: torch.Tensor | float = 1.0) -> torch.Tensor:
    """`every_turn`'s logits (4, N, 4) -> (N, 4) the mean of their softmaxes at `temperature`:
    the probability of each turn, the four readings agreeing or not."""
    return torch.stack([softmax_written_out(x / temperature) for x in every], 0).mean(0)


def turn_pairs(probabilities: torch.Tensor) -> torch.Tensor:
    """(N, 4) weights over the quarter turns -> (N, 2) the cos, sin they sum to: a one-hot row
    gives that turn exactly."""
    p = probabilities
    return torch.stack([p[:, 0] - p[:, 2], p[:, 1] - p[:, 3]], 1)


def softmax_written_out(logits: torch.Tensor) -> torch.Tensor:
    """softmax over dim 1 from Exp, Sub, Div and elementwise Max: the Softmax and ReduceMax ops
    have no CUDA kernel in the export's allow-list."""
    top = torch.maximum(
        torch.maximum(logits[:, 0:1], logits[:, 1:2]),
        torch.maximum(logits[:, 2:3], logits[:, 3:4]),
    )
    e = torch.exp(logits - top)
    return e / e.sum(1, keepdim=True)


def best_turn(probabilities: torch.Tensor) -> torch.Tensor:
    """(N, 4) -> one-hot (N, 4) of the most probable turn (the first of ties), without ArgMax,
    CumSum or GreaterOrEqual (none has a CUDA kernel in the allow-list)."""
    top = torch.maximum(
        torch.maximum(probabilities[:, 0:1], probabilities[:, 1:2]),
        torch.maximum(probabilities[:, 2:3], probabilities[:, 3:4]),
    )
    hit = 1.0 - (probabilities < top).float()
    first, free = [], torch.ones_like(hit[:, 0])
    for k in range(TURNS):  # keep only the first hit
        first.append(hit[:, k] * free)
        free = free * (1.0 - hit[:, k])
    return torch.stack(first, 1)


def soft_targets(turns: torch.Tensor, readable: torch.Tensor, smoothing: float) -> torch.Tensor:
    """Training targets (N, 4): one-hot of `turns` (N,) smoothed, or uniform where `readable`
    (N,) is 0 (a blank page, a photo without text: no orientation to learn)."""
    one_hot = F.one_hot(turns.long(), TURNS).float()
    smoothed = one_hot * (1.0 - smoothing) + smoothing / TURNS
    uniform = torch.full_like(smoothed, 1.0 / TURNS)
    keep = readable.float()[:, None]
    return keep * smoothed + (1.0 - keep) * uniform
