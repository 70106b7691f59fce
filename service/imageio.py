"""Decoding request images and encoding rectified ones. Every failure is an ImageError that says
what was wrong; the servicer turns it into INVALID_ARGUMENT.

Decoded images are HxWxC uint8 with C = 1 (grey) or 3 (RGB). Alpha is dropped, 16-bit is scaled to
8 bits, palette and CMYK images become RGB. EXIF orientation is ignored: pixels are taken as stored,
so matrices refer to the stored pixel grid.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

# We check the pixel count from the header ourselves (check_pixels below), with the service's own
# limit, before any decoding; Pillow's built-in check would warn or raise with its own limit.
Image.MAX_IMAGE_PIXELS = None

FORMATS = {"PNG", "JPEG", "TIFF", "WEBP", "BMP"}
RAW_DTYPES = {"uint8": np.uint8, "uint16": np.uint16}
INTEGER_GREY = ("I;16", "I;16B", "I;16L", "I")


class ImageError(ValueError):
    """The image cannot be used; the message says why."""


def check_pixels(height: int, width: int, max_pixels: int, what: str = "image") -> None:
    if height <= 0 or width <= 0:
        raise ImageError(f"{what} has an empty size {height}x{width}")
    if height * width > max_pixels:
        raise ImageError(
            f"{what} is {width}x{height} = {height * width} pixels, over the limit of {max_pixels}"
        )


@dataclass(frozen=True)
class Header:
    """What an image will cost before it is decoded."""

    height: int
    width: int
    channels: int  # after decoding: 1 (grey) or 3 (RGB)
    decode_bytes: int  # about the most memory decoding takes (decoder buffers and our array)


def _decode_bytes(mode: str, pixels: int, channels: int) -> int:
    if mode in INTEGER_GREY:
        return pixels * (4 + 8 + 8 + 1)  # Pillow's samples, two int64 steps, the 8-bit result
    stored = 1 if mode in ("1", "L", "P") else 4  # Pillow keeps other modes at 4 bytes a pixel
    converted = 0 if mode in ("1", "L", "RGB") else 4  # palette, alpha, CMYK: a converted copy
    return pixels * (stored + converted + channels)


def probe(data: bytes, max_pixels: int) -> Header:
    """The image's size and decoding cost from its header alone (nothing is decoded), with the
    same checks and errors as decode."""
    with _opened(data) as im:
        check_pixels(im.height, im.width, max_pixels)
        channels = 1 if im.mode in ("1", "L", *INTEGER_GREY) else 3
        cost = _decode_bytes(im.mode, im.height * im.width, channels)
        return Header(im.height, im.width, channels, cost)


def raw_header(height: int, width: int, channels: int, dtype: str) -> Header:
    """The cost of a raw request image: uint8 pixels are used in place, uint16 are scaled."""
    pixels = height * width * channels
    cost = pixels * (4 + 4 + 1) if dtype == "uint16" else pixels if channels == 4 else 0
    return Header(height, width, 1 if channels == 1 else 3, cost)


@contextlib.contextmanager
def _opened(data: bytes) -> Iterator[Image.Image]:
    """Pillow's image (header read, pixels not yet decoded), with every failure an ImageError."""
    if not data:
        raise ImageError("image is empty (0 bytes)")
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.format not in FORMATS:
                raise ImageError(
                    f"unsupported image format {im.format}; "
                    f"expected one of {', '.join(sorted(FORMATS))}"
                )
            yield im
    except UnidentifiedImageError:
        head = data[:8].hex()
        raise ImageError(
            f"cannot identify the image format ({len(data)} bytes starting {head}); "
            f"expected one of {', '.join(sorted(FORMATS))}"
        ) from None
    except ImageError:
        raise
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageError(f"corrupt or truncated image: {exc}") from None


def decode(data: bytes, max_pixels: int) -> np.ndarray:
    """Encoded file bytes -> HxWxC uint8. The size is checked from the header before decoding."""
    with _opened(data) as im:
        check_pixels(im.height, im.width, max_pixels)
        im.load()  # raises on truncated or corrupt data
        return _to_array(im)


def _integer_grey(im: Image.Image) -> np.ndarray:
    """16- and 32-bit grey -> 8 bits. The sample range is the smallest of 8, 16 or the stored 32
    bits that holds the brightest pixel, so 8- and 16-bit data kept in wider samples still reach
    white, and 32-bit data is scaled, not wrapped."""
    arr = np.asarray(im)
    wide = 2**31 - 1
    if arr.dtype == np.int32 and _unsigned_tiff(im):
        arr, wide = arr.view(np.uint32), 2**32 - 1  # Pillow reads unsigned 32-bit as signed
    arr = np.clip(arr.astype(np.int64), 0, None)
    peak = int(arr.max(initial=0))
    top = 255 if peak <= 255 else 65535 if peak <= 65535 else wide
    return (arr * 255 // top).astype(np.uint8)[:, :, None]


def _unsigned_tiff(im: Image.Image) -> bool:
    tags = getattr(im, "tag_v2", None)
    if im.format != "TIFF" or tags is None:
        return False
    sample_format = tags.get(339, 1)  # TIFF SampleFormat: 1 unsigned (the default), 2 signed
    if isinstance(sample_format, tuple):
        sample_format = sample_format[0] if sample_format else 1
    return sample_format == 1


def _to_array(im: Image.Image) -> np.ndarray:
    if im.mode in INTEGER_GREY:
        return _integer_grey(im)
    if im.mode in ("1", "L"):
        return np.asarray(im.convert("L"))[:, :, None]
    if im.mode != "RGB":
        im = im.convert("RGB")
    return np.asarray(im)


def from_raw(height: int, width: int, channels: int, dtype: str, data: bytes, max_pixels: int):
    """Raw HWC pixels -> HxWxC uint8, checking that the buffer size agrees with the shape."""
    check_pixels(height, width, max_pixels, "raw image")
    if channels not in (1, 3, 4):
        raise ImageError(f"raw image has {channels} channels; expected 1, 3 or 4")
    if dtype not in RAW_DTYPES:
        raise ImageError(f"raw image dtype {dtype!r} is not supported; expected uint8 or uint16")
    np_dtype = RAW_DTYPES[dtype]
    expected = height * width * channels * np.dtype(np_dtype).itemsize
    if len(data) != expected:
        raise ImageError(
            f"raw image buffer is {len(data)} bytes but {height}x{width}x{channels} {dtype} "
            f"needs {expected}"
        )
    arr = np.frombuffer(data, dtype=np_dtype).reshape(height, width, channels)
    if np_dtype == np.uint16:
        arr = (arr.astype(np.uint32) * 255 // 65535).astype(np.uint8)
    return arr[:, :, :3] if channels == 4 else arr


def encode(image: np.ndarray, encoding: str, jpeg_quality: int = 95, png_level: int = 1) -> bytes:
    """HxWxC uint8 (RGB or grey) -> PNG or JPEG bytes, or raw HWC bytes."""
    if encoding == "raw":
        return np.ascontiguousarray(image).tobytes()
    bgr = image if image.shape[2] == 1 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    if encoding == "png":
        # Level 1: most of the size win for a fraction of the time of the default 3.
        ok, buf = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, png_level])
    elif encoding == "jpeg":
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
    else:
        raise ValueError(f"unknown encoding {encoding!r}")
    if not ok:
        raise ImageError(f"could not encode the output as {encoding}")
    return buf.tobytes()


def read_file(path: str, max_pixels: int) -> np.ndarray:
    with open(path, "rb") as f:
        return decode(f.read(), max_pixels)
