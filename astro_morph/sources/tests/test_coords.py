"""RA/Dec columns given as text, as CSV and hand-made catalogs hold them."""

import numpy as np
import pytest
from astropy.table import Table

from astro_morph.sources.coords import radec_degrees


@pytest.mark.parametrize(("text", "degrees"), [
    ("150.25", 150.25), ("12.5 ", 12.5), (" 150.25", 150.25),  # padding: still degrees
    ("1.5e2", 150.0),
    ("10:00:00", 150.0), ("10 00 00", 150.0), ("10h00m00s", 150.0),  # sexagesimal RA: hours
    ("150d15m", 150.25), ("150.5deg", 150.5),  # an explicit degree sign wins
])
def test_ra_text_is_read_as_astronomers_write_it(text, degrees):
    ra, _, bad = radec_degrees(Table({"RA": [text], "DEC": ["-12:30:00"]}))
    assert not bad[0]
    assert ra[0] == pytest.approx(degrees)


def test_dec_text_is_degrees_and_nonsense_is_flagged():
    t = Table({"RA": ["150", "150", "150", "150"],
               "DEC": ["-12:30:00", " +12.5", "nan", "north"]})
    _, dec, bad = radec_degrees(t)
    assert dec[:2] == pytest.approx([-12.5, 12.5])
    assert list(bad) == [False, False, True, True]
    assert np.isnan(dec[2:]).all()


@pytest.mark.parametrize(("columns", "says"), [
    (["ALPHA_J2000", "DELTA_J2000"], "(it has 'ALPHA_J2000': --ra-column ALPHA_J2000?)"),
    (["RAJ2000", "DEJ2000", "_RAJ2000"], "(it has 'RAJ2000' and '_RAJ2000': --ra-column RAJ2000?)"),
    (["ra_x", "dec"], "(did you mean 'ra_x'?)"),  # no usual name: the closest ones
])
def test_a_missing_ra_column_names_the_usual_coordinate_columns(columns, says):
    """VizieR's RAJ2000 and SExtractor's ALPHA_J2000 are too far from 'RA' for a
    did-you-mean; they are named (VizieR's RAdeg/DEdeg too: see the Dec test below)."""
    from astro_morph.errors import UserError

    t = Table({c: [1.0] for c in columns})
    with pytest.raises(UserError) as err:
        radec_degrees(t)
    assert str(err.value) == f"catalog has no column 'RA' {says}; choose one with --ra-column"


@pytest.mark.parametrize(("unit", "degrees"), [
    ("deg", 10.0), ("degrees", 10.0), ("DEG", 10.0), ("Degree", 10.0),  # outside FITS's list
    ("hourangle", 150.0), ("h", 150.0), ("hms", 150.0), ("arcmin", 10 / 60),
])
def test_ra_units_as_fits_catalogs_spell_them(tmp_path, unit, degrees):
    """A FITS TUNIT astropy does not recognise ('degrees') had ended the run in a ValueError
    traceback (no arithmetic works with an unrecognised unit); an hour on an RA column is
    an hour of right ascension."""
    import warnings

    from astropy.io import fits

    path = tmp_path / "cat.fits"
    fits.BinTableHDU.from_columns([
        fits.Column(name="RA", format="D", array=np.array([10.0]), unit=unit),
        fits.Column(name="DEC", format="D", array=np.array([2.0]), unit="deg")]).writeto(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # astropy's notice of an unrecognised unit
        table = Table.read(path)
    ra, dec, bad = radec_degrees(table)
    assert ra[0] == pytest.approx(degrees) and dec[0] == 2.0 and not bad[0]


def test_units_that_are_not_angles_are_one_line():
    from astropy import units as u

    from astro_morph.errors import UserError
    from astro_morph.sources.coords import cutout_sides_arcsec

    t = Table({"RA": [1.0] * u.mag, "DEC": [1.0]})
    with pytest.raises(UserError, match="column 'RA' has unit mag, not an angle"):
        radec_degrees(t)
    t = Table({"RA": [1.0], "DEC": [1.0] * u.h})  # an hour is right ascension, not Dec
    with pytest.raises(UserError, match="column 'DEC' has unit h, not an angle"):
        radec_degrees(t)
    t = Table({"r": [2.0]})
    t["r"].unit = u.Unit("arcseconds", parse_strict="silent")
    assert cutout_sides_arcsec(t, "r", 60.0)[0][0] == pytest.approx(2.0 * 424 * 0.024)
    t["r"].unit = u.Unit("furlongs", parse_strict="silent")
    with pytest.raises(UserError, match="--size-column: column 'r' has unit 'furlongs', "
                                        "which is not an angle unit"):
        cutout_sides_arcsec(t, "r", 60.0)


def test_a_text_column_with_a_unit_reads_bare_numbers_in_it():
    from astropy import units as u

    t = Table({"RA": ["10.5", "10:30:00", "150.0"], "DEC": ["2", "2", "2"]})
    t["RA"].unit = u.hourangle
    ra, _, bad = radec_degrees(t)
    assert list(ra[:2]) == pytest.approx([157.5, 157.5]) and bad[2]  # 150 h: no RA


def test_a_missing_dec_column_names_vizier_dedeg():
    from astro_morph.errors import UserError

    with pytest.raises(UserError, match=r"no column 'DEC' \(it has 'DEdeg': --dec-column "
                                        r"DEdeg\?\)"):
        radec_degrees(Table({"RA": [1.0], "DEdeg": [1.0]}))
