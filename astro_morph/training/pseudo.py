"""Pseudo-labels: a teacher labels unlabelled images and the confident ones join training.

Lee (2013); the EfficientNet-G paper names the unlabelled Galaxy Zoo images as future work.
The teacher's probabilities are the mean over the 8 rotations/flips, through the classify
pipeline (:func:`~astro_morph.training.train.teacher_targets`), so an image is labelled from
what the teacher sees when it classifies a catalog.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..centring.crop import PAPER_CROP_FRACTION
from ..errors import UserError
from ..sources.galaxyzoo import EXTENSIONS, image_names
from .data import LabelledSet, _find_image, load_split

__all__ = ["unlabelled_images", "evaluation_images", "pseudo_labelled"]


def unlabelled_images(image_dir: str | os.PathLike,
                      limit: int | None = None) -> dict[str, Path]:
    """Regular image files of ``image_dir`` by file stem, sorted (at most ``limit``).

    Each stem's file is the one the sources open for that id (:func:`~.data._find_image`),
    so every listed id is one the teacher can open."""
    folder = Path(image_dir)
    if not folder.is_dir():
        raise UserError(f"--pseudo-labels: {folder} is not a folder")
    stems = {p.stem for p in folder.iterdir()
             if p.name in image_names(p.stem) and not p.name.startswith(".")}
    found = {stem: path for stem in sorted(stems)
             if (path := _find_image(folder, stem)) is not None}
    if not found:
        other = sorted(q.name for q in folder.iterdir() if q.suffix.lower() in EXTENSIONS
                       and q.name not in image_names(q.stem))
        hint = (f" ({len(other)} with a mixed-case suffix, e.g. {other[0]}: image ids are "
                f"looked up with lower- or upper-case suffixes; rename them)") if other else ""
        raise UserError(f"--pseudo-labels: no {'/'.join(EXTENSIONS)} images in "
                        f"{folder}{hint}")
    return dict(list(found.items())[:limit]) if limit else found


def evaluation_images(table: Any, image_dir: str | os.PathLike, id_column: str,
                      train_split: str = "train", split_column: str = "split") -> list[Path]:
    """Image files of every labelled row outside ``train_split`` (val, test ...)."""
    from ..sources.base import format_id
    from .data import _find_image

    out = []
    for split, key in zip(np.asarray(table[split_column]).astype(str), table[id_column],
                          strict=True):
        if split != train_split:
            path = _find_image(Path(image_dir), format_id(key) or "")
            if path is not None:
                out.append(path)
    return out


def pseudo_labelled(teacher: list[str], image_dir: str | os.PathLike, class_names: list[str],
                    threshold: float, size: int, threads: int | None = None,
                    limit: int | None = None,
                    exclude: Sequence[str | os.PathLike] = (),
                    crop_fraction: float = PAPER_CROP_FRACTION
                    ) -> tuple[LabelledSet, np.ndarray, dict[str, Any]]:
    """The images of ``image_dir`` the teacher calls with probability >= ``threshold``.

    Images of the same sky as any of ``exclude`` (the labelled set's val and test images:
    releases share galaxies) are dropped first (:func:`~.duplicates.near_duplicates`), so
    the evaluation splits never enter training. Returns the decoded training set (cached at
    ``size`` with ``crop_fraction``, as the trainer's own split), the teacher's probabilities
    for those images ``(N, K)`` (soft targets, for distillation), and counts for the model's
    provenance: images seen, duplicates dropped, unreadable (skipped, not fatal), kept, kept
    per class.
    """
    from astropy.table import Table

    from .duplicates import pool_duplicates
    from .train import teacher_targets

    if not 0 < threshold <= 1:
        raise UserError(f"pseudo-label threshold must be in (0, 1], not {threshold}")
    images = unlabelled_images(image_dir, limit)
    all_ids, paths = list(images), list(images.values())
    dup = pool_duplicates(list(exclude), paths)
    ids = [i for k, i in enumerate(all_ids) if k not in dup]
    if not ids:
        raise UserError(f"--pseudo-labels: every image in {image_dir} shows a val/test galaxy")
    probs = teacher_targets(teacher, ids, str(image_dir), "id", class_names, threads,
                            allow_missing=True)
    readable = np.isfinite(probs).all(1)
    keep = readable & (np.nan_to_num(probs, nan=0.0).max(1) >= threshold)
    if not keep.any():
        raise UserError(f"--pseudo-labels: the teacher gives no class probability >= "
                        f"{threshold} to any of the {len(ids)} images in {image_dir}; lower "
                        f"--pseudo-threshold")
    kept_ids = [i for i, k in zip(ids, keep, strict=True) if k]
    labels = [class_names[j] for j in probs[keep].argmax(1)]
    table = Table({"id": kept_ids, "label": labels, "split": ["train"] * len(kept_ids)})
    data = load_split(table, image_dir, "train", class_names, "id", size, train=True,
                      crop_fraction=crop_fraction)
    stats = {"image_dir": str(image_dir), "threshold": threshold, "images": len(all_ids),
             "duplicates_of_eval_images": len(dup), "unreadable": int((~readable).sum()),
             "kept": int(keep.sum()),
             "kept_per_class": {c: labels.count(c) for c in class_names}}
    return data, probs[keep], stats
