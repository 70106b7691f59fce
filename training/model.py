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

    @property
    def has_confidence(self) -> bool:
        """Whether the localiser also gives a confidence logit (as doc-perspective's does)."""
        return bool(getattr(self.localiser, "gives_confidence", False))

    def predict(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Pixels (N, C, S, S) -> (theta (N, P), the confidence logit (N, 1) or None)."""
        out = self.localiser(self.normalise(x))
        raw, logit = out if isinstance(out, tuple) else (out, None)
        return self.family.params(raw), logit

    def predict_params(self, x: torch.Tensor) -> torch.Tensor:
        """Pixels (N, C, S, S) -> the family's parameters theta (N, P)."""
        return self.predict(x)[0]

    @property
    def output_names(self) -> tuple[str, ...]:
        """The localiser graph's outputs: theta, then whatever else the localiser gives (see
        stn_align.core.contract.OUTPUTS): a localiser either names them (`output_names`, with an
        `outputs` method: doc-rotation's two confidences) or gives a confidence logit
        (`gives_confidence`: doc-perspective's)."""
        named = getattr(self.localiser, "output_names", None)
        if named is not None:
            return tuple(named)
        return ("theta", "confidence") if self.has_confidence else ("theta",)

    def predict_outputs(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Pixels (N, C, S, S) -> the values of output_names, as the exported graph gives them."""
        if hasattr(self.localiser, "output_names"):
            outputs = getattr(self.localiser, "outputs")  # noqa: B009 (an nn.Module attribute)
            theta, *rest = outputs(self.normalise(x))
            return (self.family.params(theta), *rest)
        theta, logit = self.predict(x)
        if logit is None:
            return (theta,)
        # 1 / (1 + exp(-z)) rather than Sigmoid, which the CUDA allow-list lacks.
        return theta, torch.ones_like(logit) / (1.0 + torch.exp(-logit))

    def forward(self, x: torch.Tensor, out_hw: tuple[int, int] | None = None, warp: bool = True):
        """Pixels -> (normalised image warped by the predicted theta, theta), with the confidence
        logit third when the localiser gives one; warp=False leaves the image out (None)."""
        theta, logit = self.predict(x)
        warped = None
        if warp:
            in_hw = (int(x.shape[-2]), int(x.shape[-1]))
            grid = self.family.grid(theta, in_hw, out_hw or in_hw)
            warped = sample(self.normalise(x), grid)
        return (warped, theta) if logit is None else (warped, theta, logit)


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
