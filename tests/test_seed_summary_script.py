"""scripts/seed_summary.py: mean and spread over seeds of train + evaluate runs."""

import pytest

from astro_morph.errors import UserError
from conftest import load_script


def _script():
    return load_script("seed_summary")


def _report(split, sha, accuracy):
    per_class = {c: {"precision": accuracy, "recall": accuracy, "f1": accuracy}
                 for c in ("a", "b")}
    metrics = {m: accuracy for m in ("accuracy", "f1_macro", "f1_weighted",
                                     "precision_weighted", "recall_weighted", "ece")}
    return {"split": split, "sha256": sha, "model": f"m-{sha}", "n": 10,
            "per_class": per_class, "train_seconds": 60.0, **metrics}


def test_pairs_val_and_test_by_model_and_summarises_as_compare():
    from astro_morph.training.compare import markdown_table, summarise

    reports = [_report("test", "y", 0.6), _report("val", "x", 0.8), _report("val", "y", 0.9),
               _report("test", "x", 0.7)]
    runs = _script().pair_reports(reports)
    assert [(r["model"], r["val"]["accuracy"], r["test"]["accuracy"]) for r in runs] == [
        ("m-x", 0.8, 0.7), ("m-y", 0.9, 0.6)]
    table = markdown_table([{**summarise(runs), "arch": "row"}])
    # sample standard deviation over the two seeds, as compare reports it
    assert "| 0.850 ± 0.071 |" in table and "| 0.650 ± 0.071 |" in table
    assert "| - |" in table  # no timing in the reports: no speed column figure


@pytest.mark.parametrize("reports, message", [
    ([_report("val", "x", 0.8)], "one val and one test"),
    ([_report("val", "x", 0.8), _report("test", "z", 0.8)], "one val and one test"),
    ([_report("val", "x", 0.8), _report("val", "x", 0.8)], "two val reports"),
    ([_report("train", "x", 0.8)], "give val and test"),
    ([_report("val", "x", 0.8), {**_report("test", "x", 0.8), "per_class": {"a": {}}}],
     "the reports score different classes: a vs a, b"),
])
def test_refuses_reports_that_do_not_pair(reports, message):
    with pytest.raises(UserError, match=message):
        _script().pair_reports(reports)


def test_main_prints_every_seed_of_each_split(tmp_path, capsys, monkeypatch):
    import json
    import sys

    paths = []
    for i, (split, sha, acc) in enumerate([("val", "x", 0.8), ("test", "x", 0.7),
                                           ("val", "y", 0.9), ("test", "y", 0.6)]):
        paths.append(tmp_path / f"{i}.json")
        paths[-1].write_text(json.dumps(_report(split, sha, acc)))
    monkeypatch.setattr(sys, "argv", ["seed_summary.py", "--label", "row", *map(str, paths)])
    _script().main()
    out = capsys.readouterr().out
    assert "| row | ? |" in out
    assert "val: accuracy 0.8500 ± 0.0707 (0.8000 / 0.9000)" in out
    assert "test: accuracy 0.6500 ± 0.0707 (0.7000 / 0.6000)" in out


def test_reads_compare_seed_files_beside_evaluate_reports(tmp_path, capsys, monkeypatch):
    """Seeds trained by separate compare runs join one row: a compare seed's JSON holds its
    val and test reports."""
    import json
    import sys

    seed0 = tmp_path / "efficientnet-g3-s0.json"
    seed0.write_text(json.dumps({"seed": 0, "model": "m-x", "val": _report("val", "x", 0.8),
                                 "test": _report("test", "x", 0.7)}))
    val1, test1 = tmp_path / "y-val.json", tmp_path / "y-test.json"
    val1.write_text(json.dumps(_report("val", "y", 0.9)))
    test1.write_text(json.dumps(_report("test", "y", 0.6)))
    assert [r["split"] for r in _script().read_report(seed0)] == ["val", "test"]
    monkeypatch.setattr(sys, "argv", ["seed_summary.py", str(seed0), str(val1), str(test1)])
    _script().main()
    out = capsys.readouterr().out
    assert "val: accuracy 0.8500 ± 0.0707 (0.8000 / 0.9000)" in out
    assert "test: accuracy 0.6500 ± 0.0707 (0.7000 / 0.6000)" in out
    broken = tmp_path / "efficientnet-g3-s1.json"
    broken.write_text(json.dumps({"seed": 1, "val": _report("val", "z", 0.8),
                                  "test": {"split": "test"}}))
    with pytest.raises(UserError, match=r"efficientnet-g3-s1.json: not an evaluate --json "
                                        r"report nor a compare seed's report \(no sha256"):
        _script().read_report(broken)


def test_unreadable_or_foreign_reports_exit_naming_the_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(UserError, match="bad.json: cannot read it as a JSON report"):
        _script().read_report(bad)
    other = tmp_path / "other.json"
    other.write_text('{"split": "val", "accuracy": 0.5}')
    with pytest.raises(UserError, match=r"other.json: not an evaluate --json report nor a "
                                        r"compare seed's report \(no sha256"):
        _script().read_report(other)
    with pytest.raises(UserError, match="missing.json: cannot read"):
        _script().read_report(tmp_path / "missing.json")
