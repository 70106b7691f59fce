"""Fixtures shared by every test area."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


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
