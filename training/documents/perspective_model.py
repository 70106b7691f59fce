"""doc-perspective's localiser for phone photos: a three-stage projective cascade with a corner
confidence (`model.localiser = "doc-photo"`).

1. Stage one (model.Stage) predicts the page's corners on a small copy of the whole photo
   (`model.coarse_size`, 64 px by default). Optionally (`model.coarse_context`) residual dilated
   convs over its last map let every cell see the whole photo before the corners are read, and
   (`model.page_mask`) a 1x1 conv on that map learns, in training only, which cells the page
   covers: a dense target that a shadow's edge or a desk's tiles do not satisfy.
2. The page is re-sampled by that homography into a 128 px square from a copy at half the input
   size, and stage two predicts residual corners there (as in model.Cascade).
3. Corner patches: around each corner of stage two's estimate, a PATCH x PATCH patch is re-sampled
   from the full input (384 px), in the page's own frame and turned so that every corner looks like
   a top-left one (the page towards the patch's lower right); one small conv net, shared by the
   four corners, moves each corner within the patch. It runs REFINE_STEPS times, each time on
   patches around the corners it moved. A second channel marks which pixels of a patch fall inside
   the photo, so a corner outside the frame is placed from the edges that lead to it.

Every step is element-wise maths, convolutions and GridSample, so the graph stays within the CUDA
op allow-list (training/export.py). Output corners are ordered by the photo (`photo_order`): TL is
the corner from which the page's next edge, clockwise, runs most nearly to the right in the photo's
normalised frame, so the output is the page turned by a quarter turn or two at most; doc-rotation,
chained after, decides which way up. Inside the cascade the order is whatever stage one chose (the
loss compares corners up to a cyclic shift, `cyclic_corner_loss`).

The confidence is a logit from the three stages' hidden features. In the loop it learns whether the
final corners are within CONFIDENT_PCT of the page diagonal (low on photos with no page), which
steers the shared features towards corner quality; the layer that ships is refitted once the loop
is done (fit_confidence) to say whether warping by the corners beats not warping at all: a page is
there and its corners are nearer to it than the photo's own. The exported graph gives its sigmoid.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from stn_align.core.geometry import CORNERS
from stn_align.training.documents.model import MIN_DIVISOR, Stage
from stn_align.training.families import Projective

PATCH = 32  # side of a corner patch, samples
PATCH_HALF = 0.12  # half its side, in the page's own frame (the page spans -1..1)
REFINE_STEPS = 2
# Confidence target: a page whose corners are found within this % of its diagonal (the snapping's
# reach in the service is about as far). A tighter target (2%) made the confidence of pages the
# model finds roughly as low as that of photos with no page (validation photos, model card).
CONFIDENT_PCT = 8.0
# A quarter turn (clockwise on screen) of each corner's patch, so all four look like the TL one.
TURNS = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[0.0, -1.0], [1.0, 0.0]],
                      [[-1.0, 0.0], [0.0, -1.0]], [[0.0, 1.0], [-1.0, 0.0]]])  # fmt: skip


class CornerNet(nn.Module):
    """Patches (M, 2, PATCH, PATCH) -> (hidden features (M, hidden), moves (M, 2), in units of
    PATCH_HALF)."""

    def __init__(self, hidden: int):
        super().__init__()
        layers: list[nn.Module] = []
        cin = 2
        for width in (16, 32, 48):
            layers += [
                nn.Conv2d(cin, width, 3, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]
            cin = width
        side = PATCH // 8
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.fc = nn.Sequential(nn.Linear(cin * side * side, hidden), nn.ReLU(inplace=True))
        self.head = nn.Linear(hidden, 2)
        nn.init.zeros_(self.head.weight)  # untrained, it moves nothing
        nn.init.zeros_(self.head.bias)

    def forward(self, patches: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.fc(self.features(patches))
        return hidden, self.head(hidden)


class ContextBlock(nn.Module):
    """A residual block of two 3x3 convs dilated by 2 over stage one's last map (8 cells a side at
    64-128 px): two blocks let every cell see the whole photo. It starts as the identity (the last
    BatchNorm's scale is zero), so a block added to a recipe changes nothing untrained."""

    def __init__(self, width: int):
        super().__init__()
        last = nn.BatchNorm2d(width)
        nn.init.zeros_(last.weight)
        self.body = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=2, dilation=2, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, padding=2, dilation=2, bias=False),
            last,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.body(x))


