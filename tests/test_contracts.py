"""Plugin contracts (issue 15): options reach the plugin that owns them, one model resolver
serves every run mode, third-party centring steps run end to end, every hook call traces."""

import re
import types
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table
from click.testing import CliRunner

from astro_morph import plugins
from astro_morph.centring.base import CentringStep, Prepared
from astro_morph.centring.crop import crop_resize
from astro_morph.cli import cli
from astro_morph.errors import UserError
from astro_morph.hookspecs import hookimpl

ROOT = Path(__file__).resolve().parent.parent


class Shift(CentringStep):
    """A third-party centring step: crops around a point moved by (dx, dy) pixels."""

    reports_offset = True

    def __init__(self, dx: float = 0.0, dy: float = 0.0) -> None:
        self.dx, self.dy = dx, dy

    def __call__(self, cutout, size):
        if cutout.image is None:
            return Prepared(None, cutout.flags, message=cutout.message)
        h, w = cutout.image.shape[:2]
        centre = ((w - 1) / 2 + self.dx, (h - 1) / 2 + self.dy)
        return Prepared(crop_resize(cutout.image, size, centre=centre), cutout.flags,
                        dx=self.dx, dy=self.dy)


def _plugin(model_file: Path) -> types.ModuleType:
    mod = types.ModuleType("astromorph_contract_fake")

    @hookimpl
    def astromorph_register_centring(register):
        register("shift", Shift, "test: crop around a shifted centre")

    @hookimpl
    def astromorph_register_models(register):
        register("plugin-g0", model_file, "test: a model file registered by a plugin")

    mod.astromorph_register_centring = astromorph_register_centring
    mod.astromorph_register_models = astromorph_register_models
    return mod


@pytest.fixture
def fake(tiny_model):
    plugins.load_plugins()
    mod = _plugin(tiny_model)
    plugins.pm.register(mod, name="astromorph_contract_fake")
    try:
        yield mod
    finally:
        plugins.pm.unregister(name="astromorph_contract_fake")


def test_api_and_pipeline_do_not_probe_plugin_objects():
    for name in ("api.py", "pipeline.py"):
        text = (ROOT / "astro_morph" / name).read_text()
        assert not re.search(r"\b(hasattr|getattr)\(", text), name


def test_centring_options_reach_a_third_party_step_end_to_end(fake, image_dir, tmp_path):
    cat = tmp_path / "c.fits"
    Table({"GalaxyID": [1, 2]}).write(cat)
    res = CliRunner().invoke(cli, ["classify", str(cat), "--image-dir", str(image_dir),
                                   "--model", "plugin-g0", "--centring", "shift",
                                   "--centring-option", "dx=3", "--centring-option",
                                   "dy=-2.5", "-o", str(tmp_path / "o.fits")])
    assert res.exit_code == 0, res.output
    out = Table.read(tmp_path / "o.fits")
    assert list(out["morph_dx"]) == [3.0, 3.0] and list(out["morph_dy"]) == [-2.5, -2.5]
    assert out.meta["MORPHCEN"] == "shift" and out.meta["MORPHMOD"] == "tiny-g0"
    bad = CliRunner().invoke(cli, ["classify", str(cat), "--image-dir", str(image_dir),
                                   "--model", "plugin-g0", "--centring", "shift",
                                   "--centring-option", "ddx=1", "-o", str(tmp_path / "p.fits")])
    assert bad.exit_code == 1
    assert str(bad.exception) == ("centring 'shift' has no option 'ddx' (did you mean 'dx'?); "
                                  "its options: dx, dy")
    typed = CliRunner().invoke(cli, ["classify", str(cat), "--image-dir", str(image_dir),
                                     "--model", "plugin-g0", "--centring", "shift",
                                     "--centring-option", "dx=left", "-o",
                                     str(tmp_path / "q.fits")])
    assert "option dx='left': expected a float" in str(typed.exception)
    for text in ("nan", "-inf"):  # parse as floats, would flag every row later
        nan = CliRunner().invoke(cli, ["classify", str(cat), "--image-dir", str(image_dir),
                                       "--model", "plugin-g0", "--centring", "shift",
                                       "--centring-option", f"dx={text}", "-o",
                                       str(tmp_path / "n.fits")])
        assert nan.exit_code == 1 and not (tmp_path / "n.fits").exists()
        assert f"option dx='{text}': expected a finite number" in str(nan.exception)


@pytest.mark.parametrize("args", [["--lr", "nan"], ["--lr", "0"], ["--lr", "inf"],
                                  ["--label-smoothing", "nan"], ["--mixup", "inf"],
                                  ["--weight-decay", "nan"], ["--weight-decay", "-1"],
                                  ["--sam", "nan"], ["--sam", "-0.05"],
                                  ["--spin-weight", "nan"]])
