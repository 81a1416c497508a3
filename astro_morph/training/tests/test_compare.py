import json

import pytest

from astro_morph.errors import UserError
from astro_morph.training.compare import compare, markdown_table, parse_arch_spec, recipe_title
from conftest import shared_data


def test_parse_arch_spec():
    assert parse_arch_spec("efficientnet-b0@64") == ("efficientnet-b0", 64)
    assert parse_arch_spec("efficientnet-g2") == ("efficientnet-g2", None)
    for bad in ("big", "0", "7", "1025"):  # train's --resolution range, 8-1024
        with pytest.raises(UserError, match="size of 8-1024 pixels"):
            parse_arch_spec(f"efficientnet-b0@{bad}")
    assert parse_arch_spec("efficientnet-b0@8") == ("efficientnet-b0", 8)


def test_recipe_title_leaves_out_settings_that_do_nothing():
    base = {"epochs": 30, "distill_weight": 0.5, "pseudo_threshold": 0.9, "ema": 0.0}
    assert recipe_title(base) == "epochs=30"
    assert recipe_title({**base, "teacher": ["t.amz"], "ema": 0.998}) == (
        "epochs=30, distill_weight=0.5, ema=0.998, teacher=['t.amz']")
    assert recipe_title({**base, "colour_jitter": True}) == "epochs=30"
    assert recipe_title({**base, "colour_jitter": False}) == "epochs=30, colour_jitter=False"
    assert recipe_title({**base, "mixup": 0.0}) == "epochs=30"
    assert recipe_title({**base, "mixup": 0.2}) == "epochs=30, mixup=0.2"
    assert recipe_title({**base, "sam": 0.0}) == "epochs=30"
    assert recipe_title({**base, "sam": 0.05}) == "epochs=30, sam=0.05"
    assert recipe_title({**base, "crop_fraction": None}) == "epochs=30"  # the paper's
    assert recipe_title({**base, "crop_fraction": 0.33}) == "epochs=30, crop_fraction=0.33"
    spin = {"spin_values": ["spiral_cw", "spiral_acw"], "spin_weight": 0.5}
    assert recipe_title({**base, **spin}) == "epochs=30"
    assert recipe_title({**base, "spin_column": "gz1_class", **spin}) == (
        "epochs=30, spin_column=gz1_class, spin_values=['spiral_cw', 'spiral_acw'], "
        "spin_weight=0.5")


def test_unknown_arch_fails_before_training(tmp_path):
    with pytest.raises(UserError):
        compare("x.csv", tmp_path, ["efficientnet-g0", "resnet-9000"], tmp_path)


@pytest.mark.slow
def test_compare_trains_scores_tabulates_and_reuses(tmp_path, monkeypatch):
    data = shared_data("gz1")
    args = (data / "labels.csv", data / "images", ["efficientnet-g0", "mobilenet-v2@32"],
            tmp_path)
    kw = dict(epochs=1, limit=64, batch_size=32, lr=1e-3, progress=False, seeds=[0, 1],
              classes=["elliptical", "spiral", "edge_on", "merger", "dont_know"])
    reports = compare(*args, **kw)
    table = markdown_table(reports).splitlines()
    assert len(table) == 4 and table[2].startswith("| efficientnet-g0 | 32 |")
    assert table[3].startswith("| mobilenet-v2@32 | 32 |") and " ± " in table[3]
    saved = json.loads((tmp_path / "mobilenet-v2-32.json").read_text())
    assert saved["test"]["n"] == 667 and len(saved["runs"]) == 2
    acc = saved["test"]["accuracy"]
    assert acc["mean"] == pytest.approx(sum(acc["values"]) / 2)
    lo, hi = saved["test_accuracy_ci95"]
    assert lo < acc["mean"] < hi
    # Every seed's model file is kept, so any row can be re-evaluated.
    assert (tmp_path / "efficientnet-g0-s0.amz").is_file()
    assert (tmp_path / "efficientnet-g0-s1.amz").is_file()
    assert (tmp_path / "efficientnet-g0-s1_confusion.png").stat().st_size > 0
    # A rerun reuses the model files: nothing is trained again.
    monkeypatch.setattr("astro_morph.training.train.train",
                        lambda *a, **k: pytest.fail("retrained"))
    again = compare(*args, **kw)
    assert [r["test"]["accuracy"] for r in again] == [r["test"]["accuracy"] for r in reports]


def test_wilson_interval_and_summary_statistics():
    from astro_morph.training.compare import summarise, wilson_interval

    lo, hi = wilson_interval(0.85, 667)
    assert 0.82 < lo < 0.85 < hi < 0.88
    assert wilson_interval(1.0, 10)[1] == pytest.approx(1.0)
    per_class = {"a": {"precision": 1.0, "recall": 0.5, "f1": 0.6}}
    runs = [{"seed": s, "model": f"m{s}",
             "val": {"accuracy": a, "f1_macro": a, "f1_weighted": a, "precision_weighted": a,
                     "recall_weighted": a, "ece": 0.01, "n": 100},
             "test": {"accuracy": a, "f1_macro": a, "f1_weighted": a, "precision_weighted": a,
                      "recall_weighted": a, "ece": 0.02, "n": 200, "per_class": per_class}}
            for s, a in ((0, 0.8), (1, 0.9))]
    out = summarise(runs)
    assert out["test"]["accuracy"]["mean"] == pytest.approx(0.85)
    assert out["test"]["accuracy"]["std"] == pytest.approx(0.0707, abs=1e-4)  # ddof=1
    assert out["test_per_class"]["a"]["recall"]["mean"] == 0.5


# These hand-made model files carry no training history, so the learning-curve plot is empty.
@pytest.mark.filterwarnings("ignore:No artists with labels found")
def test_compare_reports_what_pseudo_labels_added(tmp_path):
    # A kept model file is not retrained; its provenance's pseudo-label counts reach the
    # per-seed report, so the numbers in docs come from the run's own JSON.
    import torch

    from astro_morph.inference.deploy import export_onnx
    from astro_morph.models.arch import G0
    from astro_morph.models.efficientnet_g import build_model
    from astro_morph.models.model_file import write_bundle
    from astro_morph.models.torch_io import bundle_from_network

    data = shared_data("gz1")
    classes = ["elliptical", "spiral", "edge_on", "merger", "dont_know"]
    stats = {"images": 10, "kept": 4, "kept_per_class": {c: 0 for c in classes}}
    torch.manual_seed(0)
    for seed, prov in ((0, {"pseudo_labels": stats}), (1, {})):
        bundle = bundle_from_network(build_model(G0, 5).eval(), "efficientnet-g0", classes,
                                     provenance=prov)
        bundle.onnx = export_onnx(bundle)
        write_bundle(bundle, tmp_path / f"efficientnet-g0-s{seed}.amz")
    compare(data / "labels.csv", data / "images", ["efficientnet-g0"], tmp_path,
            classes=classes, progress=False, seeds=[0, 1])
    assert json.loads((tmp_path / "efficientnet-g0-s0.json").read_text())["pseudo_labels"] == stats
    assert "pseudo_labels" not in json.loads((tmp_path / "efficientnet-g0-s1.json").read_text())
