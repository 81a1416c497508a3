"""The paper's five-class clean sample (its Table 1) from Kaggle's ``training_solutions_rev1.csv``.

Kaggle's vote columns are *cumulative*: each answer holds the fraction of **all** volunteers
who gave it, so a later task's answers sum to the fraction that reached that task (e.g.
``Class7.1 + Class7.2 + Class7.3 == Class1.1``). The paper's thresholds are on per-task
fractions f (Galaxy Zoo 2's convention), so each answer is divided by the sum of its task's
answers::

    f_smooth          = Class1.1 / (Class1.1 + Class1.2 + Class1.3)
    f_completely_round = Class7.1 / (Class7.1 + Class7.2 + Class7.3)     (T07)
    f_edge_on_yes     = Class2.1 / (Class2.1 + Class2.2)                 (T02)
    f_spiral_yes      = Class4.1 / (Class4.1 + Class4.2)                 (T04)

A task nobody reached (sum 0) gives f = 0. A galaxy with a vote that is missing, not a
number or negative cannot be placed and is left out (counted, the first named). Table 1's
rules are then applied as printed; a galaxy that passes more than one class's rule
(possible: f_smooth and f_features can both exceed 0.469) is ambiguous and left out. The
clean sample is split 9:1 per class with a fixed seed (the paper's stratified split); 10 % of
the training part is held out as ``val`` for model selection so that ``test`` is only used
for the reported figures.
"""

from __future__ import annotations

import logging

import numpy as np
from astropy.table import Table

from ..errors import UserError
from ..sources.base import format_id
from .splits import refuse_repeated_ids, stratified_split

__all__ = ["TABLE1_RULES", "TASKS", "VOTE_COLUMNS", "task_fractions", "select_table1",
           "vote_column"]

#: Kaggle answer columns of each decision-tree task used by Table 1.
TASKS: dict[str, tuple[str, ...]] = {
    "T01": ("Class1.1", "Class1.2", "Class1.3"),
    "T02": ("Class2.1", "Class2.2"),
    "T04": ("Class4.1", "Class4.2"),
    "T07": ("Class7.1", "Class7.2", "Class7.3"),
}
#: Every answer column Table 1 reads.
VOTE_COLUMNS = tuple(c for cols in TASKS.values() for c in cols)

#: The paper's Table 1: class -> [(answer column, minimum per-task fraction), ...].
TABLE1_RULES: dict[str, list[tuple[str, float]]] = {
    "completely_round_smooth": [("Class1.1", 0.469), ("Class7.1", 0.5)],
    "in_between_smooth": [("Class1.1", 0.469), ("Class7.2", 0.5)],
    "cigar_shaped_smooth": [("Class1.1", 0.469), ("Class7.3", 0.5)],
    "edge_on": [("Class1.2", 0.430), ("Class2.1", 0.602)],
    "spiral": [("Class1.2", 0.469), ("Class2.2", 0.715), ("Class4.1", 0.619)],
}


def vote_column(solutions: Table, name: str) -> np.ndarray:
    """Column ``name`` as floats; a missing, non-numeric or negative cell is NaN."""
    col = solutions[name]
    if col.dtype.kind in "iuf":
        values = np.ma.filled(np.ma.asarray(col, dtype=float), np.nan)
    else:  # text: one bad cell made the whole column strings
        values = np.array([_number(v) for v in np.ma.filled(np.ma.asarray(col), "")])
    return np.where(values >= 0, values, np.nan)  # NaN stays NaN


def _number(text: object) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return float("nan")


def _votes(solutions: Table) -> dict[str, np.ndarray]:
    """Every column of :data:`VOTE_COLUMNS` as floats (:func:`vote_column`)."""
    missing = [c for c in VOTE_COLUMNS if c not in solutions.colnames]
    if missing:
        raise UserError(f"Kaggle solutions table lacks column(s) {', '.join(missing)}")
    return {c: vote_column(solutions, c) for c in VOTE_COLUMNS}


def task_fractions(solutions: Table) -> dict[str, np.ndarray]:
    """Per-task fraction f of every answer column used by Table 1 (see the module doc)."""
    return _fractions(_votes(solutions))


def _fractions(votes_by_column: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    f = {}
    for cols in TASKS.values():
        votes = np.stack([votes_by_column[c] for c in cols])
        total = votes.sum(0)
        with np.errstate(invalid="ignore", divide="ignore"):
            frac = np.where(total > 0, votes / total, 0.0)
        for c, v in zip(cols, frac, strict=True):
            f[c] = v
    return f


def select_table1(solutions: Table, id_column: str = "GalaxyID", test_fraction: float = 0.1,
                  val_fraction: float = 0.1, seed: int = 0) -> Table:
    """Labels and splits of the paper's clean sample.

    Parameters
    ----------
    solutions : `~astropy.table.Table`
        ``training_solutions_rev1.csv`` (``GalaxyID`` and the 37 ``ClassN.M`` columns).
    test_fraction : float
        Per-class share of the ``test`` split (the paper's 9:1).
    val_fraction : float
        Per-class share of the remaining training part held out as ``val``.

    Returns
    -------
    `~astropy.table.Table`
        ``GalaxyID, label, split`` for every selected galaxy, in input order; ``meta`` holds
        the per-class counts and the number of ambiguous galaxies left out.
    """
    if id_column not in solutions.colnames:
        raise UserError(f"Kaggle solutions table has no {id_column!r} column")
    ids = np.array([format_id(v) or "" for v in solutions[id_column]])
    refuse_repeated_ids(ids, id_column)  # one image in two splits would leak into test
    votes = _votes(solutions)
    f = _fractions(votes)
    invalid = ~np.all([np.isfinite(v) for v in votes.values()], axis=0)
    if invalid.any():
        row = int(np.argmax(invalid))
        bad = [c for c, v in votes.items() if not np.isfinite(v[row])]
        logging.getLogger("astro_morph").warning(
            "left out %d galaxies whose votes are missing, not numbers or negative (first: row "
            "%d, %s %s, column %s)", int(invalid.sum()), row, id_column, ids[row], bad[0])
    passes = np.stack([np.all([f[c] >= t for c, t in rules], axis=0)
                       for rules in TABLE1_RULES.values()])
    passes &= ~invalid
    n_pass = passes.sum(0)
    chosen = n_pass == 1
    names = np.array(list(TABLE1_RULES))
    labels = names[np.argmax(passes, axis=0)]
    split = stratified_split(labels, list(names), test_fraction, val_fraction, seed,
                             eligible=chosen)
    out = Table({id_column: solutions[id_column][chosen], "label": labels[chosen],
                 "split": split[chosen]})
    out.meta["counts"] = {str(n): int(((labels == n) & chosen).sum()) for n in names}
    out.meta["ambiguous"] = int((n_pass > 1).sum())
    out.meta["invalid"] = int(invalid.sum())
    out.meta["selection"] = "Wu et al. 2022 Table 1 on per-task vote fractions"
    return out
