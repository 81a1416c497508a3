"""Labelled image sets (``labels.csv`` with a split column) decoded once into memory.

Training images are cached as a centre region wide enough for any rotation of the largest
random crop (paper: S up to 240 of 424, so a radius of 240 * sqrt(2) / 2 = 170 of 424), at a
size where the crop maps to about one cache pixel per network pixel (little aliasing).
Validation/test images go through exactly the inference transform
(:func:`astro_morph.centring.crop_resize`), so reported figures are those ``classify`` gives.
"""

from __future__ import annotations

import functools
import logging
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.table import Table

from ..centring.crop import PAPER_CROP_FRACTION, crop_resize
from ..errors import UserError, some_values, suggest_names
from ..sources.base import bad_id_reason, format_id
from ..sources.galaxyzoo import FolderListing, image_names, no_image
from ..sources.images import read_rgb, unusable_image

__all__ = ["LabelledSet", "load_labels", "label_text", "split_rows", "training_classes",
           "shared_ids", "TRAIN_REGION", "cache_size_for", "zoom"]

#: Fraction of the image kept for training: covers a 240/424 crop rotated by any angle.
TRAIN_REGION = 240 / 424 * math.sqrt(2)


def cache_size_for(input_size: int) -> int:
    """Cache side so that the paper's 200/424 crop spans ``input_size`` cache pixels (and
    any other crop: the cached region scales with it, see :func:`zoom`)."""
    return int(math.ceil(input_size * TRAIN_REGION / PAPER_CROP_FRACTION))


def zoom(crop_fraction: float) -> float:
    """How much smaller than the paper's 200/424 the crop is: the training region and the
    random crop sizes scale by it (exactly 1.0 for the paper's, so its runs keep their
    bits)."""
    if not 0 < crop_fraction <= 1:
        raise UserError(f"crop fraction must be in (0, 1], not {crop_fraction}")
    return crop_fraction / PAPER_CROP_FRACTION


@dataclass
class LabelledSet:
    """Decoded images of one split with integer labels."""

    images: np.ndarray  # (N, S, S, 3) uint8
    labels: np.ndarray  # (N,) int64
    ids: list[str]
    class_names: list[str]
    region: float  # fraction of the original image side the cache covers
    #: ``"<id>: <why>"`` for each row left out because its image is missing or unreadable.
    skipped: list[str] = field(default_factory=list)


def load_labels(labels: str | os.PathLike, id_column: str | None = None,
                label_column: str = "label", split_column: str = "split") -> Table:
    """Read a labels table (CSV/ECSV/FITS...) and check its columns."""
    from ..catalog_io import read_catalog

    path = Path(labels)
    table = read_catalog(path)
    for col in [c for c in (id_column, label_column, split_column) if c]:
        if col not in table.colnames:
            if col == id_column:
                from ..sources.coords import column_hint

                hint = column_hint(col, table.colnames, "--id-column")
            else:
                hint = suggest_names(col, table.colnames)
            if col == split_column and not hint:
                hint = f" (make one with `astromorph split {path} -o LABELS_WITH_SPLITS`)"
            raise UserError(f"{path}: no column {col!r}{hint}")
    for col in (label_column, split_column):
        table[col] = label_text(table[col])
    return table


def label_text(column) -> np.ndarray:
    """A label or split column as stripped strings. A blank cell reads as masked, whose fill
    value would pass for a class or split name ("0"); it is the empty string here, which no
    class or split is."""
    values = np.asarray(column).astype(str)
    values[np.asarray(np.ma.getmaskarray(column))] = ""
    return np.char.strip(values)


def split_rows(table: Table, split: str, source: str | os.PathLike,
               split_column: str = "split") -> Table:
    """The rows of ``split``; when there are none, a one-line error naming the values the
    split column does hold (``TRAIN`` or ``validation`` are not ``train`` or ``val``)."""
    if len(table) == 0:
        raise UserError(f"{source}: the table has no rows (a header only?)")
    values = np.asarray(table[split_column]).astype(str)
    rows = table[values == split]
    if len(rows) == 0:
        held = sorted(set(values.tolist()) - {""})  # sorted: the suggestion is stable
        raise UserError(f"{source}: no rows in split {split!r}"
                        f"{suggest_names(split, held)}; its {split_column!r} column holds "
                        f"{some_values(held, quote=True) or 'only blanks'}")
    return rows


def training_classes(table: Table, requested: list[str] | None, source: str | os.PathLike,
                     split: str = "train", label_column: str = "label",
                     split_column: str = "split") -> list[str]:
    """The classes to train: ``requested``, or every label of ``split``; each must occur in
    ``split``, and there must be at least two (one class is not a classifier)."""
    rows = split_rows(table, split, source, split_column)
    present = sorted({str(t) for t in np.asarray(rows[label_column]).astype(str) if t})
    names = list(requested) if requested else present
    unknown = [c for c in names if c not in present]
    if unknown or len(set(names)) != len(names):
        what = (f"class {unknown[0]!r}{suggest_names(unknown[0], present)} is not"
                if unknown else "classes repeat, or are not all")
        raise UserError(f"{what} in the {split!r} split of {source}; labels "
                        f"present: {', '.join(present) or 'none'}")
    _warn_near_duplicates(names, source)
    if len(names) < 2:
        given = (f"--classes names only {names[0]!r}" if requested else
                 f"the {split!r} split labels every row {names[0]!r}" if names else
                 f"the {split!r} split has no labels")
        raise UserError(f"{source}: a classifier needs at least two classes; {given}")
    return names


