"""The differentiable bilinear sampler of the paper.

V_c(x_out) = sum_{n,m} U_c[n, m] * max(0, 1 - |x - m|) * max(0, 1 - |y - n|), where (x, y) is the
source position of x_out in input pixels. The kernel is piecewise linear in (x, y), so V has
(sub-)gradients with respect to both U and the sampling coordinates, and hence theta.

torch's grid_sample(mode="bilinear") computes exactly this sum (only four terms are non-zero), has
both gradients, and exports to the ONNX GridSample op that ONNX Runtime runs on CPU and CUDA. We use
it rather than a hand-written gather so the trained model and the exported graph share one kernel.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

PADDING_MODES = ("zeros", "border", "reflection")


def sample(image: torch.Tensor, grid: torch.Tensor, padding_mode: str = "zeros") -> torch.Tensor:
    """Sample image (N, C, H, W) at grid (N, Ho, Wo, 2), axis-frame coords, align_corners=False."""
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")
    return F.grid_sample(
        image, grid, mode="bilinear", padding_mode=padding_mode, align_corners=False
    )
