"""The `doc` localiser: which document model a ModelConfig asks for. Registered into
stn_align.training.build.LOCALISERS when stn_align.training.documents is imported."""

from __future__ import annotations

import torch
from torch import nn

from stn_align.core.geometry import identity_params
from stn_align.training.documents.model import Cascade, Stage
from stn_align.training.documents.perspective_model import PhotoCascade
from stn_align.training.documents.rotation_model import RotationLocaliser


def build_localiser(cfg, num_params: int) -> nn.Module:
    """stn_align.training.build.LOCALISERS["doc"]: ModelConfig -> raw theta of the family.

    rotation (doc-rotation): the projection-profile skew, then which way up from the orientation
    classifier (rotation_model.RotationLocaliser, trained by fit.py);
    tps (doc-dewarp): one Stage, its head the spline's control-point displacements; otherwise the
    learned two-stage cascade above.
    """
    if cfg.family == "rotation":
        fill = (cfg.letterbox_fill / 255.0 - cfg.mean) / cfg.std  # the padding, once normalised
        return RotationLocaliser(cfg.channels, cfg.input_size, fill)
    if cfg.family == "tps":
        # One stage: splines do not compose into a spline, so there is no cascade to build.
        identity = torch.from_numpy(identity_params("tps", cfg.tps_grid))
        return Stage(cfg.channels, cfg.input_size, cfg.hidden, identity)
    model = Cascade(cfg.family, cfg.channels, cfg.input_size, cfg.hidden)
    if model.family.num_params != num_params:
        raise ValueError(f"{cfg.family} has {model.family.num_params} parameters, not {num_params}")
    return model


def build_photo_localiser(cfg, num_params: int) -> nn.Module:
    """stn_align.training.build.LOCALISERS["doc-photo"]: doc-perspective for phone photos, three
    stages and a corner confidence (perspective_model.PhotoCascade); projective only."""
    if cfg.family != "projective" or num_params != 8:
        raise ValueError(f"the doc-photo localiser is projective only, not {cfg.family!r}")
    return PhotoCascade(
        cfg.channels, cfg.input_size, cfg.hidden, cfg.coarse_size, cfg.coarse_context, cfg.page_mask
    )
