"""What the pipeline takes and gives: options, results and the errors a caller can act on. Kept
apart from stn_align.service.pipeline (which re-exports them) so the servicer and the limits can
use them without the pipeline's weight."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

ECHO_LIMIT = 80  # characters of a caller's text (a model name) quoted back in a message


class UnknownModel(LookupError):
    pass


class BadOptions(ValueError):
    pass


class Cancelled(RuntimeError):
    pass


class OutputTooLarge(RuntimeError):
    """The response would not fit in one message (setting max_message_mb); found before the warp
    for RAW output, after encoding for PNG and JPEG (their size depends on the content)."""


def quoted(text: str, limit: int = ECHO_LIMIT) -> str:
    """A caller's text for an error message: repr'd, and cut short when long, so an absurd name
    cannot make the message itself too large to send."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text)} characters)"


def checked_min_confidence(value: float | None) -> float | None:
    """A caller's orientation-confidence threshold, None (the server's setting) or 0..1."""
    if value is not None and not 0.0 <= value <= 1.0:
        raise BadOptions(f"min_confidence must be 0..1, got {value}")
    return value


@dataclass
class AlignOptions:
    models: Sequence[str] | None = None  # None or empty: the default model (chain)
    out_hw: tuple[int, int] | None = None  # None: the family's default size
    encoding: str = "png"  # png, jpeg, raw, none (only used when encoding is asked for)
    jpeg_quality: int = 95
    interpolation: str = "linear"
    border: str = "constant"
    fill: float = 255.0
    # The most bytes the encoded output may take (the server's message limit less room for the
    # rest of the response); None: no limit (in-process callers).
    max_output_bytes: int | None = None
    # Below this orientation confidence a rotation model's page is not turned by quarter turns
    # (orientation.hold); None: the min_orientation_confidence setting.
    min_confidence: float | None = None


def check_output_bytes(nbytes: int, what: str, options: AlignOptions) -> None:
    limit = options.max_output_bytes
    if limit is not None and nbytes > limit:
        raise OutputTooLarge(
            f"{what} would be {nbytes} bytes, over the {limit} a response may carry "
            "(setting max_message_mb); ask for a smaller size or a compressed encoding"
        )


def check_raw_size(out_hw: tuple[int, int], channels: int, options: AlignOptions) -> None:
    """RAW output's size is known from its shape, so it is refused before the work."""
    if options.encoding == "raw":
        h, w = out_hw
        check_output_bytes(h * w * channels, f"the {w}x{h}x{channels} raw output", options)


@dataclass
class StageResult:
    model: str
    family: str
    theta: np.ndarray
    matrix: np.ndarray  # this stage's output pixels -> its input pixels
    out_hw: tuple[int, int]
    angle: float | None = None
    corners: np.ndarray | None = None  # in this stage's input pixels
    corner_confidence: float | None = None  # how sure a projective model is of its corners
    confidence: np.ndarray | None = None  # the model's `confidence` output, as it gave it
    held: bool = False  # the orientation was left alone: its confidence was under the threshold
    read_again: bool = False  # read a second time, closer (service/orientation.py, corners.py)


@dataclass
class AlignResult:
    model: str
    stages: list[StageResult]
    matrix: np.ndarray
    in_hw: tuple[int, int]
    out_hw: tuple[int, int]
    angle: float | None = None
    corners: np.ndarray | None = None
    corner_confidence: float | None = None  # the projective stage's, when its model gives one
    rectified: np.ndarray | None = None
    encoded: bytes | None = None
    timings: dict[str, float] = field(default_factory=dict)
    orientation_confidence: float | None = None  # from a rotation stage that reports one
    skew_confidence: float | None = None
    review: bool = False  # the orientation was left alone (unsure): a person should look

    @property
    def family(self) -> str:
        return self.stages[-1].family

    @property
    def theta(self) -> np.ndarray:
        return self.stages[-1].theta
