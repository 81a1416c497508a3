"""Centring and cropping: turn a cutout into the network's square input.

A step is registered through :func:`astro_morph.hookspecs.astromorph_register_centring`;
``factory(**options)`` returns ``step(cutout, size) -> Prepared``.
"""

from .crop import PAPER_CROP_FRACTION, CentreCrop, Prepared, crop_resize

__all__ = ["PAPER_CROP_FRACTION", "CentreCrop", "Prepared", "crop_resize"]
