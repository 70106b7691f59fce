"""Localisation networks: an image (N, C, S, S), already normalised, -> raw parameters (N, P).

Every localiser ends in a linear layer whose weights start at zero and whose bias is the family's
identity, so training starts from the identity transform (as the paper recommends).
"""

from __future__ import annotations

import torch
from torch import nn


def identity_head(in_features: int, identity: torch.Tensor) -> nn.Linear:
    head = nn.Linear(in_features, identity.numel())
    nn.init.zeros_(head.weight)
    with torch.no_grad():
        head.bias.copy_(identity)
    return head


def conv_block(cin: int, cout: int, kernel: int = 3) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


def fc_localiser(channels: int, size: int, hidden: int, identity: torch.Tensor) -> nn.Module:
    """The paper's FCN localiser: three fully connected layers on the flattened image."""
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(channels * size * size, hidden),
        nn.ReLU(inplace=True),
        nn.Linear(hidden, hidden),
        nn.ReLU(inplace=True),
        identity_head(hidden, identity),
    )


def svhn_localiser(channels: int, size: int, hidden: int, identity: torch.Tensor) -> nn.Module:
    """The paper's SVHN localiser: conv[32,5]-max[2]-conv[32,5]-fc[32]-fc[32]-head."""
    return nn.Sequential(
        nn.Conv2d(channels, 32, 5, padding=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 32, 5, padding=2),
        nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(4),  # fixes the fc input size whatever S is
        nn.Flatten(),
        nn.Linear(32 * 16, hidden),
        nn.ReLU(inplace=True),
        nn.Linear(hidden, hidden),
        nn.ReLU(inplace=True),
        identity_head(hidden, identity),
    )


def conv_localiser(channels: int, size: int, hidden: int, identity: torch.Tensor) -> nn.Module:
    """A deeper conv net for larger inputs: blocks halve the size down to about 8 px."""
    blocks, cin, side, width = [], channels, size, 16
    while side > 8:
        blocks.append(conv_block(cin, width))
        cin, side, width = width, side // 2, min(width * 2, 128)
    return nn.Sequential(
        *blocks,
        nn.AdaptiveAvgPool2d(4),
        nn.Flatten(),
        nn.Linear(cin * 16, hidden),
        nn.ReLU(inplace=True),
        identity_head(hidden, identity),
    )
