"""Stratified train/val/test splits for a labelled set (``astromorph split``).

Each class is shuffled with one seeded generator and cut by the fractions, as gz1's and the
paper's splits were made, so every split holds every class in proportion and a rerun with the
same seed gives the same splits. An image is in one split only: ids that repeat are refused.
"""

from __future__ import annotations

import logging

import numpy as np
from astropy.table import Table

from ..errors import UserError
from ..sources.base import bad_id_reason, format_id
from .data import label_text

__all__ = ["stratified_split", "refuse_repeated_ids", "add_split_column"]


def stratified_split(labels: np.ndarray, classes: list[str], test_fraction: float,
                     val_fraction: float, seed: int,
                     eligible: np.ndarray | None = None) -> np.ndarray:
    """``"train"``, ``"val"`` or ``"test"`` per row (``""`` for rows not ``eligible`` or of
    no listed class).

    Per class, in ``classes`` order, the rows are permuted by one generator seeded with
    ``seed``; the first ``round(test_fraction * n)`` go to test, then
    ``round(val_fraction * (n - n_test))`` (a share of what test left) to val, the rest to
    train. A class of one or two rows stays in train.
    """
    labels = np.asarray(labels).astype(str)
    ok = np.ones(len(labels), bool) if eligible is None else np.asarray(eligible, bool)
    rng = np.random.default_rng(seed)
    split = np.full(len(labels), "", dtype="<5U")
    for name in classes:
        idx = np.flatnonzero(ok & (labels == name))
        idx = idx[rng.permutation(len(idx))]
        n_test = int(round(test_fraction * len(idx)))
        n_val = int(round(val_fraction * (len(idx) - n_test)))
        split[idx[:n_test]] = "test"
        split[idx[n_test:n_test + n_val]] = "val"
        split[idx[n_test + n_val:]] = "train"
    return split


def refuse_repeated_ids(ids: np.ndarray, id_column: str) -> None:
    """One line naming the first id that repeats: one image in two splits would leak."""
    uniq, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        twice = np.flatnonzero(ids == uniq[np.argmax(counts > 1)])
        raise UserError(f"{id_column} {ids[twice[0]]} appears {len(twice)} times (rows "
                        f"{', '.join(str(i) for i in twice[:5])}); each galaxy once, please")


def add_split_column(table: Table, id_column: str, label_column: str = "label",
                     split_column: str = "split", fractions: tuple[float, float, float] = (
                         0.8, 0.1, 0.1), seed: int = 0) -> Table:
    """A copy of ``table`` with a stratified ``split_column`` (train/val/test fractions).

    Rows with a blank label get an empty split (``train`` leaves them out) and are counted
    in a warning. The per-class counts go into ``meta["split_counts"]``.
    """
    from ..errors import suggest_names
    from ..sources.coords import column_hint

    if id_column not in table.colnames:
        raise UserError(f"no column {id_column!r}"
                        f"{column_hint(id_column, table.colnames, '--id-column')}; choose one "
                        f"with --id-column")
    if label_column not in table.colnames:
        raise UserError(f"no column {label_column!r}"
                        f"{suggest_names(label_column, table.colnames)}: train reads the "
                        f"classes from a column of that name; rename yours")
    if split_column in table.colnames:
        raise UserError(f"the table already has a column {split_column!r}: train on the "
                        f"splits it has, or remove it to make new ones")
    if len(fractions) != 3 or min(fractions) < 0 or not np.isclose(sum(fractions), 1) \
            or fractions[0] <= 0:
        raise UserError(f"--fractions takes train,val,test shares that add up to 1 with "
                        f"train > 0, not {','.join(str(f) for f in fractions)}")
    if len(table) == 0:
        raise UserError("the table has no rows")
    ids = np.array([format_id(v) or "" for v in table[id_column]])
    if (ids == "").any():  # masked, blank, or a float that lost an 18-digit id's digits
        row = int(np.argmax(ids == ""))
        raise UserError(f"row {row}: {bad_id_reason(table[id_column][row])} (column "
                        f"{id_column!r}); every row needs a usable id to be split")
    refuse_repeated_ids(ids, id_column)
    labels = label_text(table[label_column])
    blank = labels == ""
    if blank.all():
        raise UserError(f"column {label_column!r} holds no labels")
    if blank.any():
        logging.getLogger("astro_morph").warning(
            "%d rows have no label (first: row %d); their split is empty, so training leaves "
            "them out", int(blank.sum()), int(np.argmax(blank)))
    _, val, test = fractions
    classes = sorted(set(labels[~blank].tolist()))
    # val as a share of what test leaves (train > 0, so test < 1)
    split = stratified_split(labels, classes, test, val / (1 - test), seed, eligible=~blank)
    out = table.copy()
    out[split_column] = split
    out.meta["split_counts"] = counts = {c: {s: int(((labels == c) & (split == s)).sum())
                                             for s in ("train", "val", "test")}
                                         for c in classes}
    # A class absent from val (test) is never selected on (scored): say so, not only count.
    wanted = [s for s, f in (("val", val), ("test", test)) if f > 0]
    short = [c for c in classes if any(counts[c][s] == 0 for s in wanted)]
    if short:
        logging.getLogger("astro_morph").warning(
            "too few rows for a row in every split: %s; val and test cannot score %s (label "
            "more of them, merge them into another class, or raise --fractions' val/test "
            "shares)", ", ".join(f"{c} ({'/'.join(str(counts[c][s]) for s in counts[c])})"
                                 for c in short[:5]) + (" ..." if len(short) > 5 else ""),
            "it" if len(short) == 1 else "them")
    return out
