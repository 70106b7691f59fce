"""What each distribution installs: the serving wheel holds core and service only, under the
one namespace `stn_align`, so `pip install stn-align` carries no training code, page generator or
experiments."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def build_wheel(sources: list[str], tmp: Path, project: str = ".") -> list[str]:
    """Build from a copy holding only `sources` (a build writes build/ folders beside them)."""
    copy, out = tmp / "src", tmp / "dist"
    for name in sources:
        if (ROOT / name).is_dir():
            shutil.copytree(
                ROOT / name,
                copy / name,
                ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build"),
            )
        else:
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(ROOT / name, copy / name)
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out)]
    result = subprocess.run(
        [*command, str(copy / project)], capture_output=True, text=True, timeout=600
    )
    if result.returncode != 0:
        pytest.fail(f"pip wheel {project} failed:\n{result.stderr[-3000:]}")
    (wheel,) = out.glob("*.whl")
    return zipfile.ZipFile(wheel).namelist()


@pytest.mark.slow
def test_serving_wheel_holds_core_and_service_only(tmp_path):
    names = build_wheel(["pyproject.toml", "README.md", "core", "service"], tmp_path)
    code = [n for n in names if not n.startswith("stn_align-")]  # skip the .dist-info folder
    assert {n.split("/")[0] for n in code} == {"stn_align"}  # one namespace, no top-level others
    assert {n.split("/")[1] for n in code} == {"core", "service"}
    assert "stn_align/__init__.py" not in code  # a namespace the other distributions add to
    for must in ("stn_align/core/geometry.py", "stn_align/core/contract.py",
                 "stn_align/service/server.py", "stn_align/service/client.py",
                 "stn_align/service/proto/alignment_pb2.py"):  # fmt: skip
        assert must in code
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert entry_points.startswith("stn_align-")


@pytest.mark.slow
def test_training_wheel_adds_the_training_package(tmp_path):
    names = build_wheel(["training"], tmp_path, "training")
    code = [n for n in names if not n.startswith("stn_align_training-")]
    assert {"/".join(n.split("/")[:2]) for n in code} == {"stn_align/training"}
    assert "stn_align/training/documents/synth.py" in code
    assert not any("pyproject" in n or "egg-info" in n for n in code)
