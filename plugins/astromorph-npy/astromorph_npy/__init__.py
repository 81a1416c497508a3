"""Example astro_morph plugin: ``--source npy`` reads cutouts from one ``.npy`` stack.

Survey pipelines often already hold cutouts as an (N, H, W, 3) array. Save it with
``numpy.save`` and point a catalog's ``--id-column`` at the row index in that stack::

    astromorph classify cat.fits --source npy --image-dir stack.npy --id-column idx
"""

from __future__ import annotations

import numpy as np

from astro_morph.errors import UserError
from astro_morph.flags import MorphFlag
from astro_morph.hookspecs import hookimpl
from astro_morph.sources import Cutout, format_id


class NpySource:
    def __init__(self, image_dir=None, id_column="idx", **_):
        if image_dir is None:
            raise UserError("--source npy needs --image-dir pointing at a .npy file")
        # mmap: a stack larger than memory is read one chunk at a time.
        self.stack = np.load(image_dir, mmap_mode="r", allow_pickle=False)
        if self.stack.ndim != 4 or self.stack.shape[3] != 3:
            raise UserError(f"{image_dir}: expected shape (N, H, W, 3), got {self.stack.shape}")
        self.id_column = id_column

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
    register("npy", NpySource, "rows of one (N, H, W, 3) .npy stack, by --id-column index")
