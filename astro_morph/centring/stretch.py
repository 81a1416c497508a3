"""Multi-band survey pixels to the RGB image the network expects.

Galaxy Zoo's SDSS colour images map i, r, g to red, green, blue with an asinh stretch
(Lupton et al. 2004). :func:`lupton_rgb` does the same with astropy's ``make_lupton_rgb``,
so FITS cutouts meet the network in the same form as the JPEGs it was trained on.
Parameters per survey live in :data:`SURVEY_STRETCH`.
"""

from __future__ import annotations

import numpy as np

__all__ = ["SURVEY_STRETCH", "lupton_rgb"]

#: Lupton parameters (Q, stretch, minimum) per survey, in the band order red, green, blue.
#: Values follow SDSS's own colour images for nanomaggy-calibrated frames; other surveys'
#: pixel units need other stretches (pass ``stretch=`` / ``Q=``).
SURVEY_STRETCH: dict[str, dict[str, float]] = {
    "sdss": {"Q": 8.0, "stretch": 0.5, "minimum": 0.0},
    "legacysurvey": {"Q": 8.0, "stretch": 0.05, "minimum": 0.0},
    "default": {"Q": 8.0, "stretch": 0.5, "minimum": 0.0},
}


def lupton_rgb(bands: list[np.ndarray], Q: float = 8.0, stretch: float = 0.5,
               minimum: float = 0.0) -> np.ndarray:
    """Stack 1-3 band images (reddest first) into ``(H, W, 3)`` float32 in [0, 1].

    NaN pixels stay NaN (so a centring step can flag them); one band gives a grey image,
    two bands use their mean as the green channel.
    """
    from astropy.visualization import make_lupton_rgb

    if not 1 <= len(bands) <= 3:
        raise ValueError(f"need 1 to 3 bands, got {len(bands)}")
    if len(bands) == 1:
        r = g = b = bands[0]
    elif len(bands) == 2:
        r, b = bands
        g = (r + b) / 2
    else:
        r, g, b = bands
    nan = ~(np.isfinite(r) & np.isfinite(g) & np.isfinite(b))
    clean = [np.nan_to_num(np.asarray(x, dtype=np.float64)) for x in (r, g, b)]
    with np.errstate(invalid="ignore", divide="ignore"):  # 0/0 on blank pixels, masked anyway
        rgb = make_lupton_rgb(*clean, minimum=minimum, stretch=stretch, Q=Q,
                              output_dtype=np.float64)
    rgb = np.clip(rgb, 0, 1).astype(np.float32)
    rgb[nan] = np.nan
    return rgb
