"""Cutout sources: turn catalog rows into images.

A source is registered through :func:`astro_morph.hookspecs.astromorph_register_sources` and
created with keyword options; it is a :class:`Source`, whose ``fetch(rows)`` returns one
:class:`Cutout` per row.
"""

from .base import Cutout, Source, format_id

__all__ = ["Cutout", "Source", "format_id"]
