"""The contract between centring steps and the rest of the pipeline: :class:`CentringStep`.

A centring plugin registers a factory (usually a :class:`CentringStep` subclass) with
``astromorph_register_centring``; the run calls ``factory(**user_options)``, the options
being the factory's named parameters (checked against its signature before the call), then
``step(cutout, size)`` once per row, from several threads at once.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..sources.base import Cutout

__all__ = ["CentringStep", "Prepared"]


@dataclass
class Prepared:
    """A cutout ready for the network.

    ``image`` is ``(size, size, 3)`` float32 in [0, 1] or ``None``; ``dx``, ``dy`` are the
    re-centring offset in input pixels, (x, y) order, NaN where no re-centring ran.
    """

    image: np.ndarray | None
    flags: int = 0
    dx: float = float("nan")
    dy: float = float("nan")
    message: str = ""


class CentringStep(abc.ABC):
    """Base class of centring/cropping steps: cutout -> network input.

    Subclasses implement :meth:`__call__` (thread-safe: rows are prepared in parallel) and
    may set :attr:`reports_offset` and override :meth:`min_input_side`.
    """

    #: True when :meth:`__call__` measures a re-centring offset: the run then adds the
    #: ``<prefix>dx`` / ``<prefix>dy`` columns from :attr:`Prepared.dx` / ``dy``.
    reports_offset: ClassVar[bool] = False

    def min_input_side(self, size: int) -> int | None:
        """Smallest source image side that still gives a ``size``-pixel network input, so
        ``--fast-decode`` may decode JPEGs at reduced scale; ``None`` (default): the step
        needs the full-resolution image."""
        return None

    @abc.abstractmethod
    def __call__(self, cutout: Cutout, size: int) -> Prepared:
        """Turn one cutout into a ``(size, size, 3)`` float32 image in [0, 1] with flags (and
        the offset when :attr:`reports_offset`); never raise for one row: flag it."""
