"""`stn evaluate` and `stn pages`: document model evaluation and the synthetic page bank.

Nothing heavy is imported here; each handler imports what it needs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def add_commands(subparsers) -> None:
    ev = subparsers.add_parser(
        "evaluate",
        help="score a document model (and peers) on real pages",
        description=(
            "Score a document model on the pages in DIR (images + truth.csv with "
            "file,content_angle). Rotation mode turns each page by K seeded angles over the whole "
            "circle; perspective mode lays each page on K seeded backgrounds under random "
            "homographies; dewarp mode bends each upright page by K seeded book curls. Prints "
            "a table and writes OUT/results.json, OUT/errors.png "
            "(sorted error curves) and OUT/contact.png."
        ),
    )
    ev.add_argument("dir", help="folder with the images and truth.csv")
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
        help="also score the installed peers (deskew, jdeskew, Tesseract OSD; contour for "
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
    pages.set_defaults(run=run_pages)


def _mode_for(model_dir: str, model: str | None) -> str:
    if not model:
        return "rotation"
    path = Path(model_dir) / f"{model}.onnx"
    if not path.is_file():
        return "rotation"
    import onnx

    meta = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    return {"projective": "perspective", "tps": "dewarp"}.get(meta.get("family", ""), "rotation")


def run_evaluate(args) -> int:
    from training.documents import evaluate, figures

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
        )
    except (FileNotFoundError, ValueError, LookupError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    out = Path(args.out or f"runs/evaluate/{args.model or 'peers'}-{mode}")
    out.mkdir(parents=True, exist_ok=True)
    print(evaluate.table(report))
    if report["missing_peers"]:
        print("peers not installed: " + ", ".join(report["missing_peers"]))
    keep = {
        k: report[k]
        for k in ("mode", "dir", "model", "rotations", "seed", "summary", "missing_peers")
    }
    (out / "results.json").write_text(json.dumps(keep, indent=1) + "\n")
    figures.error_curves(report["errors"], out / "errors.png", mode)
    figures.contact_sheet(report["sheet"], out / "contact.png")
    if args.predictions:
        evaluate.write_predictions(args.predictions, report)
    print(f"wrote {out}/results.json, errors.png, contact.png")
    return 0


def run_pages(args) -> int:
    from training.documents.bank import build_bank

    if args.count < 1:
        print("--count must be at least 1", file=sys.stderr)
        return 2
    try:
        folder = build_bank(args.out, args.count, args.seed, args.workers)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{args.count} pages in {folder}")
    return 0
