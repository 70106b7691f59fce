"""The helpers the benchmark scripts share that decide what ends up in BENCHMARKS.md."""

from __future__ import annotations

import importlib

import pytest

DOC = """# Benchmarks

Intro.

## Service

Old service text.

### Batches

Old batch text.

## Documents

Hand-written text.
"""


@pytest.fixture
def common():
    return importlib.import_module("bench.common")  # importable once conftest.py has run


def test_a_section_replaces_only_itself(common, tmp_path):
    path = tmp_path / "BENCHMARKS.md"
    path.write_text(DOC)
    common.write_section("## Service\n\nNew service text.\n", path=path)
    text = path.read_text()
    assert "New service text." in text and "Old service text." not in text
    assert "### Batches\n\nOld batch text.\n\n## Documents\n\nHand-written text.\n" in text
    common.write_section("### Batches\n\nNew batch text.", parent="## Service", path=path)
    text = path.read_text()
    assert "Old batch text." not in text
    assert text.index("New batch text.") < text.index("## Documents")
    assert text.endswith("## Documents\n\nHand-written text.\n")


def test_a_new_subsection_goes_at_the_end_of_its_parent(common, tmp_path):
    path = tmp_path / "BENCHMARKS.md"
    path.write_text(DOC)
    common.write_section("### GPU\n\nGPU text.", parent="## Service", path=path)
    text = path.read_text()
    assert text.index("Old batch text.") < text.index("### GPU") < text.index("## Documents")
    common.write_section("### CPU\n\nCPU text.", parent="## Missing", path=path)
    assert path.read_text().endswith("## Missing\n\n### CPU\n\nCPU text.\n")


def test_a_new_file_starts_with_the_title(common, tmp_path):
    path = tmp_path / "BENCHMARKS.md"
    common.write_section("## Service\n\nText.", path=path)
    assert path.read_text() == "# Benchmarks\n\n## Service\n\nText.\n"


def test_markdown_table(common):
    table = common.markdown_table(("a", "b"), [(1, "x"), (2, "y")], "rl")
    assert table.splitlines() == ["| a | b |", "|---:|---|", "| 1 | x |", "| 2 | y |"]