def test_training_numbers_must_be_finite(tmp_path, args):
    """nan passes click's range checks (comparisons with nan are false); torch's Adam
    raised a traceback for it."""
    (tmp_path / "l.csv").write_text("OBJID,label,split\n1,a,train\n")
    res = CliRunner().invoke(cli, ["train", str(tmp_path / "l.csv"), "--image-dir",
                                   str(tmp_path), "-o", str(tmp_path / "m.amz"), *args])
    assert res.exit_code == 2 and f"Invalid value for '{args[0]}'" in res.output


@pytest.mark.parametrize(("command", "args", "message"), [
    ("train", ["--distill-weight", "0.3"], "--distill-weight does nothing without --teacher"),
    ("compare", ["--pseudo-threshold", "0.8"],
     "--pseudo-threshold does nothing without --pseudo-labels"),
    ("train", ["--spin-weight", "1"], "--spin-weight does nothing without --spin-column"),
    ("compare", ["--spin-values", "S,Z"], "--spin-values does nothing without --spin-column")])
def test_an_option_without_its_partner_is_refused(tmp_path, command, args, message):
    """Set but idle (no teacher, no folder): the run would silently ignore it."""
    (tmp_path / "l.csv").write_text("OBJID,label,split\n1,a,train\n")
    out = ["-o", str(tmp_path / ("m.amz" if command == "train" else "runs"))]
    res = CliRunner().invoke(cli, [command, str(tmp_path / "l.csv"), "--image-dir",
                                   str(tmp_path), *out, *args])
    assert res.exit_code == 1 and message in str(res.exception)
    assert not (tmp_path / "runs").exists()


def test_unbounded_number_options_say_finite_in_their_help():
    res = CliRunner().invoke(cli, ["search", "--help"])
    assert "x<=None" not in res.output and "-0.07; finite]" in res.output


def test_only_options_the_user_set_reach_the_source(image_dir, tiny_model):
    """The source's own defaults apply; a flag meant for another source is an error, and a
    TypeError raised inside a factory is not passed off as a user mistake."""
    import astro_morph
    from astro_morph.sources.galaxyzoo import GalaxyZooSource

    t = Table({"GalaxyID": [1]})
    out = astro_morph.classify(t, image_dir=image_dir, model=tiny_model, id_column=None,
                               ra_column=None)
    assert out["morph_flags"][0] == 0  # None = not set: GalaxyID, the source's default
    with pytest.raises(UserError, match="source 'galaxyzoo' has no option 'ra_column'.*; its "
                                        "options: id_column, image_dir, max_pixels, "
                                        "path_column$"):
        astro_morph.classify(t, image_dir=image_dir, model=tiny_model, ra_column="RA")

    import functools

    @functools.wraps(GalaxyZooSource.__init__)  # same options, a bug inside
    def broken(self, *a, **k):
        raise TypeError("a bug inside the plugin")

    mp = pytest.MonkeyPatch()
    mp.setattr(GalaxyZooSource, "__init__", broken)
    try:
        with pytest.raises(TypeError, match="a bug inside the plugin"):
            astro_morph.classify(t, image_dir=image_dir, model=tiny_model)
    finally:
        mp.undo()


def test_a_factory_must_return_its_roles_contract(image_dir, tiny_model):
    import astro_morph

    mod = types.ModuleType("astromorph_wrong")

    @hookimpl
    def astromorph_register_centring(register):
        register("not-a-step", lambda: (lambda cutout, size: None), "a bare function")

    mod.astromorph_register_centring = astromorph_register_centring
    plugins.load_plugins()
    plugins.pm.register(mod, name="astromorph_wrong")
    try:
        with pytest.raises(TypeError, match="not a astro_morph.centring.base.CentringStep"):
            astro_morph.classify(Table({"GalaxyID": [1]}), image_dir=image_dir,
                                 model=tiny_model, centring="not-a-step")
    finally:
        plugins.pm.unregister(name="astromorph_wrong")


