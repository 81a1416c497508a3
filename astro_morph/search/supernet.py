"""ENAS weight sharing: one supernet whose every path *is* a network of the search space.

Each stage has ``max(layers)`` slots; each slot holds one weight tensor per layer at the
widest setting of the stage (widest input and output width, largest expansion, largest
kernel, SE). A genotype's path uses the slice it needs, as in Once-for-All and SPOS: the
first ``width`` output channels, the first ``expand * cin`` hidden channels, the centre
``k x k`` of the largest depthwise kernel, the first squeezed channels of the SE. So a path
costs what its derived network costs, and with the same weights computes exactly what it
computes: :meth:`SuperNet.extract` copies a path's slices into the stand-alone
:class:`~astro_morph.models.efficientnet_g.EfficientNetG` built from
:meth:`~astro_morph.search.space.SearchSpace.to_arch` (tested: same outputs). Each training
step runs and updates only the sampled path (Pham et al. 2018).
"""

from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn

from ..models.efficientnet_g import EfficientNetG, _act, _conv_bn, batch_norm_momentum, build_model
from .space import SearchSpace

__all__ = ["SuperNet", "SlicedMBConv"]


class _SlicedBN(nn.BatchNorm2d):
    """Batch norm over the first ``c`` channels (running statistics shared by prefix)."""

    def forward_first(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        mean = self.running_mean[:c] if self.running_mean is not None else None
        var = self.running_var[:c] if self.running_var is not None else None
        if self.training and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
        # The slices are views: the running statistics of the first c channels are updated
        # in place, shared by every path that uses them.
        return F.batch_norm(x, mean, var, self.weight[:c], self.bias[:c],
                            self.training, self.momentum, self.eps)


class SlicedMBConv(nn.Module):
    """One slot: an MBConv at its widest, run at any (expand, kernel, SE, width) prefix."""

    def __init__(self, cin_max: int, cout_max: int, expand_max: int, kernel_max: int,
                 stride: int, se_ratio: float, act: str) -> None:
        super().__init__()
        hidden = cin_max * expand_max
        self.stride, self.kernel_max, self.se_ratio = stride, kernel_max, se_ratio
        self.expand_conv = nn.Conv2d(cin_max, hidden, 1, bias=False)
        self.expand_bn = _SlicedBN(hidden)
        self.dw_conv = nn.Conv2d(hidden, hidden, kernel_max, stride, kernel_max // 2,
                                 groups=hidden, bias=False)
        self.dw_bn = _SlicedBN(hidden)
        squeezed = max(1, int(cin_max * se_ratio))
        self.se_reduce = nn.Conv2d(hidden, squeezed, 1)
        self.se_expand = nn.Conv2d(squeezed, hidden, 1)
        self.project_conv = nn.Conv2d(hidden, cout_max, 1, bias=False)
        self.project_bn = _SlicedBN(cout_max)
        self.act = _act(act)

    def _dw_weight(self, hidden: int, kernel: int) -> torch.Tensor:
        o = (self.kernel_max - kernel) // 2
        return self.dw_conv.weight[:hidden, :, o:o + kernel, o:o + kernel]

    def forward(self, x: torch.Tensor, expand: int, kernel: int, se: bool,
                width: int) -> torch.Tensor:
        cin = x.shape[1]
        hidden = cin * expand
        h = x
        if expand != 1:
            h = self.act(self.expand_bn.forward_first(
                F.conv2d(h, self.expand_conv.weight[:hidden, :cin])))
        h = F.conv2d(h, self._dw_weight(hidden, kernel), None, self.stride, kernel // 2,
                     groups=hidden)
        h = self.act(self.dw_bn.forward_first(h))
        if se:
            sq = max(1, int(cin * self.se_ratio))
            s = h.mean((2, 3), keepdim=True)
            s = self.act(F.conv2d(s, self.se_reduce.weight[:sq, :hidden],
                                  self.se_reduce.bias[:sq]))
            h = h * torch.sigmoid(F.conv2d(s, self.se_expand.weight[:hidden, :sq],
                                           self.se_expand.bias[:hidden]))
        out = self.project_bn.forward_first(F.conv2d(h, self.project_conv.weight[:width, :hidden]))
        return x + out if self.stride == 1 and cin == width else out


class SuperNet(nn.Module):
    """All candidate paths of ``space`` with shared, sliced weights; ``forward(x, genotype)``.

    ``dropout`` applies before the classifier (as in the derived networks); the paths have
    no stochastic depth, so a path in eval mode equals its derived network in eval mode.
    """

    def __init__(self, space: SearchSpace, num_classes: int, se_ratio: float = 0.25,
                 act: str = "silu", dropout: float = 0.0) -> None:
        super().__init__()
        self.space = space
        self.se_ratio, self.act_name = se_ratio, act
        self.stem = _conv_bn(3, space.stem_channels, space.stem_kernel, 2, act=act)
        self.stages = nn.ModuleList()
        prev = space.stem_channels
        for s in space.stages:
            wide = max(s.widths)
            self.stages.append(nn.ModuleList(
                SlicedMBConv(prev if slot == 0 else wide, wide, max(s.expands), max(s.kernels),
                             s.stride if slot == 0 else 1, se_ratio, act)
                for slot in range(max(s.layers))))
            prev = wide
        self.head_conv = nn.Conv2d(prev, space.head_channels, 1, bias=False)
        self.head_bn = nn.BatchNorm2d(space.head_channels)
        self.head_act = _act(act)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(space.head_channels, num_classes)

    def forward(self, x: torch.Tensor, genotype: list[int]) -> torch.Tensor:
        x = self.stem(x)
        for slots, v in zip(self.stages, self.space.decode(genotype), strict=True):
            for slot in range(v["layers"]):
                x = slots[slot](x, v["expand"], v["kernel"], v["se"], v["width"])
        x = self.head_act(self.head_bn(F.conv2d(x, self.head_conv.weight[:, :x.shape[1]])))
        return self.classifier(self.dropout(x.mean((2, 3))))

    @torch.no_grad()
    def recalibrate(self, x: torch.Tensor, genotype: list[int]) -> None:
        """Set the batch-norm statistics the path ``genotype`` uses to those of ``x``.

        Shared running statistics are a blend of whichever paths trained last, so a path
        judged with them is judged partly on other paths' statistics (SPOS, Guo et al. 2020,
        recalibrates per path before evaluating). One forward pass in training mode with
        momentum 1 replaces the path's channels of every BN by the statistics of ``x``;
        training uses batch statistics, so this changes nothing it depends on."""
        was_training = self.training
        try:
            with batch_norm_momentum(self, 1.0):
                self.train()
                self(x, genotype)
        finally:
            self.train(was_training)

    @torch.no_grad()
    def extract(self, genotype: list[int], name: str = "enas-g0") -> EfficientNetG:
        """The stand-alone network of ``genotype`` carrying this supernet's sliced weights
        (its starting point, and the check that a path computes what it claims)."""
        arch = self.space.to_arch(genotype, name=name)
        arch = replace(arch, se_ratio=self.se_ratio, activation=self.act_name,
                       stochastic_depth=0.0)
        net = build_model(arch, self.classifier.out_features).eval()
        net.stem.load_state_dict(self.stem.state_dict())
        blocks = iter(net.blocks)
        prev = self.space.stem_channels
        for slots, v in zip(self.stages, self.space.decode(genotype), strict=True):
            for slot in range(v["layers"]):
                cin = prev if slot == 0 else v["width"]
                _copy_block(slots[slot], next(blocks), cin, v)
            prev = v["width"]
        head = net.head
        head[0].weight.copy_(self.head_conv.weight[:, :prev])
        _copy_bn(head[1], self.head_bn, self.head_bn.num_features)
        net.classifier[-1].load_state_dict(self.classifier.state_dict())
        return net


def _copy_bn(dst: nn.BatchNorm2d, src: nn.BatchNorm2d, c: int) -> None:
    dst.weight.copy_(src.weight[:c])
    dst.bias.copy_(src.bias[:c])
    dst.running_mean.copy_(src.running_mean[:c])
    dst.running_var.copy_(src.running_var[:c])


def _copy_block(slot: SlicedMBConv, block: nn.Module, cin: int, v: dict) -> None:
    """Copy one slot's slices into the derived network's MBConv (same layer order)."""
    hidden, width, k = cin * v["expand"], v["width"], v["kernel"]
    layers = iter(block.block)
    if v["expand"] != 1:
        conv_bn = next(layers)
        conv_bn[0].weight.copy_(slot.expand_conv.weight[:hidden, :cin])
        _copy_bn(conv_bn[1], slot.expand_bn, hidden)
    dw = next(layers)
    dw[0].weight.copy_(slot._dw_weight(hidden, k))
    _copy_bn(dw[1], slot.dw_bn, hidden)
    if v["se"]:
        se = next(layers)
        sq = se.reduce.out_channels
        se.reduce.weight.copy_(slot.se_reduce.weight[:sq, :hidden])
        se.reduce.bias.copy_(slot.se_reduce.bias[:sq])
        se.expand.weight.copy_(slot.se_expand.weight[:hidden, :sq])
        se.expand.bias.copy_(slot.se_expand.bias[:hidden])
    project = next(layers)
    project[0].weight.copy_(slot.project_conv.weight[:width, :hidden])
    _copy_bn(project[1], slot.project_bn, width)
