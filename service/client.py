"""A small Python client for the alignment service.

    from stn_align.service.client import AlignClient
    with AlignClient(["10.0.0.5:50051", "10.0.0.6:50051"], token="...") as client:
        reply = client.align("page.jpg", model="doc-rotation", encoding="png")
        reply.angle_degrees, list(reply.matrix), reply.rectified.data
        for item in client.align_stream(requests):   # AlignStreamResponse, by id
            ...

Several addresses: calls go to the replicas in turn (client-side round robin, one channel each).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import grpc
import numpy as np

from stn_align.service.proto import alignment_pb2 as pb
from stn_align.service.proto import alignment_pb2_grpc as pb_grpc

ENCODINGS = {
    "png": pb.ENCODING_PNG,
    "jpeg": pb.ENCODING_JPEG,
    "raw": pb.ENCODING_RAW,
    "none": pb.ENCODING_NONE,
}
INTERPOLATIONS = {"nearest": pb.INTERPOLATION_NEAREST, "linear": pb.INTERPOLATION_LINEAR,
                  "cubic": pb.INTERPOLATION_CUBIC, "area": pb.INTERPOLATION_AREA,
                  "lanczos4": pb.INTERPOLATION_LANCZOS4}  # fmt: skip
BORDERS = {"constant": pb.BORDER_MODE_CONSTANT, "replicate": pb.BORDER_MODE_REPLICATE,
           "reflect": pb.BORDER_MODE_REFLECT, "wrap": pb.BORDER_MODE_WRAP}  # fmt: skip


def make_request(
    image: bytes | str | Path | np.ndarray,
    request_id: str = "",
    model: str | Sequence[str] | None = None,
    out_hw: tuple[int, int] | None = None,
    encoding: str = "png",
    jpeg_quality: int = 0,
    interpolation: str = "linear",
    border: str = "constant",
    fill: float | None = None,
    min_confidence: float | None = None,
) -> pb.AlignRequest:
    """Encoded bytes, a file path, or an HxW[xC] uint8 array (sent raw, RGB order).
    `min_confidence`: see AlignRequest.min_confidence (None: the server's setting)."""
    request = pb.AlignRequest(id=request_id)
    if isinstance(image, np.ndarray):
        arr = image if image.ndim == 3 else image[:, :, None]
        h, w, c = arr.shape
        raw = pb.RawImage(
            height=h,
            width=w,
            channels=c,
            dtype=str(arr.dtype),
            data=np.ascontiguousarray(arr).tobytes(),
        )
        request.raw.CopyFrom(raw)
    elif isinstance(image, str | Path):
        request.encoded = Path(image).read_bytes()
    else:
        request.encoded = bytes(image)
    if isinstance(model, str):
        request.model = model
    elif model:
        request.models.extend(model)
    out = request.output
    if out_hw:
        out.height, out.width = out_hw
    out.encoding = ENCODINGS[encoding]
    out.jpeg_quality = jpeg_quality
    out.interpolation = INTERPOLATIONS[interpolation]
    out.border_mode = BORDERS[border]
    if fill is not None:
        out.fill = fill
    if min_confidence is not None:
        request.min_confidence = min_confidence
    return request


def rectified_array(response: pb.AlignResponse) -> np.ndarray:
    """The rectified image as HxWxC uint8 RGB (decoding PNG/JPEG with OpenCV)."""
    import cv2

    img = response.rectified
    if img.encoding == pb.ENCODING_RAW:
        return np.frombuffer(img.data, np.uint8).reshape(img.height, img.width, img.channels)
    arr = cv2.imdecode(np.frombuffer(img.data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise ValueError("the rectified image in the response cannot be decoded")
    if arr.ndim == 2:
        return arr[:, :, None]
    return cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)


class AlignClient:
    def __init__(
        self,
        addresses: str | Sequence[str],
        token: str = "",
        tls_ca: str | None = None,
        max_message_mb: int = 64,
        timeout: float | None = None,
    ) -> None:
        if isinstance(addresses, str):
            addresses = [a for a in addresses.split(",") if a]
        if not addresses:
            raise ValueError("no server address given")
        size = max_message_mb * 1024 * 1024
        options = [
            ("grpc.max_send_message_length", size),
            ("grpc.max_receive_message_length", size),
        ]
        creds = grpc.ssl_channel_credentials(Path(tls_ca).read_bytes()) if tls_ca else None
        self.channels = [
            grpc.secure_channel(a, creds, options) if creds else grpc.insecure_channel(a, options)
            for a in addresses
        ]
        self.stubs = [pb_grpc.AlignmentStub(c) for c in self.channels]
        self._next = itertools.cycle(range(len(self.stubs)))
        self._lock = threading.Lock()
        self.metadata = [("authorization", f"Bearer {token}")] if token else []
        self.timeout = timeout

    def stub(self) -> pb_grpc.AlignmentStub:
        with self._lock:
            return self.stubs[next(self._next)]

    def _metadata(self, request_id: str = "") -> list[tuple[str, str]]:
        return self.metadata + ([("x-request-id", request_id)] if request_id else [])

    def align(self, image, timeout: float | None = None, **options) -> pb.AlignResponse:
        request = image if isinstance(image, pb.AlignRequest) else make_request(image, **options)
        return self.stub().Align(
            request, timeout=timeout or self.timeout, metadata=self._metadata(request.id)
        )

    def align_stream(
        self, requests: Iterable[pb.AlignRequest], timeout: float | None = None, stub=None
    ) -> Iterator[pb.AlignStreamResponse]:
        stub = stub or self.stub()
        return stub.AlignStream(
            iter(requests), timeout=timeout or self.timeout, metadata=self._metadata()
        )

    def list_models(self, timeout: float | None = 10.0) -> pb.ListModelsResponse:
        return self.stub().ListModels(
            pb.ListModelsRequest(), timeout=timeout, metadata=self._metadata()
        )

    def health(self, service: str = "", timeout: float = 5.0) -> str:
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        stub = health_pb2_grpc.HealthStub(self.channels[0])
        reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)

    def close(self) -> None:
        for channel in self.channels:
            channel.close()

    def __enter__(self) -> AlignClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
