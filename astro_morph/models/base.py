"""The classifier interface every backend and plugin model provides."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

__all__ = ["Classifier", "training_crop"]


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
    crop_fraction : float or None, optional
        Not required: the centre-crop side (fraction of the image side) the network was
        trained on, which :func:`astro_morph.classify` then gives the centring step unless
        the caller sets one; absent or ``None``: the paper's 200/424.
    """

    name: str
    class_names: list[str]
    input_size: int
    sha256: str
    backend: str

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Class probabilities ``(N, K)`` float32 for images ``(N, H, W, 3)`` float32 in [0, 1]."""
        ...


def training_crop(clf: Classifier) -> float | None:
    """The classifier's optional ``crop_fraction`` (see :class:`Classifier`); ``None`` when
    it has none, as plugin classifiers written before it need not."""
    return getattr(clf, "crop_fraction", None)
