"""The project's standing checks, run with the tests: ruff and mypy over the whole tree."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True)


def test_ruff_is_clean():
    result = run("ruff", "check", ".")
    assert result.returncode == 0, result.stdout[-4000:]


def test_tree_type_checks_with_mypy():
    # scripts/typecheck.py checks the packages under the stn_align names they install as
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "typecheck.py")], cwd=ROOT, capture_output=True,
        text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:]
