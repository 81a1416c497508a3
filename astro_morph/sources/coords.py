"""Catalog columns a cutout needs: RA/Dec to degrees (floats, Quantities or sexagesimal
strings, bad rows flagged) and galaxy radii to cutout sides in arcsec."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from astropy import units as u
from astropy.table import Table

from ..errors import UserError, suggest_names
from ..flags import MorphFlag
from .base import Cutout

__all__ = ["find_column", "column_hint", "with_skycoord_parts", "radec_degrees",
           "cutout_sides_arcsec", "cut_each_position", "angle_unit", "GZ_FIELD_PER_PETROR90",
           "USUAL_NAMES"]

#: Galaxy Zoo images span 424 pixels of 0.024 x petroR90_r arcsec (Lintott et al. 2008;
#: Willett et al. 2013): a field of 10.18 petroR90 radii.
GZ_FIELD_PER_PETROR90 = 424 * 0.024


#: Coordinate column names of common catalogs (VizieR, SExtractor, Gaia, TOPCAT matches),
#: lower case: named in the error when the asked-for column is absent.
USUAL_NAMES = {
    "--ra-column": ("ra", "raj2000", "_raj2000", "ra_icrs", "alpha_j2000", "ra_j2000",
                    "ra_deg", "radeg", "ra2000", "ra_1"),
    "--dec-column": ("dec", "dej2000", "_dej2000", "decj2000", "de_icrs", "delta_j2000",
                     "dec_j2000", "dec_deg", "decdeg", "dedeg", "de2000", "dec_1"),
    # Image ids: SDSS object ids (Galaxy Zoo 1/2 tables), Kaggle's GalaxyID, Zooniverse.
    "--id-column": ("objid", "dr7objid", "dr8objid", "galaxyid", "id", "asset_id",
                    "iauname"),
}


def column_hint(name: str, colnames: list[str], option: str) -> str:
    """What to say after "catalog has no column 'name'": the closest names (a misspelling,
    'GalaxyId'), else the columns of a usual name for ``option`` it holds
    (:data:`USUAL_NAMES`: 'RAJ2000' is too far from 'RA' to be a misspelling)."""
    close = suggest_names(name, colnames)
    names = USUAL_NAMES.get(option, ())
    # 'coord.ra': a SkyCoord column's part (with_skycoord_parts), as ECSV and FITS store it
    usual = [c for c in colnames if c.lower() in names
             or ("." in c and names and c.lower().rsplit(".", 1)[1] == names[0])]
    if close or not usual:
        return close
    return f" (it has {' and '.join(repr(c) for c in usual[:2])}: {option} {usual[0]}?)"


def with_skycoord_parts(table: Table) -> Table:
    """``table``, or where it holds SkyCoord columns (astropy writes them to ECSV and FITS as
    ``coord.ra``/``coord.dec`` and reads them back whole) a view with each one's ICRS right
    ascension and declination as ``<name>.ra`` and ``<name>.dec`` degree columns, so
    ``--ra-column coord.ra`` finds what a viewer such as TOPCAT shows. The columns are the
    source's to read; the output keeps the input's own columns."""
    from astropy.coordinates import SkyCoord

    coords = [name for name in table.colnames if isinstance(table[name], SkyCoord)]
    if not coords:
        return table
    view = Table(table, copy=False)
    for name in coords:
        icrs = table[name].icrs
        for part, values in (("ra", icrs.ra.deg), ("dec", icrs.dec.deg)):
            if f"{name}.{part}" not in view.colnames:
                view[f"{name}.{part}"] = values * u.deg
    return view


def find_column(colnames: list[str], name: str, option: str) -> str:
    """The column called ``name``, compared case-insensitively, or a UserError naming it
    (and, for RA/Dec, a column of a usual name such as VizieR's RAJ2000 or SExtractor's
    ALPHA_J2000: named, not taken, since a catalog may hold several positions)."""
    if name in colnames:
        return name
    matches = [c for c in colnames if c.lower() == name.lower()]
    if matches:
        return matches[0]
    raise UserError(f"catalog has no column {name!r}{column_hint(name, colnames, option)}; "
                    f"choose one with {option}")


#: Angle units as catalogs spell them outside the FITS standard (astropy reads them as
#: unrecognised units, with which no arithmetic works), lower case.
_ANGLE_SPELLINGS = {
    "deg": u.deg, "degree": u.deg, "degrees": u.deg, "decimal degrees": u.deg,
    "dms": u.deg, "d:m:s": u.deg,
    "h": u.hourangle, "hr": u.hourangle, "hour": u.hourangle, "hours": u.hourangle,
    "hourangle": u.hourangle, "hms": u.hourangle, "h:m:s": u.hourangle,
    "rad": u.rad, "radian": u.rad, "radians": u.rad,
    "arcmin": u.arcmin, "arcminute": u.arcmin, "arcminutes": u.arcmin,
    "arcsec": u.arcsec, "arcsecond": u.arcsecond, "arcseconds": u.arcsec,
}


def angle_unit(column, is_ra: bool = False):
    """The angle unit of ``column`` (``None`` when it has none), or a UserError naming it.

    Spellings astropy does not recognise ('degrees', 'DEG', 'hourangle' in a FITS TUNIT)
    are read as the angle they name; an hour (FITS 'h' is a time) on an RA column is an
    hour of right ascension, 15 degrees.
    """
    unit = getattr(column, "unit", None)
    if unit is None:
        return None
    if isinstance(unit, u.UnrecognizedUnit):
        text = str(unit).strip().strip("'\"").strip().lower()
        unit = _ANGLE_SPELLINGS.get(text)
        if unit is None:
            raise UserError(f"column {column.name!r} has unit {text!r}, which is not an "
                            f"angle unit (deg, arcsec, hourangle, ...)")
    if is_ra and unit.physical_type == "time":
        return u.hourangle * unit.to(u.hour)
    if unit.physical_type != "angle":
        raise UserError(f"column {column.name!r} has unit {unit}, not an angle")
    return unit


def _to_degrees(column, is_ra: bool) -> tuple[np.ndarray, np.ndarray]:
    """Degrees and a bad-row mask for one coordinate column."""
    n = len(column)
    mask = np.ma.getmaskarray(column)
    data = np.ma.getdata(column)
    if data.dtype.kind in "fiu":
        unit = angle_unit(column, is_ra)
        values = np.asarray(data, dtype=float)
        if unit is not None and unit != u.deg:
            values = (values * unit).to_value(u.deg)
    else:
        from astropy.coordinates import Angle

        given = angle_unit(column, is_ra)  # a text column's unit, when it has one
        values = np.full(n, np.nan)
        for i, text in enumerate(data):
            text = (text.decode() if isinstance(text, bytes) else str(text)).strip()
            if mask[i] or not text:
                continue
            try:  # a bare number is in the column's unit, else degrees ('12.5', '1.25e2')
                values[i] = float(text) * (given.to(u.deg) if given is not None else 1.0)
                continue
            except ValueError:
                pass
            try:  # sexagesimal RA is hours ('10:00:00', '10 00 00'); 'd'/'h' say themselves
                has_sep = any(ch in text for ch in ": hms")
                unit = given or (u.hourangle if is_ra and has_sep else u.deg)
                values[i] = Angle(text, unit=unit).deg
            except (ValueError, u.UnitsError):
                pass
    bad = mask | ~np.isfinite(values)
    if is_ra:
        bad |= (values < 0) | (values >= 360)
    else:
        bad |= np.abs(values) > 90
    return np.where(bad, np.nan, values), bad


def radec_degrees(table: Table, ra_column: str = "RA", dec_column: str = "DEC"
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ra, dec, bad) in degrees; bad rows (masked, NaN, out of range, unparseable) are NaN."""
    ra_name = find_column(table.colnames, ra_column, "--ra-column")
    dec_name = find_column(table.colnames, dec_column, "--dec-column")
    ra, bad_ra = _to_degrees(table[ra_name], True)
    dec, bad_dec = _to_degrees(table[dec_name], False)
    bad = bad_ra | bad_dec
    return np.where(bad, np.nan, ra), np.where(bad, np.nan, dec), bad


