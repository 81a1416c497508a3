"""PyTorch inferencer: CPU, or CUDA with channels-last, autocast and pinned memory."""

from __future__ import annotations

import numpy as np
import torch

from ..errors import UserError, torch_out_of_memory
from ..models.model_file import ModelBundle
from .deploy import deployed_from_bundle
from .load import BundleBacked, check_device

__all__ = ["TorchClassifier", "resolve_device"]


def resolve_device(device: str) -> torch.device:
    """``auto`` picks CUDA when present; ``cuda`` without a GPU is a user error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(check_device(device))
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda asked for, but torch sees no CUDA GPU here")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise UserError(f"--device {device}: torch sees {torch.cuda.device_count()} CUDA GPU(s) "
                        f"here, numbered from 0")
    return dev


class TorchClassifier(BundleBacked):
    """Run a model file's network with PyTorch.

    On CUDA the network runs in channels-last layout under bf16 autocast (``amp=True``) with
    pinned host buffers; on CPU it runs in float32 with inference mode.
    """

    backend = "torch"

    def __init__(self, bundle: ModelBundle, device: str = "cpu", batch_size: int | None = None,
                 amp: bool = True) -> None:
        self.device = resolve_device(device)
        model = deployed_from_bundle(bundle).to(self.device)
        if self.device.type == "cuda":
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        self.amp = amp and self.device.type == "cuda"
        self._take_identity(bundle, batch_size, self.device.type == "cuda")

    @torch.inference_mode()
    def predict(self, images: np.ndarray) -> np.ndarray:
        """Probabilities (N, K) for images (N, H, W, 3) float32 in [0, 1]."""
        out = []
        cuda = self.device.type == "cuda"
        for i in range(0, len(images), self.batch_size):
            x = torch.from_numpy(np.ascontiguousarray(images[i:i + self.batch_size],
                                                      dtype=np.float32))
            if cuda:
                x = x.pin_memory().to(self.device, non_blocking=True)
            try:
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
                    out.append(self.model(x).float().cpu().numpy())
            except RuntimeError as exc:  # torch.OutOfMemoryError (CUDA) is one too
                if torch_out_of_memory(exc):
                    raise MemoryError(f"torch could not allocate memory for a batch of "
                                      f"{len(x)} images on {self.device}") from None
                raise
        if not out:
            return np.zeros((0, len(self.class_names)), np.float32)
        return np.concatenate(out)
