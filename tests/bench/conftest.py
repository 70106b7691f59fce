"""The benchmark scripts run as `python -m bench.NAME` from the repository root, which puts the
root on the import path; their tests do the same, whichever way and wherever pytest was started."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def run_from_the_root(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))
    monkeypatch.chdir(ROOT)
