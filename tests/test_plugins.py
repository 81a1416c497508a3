"""A small third-party plugin (fake source + fake model) registered through the public hooks."""

import json
import logging
import sys
import types

import numpy as np
import pytest
from astropy.table import Table
from click.testing import CliRunner

from astro_morph import hookspecs, plugins
from astro_morph.cli import cli
from astro_morph.flags import MorphFlag
from astro_morph.hookspecs import hookimpl
from astro_morph.sources.base import Cutout, Source


class FakeSource(Source):
    """Makes a flat image per row (one corner pixel off, outside the crop, so it is not
    blank); rows with ``bad`` set are flagged missing."""

    def __init__(self, brightness_column: str = "brightness", *, workers=None,
                 draft_side=None):
        super().__init__(workers=workers, draft_side=draft_side)
        self.column = brightness_column

    def fetch(self, rows):
        out = []
        for row in rows:
            if "bad" in rows.colnames and row["bad"]:
                out.append(Cutout(None, MorphFlag.IMAGE_MISSING, f"fake source: no {row['name']}"))
            else:
                img = np.full((40, 40, 3), float(row[self.column]), np.float32)
                img[0, 0] = 0
                out.append(Cutout(img))
        return out


class FakeModel:
    """Predicts 'bright' with probability equal to the mean pixel value."""

    name = "fake-model"
    class_names = ["bright", "dark"]
    input_size = 8
    sha256 = "0" * 64
    backend = "fake"

    def predict(self, images):
        p = images.mean(axis=(1, 2, 3)).astype(np.float32)
        return np.stack([p, 1 - p], axis=1)


fake_plugin = types.ModuleType("astromorph_fake")


@hookimpl
def astromorph_register_sources(register):
    register("fake", FakeSource, "test source")


@hookimpl
def astromorph_register_models(register):
    register("fake-model", lambda **kw: FakeModel(), "test model")


@hookimpl
def astromorph_output_columns(table, classifier):
    table["is_bright"] = table["morph_label"].filled("") == "bright"


fake_plugin.astromorph_register_sources = astromorph_register_sources
fake_plugin.astromorph_register_models = astromorph_register_models
fake_plugin.astromorph_output_columns = astromorph_output_columns


@pytest.fixture
def fake():
    plugins.load_plugins()
    plugins.pm.register(fake_plugin, name="astromorph_fake")
    sys.modules["astromorph_fake"] = fake_plugin
    try:
        yield
    finally:
        plugins.pm.unregister(name="astromorph_fake")
        sys.modules.pop("astromorph_fake", None)


def test_every_hook_has_a_docstring_and_impls_match_specs(fake):
    for name in dir(hookspecs):
        if name.startswith("astromorph_"):
            assert len(getattr(hookspecs, name).__doc__.strip()) > 40, name
    plugins.pm.check_pending()


def test_builtins_use_the_same_hooks():
    names = {e["name"]: e for e in plugins.list_plugins()}
    assert set(plugins.DEFAULT_PLUGINS) <= set(names)
    assert names["astro_morph.sources.galaxyzoo"]["sources"] == ["galaxyzoo"]
    assert set(plugins.get_centring_steps()) >= {"centre-crop", "recentre"}


def test_a_plugin_whose_register_hook_raises_is_skipped(caplog):
    """One broken installed plugin must not stop every command: what it registers in the
    failing hook is dropped (even what it registered before raising), with one warning."""

    class Broken:
        @hookimpl
        def astromorph_register_sources(self, register):
            register("galaxyzoo", FakeSource, "would replace the builtin")
            raise RuntimeError("boom\nat import")

    plugins.load_plugins()
    plugins.pm.register(Broken(), name="astromorph_broken")
    try:
        with caplog.at_level("WARNING", logger="astro_morph"):
            first, second = plugins.get_sources(), plugins.get_sources()
    finally:
        plugins.pm.unregister(name="astromorph_broken")
    for sources in (first, second):
        assert sources["galaxyzoo"].plugin == "astro_morph.sources.galaxyzoo"
    warned = [r.getMessage() for r in caplog.records if "astromorph_broken" in r.getMessage()]
    assert warned == ["plugin 'astromorph_broken' raised in astromorph_register_sources and "
                      "what it registers there is skipped (RuntimeError: boom at import); "
                      "ASTROMORPH_LOAD_PLUGINS names the plugins to load"]


def test_classify_with_a_fake_plugin(fake):
    import astro_morph

    t = Table({"name": ["a", "b", "c"], "brightness": [0.9, 0.2, 0.5], "bad": [0, 0, 1]})
    out = astro_morph.classify(t, source="fake", model="fake-model", progress=False)
    assert list(out["morph_label"][:2]) == ["bright", "dark"] and out["morph_label"].mask[2]
    np.testing.assert_allclose(out["morph_prob_bright"][:2], [0.9, 0.2], atol=1e-6)
    assert np.isnan(out["morph_prob_bright"][2])
    assert list(out["morph_flags"]) == [0, 0, MorphFlag.IMAGE_MISSING]
    assert list(out["is_bright"]) == [True, False, False]  # astromorph_output_columns ran
    assert out.meta["MORPHMOD"] == "fake-model" and out.meta["MORPHSRC"] == "fake"
    assert out.colnames[:3] == ["name", "brightness", "bad"]
    assert "morph_label" not in t.colnames  # input untouched


