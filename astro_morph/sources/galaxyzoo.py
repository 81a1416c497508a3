"""Galaxy Zoo JPEG folders (``--source galaxyzoo``).

Rows name an image by id (``<id>.jpg``, ``<id>.jpeg`` or ``<id>.png`` in ``image_dir``, the
Kaggle and Galaxy Zoo 1 layouts; or the same in upper case) or by a path column relative to
``image_dir``. Paths that resolve outside ``image_dir`` are refused (a catalog must not read
arbitrary files).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

from astropy.table import Table

from ..centring.base import Prepared
from ..errors import UserError, check_option
from ..flags import MorphFlag
from ..hookspecs import hookimpl
from .base import Cutout, Source, bad_id_reason, format_id
from .coords import column_hint
from .images import read_rgb

__all__ = ["FolderListing", "GalaxyZooSource", "image_names", "no_image"]

EXTENSIONS = (".jpg", ".jpeg", ".png")
#: Runs of rows per decoding thread in one fetch (more balance the load, fewer cost less).
PARTS_PER_THREAD = 2
#: Longest id or relative path accepted (Linux allows 255 bytes a name, 4096 a path).
MAX_NAME_CHARS = 1024


def image_names(key: str) -> list[str]:
    """The file names an id's image may have, in the order they are tried: each of
    :data:`EXTENSIONS`, then in upper case (cameras and Windows tools write ``1.JPG``)."""
    return [key + e for ext in EXTENSIONS for e in (ext, ext.upper())]


def no_image(key: str, folder: str | os.PathLike) -> str:
    """The message for an id with no image in ``folder`` (before any near-miss hint)."""
    return f"no image {key}.jpg, .jpeg or .png in {folder}"


class FolderListing:
    """One listing of an image folder: which image an id names, and, for an id with none,
    a message naming the near miss that is there (another format, zero padding)."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self.names = set(os.listdir(self.folder))
        # Files of other formats by stem, and zero-padded numeric names by their number.
        self._others: dict[str, str] = {}
        self._padded: dict[str, str] = {}
        for name in self.names:
            stem, ext = os.path.splitext(name)
            if ext.lower() not in EXTENSIONS:
                self._others.setdefault(stem, name)
            elif stem.isdigit() and stem.startswith("0"):
                self._padded.setdefault(stem.lstrip("0") or "0", name)

    def find(self, key: str) -> str | None:
        """The listed file name of ``key``'s image (:func:`image_names` order), or None."""
        return next((n for n in image_names(key) if n in self.names), None)

    def missing(self, key: str) -> str:
        """Why ``key`` has no image here, in one line, with the near miss if one is listed."""
        hint = ""
        if key in self._others:
            hint = (f" ({self._others[key]} is there: a format not read here; convert it to "
                    f"PNG or JPEG)")
        elif key.isdigit() and key.lstrip("0") in self._padded:
            hint = (f" ({self._padded[key.lstrip('0')]} is there: the file names are "
                    f"zero-padded, the ids are not; rename the files or pad the ids)")
        elif key.isdigit() and key.startswith("0"):
            unpadded = self.find(key.lstrip("0") or "0")
            if unpadded:
                hint = (f" ({unpadded} is there: the ids are zero-padded, the file names are "
                        f"not; strip the zeros from the ids or rename the files)")
        return no_image(key, self.folder) + hint


