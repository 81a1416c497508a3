"""``astromorph gallery``: a grid of cutouts with predicted labels, to eyeball a run."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
from astropy.table import Table

from .columns import classes_of, read_probabilities
from .errors import UserError, some_values, suggest_names

__all__ = ["draw_gallery"]


def draw_gallery(table: Table, png: str | os.PathLike, source: str = "galaxyzoo",
                 n: int = 36, sort: str = "confidence", label: str | None = None,
                 prefix: str = "morph_", truth_column: str | None = None,
                 only_wrong: bool = False, where: dict[str, str] | None = None,
                 **source_options) -> tuple[Path, int]:
    """Draw up to ``n`` classified rows of ``table`` with label and probability.

    ``sort`` is ``confidence`` (most confident first), ``-confidence`` (least confident
    first, to find mistakes) or ``row`` (catalog order); ``label`` keeps one class.
    ``truth_column`` names a column of known classes (e.g. volunteers' labels), shown under
    each prediction; ``only_wrong`` then keeps the rows where the two differ, so the most
    confident disagreements (mislabelled galaxies, or the network's blind spots) come first.
    ``where`` keeps rows whose columns hold these values (e.g. ``{"split": "val"}``).
    Returns the image's path and how many rows passed the filters (of which ``n`` are drawn).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    label_col, flags_col = f"{prefix}label", f"{prefix}flags"
    for col in (label_col, flags_col):
        if col not in table.colnames:
            raise UserError(f"no column {col!r}: is this an astromorph classify output?")
    probs = read_probabilities(table, classes_of(table, prefix), prefix)
    conf = np.nanmax(np.where(np.isfinite(probs), probs, -1), 1)
    labels = np.ma.filled(table[label_col], "").astype(str)
    keep = np.isfinite(probs).all(1)
    if label is not None:
        keep &= labels == label
    for column, value in (where or {}).items():
        held = _text_column(table, column, "--where")
        if not (held == value).any():
            raise UserError(f"--where {column}={value}: no row holds it; the column holds "
                            f"{some_values(held.tolist(), quote=True) or 'nothing'}")
        keep &= held == value
    truth = None
    if truth_column is not None:
        truth = _text_column(table, truth_column, "--truth-column")
        if only_wrong:
            keep &= (truth != labels) & (truth != "")
    elif only_wrong:
        raise UserError("--only-wrong needs --truth-column: the column of known classes")
    rows = np.flatnonzero(keep)
    if sort == "confidence":
        rows = rows[np.argsort(-conf[rows], kind="stable")]
    elif sort == "-confidence":
        rows = rows[np.argsort(conf[rows], kind="stable")]
    elif sort != "row":
        raise UserError(f"--sort must be confidence, -confidence or row, not {sort!r}")
    matching = len(rows)
    rows = rows[:n]
    if len(rows) == 0 and label is not None:
        held = labels[np.isfinite(probs).all(1)].tolist()
        raise UserError(f"no classified rows to draw with label {label!r}"
                        f"{suggest_names(label, set(held))}; the catalog's labels: "
                        f"{some_values(held) or 'none'}")
    if len(rows) == 0:
        raise UserError("no classified rows to draw"
                        + (f" that disagree with {truth_column!r}" if only_wrong else ""))
    from .options import build_source
    from .sources.coords import with_skycoord_parts

    src = build_source(source, source_options)
    cutouts = src.fetch(with_skycoord_parts(table)[rows])
    missing = [(row, cut.message) for row, cut in zip(rows, cutouts, strict=True)
               if cut.image is None]
    if len(missing) == len(rows):  # e.g. the wrong --image-dir: an empty grid helps nobody
        raise UserError(f"none of the {len(rows)} cutouts to draw could be read (first: row "
                        f"{missing[0][0]}: {missing[0][1]})")
    if missing:
        logging.getLogger("astro_morph").warning(
            "%d of %d cutouts could not be read and are drawn empty (first: row %d: %s)",
            len(missing), len(rows), missing[0][0], missing[0][1])
    cols = int(np.ceil(np.sqrt(len(rows))))
    nrows = int(np.ceil(len(rows) / cols))
    fig, axes = plt.subplots(nrows, cols, figsize=(1.9 * cols, (2.1 if truth is None else 2.3)
                                                   * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, row, cut in zip(axes.flat, rows, cutouts, strict=False):
        if cut.image is not None:
            img = cut.image if cut.image.dtype == np.uint8 else np.clip(cut.image, 0, 1)
            ax.imshow(img)
        else:
            ax.text(0.5, 0.5, "no cutout", ha="center", va="center", fontsize=7,
                    transform=ax.transAxes)
        title = f"#{row} {labels[row]} {conf[row]:.2f}"
        ax.set_title(title if truth is None else f"{title}\n{truth_column}: {truth[row]}",
                     fontsize=7)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return Path(png), matching


def _text_column(table: Table, name: str, option: str) -> np.ndarray:
    """Column ``name`` as strings, masked cells ``""``; a one-line error naming ``option``
    when there is no such column."""
    if name not in table.colnames:
        raise UserError(f"no column {name!r} for {option}{suggest_names(name, table.colnames)}")
    return np.ma.filled(np.ma.asarray(table[name]).astype(str), "")
