"""PyTorch networks built from :class:`ArchConfig` data (EfficientNet-G, B0, MobileNetV2)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from .arch import ArchConfig, MBConvConfig

__all__ = ["EfficientNetG", "MBConv", "build_model", "batch_norm_momentum"]


@contextlib.contextmanager
def batch_norm_momentum(net: nn.Module, momentum: float) -> Iterator[None]:
    """Every batch norm in ``net`` runs with ``momentum`` inside the block and gets its own
    back after: 1 replaces the running statistics by the batch's, 0 leaves them alone (the
    layer still normalises by the batch in training mode)."""
    norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in norms]
    try:
        for m in norms:
            m.momentum = momentum
        yield
    finally:
        for m, old in zip(norms, saved, strict=True):
            m.momentum = old


def _act(name: str) -> nn.Module:
    return {"silu": nn.SiLU, "relu6": nn.ReLU6, "relu": nn.ReLU}[name](inplace=True)


def _conv_bn(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1,
             act: str | None = "silu") -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
    ]
    if act:
        layers.append(_act(act))
    return nn.Sequential(*layers)


class SqueezeExcite(nn.Module):
    """Channel attention: global pool, 1x1 reduce, 1x1 expand, sigmoid gate."""

    def __init__(self, channels: int, squeezed: int, act: str) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(channels, squeezed, 1)
        self.act = _act(act)
        self.expand = nn.Conv2d(squeezed, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        return x * torch.sigmoid(self.expand(self.act(self.reduce(s))))


class MBConv(nn.Module):
    """Mobile inverted bottleneck: expand 1x1, depthwise kxk, SE, project 1x1, residual."""

    def __init__(self, cin: int, cout: int, expand: int, kernel: int, stride: int, se: bool,
                 se_ratio: float, act: str, drop_path: float) -> None:
        super().__init__()
        hidden = cin * expand
        self.use_residual = stride == 1 and cin == cout
        self.drop_path = drop_path
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(_conv_bn(cin, hidden, 1, act=act))
        layers.append(_conv_bn(hidden, hidden, kernel, stride, groups=hidden, act=act))
        if se:
            layers.append(SqueezeExcite(hidden, max(1, int(cin * se_ratio)), act))
        layers.append(_conv_bn(hidden, cout, 1, act=None))
        self.block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        if not self.use_residual:
            return out
        if self.training and self.drop_path > 0:
            # Stochastic depth: drop the whole residual branch per sample.
            keep = 1 - self.drop_path
            mask = torch.empty((x.shape[0], 1, 1, 1), device=x.device, dtype=x.dtype)
            out = out * mask.bernoulli_(keep) / keep
        return x + out


class EfficientNetG(nn.Module):
    """A network built from an :class:`ArchConfig`.

    The stable interface: :meth:`features` (backbone to pooled vector), :attr:`classifier`
    (dropout + FC), :meth:`reset_classifier` (new class count for fine-tuning).
    """

    def __init__(self, arch: ArchConfig, num_classes: int) -> None:
        super().__init__()
        self.arch = arch
        act = arch.activation
        self.stem = _conv_bn(arch.in_chans, arch.stem_channels, arch.stem_kernel,
                             arch.stem_stride, act=act)
        total = sum(b.layers for b in arch.blocks)
        blocks: list[nn.Module] = []
        i = 0
        for stage in arch.blocks:
            for layer in range(stage.layers):
                blocks.append(self._block(stage, layer, arch, arch.stochastic_depth * i / total))
                i += 1
        self.blocks = nn.Sequential(*blocks)
        last = arch.blocks[-1].out_channels if arch.blocks else arch.stem_channels
        self.head = _conv_bn(last, arch.head_channels, 1, act=act)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.num_features = arch.head_channels
        self.classifier = nn.Sequential(nn.Dropout(arch.dropout),
                                        nn.Linear(arch.head_channels, num_classes))
        self._init_weights()

    @staticmethod
    def _block(stage: MBConvConfig, layer: int, arch: ArchConfig, drop: float) -> MBConv:
        cin = stage.in_channels if layer == 0 else stage.out_channels
        stride = stage.stride if layer == 0 else 1
        return MBConv(cin, stage.out_channels, stage.expand_ratio, stage.kernel, stride,
                      stage.se, arch.se_ratio, arch.activation, drop)

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.uniform_(m.weight, -1 / m.in_features**0.5, 1 / m.in_features**0.5)
                nn.init.zeros_(m.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Backbone: image batch (N, C, H, W) to pooled features (N, num_features)."""
        x = self.head(self.blocks(self.stem(x)))
        return torch.flatten(self.pool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the FC layer for a new class list (fine-tuning on a new survey)."""
        self.classifier[-1] = nn.Linear(self.num_features, num_classes)


def build_model(arch: ArchConfig, num_classes: int) -> EfficientNetG:
    """Build the torch network for ``arch`` with ``num_classes`` outputs."""
    return EfficientNetG(arch, num_classes)
