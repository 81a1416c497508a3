"""The resume journal: per-chunk results next to the output, so a killed run continues.

``<output>.partial/`` holds ``run.json`` (what the run depends on) and one ``chunk-<start>.npz``
per finished chunk, each written to a temporary name and renamed, so a chunk file is either
complete or absent whatever moment the process dies. ``--resume`` reuses the chunks of a run
with the same signature; the journal is removed once the output is written.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from .catalog_io import atomic_write_bytes
from .errors import UserError

__all__ = ["Journal", "table_fingerprint"]


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


class Journal:
    """Chunk results of one run under ``directory``."""

    def __init__(self, directory: str | os.PathLike, signature: dict[str, Any],
                 resume: bool) -> None:
        self.dir = Path(directory)
        self.signature = signature
        run_file = self.dir / "run.json"
        if self.dir.exists():
            old = json.loads(run_file.read_text()) if run_file.is_file() else None
            if not resume:
                raise UserError(f"{self.dir} holds an unfinished run; pass --resume to continue "
                                f"it or delete the folder to start again")
            if old != signature:
                changed = sorted(k for k in signature if (old or {}).get(k) != signature[k])
                raise UserError(f"cannot resume from {self.dir}: the run differs in "
                                f"{', '.join(changed) or 'its settings'}")
        else:
            self.dir.mkdir(parents=True)
            atomic_write_bytes(run_file, json.dumps(signature, sort_keys=True).encode())

    def load(self, start: int) -> dict[str, np.ndarray] | None:
        """A finished chunk's arrays and messages, or ``None``."""
        path = self.dir / f"chunk-{start:012d}.npz"
        if not path.is_file():
            return None
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}

    def save(self, start: int, **arrays: np.ndarray) -> None:
        import io

        buf = io.BytesIO()
        np.savez(buf, **arrays)
        atomic_write_bytes(self.dir / f"chunk-{start:012d}.npz", buf.getvalue())

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
