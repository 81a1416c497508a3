"""The contract between cutout sources and the rest of the pipeline: :class:`Source`.

A source plugin registers a factory (usually a :class:`Source` subclass) with
``astromorph_register_sources``. The run calls ``factory(**user_options, workers=...,
draft_side=...)``: the user options are the factory's named parameters (checked against its
signature before the call, see :func:`astro_morph.options.check_options`); ``workers`` and
``draft_side`` are the run's settings, declared by :class:`Source` itself.
"""

from __future__ import annotations

import abc
import os
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

import numpy as np
from astropy.table import Table

if TYPE_CHECKING:
    from ..centring.base import Prepared

__all__ = ["Cutout", "Source", "RUN_OPTIONS", "decode_threads", "format_id", "bad_id_reason"]

#: Constructor arguments the run sets (not the user): decoding threads, reduced-scale decode.
RUN_OPTIONS = ("workers", "draft_side")


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
        the cutout's pixels when it is not the image centre; ``meta["origin"]`` names where
        the image came from (a file, a survey position) for messages about it.
    """

    image: np.ndarray | None
    flags: int = 0
    message: str = ""
    pixel_scale: float | None = None
    meta: dict = field(default_factory=dict)


class Source(abc.ABC):
    """Base class of every cutout source: what a source factory returns.

    Parameters
    ----------
    workers : int, optional
        Threads the source may use to decode rows (the run passes ``--workers``, default
        one per core); sources that do not decode in threads ignore it.
    draft_side : int, optional
        With ``--fast-decode``: the smallest image side the centring step needs, so a JPEG
        source may decode at a reduced DCT scale down to it; ``None`` = full resolution.

    A subclass declares its user options as named constructor parameters and passes
    ``workers`` and ``draft_side`` on to ``Source.__init__``; it implements :meth:`fetch`,
    and may override :meth:`check_columns` and, when it decodes in threads of its own,
    :meth:`fetch_prepared` (setting ``fuses_prepare = True``).
    """

    #: True when :meth:`fetch_prepared` centres each row in the thread that decoded it;
    #: the run then gives the centring step to the source instead of its own thread pool.
    fuses_prepare: ClassVar[bool] = False

    def __init__(self, *, workers: int | None = None, draft_side: int | None = None) -> None:
        self.workers = workers or decode_threads()
        self.draft_side = draft_side
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def _threads(self) -> ThreadPoolExecutor:
        """The source's pool of ``workers`` threads, started on first use and ended with the
        source: starting a pool per 128-row slice costs several ms at 8-16 threads, held
        against the GIL."""
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.workers,
                                                thread_name_prefix="astromorph-decode")
                weakref.finalize(self, self._pool.shutdown, wait=False)
            return self._pool

    def check_columns(self, columns: list[str]) -> None:
        """Raise :class:`~astro_morph.errors.UserError` naming a column the source needs and
        the catalog lacks (called once, before the run). Default: nothing to check."""
        return None

    @abc.abstractmethod
    def fetch(self, rows: Table) -> list[Cutout]:
        """Return one :class:`Cutout` per row of ``rows``, in order; never raise for one row."""

    def fetch_prepared(self, rows: Table,
                       prepare: Callable[[Cutout], Prepared]) -> list[Prepared]:
        """One prepared row per row: ``prepare(cutout)`` for each of :meth:`fetch`'s cutouts.

        A source with ``fuses_prepare = True`` overrides this to call ``prepare`` in the
        thread that decoded the row, while its pixels are still in the CPU's cache.
        """
        return [prepare(c) for c in self.fetch(rows)]


def _id_or_reason(value: object) -> tuple[str | None, str]:
    """The file-name id of an id cell, or ``None`` and why not (one test for both)."""
    if value is None or value is np.ma.masked:
        return None, "empty id/path"
    if isinstance(value, np.ndarray):  # a column of vectors: no one id per row
        return None, (f"id cell holds an array (shape {value.shape}); the id column "
                      f"must hold one value per row")
    if isinstance(value, (bool, np.bool_)):
        return None, f"id {value} is a boolean, not an id"
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, (int, np.integer)):
        return str(int(value)), ""
    if isinstance(value, (float, np.floating)):
        if not np.isfinite(value):
            return None, f"id is {value}"
        if abs(value) >= 2**53:  # an 18-digit SDSS objid read as a double has lost digits
            return None, (f"id {value:.6g} is a floating-point number too large to hold "
                          f"every digit of an integer id; store the id column as integers "
                          f"or strings")
        if value != int(value):
            return None, f"id {value:g} is not a whole number"
        return str(int(value)), ""
    text = str(value).strip()
    return (text, "") if text else (None, "empty id/path")


def format_id(value: object) -> str | None:
    """Turn an id cell into the string used in file names; ``None`` when unusable.

    Integers are written without a decimal point, and integral floats below 2**53 too
    (a FITS double column of ids); masked, NaN, empty, boolean and array cells give ``None``.
    """
    return _id_or_reason(value)[0]


def bad_id_reason(value: object) -> str:
    """Why :func:`format_id` gave ``None`` for ``value``, in words for a flagged row."""
    return _id_or_reason(value)[1]
