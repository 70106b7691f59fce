"""The OpenCV contour peer, corner ordering and peer discovery (no optional package needed)."""

import cv2
import numpy as np

from stn_align.training.documents import metrics, peers


def test_order_corners():
    pts = np.array([[100, 90], [10, 12], [12, 95], [98, 8]], float)
    ordered = peers.order_corners(pts)
    assert ordered.tolist() == [[10, 12], [98, 8], [100, 90], [12, 95]]


def test_contour_finds_a_white_page_on_a_dark_table():
    image = np.full((400, 300, 3), 40, np.uint8)
    quad = np.array([[60, 50], [250, 70], [240, 360], [50, 340]], np.int32)
    cv2.fillConvexPoly(image, quad, (235, 235, 235))
    found = peers.contour_corners(image)
    assert found is not None
    assert metrics.corner_error(found, quad.astype(float)) < 1.5


def test_contour_gives_up_on_a_blank_image():
    assert peers.contour_corners(np.full((100, 100), 128, np.uint8)) is None


def test_available_peers_are_a_subset():
    assert set(peers.available_peers("rotation")) <= set(peers.ROTATION_PEERS)
    assert "contour + 4 corners (OpenCV)" in peers.available_peers("perspective")
    found, missing = peers.available_peers("rotation"), peers.missing_peers("rotation")
    assert set(found) | set(missing) == set(peers.ROTATION_PEERS)
