"""Torch side of model files: build a network from a bundle, make a bundle from a network."""

from __future__ import annotations

import contextlib
import os
import pickle
from collections.abc import Iterator
from typing import Any

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from ..errors import UserError, first_line
from .arch import ArchConfig
from .efficientnet_g import EfficientNetG, build_model
from .model_file import FORMAT_VERSION, ModelBundle

__all__ = ["network_from_bundle", "bundle_from_network", "checkpoint_errors"]


def network_from_bundle(bundle: ModelBundle) -> EfficientNetG:
    """Rebuild the torch network of a bundle and load its safetensors weights (eval mode)."""
    if bundle.weights is None:
        raise UserError(f"{bundle.path}: no weights.safetensors; use --backend onnx")
    arch = ArchConfig.from_dict(bundle.config["arch"])
    net = build_model(arch, len(bundle.class_names))
    try:
        state = load_safetensors(bundle.weights)
    except Exception as exc:  # SafetensorError and friends: a damaged file, one line
        reason = first_line(exc)
        raise UserError(f"{bundle.path}: weights.safetensors is damaged ({reason})") from None
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise UserError(f"{bundle.path}: weights do not match the architecture: {first}") from None
    return net.eval()


def bundle_from_network(net: EfficientNetG, name: str, class_names: list[str],
                        input_size: int | None = None, mean: list[float] | None = None,
                        std: list[float] | None = None, temperature: float = 1.0,
                        provenance: dict[str, Any] | None = None,
                        crop_fraction: float | None = None) -> ModelBundle:
    """Package a network and its metadata as a :class:`ModelBundle` (not yet written).
    ``crop_fraction``: the centre crop it was trained on, when not the paper's."""
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    config = {
        "format_version": FORMAT_VERSION,
        "name": name,
        "arch": net.arch.to_dict(),
        "class_names": list(class_names),
        "input_size": int(input_size or net.arch.resolution),
        "mean": list(mean or [0.5, 0.5, 0.5]),
        "std": list(std or [0.25, 0.25, 0.25]),
        "temperature": float(temperature),
        "provenance": provenance or {},
        "torch_version": torch.__version__,
        **({"crop_fraction": float(crop_fraction)} if crop_fraction is not None else {}),
    }
    return ModelBundle(config, save_safetensors(state))


@contextlib.contextmanager
def checkpoint_errors(path: str | os.PathLike, what: str, hint: str) -> Iterator[None]:
    """Errors while loading and restoring from a checkpoint file (truncated by a full disk,
    overwritten, written by something else) as one line naming the file, plus ``hint``."""
    try:
        yield
    except (pickle.UnpicklingError, RuntimeError, EOFError, KeyError, ValueError, TypeError,
            OSError) as exc:
        # torch's weights_only refusal explains pickle security, not what is wrong here.
        why = ("not a torch checkpoint" if isinstance(exc, pickle.UnpicklingError) else
               f"{type(exc).__name__}: {first_line(exc)}")
        raise UserError(f"{path} is damaged or not {what} ({why}); {hint}") from None
