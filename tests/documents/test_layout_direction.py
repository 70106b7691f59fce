"""The layout direction reader: its symmetry, its page, its training loop and the vote weights."""

import pytest
import torch

from stn_align.core.preprocess import localiser_input
from stn_align.training.documents.direction import votes
from stn_align.training.documents.layout import render_page
from stn_align.training.documents.layout_direction import (
    LayoutDirection,
    choose_weights,
    layout_page,
    train_layout,
)
from stn_align.training.documents.skew import page_ink, turned_rows


def test_untrained_reader_has_no_opinion():
    assert torch.equal(LayoutDirection(96)(torch.rand(3, 1, 96, 96)), torch.zeros(3))


def test_half_turn_negates_the_vote():
    torch.manual_seed(0)
    net = LayoutDirection(96).eval()  # dropout off, as in the model
    torch.nn.init.normal_(net.head.weight)
    pages = torch.rand(4, 1, 96, 96)
    with torch.no_grad():
        forward, backward = net(pages), net(pages.flip(2, 3))
    assert forward.abs().min() > 0
    assert torch.allclose(forward, -backward, atol=1e-5)


def test_page_size_must_fit_the_cells():
    try:
        LayoutDirection(100)
    except ValueError as err:
        assert "multiple of 48" in str(err)
    else:
        raise AssertionError("a 100 px layout page was accepted")


def test_layout_page_of_a_page_turned_by_a_half_turn_is_the_page_turned_back():
    page = render_page(41)
    x = torch.from_numpy(localiser_input(page[:, :, None], 384, "letterbox", 0)).float()
    x = x.permute(2, 0, 1)[None] / 127.5 - 1.0
    upright = layout_page(turned_rows(page_ink(x, -1.0), torch.tensor([[1.0, 0.0]])))
    turned = layout_page(turned_rows(page_ink(x.flip(2, 3), -1.0), torch.tensor([[1.0, 0.0]])))
    assert upright.shape == (1, 1, 96, 96)
    assert upright.sum() > 0
    # The rows sample one point in four along the lines, so the half turn lands on other points.
    assert torch.allclose(upright, turned.flip(2, 3), atol=0.05)
    # Rows sampled more densely make the same square page, each pixel a mean of more samples.
    dense = layout_page(turned_rows(page_ink(x, -1.0), torch.tensor([[1.0, 0.0]]), along=1))
    # Sparse samples hit or miss thin strokes, so single pixels differ, but not the page's ink.
    assert dense.shape == upright.shape
    assert float((dense - upright).abs().mean()) < 0.2 * float(upright.mean())
    assert float(dense.mean()) == pytest.approx(float(upright.mean()), rel=0.05)


