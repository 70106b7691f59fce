"""Rectification: resample the original image through an output->input pixel mapping.

Two backends:
- OpenCV on the CPU (`warp_matrix`, `warp_maps`): any matrix (so chained models warp once), any
  interpolation and border mode.
- The model's exported warper graph (`warp_graph`) through ONNX Runtime with I/O binding, so on a
  GPU the image goes up once and the result comes down once. It does what the graph does: one
  model's theta, bilinear, constant border.
"""

from __future__ import annotations

import cv2
import numpy as np

INTERPOLATIONS = {
    "nearest": cv2.INTER_NEAREST,
    "linear": cv2.INTER_LINEAR,
    "cubic": cv2.INTER_CUBIC,
    "area": cv2.INTER_AREA,
    "lanczos4": cv2.INTER_LANCZOS4,
}
BORDERS = {
    "constant": cv2.BORDER_CONSTANT,
    "replicate": cv2.BORDER_REPLICATE,
    "reflect": cv2.BORDER_REFLECT,
    "wrap": cv2.BORDER_WRAP,
}


def _check(interpolation: str, border: str) -> None:
    if interpolation not in INTERPOLATIONS:
        raise ValueError(
            f"unknown interpolation {interpolation!r}; expected one of {list(INTERPOLATIONS)}"
        )
    if border not in BORDERS:
        raise ValueError(f"unknown border mode {border!r}; expected one of {list(BORDERS)}")


def warp_matrix(
    image: np.ndarray,
    matrix: np.ndarray,
    out_hw: tuple[int, int],
    interpolation: str = "linear",
    border: str = "constant",
    fill: float = 255.0,
) -> np.ndarray:
    """HxWxC uint8 -> out_h x out_w x C; output pixel (x, y) samples input matrix @ (x, y, 1)."""
    _check(interpolation, border)
    h, w = out_hw
    flags = INTERPOLATIONS[interpolation] | cv2.WARP_INVERSE_MAP
    value = (float(fill),) * 4
    m = np.asarray(matrix, dtype=np.float64)
    if np.allclose(m[2], [0.0, 0.0, 1.0]):
        out = cv2.warpAffine(
            image, m[:2], (w, h), flags=flags, borderMode=BORDERS[border], borderValue=value
        )
    else:
        out = cv2.warpPerspective(
            image, m, (w, h), flags=flags, borderMode=BORDERS[border], borderValue=value
        )
    return out.reshape(h, w, image.shape[2])


def warp_maps(
    image: np.ndarray,
    map_x: np.ndarray,
    map_y: np.ndarray,
    interpolation: str = "linear",
    border: str = "constant",
    fill: float = 255.0,
) -> np.ndarray:
    """Dense maps (thin-plate splines): cv2.remap."""
    _check(interpolation, border)
    interp = INTERPOLATIONS[interpolation]
    if interp == cv2.INTER_AREA:  # remap has no area mode
        interp = cv2.INTER_LINEAR
    out = cv2.remap(
        image, map_x, map_y, interp, borderMode=BORDERS[border], borderValue=(float(fill),) * 4
    )
    return out.reshape(map_x.shape[0], map_x.shape[1], image.shape[2])


def scale_matrix(to_hw: tuple[int, int], from_hw: tuple[int, int]) -> np.ndarray:
    """Pixel coordinates in an image of size from_hw -> the same point in a resized copy of size
    to_hw (pixel centres at integers, edges at -0.5, as stn_align.core.geometry has it)."""
    ay, ax = to_hw[0] / from_hw[0], to_hw[1] / from_hw[1]
    return np.array([[ax, 0.0, 0.5 * ax - 0.5], [0.0, ay, 0.5 * ay - 0.5], [0.0, 0.0, 1.0]])


def warp_reduced(
    image: np.ndarray,
    matrix: np.ndarray,
    out_hw: tuple[int, int],
    longer: int,
    border: str = "constant",
    fill: float = 255.0,
) -> np.ndarray:
    """What warp_matrix(image, matrix, out_hw) would give, resized so its longer side is at most
    `longer`, computed without the full-size warp. The original is first shrunk with area
    averaging (to about twice that size), so the bilinear warp never skips over thin strokes."""
    scale = min(1.0, longer / max(out_hw))
    red_hw = (max(1, round(out_hw[0] * scale)), max(1, round(out_hw[1] * scale)))
    m = matrix @ scale_matrix(out_hw, red_hw)  # reduced output pixels -> original pixels
    shrink = min(1.0, 2 * longer / max(image.shape[:2]))
    if shrink < 1.0:
        small_hw = (max(1, round(image.shape[0] * shrink)), max(1, round(image.shape[1] * shrink)))
        m = scale_matrix(small_hw, image.shape[:2]) @ m
        image = cv2.resize(image, small_hw[::-1], interpolation=cv2.INTER_AREA)
        image = image.reshape(*small_hw, -1)
    return warp_matrix(image, m / m[2, 2], red_hw, "linear", border, fill)


def graph_supports(session, image: np.ndarray, interpolation: str, border: str) -> bool:
    """Whether the warper graph can do this warp as asked: bilinear, constant border, and the
    image's channel count where the graph fixes one (else OpenCV keeps the caller's channels)."""
    channels = session.get_inputs()[0].shape[3]
    fits = not isinstance(channels, int) or channels == image.shape[2]
    return fits and interpolation == "linear" and border == "constant"


def warp_graph(
    session, image: np.ndarray, theta: np.ndarray, out_hw: tuple[int, int], fill: float, device: str
) -> np.ndarray:
    """Run NAME.warp.onnx with I/O binding on `device` ("cuda" or "cpu"); returns HxWxC uint8."""
    import onnxruntime as ort

    binding = session.io_binding()
    inputs = {
        "image": np.ascontiguousarray(image[None]),
        "theta": np.asarray(theta, dtype=np.float32).reshape(1, -1),
        "out_size": np.asarray(out_hw, dtype=np.int64),
        "fill": np.asarray([fill], dtype=np.float32),
    }
    for name, array in inputs.items():
        # The small inputs stay on the host where the graph expects them (shape inputs are CPU-side
        # in onnxruntime); the image is the one worth placing on the device.
        where = device if name == "image" else "cpu"
        binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(array, where, 0))
    binding.bind_output("rectified", device)
    session.run_with_iobinding(binding)
    (out,) = binding.copy_outputs_to_cpu()
    return np.asarray(out)[0]
