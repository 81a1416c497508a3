"""Read and write catalogs (FITS, ECSV, VOTable, Parquet, CSV) as astropy Tables; IPAC and
tab-separated tables, and gzip, bzip2 or xz-compressed text and VOTables, are read too.

Writes are atomic (:mod:`astro_morph.fileio`): the table goes to a temporary file in the
destination folder, is flushed to disk, and is renamed over the destination only when
complete, so a crash or a full disk leaves any previous output intact.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import numpy as np
from astropy.table import Table

from .columns import is_provenance_key
from .errors import UserError, first_line
from .fileio import atomic_write, require_output_dir, temp_suffix

__all__ = ["FORMATS", "catalog_suffix", "check_writable", "guess_format", "in_place_header",
           "is_hats_catalog", "open_hats", "read_catalog", "write_catalog"]

#: File suffix -> astropy format name (read and written).
FORMATS = {
    ".fits": "fits", ".fit": "fits", ".fts": "fits", ".fits.gz": "fits",
    ".ecsv": "ascii.ecsv",
    ".csv": "ascii.csv",
    ".vot": "votable", ".votable": "votable", ".xml": "votable",
    ".parquet": "parquet", ".pq": "parquet",
}
#: Suffixes of tables astromorph reads but does not write: IRSA's IPAC tables and
#: tab-separated text (write ECSV, which keeps units and provenance, instead).
READ_ONLY_FORMATS = {".tbl": "ascii.ipac", ".ipac": "ascii.ipac", ".tsv": "ascii.tab"}
#: Compression astropy undoes on reading; of compressed outputs only ``.fits.gz`` is written.
COMPRESSION = (".gz", ".bz2", ".xz")
SHORT_NAMES = {"fits": "fits", "ecsv": "ascii.ecsv", "csv": "ascii.csv",
               "votable": "votable", "parquet": "parquet"}
READ_ONLY_NAMES = {"ipac": "ascii.ipac", "tsv": "ascii.tab"}


def without_compression(name: str) -> str:
    """``name`` less a :data:`COMPRESSION` suffix (any case): the file astropy reads."""
    return next((name[:-len(c)] for c in COMPRESSION if name.lower().endswith(c)), name)


def guess_format(path: str | os.PathLike, fmt: str | None = None,
                 option: str = "--format") -> str:
    """The astropy format for ``path`` from ``fmt`` (short name) or the file suffix.

    ``option`` is the CLI option that sets ``fmt``, named in the error: ``--format`` for an
    input catalog, which may also be an IPAC or TSV table and gzip/bzip2/xz-compressed;
    ``--output-format`` for an output, which is one of :data:`FORMATS`.
    """
    reading = option != "--output-format"
    names = {**SHORT_NAMES, **READ_ONLY_NAMES} if reading else SHORT_NAMES
    if fmt:
        if fmt.lower() in READ_ONLY_NAMES and not reading:
            raise UserError(f"{path}: {fmt} tables are read, not written; write ECSV instead "
                            f"({option} ecsv)")
        if fmt.lower() not in names:
            raise UserError(f"unknown format {fmt!r}; choose one of {', '.join(names)}")
        return names[fmt.lower()]
    suffix = catalog_suffix(path)
    if suffix:
        return FORMATS[suffix]
    name = Path(path).name.lower()
    if reading:
        plain = without_compression(name)
        fmt = FORMATS.get(Path(plain).suffix) or READ_ONLY_FORMATS.get(Path(plain).suffix)
        if fmt and not (fmt == "parquet" and plain != name):  # Parquet compresses inside
            return fmt
    elif Path(name).suffix in READ_ONLY_FORMATS:
        raise UserError(f"{path}: {Path(name).suffix} tables are read, not written; write "
                        f"ECSV instead (-o {Path(path).with_suffix('.ecsv').name})")
    elif name.endswith(COMPRESSION):
        raise UserError(f"{path}: of compressed outputs only .fits.gz is written; write "
                        f"{Path(path).with_suffix('').name} and compress it afterwards")
    allowed = sorted(FORMATS) + (sorted(READ_ONLY_FORMATS) if reading else [])
    extra = " (each may end in .gz, .bz2 or .xz)" if reading else ""
    raise UserError(f"{path}: cannot tell the format from the suffix; use one of "
                    f"{', '.join(allowed)}{extra} or pass {option}")


def catalog_suffix(path: str | os.PathLike) -> str | None:
    """The catalog file suffix ``path`` ends with (the longest: ``.fits.gz``), or ``None``."""
    name = Path(path).name.lower()
    return next((s for s in sorted(FORMATS, key=len, reverse=True) if name.endswith(s)), None)


def is_hats_catalog(path: str | os.PathLike) -> bool:
    """A folder holding a HATS catalog or collection, as LSDB writes them (its
    ``hats.properties``, ``collection.properties``, or ``properties`` in older layouts)."""
    p = Path(path)
    return p.is_dir() and any((p / name).is_file() for name in
                              ("hats.properties", "collection.properties", "properties"))


def read_catalog(path: str | os.PathLike, fmt: str | None = None) -> Table:
    """Read a catalog; any failure is a one-line :class:`UserError` naming the file.

    A HATS catalog folder (e.g. a ``classify`` of one) is read whole through LSDB, with its
    ``MORPH*`` properties as the table's meta: for ``gallery`` and ``evaluate``-sized looks,
    not for catalogs larger than memory (``classify`` maps those partition by partition).
    """
    p = Path(path)
    if is_hats_catalog(p):
        return _read_hats(p)
    if not p.is_file():
        raise UserError(f"catalog not found: {p}")
    if p.stat().st_size == 0:
        raise UserError(f"catalog {p} is empty (0 bytes)")
    astropy_fmt = guess_format(p, fmt)
    try:
        with warnings.catch_warnings(record=True) as caught:
            # Unknown units and VO warnings are the catalog's business, not a failure.
            warnings.simplefilter("always")
            table = Table.read(p, format=astropy_fmt)
        for w in caught:  # except that only one of several FITS tables is read
            if "multiple tables are present" in str(w.message):
                hdu = str(w.message).rpartition("(")[2].rstrip(")")
                logging.getLogger("astro_morph").warning(
                    "%s holds several tables; reading the first (%s), the others are not "
                    "classified or copied: write each to a file of its own", p, hdu)
    except Exception as exc:  # astropy raises many types for a bad file
        table = _parquet_with_nulls(p) if astropy_fmt == "parquet" else None
        if table is None:
            reason = first_line(exc)
            raise UserError(f"cannot read catalog {p} as {astropy_fmt}: {reason}") from None
    if table.colnames and table.colnames[0].startswith("\ufeff"):
        # A CSV saved by Excel starts with a UTF-8 byte-order mark, which astropy keeps in
        # the first column's name: `--id-column OBJID` must still find it.
        table.rename_column(table.colnames[0], table.colnames[0].lstrip("\ufeff"))
    return table


def open_hats(path: str | os.PathLike, **kwargs):
    """``lsdb.open_catalog(path, **kwargs)``, with one-line errors: lsdb missing, or a
    damaged or foreign folder (hats' own errors)."""
    try:
        import lsdb
    except ImportError:
        raise UserError("HATS catalogs need lsdb: pip install lsdb") from None
    try:
        return lsdb.open_catalog(path, **kwargs)
    except Exception as exc:
        raise UserError(f"cannot open HATS catalog {path}: {first_line(exc)}") from None


def _read_hats(path: Path) -> Table:
    """A HATS catalog as one Table (its rows in HEALPix order; the index column dropped)."""
    catalog = open_hats(path)
    try:
        frame = catalog.compute(progress_bar=False)
    except Exception as exc:  # a damaged partition file
        raise UserError(f"cannot open HATS catalog {path}: {first_line(exc)}") from None
    table = Table.from_pandas(frame.reset_index(drop=True))
    extra = getattr(catalog.hc_structure.catalog_info, "model_extra", None) or {}
    # In any case (a properties file edited by hand or rewritten by another tool), read
    # as a FITS header gives them: upper case.
    table.meta.update({k.upper(): v for k, v in extra.items() if is_provenance_key(k)})
    # An earlier run's keys (scaleout.classify_lsdb) as a table keeps them: comments.
    earlier = [f"earlier {k[len('earlier_'):].upper()}={v}" for k, v in extra.items()
               if k.lower().startswith("earlier_morph")]
    if earlier:
        table.meta["comments"] = earlier
    return table


def _parquet_with_nulls(path: Path) -> Table | None:
    """A Parquet file astropy's reader refuses, read through pandas, or ``None``.

    astropy cannot read a string column holding nulls ("object of type 'NoneType' has no
    len()"), which Parquet writers produce for missing names or ids; pandas reads them and
    ``Table.from_pandas`` masks the nulls, so those rows are flagged instead of the file
    refused. Column units are not kept on this path.
    """
    try:
        import pandas as pd

        return Table.from_pandas(pd.read_parquet(path))
    except Exception:  # noqa: BLE001 - then the file is bad; astropy's reason is reported
        return None


def check_writable(table: Table, path: str | os.PathLike, fmt: str | None = None,
                   new_columns: tuple[str, ...] = ()) -> None:
    """Refuse, before a run, a table the output format cannot store.

    FITS holds ASCII text only, and names that fit one header card; plain CSV one value per
    cell: a non-ASCII id or name, an over-long column name, or a column of arrays would
    otherwise fail the final write after the whole catalog was classified. ``new_columns``
    are names the run will add (e.g. ``morph_label``). The error names the column (and row).
    """
    out_fmt = guess_format(path, fmt, "--output-format")
    if out_fmt == "fits":
        seen: dict[str, str] = {}
        for name in table.colnames:  # FITS compares column names case-insensitively
            other = seen.setdefault(name.lower(), name)
            if other != name:
                logging.getLogger("astro_morph").warning(
                    "columns %r and %r differ only in case: FITS readers may take one for the "
                    "other (fitsverify warns); rename one, or write ECSV, VOTable or Parquet",
                    other, name)
        for name in [*table.colnames, *new_columns]:
            reason = fits_name_problem(name)
            if reason:
                added = " (from --prefix)" if name in new_columns else ""
                raise UserError(f"column name {name!r}{added} cannot be a FITS column name: "
                                f"{reason}; write ECSV, VOTable or Parquet instead (-o "
                                f"{Path(path).stem.removesuffix('.fits')}.ecsv)")
    if out_fmt == "ascii.csv":  # plain CSV has one value per cell
        for name in table.colnames:
            if table[name].ndim > 1:
                raise UserError(
                    f"column {name!r} holds arrays (shape {table[name].shape[1:]} per row), "
                    f"which CSV cannot store; write ECSV, FITS, VOTable or Parquet instead "
                    f"(-o {Path(path).with_suffix('.ecsv').name})")
    if out_fmt != "fits":
        return
    for name in table.colnames:
        col = table[name]
        if col.dtype.kind == "b" and np.ma.getmaskarray(col).any():
            # astropy writes a FITS logical's blank as True: a row's unknown would read True
            row = int(np.argmax(np.ma.getmaskarray(col)))
            raise UserError(f"column {name!r} row {row} holds a blank (masked) true/false "
                            f"value, which FITS would write as True; write ECSV, VOTable or "
                            f"Parquet instead (-o {Path(path).stem.removesuffix('.fits')}.ecsv)")
        if col.dtype.kind not in "UO":
            continue
        for row, value in enumerate(col.tolist() if col.dtype.kind == "O" else col):
            if isinstance(value, str) and not value.isascii():
                raise UserError(
                    f"column {name!r} row {row} holds non-ASCII text ({value[:30]!r}), which "
                    f"FITS cannot store; write ECSV, VOTable or Parquet instead "
                    f"(-o {Path(path).stem.removesuffix('.fits')}.ecsv)")


def fits_name_problem(name: str) -> str | None:
    """Why FITS cannot name a column ``name`` (astropy's own test), or ``None``."""
    if not (name.isascii() and name.isprintable()):
        return "FITS header text is printable ASCII only"
    from astropy.io import fits

    try:
        fits.Column(name=name, format="E")
    except (AssertionError, ValueError):  # astropy asserts the name fits one 80-char card
        return "too long to fit one FITS header card (68 characters at most)"
    return None


def in_place_header(path: str | os.PathLike, fmt: str | None = None):
    """What rewriting catalog ``path`` in place must carry beyond its table: for FITS the
    primary header (``None`` for other formats). A UserError when a rewrite would lose part
    of the file: a FITS file with image data or more than one extension, a VOTable (its
    resources, PARAMs and other tables are not read into the table), or a format astromorph
    does not write."""
    p = Path(path)
    astropy_fmt = guess_format(p, fmt, "--output-format")
    if astropy_fmt == "votable":
        raise UserError(f"--in-place: {p} is a VOTable, whose resources, PARAMs and other "
                        f"tables a rewrite would drop; write a new file with -o")
    if astropy_fmt != "fits":
        return None
    from astropy.io import fits

    try:
        with fits.open(p) as hdul:
            extra = [f"{i} ({type(h).__name__})" for i, h in enumerate(hdul)
                     if i > 1 or (i == 0 and h.header.get("NAXIS", 0) != 0)]
            header = hdul[0].header.copy()
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read catalog {p} as fits: {first_line(exc)}") from None
    if extra:
        raise UserError(f"--in-place: {p} holds more than its catalog table (HDU "
                        f"{', '.join(extra)}), which a rewrite would drop; write a new file "
                        f"with -o")
    return header


def write_catalog(table: Table, path: str | os.PathLike, fmt: str | None = None,
                  overwrite: bool = False, primary_header=None) -> Path:
    """Write ``table`` atomically; an existing file is replaced only with ``overwrite``.

    ``primary_header`` (FITS only) becomes the file's primary header, as
    :func:`in_place_header` keeps it for a rewrite in place.
    """
    p = Path(path)
    astropy_fmt = guess_format(p, fmt, "--output-format")
    if p.exists() and not overwrite:
        raise UserError(f"output {p} exists; pass --overwrite to replace it")
    require_output_dir(p)
    def write(tmp: str) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if astropy_fmt == "votable":
                _write_votable(table, tmp)
            elif astropy_fmt == "fits" and primary_header is not None:
                from astropy.io import fits

                fits.HDUList([fits.PrimaryHDU(header=primary_header),
                              fits.table_to_hdu(table)]).writeto(tmp, overwrite=True)
            else:
                table.write(tmp, format=astropy_fmt, overwrite=True)

    try:
        return atomic_write(p, write, suffix=temp_suffix(p))
    except OSError as exc:
        raise UserError(f"cannot write {p}: {exc.strerror or exc}") from None
    except (UnicodeError, ValueError, TypeError, AssertionError) as exc:
        # a value the format cannot hold (astropy asserts FITS column names fit one card)
        reason = first_line(exc)
        raise UserError(f"cannot write {p} as {astropy_fmt}: {reason[:200]}") from None


def _write_votable(table: Table, path: str) -> None:
    """VOTable with the table meta as ``INFO`` elements of the resource (astropy's writer
    drops ``meta``): provenance keywords by name, ``comments`` (the flag bits) as
    ``INFO name="comment"``, each with its own ID."""
    from astropy.io.votable import from_table
    from astropy.io.votable.tree import Info

    vot = from_table(table)
    infos = vot.resources[0].infos
    for key, value in table.meta.items():
        if key == "comments":
            for i, v in enumerate(value if isinstance(value, list) else [value]):
                infos.append(Info(ID=f"comment_{i + 1}", name="comment", value=str(v)))
        elif isinstance(value, (str, int, float)) and not isinstance(value, bool):
            infos.append(Info(ID=_xml_id(str(key)), name=str(key), value=str(value)))
    vot.to_xml(path)


def _xml_id(key: str) -> str:
    import re

    ident = re.sub(r"[^A-Za-z0-9_.-]", "_", key)
    return ident if ident[:1].isalpha() or ident[:1] == "_" else f"_{ident}"
