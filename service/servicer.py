"""The gRPC servicer: protobuf in, pipeline call, protobuf out. Errors become status codes here
(`status_for`); the work itself is in stn_align.service.pipeline."""

from __future__ import annotations

import logging
import queue
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np

from stn_align.service import imageio
from stn_align.service.batching import QueueFull, Stopped
from stn_align.service.pipeline import (
    AlignOptions,
    AlignResult,
    BadOptions,
    Cancelled,
    Pipeline,
    UnknownModel,
)
from stn_align.service.proto import alignment_pb2 as pb
from stn_align.service.proto import alignment_pb2_grpc as pb_grpc

log = logging.getLogger("stn.service")

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
    if isinstance(exc, QueueFull):
        return grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc)
    if isinstance(exc, Cancelled):
        return grpc.StatusCode.CANCELLED, str(exc)
    if isinstance(exc, Stopped):
        return grpc.StatusCode.UNAVAILABLE, "the server is shutting down"
    return grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}: {exc}"


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
    min_confidence = request.min_confidence if request.HasField("min_confidence") else None
    if min_confidence is not None and not 0.0 <= min_confidence <= 1.0:
        raise BadOptions(f"min_confidence must be 0..1, got {min_confidence}")
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


def _set_angle_and_corners(message, angle, corners) -> None:
    """Optional fields: left unset (not zero) when the model has no angle or no corners."""
    if angle is not None:
        message.angle_degrees = angle
    if corners is not None:
        message.page_corners.extend(_points(corners))


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
    _set_angle_and_corners(response, result.angle, result.corners)
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
        )
        _set_angle_and_corners(stage, s.angle, s.corners)
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
        self.server = server  # stn_align.service.server.AlignmentServer: pipeline, config, metrics
        self._pool = ThreadPoolExecutor(server.config.workers, thread_name_prefix="stream-item")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _pipeline(self) -> Pipeline:
        pipeline = self.server.pipeline
        if pipeline is None:
            raise Stopped("models are still loading")
        return pipeline

    def _align(self, request: pb.AlignRequest, rid: str, alive) -> pb.AlignResponse:
        pipeline = self._pipeline()
        options = options_from(request)
        max_pixels = pipeline.config.max_pixels
        kind = request.WhichOneof("image")
        if kind == "encoded":
            result = pipeline.align_bytes(request.encoded, options, alive)
        elif kind == "raw":
            r = request.raw
            image = imageio.from_raw(r.height, r.width, r.channels, r.dtype, r.data, max_pixels)
            result = pipeline.align(image, options, alive)
            pipeline.encode(result, options)
        else:
            raise imageio.ImageError("the request has no image (set encoded or raw)")
        return response_from(rid, result, options)

    def Align(self, request, context):
        rid = request.id or uuid.uuid4().hex[:16]
        try:
            return self._align(request, rid, context.is_active)
        except Exception as exc:
            code, message = self._status(exc, context, rid)
            context.abort(code, message)

    def _status(self, exc: BaseException, context, rid: str) -> tuple[grpc.StatusCode, str]:
        code, message = status_for(exc)
        remaining = context.time_remaining()
        if code == grpc.StatusCode.CANCELLED and remaining is not None and remaining <= 0:
            code = grpc.StatusCode.DEADLINE_EXCEEDED
        if code == grpc.StatusCode.INTERNAL:
            log.exception("align failed", extra={"request_id": rid})
        return code, message

    def AlignStream(self, request_iterator, context):
        results: queue.Queue = queue.Queue()
        slots = threading.Semaphore(self.server.config.stream_concurrency)
        done = object()
        metrics = self.server.metrics

        def work(request: pb.AlignRequest, index: int) -> None:
            rid = request.id or f"item-{index}"
            try:
                response = pb.AlignStreamResponse(
                    id=rid, result=self._align(request, rid, context.is_active)
                )
                metrics.items.labels("OK").inc()
            except Exception as exc:
                code, message = self._status(exc, context, rid)
                metrics.items.labels(code.name).inc()
                error = pb.ItemError(code=code.value[0], code_name=code.name, message=message)
                response = pb.AlignStreamResponse(id=rid, error=error)
            finally:
                slots.release()
            results.put(response)

        def read() -> None:
            count = 0
            try:
                for request in request_iterator:
                    while not slots.acquire(timeout=0.5):
                        if not context.is_active():
                            return
                    self._pool.submit(work, request, count)
                    count += 1
            except Exception:  # the client went away mid-stream; nothing more to read
                pass
            finally:
                results.put((done, count))

        threading.Thread(target=read, name="stream-reader", daemon=True).start()
        expected, sent = None, 0
        while expected is None or sent < expected:
            try:
                item = results.get(timeout=0.5)
            except queue.Empty:
                if not context.is_active():
                    return
                continue
            if isinstance(item, tuple) and item[0] is done:
                expected = item[1]
                continue
            sent += 1
            yield item

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
