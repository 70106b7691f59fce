"""The alignment pipeline, in-process: the server, `stn rectify --local`, the benchmarks and
`stn evaluate` all call this.

    from stn_align.service.pipeline import Pipeline, AlignOptions
    pipe = Pipeline.from_dir("exported")               # or Pipeline.from_dir(d, ServiceConfig(...))
    result = pipe.align(image_hwc_uint8_rgb)           # default model (chain)
    result = pipe.align(image, AlignOptions(models=["doc-perspective", "doc-rotation"]))
    result = pipe.align_bytes(png_bytes, AlignOptions(encoding="png"))   # decode + align + encode
    results = pipe.align_many(images, options, workers=8)  # AlignResult or the exception, per item
    result.matrix        # 3x3 final-output pixel -> input pixel (cv2 WARP_INVERSE_MAP)
    result.angle         # content angle (ccw degrees) from the rotation stage, or None
    result.corners       # 4x2 page corners (TL, TR, BR, BL) in input pixels from a projective stage
    result.corner_confidence  # 0-1 from a projective model that gives one; below the setting
                              # min_corner_confidence its stage is the identity (no page found)
    result.orientation_confidence  # 0-1 from a rotation model that gives one; below
    result.review        # min_confidence it is not turned by quarter turns, and review is set;
                         # below second_read_below its page is read again, closer
                         # (service/orientation.py; StageResult.read_again); a projective
                         # model's photo is read again cropped to its page (service/corners.py)
    result.stages        # per model: theta, matrix, angle, corners, out_hw
    result.rectified     # HxWxC uint8, None when encoding == "none"
    result.encoded       # PNG/JPEG/raw bytes when align_bytes or encode was asked for
    pipe.close()

Chains: each later model's localiser sees the previous stages' rectified image, made by warping the
original through the composed matrix straight to a reduced size (4x the localiser's input, enough
for its area resize) rather than at full resolution; the original is then warped once with all the
matrices composed (stn_align.core.geometry.compose).

Default output sizes: rotation and similarity keep the input size, with height and width swapped
when the angle is nearer +-90 than 0 or 180 (so the whole page stays in view); projective models
give the page size estimated from the predicted corners (mean lengths of opposite edges), a flat
upright page; others keep the input size. A requested size applies to the last stage. Projective
models named in the page_edges setting have their corners snapped to the page's own edges
(service/page_edges.py) before anything uses them.

Limits: a chain longer than max_chain_length is refused before any work (BadOptions). With
AlignOptions.max_output_bytes set (the server sets it from max_message_mb), a RAW output over it
is refused from its shape before the warp, a PNG or JPEG one after encoding (OutputTooLarge).
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from stn_align.core import geometry
from stn_align.core.preprocess import to_channels
from stn_align.service import corners as corner_reads
from stn_align.service import imageio, orientation, page_edges, warp
from stn_align.service.align_types import (
    AlignOptions,
    AlignResult,
    BadOptions,
    Cancelled,
    StageResult,
    UnknownModel,
    check_output_bytes,
    check_raw_size,
    checked_min_confidence,
    quoted,
)
from stn_align.service.batching import MicroBatcher
from stn_align.service.config import ServiceConfig
from stn_align.service.models import CUDA, Model, load_repository

# Scans are the common case: on the 19 real scans in shared/data the perspective-then-rotation chain
# got 9 quadrants right against 13 for doc-rotation alone, so the chain is opt-in (for photos).
DEFAULT_CHAIN = ("doc-rotation",)
ENCODINGS = ("png", "jpeg", "raw", "none")


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


class Pipeline:
    def __init__(
        self,
        models: dict[str, Model],
        config: ServiceConfig | None = None,
        on_batch: Callable[[str, int], None] | None = None,
    ):
        self.config = config or ServiceConfig()
        self.models = models
        self._active = 0  # align calls in progress, so a batcher knows whether to wait for more
        self._active_lock = threading.Lock()
        self.batchers = {
            name: MicroBatcher(
                model.localise,
                self.config.max_batch_size,
                self.config.max_queue_delay_ms / 1000.0,
                self.config.max_queue_size,
                name=name,
                on_batch=functools.partial(on_batch, name) if on_batch else None,
                active=self.active,
                workers=self.config.batch_workers_for(model.provider == CUDA),
            )
            for name, model in models.items()
        }
        self.default_chain = self._default_chain()
        self.page_edge_models = page_edges.models_to_snap(self.config.page_edges, models)

    @classmethod
    def from_dir(cls, model_dir: str, config: ServiceConfig | None = None, **kwargs) -> Pipeline:
        config = config or ServiceConfig()
        models = load_repository(
            model_dir,
            config.model_names,
            config.device,
            config.require_gpu,
            config.intra_op_threads(),
        )
        return cls(models, config, **kwargs)

    def active(self) -> int:
        return self._active

    def _enter(self, delta: int) -> None:
        with self._active_lock:
            self._active += delta

    def close(self) -> None:
        for batcher in self.batchers.values():
            batcher.stop()

    # -- models ------------------------------------------------------------------------------

    def _default_chain(self) -> list[str]:
        if self.config.default_model:
            return self.config.default_model.split("+")
        if all(name in self.models for name in DEFAULT_CHAIN):
            return list(DEFAULT_CHAIN)
        if len(self.models) == 1:
            return list(self.models)
        return []

    def resolve(self, names: Sequence[str] | None) -> list[Model]:
        chain = [n for name in (names or []) for n in name.split("+") if n] or self.default_chain
        if not chain:
            raise UnknownModel(
                "no model named and no default (setting default_model); "
                f"loaded: {sorted(self.models)}"
            )
        limit = self.config.max_chain_length
        if len(chain) > limit:
            raise BadOptions(
                f"the chain has {len(chain)} models, over the limit of {limit} "
                "(setting max_chain_length)"
            )
        unknown = [n for n in chain if n not in self.models]
        if unknown:
            raise UnknownModel(
                f"unknown model {quoted(unknown[0])}; loaded: {', '.join(sorted(self.models))}"
            )
        models = [self.models[n] for n in chain]
        for i, m in enumerate(models):
            role = m.contract.chain_role
            if (role == "last" and i < len(models) - 1) or (role == "first" and i > 0):
                raise BadOptions(
                    f"model {m.name} can only be {role} in a chain (its chain_role); "
                    f"got {quoted('+'.join(chain))}"
                )
        return models

    def warp_backend(self, model: Model) -> str:
        setting = self.config.warp
        if setting == "auto":
            return "graph" if model.warper is not None and model.provider == CUDA else "opencv"
        if setting == "graph" and model.warper is None:
            return "opencv"  # no warper exported for this model; reported in ListModels
        return setting

    def warmup(self, runs: int) -> None:
        """Localiser runs at batch 1 and full batch, then one whole request per model."""
        for name, model in self.models.items():
            model.warmup(runs, 1)
            model.warmup(min(runs, 1), self.config.max_batch_size)
            image = np.full((64, 96, 3), 200, np.uint8)
            for encoding in ("png", "jpeg"):  # also loads the image codecs, which import lazily
                data = imageio.encode(image, encoding)
                self.align_bytes(data, AlignOptions(models=[name], encoding=encoding))

    # -- the work ----------------------------------------------------------------------------

    def _localise(self, model: Model, small: np.ndarray, alive, timings) -> np.ndarray:
        return self._localise_all(model, [small], alive, timings)[0]

    def _localise_all(self, model: Model, smalls, alive, timings) -> list[np.ndarray]:
        """The localiser's output row for each input, queued at once and waited for while the
        caller is there (MicroBatcher.submit_all)."""
        answers = self.batchers[model.name].submit_all(smalls, alive)
        timings["queue_ms"] += sum(queue_s for _, queue_s, _ in answers) * 1000.0
        timings["localise_ms"] += sum(run_s for _, _, run_s in answers) * 1000.0
        return [row for row, _, _ in answers]

    def _stage_image(self, model: Model, image, acc, cur_hw, options) -> np.ndarray:
        """What the stage reads, in its model's channels: the original, or the stages so far
        warped to a reduced size (4x the localiser's input, enough for its area resize)."""
        if acc is not None:
            longer = 4 * model.input_size
            image = warp.warp_reduced(image, acc, cur_hw, longer, options.border, options.fill)
        return to_channels(image, model.contract.input_channels)

    def align(
        self,
        image: np.ndarray,
        options: AlignOptions | None = None,
        alive: Callable[[], bool] = lambda: True,
    ) -> AlignResult:
        """HxWxC uint8 (C = 1 grey or 3 RGB) -> transform and (unless encoding none) image."""
        self._enter(1)
        try:
            return self._align(image, options or AlignOptions(), alive, {})
        finally:
            self._enter(-1)

    def _align(self, image: np.ndarray, options: AlignOptions, alive, timings) -> AlignResult:
        started = time.perf_counter()
        for key in ("decode_ms", "resize_ms", "queue_ms", "localise_ms", "warp_ms", "encode_ms"):
            timings.setdefault(key, 0.0)
        if options.encoding not in ENCODINGS:
            raise BadOptions(f"unknown encoding {options.encoding!r}; expected one of {ENCODINGS}")
        if image.ndim == 2:
            image = image[:, :, None]
        models = self.resolve(options.models)
        min_confidence = self._min_confidence(options)  # checked before any work
        if options.out_hw:
            imageio.check_pixels(*options.out_hw, self.config.max_pixels, "requested output")
            check_raw_size(options.out_hw, image.shape[2], options)  # before any work
        in_hw = (int(image.shape[0]), int(image.shape[1]))
        acc, cur_hw = None, in_hw
        stages: list[StageResult] = []
        angle, corners, tps_maps = None, None, None
        result_confidence: float | None = None
        for i, model in enumerate(models):
            if not alive():
                raise Cancelled("the call was cancelled or its deadline expired")
            t = time.perf_counter()
            seen = self._stage_image(model, image, acc, cur_hw, options)
            small = model.small_copy(seen)
            timings["resize_ms"] += _ms(t)
            theta, confidence = model.split(self._localise(model, small, alive, timings))
            what = model.spec.confidence if confidence is not None else ()
            read_again = held = False
            if confidence is not None and "orientation" in what:
                localise = functools.partial(self._localise_all, alive=alive, timings=timings)
                theta, confidence, read_again = orientation.read_again(
                    model, seen, theta, confidence, self.config.second_read_below, localise
                )
                held = float(confidence[0]) < min_confidence
                if held:
                    theta = orientation.hold(theta, confidence)
            if not np.isfinite(theta).all():
                raise RuntimeError(
                    f"model {model.name} returned a non-finite theta {theta.tolist()}"
                )
            corner_confidence = (
                float(confidence[0]) if "corners" in what and confidence is not None else None
            )
            unsure = (
                corner_confidence is not None
                and corner_confidence < self.config.min_corner_confidence
            )
            if unsure:  # no page found: the identity, no warp (setting min_corner_confidence)
                theta = geometry.identity_params(model.family, model.contract.tps_grid)
            elif corner_confidence is not None and self.config.second_corner_read:
                localise = functools.partial(self._localise_all, alive=alive, timings=timings)
                theta, read_again = corner_reads.read_again(model, seen, theta, localise)
            if not unsure and model.name in self.page_edge_models:
                t = time.perf_counter()
                theta = page_edges.snap_params(
                    image, theta, acc, cur_hw, options.border, options.fill
                )
                timings["localise_ms"] += _ms(t)
            last = i == len(models) - 1
            spec = model.spec
            stage_angle = spec.angle(theta)
            stage_corners = spec.corners(theta, cur_hw)
            out_hw = options.out_hw if last and options.out_hw else spec.output_size(theta, cur_hw)
            imageio.check_pixels(*out_hw, self.config.max_pixels, f"{model.name} output")
            sampling = spec.sampling(theta, cur_hw, out_hw, model.contract.tps_grid)
            m = sampling.matrix
            if sampling.maps is not None:
                tps_maps = sampling.maps
            stages.append(
                StageResult(
                    model.name, model.family, theta, m, out_hw, stage_angle, stage_corners,
                    corner_confidence, confidence, bool(held), read_again,
                )
            )  # fmt: skip
            if stage_angle is not None:
                angle = stage_angle
            if stage_corners is not None:
                corners = (
                    stage_corners if acc is None else geometry.apply_matrix(acc, stage_corners)
                )
                result_confidence = corner_confidence
            if tps_maps is not None and acc is not None:
                pts = np.stack(tps_maps, axis=-1).reshape(-1, 2)
                mapped = geometry.apply_matrix(acc, pts).astype(np.float32).reshape(*out_hw, 2)
                tps_maps = (mapped[..., 0], mapped[..., 1])
            acc = m if acc is None else geometry.compose(acc, m)
            cur_hw = out_hw
        assert acc is not None  # resolve() never returns an empty chain
        result = AlignResult(
            model="+".join(m.name for m in models),
            stages=stages,
            matrix=acc,
            in_hw=in_hw,
            out_hw=cur_hw,
            angle=angle,
            corners=corners,
            corner_confidence=result_confidence,
            timings=timings,
        )
        orientation.report(result)
        if options.encoding != "none":
            if not alive():
                raise Cancelled("the call was cancelled or its deadline expired")
            check_raw_size(cur_hw, image.shape[2], options)  # the default size: before the warp
            t = time.perf_counter()
            result.rectified = self._warp(image, models, result, tps_maps, options)
            timings["warp_ms"] += _ms(t)
        timings["total_ms"] = timings.get("decode_ms", 0.0) + _ms(started)
        return result

    def _min_confidence(self, options: AlignOptions) -> float:
        threshold = checked_min_confidence(options.min_confidence)
        return self.config.min_orientation_confidence if threshold is None else threshold

    def _warp(self, image, models, result: AlignResult, tps_maps, options) -> np.ndarray:
        model = models[0]
        single = len(models) == 1
        if (
            single
            and self.warp_backend(model) == "graph"
            and warp.graph_supports(model.warper, image, options.interpolation, options.border)
        ):
            device = "cuda" if model.provider == CUDA else "cpu"
            return warp.warp_graph(
                model.warper, image, result.theta, result.out_hw, options.fill, device
            )
        if tps_maps is not None:
            map_x, map_y = tps_maps
            return warp.warp_maps(
                image, map_x, map_y, options.interpolation, options.border, options.fill
            )
        return warp.warp_matrix(
            image, result.matrix, result.out_hw, options.interpolation, options.border, options.fill
        )

    def encode(self, result: AlignResult, options: AlignOptions) -> None:
        if result.rectified is None or options.encoding == "none":
            return
        t = time.perf_counter()
        result.encoded = imageio.encode(result.rectified, options.encoding, options.jpeg_quality)
        result.timings["encode_ms"] = _ms(t)
        check_output_bytes(len(result.encoded), f"the {options.encoding} output", options)
        result.timings["total_ms"] += result.timings["encode_ms"]

    def align_bytes(
        self,
        data: bytes,
        options: AlignOptions | None = None,
        alive: Callable[[], bool] = lambda: True,
    ) -> AlignResult:
        """Decode an encoded image, align it and encode the result as options.encoding asks."""
        options = options or AlignOptions()
        self._enter(1)
        try:
            t = time.perf_counter()
            image = imageio.decode(data, self.config.max_pixels)
            result = self._align(image, options, alive, {"decode_ms": _ms(t)})
            self.encode(result, options)
            return result
        finally:
            self._enter(-1)

    def align_many(
        self,
        images: Sequence[np.ndarray | bytes],
        options: AlignOptions | None = None,
        workers: int = 8,
    ) -> list[AlignResult | Exception]:
        """Align many images concurrently (so they batch); bytes are decoded and encoded too."""

        def one(item):
            try:
                if isinstance(item, bytes | bytearray):
                    return self.align_bytes(bytes(item), options)
                return self.align(item, options)
            except Exception as exc:  # one bad item must not lose the others
                return exc

        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            return list(pool.map(one, images))
