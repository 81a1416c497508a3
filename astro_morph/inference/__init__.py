"""Inferencers: ONNX Runtime (default, CPU) and PyTorch (CPU or CUDA).

Both run the same deployable graph (:mod:`.deploy`): NHWC float images in [0, 1] in,
temperature-scaled softmax probabilities out, so their outputs agree.
"""

from .load import BACKENDS, load_model

__all__ = ["BACKENDS", "load_model"]
