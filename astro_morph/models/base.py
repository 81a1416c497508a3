"""The classifier interface every backend and plugin model provides."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

__all__ = ["Classifier"]


@runtime_checkable
class Classifier(Protocol):
    """A loaded model ready to classify.

    Attributes
    ----------
    name : str
        Model name recorded in the output meta.
    class_names : list of str
        Output classes, in probability-column order.
    input_size : int
        Side of the square input image in pixels.
    sha256 : str
        SHA-256 of the model file (or an identifier of the weights), recorded in the output.
    backend : str
        ``"onnx"``, ``"torch"`` or a plugin's own name.
    """

    name: str
    class_names: list[str]
    input_size: int
    sha256: str
    backend: str

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Class probabilities ``(N, K)`` float32 for images ``(N, H, W, 3)`` float32 in [0, 1]."""
        ...
