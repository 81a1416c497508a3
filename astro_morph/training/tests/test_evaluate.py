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
    assert json.loads((tmp_path / "r.json").read_text())["accuracy"] == r["accuracy"]
