import cv2
import numpy as np
import pytest

from stn_align.core.preprocess import letterbox_placement, localiser_input


def page(h: int, w: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(h, w, 1), dtype=np.uint8)


@pytest.mark.parametrize(
    ("hw", "interpolation"),
    [
        ((1106, 904), cv2.INTER_LINEAR),  # a 1 MP page to 768: under a 2x shrink
        ((1535, 1000), cv2.INTER_LINEAR),
        ((1536, 1000), cv2.INTER_AREA),  # exactly 2x: area, which averages every pixel
        ((3000, 2000), cv2.INTER_AREA),
        ((500, 400), cv2.INTER_LINEAR),  # enlarged
    ],
)
def test_letterbox_resizes_by_area_from_a_2x_shrink_on(hw, interpolation):
    image = page(*hw)
    top, left, nh, nw = letterbox_placement(hw, 768)
    want = cv2.resize(image, (nw, nh), interpolation=interpolation)
    got = localiser_input(image, 768, "letterbox", fill=7)
    assert np.array_equal(got[top : top + nh, left : left + nw, 0], want)
    assert (got[:top] == 7).all() and (got[top + nh :] == 7).all()
    assert (got[:, :left] == 7).all() and (got[:, left + nw :] == 7).all()


def test_unknown_preprocess_mode_is_named():
    with pytest.raises(ValueError, match="unknown preprocess mode 'crop'"):
        localiser_input(page(10, 10), 8, "crop")
