"""`astromorph split`: stratified train/val/test columns for a new labelled set."""

import numpy as np
import pytest
from astropy.table import Table
from click.testing import CliRunner

from astro_morph.errors import UserError
from astro_morph.training.splits import add_split_column


def _labels(n_per_class=(700, 200, 13, 1)):
    names = ["elliptical", "spiral", "merger", "odd"]
    label = np.concatenate([[c] * n for c, n in zip(names, n_per_class, strict=True)])
    return Table({"OBJID": np.arange(len(label)) + 587722952767439450, "label": label})


def test_every_class_is_split_in_proportion_and_the_seed_fixes_it(caplog):
    t = _labels()
    with caplog.at_level("WARNING", logger="astro_morph"):
        out = add_split_column(t, "OBJID")
    # 'odd' (one galaxy) cannot be in val or test: said, not only counted
    assert [r.getMessage() for r in caplog.records] == [
        "too few rows for a row in every split: odd (1/0/0); val and test cannot score it "
        "(label more of them, merge them into another class, or raise --fractions' val/test "
        "shares)"]
    caplog.clear()
    with caplog.at_level("WARNING", logger="astro_morph"):
        add_split_column(t[:-1], "OBJID")  # 13 mergers: 11/1/1, fine
    assert not caplog.records
    counts = out.meta["split_counts"]
    assert counts["elliptical"] == {"train": 560, "val": 70, "test": 70}
    assert counts["spiral"] == {"train": 160, "val": 20, "test": 20}
    assert counts["odd"] == {"train": 1, "val": 0, "test": 0}  # one galaxy stays in train
    assert out.colnames == ["OBJID", "label", "split"] and len(out) == len(t)
    again = add_split_column(t, "OBJID")
    assert list(again["split"]) == list(out["split"])
    other = add_split_column(t, "OBJID", seed=1)
    assert list(other["split"]) != list(out["split"])
    assert "split" not in t.colnames  # the input is left as it was


def test_blank_labels_get_no_split_and_repeated_ids_are_refused(caplog):
    t = _labels((10, 10, 0, 0))
    t["label"][3] = ""
    with caplog.at_level("WARNING", logger="astro_morph"):
        out = add_split_column(t, "OBJID", fractions=(0.6, 0.2, 0.2))
    assert out["split"][3] == "" and "1 rows have no label (first: row 3)" in caplog.text
    floats = Table({"OBJID": [587722952767439450.0, 2.0], "label": ["a", "b"]})
    with pytest.raises(UserError, match="row 0: id 5.87723e.17 is a floating-point number"):
        add_split_column(floats, "OBJID")
    t["OBJID"][5] = t["OBJID"][7]
    with pytest.raises(UserError, match=r"OBJID 587722952767439457 appears 2 times \(rows "
                                        r"5, 7\)"):
        add_split_column(t, "OBJID")


@pytest.mark.parametrize(("kwargs", "says"), [
    ({"fractions": (0.5, 0.5)}, "add up to 1 with train > 0, not 0.5,0.5"),
    ({"fractions": (0.0, 0.5, 0.5)}, "train > 0"),
    ({"fractions": (0.9, 0.2, -0.1)}, "add up to 1"),
    ({"id_column": "GalaxyID"}, "no column 'GalaxyID' (it has 'OBJID': --id-column OBJID?)"),
    ({"split_column": "label"}, "already has a column 'label': train on the splits"),
    ({"label_column": "morphology"}, "no column 'morphology': train reads the classes"),
])
def test_unusable_requests_are_one_line(kwargs, says):
    args = {"id_column": "OBJID", **kwargs}
    with pytest.raises(UserError) as err:
        add_split_column(_labels(), **args)
    assert says in str(err.value)


def test_cli_writes_a_table_train_can_read(tmp_path):
    from astro_morph.cli import cli
    from astro_morph.training.data import load_labels, split_rows

    src = tmp_path / "labels.csv"
    _labels().write(src)
    out = tmp_path / "with_splits.ecsv"
    res = CliRunner().invoke(cli, ["split", str(src), "-o", str(out)])
    assert res.exit_code == 0, (res.output, res.exception)
    assert "train 732, val 91, test 91 of 914 rows" in res.output
    table = load_labels(out, "OBJID")
    assert len(split_rows(table, "val", out)) == 91
    res = CliRunner().invoke(cli, ["split", str(src), "-o", str(src), "--overwrite"])
    assert "is the input table" in str(res.exception)
    # A labels table without splits points to the command.
    with pytest.raises(UserError, match="make one with `astromorph split"):
        load_labels(src, "OBJID")
