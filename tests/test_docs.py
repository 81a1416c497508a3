"""Docs that must follow the code (as datasette's test_docs does for its hooks)."""

from pathlib import Path

import pytest

from astro_morph import hookspecs
from astro_morph.flags import FLAG_DESCRIPTIONS

DOCS = Path(__file__).resolve().parent.parent / "docs"
HOOKS = [n for n in dir(hookspecs) if n.startswith("astromorph_")]


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_documented(hook):
    assert f"### {hook}(" in (DOCS / "plugins.md").read_text()


@pytest.mark.parametrize("flag", list(FLAG_DESCRIPTIONS))
def test_every_flag_is_documented(flag):
    assert f"| {int(flag)} | {flag.name} |" in (DOCS / "columns.md").read_text()


def test_tutorial_plugin_is_under_50_lines():
    src = DOCS.parent / "plugins" / "astromorph-npy" / "astromorph_npy" / "__init__.py"
    assert len(src.read_text().splitlines()) < 50


@pytest.mark.slow
def test_sphinx_builds_without_warnings(tmp_path):
    """The site (Markdown pages, click CLI reference, autodoc API) builds with -W."""
    pytest.importorskip("sphinx_click", reason="docs extras not installed (pip install .[docs])")
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "-m", "sphinx", "-W", "-q", "-b", "html",
                          str(DOCS), str(tmp_path / "html")], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "astromorph-classify-arg-CATALOG" in (tmp_path / "html" / "cli.html").read_text()
