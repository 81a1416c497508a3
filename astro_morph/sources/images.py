"""Image decoding shared by sources: always (H, W, 3) uint8 RGB or a clear exception.

Baseline and progressive JPEGs go through simplejpeg (libjpeg-turbo called without Pillow's
per-file overhead: ~6x faster here on 424 px Galaxy Zoo JPEGs, same pixels, since both use
libjpeg-turbo's accurate integer IDCT and fancy upsampling). Everything else, and any JPEG
simplejpeg refuses (CMYK, or data libjpeg only warns about), goes through Pillow.
"""

from __future__ import annotations

import io
import os
import warnings

import numpy as np
from PIL import Image

__all__ = ["MIN_IMAGE_SIDE", "decode_rgb", "pillow_rgb", "read_rgb", "unusable_image"]

_JPEG_MAGIC = b"\xff\xd8\xff"


def _decode_simplejpeg(data: bytes, max_pixels: int,
                       draft_side: int | None) -> np.ndarray | None:
    """simplejpeg's decode, or None where Pillow should decide (CMYK, warnings, errors)."""
    import simplejpeg

    try:
        h, w, colorspace, _ = simplejpeg.decode_jpeg_header(data)
    except ValueError:
        return None
    if h * w > max_pixels:
        raise ValueError(f"image is {w}x{h}, over the {max_pixels} pixel limit")
    if colorspace not in ("Gray", "YCbCr", "RGB"):
        return None
    side = draft_side or 0
    try:
        # strict: a libjpeg warning (truncated data, extraneous bytes) is an error here, and
        # Pillow then gives its usual verdict: it raises on truncation, accepts the rest.
        rgbx = simplejpeg.decode_jpeg(data, "RGBX", min_height=side, min_width=side,
                                      strict=True)
    except ValueError:
        return None
    # Pillow's own pixel layout (4 bytes a pixel, same cost to decode): crop_resize hands
    # the buffer to Pillow without the copy an RGB array needs.
    return rgbx[:, :, :3]


def decode_rgb(data: bytes, max_pixels: int = 50_000_000,
               draft_side: int | None = None) -> np.ndarray:
    """Decode encoded image bytes (JPEG, PNG, TIFF, ...) to ``(H, W, 3)`` uint8 RGB.

    JPEGs come back as the RGB view of an RGBX buffer (see :func:`pillow_rgb`), other
    formats as contiguous arrays.

    Grayscale, palette, CMYK and 16-bit images are converted; images over ``max_pixels``
    raise ``ValueError`` before their pixels are decoded (a decompression bomb must not take
    the machine's memory); truncated files raise ``OSError``. With ``draft_side``, a JPEG is
    decoded at the smallest libjpeg DCT scale (M/8) that keeps both sides at least
    ``draft_side`` pixels: several times faster, slightly different pixels from a full
    decode followed by resizing.
    """
    return _decode(data, max_pixels, draft_side, io.BytesIO(data))


def _decode(data: bytes, max_pixels: int, draft_side: int | None,
            pillow_input: io.BytesIO | str | os.PathLike) -> np.ndarray:
    """simplejpeg where it applies, else Pillow reading ``pillow_input`` (the same bytes)."""
    if data[:3] == _JPEG_MAGIC:
        arr = _decode_simplejpeg(data, max_pixels, draft_side)
        if arr is not None:
            return arr
    return _decode_pillow(pillow_input, max_pixels, draft_side)


def _decode_pillow(fp: io.BytesIO | str | os.PathLike, max_pixels: int,
                   draft_side: int | None) -> np.ndarray:
    with Image.open(fp) as im:
        if im.width * im.height > max_pixels:
            raise ValueError(f"image is {im.width}x{im.height}, over the {max_pixels} pixel limit")
        if draft_side and im.format == "JPEG":
            im.draft("RGB", (draft_side, draft_side))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im.load()
        if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
            arr = np.asarray(im, dtype=np.float64)
            lo, hi = np.nanpercentile(arr, [0.5, 99.5]) if arr.size else (0.0, 1.0)
            scaled = np.clip((arr - lo) / max(hi - lo, 1e-12), 0, 1) * 255
            gray = scaled.astype(np.uint8)
            return np.repeat(gray[:, :, None], 3, axis=2)
        if im.mode != "RGB":
            im = im.convert("RGB")
        return np.asarray(im, dtype=np.uint8)


def read_rgb(path: str | os.PathLike, max_pixels: int = 50_000_000,
             draft_side: int | None = None) -> np.ndarray:
    """Decode an image file to ``(H, W, 3)`` uint8 RGB (see :func:`decode_rgb`)."""
    with open(path, "rb") as f:
        data = f.read()
    return _decode(data, max_pixels, draft_side, path)  # Pillow's errors then name the file


def pillow_rgb(image: np.ndarray) -> Image.Image:
    """A Pillow RGB image of an ``(H, W, 3)`` uint8 array, for reading only.

    An array that is the RGB view of a contiguous RGBX buffer (as :func:`decode_rgb` returns
    JPEGs) is shared with Pillow as it stands: Pillow keeps RGB images in that layout, 4
    bytes a pixel. Any other array is copied into that layout (about 0.1-0.2 ms for a 424
    px image).
    """
    base = image.base
    if (isinstance(base, np.ndarray) and base.dtype == np.uint8 and base.ndim == 3
            and base.shape == (*image.shape[:2], 4) and base.flags.c_contiguous
            and image.strides == base.strides
            and image.ctypes.data == base.ctypes.data):
        h, w = image.shape[:2]
        try:
            # What Image.frombuffer does for the modes it maps, with mode RGB over the
            # RGBX rows (frombuffer maps RGBX only, and Pillow resizes an RGBX image 4
            # bands wide, a fifth slower than RGB).
            shared = Image.new("RGB", (0, 0))._new(
                Image.core.map_buffer(base, (w, h), "raw", 0, ("RGB", 0, 1)))
            shared.readonly = 1
            return shared
        except (AttributeError, TypeError, ValueError):  # a Pillow without that internal
            return Image.frombuffer("RGBX", (w, h), base, "raw", "RGBX", 0, 1)
    return Image.fromarray(image, "RGB")


#: A decoded image narrower than this (pixels) holds no galaxy to classify.
MIN_IMAGE_SIDE = 8


def unusable_image(image: np.ndarray) -> str | None:
    """Why a decoded cutout cannot be classified (``None`` if it can): under
    :data:`MIN_IMAGE_SIDE` pixels a side, or one value throughout (all NaN, or a blank frame:
    survey cutout services answer black off their footprint, and a failed export writes one
    colour), which the network would otherwise label like any galaxy."""
    h, w = image.shape[:2]
    if min(h, w) < MIN_IMAGE_SIDE:
        return f"image is {w}x{h} pixels, under {MIN_IMAGE_SIDE} a side"
    # A sparse look first (a few hundred pixels), so a normal image costs microseconds.
    if _one_value(image[::32, ::32]) and _one_value(image):
        return "image is blank (one value throughout)"
    return None


def _one_value(image: np.ndarray) -> bool:
    img = image if image.ndim == 3 else image[..., None]
    if img.dtype.kind == "f":
        finite = np.isfinite(img).all(axis=2)
        if not finite.all():  # NaN/inf pixels are no value: compare the others
            pixels = img[finite]
            return len(pixels) == 0 or bool((pixels == pixels[0]).all())
    return bool((img == img[0, 0]).all())
