"""The resume journal: per-chunk results next to the output, so a killed run continues.

``<output>.partial/`` holds ``run.json`` (what the run depends on) and one ``chunk-<start>.npz``
per finished chunk, each written to a temporary name and renamed, so a chunk file is either
complete or absent whatever moment the process dies. ``--resume`` reuses the chunks of a run
with the same signature; the journal is removed once the output is written.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .errors import UserError
from .fileio import atomic_write_bytes

__all__ = ["Journal", "OutputLock", "folder_fingerprint", "remove_stale_temps",
           "table_fingerprint"]


def table_fingerprint(table) -> str:
    """SHA-256 over the input rows' column names and values (identifies the input)."""
    h = hashlib.sha256()
    for name in table.colnames:
        h.update(name.encode())
        col = np.ma.getdata(table[name])
        h.update(np.ascontiguousarray(col).tobytes() if col.dtype.kind != "O"
                 else repr(col.tolist()).encode())
        mask = np.ma.getmaskarray(table[name])
        h.update(mask.tobytes())
    return h.hexdigest()


#: Small files that describe a HATS catalog's content (row counts, column statistics of
#: every partition): read whole. Every other file counts by its path and size.
_DESCRIPTIONS = {"_metadata", "_common_metadata", "partition_info.csv", "properties",
                 "hats.properties", "collection.properties"}


def folder_fingerprint(folder: str | os.PathLike) -> str:
    """SHA-256 identifying a catalog folder (HATS): every file's relative path and size,
    and the bytes of the files that describe the content (``_metadata``, partition list,
    properties). Stat calls, not a read of every partition, so cheap for large catalogs;
    a rewritten catalog changes its ``_metadata`` (row counts and statistics)."""
    root = Path(folder)
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(path.relative_to(root).as_posix().encode() + b"\0")
        h.update(str(path.stat().st_size).encode() + b"\0")
        if path.name in _DESCRIPTIONS:
            h.update(path.read_bytes())
    return h.hexdigest()


class Journal:
    """Chunk results of one run under ``directory``."""

    def __init__(self, directory: str | os.PathLike, signature: dict[str, Any],
                 resume: bool) -> None:
        self.dir = Path(directory)
        self.signature = signature
        run_file = self.dir / "run.json"
        if self.dir.exists():
            try:
                old = json.loads(run_file.read_text()) if run_file.is_file() else None
            except (OSError, ValueError):
                old = None  # a damaged run.json: the run cannot be matched, so not resumed
            if not resume:
                raise UserError(f"{self.dir} holds an unfinished run; pass --resume to continue "
                                f"it, or --overwrite to start again")
            if old != signature:
                changed = sorted(k for k in signature if (old or {}).get(k) != signature[k])
                raise UserError(f"cannot resume from {self.dir}: the run differs in "
                                f"{', '.join(changed) or 'its settings'}")
        else:
            try:
                self.dir.mkdir(parents=True)
                atomic_write_bytes(run_file, json.dumps(signature, sort_keys=True).encode())
            except OSError as exc:
                raise UserError(f"cannot write the resume journal {self.dir}: "
                                f"{exc.strerror or exc}") from None

    def load(self, start: int) -> dict[str, np.ndarray] | None:
        """A finished chunk's arrays and messages, or ``None``."""
        path = self.dir / f"chunk-{start:012d}.npz"
        if not path.is_file():
            return None
        try:
            # Opened here: np.load leaves its own handle open when the zip is damaged.
            with open(path, "rb") as f, np.load(f, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            # Chunks are renamed into place whole, so this is damage from outside (a disk
            # fault, a copy cut short): those rows are classified again, nothing is lost.
            logging.getLogger("astro_morph").warning(
                "resume journal: %s is unreadable (%s); classifying its rows again", path.name,
                type(exc).__name__)
            path.unlink(missing_ok=True)
            return None

    def save(self, start: int, **arrays: np.ndarray) -> None:
        """Store one finished chunk; a full disk or a read-only folder is a one-line error
        that says the chunks saved so far are kept for ``--resume``."""
        import io

        buf = io.BytesIO()
        np.savez(buf, **arrays)
        try:
            atomic_write_bytes(self.dir / f"chunk-{start:012d}.npz", buf.getvalue())
        except OSError as exc:
            raise UserError(f"cannot write the resume journal {self.dir}: "
                            f"{exc.strerror or exc}; the chunks finished so far are kept: "
                            f"free the space or fix the folder, then rerun with --resume") \
                from None

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


class OutputLock:
    """An exclusive lock on one output path, held for a whole run.

    Two runs writing the same output would share one journal and one temp-file pattern; the
    second gets a one-line error naming the first's pid. ``flock`` locks end with their
    process, so a killed run leaves no lock behind (only the small lock file, reused).
    """

    def __init__(self, output: str | os.PathLike) -> None:
        out = Path(output)
        self.path = out.with_name(f".{out.name}.lock")
        self.output = out
        self._fd: int | None = None

    def acquire(self) -> OutputLock:
        import fcntl

        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise UserError(f"cannot lock {self.output}: {exc.strerror or exc}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                try:
                    pid = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
                finally:
                    os.close(fd)
                raise UserError(f"another run is writing {self.output} (pid {pid}); wait for "
                                f"it or choose another -o") from None
            try:  # the holder may have unlinked the file between our open and flock
                if os.fstat(fd).st_ino == os.stat(self.path).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        # Unlink while still holding the lock; a run that opened the old file meanwhile
        # gets the lock on an unlinked inode, which only it and this run ever saw.
        try:
            self.path.unlink(missing_ok=True)
        except OSError:
            pass
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def remove_stale_temps(output: str | os.PathLike) -> list[Path]:
    """Delete temp files a killed final write left beside ``output`` (``.<name>.XXXXXXXX<sfx>``,
    the pattern of :func:`astro_morph.catalog_io.write_catalog`). Call with the output's
    :class:`OutputLock` held, so no live write is touched. Returns what was removed."""
    from .fileio import stale_temp_pattern

    out = Path(output)
    pattern = stale_temp_pattern(out)
    removed = []
    try:
        entries = list(out.parent.iterdir())
    except OSError:
        return removed
    for p in entries:
        if pattern.match(p.name) and p.is_file():
            try:
                p.unlink()
                removed.append(p)
            except OSError:
                pass
    return removed
