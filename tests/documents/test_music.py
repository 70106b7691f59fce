"""Music pages of the varied bank: staves in both styles, from a seed, with or without fonts."""

import numpy as np

from stn_align.training.documents.fonts import Font
from stn_align.training.documents.special_pages import VariedPageRenderer


def music_pages(count: int, fonts: tuple[Font, ...] | None = None):
    """(seed, renderer, page) for the first `count` seeds that draw a music page."""
    pages = []
    for seed in range(400):
        renderer = VariedPageRenderer(seed, fonts)
        if renderer.kind == "music":
            pages.append((seed, renderer, renderer.render()))
        if len(pages) == count:
            return pages
    raise AssertionError("fewer music pages than asked for among 400 seeds")


def staff_rows(page: np.ndarray) -> int:
    """Rows that a ruled line crosses for most of the page's width."""
    return int(((page < 200).mean(axis=1) > 0.3).sum())


def test_music_pages_come_in_both_styles_with_staves():
    pages = music_pages(8)
    assert {renderer.hand for _, renderer, _ in pages} == {True, False}
    for _, _, page in pages:
        assert staff_rows(page) >= 10  # two staves at least


def test_handwritten_scores_pack_more_staves_than_engraved_ones():
    pages = music_pages(12)
    hand = [staff_rows(p) / p.shape[0] for _, r, p in pages if r.hand]
    engraved = [staff_rows(p) / p.shape[0] for _, r, p in pages if not r.hand]
    assert np.median(hand) > np.median(engraved)


def test_a_music_page_repeats_for_its_seed_and_draws_without_fonts():
    [(seed, _, page)] = music_pages(1, fonts=())
    assert np.array_equal(page, VariedPageRenderer(seed, ()).render())
    assert staff_rows(page) >= 10
