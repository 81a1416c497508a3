"""Exceptions that the CLI turns into a one-line message (no traceback unless ``--debug``)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["AstroMorphError", "UserError", "suggest_names"]


class AstroMorphError(Exception):
    """Base class of astro_morph's own errors."""


class UserError(AstroMorphError):
    """Bad input from the user: a file, row, column or option. Shown as one line."""


def suggest_names(name: str, candidates: Iterable[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest candidates to ``name``, or ``""``."""
    candidates = list(candidates)
    lower = {c.lower(): c for c in candidates}
    close = difflib.get_close_matches(name.lower(), list(lower), n=3, cutoff=0.6)
    if not close:
        return ""
    return " (did you mean " + " or ".join(repr(lower[c]) for c in close) + "?)"
