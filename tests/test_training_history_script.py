"""scripts/training_history.py: the learning-curve figures docs/results.md quotes."""

from conftest import load_script


def _script():
    return load_script("training_history")


def _with_history(tiny_model, path):
    from astro_morph.models.model_file import read_bundle, write_bundle

    bundle = read_bundle(tiny_model)
    val, train_acc = [0.70, 0.85, 0.80, 0.82, 0.81], [0.6, 0.7, 0.75, 0.8, 0.78]
    bundle.config["provenance"] = {"history": [
        {"epoch": i, "loss": 1.0 - 0.1 * i, "val_accuracy": v, "train_accuracy": t}
        for i, (v, t) in enumerate(zip(val, train_acc, strict=True))]}
    write_bundle(bundle, path)
    return path


def test_summary_reads_best_epoch_and_last_epochs(tmp_path, tiny_model):
    path = _with_history(tiny_model, tmp_path / "m.amz")
    line = _script().summary(path, last=3)
    assert "5 epochs; best val 0.8500 at epoch 2;" in line
    assert "last 3: val 0.8000-0.8200, train accuracy 0.750-0.800, loss 0.800 -> 0.600" in line
    assert "no training history" in _script().summary(tiny_model, last=3)
    assert "winding" not in line


def test_summary_lists_the_val_winding_accuracy_of_a_spin_run(tmp_path, tiny_model):
    from astro_morph.models.model_file import read_bundle, write_bundle

    bundle = read_bundle(_with_history(tiny_model, tmp_path / "plain.amz"))
    for h, v in zip(bundle.config["provenance"]["history"], [0.5, 0.52, 0.7, 0.81, 0.8],
                    strict=True):
        h["val_spin_accuracy"] = v
    path = tmp_path / "m.amz"
    write_bundle(bundle, path)
    assert _script().summary(path, last=3).endswith(
        "; val winding accuracy per epoch: 0.50 0.52 0.70 0.81 0.80")


def test_png_draws_the_learning_curves_of_the_models(tmp_path, tiny_model, monkeypatch, capsys):
    import sys

    from PIL import Image

    models = [_with_history(tiny_model, tmp_path / f"m{i}.amz") for i in range(2)]
    png = tmp_path / "curve.png"
    monkeypatch.setattr(sys, "argv", ["training_history.py", *map(str, models), "--png",
                                      str(png), "--title", "g3: lr=0.003"])
    _script().main()
    assert f"wrote {png}" in capsys.readouterr().out
    with Image.open(png) as image:
        assert image.size[0] > 1000  # compare's three-panel figure
