from pathlib import Path

import numpy as np
import pytest
from astropy import units as u
from astropy.table import Table

CATALOGS = Path(__file__).resolve().parent.parent / "catalogs"


def test_bright_galaxies_catalog_reads_with_units():
    t = Table.read(CATALOGS / "bright_galaxies.ecsv")
    assert len(t) == 12 and t["RA"].unit == u.deg
    assert set(t["expected"]) == {"elliptical", "spiral", "edge_on"}
    assert ((t["RA"] >= 0) & (t["RA"] < 360) & (np.abs(t["DEC"]) <= 90)).all()


@pytest.mark.remote_data
def test_positions_match_simbad():
    from astropy.coordinates import SkyCoord
    from astroquery.simbad import Simbad

    t = Table.read(CATALOGS / "bright_galaxies.ecsv")
    ours = SkyCoord(t["RA"], t["DEC"])
    for name, pos in zip(t["name"], ours, strict=True):
        result = Simbad.query_object(name)
        ra_col = "ra" if "ra" in result.colnames else "RA"
        dec_col = "dec" if "dec" in result.colnames else "DEC"
        ref = SkyCoord(result[ra_col][0], result[dec_col][0],
                       unit=(u.deg, u.deg) if ra_col == "ra" else (u.hourangle, u.deg))
        assert pos.separation(ref) < 5 * u.arcsec, name
