"""The deployable graph shared by the torch and ONNX backends."""

from __future__ import annotations

import warnings

import torch
from torch import nn

from ..models.model_file import ModelBundle
from ..models.torch_io import network_from_bundle

__all__ = ["Deployed", "deployed_from_bundle", "export_onnx", "onnx_with_metadata"]


class Deployed(nn.Module):
    """images (N, H, W, C) float32 in [0, 1] -> normalise -> network -> softmax(logits / T)."""

    def __init__(self, net: nn.Module, mean: list[float], std: list[float],
                 temperature: float = 1.0) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("inv_std",
                             1 / torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("inv_t", torch.tensor(1.0 / temperature, dtype=torch.float32))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = (images.permute(0, 3, 1, 2) - self.mean) * self.inv_std
        logits = self.net(x).float()
        return torch.softmax(logits * self.inv_t, dim=1)


def deployed_from_bundle(bundle: ModelBundle) -> Deployed:
    """The bundle's network wrapped with its preprocessing and temperature (eval mode)."""
    net = network_from_bundle(bundle)
    cfg = bundle.config
    return Deployed(net, cfg["mean"], cfg["std"], bundle.temperature).eval()


def export_onnx(bundle: ModelBundle, opset: int = 17) -> bytes:
    """Export the bundle's deployable graph to ONNX bytes (dynamic batch size)."""
    import io

    model = deployed_from_bundle(bundle)
    size = bundle.input_size
    dummy = torch.rand(2, size, size, model.mean.shape[1])
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        # The TorchScript exporter needs no onnxscript and handles this static graph well.
        torch.onnx.export(
            model, (dummy,), buf, dynamo=False, input_names=["images"],
            output_names=["probabilities"], opset_version=opset,
            dynamic_axes={"images": {0: "batch"}, "probabilities": {0: "batch"}},
        )
    return buf.getvalue()


def onnx_with_metadata(bundle: ModelBundle) -> bytes:
    """The bundle's ONNX graph with its name, classes, input size, temperature and centre
    crop (fraction of the image side the input covers) as model metadata (a bare ``.onnx``
    file, for tools that read no model file and must crop as it was trained)."""
    import json

    import onnx

    from ..centring.crop import crop_or_paper

    proto = onnx.load_from_string(bundle.onnx if bundle.onnx is not None
                                  else export_onnx(bundle))
    values = {key: bundle.config.get(key)
              for key in ("name", "class_names", "input_size", "temperature")}
    values["crop_fraction"] = crop_or_paper(bundle.crop_fraction)
    for key, value in values.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)
    return proto.SerializeToString()
