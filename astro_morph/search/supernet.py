"""ENAS weight sharing: one supernet holding every candidate op of the search space.

Every stage has ``max(layers)`` slots; every slot holds one MBConv per (expansion, kernel, SE)
combination, built at the stage's widest width. A genotype picks, per stage, the op, how many
slots run, and the width: channels beyond the chosen width are zeroed after each block, which
makes the path compute what the derived network with those (sliced) weights computes. Each
training step runs and updates only the sampled path (Pham et al. 2018).
"""

from __future__ import annotations

import torch
from torch import nn

from ..models.efficientnet_g import MBConv, _conv_bn
from .space import SearchSpace

__all__ = ["SuperNet"]


def _key(expand: int, kernel: int, se: bool) -> str:
    return f"e{expand}_k{kernel}_{'se' if se else 'nose'}"


class SuperNet(nn.Module):
    """All candidate paths of ``space`` with shared weights; ``forward(x, genotype)``."""

    def __init__(self, space: SearchSpace, num_classes: int, se_ratio: float = 0.25,
                 act: str = "silu") -> None:
        super().__init__()
        self.space = space
        self.stem = _conv_bn(3, space.stem_channels, space.stem_kernel, 2, act=act)
        self.stages = nn.ModuleList()
        prev = space.stem_channels
        for s in space.stages:
            wide = max(s.widths)
            slots = nn.ModuleList()
            for slot in range(max(s.layers)):
                cin, stride = (prev, s.stride) if slot == 0 else (wide, 1)
                slots.append(nn.ModuleDict({
                    _key(e, k, se): MBConv(cin, wide, e, k, stride, se, se_ratio, act, 0.0)
                    for e in s.expands for k in s.kernels for se in s.se}))
            self.stages.append(slots)
            prev = wide
        self.head = _conv_bn(prev, space.head_channels, 1, act=act)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(space.head_channels, num_classes)

    def forward(self, x: torch.Tensor, genotype: list[int]) -> torch.Tensor:
        x = self.stem(x)
        for slots, v in zip(self.stages, self.space.decode(genotype), strict=True):
            key = _key(v["expand"], v["kernel"], v["se"])
            mask = None
            for slot in range(v["layers"]):
                x = slots[slot][key](x)
                if mask is None:
                    mask = torch.zeros(1, x.shape[1], 1, 1, device=x.device, dtype=x.dtype)
                    mask[:, : v["width"]] = 1
                x = x * mask
        x = self.pool(self.head(x)).flatten(1)
        return self.classifier(x)
