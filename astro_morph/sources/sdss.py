"""``--source sdss``: SDSS colour cutouts from SkyServer's image-cutout service (getjpeg).

These are the gri colour composites Galaxy Zoo volunteers classified, so they meet the
network in the form it was trained on. The service takes RA, Dec, a pixel scale (arcsec per
pixel) and a size in pixels; we ask for ``pixels`` square at ``size_arcsec / pixels``.
"""

from __future__ import annotations

from ..hookspecs import hookimpl
from .network import NetworkSource

__all__ = ["SdssSource", "SKYSERVER_CUTOUT_URL"]

SKYSERVER_CUTOUT_URL = "https://skyserver.sdss.org/dr17/SkyServerWS/ImgCutout/getjpeg"


class SdssSource(NetworkSource):
    """SDSS DR17 colour JPEG cutouts (see :class:`NetworkSource` for the options)."""

    name = "sdss"

    def request(self, ra: float, dec: float, size_arcsec: float) -> tuple[str, dict]:
        scale = size_arcsec / self.pixels
        return SKYSERVER_CUTOUT_URL, {"ra": f"{ra:.6f}", "dec": f"{dec:.6f}",
                                      "scale": f"{scale:.4f}", "width": self.pixels,
                                      "height": self.pixels}


@hookimpl
def astromorph_register_sources(register):
    register("sdss", SdssSource,
             "SDSS colour cutouts at RA/Dec (SkyServer getjpeg; cached, retried, rate-limited)")
