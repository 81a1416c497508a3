"""astro_morph: galaxy morphology columns for astronomy catalogs.

The public API mirrors the CLI::

    import astro_morph
    out = astro_morph.classify(table, source="galaxyzoo", image_dir="images/",
                               model="model.amz")

Importing this package does not import torch (the CLI starts fast); the classifier backends
import it when they are used.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("astro_morph")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+unknown"

__all__ = ["__version__", "classify", "load_model"]


def __getattr__(name: str):
    # Lazy: keeps `import astro_morph` light.
    if name == "classify":
        from .api import classify

        return classify
    if name == "load_model":
        from .inference.load import load_model

        return load_model
    raise AttributeError(f"module 'astro_morph' has no attribute {name!r}")
