"""scripts/prior_correction.py: the prior-correction row of docs/results.md."""

import pytest

from conftest import load_script


def _script():
    return load_script("prior_correction")


def test_power_zero_is_evaluate_and_a_large_power_picks_the_common_class(
        tmp_path, tiny_model, image_dir):
    from astro_morph.training.evaluate import evaluate

    labels = tmp_path / "labels.csv"
    rows = ["1,spiral,val", "2,elliptical,val", "3,edge_on,val", "4,elliptical,test",
            "5,spiral,test"] + [f"{10 + i},elliptical,train" for i in range(8)] + [
            "30,spiral,train", "31,edge_on,train"]
    labels.write_text("OBJID,label,split\n" + "\n".join(rows) + "\n")
    scores = _script().prior_scores(labels, [str(tiny_model)], str(image_dir), [0.0, 20.0])
    for split in ("val", "test"):
        r = evaluate(str(tiny_model), labels, image_dir, split=split, timing=False)
        assert scores[0.0][split][0] == pytest.approx((r["accuracy"], r["f1_macro"]))
    # 8 ellipticals to 1 of each other class: A = 20 calls every image elliptical.
    assert scores[20.0]["val"][0][0] == pytest.approx(1 / 3)
    assert scores[20.0]["test"][0][0] == pytest.approx(1 / 2)
