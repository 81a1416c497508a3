"""Argument types shared by the benchmark commands: counts and durations that must be
positive (0 galaxies, repeats or seconds would divide by zero or measure nothing)."""

from __future__ import annotations

import argparse


def count(text: str) -> int:
    """A whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1, not {value}")
    return value


def counts(text: str) -> list[int]:
    """Comma-separated whole numbers of at least 1, e.g. catalog sizes or batch sizes."""
    return [count(part) for part in text.split(",") if part.strip()]


def seconds(text: str) -> float:
    """A positive, finite number of seconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, not {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, not {text}")
    return value
