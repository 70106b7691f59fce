"""Fixtures of the document tests: a made-up real page bank with pages.csv and a split file."""

import csv

import cv2
import pytest

from stn_align.training.documents.layout import render_page

HEADER = [
    "file", "source_repo", "source_path", "commit", "license", "kind", "script", "skew_deg",
    "skew_ok",
]  # fmt: skip


@pytest.fixture
def fake_bank(tmp_path):
    """(folder, split file): six small 'real' pages of three sources, in the bank's format
    (../shared/data/pages/README.md); the split file holds the third source out."""
    folder = tmp_path / "pages"
    folder.mkdir()
    rows = []
    for i in range(6):
        page = cv2.resize(render_page(500 + i), None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
        name = f"{i:03d}-book-p{i}.png"
        cv2.imwrite(str(folder / name), page)
        kind, script = ("music", "none") if i == 5 else ("book", "latin")
        rows.append([name, f"owner/source-{i % 3}", "x.png", "0" * 40, "MIT", kind, script, "0.30",
                     "1" if i % 2 == 0 else "0"])  # fmt: skip
    with (folder / "pages.csv").open("w", newline="") as f:
        csv.writer(f).writerows([HEADER, *rows])
    split = folder / "split.toml"
    split.write_text('validation = ["owner/source-2"]\n')
    return folder, split
