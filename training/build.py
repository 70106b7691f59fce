"""Model builders, in plain-dict registries: `build_model(ModelConfig)` is the one entry point.

>>> from stn_align.training.config import ModelConfig
>>> model = build_model(ModelConfig(family="rotation", localiser="conv", input_size=64))
>>> model.predict_params(torch.zeros(2, 1, 64, 64)).shape
torch.Size([2, 2])
"""

from __future__ import annotations

import torch
from torch import nn

from stn_align.core.geometry import identity_params
from stn_align.training import classifiers, localisers
from stn_align.training.config import ModelConfig
from stn_align.training.families import build_family
from stn_align.training.model import Classifier, SpatialTransformer


def _generic(builder):
    def build(cfg: ModelConfig, num_params: int) -> nn.Module:
        return builder(
            cfg.channels,
            cfg.input_size,
            cfg.hidden,
            torch.from_numpy(identity_params(cfg.family, cfg.tps_grid)),
        )

    return build


LOCALISERS = {
    "fc": _generic(localisers.fc_localiser),
    "svhn": _generic(localisers.svhn_localiser),
    "conv": _generic(localisers.conv_localiser),
}

CLASSIFIERS = {
    "cnn": classifiers.cnn_classifier,
    "fcn": classifiers.fcn_classifier,
}


def build_transformer(cfg: ModelConfig) -> SpatialTransformer:
    if cfg.localiser not in LOCALISERS:
        raise ValueError(
            f"model.localiser: unknown {cfg.localiser!r}; expected one of {list(LOCALISERS)}"
            + (
                " (import stn_align.training.documents to add 'doc')"
                if cfg.localiser == "doc"
                else ""
            )
        )
    family = build_family(cfg.family, cfg.tps_grid)
    localiser = LOCALISERS[cfg.localiser](cfg, family.num_params)
    if cfg.localiser_init == "random":
        head = [m for m in localiser.modules() if isinstance(m, nn.Linear)][-1]
        head.reset_parameters()
    return SpatialTransformer(cfg, localiser, family)


def build_model(cfg: ModelConfig) -> nn.Module:
    """A SpatialTransformer, or a Classifier when cfg.classifier is set."""
    if cfg.classifier == "none":
        return build_transformer(cfg)
    if cfg.classifier not in CLASSIFIERS:
        raise ValueError(
            f"model.classifier: unknown {cfg.classifier!r}; expected one of {list(CLASSIFIERS)}"
        )
    transformers = (
        [] if cfg.family == "none" else [build_transformer(cfg) for _ in range(cfg.transformers)]
    )
    side = cfg.output_size or cfg.input_size if transformers else cfg.input_size
    head_channels = cfg.channels * max(1, len(transformers))
    return Classifier(
        cfg, transformers, CLASSIFIERS[cfg.classifier](head_channels, side, cfg.num_classes)
    )
