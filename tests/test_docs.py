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
