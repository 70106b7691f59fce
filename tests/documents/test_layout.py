"""The page generator: deterministic for a seed, varied across seeds, and font-independent."""

from pathlib import Path

import numpy as np
import pytest

from stn_align.training.documents.bank import build_bank, load_bank
from stn_align.training.documents.fonts import FONT_DIRS, find_fonts, font_dirs
from stn_align.training.documents.layout import PageRenderer, render_page

TEST_FONTS = Path(__file__).resolve().parents[2] / ".test-fonts"


def test_same_seed_same_page():
    assert np.array_equal(render_page(11), render_page(11))


def test_different_seeds_differ():
    a, b = render_page(1), render_page(2)
    assert a.shape != b.shape or not np.array_equal(a, b)


def test_page_has_ink_on_white_paper():
    page = render_page(5)
    assert page.dtype == np.uint8 and page.ndim == 2
    assert np.median(page) == 255  # mostly paper
    assert (page < 128).mean() > 0.005  # but some text


def test_kinds_and_scripts_vary():
    renderers = [PageRenderer(seed) for seed in range(40)]
    assert len({r.kind for r in renderers}) >= 5
    assert len({r.script for r in renderers}) >= 3


def test_hershey_fallback_without_fonts():
    page = render_page(3, fonts=())
    assert np.array_equal(page, render_page(3, fonts=()))
    assert (page < 128).mean() > 0.002


def test_tests_draw_with_the_pinned_fonts_only():
    # tests/conftest.py points STN_FONT_DIRS at the fonts scripts/test-fonts.sh fetched: the
    # recommended set of docs/documents.md, and no font of the machine's.
    fonts = find_fonts()
    assert len(fonts) == 88
    assert all(Path(f.path).is_relative_to(TEST_FONTS) for f in fonts)
    assert all("latin" in f.scripts for f in fonts)
    assert {"cyrillic", "greek", "hebrew", "arabic"} <= {s for f in fonts for s in f.scripts}


def test_font_dirs_replace_the_system_folders(monkeypatch, tmp_path):
    monkeypatch.setenv("STN_FONT_DIRS", str(tmp_path))
    assert font_dirs() == [tmp_path]
    monkeypatch.setenv("STN_FONT_DIRS", str(tmp_path / "absent"))
    with pytest.raises(ValueError, match="STN_FONT_DIRS"):
        font_dirs()
    monkeypatch.delenv("STN_FONT_DIRS")
    assert font_dirs() == [Path(d).expanduser() for d in FONT_DIRS]  # the system folders again


def test_bank_renders_once_and_loads(tmp_path):
    folder = build_bank(tmp_path / "pages", count=3, seed=7, progress=False)
    pages = load_bank(folder)
    assert len(pages) == 3
    assert np.array_equal(
        pages[1], load_bank(build_bank(folder, count=3, seed=7, progress=False))[1]
    )


def test_a_bank_of_another_seed_or_generator_version_is_refused(tmp_path):
    import json

    from stn_align.training.documents.bank import MANIFEST, VARIED_GENERATOR

    folder = build_bank(tmp_path / "varied", count=2, seed=7, progress=False, style="varied")
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["generator"] == VARIED_GENERATOR
    with pytest.raises(ValueError, match="seed 7"):
        build_bank(folder, count=2, seed=8, progress=False, style="varied")
    manifest["generator"] = VARIED_GENERATOR - 1  # drawn by an older generator
    (folder / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=f"version {VARIED_GENERATOR - 1}"):
        build_bank(folder, count=2, seed=7, progress=False, style="varied")