@pytest.mark.slow
def test_a_plugin_model_runs_single_process_under_dask_and_as_train_init(fake, image_dir,
                                                                        tmp_path):
    """One resolver: the name a plugin registered works in every run mode."""
    pytest.importorskip("dask.distributed", reason="dask extra not installed")
    cat = tmp_path / "c.fits"
    Table({"GalaxyID": [1, 2, 3, 404]}).write(cat)
    runs = {}
    for mode, extra in (("single", []), ("dask", ["--dask", "local:2"])):
        res = CliRunner().invoke(cli, ["classify", str(cat), "--image-dir", str(image_dir),
                                       "--model", "plugin-g0", "-o",
                                       str(tmp_path / f"{mode}.fits"), *extra])
        assert res.exit_code == 0, (mode, res.output, res.exception)
        runs[mode] = Table.read(tmp_path / f"{mode}.fits")
    assert runs["single"].meta["MORPHSHA"] == runs["dask"].meta["MORPHSHA"]
    np.testing.assert_array_equal(runs["single"]["morph_prob_spiral"],
                                  runs["dask"]["morph_prob_spiral"])
    # train --init: the registered model's weights, fine-tuned on three labelled images.
    labels = tmp_path / "labels.csv"
    labels.write_text("OBJID,label,split\n1,elliptical,train\n2,spiral,train\n"
                      "3,elliptical,val\n4,spiral,val\n5,spiral,train\n")
    res = CliRunner().invoke(cli, ["train", str(labels), "--image-dir", str(image_dir),
                                   "--init", "plugin-g0", "--epochs", "1", "--batch-size",
                                   "2", "-o", str(tmp_path / "tuned.amz")])
    assert res.exit_code == 0, (res.output, res.exception)
    from astro_morph.models.model_file import read_bundle

    tuned = read_bundle(tmp_path / "tuned.amz")
    assert tuned.config["provenance"]["config"]["init"].endswith("tiny-g0.amz")
    assert tuned.class_names == ["elliptical", "spiral"]


def test_lsdb_resolves_a_plugin_model(fake):
    lsdb = pytest.importorskip("lsdb", reason="lsdb not installed (optional: pip install lsdb)")
    import pandas as pd

    from astro_morph.scaleout import classify_lsdb

    catalog = lsdb.from_dataframe(pd.DataFrame({"ra": [10.0], "dec": [1.0],
                                                "GalaxyID": [1]}))
    lazy = classify_lsdb(catalog, model="plugin-g0", image_dir=".")
    assert "morph_prob_spiral" in lazy.columns


def test_trace_env_var_traces_every_registration_hook(monkeypatch, capsys):
    monkeypatch.setenv("ASTROMORPH_TRACE_PLUGINS", "1")
    monkeypatch.setattr(plugins, "_loaded", False)
    try:
        plugins.get_sources()
        plugins.get_centring_steps()
        plugins.get_models()
    finally:
        if plugins.untrace is not None:
            plugins.untrace()
            monkeypatch.setattr(plugins, "untrace", None)
        plugins.pm.trace.root.setwriter(None)
    err = capsys.readouterr().err
    for hook in ("astromorph_register_sources", "astromorph_register_centring",
                 "astromorph_register_models"):
        assert hook in err, hook
    # One traced call per implementing plugin (builtins included), not one per hook.
    assert err.count("astromorph_register_sources") >= 4



@pytest.mark.parametrize("name", ["cm.txt", "cm"])
@pytest.mark.parametrize("command", ["gallery", "evaluate"])
def test_figure_paths_need_an_image_suffix(tmp_path, command, name):
    """matplotlib raised a traceback for .txt and silently wrote cm.png for cm."""
    (tmp_path / "l.csv").write_text("OBJID,label,split\n1,a,train\n")
    res = CliRunner().invoke(cli, [command, str(tmp_path / "l.csv"), "--png",
                                   str(tmp_path / name)])
    assert res.exit_code == 2 and "cannot tell the image format from the suffix" in res.output
    assert list(tmp_path.iterdir()) == [tmp_path / "l.csv"]


def test_classify_takes_a_dataframe_and_names_what_it_cannot_take(image_dir, tiny_model):
    import astro_morph

    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"GalaxyID": [1, 2], "z": [0.05, 0.1]})
    out = astro_morph.classify(frame, image_dir=image_dir, model=tiny_model,
                               id_column="GalaxyID")
    expected = astro_morph.classify(Table.from_pandas(frame), image_dir=image_dir,
                                    model=tiny_model, id_column="GalaxyID")
    assert isinstance(out, Table) and list(out["z"]) == [0.05, 0.1]
    assert list(out["morph_label"]) == list(expected["morph_label"])
    with pytest.raises(UserError, match="not list"):
        astro_morph.classify([1, 2], image_dir=image_dir, model=tiny_model)


def test_a_step_without_crop_fraction_warns_when_the_model_wants_another_crop(
        fake, image_dir, tiny_model, tmp_path, caplog):
    """A model trained on another crop, run through a third-party step that takes no
    crop_fraction: classified as asked, with a warning naming the crop it will not get."""
    import astro_morph
    from astro_morph.models.model_file import read_bundle, write_bundle

    bundle = read_bundle(tiny_model)
    bundle.config["crop_fraction"] = 0.3
    write_bundle(bundle, tmp_path / "cropped.amz")
    out = astro_morph.classify(Table({"GalaxyID": [1]}), image_dir=image_dir,
                               model=tmp_path / "cropped.amz", centring="shift")
    assert out["morph_flags"][0] == 0
    assert "centring 'shift' has no crop_fraction option: model tiny-g0 was trained on " \
           "centre crops of 0.3 of the image side, which it will not get" in caplog.text
