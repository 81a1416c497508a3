"""Example astro_morph plugin: ``--source npy`` reads cutouts from one ``.npy`` stack.

Survey pipelines often hold cutouts as an (N, H, W, 3) array: ``numpy.save`` it, give each
row its index in the stack (column ``idx``), then ``astromorph classify cat.fits --source npy
--source-option path=stack.npy``.
"""

from __future__ import annotations

import numpy as np

from astro_morph.errors import UserError
from astro_morph.flags import MorphFlag
from astro_morph.hookspecs import hookimpl
from astro_morph.sources import Cutout, Source, format_id


class NpySource(Source):
    """Rows of one (N, H, W, 3) stack. Options: ``path`` (the .npy file), ``id_column``."""

    def __init__(self, path: str | None = None, id_column: str = "idx", **run) -> None:
        super().__init__(**run)  # the run's settings (decode threads, draft size)
        if path is None:
            raise UserError("--source npy needs --source-option path=STACK.npy")
        # mmap: a stack larger than memory is read one chunk at a time.
        self.stack = np.load(path, mmap_mode="r", allow_pickle=False)
        if self.stack.ndim != 4 or self.stack.shape[3] != 3:
            raise UserError(f"{path}: expected shape (N, H, W, 3), got {self.stack.shape}")
        self.id_column = id_column

    def check_columns(self, columns: list[str]) -> None:
        if self.id_column not in columns:
            raise UserError(f"catalog has no column {self.id_column!r} (the stack row index); "
                            f"choose one with --source-option id_column=NAME")

    def fetch(self, rows):
        out = []
        for value in rows[self.id_column]:
            key = format_id(value)
            if key is None or not key.isdigit() or int(key) >= len(self.stack):
                out.append(Cutout(None, MorphFlag.BAD_ID, f"no stack row {key}"))
            else:
                out.append(Cutout(np.array(self.stack[int(key)])))
        return out


@hookimpl
def astromorph_register_sources(register):
    register("npy", NpySource, "rows of one (N, H, W, 3) .npy stack, by row index (idx)")
