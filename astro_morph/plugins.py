"""The plugin manager: builtin plugins, entry points and the registries built from the hooks.

Builtin plugins (``DEFAULT_PLUGINS``) use the same hooks as installed ones. Installed plugins
are loaded from the ``astro_morph`` entry-point group. ``ASTROMORPH_LOAD_PLUGINS`` limits
which installed plugins load (comma-separated distribution or entry-point names; empty string
= none), like llm's ``LLM_LOAD_PLUGINS``. ``ASTROMORPH_TRACE_PLUGINS=1`` prints hook calls.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import pluggy

from . import hookspecs
from .errors import UserError, suggest_names

__all__ = [
    "DEFAULT_PLUGINS",
    "pm",
    "load_plugins",
    "get_sources",
    "get_centring_steps",
    "get_models",
    "list_plugins",
    "Registered",
]

DEFAULT_PLUGINS = (
    "astro_morph.sources.galaxyzoo",
    "astro_morph.sources.fits_mosaic",
    "astro_morph.sources.sdss",
    "astro_morph.sources.legacysurvey",
    "astro_morph.centring.crop",
    "astro_morph.centring.recentre",
    "astro_morph.models.registry",
)

ENTRY_POINT_GROUP = "astro_morph"

pm = pluggy.PluginManager("astro_morph")
pm.add_hookspecs(hookspecs)

_loaded = False
#: Entry-point name -> the distribution that installed it (``astromorph plugins`` shows it).
_dists: dict[str, metadata.Distribution] = {}
# Dask's threaded scheduler (LSDB partitions) calls classify from several threads at once:
# the first caller loads, the others wait for the registry to be complete.
_load_lock = threading.Lock()


def load_plugins() -> None:
    """Register builtin and installed plugins, once (idempotent, never at import time)."""
    global _loaded
    if _loaded:
        return
    with _load_lock:
        if _loaded:
            return
        _load()
        _loaded = True


#: Undoes ASTROMORPH_TRACE_PLUGINS tracing (pluggy's ``enable_tracing`` result), if on.
untrace: Callable[[], None] | None = None


def _load() -> None:
    global untrace
    if os.environ.get("ASTROMORPH_TRACE_PLUGINS") and untrace is None:
        pm.trace.root.setwriter(lambda m: print(m, end="", file=sys.stderr))
        untrace = pm.enable_tracing()
    for module_name in DEFAULT_PLUGINS:
        if pm.get_plugin(module_name) is None:
            pm.register(importlib.import_module(module_name), name=module_name)
    allowed = os.environ.get("ASTROMORPH_LOAD_PLUGINS")
    names = None if allowed is None else {n.strip() for n in allowed.split(",") if n.strip()}
    installed = list(metadata.entry_points(group=ENTRY_POINT_GROUP))
    if names:  # a misspelt name would otherwise load nothing, silently
        known = {ep.name for ep in installed} | {ep.dist.name for ep in installed if ep.dist}
        for name in sorted(names - known):
            logging.getLogger("astro_morph").warning(
                "ASTROMORPH_LOAD_PLUGINS names %r, which no installed plugin is called%s",
                name, suggest_names(name, known) or (
                    f" (installed: {', '.join(sorted(known))})" if known else
                    " (none are installed)"))
    for ep in installed:
        dist = ep.dist.name if ep.dist is not None else ""
        if names is not None and ep.name not in names and dist not in names:
            continue
        if pm.get_plugin(ep.name) is not None or pm.is_blocked(ep.name):
            continue
        try:
            pm.register(ep.load(), name=ep.name)
        except Exception as exc:  # noqa: BLE001 - one broken install must not stop every command
            if pm.get_plugin(ep.name) is not None:  # pluggy names it before checking its hooks
                pm.unregister(name=ep.name)
            logging.getLogger("astro_morph").warning(
                "plugin %r%s failed to load and is skipped (%s: %s); "
                "ASTROMORPH_LOAD_PLUGINS names the plugins to load", ep.name,
                f" from {dist}" if dist else "", type(exc).__name__, " ".join(str(exc).split()))
            continue
        if ep.dist is not None:
            _dists[ep.name] = ep.dist


@dataclass(frozen=True)
class Registered:
    """One thing a plugin registered: its name, factory/loader, description and plugin."""

    name: str
    factory: Callable[..., Any] | Any  # a model may be registered as a model file path
    description: str
    plugin: str


def _collect(hook_name: str) -> dict[str, Registered]:
    load_plugins()
    found: dict[str, Registered] = {}
    hook = getattr(pm.hook, hook_name)
    plugins = [impl.plugin for impl in hook.get_hookimpls()]
    # Implementations come in registration order (builtins first), so a later plugin that
    # registers an existing name replaces the builtin one. Each is called through pluggy
    # (a hook caller limited to that one plugin), so tracing and monitoring see every call
    # and every registration is credited to the plugin that made it.
    for plugin in plugins:
        plugin_name = pm.get_name(plugin) or repr(plugin)

        def register(name: str, factory: Any, description: str = "",
                     _plugin: str = plugin_name) -> None:
            found[name] = Registered(name, factory, description, _plugin)

        others = [p for p in plugins if p is not plugin]
        before = dict(found)
        try:
            pm.subset_hook_caller(hook_name, remove_plugins=others)(register=register)
        except Exception as exc:
            if plugin_name in DEFAULT_PLUGINS:  # our own bug: show it
                raise
            # One broken installed plugin must not stop every command (as when loading):
            # its registrations from this hook are dropped, the rest stand.
            found.clear()
            found.update(before)
            _warn_once(f"plugin {plugin_name!r} raised in {hook_name} and what it registers "
                       f"there is skipped ({type(exc).__name__}: {' '.join(str(exc).split())})"
                       f"; ASTROMORPH_LOAD_PLUGINS names the plugins to load")
    return found


_warned: set[str] = set()


def _warn_once(message: str) -> None:
    """Registries are collected many times per command; say each plugin failure once."""
    if message not in _warned:
        _warned.add(message)
        logging.getLogger("astro_morph").warning("%s", message)


def get_sources() -> dict[str, Registered]:
    """All registered cutout sources, by name."""
    return _collect("astromorph_register_sources")


def get_centring_steps() -> dict[str, Registered]:
    """All registered centring/cropping steps, by name."""
    return _collect("astromorph_register_centring")


def get_models() -> dict[str, Registered]:
    """All registered classifier models, by name."""
    return _collect("astromorph_register_models")


def lookup(kind: str, name: str) -> Registered:
    """Find a registered source/centring/model by name, or raise a one-line UserError."""
    registry = {"source": get_sources, "centring": get_centring_steps, "model": get_models}[kind]()
    if name not in registry:
        known = ", ".join(sorted(registry)) or "none"
        raise UserError(
            f"unknown {kind} {name!r}{suggest_names(name, registry)}; registered: {known}"
        )
    return registry[name]


def list_plugins() -> list[dict[str, Any]]:
    """Each loaded plugin with the hooks it implements and what it registers."""
    from .options import accepted_options

    load_plugins()
    registries = {
        "sources": get_sources(),
        "centring": get_centring_steps(),
        "models": get_models(),
    }
    out = []
    for plugin in pm.get_plugins():
        name = pm.get_name(plugin)
        hooks = sorted(h.name for h in pm.get_hookcallers(plugin) or [])
        entry = {"name": name, "hooks": hooks}
        dist = _distribution_of(plugin)
        if dist:
            entry["version"] = dist
        for key, reg in registries.items():
            provided = sorted(r.name for r in reg.values() if r.plugin == name)
            if provided:
                entry[key] = provided
            if key != "models" and provided:
                entry[f"{key}_options"] = {r: accepted_options(reg[r].factory)
                                           for r in provided}
        out.append(entry)
    return sorted(out, key=lambda e: e["name"])


def _distribution_of(plugin: Any) -> str | None:
    dist = _dists.get(pm.get_name(plugin) or "")
    return f"{dist.metadata['Name']} {dist.version}" if dist is not None else None
