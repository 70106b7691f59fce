"""Which way up after the chain doc-perspective+doc-rotation on phone photos of validation pages:
doc-perspective orders the corners by the photo, doc-rotation turns the page upright, so the
chain's output top-left should land on the page's own top-left corner. Counts it on photos whose
outline was found (within 2% of the diagonal).

    .venv/bin/python -m bench.photo_chain --seed 11
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from bench.common import argument_parser


def main(argv: list[str] | None = None) -> int:
    parser = argument_parser(__file__, __doc__)
    parser.add_argument("--model-dir", default="exported")
    parser.add_argument("--pages", default="../shared/data/pages")
    parser.add_argument("--count", type=int, default=1, help="photos per validation page")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args(argv)

    from stn_align.core import geometry
    from stn_align.service.config import ServiceConfig
    from stn_align.service.pipeline import AlignOptions, Pipeline
    from stn_align.training.documents import photo_eval

    pipe = Pipeline.from_dir(args.model_dir, ServiceConfig(device="cpu"))
    options = AlignOptions(models=["doc-perspective", "doc-rotation"], encoding="none")
    right = found = total = 0
    for sample in photo_eval.phone_samples(Path(args.pages), args.count, args.seed, "val"):
        result = pipe.align(sample.image, options)
        total += 1
        if photo_eval.outline_error(result.corners, sample.truth_corners) > 2:
            continue
        found += 1
        top_left = geometry.apply_matrix(result.matrix, np.array([[-0.5, -0.5]]))[0]
        nearest = int(np.argmin(np.linalg.norm(sample.truth_corners - top_left, axis=1)))
        right += nearest == 0
    pipe.close()
    print(f"{total} photos, outline within 2% on {found}; of those, the chain's output top-left "
          f"on the page's own top-left on {right}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
