"""Read and write catalogs (FITS, ECSV, VOTable, Parquet, CSV) as astropy Tables.

Writes are atomic: the table goes to a temporary file in the destination folder, is flushed
to disk, and is renamed over the destination only when complete, so a crash or a full disk
leaves any previous output intact.
"""

from __future__ import annotations

import functools
import os
import tempfile
import warnings
from pathlib import Path

from astropy.table import Table

from .errors import UserError

__all__ = ["FORMATS", "guess_format", "read_catalog", "write_catalog"]

#: File suffix -> astropy format name.
FORMATS = {
    ".fits": "fits", ".fit": "fits", ".fts": "fits", ".fits.gz": "fits",
    ".ecsv": "ascii.ecsv",
    ".csv": "ascii.csv",
    ".vot": "votable", ".votable": "votable", ".xml": "votable",
    ".parquet": "parquet", ".pq": "parquet",
}
SHORT_NAMES = {"fits": "fits", "ecsv": "ascii.ecsv", "csv": "ascii.csv",
               "votable": "votable", "parquet": "parquet"}


def guess_format(path: str | os.PathLike, fmt: str | None = None) -> str:
    """The astropy format for ``path`` from ``fmt`` (short name) or the file suffix."""
    if fmt:
        if fmt.lower() not in SHORT_NAMES:
            raise UserError(f"unknown format {fmt!r}; choose one of {', '.join(SHORT_NAMES)}")
        return SHORT_NAMES[fmt.lower()]
    name = Path(path).name.lower()
    for suffix in sorted(FORMATS, key=len, reverse=True):
        if name.endswith(suffix):
            return FORMATS[suffix]
    raise UserError(f"{path}: cannot tell the format from the suffix; use one of "
                    f"{', '.join(sorted(FORMATS))} or pass --format")


def read_catalog(path: str | os.PathLike, fmt: str | None = None) -> Table:
    """Read a catalog; any failure is a one-line :class:`UserError` naming the file."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"catalog not found: {p}")
    if p.stat().st_size == 0:
        raise UserError(f"catalog {p} is empty (0 bytes)")
    astropy_fmt = guess_format(p, fmt)
    try:
        with warnings.catch_warnings():
            # Unknown units and VO warnings are the catalog's business, not a failure.
            warnings.simplefilter("ignore")
            table = Table.read(p, format=astropy_fmt)
    except Exception as exc:  # astropy raises many types for a bad file
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"cannot read catalog {p} as {astropy_fmt}: {reason}") from None
    return table


def write_catalog(table: Table, path: str | os.PathLike, fmt: str | None = None,
                  overwrite: bool = False) -> Path:
    """Write ``table`` atomically; an existing file is replaced only with ``overwrite``."""
    p = Path(path)
    astropy_fmt = guess_format(p, fmt)
    if p.exists() and not overwrite:
        raise UserError(f"output {p} exists; pass --overwrite to replace it")
    if not p.parent.is_dir():
        raise UserError(f"output directory does not exist: {p.parent}")
    suffix = "".join(p.suffixes[-2:]) if p.name.lower().endswith(".fits.gz") else p.suffix
    try:
        fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=suffix)
    except OSError as exc:
        raise UserError(f"cannot write to {p.parent}: {exc.strerror or exc}") from None
    public_mode(fd)
    os.close(fd)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            table.write(tmp, format=astropy_fmt, overwrite=True)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, p)
    except OSError as exc:
        _remove(tmp)
        raise UserError(f"cannot write {p}: {exc.strerror or exc}") from None
    except BaseException:
        _remove(tmp)
        raise
    return p


@functools.cache
def _umask() -> int:
    # Read once: os.umask can only be read by setting it, which is process-wide, and other
    # threads (cutout downloads, cache writes) create files at the same time.
    umask = os.umask(0)
    os.umask(umask)
    return umask


def public_mode(fd: int) -> None:
    """Give a ``mkstemp`` file (created 0600) the mode a normal ``open`` would: 0666 & ~umask.

    Outputs are meant to be shared; a private temp-file mode must not survive the rename.
    """
    os.fchmod(fd, 0o666 & ~_umask())


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` by temp file in the same folder, fsync and rename: readers see the old
    file or the whole new one, never a part. The file gets the umask's mode."""
    p = Path(path)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
    try:
        public_mode(fd)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)
    except BaseException:
        _remove(tmp)
        raise
    return p


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write a small text file (report, table) atomically (:func:`atomic_write_bytes`)."""
    return atomic_write_bytes(path, text.encode())


def cache_put(path: str | os.PathLike, data: bytes) -> bool:
    """Store a cache entry atomically; False (not an error) when the cache is unwritable.

    A cache that cannot be written only costs recomputing or re-downloading next time, so
    callers carry on either way; a half-written entry is never visible.
    """
    p = Path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(p, data)
        return True
    except OSError:
        return False
