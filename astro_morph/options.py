"""Plugin options: what a factory accepts, checked before it is called.

A source's or centring step's options are the named parameters of its factory (for a class,
its ``__init__``; a class whose ``__init__`` forwards ``**kwargs`` to its base class also
accepts the base's named parameters). The run's own settings (``workers``, ``draft_side``)
are not user options. Unknown keys are a one-line :class:`~astro_morph.errors.UserError`
listing the valid ones, raised before the factory runs, so a ``TypeError`` from inside a
factory is a bug to report, not a user mistake.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterable
from typing import Any

from .centring.base import CentringStep
from .errors import UserError, suggest_names
from .sources.base import RUN_OPTIONS, Source

__all__ = ["accepted_options", "check_options", "parse_option_pairs", "build_source",
           "build_centring"]

_NAMED = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def _parameters(factory: Callable[..., Any]) -> dict[str, inspect.Parameter] | None:
    """Named parameters of ``factory``, following ``**kwargs`` up a class's bases; ``None``
    when a plain function takes ``**kwargs`` (it then checks its own options)."""
    if inspect.isclass(factory):
        found: dict[str, inspect.Parameter] = {}
        for cls in factory.__mro__:
            init = cls.__dict__.get("__init__")
            if init is None:
                continue
            params = inspect.signature(init).parameters
            for name, p in params.items():
                if p.kind in _NAMED and name != "self":
                    found.setdefault(name, p)
            if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
                return found
        return found
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return None
    return {n: p for n, p in params.items() if p.kind in _NAMED}


def accepted_options(factory: Callable[..., Any]) -> list[str] | None:
    """Option names a user may set on ``factory`` (sorted), or ``None`` for any."""
    params = _parameters(factory)
    if params is None:
        return None
    return sorted(n for n in params if n not in RUN_OPTIONS)


def check_options(factory: Callable[..., Any], options: dict[str, Any], what: str) -> None:
    """Raise a one-line UserError for an option ``factory`` does not take (``what`` names the
    plugin, e.g. ``source 'galaxyzoo'``)."""
    valid = accepted_options(factory)
    if valid is None:
        return
    for key in options:
        if key not in valid:
            raise UserError(f"{what} has no option {key!r}{suggest_names(key, valid)}; its "
                            f"options: {', '.join(valid) or 'none'}")


def _convert(text: str, default: Any, key: str, what: str) -> Any:
    """A KEY=VALUE string as the type of the parameter's default (bool, int, float, str)."""
    if isinstance(default, bool):
        lowered = text.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise UserError(f"{what} option {key}={text!r}: expected true or false")
    for kind in (int, float):
        if isinstance(default, kind):
            try:
                return _finite(kind(text), key, text, what)
            except ValueError:
                raise UserError(f"{what} option {key}={text!r}: expected a "
                                f"{kind.__name__}") from None
    if default is None or default is inspect.Parameter.empty:
        for kind in (int, float):  # no default to go by: numbers as numbers
            try:
                number = kind(text)
            except ValueError:
                continue
            return _finite(number, key, text, what)
    return text


def _finite(number: float, key: str, text: str, what: str) -> float:
    """``nan`` and ``inf`` parse as floats but only ever make every row fail later."""
    if not math.isfinite(number):
        raise UserError(f"{what} option {key}={text!r}: expected a finite number")
    return number


def parse_option_pairs(pairs: Iterable[str], factory: Callable[..., Any], what: str,
                       cli_option: str) -> dict[str, Any]:
    """``("nsigma=3", "deblend=false")`` -> ``{"nsigma": 3.0, "deblend": False}``, typed by the
    factory's parameter defaults and checked against its options."""
    params = _parameters(factory) or {}
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise UserError(f"{cli_option} takes KEY=VALUE, not {pair!r}")
        p = params.get(key)
        out[key] = _convert(value, p.default if p is not None else None, key, what)
    check_options(factory, out, what)
    return out


def build_centring(name: str, options: dict[str, Any] | None = None) -> CentringStep:
    """The registered centring step ``name`` built with ``options`` (checked first)."""
    from .plugins import lookup

    factory = lookup("centring", name).factory
    check_options(factory, options or {}, f"centring {name!r}")
    return _checked(factory(**(options or {})), CentringStep, "centring", name)


def build_source(name: str, options: dict[str, Any] | None = None, *,
                 workers: int | None = None, draft_side: int | None = None) -> Source:
    """The registered source ``name`` built with the user's ``options`` (``None`` values left
    out, so the plugin's defaults apply; checked first) and the run's settings."""
    from .plugins import lookup

    factory = lookup("source", name).factory
    options = {k: v for k, v in (options or {}).items() if v is not None}
    check_options(factory, options, f"source {name!r}")
    return _checked(factory(**options, workers=workers, draft_side=draft_side), Source,
                    "source", name)


def _checked(obj: Any, contract: type, kind: str, name: str) -> Any:
    """A factory's product, checked against its role's contract (a plugin bug otherwise)."""
    if not isinstance(obj, contract):
        raise TypeError(f"{kind} {name!r}: its factory returned {type(obj).__name__}, not a "
                        f"{contract.__module__}.{contract.__name__} (see docs/plugins.md)")
    return obj
