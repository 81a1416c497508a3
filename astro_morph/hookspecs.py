"""The hooks astro_morph calls. Builtin plugins implement exactly these, like third-party ones.

Registration hooks receive a ``register`` callable (as llm's ``register_models(register)``):
a plugin calls it once per thing it provides. They are called once, the first time the
registry is needed (see :func:`astro_morph.plugins.load_plugins`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from .centring.base import CentringStep
    from .models.base import Classifier
    from .sources.base import Source

hookspec = pluggy.HookspecMarker("astro_morph")
hookimpl = pluggy.HookimplMarker("astro_morph")


#: ``register(name, factory, description)`` of the sources hook.
RegisterSource = Callable[[str, Callable[..., "Source"], str], None]
#: ``register(name, factory, description)`` of the centring hook.
RegisterCentring = Callable[[str, Callable[..., "CentringStep"], str], None]
#: ``register(name, model_file_or_loader, description)`` of the models hook.
RegisterModel = Callable[[str, "str | os.PathLike | Callable[..., Classifier]", str], None]


@hookspec
def astromorph_register_sources(register: RegisterSource) -> None:
    """Register cutout sources.

    Called once, when the source registry is first used. Call ``register(name, factory,
    description)`` for each source. ``factory`` (usually a subclass of
    :class:`astro_morph.sources.base.Source`) is called as ``factory(**user_options,
    workers=..., draft_side=...)`` and must return a :class:`~astro_morph.sources.base.Source`:
    ``fetch(rows) -> list[Cutout]``, one per row in order, never raising for a bad row (a
    row that raises anyway is flagged ``PREPARE_FAILED``);
    optionally ``check_columns`` and, with ``fuses_prepare = True``, ``fetch_prepared``.
    The user options are the factory's named parameters (``--source-option KEY=VALUE`` and
    the shortcut flags), checked against its signature before the call; an unusable value
    raises :class:`astro_morph.errors.UserError`.
    """


@hookspec
def astromorph_register_centring(register: RegisterCentring) -> None:
    """Register centring/cropping steps.

    Called once, when the centring registry is first used. Call ``register(name, factory,
    description)``; ``factory(**user_options)`` (options checked against its named
    parameters, ``--centring-option KEY=VALUE``) must return a
    :class:`~astro_morph.centring.base.CentringStep`: ``step(cutout, size) -> Prepared``, a
    ``(size, size, 3)`` float32 image in [0, 1] with flags, called from several threads;
    ``reports_offset`` and ``min_input_side(size)`` tell the run about offsets and
    ``--fast-decode``.
    """


@hookspec
def astromorph_register_models(register: RegisterModel) -> None:
    """Register classifier models by name.

    Called once, when the model registry is first used. Call ``register(name, model,
    description)`` where ``model`` is either the path of a model file (``.amz``: then Dask
    workers, LSDB partitions and ``train --init`` can use it too) or a loader
    ``loader(backend=..., device=..., batch_size=...)`` returning a
    :class:`astro_morph.models.base.Classifier` (name, class names, input size, sha256,
    backend, ``predict(images) -> probabilities``). Every ``--model NAME`` goes through one
    resolver, :func:`astro_morph.inference.load.resolve_model`.
    """


@hookspec
def astromorph_output_columns(table: Any, classifier: Any) -> None:
    """Add or transform output columns after a classification run.

    Called once per run on the finished output ``table`` (an :class:`astropy.table.Table`,
    modify it in place) with the ``classifier`` that produced it; every implementation is
    called. Use it for a survey's own naming or derived columns. Return value is ignored.
    """
