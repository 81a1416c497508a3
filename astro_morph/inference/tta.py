"""Test-time augmentation: average a classifier over the 8 rotations and flips of each image.

A galaxy has no preferred orientation on the sky, and the paper trains with random rotations
and mirror flips, so the eight symmetries of the square (the dihedral group D4: rotations by
0/90/180/270 degrees, each with and without a mirror flip) are all equally valid views. They
are exact pixel permutations (no interpolation), so each view is what the network saw in
training. Costs 8x the model time (``docs/performance.md``).
"""

from __future__ import annotations

import numpy as np

from ..models.base import Classifier, training_crop

__all__ = ["TTAClassifier", "dihedral_views", "mean_probabilities"]

TTA_NAME = "D4 (8 rotations/flips)"


def dihedral_views(images: np.ndarray) -> list[np.ndarray]:
    """The 8 D4 views of a batch ``(N, H, W, C)`` (square images), identity first."""
    views = []
    for flipped in (images, images[:, :, ::-1]):
        for k in range(4):
            views.append(np.ascontiguousarray(np.rot90(flipped, k, axes=(1, 2))))
    return views


def mean_probabilities(parts) -> np.ndarray:
    """Mean of an iterable of ``(N, K)`` probability arrays, summed in float64 (a view or a
    member at a time, so only one array is held besides the sum), returned as float32."""
    total, n = None, 0
    for p in parts:
        p = np.asarray(p, dtype=np.float64)
        total = p if total is None else total + p
        n += 1
    return (total / n).astype(np.float32)


class TTAClassifier:
    """Wrap a :class:`~astro_morph.models.base.Classifier`: probabilities are the mean over
    the 8 views. Name, classes, input size, crop and identity are the wrapped model's; ``tta`` says
    what was averaged (recorded in the output's provenance)."""

    tta = TTA_NAME

    def __init__(self, inner: Classifier) -> None:
        self.inner = inner
        self.name = inner.name
        self.class_names = inner.class_names
        self.input_size = inner.input_size
        self.crop_fraction = training_crop(inner)
        self.sha256 = inner.sha256
        self.backend = getattr(inner, "backend", "?")
        self.config = getattr(inner, "config", None)

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Mean probabilities ``(N, K)`` over the 8 views (one ``predict`` call per view)."""
        return mean_probabilities(self.inner.predict(view) for view in
                                  dihedral_views(np.asarray(images, dtype=np.float32)))
