"""Fixtures shared by every test area."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
TEST_FONTS = ROOT / ".test-fonts"  # fetched by scripts/test-fonts.sh (setup.sh runs it)


def pytest_configure(config: pytest.Config) -> None:
    # Synthetic pages, and so the angles measured on them, depend on the fonts they are drawn
    # with: draw with the pinned set, never the machine's (subprocesses inherit this too).
    if not (TEST_FONTS / "PACKAGES").is_file():
        raise pytest.UsageError(
            f"the fonts the tests draw pages with are missing ({TEST_FONTS}): "
            "run bash scripts/setup.sh (or bash scripts/test-fonts.sh)"
        )
    os.environ["STN_FONT_DIRS"] = str(TEST_FONTS)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA} (it sits beside the checkout)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def documents_dir(shared_data: Path) -> Path:
    path = shared_data / "documents"
    if not (path / "truth.csv").is_file():
        pytest.skip(f"{path}/truth.csv not found")
    return path
