"""The ENAS search space, in the same data structure the model builder uses.

A *genotype* is one choice per decision of every stage: (kernel, expansion, squeeze-excite,
width, layers). :meth:`SearchSpace.to_arch` turns it into an ordinary
:class:`~astro_morph.models.arch.ArchConfig` (a tuple of ``MBConvConfig`` stages), so a searched
network is built, counted, trained and compound-scaled by exactly the code that handles the
paper's Table 2. Stem and head are fixed and the input is 32x32 during search (paper Sec. 3.3).
No torch here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..models.arch import G0, ArchConfig, MBConvConfig

__all__ = ["StageChoices", "SearchSpace", "DEFAULT_SPACE", "DECISIONS"]

#: Decisions per stage, in the order the controller emits them.
DECISIONS = ("kernel", "expand", "se", "width", "layers")


@dataclass(frozen=True)
class StageChoices:
    """Candidate values of one MBConv stage; ``stride`` is fixed by the stage's position."""

    stride: int
    widths: tuple[int, ...]
    layers: tuple[int, ...]
    kernels: tuple[int, ...] = (3, 5)
    expands: tuple[int, ...] = (1, 3, 6)
    se: tuple[bool, ...] = (True, False)

    def options(self, decision: str) -> tuple:
        """The candidate values of ``decision`` (one of :data:`DECISIONS`)."""
        return {"kernel": self.kernels, "expand": self.expands, "se": self.se,
                "width": self.widths, "layers": self.layers}[decision]


@dataclass(frozen=True)
class SearchSpace:
    """Stages of choices between a fixed stem and head (G0's: 5x5 conv, 32 -> 160)."""

    stages: tuple[StageChoices, ...]
    stem_kernel: int = G0.stem_kernel
    stem_channels: int = G0.stem_channels
    head_channels: int = G0.head_channels
    resolution: int = 32
    meta: dict = field(default_factory=dict, compare=False)

    @property
    def sizes(self) -> list[int]:
        """Number of options of every decision, in controller order."""
        return [len(s.options(d)) for s in self.stages for d in DECISIONS]

    def decode(self, genotype: list[int]) -> list[dict]:
        """Choice indices to per-stage values ``{kernel, expand, se, width, layers}``."""
        if len(genotype) != len(self.sizes):
            raise ValueError(f"genotype has {len(genotype)} choices; the space needs "
                             f"{len(self.sizes)}")
        out, it = [], iter(genotype)
        for s in self.stages:
            stage = {}
            for d in DECISIONS:
                i = next(it)
                opts = s.options(d)
                if not 0 <= i < len(opts):
                    raise ValueError(f"choice {i} out of range for {d} (0..{len(opts) - 1})")
                stage[d] = opts[i]
            out.append(stage)
        return out

    def to_arch(self, genotype: list[int], name: str = "enas-g0") -> ArchConfig:
        """The genotype as a buildable, scalable :class:`ArchConfig`."""
        blocks, prev = [], self.stem_channels
        for s, v in zip(self.stages, self.decode(genotype), strict=True):
            blocks.append(MBConvConfig(v["expand"], v["kernel"], s.stride, prev, v["width"],
                                       v["layers"], v["se"]))
            prev = v["width"]
        return ArchConfig(name=name, blocks=tuple(blocks), stem_kernel=self.stem_kernel,
                          stem_channels=self.stem_channels, head_channels=self.head_channels,
                          resolution=self.resolution,
                          meta={"genotype": list(genotype)})

    def encode(self, arch: ArchConfig) -> list[int]:
        """Choice indices of an architecture that lies in the space (e.g. the paper's G0)."""
        if len(arch.blocks) != len(self.stages):
            raise ValueError(f"{arch.name} has {len(arch.blocks)} stages; the space has "
                             f"{len(self.stages)}")
        out = []
        for s, b in zip(self.stages, arch.blocks, strict=True):
            values = {"kernel": b.kernel, "expand": b.expand_ratio, "se": b.se,
                      "width": b.out_channels, "layers": b.layers}
            for d in DECISIONS:
                try:
                    out.append(s.options(d).index(values[d]))
                except ValueError:
                    raise ValueError(f"{arch.name}: {d}={values[d]} is not in the space") from None
        return out


#: Around the paper's Table 2: G0 itself is one point of this space (``encode(G0)``).
DEFAULT_SPACE = SearchSpace(stages=(
    StageChoices(stride=1, widths=(16,), layers=(1,)),
    StageChoices(stride=2, widths=(16, 24, 32), layers=(1, 2, 3)),
    StageChoices(stride=2, widths=(32, 40, 48), layers=(1, 2, 3)),
    StageChoices(stride=2, widths=(64, 80, 96), layers=(1, 2, 3, 4)),
))
