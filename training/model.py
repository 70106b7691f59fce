"""The Spatial Transformer: localiser + family + sampler, and a classifier behind it for end-to-end
training.

Inputs are pixel values in [0, 255] (uint8 or float) of shape (N, C, S, S); the model normalises
them itself, so the exported graph takes raw pixels.
"""

from __future__ import annotations

import torch
from torch import nn

from stn_align.training.config import ModelConfig
from stn_align.training.families import Family
from stn_align.training.sampler import sample


class Normalise(nn.Module):
    def __init__(self, mean: float, std: float):
        super().__init__()
        self.mean, self.std = mean, std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # One multiply and one add, not divide, subtract, divide: one pass fewer over the input,
        # which for the document models is a full-size page.
        return x.float() * (1.0 / (255.0 * self.std)) + (-self.mean / self.std)


class SpatialTransformer(nn.Module):
    def __init__(self, cfg: ModelConfig, localiser: nn.Module, family: Family):
        super().__init__()
        self.config = cfg
        self.normalise = Normalise(cfg.mean, cfg.std)
        self.localiser = localiser
        self.family = family

    def predict_params(self, x: torch.Tensor) -> torch.Tensor:
        """Pixels (N, C, S, S) -> the family's parameters theta (N, P)."""
        return self.family.params(self.localiser(self.normalise(x)))

    @property
    def output_names(self) -> tuple[str, ...]:
        """The localiser graph's outputs: theta, and whatever else the localiser declares (e.g.
        doc-rotation's confidence, see stn_align.core.contract.OUTPUTS)."""
        return tuple(getattr(self.localiser, "output_names", ("theta",)))

    def predict_outputs(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Pixels (N, C, S, S) -> theta and the localiser's other outputs, as output_names."""
        if self.output_names == ("theta",):
            return (self.predict_params(x),)
        outputs = getattr(self.localiser, "outputs")  # noqa: B009 (an nn.Module attribute)
        theta, *rest = outputs(self.normalise(x))
        return (self.family.params(theta), *rest)

    def forward(self, x: torch.Tensor, out_hw: tuple[int, int] | None = None):
        """Pixels -> (normalised image warped by the predicted theta, theta)."""
        theta = self.predict_params(x)
        in_hw = (int(x.shape[-2]), int(x.shape[-1]))
        grid = self.family.grid(theta, in_hw, out_hw or in_hw)
        return sample(self.normalise(x), grid), theta


class Classifier(nn.Module):
    """Optional transformers in front of a classifier. With two, their outputs are stacked along
    channels (2xST-CNN). With none, it is the plain CNN/FCN baseline."""

    def __init__(self, cfg: ModelConfig, transformers: list[SpatialTransformer], head: nn.Module):
        super().__init__()
        self.config = cfg
        self.normalise = Normalise(cfg.mean, cfg.std)
        self.transformers = nn.ModuleList(transformers)
        self.head = head

    def forward(self, x: torch.Tensor):
        """Pixels -> (logits, list of theta per transformer)."""
        if not self.transformers:
            return self.head(self.normalise(x)), []
        side = self.config.output_size or self.config.input_size
        outputs = [st(x, (side, side)) for st in self.transformers]
        warped = torch.cat([w for w, _ in outputs], dim=1)
        return self.head(warped), [theta for _, theta in outputs]
