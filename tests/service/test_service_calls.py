"""Every RPC and every kind of bad input, against a real server on a loopback port."""

from __future__ import annotations

import io
import struct
import time
import zlib
from concurrent.futures import ThreadPoolExecutor

import cv2
import grpc
import numpy as np
import pytest
from PIL import Image
from service_testlib import expected_angle, png

from stn_align.service.client import make_request, rectified_array
from stn_align.service.proto import alignment_pb2 as pb


def _status(fn):
    with pytest.raises(grpc.RpcError) as info:
        fn()
    return info.value.code(), info.value.details()


def test_list_models_reports_families_and_the_provider_in_use(client):
    reply = client.list_models()
    models = {m.name: m for m in reply.models}
    assert set(models) == {"doc-rotation", "doc-perspective"}
    assert models["doc-rotation"].family == "rotation"
    assert models["doc-perspective"].family == "projective"
    assert models["doc-rotation"].input_size == 32
    assert all(m.provider == "CPUExecutionProvider" for m in models.values())
    assert reply.default_model == "doc-rotation"


def test_align_rotation_returns_theta_matrix_angle_image_and_timings(client):
    value = 188  # square input: the letterboxed copy has no padding, so the angle is exact
    reply = client.align(png(value, (64, 64)), model="doc-rotation", request_id="abc")
    assert reply.id == "abc"
    assert reply.angle_degrees == pytest.approx((value - 128) / 2, abs=1e-3)
    assert len(reply.theta) == 2 and len(reply.matrix) == 9
    assert reply.family == "rotation" and reply.model == "doc-rotation"
    image = rectified_array(reply)
    assert image.shape == (64, 64, 3)  # 30 degrees: nearer 0 than 90, size kept
    assert reply.timings.total_ms > 0 and reply.timings.decode_ms > 0
    assert not reply.page_corners


def test_align_swaps_height_and_width_for_rotations_near_90_degrees(client):
    # White (and white letterbox padding): (255 - 128) / 2 = 63.5 degrees.
    reply = client.align(png(255, (40, 100)), model="doc-rotation")
    stage = reply.stages[0]
    assert abs(reply.angle_degrees) > 45
    assert (stage.out_height, stage.out_width) == (100, 40)


def test_align_projective_reports_corners_and_page_size(client):
    reply = client.align(png(255, (100, 200), channels=1), model="doc-perspective")
    corners = np.array([[p.x, p.y] for p in reply.page_corners])
    # 0.2 inward in normalised units = 10% of each side: x 10..190, y 5..95 at the pixel edges.
    np.testing.assert_allclose(corners[0], [-0.5 + 20, -0.5 + 10], atol=1e-3)
    np.testing.assert_allclose(corners[2], [-0.5 + 180, -0.5 + 90], atol=1e-3)
    assert (reply.rectified.height, reply.rectified.width) == (80, 160)
    assert not reply.HasField("angle_degrees")


def test_align_default_model_is_doc_rotation(client):
    reply = client.align(png(180, (90, 120)))
    assert reply.model == "doc-rotation"
    assert [s.family for s in reply.stages] == ["rotation"]


def test_align_chain_composes_perspective_then_rotation(client):
    reply = client.align(png(180, (90, 120)), model="doc-perspective+doc-rotation")
    assert reply.model == "doc-perspective+doc-rotation"
    assert [s.family for s in reply.stages] == ["projective", "rotation"]
    assert reply.HasField("angle_degrees") and len(reply.page_corners) == 4
    m1 = np.array(reply.stages[0].matrix).reshape(3, 3)
    m2 = np.array(reply.stages[1].matrix).reshape(3, 3)
    composed = m1 @ m2
    np.testing.assert_allclose(
        np.array(reply.matrix).reshape(3, 3), composed / composed[2, 2], atol=1e-9
    )


def test_align_models_list_equals_plus_joined_name(client):
    data = png(150, (64, 80))
    a = client.align(data, model=["doc-perspective", "doc-rotation"], encoding="none")
    b = client.align(data, model="doc-perspective+doc-rotation", encoding="none")
    assert list(a.matrix) == pytest.approx(list(b.matrix))


@pytest.mark.parametrize("encoding", ["png", "jpeg", "raw", "none"])
def test_output_encodings(client, encoding):
    reply = client.align(
        png(140, (48, 48)), model="doc-rotation", encoding=encoding, out_hw=(30, 50)
    )
    if encoding == "none":
        assert not reply.HasField("rectified")
        return
    image = rectified_array(reply)
    assert image.shape == (30, 50, 3)


def test_raw_input_and_options(client):
    image = np.full((50, 50, 3), 160, np.uint8)
    reply = client.align(
        image, model="doc-rotation", interpolation="nearest", border="replicate", fill=0
    )
    assert reply.angle_degrees == pytest.approx(16.0, abs=1e-3)
    assert rectified_array(reply).shape == (50, 50, 3)


def test_messages_over_the_grpc_default_4mb_pass(client):
    image = np.full((1500, 1500, 3), 128, np.uint8)  # 6.75 MB raw
    reply = client.align(image, model="doc-rotation", encoding="raw")
    assert len(reply.rectified.data) == image.nbytes


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def _gif() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format="GIF")
    return buf.getvalue()


