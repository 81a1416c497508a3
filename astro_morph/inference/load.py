"""The one resolver of ``--model NAME|PATH``: model files, shipped models and plugin models.

Every path that needs a model goes through here: the single-process run, Dask workers, LSDB
partitions, ``train --init`` and the benchmarks. A name is looked up in the model registry
(``astromorph_register_models``), where a plugin registers either a model file or a loader.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from ..models.base import Classifier
from ..models.model_file import ModelBundle, read_bundle

__all__ = ["BACKENDS", "BundleBacked", "ModelRef", "resolve_model", "load_model", "model_file",
           "portable_model", "classifier_from_file"]

BACKENDS = ("onnx", "torch")


class BundleBacked:
    """Base of the backends that run a model file: what they take from it, alike."""

    def _take_identity(self, bundle: ModelBundle, batch_size: int | None, gpu: bool) -> None:
        """Name, classes, input, crop, digest and config from ``bundle``; the batch size."""
        self.name = bundle.name
        self.class_names = bundle.class_names
        self.input_size = bundle.input_size
        self.crop_fraction = bundle.crop_fraction  # the training crop; None: the paper's
        self.sha256 = bundle.sha256
        self.config = bundle.config
        # Small batches stay in cache on a CPU; a GPU needs large ones to be kept busy.
        self.batch_size = batch_size or (512 if gpu else 32)


@dataclass(frozen=True)
class ModelRef:
    """A resolved model: a model file (``path``) or a plugin's ``loader``."""

    name: str
    path: Path | None = None
    loader: Callable[..., Classifier] | None = None
    plugin: str | None = None


def resolve_model(model: str | os.PathLike | None = None) -> ModelRef:
    """Resolve a model file path or registered name (``None``: the ``default`` model)."""
    from ..plugins import get_models, lookup

    if model is None:
        if "default" not in get_models():
            raise UserError("no default model is installed; pass --model NAME or a model file")
        model = "default"
    if Path(model).exists():
        return ModelRef(Path(model).name, Path(model))
    text = str(model)
    try:
        entry = lookup("model", text)
    except UserError:
        if os.sep in text or "/" in text or Path(text).suffix.lower() in (".amz", ".onnx"):
            # Written as a path, not a name: the file is missing, not an "unknown model".
            raise UserError(f"model file not found: {text}") from None
        raise
    if isinstance(entry.factory, (str, os.PathLike)):
        return ModelRef(entry.name, Path(entry.factory), plugin=entry.plugin)
    return ModelRef(entry.name, loader=entry.factory, plugin=entry.plugin)


def classifier_from_file(path: str | os.PathLike, backend: str = "onnx", device: str = "cpu",
                         batch_size: int | None = None,
                         threads: int | None = None) -> Classifier:
    """Load a model file with the chosen backend (``threads``: ONNX streams, default all
    cores)."""
    bundle = read_bundle(path)
    if backend == "onnx":
        from .onnx_backend import OnnxClassifier

        return OnnxClassifier(bundle, batch_size=batch_size, device=device, threads=threads)
    if backend == "torch":
        from .torch_backend import TorchClassifier

        return TorchClassifier(bundle, device=device, batch_size=batch_size)
    raise UserError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")


def check_device(device: str) -> str:
    """``cpu``, ``cuda``, ``cuda:N`` or ``auto``, else a one-line error (torch would take
    ``mps`` or ``xpu`` and fail later, and raise its own RuntimeError for ``gpu``)."""
    kind, _, index = str(device).partition(":")
    if device != "auto" and (kind not in ("cpu", "cuda") or (index and not index.isdigit())):
        raise UserError(f"--device {device!r}: expected cpu, cuda, cuda:N or auto")
    return device


def load_model(model: str | os.PathLike | None = None, backend: str = "onnx",
               device: str = "cpu", batch_size: int | None = None,
               threads: int | None = None) -> Classifier:
    """A classifier from a model file path or a registered name (``None``: ``default``)."""
    check_device(device)
    ref = resolve_model(model)
    if ref.path is not None:
        return classifier_from_file(ref.path, backend, device, batch_size, threads)
    return ref.loader(backend=backend, device=device, batch_size=batch_size)


def model_file(model: str | os.PathLike | None = None) -> Path:
    """The model file behind a path or registered name (``train --init`` needs weights)."""
    ref = resolve_model(model)
    if ref.path is None:
        raise UserError(f"model {ref.name!r} (plugin {ref.plugin}) is registered as a loader, "
                        f"not a model file; it cannot be used where weights are needed")
    return ref.path


def portable_model(model: str | os.PathLike | None = None) -> str:
    """What a Dask or LSDB worker should load: the model file's path when there is one (the
    worker then needs no plugin), else the registered name (the plugin must be installed on
    the workers too)."""
    ref = resolve_model(model)
    return str(ref.path.resolve()) if ref.path is not None else ref.name
