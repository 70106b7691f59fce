"""Phone photos (photos.py, textures.py), their cache and dataset, and the doc-photo localiser:
the geometry the labels rest on, the corner order, and a toy run of doc-perspective's recipe."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from stn_align.core import geometry
from stn_align.training.documents import photos, textures
from stn_align.training.documents.dataset import turn
from stn_align.training.documents.perspective_model import (
    PhotoCascade,
    corner_error_pct,
    cyclic_corner_loss,
    page_coverage,
    photo_order,
)
from stn_align.training.documents.photo_eval import outline_error
from stn_align.training.documents.photo_eval import photo_order as photo_order_np

ROOT = Path(__file__).resolve().parents[2]


def _page(h=200, w=150) -> np.ndarray:
    """A white page, black in its own top-left quarter, so the corner TL can be told apart."""
    page = np.full((h, w, 3), 250, np.uint8)
    page[: h // 4, : w // 4] = 0
    return page


@pytest.mark.parametrize("seed", range(6))
def test_photo_corners_are_where_the_page_lands(seed):
    rng = np.random.default_rng(seed)
    photo, quad, cond = photos.phone_photo(_page(), rng, 400, "eval")
    assert photo.dtype == np.uint8 and photo.ndim == 3 and max(photo.shape[:2]) == 400
    assert geometry.is_convex(quad)
    # The black quarter is drawn next to the page's own TL corner: sample inside it, a tenth of
    # the way along the page's diagonal from TL.
    spot = quad[0] + 0.1 * (quad[2] - quad[0])
    x, y = (int(round(v)) for v in spot)
    h, w = photo.shape[:2]
    if 0 <= x < w and 0 <= y < h:
        other = quad[2] + 0.1 * (quad[0] - quad[2])  # the same spot seen from BR: white paper
        ox, oy = (int(round(v)) for v in other)
        if 0 <= ox < w and 0 <= oy < h:
            assert photo[y, x].mean() < photo[oy, ox].mean()
    assert cond["corners_out"] == int(((quad < 0) | (quad > np.array([w, h]))).any(axis=1).sum())
    assert 0.1 < cond["coverage"] < 1.0 or cond["corners_out"]


def test_camera_places_corners_out_of_frame_when_asked():
    outside = 0
    for seed in range(20):
        placed = photos.camera(np.random.default_rng(seed), (0.7, 1.0), (300, 400), 0.5, True)
        if placed is not None:
            hom, quad, _ = placed
            plane = np.array([[-0.35, -0.5], [0.35, -0.5], [0.35, 0.5], [-0.35, 0.5]])
            np.testing.assert_allclose(photos._project(hom, plane), quad, atol=1e-6)
            count = int(photos._outside(quad, (300, 400)).sum())
            assert 1 <= count <= 2
            outside += 1
    assert outside > 5


def test_every_surface_is_drawn_and_in_range():
    rng = np.random.default_rng(0)
    for kind in textures.KINDS:
        out = textures.surface(kind, rng, (60, 80), [_page()])
        assert out.shape == (60, 80, 3) and out.dtype == np.float32
        assert out.min() >= 0 and out.max() <= 255 and out.std() > 0.5, kind


def test_blank_photo_has_no_page():
    photo, cond = photos.blank_photo(np.random.default_rng(3), 300, "train")
    assert photo.shape[2] == 3 and "desk" in cond


def test_randomise_draws_random_desks_and_several_shadows_for_training_photos_only():
    kinds, shadows = set(), set()
    for seed in range(12):
        _, _, cond = photos.phone_photo(_page(), np.random.default_rng(seed), 200, "train", None, 1)
        kinds.add(cond["desk"])
        shadows.add(cond["shadow"])
    assert kinds == {textures.RANDOMISED}
    assert photos.RANDOM_SHADOW in shadows and shadows <= {"none", photos.RANDOM_SHADOW}
    for seed in range(12):  # the default, 0: only the drawn kinds, as before the option
        _, _, cond = photos.phone_photo(_page(), np.random.default_rng(seed), 200, "train")
        assert cond["desk"] in textures.TRAIN_KINDS and cond["shadow"] != photos.RANDOM_SHADOW
    _, cond = photos.blank_photo(np.random.default_rng(1), 200, "train", 1.0)
    assert cond["desk"] in ("wall", textures.RANDOMISED)
    with pytest.raises(ValueError, match="eval recipe stays fixed"):
        photos.phone_photo(_page(), np.random.default_rng(0), 200, "eval", None, 0.5)
    with pytest.raises(ValueError, match="randomise must be a share in"):
        photos.blank_photo(np.random.default_rng(0), 200, "train", 1.5)


def test_several_shadows_are_the_union_of_two_to_four_drawn_shapes(monkeypatch):
    quad = np.array([[60.0, 40], [240, 50], [230, 190], [70, 180]])
    draw, parts = photos.shadow_mask, []

    def spy(rng, shape, hw, quad, angle=None):
        mask = draw(rng, shape, hw, quad, angle)
        parts.append((shape, mask))
        return mask

    monkeypatch.setattr(photos, "shadow_mask", spy)
    for seed in range(4):
        parts.clear()
        mask = photos.shadow_mask(
            np.random.default_rng(seed), photos.RANDOM_SHADOW, (240, 300), quad
        )
        *drawn, (outer, _) = parts
        assert outer == photos.RANDOM_SHADOW and 2 <= len(drawn) <= 4
        assert all(shape in photos.SHADOWS for shape, _ in drawn)
        np.testing.assert_array_equal(mask, np.max([m for _, m in drawn], axis=0))
        assert set(np.unique(mask)) <= {0.0, 1.0}


def test_photo_order_starts_at_the_corner_whose_edge_runs_right():
    # A square turned by 30 degrees counter-clockwise on screen, listed from another corner.
    a = math.radians(-30)
    square = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * 0.5
    turned = square @ np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]]).T
    listed = np.roll(turned, 2, axis=0)
    got = photo_order(torch.tensor(listed[None], dtype=torch.float32))[0].numpy()
    np.testing.assert_allclose(got, turned, atol=1e-6)
    pixels = (listed + 1) * 50  # the NumPy twin, in pixels of a square photo
    np.testing.assert_allclose(photo_order_np(pixels, (100, 100)), (turned + 1) * 50, atol=1e-9)


def test_cyclic_loss_and_outline_error_ignore_where_the_order_starts():
    unit = torch.from_numpy(geometry.CORNERS).float()
    corners = torch.tensor([[[-0.5, -0.6], [0.4, -0.5], [0.5, 0.6], [-0.4, 0.5]]])
    truth = (corners - unit).reshape(1, 8)  # theta: the corners' displacements
    shifted = (torch.roll(corners, 1, dims=1) - unit).reshape(1, 8)
    scale = torch.ones(1, 2)
    assert float(cyclic_corner_loss(shifted, truth, scale)) < 1e-2
    hw = torch.tensor([[300.0, 400.0]])
    assert float(corner_error_pct(shifted, truth, hw)) < 1e-4
    assert float(corner_error_pct(shifted + 0.1, truth, hw)) > 1.0
    quad = np.array([[10.0, 10], [90, 12], [88, 70], [12, 68]])
    assert outline_error(np.roll(quad, 3, axis=0), quad) < 1e-9


@pytest.mark.parametrize("variant", range(8))
def test_turns_and_mirrors_move_the_corners_with_the_pixels(variant):
    image = np.zeros((64, 64), np.uint8)
    corners = np.array([[-0.75, -0.75], [0.5, -0.6], [0.6, 0.5], [-0.6, 0.7]])
    x, y = ((corners[0] + 1) * 32).astype(int)
    image[y - 1 : y + 2, x - 1 : x + 2] = 255  # a bright dot on the page's first corner
    out, moved, _ = turn(image, corners, (48, 64), variant)
    ys, xs = np.nonzero(out)
    dot = np.array([xs.mean() + 0.5, ys.mean() + 0.5]) / 32 - 1
    assert np.abs(moved - dot).min(axis=1).min() < 0.05  # some corner sits on the dot
    area = 0.5 * np.sum(
        moved[:, 0] * np.roll(moved[:, 1], -1) - moved[:, 1] * np.roll(moved[:, 0], -1)
    )
    assert area > 0  # still clockwise on screen (y down)


def test_coarse_size_sets_what_stage_one_sees_and_is_checked():
    model = PhotoCascade(1, 128, 16, coarse_size=32).eval()
    theta, logit = model(torch.rand(2, 1, 128, 128))
    assert theta.shape == (2, 8) and logit.shape == (2, 1)
    assert model.coarse.fc[0].in_features == 24 * 8 * 8  # a 32 px copy: 8 x 8 cells after the stem
    assert PhotoCascade(1, 128, 16).coarse.fc[0].in_features == 32 * 8 * 8  # 64 px, one block more
    with pytest.raises(ValueError, match="model.coarse_size"):
        PhotoCascade(1, 128, 16, coarse_size=48)


def test_page_coverage_is_the_share_of_each_cell_inside_the_page():
    whole = torch.from_numpy(geometry.CORNERS).float()[None]
    assert torch.equal(page_coverage(whole, 8), torch.ones(1, 8, 8))
    left = torch.tensor([[[-1.0, -1.0], [0.0, -1.0], [0.0, 1.0], [-1.0, 1.0]]])
    covered = page_coverage(left, 8)[0]
    assert torch.equal(covered[:, :4], torch.ones(8, 4))
    assert torch.equal(covered[:, 4:], torch.zeros(8, 4))
    assert torch.equal(page_coverage(left.flip(1), 8), page_coverage(left, 8))  # either way round
    # A turned square: the shares add up to its area (a quarter of the frame's 4) within sampling.
    square = torch.tensor([[[0.0, -0.7], [0.7, 0.0], [0.0, 0.7], [-0.7, 0.0]]])
    area = page_coverage(square, 8, samples=8).sum() * (2 / 8) ** 2
    assert abs(area.item() - 2 * 0.7**2) < 0.03


def test_context_blocks_start_as_the_identity_and_the_page_mask_trains_stage_one():
    torch.manual_seed(0)
    plain = PhotoCascade(1, 128, 16, coarse_size=64).eval()
    wider = PhotoCascade(1, 128, 16, coarse_size=64, context=2, page_mask=0.5).eval()
    missing, unexpected = wider.load_state_dict(plain.state_dict(), strict=False)
    assert (
        not unexpected
        and missing
        and all(k.startswith(("context.", "mask_head.")) for k in missing)
    )
    x = torch.rand(3, 1, 128, 128)
    assert torch.allclose(wider(x)[0], plain(x)[0], atol=1e-6)  # untrained blocks change nothing

    batch = {
        "params": torch.zeros(3, 8),  # the page fills the photo
        "scale": torch.ones(3, 2),
        "has_page": torch.tensor([1.0, 1.0, 0.0]),
        "hw": torch.tensor([[128, 128]] * 3),
    }
    wider.train()
    theta, logit = wider(x)
    loss, stats = wider.loss(theta, logit, batch)
    loss.backward()
    assert stats["mask_loss"] > 0
    assert wider.mask_head is not None and wider.mask_head.weight.grad is not None
    assert wider.coarse.features[0].weight.grad.abs().sum() > 0
    wider.eval()  # in eval mode (export, validation) no mask is computed or scored
    _, eval_stats = wider.loss(*wider(x), batch)
    assert "mask_loss" not in eval_stats


def test_a_randomised_cache_says_so_and_is_not_taken_for_a_plain_one(
    tmp_path, fake_bank, monkeypatch
):
    from stn_align.training.documents import photo_cache, real_pages
    from stn_align.training.documents.photo_cache import PhotoCache, build_cache

    pages, split = fake_bank
    monkeypatch.setattr(
        photo_cache, "split_pages", lambda records, s: real_pages.split_pages(records, s, split)
    )
    plain = PhotoCache(build_cache(tmp_path / "a", "train", 3, 5, 64, 1, pages_dir=pages))
    mixed = PhotoCache(
        build_cache(tmp_path / "b", "train", 3, 5, 64, 1, pages_dir=pages, randomise=1.0)
    )
    assert plain.matches("train", 3, 5, 64) and not plain.matches("train", 3, 5, 64, 0, 1.0)
    assert mixed.matches("train", 3, 5, 64, 0, 1.0) and not mixed.matches("train", 3, 5, 64)
    assert any(not np.array_equal(plain.image(i), mixed.image(i)) for i in range(3))


def test_the_confidence_refit_says_whether_the_warp_beats_the_whole_photo():
    from stn_align.training.build import build_model
    from stn_align.training.config import load_config

    cfg = load_config(
        ROOT / "configs" / "doc-perspective.toml",
        ["model.input_size=64", "model.coarse_size=32", "model.hidden=16"],
    )
    torch.manual_seed(0)
    stn = build_model(cfg.model).eval()
    with torch.no_grad():  # an untrained cascade answers the identity; move it off
        for p in stn.parameters():
            p.add_(0.05 * torch.randn_like(p))
    images = torch.rand(24, 1, 64, 64) * 255
    with torch.no_grad():
        theta, _ = stn.predict(images)
    assert theta.abs().min() > 0
    # Items 0-11: the true page is twice as far from the whole photo as the corners found, so
    # the warp helps; 12-17: the page lies the other way, nearer the whole photo than the
    # corners; 18-23: no page at all.
    params = torch.cat([2 * theta[:12], -0.5 * theta[12:18], torch.zeros(6, 8)])
    has_page = torch.tensor([1.0] * 18 + [0.0] * 6)
    items = [
        {"image": images[i], "params": params[i], "hw": torch.tensor([64, 64]),
         "has_page": has_page[i]}
        for i in range(24)
    ]  # fmt: skip
    fits = []
    for start in (0.0, 3.0):  # whatever the layer held before, the refit starts from zero
        torch.nn.init.constant_(stn.localiser.confidence.weight, start)
        stats = stn.localiser.fit_confidence(stn, items, count=24, batch=8)
        assert stats == {"confidence_items": 24, "confidence_positive": 0.5}
        fits.append(stn.localiser.confidence.weight.detach().clone())
    assert torch.equal(fits[0], fits[1])
    with torch.no_grad():
        sure = torch.sigmoid(stn.predict(images)[1][:, 0])
    assert sure[:12].min() > 0.5 > sure[12:].max()
