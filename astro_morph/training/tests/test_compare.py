import json

import pytest

from astro_morph.errors import UserError
from astro_morph.training.compare import compare, markdown_table, parse_arch_spec
from conftest import shared_data


def test_parse_arch_spec():
    assert parse_arch_spec("efficientnet-b0@64") == ("efficientnet-b0", 64)
    assert parse_arch_spec("efficientnet-g2") == ("efficientnet-g2", None)
    with pytest.raises(UserError, match="size in pixels"):
        parse_arch_spec("efficientnet-b0@big")


def test_unknown_arch_fails_before_training(tmp_path):
    with pytest.raises(UserError):
        compare("x.csv", tmp_path, ["efficientnet-g0", "resnet-9000"], tmp_path)


@pytest.mark.slow
def test_compare_trains_scores_tabulates_and_reuses(tmp_path, monkeypatch):
    data = shared_data("gz1")
    args = (data / "labels.csv", data / "images", ["efficientnet-g0", "mobilenet-v2@32"],
            tmp_path)
    kw = dict(epochs=1, limit=64, batch_size=32, lr=1e-3, progress=False,
              classes=["elliptical", "spiral", "edge_on", "merger", "dont_know"])
    reports = compare(*args, **kw)
    table = markdown_table(reports).splitlines()
    assert len(table) == 4 and table[2].startswith("| efficientnet-g0 | 32 |")
    assert table[3].startswith("| mobilenet-v2@32 | 32 |")
    saved = json.loads((tmp_path / "mobilenet-v2-32.json").read_text())
    assert saved["n"] == reports[1]["n"] > 600
    assert (tmp_path / "efficientnet-g0_confusion.png").stat().st_size > 0
    # A rerun reuses the model files: nothing is trained again.
    monkeypatch.setattr("astro_morph.training.train.train",
                        lambda *a, **k: pytest.fail("retrained"))
    again = compare(*args, **kw)
    assert [r["accuracy"] for r in again] == [r["accuracy"] for r in reports]
