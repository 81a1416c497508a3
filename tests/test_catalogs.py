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


def test_bright_galaxies_have_a_size_column_in_arcsec():
    t = Table.read(CATALOGS / "bright_galaxies.ecsv")
    assert t["r25_arcsec"].unit == u.arcsec and t["d25_arcmin"].unit == u.arcmin
    np.testing.assert_allclose((t["d25_arcmin"].quantity / 2).to_value(u.arcsec),
                               t["r25_arcsec"], rtol=0.01)
    # M101 and M81 are the giants of the list, NGC 4889 (in Coma) the smallest.
    assert t["name"][np.argmin(t["d25_arcmin"])] == "NGC 4889"
    assert t["d25_arcmin"].max() == t["d25_arcmin"][list(t["name"]).index("M101")]


def test_size_column_frames_the_galaxy(monkeypatch):
    """The network source reads the size column (with its unit) for the field of view."""
    from astro_morph.sources.sdss import SdssSource

    t = Table.read(CATALOGS / "bright_galaxies.ecsv")
    asked = []
    monkeypatch.setattr(SdssSource, "_one",
                        lambda self, ra, dec, size: asked.append(size) or None)
    for column in ("r25_arcsec", "d25_arcmin"):
        asked.clear()
        SdssSource(size_column=column, offline=True).fetch(t)
        factor = 1.0 if column == "r25_arcsec" else 2.0  # a diameter column frames twice as wide
        np.testing.assert_allclose(asked, factor * 10.18 * np.asarray(t["r25_arcsec"]), rtol=0.01)


@pytest.mark.remote_data
def test_sizes_match_simbad():
    from astroquery.simbad import Simbad

    t = Table.read(CATALOGS / "bright_galaxies.ecsv")
    simbad = Simbad()
    simbad.add_votable_fields("dim")
    for name, d25 in zip(t["name"], t["d25_arcmin"], strict=True):
        result = simbad.query_object(name)
        col = "galdim_majaxis" if "galdim_majaxis" in result.colnames else "GALDIM_MAJAXIS"
        assert abs(float(result[col][0]) - d25) / d25 < 0.35, name
