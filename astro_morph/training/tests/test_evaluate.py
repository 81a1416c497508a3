import json

import numpy as np
from astropy.table import Table
from click.testing import CliRunner

from astro_morph.cli import cli
from astro_morph.training.evaluate import evaluate


def test_evaluate_scores_through_classify(tiny_model, image_dir, tmp_path):
    labels = tmp_path / "labels.csv"
    Table({"GalaxyID": [1, 2, 3, 4, 5, 6],
           "label": ["spiral", "elliptical", "spiral", "edge_on", "merger", "unknown"],
           "split": ["test"] * 5 + ["test"]}).write(labels)
    r = evaluate(tiny_model, labels, image_dir, id_column="GalaxyID", png=tmp_path / "cm.png",
                 timing=False, progress=False)
    assert r["n"] == 5 and r["skipped_unknown_label"] == 1 and r["failed_rows"] == 0
    assert np.array(r["confusion"]).sum() == 5 and r["params"] > 0
    assert (tmp_path / "cm.png").read_bytes()[:4] == b"\x89PNG"
    res = CliRunner().invoke(cli, ["evaluate", str(labels), "--image-dir", str(image_dir),
                                   "--model", str(tiny_model), "--id-column", "GalaxyID",
                                   "--json", str(tmp_path / "r.json")])
    assert res.exit_code == 0, res.output
    assert "CPU latency" in res.output
    assert "left out of the scores: 1 labelled with a class the model does not have" \
        in res.output
    assert json.loads((tmp_path / "r.json").read_text())["accuracy"] == r["accuracy"]


def test_a_closed_stdout_does_not_cost_the_json(tiny_model, image_dir, tmp_path):
    """`astromorph evaluate ... --json r.json | head -1`: the file is written before the
    report is printed, so a reader that leaves early does not lose it."""
    import subprocess
    import sys

    labels = tmp_path / "labels.csv"
    Table({"GalaxyID": [1, 2], "label": ["spiral", "elliptical"],
           "split": ["test", "test"]}).write(labels)
    proc = subprocess.Popen(
        [sys.executable, "-m", "astro_morph", "evaluate", str(labels), "--image-dir",
         str(image_dir), "--model", str(tiny_model), "--id-column", "GalaxyID", "--no-timing",
         "--json", str(tmp_path / "r.json")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader is gone before the first line
    # Ended quietly at the first print, with the shell's status for a closed pipe (click's
    # own 1 would read as "user error, nothing written").
    assert proc.wait(timeout=300) == 141
    assert json.loads((tmp_path / "r.json").read_text())["n"] == 2
    with proc.stderr:
        assert b"Traceback" not in proc.stderr.read()


def test_learning_curve_legend_tells_same_named_files_apart():
    from astro_morph.training.evaluate import curve_labels

    assert curve_labels(["r/g3-s0.amz", "r/g3-s1.amz"]) == ["g3-s0", "g3-s1"]
    assert curve_labels(["lr3e-3/g3-s1.amz", "lr3e-4/g3-s1.amz", "x/g3-s2.amz"]) == [
        "lr3e-3/g3-s1", "lr3e-4/g3-s1", "g3-s2"]


def test_learning_curves_wrap_a_long_recipe_title(tmp_path, tiny_model):
    from PIL import Image

    from astro_morph.models.model_file import read_bundle, write_bundle
    from astro_morph.training.evaluate import plot_learning_curves

    bundle = read_bundle(tiny_model)
    bundle.config["provenance"] = {"history": [
        {"epoch": i, "loss": 1.0 - 0.1 * i, "val_accuracy": 0.7 + 0.05 * i,
         "train_accuracy": 0.6, "val_macro_f1": 0.5} for i in range(3)]}
    model = tmp_path / "m.amz"
    write_bundle(bundle, model)
    short = plot_learning_curves([model], tmp_path / "short.png", title="g3: epochs=30")
    teachers = ", ".join(f"'/a/long/path/to/runs/teacher-s{s}.amz'" for s in range(6))
    long = plot_learning_curves([model], tmp_path / "long.png",
                                title=f"g3: epochs=30, teacher=[{teachers}]")
    with Image.open(short) as a, Image.open(long) as b:
        assert a.size[0] == b.size[0]
        assert b.size[1] > a.size[1]  # one more line of title, not a title cut at the edges