def cutout_sides_arcsec(table: Table, size_column: str | None,
                        default_arcsec: float) -> tuple[np.ndarray, np.ndarray]:
    """Each row's cutout side in arcsec, and which rows fell back to ``default_arcsec``.

    With ``size_column`` (a petroR90-like radius: arcsec, or any angle unit the column
    carries) the side is :data:`GZ_FIELD_PER_PETROR90` times it, Galaxy Zoo's framing; a
    missing, NaN or non-positive radius gets ``default_arcsec`` and is marked in the second
    array (the sources flag it ``SIZE_DEFAULTED``). Without a column every row gets the
    default and none is marked.
    """
    n = len(table)
    if not size_column:
        return np.full(n, float(default_arcsec)), np.zeros(n, bool)
    col = table[find_column(table.colnames, size_column, "--size-column")]
    try:
        values = np.asarray(np.ma.filled(col.astype(float), np.nan), dtype=float)
    except (TypeError, ValueError):
        raise UserError(f"--size-column {col.name!r} holds {col.dtype}, not numbers") from None
    try:
        unit = angle_unit(col)
    except UserError as err:
        raise UserError(f"--size-column: {err}") from None
    if unit is not None:
        values = (values * unit).to_value(u.arcsec)  # arcmin, deg: not arcsec
    sides = values * GZ_FIELD_PER_PETROR90
    defaulted = ~(np.isfinite(sides) & (sides > 0))
    return np.where(defaulted, float(default_arcsec), sides), defaulted


def cut_each_position(rows: Table, ra_column: str, dec_column: str, size_column: str | None,
                      size_arcsec: float, cut: Callable[[int, float, float, float], Cutout],
                      map_: Callable = map,
                      coords: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
                      ) -> list[Cutout]:
    """One Cutout per row of a positional source: ``cut(i, ra_deg, dec_deg, side_arcsec)``,
    ``i`` the row's index in ``rows``; ``coords``: ``rows``' :func:`radec_degrees`, when the
    caller has them already.

    Rows whose coordinates are unusable are flagged ``BAD_COORDINATES`` without a call, and
    rows whose size fell back to ``size_arcsec`` get ``SIZE_DEFAULTED`` on top of ``cut``'s
    flags. ``map_`` runs the rows (a thread pool's ``map`` for network requests).
    """
    ra, dec, bad = coords or radec_degrees(rows, ra_column, dec_column)
    sides, defaulted = cutout_sides_arcsec(rows, size_column, size_arcsec)

    def one(i: int) -> Cutout:
        if bad[i]:
            return Cutout(None, MorphFlag.BAD_COORDINATES,
                          "RA/Dec missing, NaN, out of range or unparseable")
        cutout = cut(i, float(ra[i]), float(dec[i]), float(sides[i]))
        if defaulted[i]:
            cutout.flags |= MorphFlag.SIZE_DEFAULTED
        return cutout

    return list(map_(one, range(len(rows))))
