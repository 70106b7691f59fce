"""The real page bank (../shared/data/pages): its records, and its split by source.

    pages = load_pages("../shared/data/pages")                  # every page, from pages.csv
    train = split_pages(pages, "train")                         # configs/pages-split.toml
    val = split_pages(pages, "val")

Each record keeps pages.csv's columns. `content_angle` follows ../shared/data/README.md (the
content's counter-clockwise angle); pages are stored upright, so it is minus the small measured
skew, and only trusted where `skew_ok`.
"""

from __future__ import annotations

import csv
import tomllib
from dataclasses import dataclass
from pathlib import Path

DEFAULT_PAGES = Path("../shared/data/pages")
DEFAULT_SPLIT = Path(__file__).resolve().parents[2] / "configs" / "pages-split.toml"
SPLITS = ("train", "val")


@dataclass(frozen=True)
class PageRecord:
    path: Path
    source: str
    license: str
    kind: str
    script: str
    skew_deg: float  # counter-clockwise turn that straightens the page (OpenCV's sign)
    skew_ok: bool

    @property
    def content_angle(self) -> float:
        return -self.skew_deg


def load_pages(folder: str | Path = DEFAULT_PAGES) -> list[PageRecord]:
    folder = Path(folder)
    table = folder / "pages.csv"
    if not table.is_file():
        raise FileNotFoundError(f"{table} not found (the real page bank sits in ../shared/data)")
    with table.open(newline="") as f:
        return [
            PageRecord(
                path=folder / row["file"],
                source=row["source_repo"],
                license=row["license"],
                kind=row["kind"],
                script=row["script"],
                skew_deg=float(row["skew_deg"]),
                skew_ok=row["skew_ok"] == "1",
            )
            for row in csv.DictReader(f)
        ]


def validation_sources(split_file: str | Path = DEFAULT_SPLIT) -> set[str]:
    with Path(split_file).open("rb") as f:
        return set(tomllib.load(f)["validation"])


def split_pages(
    pages: list[PageRecord], split: str, split_file: str | Path = DEFAULT_SPLIT
) -> list[PageRecord]:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    held_out = validation_sources(split_file)
    unknown = held_out - {p.source for p in pages}
    if unknown:
        raise ValueError(f"{split_file}: validation sources not in the bank: {sorted(unknown)}")
    return [p for p in pages if (p.source in held_out) == (split == "val")]
