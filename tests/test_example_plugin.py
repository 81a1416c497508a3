"""The separately installable example plugin in plugins/astromorph-npy."""

import contextlib
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table

PLUGIN_DIR = Path(__file__).resolve().parent.parent / "plugins" / "astromorph-npy"
PS1_DIR = PLUGIN_DIR.parent / "astromorph-panstarrs"


@contextlib.contextmanager
def _source_tree_plugin(directory: Path, module: str, name: str):
    """Register an example plugin from its source tree for one test (as if installed)."""
    from astro_morph import plugins

    sys.path.insert(0, str(directory))
    try:
        mod = importlib.import_module(module)
        plugins.load_plugins()
        plugins.pm.register(mod, name=name)
        try:
            yield mod
        finally:
            plugins.pm.unregister(name=name)
    finally:
        sys.path.remove(str(directory))


@pytest.fixture
def npy_plugin():
    with _source_tree_plugin(PLUGIN_DIR, "astromorph_npy", "npy") as mod:
        yield mod


@pytest.fixture
def ps1_plugin():
    with _source_tree_plugin(PS1_DIR, "astromorph_panstarrs", "panstarrs") as mod:
        yield mod


def test_tutorial_plugin_is_under_50_lines():
    lines = (PS1_DIR / "astromorph_panstarrs" / "__init__.py").read_text().splitlines()
    assert len(lines) < 50


def test_classify_with_the_panstarrs_source(ps1_plugin, tiny_model, tmp_path, monkeypatch):
    """The plugin's requests, through a mocked transport; retries and cache come for free."""
    import io

    import requests
    from PIL import Image

    import astro_morph
    from conftest import make_galaxy_image

    buf = io.BytesIO()
    Image.fromarray(make_galaxy_image(64)).save(buf, "JPEG")
    calls = []

    def fake(self, method, url, params=None, **kw):
        calls.append(dict(params))
        resp = requests.Response()
        resp.status_code, resp.url = (503, url) if len(calls) == 1 else (200, url)
        resp._content = buf.getvalue()
        return resp

    monkeypatch.setattr(requests.Session, "request", fake)
    cat = Table({"ra": [202.46958, 999.0], "dec": [47.19526, 0.0]})
    out = astro_morph.classify(cat, source="panstarrs", model=tiny_model, pixels=64,
                               cache_dir=tmp_path, backoff=0, rate=0, progress=False)
    assert list(out["morph_flags"]) == [0, 16]  # the bad RA is flagged, not fatal
    assert len(calls) == 2 and calls[1]["hips"] == "CDS/P/PanSTARRS/DR1/color-z-zg-g"
    assert calls[1]["width"] == "64" and calls[1]["format"] == "jpg"


def test_classify_with_the_npy_source(npy_plugin, tiny_model, tmp_path):
    """The plugin's own option (path) and its own id-column default (idx) from the CLI;
    a misspelled option key is a one-line error naming the valid ones."""
    from click.testing import CliRunner

    from astro_morph.cli import cli

    stack = tmp_path / "stack.npy"
    np.save(stack, np.random.default_rng(0).integers(0, 255, (3, 40, 40, 3), dtype=np.uint8))
    cat = tmp_path / "cat.fits"
    Table({"idx": [2, 0, 7]}).write(cat)
    args = ["classify", str(cat), "--source", "npy", "--model", str(tiny_model), "-o",
            str(tmp_path / "out.fits"), "--overwrite"]
    res = CliRunner().invoke(cli, [*args, "--source-option", f"path={stack}"])
    assert res.exit_code == 0, res.output
    assert list(Table.read(tmp_path / "out.fits")["morph_flags"]) == [0, 0, 4]
    bad = CliRunner().invoke(cli, [*args, "--source-option", f"pth={stack}"])
    assert bad.exit_code == 1 and bad.exception is not None
    assert str(bad.exception) == ("source 'npy' has no option 'pth' (did you mean 'path'?); "
                                  "its options: id_column, path")
    # A flag meant for another source is refused the same way, not silently ignored.
    other = CliRunner().invoke(cli, [*args, "--source-option", f"path={stack}",
                                     "--ra-column", "RA"])
    assert "has no option 'ra_column'" in str(other.exception)


@pytest.mark.slow
def test_installed_plugin_is_listed_via_its_entry_point(tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                    "--no-build-isolation", "--target", str(target), str(PLUGIN_DIR),
                    str(PS1_DIR)],
                   check=True, capture_output=True)
    env = {k: v for k, v in os.environ.items() if k != "ASTROMORPH_LOAD_PLUGINS"}
    env["PYTHONPATH"] = os.pathsep.join([str(target), env.get("PYTHONPATH", "")])
    cmd = [sys.executable, "-m", "astro_morph", "plugins", "--json"]
    info = {e["name"]: e for e in json.loads(
        subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout)}
    assert info["npy"]["sources"] == ["npy"]
    assert info["npy"]["version"] == "astromorph-npy 0.1.0"
    assert info["panstarrs"]["sources"] == ["panstarrs"]
    # ASTROMORPH_LOAD_PLUGINS limits installed plugins: an empty list loads none.
    env["ASTROMORPH_LOAD_PLUGINS"] = ""
    names = [e["name"] for e in json.loads(
        subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout)]
    assert "npy" not in names and "astro_morph.sources.galaxyzoo" in names
    # ... and naming one loads only that one.
    env["ASTROMORPH_LOAD_PLUGINS"] = "panstarrs"
    names = [e["name"] for e in json.loads(
        subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout)]
    assert "panstarrs" in names and "npy" not in names
