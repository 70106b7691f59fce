"""Make a doc-rotation checkpoint (skew.SnapRotation) from a trained rotation cascade.

    python -m stn_align.training.documents.graft runs/doc-rotation/ckpt.pt \
        -o runs/doc-rotation/snap.pt
    python -m stn_align.training.documents.direction runs/doc-rotation/snap.pt \
        -o runs/doc-rotation/final.pt
    stn export runs/doc-rotation/final.pt -o exported/doc-rotation.onnx --name doc-rotation

The cascade (trained by `stn train --config configs/doc-rotation.toml`, input 128) becomes the
layout reader of SnapRotation, whose input is 6 x 128 = 768; the profile skew has no weights and the
line-profile direction reader starts untrained (stn_align.training.documents.direction fits it).

The source may also be an exported doc-rotation ONNX file: its cascade weights are read back
(ONNX export folds each BatchNorm into the convolution before it, so the batch norms come back as
identities carrying the folded bias), and so are its line and layout readers' and the weights of
the votes, where it has them: the checkpoint then gives the file's outputs, so a shipped model can
be re-exported (after a change to the weightless front, say) without its training runs'
checkpoints. Fitting a reader again (stn_align.training.documents.direction, .layout_direction)
chooses the weights of the votes again.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import cast

import torch
from torch import nn

from stn_align.training.build import build_model
from stn_align.training.config import model_config_from_dict

LOCALISER_PREFIX = "stn.localiser."
READER_PREFIX = LOCALISER_PREFIX + "reader."


def graft(source: str | Path, output: str | Path) -> Path:
    if str(source).endswith(".onnx"):
        cfg, weights, rest, extra = _from_onnx(Path(source))
    else:
        state = torch.load(source, map_location="cpu", weights_only=False)
        cfg = model_config_from_dict(state["model_config"])
        if cfg.family != "rotation" or cfg.localiser != "doc" or cfg.input_size >= 384:
            raise ValueError(f"{source}: expected a rotation `doc` cascade with input under 384")
        weights = {k.removeprefix("localiser."): v for k, v in state["model"].items()}
        extra = {k: state.get(k, {}) for k in ("train_config", "metrics")}
        extra["step"] = state.get("step", 0)
        rest = {}
    snap_cfg = dataclasses.replace(cfg, input_size=cfg.input_size * 6)
    snap = _snap(build_model(snap_cfg))
    snap.get_submodule("reader").load_state_dict(weights, strict=True)
    # The other readers and the votes' weights, where the file has them. A bias that cancels in
    # a reader's antisymmetric vote is pruned from the graph: the built module's value stands in.
    current = snap.state_dict()
    for key, value in rest.items():
        if key not in current or current[key].numel() != value.numel():
            raise ValueError(f"{source}: {key} in the graph does not fit the model")
        current[key] = value.reshape(current[key].shape)
    snap.load_state_dict(current, strict=True)
    state = {"model_config": dataclasses.asdict(snap_cfg), "grafted_from": str(source), **extra}
    return save_snap(snap, state, output)


def _snap(model: nn.Module) -> nn.Module:
    """The doc-rotation localiser (rotation_model.SnapRotation) of a built model."""
    return model.get_submodule("localiser")


def load_snap(path: str | Path):
    """(SnapRotation in eval mode, the checkpoint dict) from a checkpoint made here."""
    state = torch.load(path, map_location="cpu", weights_only=False)
    model = build_model(model_config_from_dict(state["model_config"]))
    model.load_state_dict(state["model"], strict=True)
    return _snap(model).eval(), state


def save_snap(snap, state: dict, output: str | Path, **extra) -> Path:
    """Write a checkpoint holding `snap` as the localiser, keeping the rest of `state`."""
    model = build_model(model_config_from_dict(state["model_config"]))
    _snap(model).load_state_dict(snap.state_dict(), strict=True)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    torch.save({**state, **extra, "model": model.state_dict()}, output)
    return output


def save_fitted(snap, state: dict, args, section: str, metrics: dict) -> Path:
    """save_snap with the fitting run's arguments and metrics kept under `section`, the metrics
    printed, then the path."""
    output = save_snap(snap, state, args.output, **{section: {**vars(args), **metrics}})
    for key, value in metrics.items():
        print(f"{key}: {value:.4f}" if isinstance(value, float) else f"{key}: {value}")
    print(output)
    return output


def _from_onnx(path: Path):
    import onnx
    from onnx import numpy_helper

    from stn_align.training.documents.model import Cascade
    from stn_align.training.export import read_metadata

    meta = read_metadata(path)
    graph = onnx.load(str(path)).graph
    arrays = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in graph.initializer}
    named = _prefixed(arrays, READER_PREFIX)
    if not named:
        raise ValueError(f"{path}: no doc-rotation cascade weights ({READER_PREFIX}*) in the graph")
    hidden = named["coarse.fc.0.weight"].shape[0]
    # The cascade sees a sixth of the input (a third in the first shipped files, input 384).
    sizes = [int(meta["input_size"]) // k for k in (6, 3)]
    size = next((n for n in sizes if _fits(Cascade("rotation", 1, n, hidden), named)), None)
    if size is None:
        raise ValueError(f"{path}: the cascade weights fit no input size in {sizes}")
    # The folded convolutions keep the graph's order, which is the cascade's module order.
    folded = [
        (node.input[1], node.input[2])
        for node in graph.node
        if node.op_type == "Conv" and len(node.input) == 3 and node.input[1].startswith("onnx::")
    ]
    cascade = Cascade("rotation", 1, size, hidden)
    weights = dict(cascade.state_dict())
    weights.update(named)
    convs = [k for k, v in weights.items() if k.endswith(".weight") and v.dim() == 4]
    if len(convs) != len(folded):
        raise ValueError(f"{path}: {len(folded)} folded convolutions, expected {len(convs)}")
    for key, (w, b) in zip(convs, folded, strict=True):
        weights[key] = arrays[w]
        prefix, index, _ = key.rsplit(".", 2)
        norm = f"{prefix}.{int(index) + 1}"
        eps = float(cast(nn.BatchNorm2d, cascade.get_submodule(norm)).eps)
        weights[f"{norm}.weight"] = torch.ones_like(arrays[b])
        weights[f"{norm}.bias"] = arrays[b]
        weights[f"{norm}.running_mean"] = torch.zeros_like(arrays[b])
        weights[f"{norm}.running_var"] = torch.full_like(arrays[b], 1.0 - eps)
    fields = {"family": "rotation", "localiser": "doc", "input_size": size, "channels": 1}
    cfg = model_config_from_dict({**fields, "hidden": hidden, "letterbox_fill": 0})
    # Everything of the localiser's but the cascade: the line and layout readers (files from
    # before a reader was fitted have none of its weights) and the votes' weights.
    localiser = _prefixed(arrays, LOCALISER_PREFIX)
    rest = {k: v for k, v in localiser.items() if not k.startswith("reader.")}
    # The layout vote's bound is folded into its Clip node's inputs (min, max) at export.
    bounds = [
        node.input[2]
        for node in graph.node
        if node.op_type == "Clip" and node.input[0].startswith("/localiser/layout/")
    ]
    # The exporter may share an equal initializer through an Identity (a bound of 1 and a vote
    # weight of 1 become one array): follow those to the array.
    identities = {n.output[0]: n.input[0] for n in graph.node if n.op_type == "Identity"}
    bound = bounds[0] if len(bounds) == 1 else ""
    while bound in identities:
        bound = identities[bound]
    if bound in arrays:
        rest["layout_clip"] = arrays[bound]
    return cfg, weights, rest, {"read_back_from": meta.get("name", str(path))}


def _prefixed(arrays: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The arrays named `prefix`*, keyed by the rest of the name."""
    return {k.removeprefix(prefix): v for k, v in arrays.items() if k.startswith(prefix)}


def _fits(module: torch.nn.Module, weights: dict) -> bool:
    shapes = {k: v.shape for k, v in module.state_dict().items()}
    return all(shapes.get(k) == v.shape for k, v in weights.items())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "source", help="ckpt.pt of a trained rotation cascade, or an exported doc-rotation.onnx"
    )
    parser.add_argument("-o", "--output", required=True, help="where to write the new checkpoint")
    args = parser.parse_args(argv)
    try:
        print(graft(args.source, args.output))
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
