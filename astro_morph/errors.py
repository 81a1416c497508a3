"""Exceptions that the CLI turns into a one-line message (no traceback unless ``--debug``)."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

import click

__all__ = ["AstroMorphError", "ExitStatus", "UserError", "first_line", "suggest_names",
           "some_values", "refuse_repeats", "run_script", "torch_out_of_memory"]

#: Exit statuses of the ``astromorph`` command (docs/bad_input.md).
EXIT_OK, EXIT_USER_ERROR, EXIT_USAGE, EXIT_NOTHING_CLASSIFIED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
#: stdout closed before the command finished printing (``| head``): 128 + SIGPIPE, what a
#: shell reports for a tool the closed pipe stopped.
EXIT_PIPE_CLOSED = 141


class AstroMorphError(Exception):
    """Base class of astro_morph's own errors."""


class UserError(AstroMorphError):
    """Bad input from the user: a file, row, column or option. Shown as one line."""


class ExitStatus(click.ClickException):
    """End the command with status ``code`` after printing the message as one line (the
    output, if any, is already written): no row could be classified, or an interrupted run.
    A click exception, so ``astromorph`` and click's test runner both exit with ``code``."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.exit_code = code

    def show(self, file=None) -> None:
        prefix = "" if self.exit_code == EXIT_INTERRUPTED else "Error: "
        click.echo(f"{prefix}{self.format_message()}", err=True, file=file)


def first_line(exc: BaseException) -> str:
    """An exception's message cut to its first line (its type name when it has none), for
    one-line errors about files written by other tools."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    # wcslib prefixes its reason with where in its C source it failed: skip those lines.
    said = [line for line in lines if not _C_LOCATION.match(line)] or lines
    return said[0] if said else type(exc).__name__


_C_LOCATION = re.compile(r"ERROR \d+ in \w+\(\) at line \d+ of file \S+:?$")


def torch_out_of_memory(exc: BaseException) -> bool:
    """torch's allocator failing, which it raises as a RuntimeError: on the CPU "can't
    allocate memory", on CUDA "out of memory" (``torch.OutOfMemoryError``)."""
    text = str(exc).lower()
    return "can't allocate memory" in text or "out of memory" in text


def suggest_names(name: str, candidates: Iterable[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest candidates to ``name``, or ``""``."""
    candidates = list(candidates)
    lower = {c.lower(): c for c in candidates}
    close = difflib.get_close_matches(name.lower(), list(lower), n=3, cutoff=0.6)
    if not close:
        return ""
    return " (did you mean " + " or ".join(repr(lower[c]) for c in close) + "?)"


def some_values(values: Iterable[str], quote: bool = False, limit: int = 8) -> str:
    """The distinct non-blank ``values``, sorted, the first ``limit`` joined by commas (then
    `` ...``), for an error that says what a column does hold; ``""`` when there are none."""
    held = sorted(set(values) - {""})
    shown = ", ".join(repr(v) if quote else v for v in held[:limit])
    return shown + (" ..." if len(held) > limit else "")


def refuse_repeats(values: Iterable[object], option: str) -> None:
    """A one-line error naming the values ``option`` gives more than once: one run listed
    twice would be counted twice (a seed in a spread, an architecture in a table)."""
    values = list(values)
    repeated = sorted({v for v in values if values.count(v) > 1}, key=str)
    if repeated:
        raise UserError(f"{option} repeats {', '.join(map(str, repeated))}")


def check_option(ok: bool, what: str, key: str, value: object, expected: str) -> None:
    """One line for a plugin option out of its range (``what`` names the plugin, e.g.
    ``source 'sdss'``): set through the API or ``--source-option``, a zero or negative count
    would otherwise divide by zero or flag every row for a reason far from the cause."""
    if not ok:
        raise UserError(f"{what} option {key}={value!r}: expected {expected}")


def whole_number(what: str, value: object, low: int) -> int | None:
    """``value`` as an ``int`` (numpy integers too), ``None`` kept; anything else, or below
    ``low``, is one line: ``<what> must be a whole number >= <low>, not <value>``. For API
    callers, who skip the CLI's click ranges."""
    from numbers import Integral

    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, Integral) or value < low:
        raise UserError(f"{what} must be a whole number >= {low}, not {value!r}")
    return int(value)


def run_script(main) -> None:
    """Run a ``scripts/*.py`` entry point as ``astromorph`` runs a command: a
    :class:`UserError` (a missing or foreign file) ends it with one ``Error:`` line on stderr
    and status 1, not a traceback."""
    import sys

    try:
        main()
    except UserError as err:
        print(f"Error: {err}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