class GalaxyZooSource(Source):
    """Read one JPEG per row from a folder.

    Parameters
    ----------
    image_dir : str or Path
        Folder holding ``<id>.jpg`` / ``<id>.jpeg`` / ``<id>.png`` files (or ``.JPG``...).
    id_column : str
        Column with the image id (default ``GalaxyID``). Ignored when ``path_column`` is given.
    path_column : str, optional
        Column with a file path relative to ``image_dir``.
    max_pixels : int
        Images with more pixels are flagged, not decoded (decompression bombs).
    workers, draft_side
        The run's settings (:class:`~astro_morph.sources.base.Source`): decoding threads
        (JPEG decoding releases the GIL; started on the first fetch and kept) and the
        reduced-scale decode size of ``--fast-decode``.
    """

    fuses_prepare = True

    def __init__(self, image_dir: str | os.PathLike | None = None, id_column: str = "GalaxyID",
                 path_column: str | None = None, max_pixels: int = 50_000_000, *,
                 workers: int | None = None, draft_side: int | None = None) -> None:
        super().__init__(workers=workers, draft_side=draft_side)
        if image_dir is None:
            raise UserError("--source galaxyzoo needs --image-dir (the folder of <id>.jpg files)")
        self.image_dir = Path(image_dir)
        if not self.image_dir.is_dir():
            raise UserError(f"image directory not found: {self.image_dir}")
        self.root = self.image_dir.resolve()
        self.id_column = id_column
        self.path_column = path_column
        check_option(max_pixels >= 1, "source 'galaxyzoo'", "max_pixels", max_pixels,
                     "a pixel count of 1 or more")
        self.max_pixels = max_pixels
        # One listing instead of a stat per row and extension: fast on network filesystems.
        self._listing = FolderListing(self.image_dir)

    def check_columns(self, columns: list[str]) -> None:
        """Raise a UserError naming the missing id/path column and a usual id column it
        holds (OBJID, ...) or the closest names."""
        wanted = self.path_column or self.id_column
        if wanted not in columns:
            option = "--path-column" if self.path_column else "--id-column"
            raise UserError(
                f"catalog has no column {wanted!r}{column_hint(wanted, columns, option)}; "
                f"choose one with {option}"
            )

    def _locate(self, value: object) -> tuple[Path | None, int, str]:
        key = format_id(value)
        if key is None:
            return None, MorphFlag.BAD_ID, bad_id_reason(value)
        if "\0" in key or len(key) > MAX_NAME_CHARS:
            shown = key[:40].replace("\0", "\\0") + ("..." if len(key) > 40 else "")
            return (None, MorphFlag.BAD_ID,
                    f"id/path '{shown}' is not a usable file name (NUL byte or over "
                    f"{MAX_NAME_CHARS} characters)")
        if self.path_column:
            return self._checked(self.image_dir / key, key)
        if "/" in key or "\\" in key or key.startswith("."):
            return None, MorphFlag.PATH_REFUSED, f"id {key!r} is not a plain file name"
        name = self._listing.find(key)
        if name is not None:
            return self._checked(self.image_dir / name, name)
        return None, MorphFlag.IMAGE_MISSING, self._listing.missing(key)

    def _checked(self, path: Path, key: str) -> tuple[Path | None, int, str]:
        """``path`` if it is a regular file inside the folder; symlinks that lead out of it,
        devices and FIFOs (which would read forever or hang) are refused."""
        try:
            # A path column is resolved first (a path outside is refused even if absent); an
            # id names an entry of the listing, resolved only when it is a symlink.
            st = None if self.path_column else os.lstat(path)
            if st is None or stat.S_ISLNK(st.st_mode):
                real = path.resolve()
                if not real.is_relative_to(self.root):
                    return None, MorphFlag.PATH_REFUSED, f"path {key!r} is outside {self.root}"
                st = os.stat(real)
        except FileNotFoundError:
            return None, MorphFlag.IMAGE_MISSING, f"no file {path}"
        except (OSError, ValueError, RuntimeError) as exc:  # name too long, loops, NUL
            reason = getattr(exc, "strerror", None) or exc
            return None, MorphFlag.BAD_ID, f"{key[:80]!r}: {reason}"
        if not stat.S_ISREG(st.st_mode):
            return None, MorphFlag.PATH_REFUSED, f"{path} is not a regular file"
        return path, 0, ""

    def _load(self, value: object) -> Cutout:
        try:
            path, flags, message = self._locate(value)
            if path is None:
                return Cutout(None, flags, message)
        except Exception as exc:  # one odd value must not end the run
            return Cutout(None, MorphFlag.BAD_ID, f"id/path {str(value)[:80]!r}: {exc}")
        try:
            return Cutout(read_rgb(path, self.max_pixels, self.draft_side),
                          meta={"origin": str(path)})
        except Exception as exc:  # any decoder failure is a flagged row, not a failed run
            return Cutout(None, MorphFlag.IMAGE_UNREADABLE, f"{path}: {exc}")

    def fetch(self, rows: Table) -> list[Cutout]:
        """One Cutout per row, decoded in parallel threads."""
        return self._map(rows, self._load)

    def fetch_prepared(self, rows: Table, prepare: Callable[[Cutout], Prepared]) -> list[Prepared]:
        """``prepare(cutout)`` per row, each applied in the thread that decoded the row (the
        pipeline's centring step, run while the decoded image is still in the CPU's cache)."""
        return self._map(rows, lambda v: prepare(self._load(v)))

    def _map(self, rows: Table, load: Callable[[object], Any]) -> list:
        self.check_columns(rows.colnames)
        column = rows[self.path_column or self.id_column]
        values = [column[i] for i in range(len(rows))]
        if self.workers <= 1 or len(values) < 4:
            return [load(v) for v in values]
        # A few runs of rows per thread, not one task per row: each task costs Python work
        # under the GIL, which is what limits decoding threads.
        step = -(-len(values) // (PARTS_PER_THREAD * self.workers))
        parts = [values[i:i + step] for i in range(0, len(values), step)]
        return [item for part in self._threads().map(lambda vs: [load(v) for v in vs], parts)
                for item in part]


@hookimpl
def astromorph_register_sources(register):
    register("galaxyzoo", GalaxyZooSource,
             "JPEG folder: <id>.jpg/.jpeg by --id-column, or --path-column under --image-dir")


