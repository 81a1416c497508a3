"""Parameter and FLOP counts computed from an :class:`ArchConfig`, without torch.

Two FLOP conventions are reported because papers mix them:

* ``macs``: multiply-accumulates of convolutions and fully-connected layers (what
  EfficientNet's "0.39B FLOPs" for B0 counts, and what the paper's Tables 4 and Sec. 5.1 quote:
  their B0 figure, 0.39B, is B0's multiply-add count).
* ``flops_eq13``: the paper's Eq. 13 for convolutions, (2 Ci K^2 - 1) H W Co with Ci per group,
  plus Eq. 14 for the FC layer, (2 I - 1) O: about twice ``macs``.

Batch-norm, activations and pooling are not counted in either (as in both conventions).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .arch import ArchConfig

__all__ = ["Counts", "count"]


@dataclass(frozen=True)
class Counts:
    """Parameters and FLOPs of one network at one input resolution."""

    params: int
    macs: int
    flops_eq13: int
    resolution: int


class _Counter:
    def __init__(self) -> None:
        self.params = 0
        self.macs = 0
        self.flops = 0

    def conv(self, cin: int, cout: int, k: int, hw: int, groups: int = 1,
             bias: bool = False) -> None:
        per_group = cin // groups
        self.params += k * k * per_group * cout + (cout if bias else 0)
        self.macs += k * k * per_group * cout * hw * hw
        self.flops += (2 * per_group * k * k - 1) * hw * hw * cout

    def bn(self, c: int) -> None:
        self.params += 2 * c

    def fc(self, i: int, o: int) -> None:
        self.params += i * o + o
        self.macs += i * o
        self.flops += (2 * i - 1) * o


def count(arch: ArchConfig, num_classes: int = 5, resolution: int | None = None) -> Counts:
    """Count parameters and FLOPs of ``arch`` for an input of ``resolution`` (default its own).

    Mirrors :class:`astro_morph.models.efficientnet_g.EfficientNetG` layer for layer; a test
    checks the parameter count against torch's.
    """
    res = resolution or arch.resolution
    c = _Counter()
    hw = math.ceil(res / arch.stem_stride)
    c.conv(arch.in_chans, arch.stem_channels, arch.stem_kernel, hw)
    c.bn(arch.stem_channels)
    for stage in arch.blocks:
        for layer in range(stage.layers):
            cin = stage.in_channels if layer == 0 else stage.out_channels
            stride = stage.stride if layer == 0 else 1
            hidden = cin * stage.expand_ratio
            if stage.expand_ratio != 1:
                c.conv(cin, hidden, 1, hw)
                c.bn(hidden)
            hw = math.ceil(hw / stride)
            c.conv(hidden, hidden, stage.kernel, hw, groups=hidden)
            c.bn(hidden)
            if stage.se:
                squeezed = max(1, int(cin * arch.se_ratio))
                c.conv(hidden, squeezed, 1, 1, bias=True)
                c.conv(squeezed, hidden, 1, 1, bias=True)
            c.conv(hidden, stage.out_channels, 1, hw)
            c.bn(stage.out_channels)
    last = arch.blocks[-1].out_channels if arch.blocks else arch.stem_channels
    c.conv(last, arch.head_channels, 1, hw)
    c.bn(arch.head_channels)
    c.fc(arch.head_channels, num_classes)
    return Counts(c.params, c.macs, c.flops, res)
