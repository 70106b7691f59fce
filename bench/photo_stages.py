"""Where doc-perspective's corner error arises: the error after each stage of its cascade
(stage one on the small copy, stage two on the re-sampled page, each corner-patch step), the model
alone, on the validation photos its training run cached (other sources than it trained on).

A photo whose final corners are far off (over --far %) is counted by where it went wrong: the
corner patches reach only PATCH_HALF of the page's half-side, so a page stage one or two missed
stays missed. --sheet draws the worst photos with each stage's outline (true green, stage one
blue, stage two orange, final red).

    .venv/bin/python -m bench.photo_stages runs/doc-perspective/ckpt.pt --photos runs/photos
"""

from __future__ import annotations

import sys

import numpy as np

from bench.common import argument_parser


def main(argv: list[str] | None = None) -> int:
    parser = argument_parser(__file__, __doc__)
    parser.add_argument("checkpoint", help="a doc-photo training checkpoint (ckpt.pt)")
    parser.add_argument("--photos", default="runs/photos", help="its run's data.path")
    parser.add_argument("--far", type=float, default=10.0, help="%% of the diagonal counted far")
    parser.add_argument("--sheet", default="", help="write the worst 16 photos here (PNG)")
    args = parser.parse_args(argv)

    import cv2
    import torch

    from stn_align.core import geometry
    from stn_align.training.config import TrainConfig, apply_values
    from stn_align.training.documents.dataset import PhotoDataset
    from stn_align.training.documents.perspective_model import corner_error_pct
    from stn_align.training.train import load_checkpoint

    model, state = load_checkpoint(args.checkpoint)
    if not hasattr(model.localiser, "stages"):
        sys.exit(f"{args.checkpoint}: not a doc-photo checkpoint (model.localiser = doc-photo)")
    cfg = TrainConfig()
    apply_values(cfg, state["train_config"])
    cfg.data.path = args.photos
    dataset = PhotoDataset(cfg, "val")
    errors, shown = [], []
    with torch.no_grad():
        for start in range(0, len(dataset), 32):
            items = [dataset[i] for i in range(start, min(len(dataset), start + 32))]
            batch = {k: torch.stack([item[k] for item in items]) for k in items[0]}
            _, theta, _ = model(batch["image"], warp=False)
            stages = [*model.localiser.stages, theta]
            per_stage = [corner_error_pct(s, batch["params"], batch["hw"]) for s in stages]
            for j, item in enumerate(items):
                if item["has_page"] > 0:
                    errors.append([float(e[j]) for e in per_stage])
                    shown.append((start + j, [s[j].numpy().copy() for s in stages]))
    table = np.array(errors)
    final = table[:, -1]
    print(f"{len(table)} validation photos with a page ({args.checkpoint})\n")
    print(f"| After | Mean %diag | Median | <=2% | over {args.far:g}% |")
    print("|---|---|---|---|---|")
    steps = [f"corner patches, step {k + 1}" for k in range(table.shape[1] - 3)]
    for k, name in enumerate(["stage one", "stage two", *steps, "final (photo order)"]):
        e = table[:, k]
        print(f"| {name} | {e.mean():.2f} | {np.median(e):.2f} | {np.mean(e <= 2) * 100:.1f}% "
              f"| {np.mean(e > args.far) * 100:.1f}% |")  # fmt: skip
    far = final > args.far
    print(f"\n{far.sum()} photos end over {args.far:g}%: stage one's error there, median "
          f"{np.median(table[far, 0]) if far.any() else 0:.1f}%; stage two's "
          f"{np.median(table[far, 1]) if far.any() else 0:.1f}%; of the photos stage two put "
          f"within 5%, {int(((table[:, 1] < 5) & far).sum())} end over {args.far:g}%")  # fmt: skip

    if args.sheet:
        tiles = []
        for index in np.argsort(-final)[:16]:
            photo, stages = shown[index]
            item = dataset[photo]  # read again here: only the drawn photos' images are kept
            image = cv2.cvtColor(item["image"][0].numpy(), cv2.COLOR_GRAY2BGR)
            side = image.shape[0]
            outlines = [(item["params"].numpy(), (0, 200, 0)), (stages[0], (255, 0, 0)),
                        (stages[1], (0, 200, 255)), (stages[-1], (0, 0, 255))]  # fmt: skip
            for theta, colour in outlines:
                quad = (theta.reshape(4, 2) + geometry.CORNERS + 1) / 2 * side
                cv2.polylines(image, [quad.astype(np.int32)], True, colour, 2)
            cv2.putText(image, f"{final[index]:.0f}%", (5, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6,
                        (0, 0, 255), 2)  # fmt: skip
            tiles.append(cv2.resize(image, (256, 256)))
        tiles += [np.zeros_like(tiles[0])] * (-len(tiles) % 4)
        rows = [np.hstack(tiles[k : k + 4]) for k in range(0, len(tiles), 4)]
        cv2.imwrite(args.sheet, np.vstack(rows))
        print(f"wrote {args.sheet}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
