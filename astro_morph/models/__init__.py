"""Classifier models: architecture as data (:mod:`.arch`), builders, FLOP counts, model files.

Importing this package does not import torch; :mod:`.efficientnet_g` does.
"""

from .arch import VARIANTS, ArchConfig, MBConvConfig, get_arch
from .base import Classifier

__all__ = ["VARIANTS", "ArchConfig", "MBConvConfig", "get_arch", "Classifier"]
