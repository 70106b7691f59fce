"""`stn train` and `stn export`. torch is imported inside the handlers, so `stn --help` and the
serving commands work in an install without the training extra."""

from __future__ import annotations

import argparse
import json
import sys


def _need_torch() -> None:
    try:
        import torch  # noqa: F401
    except ImportError:
        sys.exit("stn train/export need the training extra: pip install 'stn-align[train]'")


def run_train(args: argparse.Namespace) -> int:
    _need_torch()
    from training.config import ConfigError, load_config
    from training.train import train

    overrides = list(args.set or [])
    for key in ("seed", "steps", "out_dir", "device", "resume"):
        value = getattr(args, key)
        if value is not None and value is not False:
            overrides.append(f"{key}={value}")
    try:
        cfg = load_config(args.config, overrides)
    except ConfigError as err:
        print(f"config error: {err}", file=sys.stderr)
        return 2
    metrics = train(cfg)
    print(json.dumps({"out_dir": cfg.out_dir, **metrics}, indent=2))
    return 0


def run_export(args: argparse.Namespace) -> int:
    _need_torch()
    from training.export import export_model
    from training.model import SpatialTransformer
    from training.train import load_checkpoint

    try:
        model, state = load_checkpoint(args.checkpoint)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not isinstance(model, SpatialTransformer):
        if not getattr(model, "transformers", None):
            print("error: this checkpoint has no spatial transformer to export", file=sys.stderr)
            return 2
        model = model.transformers[0]  # an end-to-end model: ship its first transformer
    metrics = {k: v for k, v in state.get("metrics", {}).items() if isinstance(v, int | float)}
    report = export_model(
        model,
        args.output,
        name=args.name,
        input_channels=args.input_channels,
        metrics={**metrics, "step": state.get("step")},
    )
    print(json.dumps(report, indent=2))
    return 0


def add_commands(subparsers) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a spatial transformer (supervised or end-to-end)",
        description="Train from a TOML/YAML config; flags and --set override its keys. Writes "
        "OUT_DIR/ckpt.pt (with the model config inside) and OUT_DIR/metrics.jsonl.",
    )
    p.add_argument("--config", help="TOML or YAML config file (see configs/)")
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set model.family=rotation (repeatable)",
    )
    p.add_argument("--seed", type=int, help="random seed (config key seed)")
    p.add_argument("--steps", type=int, help="optimisation steps (config key steps)")
    p.add_argument("--out-dir", dest="out_dir", help="where checkpoints and logs go")
    p.add_argument("--device", help="auto (default: CUDA when available), cpu, cuda, cuda:N")
    p.add_argument("--resume", action="store_true", help="continue from OUT_DIR/ckpt.pt")
    p.set_defaults(run=run_train)

    p = subparsers.add_parser(
        "export",
        help="export a checkpoint to ONNX (localiser + warper) and verify it",
        description="Write NAME.onnx (localiser) and NAME.warp.onnx (warper), then check them with "
        "onnx.checker, the CUDA op allow-list and ONNX Runtime vs PyTorch at two batch sizes.",
    )
    p.add_argument("checkpoint", help="a ckpt.pt written by stn train")
    p.add_argument("-o", "--output", required=True, help="output path, e.g. exported/NAME.onnx")
    p.add_argument("--name", help="model name stored in the metadata (default: file stem)")
    p.add_argument(
        "--input-channels",
        type=int,
        choices=(1, 3),
        default=None,
        help="channels the graph takes (default: the model's); 3 with a grey model "
        "puts the RGB-to-grey conversion inside the graph",
    )
    p.add_argument(
        "--input-dtype",
        choices=("uint8", "float32"),
        default="uint8",
        help="dtype of the localiser's image input; pixels are in [0, 255] either way",
    )
    p.set_defaults(run=run_export)
