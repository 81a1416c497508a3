"""scripts/clean_labels.py: train rows a classifier confidently contradicts are dropped;
val and test keep every row."""

import csv
import sys

import numpy as np
import pytest
from astropy.table import Table

from conftest import load_script

pytest.importorskip("cleanlab", reason="cleanlab is not installed (pip install cleanlab)")

CLASSES = ["elliptical", "spiral"]


def _tables(tmp_path, n: int = 40, prefix: str = "morph_"):
    """Labels (n train rows per class, 5 val, 5 test) and a classified table whose
    probabilities agree with every label except three train rows of each class."""
    rng = np.random.default_rng(0)
    ids, labels, splits, p_spiral = [], [], [], []
    wrong = set()
    for k, cls in enumerate(CLASSES):
        for i in range(n + 10):
            key = 1000 * (k + 1) + i
            split = "train" if i < n else ("val" if i < n + 5 else "test")
            ids.append(key)
            labels.append(cls)
            splits.append(split)
            p = rng.uniform(0.85, 0.97)  # confident and right ...
            if i < 3 or split == "val":  # ... except these: confident and wrong
                p = 1 - p
                if split == "train":
                    wrong.add(key)
            p_spiral.append(p if cls == "spiral" else 1 - p)
    path = tmp_path / "labels.csv"
    Table({"OBJID": ids, "label": labels, "split": splits}).write(path, format="ascii.csv")
    p_spiral = np.array(p_spiral)
    out = tmp_path / "morph.fits"
    Table({"OBJID": ids, "label": labels, "split": splits,
           f"{prefix}prob_elliptical": 1 - p_spiral, f"{prefix}prob_spiral": p_spiral}).write(out)
    return path, out, wrong


def test_drops_only_the_contradicted_train_rows(tmp_path, monkeypatch, capsys):
    script = load_script("clean_labels")
    labels, classified, wrong = _tables(tmp_path)
    out, removed = tmp_path / "clean.csv", tmp_path / "removed.csv"
    monkeypatch.setattr(sys, "argv", ["clean_labels.py", str(labels), str(classified),
                                      "-o", str(out), "--removed", str(removed)])
    script.main()
    assert "dropped 6 train rows" in capsys.readouterr().out
    kept = list(csv.DictReader(out.read_text().splitlines()))
    kept_ids = {int(r["OBJID"]) for r in kept}
    assert not wrong & kept_ids
    # every val and test row stays, even the val rows the classifier contradicts
    assert sum(r["split"] != "train" for r in kept) == 20
    assert len(kept) == 100 - 6
    dropped = Table.read(removed, format="ascii.csv")
    assert set(dropped["OBJID"]) == wrong
    assert all(p < 0.5 for p in dropped["prob_of_label"])
    # the kept rows are the input's rows, unchanged
    original = {r["OBJID"]: r for r in csv.DictReader(labels.read_text().splitlines())}
    assert all(original[r["OBJID"]] == r for r in kept)


@pytest.mark.parametrize("drop, message", [
    ("morph_prob_spiral", "no class 'spiral' \\(a train label\\)"),
    ("OBJID", "no column 'OBJID'"),
])
def test_a_foreign_classified_table_is_one_line(tmp_path, drop, message):
    from astro_morph.errors import UserError

    script = load_script("clean_labels")
    labels, classified, _ = _tables(tmp_path)
    t = Table.read(classified)
    t.remove_column(drop)
    t.write(classified, overwrite=True)
    with pytest.raises(UserError, match=message):
        script.clean(labels, classified, "OBJID", "prune_by_noise_rate")


def test_another_prefix_is_read_with_prefix(tmp_path):
    from astro_morph.errors import UserError

    script = load_script("clean_labels")
    labels, classified, wrong = _tables(tmp_path, prefix="gz_")
    kept, removed = script.clean(labels, classified, "OBJID", "prune_by_noise_rate", "gz_")
    assert set(removed["OBJID"]) == wrong
    with pytest.raises(UserError, match="no morph_prob_<class> columns"):
        script.clean(labels, classified, "OBJID", "prune_by_noise_rate")


def test_refuses_to_overwrite_its_input(tmp_path, monkeypatch):
    from astro_morph.errors import UserError

    script = load_script("clean_labels")
    labels, classified, _ = _tables(tmp_path)
    before = labels.read_text()
    monkeypatch.setattr(sys, "argv", ["clean_labels.py", str(labels), str(classified),
                                      "-o", str(labels)])
    with pytest.raises(UserError, match="would overwrite the input"):
        script.main()
    assert labels.read_text() == before


@pytest.mark.parametrize("suffix", ["fits", "ecsv"])
def test_rows_without_probabilities_stay_unjudged(tmp_path, monkeypatch, capsys, suffix):
    """A row classify flagged (NaN probabilities in FITS, masked cells in ECSV) cannot be
    judged: it is kept, not an error; a val row that shares a dropped train row's id keeps
    its label."""
    script = load_script("clean_labels")
    labels, fits, wrong = _tables(tmp_path)
    t = Table(Table.read(fits), masked=suffix == "ecsv")
    first, *rest = sorted(wrong)
    unjudged = t["OBJID"] == first
    for col in ("morph_prob_elliptical", "morph_prob_spiral"):
        if suffix == "ecsv":
            t[col].mask = unjudged
        else:
            t[col][unjudged] = np.nan
    classified = tmp_path / f"morph2.{suffix}"
    t.write(classified)
    lab = Table.read(labels, format="ascii.csv")
    lab.add_row({"OBJID": rest[0], "label": "spiral", "split": "val"})
    lab.write(labels, format="ascii.csv", overwrite=True)
    out = tmp_path / "clean.csv"
    monkeypatch.setattr(sys, "argv", ["clean_labels.py", str(labels), str(classified),
                                      "-o", str(out)])
    script.main()
    printed = capsys.readouterr().out
    assert "dropped 5 train rows" in printed
    assert "1 without probabilities kept unjudged" in printed
    kept = Table.read(out, format="ascii.csv")
    assert first in kept["OBJID"]
    assert list(kept[kept["OBJID"] == rest[0]]["split"]) == ["val"]