def _warn_near_duplicates(names: list[str], source: str | os.PathLike) -> None:
    """Warn of class names that differ only in case, spaces, '-' or '_' ('Spiral' and
    'spiral', 'edge_on' and 'edge-on'): each would be trained as a class of its own."""
    seen: dict[str, str] = {}
    for name in names:
        key = "".join(ch for ch in name.lower() if ch not in " -_")
        if key in seen:
            logging.getLogger("astro_morph").warning(
                "%s: labels %r and %r differ only in case or separators; they are trained "
                "as two classes (correct the labels, or name the ones to train with "
                "--classes)", source, seen[key], name)
        else:
            seen[key] = name


def shared_ids(table: Table, id_column: str, split: str, other: str,
               split_column: str = "split") -> list[str]:
    """Ids that are in both splits: an image trained on and scored on (a leak that makes
    the scored split's accuracy optimistic)."""
    values = np.asarray(table[split_column]).astype(str)
    ids = [format_id(v) or "" for v in table[id_column]]
    a = {k for k, s in zip(ids, values, strict=True) if s == split and k}
    return sorted(k for k in {k for k, s in zip(ids, values, strict=True) if s == other}
                  if k in a)


def _find_image(image_dir: Path, key: str) -> Path | None:
    """``<key><ext>`` in ``image_dir``, the names the Galaxy Zoo source tries, in its order."""
    for name in image_names(key):
        p = image_dir / name
        if p.is_file():
            return p
    return None


def load_split(table: Table, image_dir: str | os.PathLike, split: str, class_names: list[str],
               id_column: str, size: int, train: bool, label_column: str = "label",
               split_column: str = "split", limit: int | None = None,
               workers: int | None = None,
               crop_fraction: float = PAPER_CROP_FRACTION) -> LabelledSet:
    """Decode one split. ``train=True`` caches the wide rotation region at ``size`` pixels;
    ``train=False`` applies the inference transform (a centre crop of ``crop_fraction`` of
    the image side) at ``size`` pixels."""
    image_dir = Path(image_dir)
    rows = split_rows(table, split, "the labels table", split_column)
    labels_text = np.asarray(rows[label_column]).astype(str)
    blank = labels_text == ""  # load_labels makes blank and masked cells ""
    if blank.any():  # rows of other classes are left out by design; blank ones by mistake
        first = format_id(rows[id_column][int(np.argmax(blank))])
        logging.getLogger("astro_morph").warning(
            "split %r: left out %d rows with no label (first: id %s)", split, int(blank.sum()),
            first)
    keep = np.isin(labels_text, class_names) & ~blank
    rows, labels_text = rows[keep], labels_text[keep]
    if limit is not None:
        rows, labels_text = rows[:limit], labels_text[:limit]
    if len(rows) == 0:
        raise UserError(f"split {split!r} has no labelled rows with classes {class_names}")
    raw_ids = list(rows[id_column])
    ids = [format_id(v) or "" for v in raw_ids]
    region = TRAIN_REGION * zoom(crop_fraction) if train else crop_fraction

    def missing(key: str) -> str:
        """The message classify gives for a row with no image, near misses named (the
        folder is listed only when an image is missing)."""
        try:
            return listing().missing(key)
        except OSError:  # no folder, or not readable: the plain message
            return no_image(key, image_dir)

    @functools.cache
    def listing() -> FolderListing:
        return FolderListing(image_dir)

    def decode(i: int) -> np.ndarray | str:
        """The cached pixels, or why this row's image cannot be used."""
        key = ids[i]
        if not key:
            return bad_id_reason(raw_ids[i])
        path = _find_image(image_dir, key)
        if path is None:
            return missing(key)
        try:
            img = read_rgb(path)
        except (OSError, ValueError) as err:  # Pillow's errors name the file
            return f"{path.name}: {err}"
        reason = unusable_image(img)  # as classify flags it IMAGE_BLANK
        if reason:
            return f"{path.name}: {reason}"
        return (crop_resize(img, size, region) * 255 + 0.5).astype(np.uint8)

    with ThreadPoolExecutor(workers or os.cpu_count() or 1) as pool:
        decoded = list(pool.map(decode, range(len(ids))))
    # A missing or broken image costs its row, not the run; the rows left out are named.
    good = [not isinstance(d, str) for d in decoded]
    skipped = [f"{k or f'row {i} of the split'}: {d}"
               for i, (k, d) in enumerate(zip(ids, decoded, strict=True)) if isinstance(d, str)]
    if not any(good):
        raise UserError(f"split {split!r}: no usable image for any of its {len(ids)} rows "
                        f"(first: {skipped[0]})")
    if skipped:
        logging.getLogger("astro_morph").warning(
            "split %r: left out %d of %d rows whose image is missing or unreadable "
            "(first: %s)", split, len(skipped), len(ids), skipped[0])
    images = np.stack([d for d, g in zip(decoded, good, strict=True) if g])
    if train and (images.min(axis=(0, 1, 2)) == images.max(axis=(0, 1, 2))).all():
        # Nothing to learn, and batch norm's gradients overflow to NaN on constant input
        # (each image has passed unusable_image, but its structure may lie outside the crop).
        raise UserError(f"split {split!r}: its {len(images)} images are blank (one pixel "
                        f"value throughout); check --image-dir")
    ids = [k for k, g in zip(ids, good, strict=True) if g]
    lookup = {c: i for i, c in enumerate(class_names)}
    labels = np.array([lookup[t] for t, g in zip(labels_text, good, strict=True) if g],
                      dtype=np.int64)
    return LabelledSet(images, labels, ids, list(class_names), region, skipped)
