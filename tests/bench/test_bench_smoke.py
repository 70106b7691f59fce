"""Every benchmark script imports and answers `python -m bench.NAME --help`, so bench/ cannot rot
between the (slow, machine-dependent) benchmark runs. Nothing here times anything; conftest.py puts
the repository root on the import path, as `python -m` from the root does."""

from __future__ import annotations

import importlib
import pkgutil
import runpy
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = sorted(m.name for m in pkgutil.iter_modules([str(ROOT / "bench")]) if m.name != "common")


def test_the_scripts_are_found():
    assert {"documents_throughput", "service_bench", "localiser_alternating"} <= set(SCRIPTS)


@pytest.mark.parametrize("name", ["common", *SCRIPTS])
def test_module_imports(name):
    module = importlib.import_module(f"bench.{name}")
    assert module.__doc__, f"bench/{name}.py has no docstring"


@pytest.mark.parametrize("name", SCRIPTS)
def test_help_as_python_m(name, monkeypatch, capsys):
    # Run the module as __main__, as `python -m` does; drop an earlier import of it first, as
    # runpy warns (an error here) about running a module that is already imported.
    monkeypatch.delitem(sys.modules, f"bench.{name}", raising=False)
    monkeypatch.setattr(sys, "argv", [f"bench/{name}.py", "--help"])
    with pytest.raises(SystemExit) as stop:
        runpy.run_module(f"bench.{name}", run_name="__main__", alter_sys=True)
    assert stop.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: python -m bench.{name} ")
    source = (ROOT / "bench" / f"{name}.py").read_text()
    assert f"python -m bench.{name}" in source, "the docstring shows no command"
