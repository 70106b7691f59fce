"""Make the shipped doc-rotation checkpoint from a trained rotation cascade.

    python -m training.documents.graft runs/doc-rotation/ckpt.pt -o runs/doc-rotation/snap.pt
    stn export runs/doc-rotation/snap.pt -o exported/doc-rotation.onnx

The cascade (trained by `stn train --config configs/doc-rotation.toml`, input 128) becomes the
quadrant reader of skew.SnapRotation (input 3 x 128 = 384); the projection-profile skew has no
weights, so nothing else is trained. The new checkpoint keeps the training config and records the
source checkpoint.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import torch

from training.build import build_model
from training.config import model_config_from_dict


def graft(source: str | Path, output: str | Path) -> Path:
    state = torch.load(source, map_location="cpu", weights_only=False)
    cfg = model_config_from_dict(state["model_config"])
    if cfg.family != "rotation" or cfg.localiser != "doc" or cfg.input_size >= 384:
        raise ValueError(f"{source}: expected a rotation `doc` cascade with input under 384")
    snap_cfg = dataclasses.replace(cfg, input_size=cfg.input_size * 3)
    model = build_model(snap_cfg)
    weights = {
        k.replace("localiser.", "localiser.reader.", 1) if k.startswith("localiser.") else k: v
        for k, v in state["model"].items()
    }
    model.load_state_dict(weights, strict=True)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "model": model.state_dict(),
            "model_config": dataclasses.asdict(snap_cfg),
            "train_config": state.get("train_config", {}),
            "step": state.get("step", 0),
            "metrics": state.get("metrics", {}),
            "grafted_from": str(source),
        },
        output,
    )
    return output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="ckpt.pt of a trained rotation cascade")
    parser.add_argument("-o", "--output", required=True, help="where to write the new checkpoint")
    args = parser.parse_args(argv)
    try:
        print(graft(args.checkpoint, args.output))
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