class PhotoCascade(nn.Module):
    corners: torch.Tensor
    turns: torch.Tensor
    offsets: torch.Tensor
    gives_confidence = True  # forward returns (raw theta, confidence logit)

    def __init__(
        self,
        channels: int,
        size: int,
        hidden: int,
        coarse_size: int = 64,
        context: int = 0,
        page_mask: float = 0.0,
    ):
        super().__init__()
        if size % 64:
            raise ValueError(f"model.input_size must be a multiple of 64 for doc-photo, got {size}")
        if coarse_size < 32 or size % coarse_size:
            raise ValueError(
                f"model.coarse_size must be at least 32 and divide model.input_size ({size}),"
                f" got {coarse_size}"
            )
        self.size = size
        self.coarse_size = coarse_size
        self.family = Projective()
        identity = torch.zeros(8)
        self.coarse = Stage(channels, coarse_size, hidden, identity)
        width = [m for m in self.coarse.features if isinstance(m, nn.Conv2d)][-1].out_channels
        self.context = nn.ModuleList(ContextBlock(width) for _ in range(context))
        self.page_mask = page_mask  # the mask loss's weight; 0: no mask head
        self.mask_head = nn.Conv2d(width, 1, 1) if page_mask > 0 else None
        self.mask_logits = torch.zeros(0)
        self.fine = Stage(channels, 128, hidden, identity)
        self.refine = CornerNet(hidden)
        self.confidence = nn.Linear(3 * hidden, 1)
        self.register_buffer("corners", torch.from_numpy(CORNERS).float(), persistent=False)
        self.register_buffer("turns", TURNS.clone(), persistent=False)
        steps = (torch.arange(PATCH, dtype=torch.float32) * 2 + 1) / PATCH - 1
        gy, gx = torch.meshgrid(steps, steps, indexing="ij")
        offsets = torch.stack([gx, gy], dim=-1).reshape(-1, 2) * PATCH_HALF  # (P*P, 2)
        self.register_buffer("offsets", offsets, persistent=False)
        self.stages: list[torch.Tensor] = []  # the last forward's corner estimates, for the loss
        self.hidden = torch.zeros(0)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = x.shape[0]
        coarse = self.coarse
        cells = coarse.features[:-1](F.avg_pool2d(x, self.size // self.coarse_size))
        for block in self.context:
            cells = block(cells)
        if self.mask_head is not None and self.training:
            self.mask_logits = self.mask_head(cells)[:, 0]
        h1 = coarse.fc(cells.flatten(1))
        first = coarse.head(h1)
        half = F.avg_pool2d(x, 2)
        # Stages see their input re-sampled by the estimate so far, with no gradient back into it
        # (each stage still learns through the composition, as in model.Cascade).
        grid = self.family.grid(first.detach(), (128, 128), (128, 128))
        page = F.grid_sample(half, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        h2 = self.fine.fc(self.fine.features(page))
        second = self.compose(first, self.corners + self.fine.head(h2).reshape(n, 4, 2))
        stages = [first, second]
        estimate = second
        h3 = h2.new_zeros(n, h2.shape[1])
        for _ in range(REFINE_STEPS):
            patches = self.patches(x, estimate.detach())
            hidden, moves = self.refine(patches)
            moved = self.corners + PATCH_HALF * torch.einsum(
                "kij,nkj->nki", self.turns, moves.reshape(n, 4, 2)
            )
            estimate = self.compose(estimate, moved)
            stages.append(estimate)
            h3 = hidden.reshape(n, 4, -1).mean(dim=1)
        self.stages = stages
        self.hidden = torch.cat([h1, h2, h3], dim=1)  # what the confidence reads (fit_confidence)
        logit = self.confidence(self.hidden)
        ordered = photo_order(self.corners + estimate.reshape(n, 4, 2)) - self.corners
        return ordered.reshape(n, 8), logit

    def patches(self, x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        """(N*4, 2, PATCH, PATCH): the grey patch around each corner of `theta` and whether each
        sample lies inside the photo."""
        n = x.shape[0]
        # In the page's own frame: each corner plus the patch's offsets, turned per corner.
        local = (
            self.corners[None, :, None, :]
            + torch.einsum("kij,pj->kpi", self.turns, self.offsets)[None]
        )  # (1, 4, P*P, 2)
        points = self.map_points(theta, local.expand(n, -1, -1, -1).reshape(n, -1, 2))
        grid = points.reshape(n, 4 * PATCH, PATCH, 2)
        grey = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        # The share of each sample's pixel inside the photo, a ramp one pixel wide at the frame's
        # edge rather than a step: a point on the edge itself must not flip between runtimes.
        half_size = x.shape[-1] / 2.0
        share = ((1.0 - grid.abs()) * half_size + 0.5).clamp(0.0, 1.0)
        inside = share[..., 0] * share[..., 1]
        both = torch.cat([grey, inside[:, None]], dim=1)  # (N, 2, 4P, P)
        return both.reshape(n, 2, 4, PATCH, PATCH).transpose(1, 2).reshape(n * 4, 2, PATCH, PATCH)

    def map_points(self, theta: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        """Points (N, M, 2) in the page's own frame -> the photo's axis frame, through theta."""
        homog = torch.cat([points, torch.ones_like(points[..., :1])], dim=2)
        mapped = torch.einsum("nij,nmj->nmi", self.family.frame_matrix(theta), homog)
        # A wild guess early in training can put a point near the horizon (as in model.Cascade).
        return mapped[..., :2] / mapped[..., 2:3].clamp_min(MIN_DIVISOR)

    def compose(self, theta: torch.Tensor, corners: torch.Tensor) -> torch.Tensor:
        """Corners (N, 4, 2) given in the page's frame under `theta` -> theta of those corners."""
        return (self.map_points(theta, corners) - self.corners).reshape(-1, 8)

    @staticmethod
    def parity_images(rng, batch: int, size: int, channels: int):
        """(batch, size, size, channels) uint8 test photos for export's parity check: a light
        quad with dark lines on a noisy darker background, smoothed. On pure noise the corner
        patches amplify float rounding (1e-5 in stage two became 1e-2 at the end), so ONNX
        Runtime and PyTorch would differ by more than any tolerance that means something."""
        import cv2
        import numpy as np

        images = []
        for _ in range(batch):
            image = rng.normal(rng.uniform(30, 120), 10, (size, size)).astype(np.float32)
            quad = np.array([[0.2, 0.15], [0.8, 0.2], [0.85, 0.85], [0.15, 0.8]]) * size
            quad += rng.uniform(-0.08, 0.08, (4, 2)) * size
            cv2.fillConvexPoly(image, quad.astype(np.int32), float(rng.uniform(170, 240)))
            for y in np.linspace(0.3, 0.7, 8) * size:
                cv2.line(image, (int(0.35 * size), int(y)), (int(0.65 * size), int(y)), 40.0, 2)
            image = cv2.GaussianBlur(image, (0, 0), 1.0)
            images.append(np.repeat(image[:, :, None], channels, axis=2))
        return np.clip(np.stack(images), 0, 255).astype(np.uint8)

    def loss(self, theta, logit, batch: dict) -> tuple[torch.Tensor, dict]:
        """The training loss of the last forward (train.py asks the localiser for it): the corner
        loss of every stage (later stages weigh more), on photos with a page, and the confidence's
        cross-entropy against whether the final corners are within CONFIDENT_PCT."""
        device = theta.device
        target, scale = batch["params"].to(device), batch["scale"].to(device)
        page = batch["has_page"].to(device)
        pages = page.sum().clamp_min(1.0)
        weights = [0.25, 0.5] + [0.5 + 0.5 * (k + 1) / REFINE_STEPS for k in range(REFINE_STEPS)]
        corner = theta.new_zeros(())
        for weight, stage in zip(weights, self.stages, strict=True):
            corner = corner + weight * (cyclic_corner_loss(stage, target, scale) * page).sum()
        corner = corner / pages
        error = corner_error_pct(theta.detach(), target, batch["hw"].to(device))
        sure = ((error < CONFIDENT_PCT).float() * page).detach()
        confidence = F.binary_cross_entropy_with_logits(logit[:, 0], sure)
        loss = corner + 0.02 * confidence
        found = error[page > 0]
        stats = {
            "corner_loss": corner.item(),
            "confidence_loss": confidence.item(),
            "error_pct": found.mean().item() if len(found) else 0.0,
            "within_2pct": (found < 2.0).float().mean().item() if len(found) else 0.0,
        }
        if self.mask_head is not None and self.training:  # no mask is computed in eval mode
            side = self.mask_logits.shape[-1]
            covered = page_coverage(target.reshape(-1, 4, 2) + self.corners, side)
            mask = F.binary_cross_entropy_with_logits(
                self.mask_logits, covered * page[:, None, None]
            )
            loss = loss + self.page_mask * mask
            stats["mask_loss"] = mask.item()
        return loss, stats

    @torch.no_grad()
    def fit_confidence(self, stn: Any, dataset, count: int, batch: int = 32) -> dict:
        """Refit the confidence layer, the rest frozen, on `count` training items: logistic
        regression, from zero weights, of whether the warp helps (a page is there and its corners
        are nearer to it than the photo's own corners, the identity the service falls back to) on
        the three stages' hidden features. The loop's target (within CONFIDENT_PCT) refused pages
        found roughly, whose warp still beat the whole photo (validation photos, model card).
        Starting from zero makes the fit depend on the features alone. Returns stats."""
        was_training = stn.training
        stn.eval()
        device = self.corners.device
        features, labels = [], []
        for start in range(0, min(count, len(dataset)), batch):
            items = [dataset[i] for i in range(start, min(count, len(dataset), start + batch))]
            b = {k: torch.stack([item[k] for item in items]).to(device) for k in items[0]}
            theta, _ = stn.predict(b["image"])
            error = corner_error_pct(theta, b["params"], b["hw"])
            whole = corner_error_pct(torch.zeros_like(theta), b["params"], b["hw"])
            labels.append(((error < whole) & (b["has_page"] > 0)).float())
            features.append(self.hidden.clone())
        x, y = torch.cat(features), torch.cat(labels)
        layer = self.confidence
        nn.init.zeros_(layer.weight)
        nn.init.zeros_(layer.bias)
        with torch.enable_grad():
            optimiser = torch.optim.LBFGS(layer.parameters(), max_iter=200)

            def closure():
                optimiser.zero_grad()
                loss = F.binary_cross_entropy_with_logits(layer(x)[:, 0], y)
                # The bias is held too: with one class only (every warp helps, as in a toy run)
                # an unheld bias runs off and the sigmoid reaches exactly 1.
                loss = loss + 1e-4 * (layer.weight.pow(2).sum() + layer.bias.pow(2).sum())
                loss.backward()
                return loss

            optimiser.step(closure)
        stn.train(was_training)
        return {"confidence_items": len(y), "confidence_positive": float(y.mean())}


def photo_order(corners: torch.Tensor) -> torch.Tensor:
    """Corners (N, 4, 2), clockwise on screen, re-labelled so that TL is the corner from which the
    next edge (averaged with the opposite edge) runs most nearly to the right. Comparisons and
    sums only (no ArgMax, which the CUDA allow-list lacks)."""
    rolled = [torch.roll(corners, -k, dims=1) for k in range(4)]
    scores = []
    for r in rolled:
        along = (r[:, 1] - r[:, 0]) + (r[:, 2] - r[:, 3])
        scores.append(along[:, 0] / (along * along).sum(dim=1).clamp_min(1e-12).sqrt())
    picks = []
    for k in range(4):
        pick = torch.ones_like(scores[k])
        for j in range(4):
            if j < k:
                pick = pick * (scores[j] < scores[k]).float()
            elif j > k:  # ties go to the first; 1 - (a < b) for b <= a (no LessOrEqual op)
                pick = pick * (1.0 - (scores[k] < scores[j]).float())
        picks.append(pick)
    ordered = picks[0][:, None, None] * rolled[0]
    for pick, r in zip(picks[1:], rolled[1:], strict=True):
        ordered = ordered + pick[:, None, None] * r
    return ordered


def page_coverage(corners: torch.Tensor, side: int, samples: int = 4) -> torch.Tensor:
    """(N, side, side): the share of each cell of a side x side grid over the photo's normalised
    frame that the page (its corners (N, 4, 2) in order, either way round, a convex quad) covers,
    from samples x samples points a cell."""
    fine = side * samples
    steps = (torch.arange(fine, dtype=corners.dtype, device=corners.device) * 2 + 1) / fine - 1
    gy, gx = torch.meshgrid(steps, steps, indexing="ij")
    points = torch.stack([gx, gy], dim=-1).reshape(1, 1, -1, 2)  # (1, 1, P, 2)
    start = corners[:, :, None, :]  # (N, 4, 1, 2)
    edge = torch.roll(corners, -1, dims=1)[:, :, None, :] - start
    rel = points - start
    cross = edge[..., 0] * rel[..., 1] - edge[..., 1] * rel[..., 0]  # (N, 4, P)
    inside = ((cross >= 0).all(dim=1) | (cross <= 0).all(dim=1)).to(corners.dtype)
    return F.avg_pool2d(inside.reshape(-1, 1, fine, fine), samples)[:, 0]


def cyclic_corner_loss(
    theta: torch.Tensor, target: torch.Tensor, scale: torch.Tensor, eps: float = 1e-3
) -> torch.Tensor:
    """Per sample, the mean distance between predicted and true corners (Charbonnier, in the
    photo's axis frame scaled by its aspect `scale` (N, 2): each side over the longer), at the
    best of the four cyclic shifts of the prediction: the corner order is the photo's, which
    jumps where a turned page's two corners tie."""
    pred = theta.reshape(-1, 4, 2) + CORNERS_T.to(theta)
    true = target.reshape(-1, 4, 2) + CORNERS_T.to(theta)
    losses = []
    for k in range(4):
        diff = (torch.roll(pred, -k, dims=1) - true) * scale[:, None, :]
        losses.append(((diff * diff).sum(-1) + eps * eps).sqrt().mean(-1))
    return torch.stack(losses, dim=1).min(dim=1).values


def corner_error_pct(theta: torch.Tensor, target: torch.Tensor, hw: torch.Tensor) -> torch.Tensor:
    """Per sample, the mean corner distance in pixels at the best cyclic shift, as % of the true
    page's diagonal (as metrics.corner_error, order-free)."""
    half = torch.stack([hw[:, 1], hw[:, 0]], dim=1).float()[:, None, :] / 2
    pred = (theta.reshape(-1, 4, 2) + CORNERS_T.to(theta)) * half
    true = (target.reshape(-1, 4, 2) + CORNERS_T.to(theta)) * half
    diagonal = ((true[:, 2] - true[:, 0]).norm(dim=1) + (true[:, 3] - true[:, 1]).norm(dim=1)) / 2
    best = (
        torch.stack(
            [(torch.roll(pred, -k, dims=1) - true).norm(dim=2).mean(dim=1) for k in range(4)], 1
        )
        .min(dim=1)
        .values
    )
    return best / diagonal.clamp_min(1e-6) * 100


CORNERS_T = torch.from_numpy(CORNERS).float()
