"""The contract between sources and the rest of the pipeline."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from astropy.table import Table

__all__ = ["Cutout", "Source", "decode_threads", "format_id"]


def decode_threads() -> int:
    """Default decoding threads: one per core, at most 32.

    JPEG decoding and resizing release the GIL, so threads scale with cores until the
    Python-level work per row (holding the GIL) becomes the limit; past a few dozen threads
    that limit, not the cores, sets the rate.
    """
    return min(32, os.cpu_count() or 1)


@dataclass
class Cutout:
    """One row's image, or why there is none.

    Attributes
    ----------
    image : numpy.ndarray or None
        ``(H, W, C)`` array, pixel order (y, x) as numpy indexes it. ``uint8`` for JPEG-like
        data (0-255) or float32 already stretched to [0, 1]. ``None`` when a fatal flag is set.
    flags : int
        :class:`astro_morph.flags.MorphFlag` bits for this row.
    message : str
        Why the row was flagged, naming the row/file (empty when ok).
    pixel_scale : float or None
        Arcsec per pixel when known (survey sources), else ``None``.
    meta : dict
        Extra facts for later steps; ``meta["position"]`` is the catalog position (x, y) in
        the cutout's pixels when it is not the image centre.
    """

    image: np.ndarray | None
    flags: int = 0
    message: str = ""
    pixel_scale: float | None = None
    meta: dict = field(default_factory=dict)


class Source(Protocol):
    """What a source factory returns.

    A source that decodes rows in threads of its own may set ``fuses_prepare = True`` and
    accept ``fetch(rows, prepare=fn)``: it then returns ``fn(cutout)`` for each row,
    called in the thread that made the cutout (the pipeline passes its centring step, so a
    row is cropped while its decoded pixels are still in the CPU's cache).
    """

    def fetch(self, rows: Table) -> list[Cutout]:
        """Return one :class:`Cutout` per row of ``rows``, in order; never raise for one row."""
        ...


def format_id(value: object) -> str | None:
    """Turn an id cell into the string used in file names; ``None`` when unusable.

    Integers are written without a decimal point, and integral floats below 2**53 too
    (a FITS double column of ids); masked, NaN and empty cells give ``None``.
    """
    if value is None or value is np.ma.masked:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        if not np.isfinite(value) or value != int(value) or abs(value) >= 2**53:
            return None
        return str(int(value))
    text = str(value).strip()
    return text or None