def toy_pages(n, size, upright, generator):
    """Toy layouts: faint lines of text, and a heavy title near the top (upright) or bottom."""
    pages = torch.zeros(n, 1, size, size)
    for i in range(n):
        for top in range(size // 4, size - 6, 6):
            end = int(torch.randint(size // 2, size - 4, (1,), generator=generator))
            pages[i, 0, top : top + 2, 4:end] = 0.3  # ragged right, as in the real thing
        pages[i, 0, 4:12, size // 4 : 3 * size // 4] = 1.0
    pages = torch.where(upright[:, None, None, None], pages, pages.flip(2, 3))
    return pages + 0.05 * torch.rand(n, 1, size, size, generator=generator)


def test_training_learns_a_toy_layout():
    generator = torch.Generator().manual_seed(2)
    upright = torch.rand(256, generator=generator) < 0.5
    cache = {"page": toy_pages(256, 96, upright, generator), "agree": upright.float() * 2 - 1}
    torch.manual_seed(0)
    net = LayoutDirection(96)
    train_layout(net, cache, steps=60, batch_size=32, seed=0)
    held_out = torch.rand(64, generator=generator) < 0.5
    vote = votes(net, toy_pages(64, 96, held_out, generator))
    assert ((vote > 0) == held_out).float().mean() > 0.95


def test_vote_weights_are_chosen_where_each_reader_helps():
    agree = torch.tensor([1.0, -1.0] * 50)
    index = torch.arange(100)
    line = torch.where(index % 4 == 0, -agree, agree) * 0.5  # wrong on a quarter of the pages
    layout = torch.where(index % 4 == 0, agree, agree * 0.1)  # sure where the line reader errs
    cascade = torch.zeros(100)  # no opinion
    chosen, accuracy, alone = choose_weights(line, layout, cascade, agree)
    assert chosen["layout_weight"] > 0.5
    assert chosen["reader_weight"] == 0.0
    assert accuracy == 1.0
    assert alone["line"] == 0.75
    assert alone["line+layout+cascade"] == 1.0


def test_a_layout_reader_sure_and_wrong_gets_a_bound():
    # The layout reader is right and fairly sure on most pages but wildly sure and wrong on a few
    # where the line reader is right: only a bound on its vote lets both count.
    agree = torch.tensor([1.0, -1.0] * 50)
    index = torch.arange(100)
    line = torch.where(index % 10 == 1, -agree, agree * 4.0)  # wrong, not by much, on a tenth
    layout = torch.where(index % 10 == 0, -agree * 40.0, agree * 3.0)  # wrong on another tenth
    chosen, accuracy, alone = choose_weights(line, layout, torch.zeros(100), agree)
    assert chosen["layout_clip"] < 8.0
    assert accuracy == 1.0
    assert alone["line+layout+cascade, unbounded"] < 1.0


def test_the_command_fits_the_reader_then_can_choose_the_weights_again(tmp_path):
    import dataclasses

    from stn_align.training.build import build_model
    from stn_align.training.config import model_config_from_dict
    from stn_align.training.documents.bank import build_bank
    from stn_align.training.documents.graft import graft, load_snap
    from stn_align.training.documents.layout_direction import main

    cfg = model_config_from_dict(
        {"family": "rotation", "localiser": "doc", "input_size": 64, "channels": 1, "hidden": 16}
    )
    state = {"model": build_model(cfg).state_dict(), "model_config": dataclasses.asdict(cfg)}
    torch.save(state, tmp_path / "cascade.pt")
    graft(tmp_path / "cascade.pt", tmp_path / "snap.pt")
    bank = build_bank(tmp_path / "bank", count=3, seed=5, progress=False)
    val_bank = build_bank(tmp_path / "val", count=3, seed=6, progress=False)
    common = ["--bank", str(bank), "--val-bank", str(val_bank), "--workers", "0"]
    sizes = ["--pages", "16", "--val-pages", "8", "--steps", "3"]
    assert main([str(tmp_path / "snap.pt"), "-o", str(tmp_path / "fit.pt"), *common, *sizes]) == 0
    fit, saved = load_snap(tmp_path / "fit.pt")
    assert saved["layout_direction"]["steps"] == 3
    assert float(fit.layout.head.weight.detach().abs().max()) > 0  # it was trained
    again_args = [str(tmp_path / "fit.pt"), "-o", str(tmp_path / "again.pt"), *common]
    args = [*again_args, "--val-pages", "8", "--weights-only"]
    assert main(args) == 0
    again, saved = load_snap(tmp_path / "again.pt")
    assert saved["layout_direction"]["weights_only"] is True
    assert "layout_final_loss" not in saved["layout_direction"]
    kept, fitted = again.layout.state_dict(), fit.layout.state_dict()
    assert all(torch.equal(kept[name], fitted[name]) for name in fitted)  # only weights chosen
    assert float(again.layout_weight) == float(fit.layout_weight)  # the same pages, same choice
    missing = [str(tmp_path / "fit.pt"), "-o", str(tmp_path / "x.pt"), "--val-bank", "nowhere"]
    assert main(missing) == 2
