"""The real page bank's split: by source, reproducible, and disjoint."""

from stn_align.training.documents.real_pages import load_pages, split_pages, validation_sources


def test_split_is_by_source_and_covers_every_page(shared_data):
    pages = load_pages(shared_data / "pages")
    train, val = split_pages(pages, "train"), split_pages(pages, "val")
    assert len(train) + len(val) == len(pages)
    assert {p.source for p in train}.isdisjoint({p.source for p in val})
    assert {p.source for p in val} == validation_sources()
    assert 0.15 < len(val) / len(pages) < 0.3
    assert all(p.path.is_file() for p in val)
    # the record's angle follows the shared data's convention: content_angle = -skew_deg
    assert val[0].content_angle == -val[0].skew_deg
