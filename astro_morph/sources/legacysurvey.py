"""``--source legacysurvey``: DESI Legacy Imaging Surveys colour cutouts via hips2fits.

astroquery (0.4.11 here) has no DESI Legacy Imaging module, so the cutout comes from CDS's
hips2fits service, whose request payload astroquery's ``hips2fits`` builds: a TAN projection
of the survey's colour HiPS, ``pixels`` square over ``size_arcsec``. ``image_format="fits"``
asks for FITS instead (e.g. with a single-band HiPS); it is stretched like a FITS mosaic.
"""

from __future__ import annotations

from typing import Any

from ..errors import UserError
from ..hookspecs import hookimpl
from .network import NetworkSource

__all__ = ["LegacySurveySource", "LEGACY_HIPS"]

LEGACY_HIPS = "CDS/P/DESI-Legacy-Surveys/DR10/color"


class LegacySurveySource(NetworkSource):
    """Legacy Survey DR10 colour JPEG cutouts (see :class:`NetworkSource` for the options)."""

    name = "legacysurvey"

    def __init__(self, hips: str = LEGACY_HIPS, image_format: str = "jpg",
                 **options: Any) -> None:
        # ``options``: NetworkSource's (checked against its signature before the call).
        super().__init__(**options)
        if image_format not in ("jpg", "fits"):
            raise UserError(f"image_format must be 'jpg' or 'fits', not {image_format!r}")
        self.hips, self.image_format = hips, image_format

    def request(self, ra: float, dec: float, size_arcsec: float) -> tuple[str, dict]:
        from astropy import units as u
        from astropy.coordinates import Angle, Latitude, Longitude
        from astroquery.hips2fits import hips2fits

        payload = hips2fits.query(
            hips=self.hips, width=self.pixels, height=self.pixels, projection="TAN",
            ra=Longitude(ra * u.deg), dec=Latitude(dec * u.deg),
            fov=Angle(size_arcsec * u.arcsec), format=self.image_format,
            get_query_payload=True)
        return hips2fits.server, {k: str(v) for k, v in payload.items()}


@hookimpl
def astromorph_register_sources(register):
    register("legacysurvey", LegacySurveySource,
             "Legacy Survey DR10 colour cutouts via astroquery hips2fits (cached, retried)")
