import numpy as np
import pytest
from astropy.table import Table

from astro_morph.errors import UserError
from astro_morph.training.kaggle import select_table1, task_fractions

COLS = [f"Class{t}.{a}" for t, n in [(1, 3), (2, 2), (3, 2), (4, 2), (5, 4), (6, 2), (7, 3),
                                     (8, 7), (9, 3), (10, 3), (11, 6)] for a in range(1, n + 1)]


def galaxy(gid, smooth, features, star=0.0, round_=0.0, between=0.0, cigar=0.0,
           edge_yes=0.0, spiral_yes=0.0):
    """One Kaggle row from per-task fractions, made cumulative as Kaggle stores them."""
    row = dict.fromkeys(COLS, 0.0)
    row["GalaxyID"] = gid
    row["Class1.1"], row["Class1.2"], row["Class1.3"] = smooth, features, star
    row["Class7.1"], row["Class7.2"], row["Class7.3"] = (smooth * round_, smooth * between,
                                                         smooth * cigar)
    row["Class2.1"], row["Class2.2"] = features * edge_yes, features * (1 - edge_yes)
    reached = features * (1 - edge_yes)
    row["Class4.1"], row["Class4.2"] = reached * spiral_yes, reached * (1 - spiral_yes)
    return row


def table(rows):
    return Table(rows=[[r[c] for c in ["GalaxyID", *COLS]] for r in rows],
                 names=["GalaxyID", *COLS])


def test_rules_use_per_task_fractions_not_cumulative_columns(tmp_path):
    rows = [
        # raw Class7.1 = 0.45 < 0.5, but per-task f_round = 0.9: selected.
        galaxy(1, 0.5, 0.5, round_=0.9, between=0.1),
        galaxy(2, 0.9, 0.1, between=0.8, round_=0.2),
        galaxy(3, 0.9, 0.1, cigar=0.6, between=0.4),
        galaxy(4, 0.1, 0.9, edge_yes=0.7),
        # raw Class4.1 = 0.8*0.9*0.7 = 0.504 < 0.619, per-task 0.7: spiral.
        galaxy(5, 0.2, 0.8, edge_yes=0.1, spiral_yes=0.7),
        galaxy(6, 0.0, 0.0, star=1.0),  # star/artifact: no class; T07 sum 0 -> f = 0
        galaxy(7, 0.5, 0.5, round_=1.0, edge_yes=1.0),  # passes two rules: ambiguous
        galaxy(8, 0.2, 0.8, edge_yes=0.1, spiral_yes=0.5),  # spiral vote too weak
    ]
    path = tmp_path / "training_solutions_rev1.csv"
    table(rows).write(path, format="ascii.csv")
    sol = Table.read(path, format="ascii.csv")
    f = task_fractions(sol)
    assert f["Class7.1"][0] == pytest.approx(0.9) and f["Class4.1"][4] == pytest.approx(0.7)
    out = select_table1(sol, test_fraction=0, val_fraction=0)
    assert dict(zip(out["GalaxyID"], out["label"], strict=True)) == {
        1: "completely_round_smooth", 2: "in_between_smooth", 3: "cigar_shaped_smooth",
        4: "edge_on", 5: "spiral"}
    assert out.meta["ambiguous"] == 1 and set(out["split"]) == {"train"}


def test_stratified_nine_to_one_split_is_seeded():
    rows = [galaxy(i, 0.9, 0.1, round_=0.9) for i in range(200)]
    rows += [galaxy(1000 + i, 0.1, 0.9, edge_yes=0.9) for i in range(50)]
    sol = table(rows)
    out = select_table1(sol)
    for label, n in [("completely_round_smooth", 200), ("edge_on", 50)]:
        split = out["split"][out["label"] == label]
        assert (split == "test").sum() == round(0.1 * n)
        assert (split == "val").sum() == round(0.1 * (n - round(0.1 * n)))
        assert len(split) == n
    again = select_table1(sol)
    assert list(again["split"]) == list(out["split"])
    assert list(select_table1(sol, seed=1)["split"]) != list(out["split"])


def test_missing_columns_are_named():
    sol = table([galaxy(1, 1, 0)])
    sol.remove_column("Class7.3")
    with pytest.raises(UserError, match="Class7.3"):
        select_table1(sol)
    assert np.all(np.isfinite(task_fractions(table([galaxy(1, 0, 0)]))["Class2.1"]))


def test_cli_writes_labels(tmp_path):
    from click.testing import CliRunner

    from astro_morph.cli import cli

    path = tmp_path / "training_solutions_rev1.csv"
    table([galaxy(i, 0.9, 0.1, round_=0.9) for i in range(20)]).write(path, format="ascii.csv")
    res = CliRunner().invoke(cli, ["kaggle-select", str(path), "-o", str(tmp_path / "l.csv")])
    assert res.exit_code == 0, res.output
    assert "20 galaxies (completely_round_smooth 20" in res.output
    labels = Table.read(tmp_path / "l.csv", format="ascii.csv")
    assert labels.colnames == ["GalaxyID", "label", "split"]
    assert (labels["split"] == "test").sum() == 2


def test_unusable_votes_leave_their_galaxy_out_and_repeated_ids_are_refused(tmp_path, caplog):
    rows = [galaxy(i, 0.9, 0.1, round_=0.9) for i in range(6)]
    path = tmp_path / "s.csv"
    table(rows).write(path, format="ascii.csv")
    lines = path.read_text().splitlines()
    lines[2] = lines[2].replace("0.9", "abc", 1)  # galaxy 1: a vote that is not a number
    lines[3] = lines[3].replace("0.9", "", 1)  # galaxy 2: an empty cell
    lines[4] = lines[4].replace("0.9", "-0.9", 1)  # galaxy 3: a negative fraction
    path.write_text("\n".join(lines) + "\n")
    sol = Table.read(path, format="ascii.csv")
    assert sol["Class1.1"].dtype.kind == "U"  # one bad cell makes the column text
    out = select_table1(sol, test_fraction=0, val_fraction=0)
    assert list(out["GalaxyID"]) == [0, 4, 5] and out.meta["invalid"] == 3
    assert "left out 3 galaxies" in caplog.text and "row 1, GalaxyID 1, column Class1.1" \
        in caplog.text
    twice = table([galaxy(7, 0.9, 0.1, round_=0.9), galaxy(7, 0.1, 0.9, edge_yes=0.9)])
    with pytest.raises(UserError, match=r"GalaxyID 7 appears 2 times \(rows 0, 1\)"):
        select_table1(twice)
