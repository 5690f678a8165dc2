"""Small images of data rows: thumbnails for the map's hover and the tables.

A data set's images live in ``Dataset.extra["images"]`` in one of two forms:

* an array of pixels, (n, h, w) grey or (n, h, w, 3) colour, any value range (scikit-learn's
  digits, CIFAR-100's 32 x 32 x 3 uint8 images);
* a list with one PNG thumbnail (bytes) or None per row: what an upload's image column becomes
  (:func:`thumbnail_from_bytes`), so the page never decodes a user's full-size image again.

Both become PNG bytes of about ``size`` pixels with :func:`thumbnail_png`. Decoding goes through
Pillow with a pixel limit (no decompression bombs) and accepts PNG, JPEG, GIF, WebP and BMP only.
"""
from __future__ import annotations

import base64
import io

import numpy as np

THUMBNAIL_SIZE = 64                 # longest side of a stored upload thumbnail, pixels
MAX_IMAGE_PIXELS = 40_000_000       # refuse to decode larger images (a 6,300 x 6,300 photo)
MAX_IMAGE_BYTES = 10 * 1024 * 1024  # one image file or cell
IMAGE_FORMATS = ("PNG", "JPEG", "GIF", "WEBP", "BMP")


class ImageError(ValueError):
    """Bytes that are not an image this module decodes; the message says why."""


def pixels_png(image, size: int = 96) -> bytes:
    """An array of pixels (h x w grey, h x w x 3 colour; any value range) as PNG bytes scaled up
    by a whole factor to about ``size`` pixels, kept square and sharp (nearest neighbour). Grey
    images are drawn as ink on paper (scikit-learn's digits: 16 = black); colour images keep
    their colours (uint8 as is, other types rescaled to 0..255)."""
    from PIL import Image

    a = np.asarray(image)
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (1, 3, 4)):
        raise ImageError(f"an image must be h x w or h x w x 3, got shape {a.shape}")
    if a.dtype == np.uint8 and a.ndim == 3:
        pixels = a
    else:
        f = a.astype(np.float64)
        lo, hi = float(f.min()), float(f.max())
        f = np.zeros_like(f) if hi <= lo else (f - lo) / (hi - lo)
        if f.ndim == 2:
            f = 1.0 - f
        pixels = (255 * f).astype(np.uint8)
    img = Image.fromarray(pixels.squeeze())
    scale = max(1, size // max(img.size))
    img = img.resize((img.size[0] * scale, img.size[1] * scale), Image.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def thumbnail_from_bytes(data: bytes, size: int = THUMBNAIL_SIZE) -> bytes:
    """An encoded image file (PNG, JPEG, GIF, WebP, BMP) as a PNG thumbnail whose longest side
    is at most ``size`` pixels; :class:`ImageError` for anything else."""
    from PIL import Image, UnidentifiedImageError

    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ImageError(f"expected image bytes, got {type(data).__name__}")
    data = bytes(data)
    if not data:
        raise ImageError("empty image")
    if len(data) > MAX_IMAGE_BYTES:
        raise ImageError(f"image of {len(data):,} bytes is over the {MAX_IMAGE_BYTES:,}-byte limit")
    try:
        img = Image.open(io.BytesIO(data), formats=IMAGE_FORMATS)
        w, h = img.size
        if w * h > MAX_IMAGE_PIXELS:
            raise ImageError(f"image of {w} x {h} pixels is over the {MAX_IMAGE_PIXELS:,}-pixel limit")
        img.draft("RGB", (size, size))          # JPEG: decode at a reduced scale
        img = img.convert("RGBA" if "A" in img.getbands() else "RGB")
        img.thumbnail((size, size))
    except ImageError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageError(f"not a readable {'/'.join(IMAGE_FORMATS)} image ({type(exc).__name__})") from None
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def thumbnail_png(images, row: int, size: int = 96) -> bytes | None:
    """Row ``row``'s thumbnail as PNG bytes from either form of ``extra["images"]``, or None when
    that row has no image."""
    item = images[row]
    if item is None:
        return None
    if isinstance(item, (bytes, bytearray, memoryview)):
        return bytes(item)
    return pixels_png(item, size)


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def pack_thumbnails(thumbs: list) -> dict[str, np.ndarray]:
    """A list of PNG bytes / None as two flat arrays (uint8 buffer + int64 offsets), so the
    store keeps them in an npz without pickling; :func:`unpack_thumbnails` inverts it."""
    lengths = np.array([0 if t is None else len(t) for t in thumbs], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)    # a row of length 0 has no image
    buffer = np.frombuffer(b"".join(t for t in thumbs if t is not None), dtype=np.uint8)
    return {"thumb_bytes": buffer, "thumb_offsets": offsets}


def unpack_thumbnails(buffer: np.ndarray, offsets: np.ndarray) -> list:
    data = np.asarray(buffer, dtype=np.uint8).tobytes()
    ends = np.asarray(offsets, dtype=np.int64)
    if ends.ndim != 1 or len(ends) < 1 or ends[0] != 0 or np.any(np.diff(ends) < 0) or ends[-1] != len(data):
        raise ValueError("thumbnail offsets do not match their buffer")
    return [None if ends[i + 1] == ends[i] else data[ends[i]:ends[i + 1]] for i in range(len(ends) - 1)]
