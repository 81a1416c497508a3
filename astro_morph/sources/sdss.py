"""``--source sdss``: SDSS colour cutouts from SkyServer's image-cutout service (getjpeg).

These are the gri colour composites Galaxy Zoo volunteers classified, so they meet the
network in the form it was trained on. The service takes RA, Dec, a pixel scale (arcsec per
pixel) and a size in pixels; we ask for ``pixels`` square at ``size_arcsec / pixels``.
"""

from __future__ import annotations

from ..hookspecs import hookimpl
from .network import NetworkSource

__all__ = ["SdssSource", "SKYSERVER_CUTOUT_URL", "query_region"]

SKYSERVER_CUTOUT_URL = "https://skyserver.sdss.org/dr17/SkyServerWS/ImgCutout/getjpeg"


class SdssSource(NetworkSource):
    """SDSS DR17 colour JPEG cutouts (see :class:`NetworkSource` for the options)."""

    name = "sdss"

    def request(self, ra: float, dec: float, size_arcsec: float) -> tuple[str, dict]:
        scale = size_arcsec / self.pixels
        return SKYSERVER_CUTOUT_URL, {"ra": f"{ra:.6f}", "dec": f"{dec:.6f}",
                                      "scale": f"{scale:.4f}", "width": self.pixels,
                                      "height": self.pixels}


def query_region(coordinates, radius, match_arcsec: float = 1.0, **kwargs):
    """SDSS photometric objects around a position, one row per distinct source.

    A thin layer over astroquery's ``SDSS.query_region``: SkyServer returns one row per
    detection (the same galaxy from every overlapping run), so rows closer than
    ``match_arcsec`` to an earlier row are dropped, leaving a catalog ready for
    ``classify(..., source="sdss")`` with ``RA``/``DEC`` columns in degrees.

    Parameters
    ----------
    coordinates : str or `~astropy.coordinates.SkyCoord`
        Centre of the search.
    radius : `~astropy.units.Quantity` or str
        Search radius (astroquery's limit of 3 arcmin applies).
    match_arcsec : float
        Detections closer than this are one source.
    **kwargs
        Passed to ``SDSS.query_region`` (e.g. ``photoobj_fields``, ``data_release``).

    Returns
    -------
    `~astropy.table.Table` or None
        None when SkyServer finds nothing.
    """
    import numpy as np
    from astropy import units as u
    from astropy.coordinates import SkyCoord
    from astroquery.sdss import SDSS

    if not isinstance(coordinates, SkyCoord):
        coordinates = SkyCoord(coordinates, unit="deg")
    found = SDSS.query_region(coordinates, radius=u.Quantity(radius), **kwargs)
    if found is None or len(found) == 0:
        return None
    coords = SkyCoord(found["ra"], found["dec"], unit="deg")
    keep = np.ones(len(found), dtype=bool)
    for i in range(len(found)):  # greedy: a few hundred rows at most within 3 arcmin
        if keep[i]:
            close = coords[i].separation(coords[i + 1:]) < match_arcsec * u.arcsec
            keep[i + 1:][close] = False
    out = found[keep]
    out["RA"] = out["ra"].astype(float)
    out["DEC"] = out["dec"].astype(float)
    out["RA"].unit = out["DEC"].unit = u.deg
    out.meta["QUERY"] = f"astroquery SDSS.query_region r={radius}"
    return out


@hookimpl
def astromorph_register_sources(register):
    register("sdss", SdssSource,
             "SDSS colour cutouts at RA/Dec (SkyServer getjpeg; cached, retried, rate-limited)")
