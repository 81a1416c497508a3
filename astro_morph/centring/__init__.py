"""Centring and cropping: turn a cutout into the network's square input.

A step is registered through :func:`astro_morph.hookspecs.astromorph_register_centring`;
``factory(**options)`` returns a :class:`CentringStep`: ``step(cutout, size) -> Prepared``.
"""

from .base import CentringStep, Prepared
from .crop import PAPER_CROP_FRACTION, CentreCrop, crop_resize

__all__ = ["PAPER_CROP_FRACTION", "CentringStep", "CentreCrop", "Prepared", "crop_resize"]
