"""Resolve ``--model NAME|PATH`` and ``--backend`` to a :class:`Classifier`."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import UserError
from ..models.base import Classifier
from ..models.model_file import read_bundle

__all__ = ["BACKENDS", "load_model", "classifier_from_file"]

BACKENDS = ("onnx", "torch")


def classifier_from_file(path: str | os.PathLike, backend: str = "onnx", device: str = "cpu",
                         batch_size: int | None = None) -> Classifier:
    """Load a model file with the chosen backend."""
    bundle = read_bundle(path)
    if backend == "onnx":
        from .onnx_backend import OnnxClassifier

        return OnnxClassifier(bundle, batch_size=batch_size, device=device)
    if backend == "torch":
        from .torch_backend import TorchClassifier

        return TorchClassifier(bundle, device=device, batch_size=batch_size)
    raise UserError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")


def load_model(model: str | os.PathLike | None = None, backend: str = "onnx",
               device: str = "cpu", batch_size: int | None = None) -> Classifier:
    """A classifier from a model file path or a registered model name.

    ``None`` means the registered ``default`` model (shipped in the package once trained).
    """
    from ..plugins import get_models, lookup

    if model is None:
        if "default" not in get_models():
            raise UserError("no default model is installed; pass --model NAME or a model file")
        model = "default"
    if Path(model).exists():
        return classifier_from_file(model, backend, device, batch_size)
    entry = lookup("model", str(model))
    return entry.factory(backend=backend, device=device, batch_size=batch_size)
