"""``--source panstarrs``: Pan-STARRS1 DR1 colour cutouts, as an installable astro_morph plugin.

The cutout comes from CDS's hips2fits service, whose request astroquery builds; caching,
retries, the rate limit, ``--offline`` and per-row flags come from astro_morph's
``NetworkSource``, so a survey source is one method and one hook.
"""

from astro_morph.hookspecs import hookimpl
from astro_morph.sources.network import NetworkSource

__version__ = "0.1.0"

PS1_HIPS = "CDS/P/PanSTARRS/DR1/color-z-zg-g"


class PanStarrsSource(NetworkSource):
    """Pan-STARRS1 colour JPEG cutouts at each row's RA/Dec (options as NetworkSource)."""

    name = "panstarrs"

    def request(self, ra: float, dec: float, size_arcsec: float) -> tuple[str, dict]:
        """URL and query parameters of one ``pixels``-square cutout ``size_arcsec`` wide."""
        from astropy import units as u
        from astropy.coordinates import Angle, Latitude, Longitude
        from astroquery.hips2fits import hips2fits

        payload = hips2fits.query(
            hips=PS1_HIPS, width=self.pixels, height=self.pixels, projection="TAN",
            ra=Longitude(ra * u.deg), dec=Latitude(dec * u.deg),
            fov=Angle(size_arcsec * u.arcsec), format="jpg", get_query_payload=True)
        return hips2fits.server, {k: str(v) for k, v in payload.items()}


@hookimpl
def astromorph_register_sources(register):
    """Called once when astro_morph builds its source registry."""
    register("panstarrs", PanStarrsSource,
             "Pan-STARRS1 DR1 colour cutouts via hips2fits (cached, retried, rate-limited)")
