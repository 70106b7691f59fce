"""The gRPC servicer: protobuf in, pipeline call, protobuf out. Errors become status codes here
(`status_for`); the work itself is in stn_align.service.pipeline."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np

from stn_align.service import imageio
from stn_align.service.align_types import (
    AlignOptions,
    AlignResult,
    BadOptions,
    Cancelled,
    OutputTooLarge,
    UnknownModel,
    checked_min_confidence,
)
from stn_align.service.batching import QueueFull, Stopped
from stn_align.service.limits import STOPPED, Draining, Overloaded, TooLarge, refuse
from stn_align.service.pipeline import Pipeline
from stn_align.service.proto import alignment_pb2 as pb
from stn_align.service.proto import alignment_pb2_grpc as pb_grpc
from stn_align.service.streaming import AlignStreamCall

log = logging.getLogger("stn.service")

RESPONSE_ROOM = 64 * 1024  # of max_message_mb, kept for the response's fields besides the image

ENCODINGS = {pb.ENCODING_UNSPECIFIED: "png", pb.ENCODING_PNG: "png", pb.ENCODING_JPEG: "jpeg",
             pb.ENCODING_RAW: "raw", pb.ENCODING_NONE: "none"}  # fmt: skip
ENCODING_ENUM = {"png": pb.ENCODING_PNG, "jpeg": pb.ENCODING_JPEG, "raw": pb.ENCODING_RAW}
INTERPOLATIONS = {pb.INTERPOLATION_UNSPECIFIED: "linear", pb.INTERPOLATION_NEAREST: "nearest",
                  pb.INTERPOLATION_LINEAR: "linear", pb.INTERPOLATION_CUBIC: "cubic",
                  pb.INTERPOLATION_AREA: "area", pb.INTERPOLATION_LANCZOS4: "lanczos4"}  # fmt: skip
BORDERS = {pb.BORDER_MODE_UNSPECIFIED: "constant", pb.BORDER_MODE_CONSTANT: "constant",
           pb.BORDER_MODE_REPLICATE: "replicate", pb.BORDER_MODE_REFLECT: "reflect",
           pb.BORDER_MODE_WRAP: "wrap"}  # fmt: skip


def status_for(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    if isinstance(exc, imageio.ImageError | BadOptions):
        return grpc.StatusCode.INVALID_ARGUMENT, str(exc)
    if isinstance(exc, UnknownModel):
        return grpc.StatusCode.NOT_FOUND, str(exc.args[0] if exc.args else exc)
    if isinstance(exc, QueueFull | Overloaded | TooLarge | OutputTooLarge):
        return grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc)
    if isinstance(exc, Cancelled):
        return grpc.StatusCode.CANCELLED, str(exc)
    if isinstance(exc, Draining):
        return grpc.StatusCode.UNAVAILABLE, str(exc)
    if isinstance(exc, Stopped):
        return grpc.StatusCode.UNAVAILABLE, "the server is shutting down"
    return grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}: {exc}"


def retry_after_for(exc: BaseException, config) -> int | None:
    """The retry-after-ms hint for overload that passes; None when a retry cannot help."""
    if isinstance(exc, Overloaded):
        return exc.retry_after_ms
    if isinstance(exc, QueueFull):
        return config.retry_after_ms
    return None


def options_from(request: pb.AlignRequest) -> AlignOptions:
    out = request.output
    if request.model and request.models:
        raise BadOptions("set either model or models, not both")
    if bool(out.height) != bool(out.width):
        raise BadOptions(f"output size needs both height and width, got {out.height}x{out.width}")
    if out.encoding not in ENCODINGS:
        raise BadOptions(f"unknown output encoding {out.encoding}")
    if out.interpolation not in INTERPOLATIONS:
        raise BadOptions(f"unknown interpolation {out.interpolation}")
    if out.border_mode not in BORDERS:
        raise BadOptions(f"unknown border mode {out.border_mode}")
    if out.jpeg_quality > 100:
        raise BadOptions(f"jpeg_quality must be 1..100, got {out.jpeg_quality}")
    fill = out.fill if out.HasField("fill") else 255.0
    if not 0.0 <= fill <= 255.0:
        raise BadOptions(f"fill must be 0..255, got {fill}")
    min_confidence = checked_min_confidence(
        request.min_confidence if request.HasField("min_confidence") else None
    )
    return AlignOptions(
        models=list(request.models) or ([request.model] if request.model else None),
        out_hw=(out.height, out.width) if out.height else None,
        encoding=ENCODINGS[out.encoding],
        jpeg_quality=out.jpeg_quality or 95,
        interpolation=INTERPOLATIONS[out.interpolation],
        border=BORDERS[out.border_mode],
        fill=fill,
        min_confidence=min_confidence,
    )


def image_cost(header: imageio.Header, options: AlignOptions) -> int:
    """About the most image memory a call holds: decoding, then the warped output and its
    encoding (RAW: also the message's own copy). The default output size is taken as the input's
    (rotations keep the area; page sizes from corners are rarely larger)."""
    if options.encoding == "none":
        return header.decode_bytes
    h, w = options.out_hw or (header.height, header.width)
    copies = 3 if options.encoding == "raw" else 2
    return header.decode_bytes + h * w * header.channels * copies


def _set_angle_and_corners(message, angle, corners, confidence=None) -> None:
    """Optional fields: left unset (not zero) when the model has no angle, corners or
    confidence."""
    if angle is not None:
        message.angle_degrees = angle
    if corners is not None:
        message.page_corners.extend(_points(corners))
    if confidence is not None:
        message.corner_confidence = confidence


def _points(array) -> list[pb.Point]:
    return [pb.Point(x=float(x), y=float(y)) for x, y in np.asarray(array)]


def _flat(m) -> list[float]:
    return [float(v) for v in np.asarray(m, dtype=np.float64).reshape(-1)]


def response_from(rid: str, result: AlignResult, options: AlignOptions) -> pb.AlignResponse:
    t = result.timings
    response = pb.AlignResponse(
        id=rid,
        model=result.model,
        family=result.family,
        theta=[float(v) for v in result.theta],
        matrix=_flat(result.matrix),
        timings=pb.Timings(
            **{k: float(t.get(k, 0.0)) for k in pb.Timings.DESCRIPTOR.fields_by_name}
        ),
        input_height=result.in_hw[0],
        input_width=result.in_hw[1],
    )
    _set_angle_and_corners(response, result.angle, result.corners, result.corner_confidence)
    if result.orientation_confidence is not None:
        response.orientation_confidence = result.orientation_confidence
        response.review = result.review
    if result.skew_confidence is not None:
        response.skew_confidence = result.skew_confidence
    for s in result.stages:
        stage = response.stages.add(
            model=s.model,
            family=s.family,
            theta=[float(v) for v in s.theta],
            matrix=_flat(s.matrix),
            out_height=s.out_hw[0],
            out_width=s.out_hw[1],
            read_again=s.read_again,
        )
        _set_angle_and_corners(stage, s.angle, s.corners, s.corner_confidence)
    if result.encoded is not None and result.rectified is not None:
        h, w, c = result.rectified.shape
        response.rectified.CopyFrom(
            pb.Image(
                encoding=ENCODING_ENUM[options.encoding],
                data=result.encoded,
                height=h,
                width=w,
                channels=c,
            )
        )
    return response


class AlignmentServicer(pb_grpc.AlignmentServicer):
    def __init__(self, server) -> None:
        # stn_align.service.server.AlignmentServer: pipeline, config, metrics, budget, drain state
        self.server = server
        self._pool = ThreadPoolExecutor(server.config.workers, thread_name_prefix="stream-item")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _pipeline(self) -> Pipeline:
        pipeline = self.server.pipeline
        if pipeline is None:
            raise Stopped("models are still loading")
        return pipeline

    def _alive(self, context) -> Callable[[], bool]:
        """The call goes on while its caller is there and the drain's grace has not run out."""
        stopping = self.server.drain_state.stopping
        return lambda: context.is_active() and not stopping.is_set()

    def _align(self, request: pb.AlignRequest, rid: str, alive) -> pb.AlignResponse:
        pipeline = self._pipeline()
        config = pipeline.config
        options = options_from(request)
        options.max_output_bytes = max(0, config.max_message_bytes - RESPONSE_ROOM)
        kind = request.WhichOneof("image")
        if kind == "encoded":
            header = imageio.probe(request.encoded, config.max_pixels)
        elif kind == "raw":
            r = request.raw
            header = imageio.raw_header(r.height, r.width, r.channels, r.dtype)
        else:
            raise imageio.ImageError("the request has no image (set encoded or raw)")
        if options.out_hw:  # over max_pixels is a bad request, whatever the memory budget
            imageio.check_pixels(*options.out_hw, config.max_pixels, "requested output")
        cost = image_cost(header, options)
        with self.server.budget.hold(cost, "the image", alive, self.server.drain_state):
            if kind == "encoded":
                result = pipeline.align_bytes(request.encoded, options, alive)
            else:
                r = request.raw
                image = imageio.from_raw(
                    r.height, r.width, r.channels, r.dtype, r.data, config.max_pixels
                )
                result = pipeline.align(image, options, alive)
                pipeline.encode(result, options)
            return response_from(rid, result, options)

    def Align(self, request, context):
        rid = request.id or uuid.uuid4().hex[:16]
        try:
            return self._align(request, rid, self._alive(context))
        except Exception as exc:
            code, message, retry_after_ms = self._status(exc, context, rid)
            refuse(context, code, message, retry_after_ms)

    def _status(
        self, exc: BaseException, context, rid: str
    ) -> tuple[grpc.StatusCode, str, int | None]:
        code, message = status_for(exc)
        if code == grpc.StatusCode.CANCELLED:
            remaining = context.time_remaining()
            if self.server.drain_state.stopping.is_set() and context.is_active():
                code, message = grpc.StatusCode.UNAVAILABLE, STOPPED
            elif remaining is not None and remaining <= 0:
                code = grpc.StatusCode.DEADLINE_EXCEEDED
        if code == grpc.StatusCode.INTERNAL:
            log.exception("align failed", extra={"request_id": rid})
        return code, message, retry_after_for(exc, self.server.config)

    def AlignStream(self, request_iterator, context):
        yield from AlignStreamCall(self, request_iterator, context).responses()

    def ListModels(self, request, context):
        try:
            pipeline = self._pipeline()
        except Stopped as exc:
            context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        response = pb.ListModelsResponse(default_model="+".join(pipeline.default_chain))
        for name, m in sorted(pipeline.models.items()):
            response.models.add(
                name=name,
                family=m.family,
                input_size=m.input_size,
                input_channels=m.input_channels,
                provider=m.provider,
                has_warper=m.warper is not None,
                preprocess=m.contract.preprocess,
                warp_backend=pipeline.warp_backend(m),
                chain_role=m.contract.chain_role,
                postprocess=["page_edges"] if name in pipeline.page_edge_models else [],
                contract_version=m.contract.version,
            )
        return response
