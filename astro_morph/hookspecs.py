"""The hooks astro_morph calls. Builtin plugins implement exactly these, like third-party ones.

Registration hooks receive a ``register`` callable (as llm's ``register_models(register)``):
a plugin calls it once per thing it provides. They are called once, the first time the
registry is needed (see :func:`astro_morph.plugins.load_plugins`).
"""

from __future__ import annotations

from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("astro_morph")
hookimpl = pluggy.HookimplMarker("astro_morph")


@hookspec
def astromorph_register_sources(register: Any) -> None:
    """Register cutout sources.

    Called once when the source registry is first used. Call
    ``register(name, factory, description)`` for each source. ``factory(**options)`` returns an
    object with ``fetch(rows: astropy.table.Table) -> list[Cutout]`` (one
    :class:`astro_morph.sources.Cutout` per row, in row order, with an image or a flag; never
    raising for a bad row). Options come from the CLI/API (``image_dir``, ``id_column``, ...);
    a factory raises :class:`astro_morph.errors.UserError` for unusable options.
    """


@hookspec
def astromorph_register_centring(register: Any) -> None:
    """Register centring/cropping steps.

    Called once when the centring registry is first used. Call
    ``register(name, factory, description)``; ``factory(**options)`` returns a callable
    ``step(cutout, size) -> Prepared`` turning one cutout into a ``(size, size, 3)`` float32
    image in [0, 1] plus the re-centring offset and flags (see :mod:`astro_morph.centring`).
    """


@hookspec
def astromorph_register_models(register: Any) -> None:
    """Register classifier models by name.

    Called once when the model registry is first used. Call
    ``register(name, loader, description)``; ``loader(backend=..., device=..., batch_size=...)``
    returns a :class:`astro_morph.models.Classifier` (class names, input size and
    ``predict(images) -> probabilities``). ``--model PATH`` loads a model file directly and
    does not go through this registry.
    """


@hookspec
def astromorph_output_columns(table: Any, classifier: Any) -> None:
    """Add or transform output columns after a classification run.

    Called once per run on the finished output ``table`` (an :class:`astropy.table.Table`,
    modify it in place) with the ``classifier`` that produced it; every implementation is
    called. Use it for a survey's own naming or derived columns. Return value is ignored.
    """
