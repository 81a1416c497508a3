"""Builtin plugin: registers the model files shipped in ``astro_morph/default_models``.

Each ``<name>.amz`` there is registered as ``<name>`` (as a model file, so Dask workers and
``train --init`` can use it); the one named in ``DEFAULT.txt`` (or the only one) is also
registered as ``default``.
"""

from __future__ import annotations

from pathlib import Path

from ..hookspecs import hookimpl

MODELS_DIR = Path(__file__).resolve().parent.parent / "default_models"


def shipped_models() -> dict[str, Path]:
    """Name -> path of every model file in the package."""
    return {p.name[: -len(".amz")]: p for p in sorted(MODELS_DIR.glob("*.amz"))}


def default_name() -> str | None:
    """The shipped model that ``default`` names, if any."""
    models = shipped_models()
    default_file = MODELS_DIR / "DEFAULT.txt"
    default = default_file.read_text().strip() if default_file.is_file() else None
    if default is None and len(models) == 1:
        default = next(iter(models))
    return default if default in models else None


@hookimpl
def astromorph_register_models(register):
    models = shipped_models()
    for name, path in models.items():
        register(name, path, f"shipped model file {path.name}")
    default = default_name()
    if default is not None:
        register("default", models[default], f"alias of {default}")