def test_plugins_command_lists_the_fake_plugin(fake):
    result = CliRunner().invoke(cli, ["plugins", "--json"])
    assert result.exit_code == 0, result.output
    info = {e["name"]: e for e in json.loads(result.output)}
    assert info["astromorph_fake"]["sources"] == ["fake"]
    assert info["astromorph_fake"]["models"] == ["fake-model"]
    assert "astromorph_output_columns" in info["astromorph_fake"]["hooks"]


def test_unknown_source_suggests(fake):
    import astro_morph
    from astro_morph.errors import UserError

    with pytest.raises(UserError, match="unknown source 'fak'.*did you mean 'fake'"):
        astro_morph.classify(Table({"a": [1]}), source="fak", model="fake-model")


def test_load_plugins_env_var_limits_entry_points(monkeypatch, caplog):
    """ASTROMORPH_LOAD_PLUGINS names the entry points to load; others are skipped."""
    from importlib import metadata

    loaded = []

    class EP:
        def __init__(self, name):
            self.name, self.dist = name, None

        def load(self):
            loaded.append(self.name)
            return types.ModuleType(self.name)

    monkeypatch.setattr(metadata, "entry_points", lambda group: [EP("one"), EP("two")])
    monkeypatch.setattr(plugins, "_loaded", False)
    monkeypatch.setenv("ASTROMORPH_LOAD_PLUGINS", "two,tow")
    try:
        with caplog.at_level(logging.WARNING, "astro_morph"):
            plugins.load_plugins()
        assert loaded == ["two"] and plugins.pm.get_plugin("two") is not None
        # A misspelt name loads nothing; it is said, with the closest installed name.
        assert caplog.messages == ["ASTROMORPH_LOAD_PLUGINS names 'tow', which no installed "
                                   "plugin is called (did you mean 'two'?)"]
    finally:
        if plugins.pm.get_plugin("two") is not None:
            plugins.pm.unregister(name="two")


def test_a_broken_installed_plugin_is_skipped_with_a_warning(monkeypatch, caplog):
    """An entry point whose import fails, or whose hook has the wrong arguments, costs only
    that plugin: the others load and every command still runs (pluggy's loader stopped at
    the first failure, with a traceback)."""
    from importlib import metadata

    good = types.ModuleType("good")

    class Wrong:
        @hookimpl
        def astromorph_register_sources(self, register, surplus):  # not the spec's arguments
            pass

    class Dist:
        name, version, metadata = "astromorph-good", "1.2", {"Name": "astromorph-good"}

    class EP:
        def __init__(self, name, target, dist=None):
            self.name, self.target, self.dist = name, target, dist

        def load(self):
            if isinstance(self.target, Exception):
                raise self.target
            return self.target

    monkeypatch.setattr(metadata, "entry_points", lambda group: [
        EP("missing-dep", ImportError("No module named 'cv2'")), EP("wrong", Wrong()),
        EP("good", good, Dist())])
    monkeypatch.setattr(plugins, "_loaded", False)
    monkeypatch.delenv("ASTROMORPH_LOAD_PLUGINS", raising=False)
    try:
        plugins.load_plugins()
        assert plugins.pm.get_plugin("good") is good
        assert plugins.pm.get_plugin("missing-dep") is None
        assert plugins.pm.get_plugin("wrong") is None  # pluggy had named it before checking
        assert "plugin 'missing-dep' failed to load and is skipped (ImportError: No module " \
               "named 'cv2')" in caplog.text
        assert "plugin 'wrong' failed to load" in caplog.text and "surplus" in caplog.text
        entry = next(e for e in plugins.list_plugins() if e["name"] == "good")
        assert "astromorph-good 1.2" in json.dumps(entry)
    finally:
        for name in ("good", "wrong"):
            if plugins.pm.get_plugin(name) is not None:
                plugins.pm.unregister(name=name)


def test_cli_prints_loader_warnings_as_warning_lines():
    """Warnings outside a command's row reporting (plugin loading) get the same
    ``warning:`` prefix, once, instead of logging's bare last-resort line."""
    import os
    import subprocess

    env = dict(os.environ, ASTROMORPH_LOAD_PLUGINS="astromorph-nothing")
    res = subprocess.run([sys.executable, "-m", "astro_morph", "plugins"], env=env,
                         capture_output=True, text=True)
    assert res.returncode == 0
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "warning: ASTROMORPH_LOAD_PLUGINS names 'astromorph-nothing', which no installed "
        "plugin is called")
