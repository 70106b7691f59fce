"""Training and validation examples for the orientation classifier, and their cache on disk.

An example is what doc-rotation's localiser gets (the page turned by some angle over the whole
circle, on an expanded canvas, letterboxed into the input square) and its truth: the content's
counter-clockwise angle. Three makers:

- `real_example`: a page of the real bank (../shared/data/pages, its train split), cropped,
  rescaled, relit, binarised, framed by a scanner's dark border or photographed on a background,
  then turned;
- `synthetic_example`: a page of the synthetic bank (layout.py), with paper, ink and scan
  artefacts (degrade.py), then turned;
- `blank_example`: paper with nothing to read, or a surface without text (a photo-like
  background): no orientation, so the classifier learns to be unsure there.

`views` runs the model's own weight-free front (RotationLocaliser.survey) on a batch of inputs,
and the label is the quarter turn between the front's coarse estimate and the truth. The cache
(`write_shard`, `read_shard`) holds the views quantised to uint8 (orientation.quantise) with
their labels, so training never re-renders a page.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from stn_align.core.geometry import wrap_degrees
from stn_align.core.preprocess import localiser_input
from stn_align.training.documents import degrade, synth
from stn_align.training.documents.dataset import coloured_page, sample_angle
from stn_align.training.documents.orientation import TURNS, normalise_view, quantise
from stn_align.training.documents.real_pages import PageRecord

INPUT_SIZE = 768  # doc-rotation's input side
OUTPUTS = ("view", "rows", "coarse", "along", "peak")  # FrontGraph's
REAL_LONG_SIDE = 1400  # real pages are kept at most this long in memory (the bank's are <= 1600)


@dataclass
class Example:
    image: np.ndarray  # INPUT_SIZE x INPUT_SIZE uint8, letterboxed with fill 0
    angle: float  # the content's counter-clockwise angle, degrees
    readable: bool  # False: nothing to read (the target is uniform)
    kind: str  # e.g. "real:book", "synthetic:form", "blank"


def load_real_page(record: PageRecord, longest: int = REAL_LONG_SIDE) -> np.ndarray:
    """A real bank page, grey, at most `longest` pixels on its long side."""
    page = cv2.imread(str(record.path), cv2.IMREAD_GRAYSCALE)
    if page is None:
        raise ValueError(f"cannot read {record.path}")
    scale = longest / max(page.shape)
    if scale < 1:
        page = cv2.resize(page, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return page


def turn(page: np.ndarray, rng: np.random.Generator, size: int = INPUT_SIZE):
    """(the page turned by a drawn angle on an expanded canvas, through a camera, letterboxed
    into size x size; the angle). Angles as in training the whole-circle models
    (dataset.sample_angle)."""
    angle = sample_angle(rng, 180.0)
    turned = degrade.camera(synth.rotate_expand(page, angle, synth.random_fill(page, rng)), rng)
    return localiser_input(turned[:, :, None], size, "letterbox", 0)[:, :, 0], angle


def _retone(page: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A real scan's tones changed: faded or darker paper, weaker ink."""
    low, high = rng.uniform(0, 80), rng.uniform(170, 255)
    out = low + page.astype(np.float32) * (high - low) / 255.0
    return np.clip(out, 0, 255).astype(np.uint8)


def _photographed(page: np.ndarray, rng: np.random.Generator, other: np.ndarray) -> np.ndarray:
    """The page lying on a background, a little off-square (as a phone photo, or a scan that
    shows the desk); the page's own orientation is kept within a few degrees."""
    canvas_hw = synth.canvas_size(rng, max(page.shape) * rng.uniform(1.1, 1.4))
    if (canvas_hw[0] > canvas_hw[1]) != (page.shape[0] > page.shape[1]):
        canvas_hw = (canvas_hw[1], canvas_hw[0])
    canvas = synth.background(rng, canvas_hw, other if rng.random() < 0.3 else None)
    quad = synth.random_quad(rng, page.shape[:2], canvas_hw, 0.04, 3.0)
    return synth.place_page(page, canvas, quad)


