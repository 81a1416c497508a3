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
    from astro_morph.errors import UserError

    t = Table({c: [1.0] for c in columns})
    with pytest.raises(UserError) as err:
        radec_degrees(t)
    assert str(err.value) == f"catalog has no column 'RA' {says}; choose one with --ra-column"
