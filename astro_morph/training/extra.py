"""Labelled images from another survey's labels table, joining the training split.

Galaxy Zoo 2's Kaggle folder labels 1,239 training images ``spiral`` (a volunteer-vote
selection); gz1 has 680 spirals. Rows of the other table's train split whose label is one of
the training classes join training; rows of other classes (``non_spiral``, which mixes
ellipticals, edge-on discs and stars) are left out, so no label is invented. Images that show
a galaxy of the labelled set's val or test splits are dropped first, so those splits stay
unseen.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..centring.crop import PAPER_CROP_FRACTION
from ..errors import UserError
from ..sources.base import format_id
from .data import LabelledSet, _find_image, load_labels, load_split, split_rows

__all__ = ["extra_labelled"]


def extra_labelled(labels: str | os.PathLike, image_dir: str | os.PathLike,
                   class_names: list[str], size: int, id_column: str | None = None,
                   limit: int | None = None, exclude: Sequence[str | os.PathLike] = (),
                   crop_fraction: float = PAPER_CROP_FRACTION, split: str = "train"
                   ) -> tuple[LabelledSet, dict[str, Any]]:
    """The rows of ``labels``' ``split`` whose label is one of ``class_names``, decoded.

    Parameters
    ----------
    labels, image_dir
        The other labels table (id, ``label``, ``split`` columns) and its image folder.
    class_names
        The training classes; rows with any other label are left out (counted).
    size, crop_fraction
        The trainer's cache size and framing, as for its own training split.
    id_column
        The table's image id column; None: its first column.
    exclude
        Image files of the evaluation splits: rows showing the same sky are dropped.

    Returns
    -------
    The decoded rows, and counts for the model's provenance: rows in ``split``, rows of
    other classes left out, duplicates of evaluation images dropped, kept, kept per class.
    """
    from .duplicates import pool_duplicates

    path = Path(labels)
    table = load_labels(path, id_column)
    id_column = id_column or table.colnames[0]
    table = split_rows(table, split, path)
    text = np.asarray(table["label"]).astype(str)
    ours = np.isin(text, class_names)
    if not ours.any():
        held = sorted(set(text.tolist()) - {""})
        raise UserError(f"--extra-labels {path}: no row of split {split!r} has a training "
                        f"class ({', '.join(class_names)}); its labels are "
                        f"{', '.join(held) or 'all blank'}")
    table = table[ours]
    folder = Path(image_dir)
    dup = pool_duplicates(list(exclude), [_find_image(folder, format_id(k) or "")
                                          for k in table[id_column]])
    keep = np.array([i not in dup for i in range(len(table))], dtype=bool)
    if not keep.any():
        raise UserError(f"--extra-labels {path}: every row shows a val/test galaxy")
    table = table[keep]
    data = load_split(table, folder, split, class_names, id_column, size, train=True,
                      limit=limit, crop_fraction=crop_fraction)
    kept = [class_names[j] for j in data.labels]
    stats = {"labels": str(path), "image_dir": str(folder), "split": split,
             "rows": len(text), "other_classes": int((~ours).sum()),
             "duplicates_of_eval_images": len(dup), "unusable": len(data.skipped),
             "kept": len(kept), "kept_per_class": {c: kept.count(c) for c in class_names}}
    return data, stats