def _jpeg() -> bytes:
    return cv2.imencode(
        ".jpg", np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    )[1].tobytes()


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"", "empty"),
        (b"this is not an image at all", "cannot identify"),
        (png(100, noise=True)[:300], "truncated"),
        (_jpeg()[:700], "truncated"),
        (_gif(), "unsupported image format GIF"),
        (_png_header_only(60000, 60000), "over the limit"),
    ],
    ids=["empty", "garbage", "truncated-png", "truncated-jpeg", "gif", "decompression-bomb"],
)
def test_bad_images_are_invalid_argument_with_a_reason(client, data, words):
    started = time.perf_counter()
    code, details = _status(lambda: client.align(data, model="doc-rotation"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert words in details
    assert time.perf_counter() - started < 5  # the bomb is refused from its header, not decoded


def test_raw_buffer_that_disagrees_with_its_shape(client):
    request = make_request(np.zeros((10, 10, 3), np.uint8), model="doc-rotation")
    request.raw.height = 11
    code, details = _status(lambda: client.align(request))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "300 bytes but 11x10x3 uint8 needs 330" in details


def test_bad_options_are_invalid_argument(client):
    request = make_request(png(), model="doc-rotation")
    request.models.append("doc-rotation")
    assert _status(lambda: client.align(request))[0] == grpc.StatusCode.INVALID_ARGUMENT
    request = make_request(png(), model="doc-rotation")
    request.output.height = 10  # width missing
    code, details = _status(lambda: client.align(request))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "height and width" in details
    request = make_request(png(), model="doc-rotation", out_hw=(100000, 100000))
    code, details = _status(lambda: client.align(request))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "over the limit" in details
    assert (
        _status(lambda: client.align(pb.AlignRequest(model="doc-rotation")))[0]
        == grpc.StatusCode.INVALID_ARGUMENT
    )


def test_unknown_model_is_not_found(client):
    code, details = _status(lambda: client.align(png(), model="doc-nothing"))
    assert code == grpc.StatusCode.NOT_FOUND
    assert "doc-nothing" in details and "doc-rotation" in details


def test_64_concurrent_calls_each_get_their_own_answer(server, client):
    handle, _ = server
    stats = handle.pipeline.batchers["doc-rotation"].stats
    runs_before, items_before = stats.runs, stats.items
    values = list(range(100, 164))

    def call(v):
        return v, client.align(png(v, (48, 48)), model="doc-rotation", encoding="none")

    with ThreadPoolExecutor(64) as pool:
        replies = list(pool.map(call, values))
    for v, reply in replies:
        assert reply.angle_degrees == pytest.approx((v - 128) / 2, abs=1e-3)
    assert stats.items - items_before == 64
    assert stats.runs - runs_before < 64  # concurrent calls shared localiser runs


def test_stream_of_200_with_corrupt_items(client):
    requests, good, bad = [], {}, set()
    for i in range(200):
        if i % 13 == 5:
            data = [b"", b"garbage", png(90, noise=True)[:200]][i % 3]
            bad.add(f"req-{i}")
        else:
            side = 32 + i % 5  # square, so the letterboxed copy is all one grey level
            data = png(100 + i % 60, (side, side))
            good[f"req-{i}"] = 100 + i % 60
        requests.append(make_request(data, f"req-{i}", model="doc-rotation", encoding="none"))
    replies = list(client.align_stream(requests, timeout=120))
    assert len(replies) == 200
    results = {r.id: r.result for r in replies if r.HasField("result")}
    errors = {r.id: r.error for r in replies if r.HasField("error")}
    assert set(results) == set(good) and set(errors) == bad
    assert all(e.code_name == "INVALID_ARGUMENT" and e.message for e in errors.values())
    for rid, reply in results.items():
        small = np.full((32, 32, 3), good[rid], np.uint8)
        assert reply.angle_degrees == pytest.approx(expected_angle(small), abs=1e-3)


def test_reflection_lists_the_services(server):
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
        ProtoReflectionDescriptorDatabase,
    )

    _, port = server
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        services = set(ProtoReflectionDescriptorDatabase(channel).get_services())
    assert {"stn.alignment.v1.Alignment", "grpc.health.v1.Health"} <= services


def test_metrics_count_calls_by_method_and_code(server, client):
    from prometheus_client import generate_latest

    handle, _ = server
    with pytest.raises(grpc.RpcError):
        client.align(png(), model="doc-missing")
    text = generate_latest(handle.metrics.registry).decode()
    assert 'stn_requests_total{code="NOT_FOUND",method="/stn.alignment.v1.Alignment/Align"}' in text
    assert 'stn_model_provider{model="doc-rotation",provider="CPUExecutionProvider"} 1.0' in text
    assert "stn_batch_size_bucket" in text and "stn_queue_depth" in text


def test_calls_are_logged_with_request_ids(client, caplog):
    import json
    import logging

    from stn_align.service.logs import JsonFormatter

    with caplog.at_level(logging.INFO, logger="stn.service.calls"):
        client.align(png(), model="doc-rotation", request_id="trace-me")
        with pytest.raises(grpc.RpcError):
            client.align(png(), model="doc-unknown", request_id="trace-bad")
    records = {r.request_id: r for r in caplog.records if hasattr(r, "request_id")}
    assert records["trace-me"].code == "OK" and records["trace-me"].method.endswith("/Align")
    assert records["trace-bad"].code == "NOT_FOUND" and records["trace-bad"].levelname == "WARNING"
    line = json.loads(JsonFormatter().format(records["trace-bad"]))
    assert line["request_id"] == "trace-bad" and line["code"] == "NOT_FOUND" and line["ms"] >= 0
