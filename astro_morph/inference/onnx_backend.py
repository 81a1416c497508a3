"""ONNX Runtime inferencer: the default CPU backend (no torch needed when the model file
carries ``model.onnx``)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..models.model_file import ModelBundle

__all__ = ["OnnxClassifier", "cache_dir"]


def cache_dir() -> Path:
    """Where ONNX graphs exported on the fly are kept (``ASTROMORPH_CACHE`` overrides)."""
    root = os.environ.get("ASTROMORPH_CACHE") or Path.home() / ".cache" / "astro_morph"
    return Path(root) / "onnx"


def _cached_export(bundle: ModelBundle) -> bytes:
    """Export a weights-only model file to ONNX once, keyed by the file's SHA-256."""
    from .deploy import export_onnx

    path = cache_dir() / f"{bundle.sha256}.onnx" if bundle.sha256 else None
    if path is not None and path.is_file():
        return path.read_bytes()
    data = export_onnx(bundle)
    if path is not None:
        from ..catalog_io import cache_put

        cache_put(path, data)  # a read-only home only costs a re-export next time
    return data


class OnnxClassifier:
    """Run a model file's ONNX graph with ONNX Runtime.

    Parameters
    ----------
    bundle : ModelBundle
        The model file; its ONNX graph is exported on the fly (needs torch) when absent.
    batch_size : int
        Images per ``session.run``.
    threads : int, optional
        Intra-op threads (default: all cores).
    """

    backend = "onnx"

    def __init__(self, bundle: ModelBundle, batch_size: int = 256,
                 threads: int | None = None, device: str = "cpu") -> None:
        import onnxruntime as ort

        onnx_bytes = bundle.onnx if bundle.onnx is not None else _cached_export(bundle)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or os.cpu_count() or 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        providers = ["CPUExecutionProvider"]
        if device.startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        self.session = ort.InferenceSession(onnx_bytes, opts, providers=providers)
        self.name = bundle.name
        self.class_names = bundle.class_names
        self.input_size = bundle.input_size
        self.sha256 = bundle.sha256
        self.config = bundle.config
        self.batch_size = batch_size

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Probabilities (N, K) for images (N, H, W, 3) float32 in [0, 1]."""
        images = np.ascontiguousarray(images, dtype=np.float32)
        out = [self.session.run(["probabilities"], {"images": images[i:i + self.batch_size]})[0]
               for i in range(0, len(images), self.batch_size)]
        if not out:
            return np.zeros((0, len(self.class_names)), np.float32)
        return np.concatenate(out).astype(np.float32, copy=False)
