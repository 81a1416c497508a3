"""The shipped default model reproduces the figures recorded in docs/results.md."""

import json
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table

from conftest import shared_data

RECORDED = Path(__file__).resolve().parent.parent / "docs" / "figures" / "default_gz1_test.json"


def test_default_model_is_shipped_small_and_safe():
    from astro_morph.inference.load import model_file as model_path
    from astro_morph.models.model_file import read_bundle
    from astro_morph.models.registry import default_name

    path = model_path("default")
    assert default_name() == "gz1-efficientnet-g3" and path.stat().st_size < 5e6
    bundle = read_bundle(path)  # safetensors + JSON, no pickle
    assert sorted(bundle.class_names) == ["dont_know", "edge_on", "elliptical", "merger",
                                          "spiral"]
    assert bundle.config["provenance"]["config"]["arch"] == "efficientnet-g3"


@pytest.mark.slow
def test_classify_without_model_reproduces_the_reported_test_accuracy(tmp_path):
    from click.testing import CliRunner

    from astro_morph.cli import cli

    data = shared_data("gz1")
    labels = Table.read(data / "labels.csv", format="ascii.csv")
    test = labels[labels["split"] == "test"]
    cat = tmp_path / "gz1_test.fits"
    test.write(cat)
    out = tmp_path / "out.fits"
    res = CliRunner().invoke(cli, ["classify", str(cat), "--image-dir", str(data / "images"),
                                   "--id-column", "OBJID", "-o", str(out), "--no-progress"])
    assert res.exit_code == 0, res.output
    t = Table.read(out)
    assert (t["morph_flags"] == 0).all() and t.meta["MORPHMOD"] == "gz1-efficientnet-g3"
    accuracy = float(np.mean(np.asarray(t["morph_label"]).astype(str)
                             == np.asarray(t["label"]).astype(str)))
    recorded = json.loads(RECORDED.read_text())
    assert recorded["n"] == len(t) == 667
    assert accuracy == pytest.approx(recorded["accuracy"], abs=1e-9)
