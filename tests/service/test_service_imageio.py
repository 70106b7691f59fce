from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from stn_align.service.imageio import ImageError, decode, encode, from_raw

RGB = np.random.default_rng(1).integers(0, 255, (20, 30, 3), dtype=np.uint8)


def _save(image: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kw)
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["PNG", "TIFF", "BMP", "WEBP"])
def test_lossless_formats_round_trip(fmt):
    kw = {"lossless": True} if fmt == "WEBP" else {}
    out = decode(_save(Image.fromarray(RGB), fmt, **kw), 10**6)
    assert out.shape == (20, 30, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, RGB)


def test_jpeg_decodes_close_in_rgb_order():
    smooth = np.zeros((20, 30, 3), np.uint8)
    smooth[..., 0], smooth[..., 1], smooth[..., 2] = (
        200,
        np.arange(30, dtype=np.uint8)[None] * 4,
        40,
    )
    out = decode(_save(Image.fromarray(smooth), "JPEG", quality=98), 10**6)
    assert out.shape == (20, 30, 3)
    assert np.abs(out.astype(int) - smooth).mean() < 4


def test_grey_rgba_palette_and_16_bit():
    grey = decode(_save(Image.fromarray(RGB[:, :, 0]), "PNG"), 10**6)
    assert grey.shape == (20, 30, 1)
    rgba = np.dstack([RGB, np.full((20, 30), 7, np.uint8)])
    np.testing.assert_array_equal(decode(_save(Image.fromarray(rgba), "PNG"), 10**6), RGB)
    pal = decode(_save(Image.fromarray(RGB).convert("P"), "PNG"), 10**6)
    assert pal.shape == (20, 30, 3)
    deep = Image.fromarray(np.full((4, 5), 65535, np.uint16))
    out16 = decode(_save(deep, "PNG"), 10**6)
    assert out16.shape == (4, 5, 1) and (out16 == 255).all()


def test_pixel_limit_checked_from_header():
    with pytest.raises(ImageError, match="over the limit of 599"):
        decode(_save(Image.fromarray(RGB), "PNG"), 599)


def test_raw():
    np.testing.assert_array_equal(from_raw(20, 30, 3, "uint8", RGB.tobytes(), 10**6), RGB)
    rgba = np.dstack([RGB, RGB[:, :, :1]])
    np.testing.assert_array_equal(from_raw(20, 30, 4, "uint8", rgba.tobytes(), 10**6), RGB)
    deep = np.full((2, 2, 1), 65535, np.uint16)
    assert (from_raw(2, 2, 1, "uint16", deep.tobytes(), 10**6) == 255).all()
    with pytest.raises(ImageError, match="dtype 'float64'"):
        from_raw(2, 2, 1, "float64", b"\0" * 32, 10**6)
    with pytest.raises(ImageError, match="2 channels"):
        from_raw(2, 2, 2, "uint8", b"\0" * 8, 10**6)
    with pytest.raises(ImageError, match="empty size"):
        from_raw(0, 2, 1, "uint8", b"", 10**6)


@pytest.mark.parametrize("encoding", ["png", "jpeg", "raw"])
def test_encode(encoding):
    data = encode(RGB, encoding)
    if encoding == "raw":
        assert data == RGB.tobytes()
        return
    back = decode(data, 10**6)
    assert back.shape == RGB.shape
    if encoding == "png":
        np.testing.assert_array_equal(back, RGB)  # RGB order survives OpenCV's BGR


def _tiff_uint32(values: np.ndarray) -> bytes:
    """A baseline TIFF of unsigned 32-bit grey samples (SampleFormat 1), written by hand: Pillow
    itself writes 32-bit samples as signed."""
    import struct

    h, w = values.shape
    pixels = values.astype("<u4").tobytes()
    tags = [(256, 4, w), (257, 4, h), (258, 3, 32), (259, 3, 1), (262, 3, 1), (273, 4, 0),
            (277, 3, 1), (278, 4, h), (279, 4, len(pixels)), (339, 3, 1)]  # fmt: skip
    ifd_size = 2 + 12 * len(tags) + 4
    offset = 8 + ifd_size
    entries = b"".join(
        struct.pack("<HHI", tag, kind, 1)
        + (struct.pack("<I", offset if tag == 273 else value) if kind == 4 else
           struct.pack("<HH", value, 0))
        for tag, kind, value in tags
    )  # fmt: skip
    return (
        b"II*\0"
        + struct.pack("<I", 8)
        + struct.pack("<H", len(tags))
        + entries
        + b"\0" * 4
        + pixels
    )


@pytest.mark.parametrize(
    ("data", "white"),
    [
        (lambda v: _save(Image.fromarray(v.astype(np.int32), mode="I"), "TIFF"), 2**31 - 1),
        (lambda v: _tiff_uint32(v.astype(np.uint32)), 2**32 - 1),
        (lambda v: _save(Image.fromarray(v.astype(np.uint16)), "TIFF"), 65535),
    ],
    ids=["int32", "uint32", "uint16"],
)
def test_wide_integer_grey_is_scaled_not_wrapped(data, white):
    """Issue 19, item 10: 32-bit samples over 65,535 used to wrap (white came out 224)."""
    values = np.array([[0, white // 4, white // 2, white]], dtype=np.float64).round()
    out = decode(data(values), 10**6)
    assert out.shape == (1, 4, 1)
    np.testing.assert_allclose(out[0, :, 0], [0, 64, 127, 255], atol=1)
