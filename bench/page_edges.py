"""Corner error of a projective document model with and without page-edge snapping, on synthetic
photos: bank pages through the training generator, with seeds the training never draws. The
snapping's settings (service/page_edges.py) were first chosen with this script; its margin since
on phone photos of real pages (bench/photo_snapping.py, which BENCHMARKS.md now reports).

    .venv/bin/python -m bench.page_edges --photos 300
"""

from __future__ import annotations

import sys
import time

import numpy as np

from bench.common import argument_parser
from stn_align.service.config import ServiceConfig
from stn_align.service.pipeline import AlignOptions, Pipeline

SEED = 4242  # training draws (config seed, split id, index); this never collides with those


def synthetic_photo(pages, index: int):
    """(RGB photo, true corners 4x2) for photo `index`, as the training generator makes them."""
    # The generator is on the training side (torch); it loads only when photos are made.
    from stn_align.training.documents.dataset import photograph

    rng = np.random.default_rng([SEED, index])
    ink = pages[int(rng.integers(len(pages)))]
    other = pages[int(rng.integers(len(pages)))]
    photo, quad = photograph(ink, other, rng, rng.uniform(900, 1600), 12.0, 0.08)
    return np.repeat(photo.reshape(*photo.shape[:2], 1), 3, axis=2), quad


def main(argv: list[str] | None = None) -> int:
    parser = argument_parser(__file__, __doc__)
    parser.add_argument("--model", default="doc-perspective")
    parser.add_argument("--model-dir", default="exported")
    parser.add_argument("--pages", default="runs/pages", help="the page bank (stn pages)")
    parser.add_argument("--photos", type=int, default=300)
    args = parser.parse_args(argv)

    # The training side's metrics, bank and progress bar (see synthetic_photo).
    from tqdm import tqdm

    from stn_align.training.documents import metrics
    from stn_align.training.documents.bank import load_bank

    pages = load_bank(args.pages, limit=200)
    options = AlignOptions(models=[args.model], encoding="none")
    rows = {}
    for label, setting in (("model alone", ""), ("model + page edges", args.model)):
        pipe = Pipeline.from_dir(args.model_dir, ServiceConfig(page_edges=setting, device="cpu"))
        errors, seconds = [], 0.0
        for i in tqdm(range(args.photos), desc=label):
            photo, quad = synthetic_photo(pages, i)
            start = time.perf_counter()
            corners = pipe.align(photo, options).corners
            seconds += time.perf_counter() - start
            errors.append(metrics.corner_error(corners, quad))
        pipe.close()
        rows[label] = metrics.corner_summary(errors, seconds)
    print(metrics.format_table(rows, metrics.CORNER_COLUMNS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
