"""Image file decoding shared by sources: always (H, W, 3) uint8 RGB or a clear exception."""

from __future__ import annotations

import os
import warnings

import numpy as np
from PIL import Image

__all__ = ["read_rgb"]


def read_rgb(path: str | os.PathLike, max_pixels: int = 50_000_000,
             draft_side: int | None = None) -> np.ndarray:
    """Decode an image file to ``(H, W, 3)`` uint8 RGB.

    Grayscale, palette, CMYK and 16-bit images are converted; images over ``max_pixels``
    raise ``ValueError`` before their pixels are decoded (a decompression bomb must not take
    the machine's memory); truncated files raise ``OSError``. With ``draft_side``, a JPEG is
    decoded at the smallest libjpeg DCT scale (1/2, 1/4, 1/8) that keeps both sides at least
    ``draft_side`` pixels (``PIL.Image.draft``): several times faster, slightly different
    pixels from a full decode followed by resizing.
    """
    with Image.open(path) as im:
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
