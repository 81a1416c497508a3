"""Drop training rows whose label a classifier confidently contradicts (confident learning,
Northcutt et al. 2021, through cleanlab), and write the labels table without them.

    astromorph classify ../shared/data/gz1/labels.csv --image-dir ../shared/data/gz1/images \
        --id-column OBJID --tta -o gz1_morph_tta.fits
    python3 scripts/clean_labels.py ../shared/data/gz1/labels.csv gz1_morph_tta.fits \
        -o gz1_labels_clean.csv --removed removed.csv

Only rows of the ``train`` split are judged and dropped: ``val`` and ``test`` keep every row
and every label, so a model trained on the cleaned table is scored on the same images and
labels as any other. A train row classify flagged (no probabilities) is kept unjudged.
The probabilities are ``classify``'s ``morph_prob_<class>`` columns.
cleanlab prefers out-of-sample probabilities (cross-validation); those of a model trained on
the same train rows are in-sample, which makes the filter conservative (the model has seen
the label it is asked to doubt). Needs ``pip install cleanlab``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from astro_morph.errors import UserError


def label_issues(labels: np.ndarray, probs: np.ndarray, classes: list[str],
                 filter_by: str = "prune_by_noise_rate") -> np.ndarray:
    """Boolean mask of the rows cleanlab flags as label issues.

    Parameters
    ----------
    labels : numpy.ndarray
        Class names, one per row.
    probs : numpy.ndarray
        ``(rows, classes)`` predicted probabilities, columns in the order of ``classes``.
    classes : list of str
        The class names.
    filter_by : str
        cleanlab's ``find_label_issues`` method; its default is the one used here.
    """
    try:
        from cleanlab.filter import find_label_issues
    except ImportError as err:
        raise UserError("scripts/clean_labels.py needs cleanlab: pip install cleanlab") from err
    y = np.array([classes.index(str(c)) for c in labels])
    return find_label_issues(y, probs, filter_by=filter_by)


def clean(labels_path: Path, classified_path: Path, id_column: str,
          filter_by: str, prefix: str = "morph_") -> tuple:
    """(the labels table without the flagged train rows, the flagged rows)."""
    from astro_morph.catalog_io import read_catalog
    from astro_morph.columns import classes_of, read_probabilities
    from astro_morph.sources.base import format_id
    from astro_morph.training.data import load_labels, split_rows

    table = load_labels(labels_path, id_column)
    classified = read_catalog(classified_path)
    try:
        classes = classes_of(classified, prefix)
    except UserError as err:
        raise UserError(f"{classified_path}: {err}") from None
    if id_column not in classified.colnames:
        raise UserError(f"{classified_path}: no column {id_column!r}")
    train = split_rows(table, "train", labels_path)
    train_labels = np.asarray(train["label"]).astype(str)
    unknown = sorted(set(train_labels.tolist()) - set(classes))
    if unknown:
        raise UserError(f"{classified_path}: no class {unknown[0]!r} (a train label) among "
                        f"its classes {', '.join(classes)}")
    by_id = {format_id(v): i for i, v in enumerate(classified[id_column])}
    train_ids = [format_id(v) for v in train[id_column]]
    missing = [k for k in train_ids if k not in by_id]
    if missing:
        raise UserError(f"{classified_path}: no row for train id {missing[0]} "
                        f"({len(missing)} train ids missing)")
    index = np.array([by_id[k] for k in train_ids])
    # A row classify flagged has no probabilities (NaN, or masked in ECSV/VOTable/Parquet):
    # it cannot be judged, so it stays.
    probs = read_probabilities(classified[index], classes, prefix)
    judged = np.isfinite(probs).all(axis=1)
    flagged = np.zeros(len(train), dtype=bool)
    flagged[judged] = label_issues(train_labels[judged], probs[judged], classes, filter_by)
    dropped_ids = {k for k, f in zip(train_ids, flagged, strict=True) if f}
    splits = np.asarray(table["split"]).astype(str)
    # only train rows go: a val or test row keeps its label even if it shares the id
    keep = np.array([not (sp == "train" and format_id(v) in dropped_ids)
                     for v, sp in zip(table[id_column], splits, strict=True)])
    removed = train[flagged]
    removed["prob_of_label"] = probs[flagged, [classes.index(c)
                                               for c in train_labels[flagged]]]
    removed["predicted"] = np.array(classes)[probs[flagged].argmax(axis=1)]
    removed.meta["unjudged"] = int((~judged).sum())
    return table[keep], removed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("labels", type=Path, help="labels table (id, label, split)")
    parser.add_argument("classified", type=Path,
                        help="astromorph classify's output for the same rows")
    parser.add_argument("-o", "--out", type=Path, required=True,
                        help="cleaned labels table (CSV), written atomically")
    parser.add_argument("--id-column", default="OBJID")
    parser.add_argument("--filter-by", default="prune_by_noise_rate",
                        help="cleanlab find_label_issues method")
    parser.add_argument("--removed", type=Path, help="also write the dropped rows (CSV)")
    parser.add_argument("--prefix", default="morph_",
                        help="classify's --prefix for the classified table's columns")
    args = parser.parse_args()
    if args.out.resolve() == args.labels.resolve():
        raise UserError(f"{args.out}: would overwrite the input labels table")
    kept, removed = clean(args.labels, args.classified, args.id_column, args.filter_by,
                          args.prefix)
    from astro_morph.fileio import atomic_write

    atomic_write(args.out, lambda tmp: kept.write(tmp, format="ascii.csv", overwrite=True))
    if args.removed:
        atomic_write(args.removed,
                     lambda tmp: removed.write(tmp, format="ascii.csv", overwrite=True))
    counts = {str(c): int((np.asarray(removed["label"]).astype(str) == c).sum())
              for c in sorted(set(np.asarray(removed["label"]).astype(str)))}
    n_train = int((np.asarray(kept["split"]).astype(str) == "train").sum())
    unjudged = removed.meta.pop("unjudged")
    print(f"dropped {len(removed)} train rows ({counts}); {n_train} train rows left"
          + (f" ({unjudged} without probabilities kept unjudged)" if unjudged else "")
          + f"; wrote {args.out} ({len(kept)} rows)")


if __name__ == "__main__":
    from astro_morph.errors import run_script

    run_script(main)