def real_example(
    page: np.ndarray, record: PageRecord, rng: np.random.Generator, other=None, size=INPUT_SIZE
) -> Example:
    """An Example from a real page (grey, upright, as load_real_page gives it)."""
    if rng.random() < 0.15:
        page = degrade.partial(page, rng)
    long_side = rng.uniform(650, 1050)
    scale = min(1.0, long_side / max(page.shape))
    if scale < 1:
        page = cv2.resize(page, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    if rng.random() < 0.3:
        page = _retone(page, rng)
    if rng.random() < 0.08:
        page = degrade.binarise(page, rng)
    if rng.random() < 0.15:
        page = degrade.dark_border(page, rng)
    elif rng.random() < 0.2:
        page = _photographed(page, rng, page if other is None else other)
    page = degrade.lighting(page, rng)
    image, applied = turn(page, rng, size)
    angle = float(wrap_degrees(applied + record.content_angle))
    return Example(image, angle, True, f"real:{record.kind}")


def synthetic_example(
    ink: np.ndarray, other: np.ndarray, rng: np.random.Generator, kind: str, size=INPUT_SIZE
) -> Example:
    """An Example from a synthetic bank page (an ink mask: 0 ink, 255 paper)."""
    page = coloured_page(ink, rng, rng.uniform(650, 1050), other)
    if rng.random() < 0.15:
        page = degrade.dark_border(page, rng)
    elif rng.random() < 0.15:
        page = _photographed(page, rng, other)
    page = degrade.lighting(page, rng)
    image, angle = turn(page, rng, size)
    return Example(image, angle, kind != "blank", f"synthetic:{kind}")


def blank_example(rng: np.random.Generator, other=None, size: int = INPUT_SIZE) -> Example:
    """Nothing to read: plain paper (maybe blotchy, maybe with the back page showing faintly), a
    photo-like surface, or a smooth gradient."""
    h = int(rng.integers(700, 1300))
    w = int(h * rng.uniform(0.6, 1.4))
    u = rng.random()
    if u < 0.45:
        paper = np.full((h, w), 255, np.uint8)
        page = degrade.ink_on_paper(paper, rng, other)
    elif u < 0.8:
        page = synth.background(rng, (h, w))
    else:
        field = degrade.smooth_field(rng, (h, w), int(rng.integers(2, 6)))
        page = np.clip(rng.uniform(0, 120) + field * rng.uniform(40, 200), 0, 255)
        page = page.astype(np.uint8)
    page = degrade.lighting(page, rng)
    image, angle = turn(page, rng, size)
    return Example(image, angle, False, "blank")


class FrontGraph(torch.nn.Module):
    """The localiser's weight-free front as its own graph: uint8 inputs (N, S, S) -> (the view
    and the rows, normalised (N, 1, S/2, S/2) and (N, 1, S, S/4); the coarse estimate (N, 2);
    along (N,); the peak contrast (N,)). Run by ONNX Runtime (`FrontSession`) it renders the
    cache several times faster than PyTorch, whose average pools without padding are slow on a
    CPU."""

    def __init__(self, localiser):
        super().__init__()
        self.localiser = localiser

    def forward(self, images: torch.Tensor):
        x = images[:, None].float() * (2.0 / 255.0) - 1.0  # the model's normalisation
        found, keep = self.localiser.half_survey(x)
        _, rows = self.localiser.turned(x, found, keep)
        view, rows = normalise_view(found.view), normalise_view(rows)
        return view, rows, found.coarse, found.along, found.peak


class FrontSession:
    """FrontGraph exported to ONNX and run on one thread. `onnx` (the exported bytes) lets other
    processes open the same front without torch (`FrontSession.from_onnx`)."""

    def __init__(self, localiser, size: int = INPUT_SIZE):
        import tempfile
        import warnings

        graph = FrontGraph(localiser).eval()
        example = torch.zeros(2, size, size, dtype=torch.uint8)
        with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
            path = Path(tmp) / "front.onnx"
            torch.onnx.export(
                graph, (example,), str(path), input_names=["images"], output_names=list(OUTPUTS),
                opset_version=17, dynamo=False,
                dynamic_axes={name: {0: "n"} for name in ("images", *OUTPUTS)},
            )  # fmt: skip
            self.onnx = path.read_bytes()
        self.session = _front_session(self.onnx)

    @classmethod
    def from_onnx(cls, onnx: bytes) -> FrontSession:
        front = cls.__new__(cls)
        front.onnx, front.session = onnx, _front_session(onnx)
        return front

    def __call__(self, images: np.ndarray):
        return self.session.run(None, {"images": images})


def _front_session(onnx: bytes):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(onnx, options, providers=["CPUExecutionProvider"])


def views(front: FrontSession, images: np.ndarray, batch: int = 16) -> dict[str, np.ndarray]:
    """Inputs (N, S, S) uint8 -> what the classifier reads, from the localiser's weight-free
    front: `view` and `rows` quantised (uint8 (N, S/2, S/2) and (N, S, S/4)), `coarse` (the
    coarse skew in degrees), `along` and `peak` (N,)."""
    parts: dict[str, list] = {k: [] for k in ("view", "rows", "coarse", "along", "peak")}
    for start in range(0, len(images), batch):
        view, rows, pair, along, peak = front(np.ascontiguousarray(images[start : start + batch]))
        parts["view"].append(quantise(torch.from_numpy(view)))
        parts["rows"].append(quantise(torch.from_numpy(rows)))
        parts["coarse"].append(np.degrees(np.arctan2(pair[:, 1], pair[:, 0])).astype(np.float32))
        parts["along"].append(along.astype(np.uint8))
        parts["peak"].append(peak.astype(np.float32))
    return {k: np.concatenate(v) for k, v in parts.items()}


def quarter_turned(view: np.ndarray, rows: np.ndarray, along: int, turn: int, a: int):
    """What the front would give for the same page turned a further `a` quarter turns
    counter-clockwise, from what it gave: (view, rows, along, turn). The view turns with the page;
    the axis of the lines swaps on odd turns; the rows, laid along the lines, either stay or make
    a half turn. Training turns each cached example by a random `a`, so every page is seen in all
    four orientations."""
    j = 1 - int(along)  # the rows' frame is the coarse one turned j quarter turns
    j_after = j if a % 2 == 0 else 1 - j
    flip = (a - j_after + j) % 4 == 2
    turned_rows = rows[::-1, ::-1] if flip else rows
    return np.rot90(view, a), turned_rows, 1 - j_after, (int(turn) + a) % TURNS


def turn_label(angle: np.ndarray, coarse: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the quarter turn k in 0..3 with angle ~ coarse + 90 k, what is left over in degrees)."""
    diff = np.asarray(wrap_degrees(np.asarray(angle) - np.asarray(coarse)), dtype=np.float64)
    k = np.round(diff / 90.0)
    left = diff - 90.0 * k
    return (k.astype(np.int64) % TURNS), left


def write_shard(path: Path, **arrays: np.ndarray) -> None:
    """One cache shard (a compressed .npz; written under a temporary name, then moved)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez_compressed(tmp, allow_pickle=False, **arrays)
    tmp.replace(path)


def read_shard(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return {key: data[key] for key in data.files}


def angle_residual_ok(left: np.ndarray, limit: float = 30.0) -> np.ndarray:
    """Whether a label is clear: the truth is within `limit` degrees of the chosen quarter turn
    (the front's coarse estimate can be far off on a page without lines)."""
    return np.abs(left) <= limit


def degrees_to_pair(angle: float) -> tuple[float, float]:
    a = math.radians(angle)
    return math.cos(a), math.sin(a)
