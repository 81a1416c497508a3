"""ONNX Runtime inferencer: the default CPU backend (no torch needed when the model file
carries ``model.onnx``)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from ..errors import UserError, first_line
from ..models.model_file import ModelBundle
from .load import BundleBacked

__all__ = ["OnnxClassifier", "cache_dir"]


def cache_dir() -> Path:
    """Where ONNX graphs exported on the fly are kept (:func:`astro_morph.fileio.cache_root`
    ``/onnx``; ``ASTROMORPH_CACHE`` overrides)."""
    from ..fileio import cache_root

    return cache_root() / "onnx"


def _cached_export(bundle: ModelBundle) -> bytes:
    """Export a weights-only model file to ONNX once, keyed by the file's SHA-256."""
    path = cache_dir() / f"{bundle.sha256}.onnx" if bundle.sha256 else None
    if path is not None and path.is_file():
        return path.read_bytes()
    from .deploy import export_onnx  # imports torch (~1 s, ~300 MB): only on a cache miss

    data = export_onnx(bundle)
    if path is not None:
        from ..fileio import cache_put

        cache_put(path, data)  # a read-only home only costs a re-export next time
    return data


def _check_graph(session, bundle: ModelBundle) -> None:
    """The graph must take ``images`` and give one probability per class in the config."""
    inputs = [i.name for i in session.get_inputs()]
    outputs = {o.name: o.shape for o in session.get_outputs()}
    if inputs != ["images"] or "probabilities" not in outputs:
        raise UserError(f"{bundle.path}: model.onnx must map 'images' to 'probabilities' "
                        f"(it has inputs {inputs}, outputs {sorted(outputs)})")
    k = outputs["probabilities"][-1] if outputs["probabilities"] else None
    if isinstance(k, int) and k != len(bundle.class_names):
        raise UserError(f"{bundle.path}: model.onnx gives {k} probabilities but config.json "
                        f"names {len(bundle.class_names)} classes")


class OnnxClassifier(BundleBacked):
    """Run a model file's ONNX graph with ONNX Runtime.

    Parameters
    ----------
    bundle : ModelBundle
        The model file; its ONNX graph is exported on the fly (needs torch) when absent.
    batch_size : int, optional
        Images per ``session.run``. Default 32 on CPU, where small batches keep a layer's
        activations in cache (``docs/performance.md``), and 512 on CUDA.
    threads : int, optional
        Batches run at the same time, one core each (default: all cores; 1 on CUDA).
    """

    backend = "onnx"

    def __init__(self, bundle: ModelBundle, batch_size: int | None = None,
                 threads: int | None = None, device: str = "cpu") -> None:
        import onnxruntime as ort

        onnx_bytes = bundle.onnx if bundle.onnx is not None else _cached_export(bundle)
        providers = ["CPUExecutionProvider"]
        if device.startswith("cuda") or device == "auto":
            if "CUDAExecutionProvider" in ort.get_available_providers():
                providers.insert(0, "CUDAExecutionProvider")
            elif device != "auto":  # asked for a GPU: say where it runs instead
                logging.getLogger("astro_morph").warning(
                    "--device %s: this onnxruntime has no CUDA provider, so the ONNX backend "
                    "runs on the CPU (--backend torch uses CUDA through PyTorch)", device)
        cuda = providers[0].startswith("CUDA")
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # On a CPU, one single-threaded run per core on different batches beats splitting
        # each small layer across cores, and leaves no spinning pool threads to slow the
        # decoding that overlaps inference (docs/performance.md).
        self.streams = 1 if cuda else (threads or os.cpu_count() or 1)
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(onnx_bytes, opts, providers=providers)
        except Exception as exc:  # onnxruntime's Fail/InvalidProtobuf/...: a damaged graph
            reason = first_line(exc)
            raise UserError(f"{bundle.path}: model.onnx cannot be loaded ({reason[:200]})") \
                from None
        _check_graph(self.session, bundle)
        self._take_identity(bundle, batch_size, cuda)
        self._pool = None

    def _run(self, batch: np.ndarray) -> np.ndarray:
        try:
            return self.session.run(["probabilities"], {"images": batch})[0]
        except Exception as exc:
            if "failed to allocate memory" in str(exc).lower():  # ORT's arena, one Fail type
                raise MemoryError(f"ONNX Runtime could not allocate memory for a batch of "
                                  f"{len(batch)} images") from None
            raise

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Probabilities (N, K) for images (N, H, W, 3) float32 in [0, 1]."""
        images = np.ascontiguousarray(images, dtype=np.float32)
        batches = [images[i:i + self.batch_size] for i in range(0, len(images), self.batch_size)]
        if not batches:
            return np.zeros((0, len(self.class_names)), np.float32)
        if self.streams > 1 and len(batches) > 1:
            if self._pool is None:  # session.run releases the GIL and is thread-safe
                from concurrent.futures import ThreadPoolExecutor

                self._pool = ThreadPoolExecutor(self.streams, thread_name_prefix="astromorph-ort")
            out = list(self._pool.map(self._run, batches))
        else:
            out = [self._run(b) for b in batches]
        return np.concatenate(out).astype(np.float32, copy=False)
