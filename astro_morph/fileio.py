"""Every file astro_morph writes goes through here: temp file, fsync, rename; cache roots.

Readers see the old file or the whole new one, never a part, whatever moment the process
dies or the disk fills. Used by catalogs (:mod:`astro_morph.catalog_io`), model files,
the resume journal, training checkpoints, search state, and the download and ONNX caches.
Temp files are named ``.<name>.XXXXXXXX<suffix>`` beside their destination (what
:func:`astro_morph.journal.remove_stale_temps` cleans up after a killed run).
"""

from __future__ import annotations

import functools
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["atomic_write", "atomic_write_bytes", "atomic_write_text", "cache_root",
           "cache_put", "public_mode", "replaceable_mode", "stale_temp_pattern", "temp_suffix"]


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


def temp_suffix(path: str | os.PathLike) -> str:
    """The suffix a temp file for ``path`` keeps (``.fits.gz`` whole), so writers that pick
    a format by suffix still see it; the pattern :func:`stale_temp_pattern` matches."""
    p = Path(path)
    return "".join(p.suffixes[-2:]) if p.name.lower().endswith(".fits.gz") else p.suffix


def stale_temp_pattern(path: str | os.PathLike) -> re.Pattern[str]:
    """Names of the temp files :func:`atomic_write` makes for ``path`` with
    ``suffix=temp_suffix(path)`` (``.<name>.XXXXXXXX<suffix>``)."""
    p = Path(path)
    return re.compile(rf"^\.{re.escape(p.name)}\.[A-Za-z0-9_]{{8}}{re.escape(temp_suffix(p))}$")


def atomic_write(path: str | os.PathLike, write: Callable[[str], None],
                 suffix: str = ".tmp") -> Path:
    """Call ``write(temp_path)`` for a temp file beside ``path``, fsync it and rename it over
    ``path``. Any failure removes the temp file and re-raises (``OSError`` included)."""
    p = Path(path)
    refuse_special_file(p)
    old_mode = replaceable_mode(p)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=suffix)
    try:
        public_mode(fd)
        os.close(fd)
        write(tmp)
        if old_mode is not None:  # a replaced file keeps its mode: group-only stays so
            os.chmod(tmp, old_mode)  # after write: a writer may have made the file anew
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, p)
    except BaseException:
        _remove(tmp)
        raise
    return p


def replaceable_mode(path: str | os.PathLike) -> int | None:
    """The permission bits of the file ``path`` names (``None`` when there is none), or a
    PermissionError when it is read-only: without a write bit, or one this user may not
    write. The rename would replace it regardless of its mode (only the folder's counts), so
    a catalog marked read-only is refused here as ``cp`` or ``>`` would refuse it."""
    import errno
    import stat

    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    if not st.st_mode & 0o222 or not os.access(path, os.W_OK):
        raise PermissionError(errno.EACCES, f"it is read-only (mode {stat.S_IMODE(st.st_mode):o})"
                              f"; make it writable to replace it", str(path))
    return stat.S_IMODE(st.st_mode)


def refuse_special_file(path: str | os.PathLike) -> None:
    """Refuse an output path that exists and is not a regular file (``/dev/null``,
    ``/dev/stdout``, a FIFO): the atomic rename would replace the device node or link itself
    with a plain file (as root, for every process on the machine)."""
    from .errors import UserError

    p = Path(path)
    if (p.exists() or p.is_symlink()) and not p.is_file():
        raise UserError(f"output {p} is not a regular file (a folder, device, pipe or "
                        f"terminal); give a file path")


def require_output_dir(path: str | os.PathLike) -> None:
    """Refuse an output whose folder does not exist, or that names something other than a
    file (checked before any work is done)."""
    from .errors import UserError

    parent = Path(path).parent
    if not parent.is_dir():
        raise UserError(f"output directory does not exist: {parent}")
    refuse_special_file(path)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` atomically (:func:`atomic_write`)."""
    return atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write a small text file (report, table, JSON state) atomically."""
    return atomic_write_bytes(path, text.encode())


def cache_root() -> Path:
    """Root of astro_morph's caches: ``$ASTROMORPH_CACHE``, else astropy's cache directory
    ``/astro_morph`` (``~/.astropy/cache/astro_morph``). Downloads go under ``cutouts/``,
    ONNX exports under ``onnx/``."""
    root = os.environ.get("ASTROMORPH_CACHE")
    if root:
        return Path(root)
    from astropy.config import get_cache_dir

    return Path(get_cache_dir()) / "astro_morph"


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
