"""Task networks for end-to-end mode: an image (N, C, S, S) -> class logits (N, K).

The CNN and FCN follow the shapes of the paper's MNIST baselines, scaled to the input size.
"""

from __future__ import annotations

from torch import nn


def cnn_classifier(channels: int, size: int, num_classes: int) -> nn.Module:
    """conv[32,5]-max[2]-conv[64,5]-max[2]-fc[256]-fc[K]."""
    side = size // 4
    return nn.Sequential(
        nn.Conv2d(channels, 32, 5, padding=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 5, padding=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * side * side, 256),
        nn.ReLU(inplace=True),
        nn.Dropout(0.3),
        nn.Linear(256, num_classes),
    )


def fcn_classifier(channels: int, size: int, num_classes: int) -> nn.Module:
    """Two hidden layers of 256 units on the flattened image."""
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(channels * size * size, 256),
        nn.ReLU(inplace=True),
        nn.Linear(256, 256),
        nn.ReLU(inplace=True),
        nn.Dropout(0.3),
        nn.Linear(256, num_classes),
    )
