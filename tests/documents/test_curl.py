"""Curled pages: seeded, bent like a book page, and undone by their own parameters."""

import cv2
import numpy as np

from stn_align.core import geometry
from stn_align.training.documents.curl import MAX_BOW, curl_page, random_curl


def flat_page() -> np.ndarray:
    page = np.full((240, 180), 255, np.uint8)
    for y in range(20, 230, 12):  # text-like lines
        cv2.line(page, (15, y), (165, y), 0, 2)
    return page


def test_curls_are_seeded_and_bounded():
    a, b = random_curl(np.random.default_rng(4)), random_curl(np.random.default_rng(4))
    assert a.shape == (32,) and a.dtype == np.float32
    assert np.array_equal(a, b)
    assert not np.array_equal(a, random_curl(np.random.default_rng(5)))
    draws = np.stack([random_curl(np.random.default_rng(i)) for i in range(50)])
    assert np.abs(draws).max() < 2 * MAX_BOW  # a bend, not a scramble
    assert np.abs(draws).mean() > 0.002  # and a bend, not the identity


def test_the_curl_bows_straight_lines():
    page = flat_page()
    params = random_curl(np.random.default_rng(1), scale=3.0)
    bent = curl_page(page, params, fill=255)
    assert bent.shape == page.shape
    rows = page.mean(1) < 200  # each flat line is one dark band of rows
    assert (bent.mean(1) < 200).sum() != rows.sum()  # bowed lines no longer fill whole rows


def test_warping_by_the_params_gives_the_flat_page_back():
    page = flat_page()
    params = random_curl(np.random.default_rng(2), scale=2.0)
    bent = curl_page(page, params, fill=255)
    map_x, map_y = geometry.sampling_maps("tps", params, page.shape, page.shape)
    back = cv2.remap(bent, map_x, map_y, cv2.INTER_LINEAR, borderValue=255)
    inner = (slice(15, -15), slice(15, -15))
    error_back = np.abs(back.astype(int) - page.astype(int))[inner].mean()
    error_bent = np.abs(bent.astype(int) - page.astype(int))[inner].mean()
    assert error_back < error_bent / 3
