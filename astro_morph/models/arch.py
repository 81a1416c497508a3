"""Architectures as data: the paper's Table 2 as stage configs, and compound scaling.

Follows torchvision's ``MBConvConfig`` (expand ratio, kernel, stride, in, out, layers) with
``adjust_channels`` (round to a multiple of 8) and ``adjust_depth`` (ceil). A genotype found by
the ENAS search (:mod:`astro_morph.search`) is an :class:`ArchConfig` too, so it is built and
scaled by the same code. No torch here: FLOPs and params come from :mod:`.flops`.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from .model_file import MAX_INPUT_SIZE, MIN_INPUT_SIZE

__all__ = [
    "MBConvConfig",
    "ArchConfig",
    "make_divisible",
    "adjust_channels",
    "adjust_depth",
    "G0",
    "VARIANTS",
    "PAPER_SCALING",
    "get_arch",
    "compound_scale",
    "load_arch",
    "PAPER_FIGURES",
]


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round ``value`` to the nearest multiple of ``divisor``, never more than 10 % down."""
    min_value = min_value or divisor
    new = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return new


def adjust_channels(channels: int, width_mult: float) -> int:
    """Scale a channel count by ``width_mult`` and round to a multiple of 8 (torchvision)."""
    return make_divisible(channels * width_mult, 8)


def adjust_depth(layers: int, depth_mult: float) -> int:
    """Scale a stage's layer count by ``depth_mult``, rounding up (torchvision)."""
    return int(math.ceil(layers * depth_mult))


_BLOCK_RE = re.compile(r"^e(\d+)_k(\d+)_s(\d+)_c(\d+)_n(\d+)(_se)?$")


@dataclass(frozen=True)
class MBConvConfig:
    """One stage of mobile inverted bottleneck blocks (MBConv).

    Parameters
    ----------
    expand_ratio : int
        Expansion of the 1x1 conv (1 = no expansion conv, as in MBConv1).
    kernel : int
        Depthwise kernel size (odd).
    stride : int
        Stride of the stage's first block (1 or 2); later blocks use 1.
    in_channels, out_channels : int
        Channels into the first block and out of every block.
    layers : int
        Number of blocks in the stage.
    se : bool
        Squeeze-and-excitation (ratio :attr:`ArchConfig.se_ratio` of the block input).
    """

    expand_ratio: int
    kernel: int
    stride: int
    in_channels: int
    out_channels: int
    layers: int
    se: bool = True

    def __post_init__(self) -> None:
        if self.kernel < 1 or self.kernel % 2 == 0:
            raise ValueError(f"kernel must be odd and positive, got {self.kernel}")
        if self.stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {self.stride}")
        if min(self.expand_ratio, self.in_channels, self.out_channels, self.layers) < 1:
            raise ValueError(f"expand, channels and layers must be >= 1: {self}")

    def to_string(self) -> str:
        """Short form like timm's block strings: ``e6_k5_s2_c40_n2_se`` (no input channels)."""
        se = "_se" if self.se else ""
        return (f"e{self.expand_ratio}_k{self.kernel}_s{self.stride}_c{self.out_channels}"
                f"_n{self.layers}{se}")

    @classmethod
    def from_string(cls, text: str, in_channels: int) -> MBConvConfig:
        """Parse :meth:`to_string`'s form; raises ``ValueError`` naming the bad string."""
        m = _BLOCK_RE.match(text.strip())
        if not m:
            raise ValueError(f"bad block string {text!r}; expected like 'e6_k5_s2_c40_n2_se'")
        e, k, s, c, n, se = m.groups()
        return cls(int(e), int(k), int(s), in_channels, int(c), int(n), se is not None)


@dataclass(frozen=True)
class ArchConfig:
    """A whole network: stem, MBConv stages, head. One builder serves every family.

    ``resolution`` is the input side the network is meant for (the paper's H x W).
    """

    name: str
    blocks: tuple[MBConvConfig, ...]
    stem_kernel: int = 5
    stem_channels: int = 32
    stem_stride: int = 2
    head_channels: int = 160
    resolution: int = 32
    dropout: float = 0.2
    stochastic_depth: float = 0.1
    se_ratio: float = 0.25
    activation: str = "silu"
    in_chans: int = 3
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.activation not in ("silu", "relu6", "relu"):
            raise ValueError(f"activation must be silu, relu6 or relu, got {self.activation!r}")
        if not self.blocks:
            raise ValueError("an architecture needs at least one block")
        # A genotype file is user input: numbers that would only fail inside torch, or build
        # a network that cannot run, are named here.
        for key in ("stem_kernel", "stem_channels", "stem_stride", "head_channels", "in_chans"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{key} must be a positive integer, got {value!r}")
        if isinstance(self.resolution, bool) or not isinstance(self.resolution, int) or \
                not MIN_INPUT_SIZE <= self.resolution <= MAX_INPUT_SIZE:
            raise ValueError(f"resolution must be an integer of {MIN_INPUT_SIZE}-"
                             f"{MAX_INPUT_SIZE} pixels, got {self.resolution!r}")
        for key in ("dropout", "stochastic_depth", "se_ratio"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                    not 0 <= value < 1:
                raise ValueError(f"{key} must be a number in [0, 1), got {value!r}")
        prev = self.stem_channels
        for i, b in enumerate(self.blocks):
            if b.in_channels != prev:
                raise ValueError(
                    f"stage {i + 2} takes {b.in_channels} channels but the previous stage "
                    f"gives {prev}"
                )
            prev = b.out_channels

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (blocks as short strings); inverse of :meth:`from_dict`."""
        d = asdict(self)
        d["blocks"] = [b.to_string() for b in self.blocks]
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ArchConfig:
        """Build from :meth:`to_dict` output; blocks may be strings or dicts."""
        data = dict(data)
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown architecture keys: {sorted(unknown)}")
        if not isinstance(data.get("blocks"), list):
            raise ValueError("'blocks' must be a list of block strings or objects")
        blocks = []
        prev = int(data.get("stem_channels", 32))
        for b in data["blocks"]:
            cfg = MBConvConfig.from_string(b, prev) if isinstance(b, str) else MBConvConfig(**b)
            blocks.append(cfg)
            prev = cfg.out_channels
        data["blocks"] = tuple(blocks)
        return cls(**data)

    def scaled(self, width: float = 1.0, depth: float = 1.0, resolution: float = 1.0,
               name: str | None = None) -> ArchConfig:
        """Scale width (channels, rounded to 8), depth (layers, ceil) and input resolution."""
        stem = adjust_channels(self.stem_channels, width)
        blocks = []
        prev = stem
        for b in self.blocks:
            out = adjust_channels(b.out_channels, width)
            blocks.append(replace(b, in_channels=prev, out_channels=out,
                                  layers=adjust_depth(b.layers, depth)))
            prev = out
        return replace(
            self,
            name=name or self.name,
            stem_channels=stem,
            blocks=tuple(blocks),
            head_channels=adjust_channels(self.head_channels, width),
            resolution=int(round(self.resolution * resolution)),
        )

    def table(self) -> list[tuple[str, str, int, int]]:
        """Rows (operator, resolution, channels, layers) in the layout of the paper's Table 2."""
        rows = [(f"Conv{self.stem_kernel}x{self.stem_kernel}",
                 f"{self.resolution}x{self.resolution}", self.stem_channels, 1)]
        res = math.ceil(self.resolution / self.stem_stride)
        for b in self.blocks:
            se = "" if b.se else " (no SE)"
            rows.append((f"MBConv{b.expand_ratio}, k{b.kernel}x{b.kernel}{se}",
                         f"{res}x{res}", b.out_channels, b.layers))
            res = math.ceil(res / b.stride)
        rows.append(("Conv1x1 & Pooling & FC", f"{res}x{res}", self.head_channels, 1))
        return rows


def _stages(stem: int, spec: list[tuple[int, int, int, int, int]], se: bool = True
            ) -> tuple[MBConvConfig, ...]:
    """(expand, kernel, stride, out, layers) rows to chained MBConvConfigs."""
    out, prev = [], stem
    for e, k, s, c, n in spec:
        out.append(MBConvConfig(e, k, s, prev, c, n, se))
        prev = c
    return tuple(out)


#: EfficientNet-G0, the paper's Table 2. The Resolution column is each stage's *input*
#: resolution (as in EfficientNet-B0's table), so the stem and the first block of stages 3-5
#: have stride 2: 32 -> 16 -> 16 -> 8 -> 4 -> 2.
G0 = ArchConfig(
    name="efficientnet-g0",
    stem_kernel=5,
    stem_channels=32,
    blocks=_stages(32, [
        (1, 3, 1, 16, 1),
        (6, 3, 2, 24, 2),
        (6, 5, 2, 40, 2),
        (6, 3, 2, 80, 3),
    ]),
    head_channels=160,
    resolution=32,
)

#: EfficientNet-B0 (Tan & Le 2019, Table 1), the paper's main baseline, in the same form.
B0 = ArchConfig(
    name="efficientnet-b0",
    stem_kernel=3,
    stem_channels=32,
    blocks=_stages(32, [
        (1, 3, 1, 16, 1),
        (6, 3, 2, 24, 2),
        (6, 5, 2, 40, 2),
        (6, 3, 2, 80, 3),
        (6, 5, 1, 112, 3),
        (6, 5, 2, 192, 4),
        (6, 3, 1, 320, 1),
    ]),
    head_channels=1280,
    resolution=224,
    stochastic_depth=0.2,
)

#: MobileNetV2 (Sandler et al. 2018, Table 2): inverted residuals without SE, ReLU6.
MOBILENET_V2 = ArchConfig(
    name="mobilenet-v2",
    stem_kernel=3,
    stem_channels=32,
    blocks=_stages(32, [
        (1, 3, 1, 16, 1),
        (6, 3, 2, 24, 2),
        (6, 3, 2, 32, 3),
        (6, 3, 2, 64, 4),
        (6, 3, 1, 96, 3),
        (6, 3, 2, 160, 3),
        (6, 3, 1, 320, 1),
    ], se=False),
    head_channels=1280,
    resolution=224,
    activation="relu6",
    stochastic_depth=0.0,
)

#: Paper Sec. 3.3: alpha (depth), beta (width), gamma (resolution) found for G0.
PAPER_SCALING = (1.15, 1.1, 1.2)


def compound_scale(base: ArchConfig, phi: float, alpha: float = PAPER_SCALING[0],
                   beta: float = PAPER_SCALING[1], gamma: float = PAPER_SCALING[2],
                   name: str | None = None) -> ArchConfig:
    """Paper Eq. 6: depth ``alpha**phi``, width ``beta**phi``, resolution ``gamma**phi``."""
    if min(alpha, beta, gamma) < 1:
        raise ValueError("alpha, beta and gamma must be >= 1 (paper Eq. 6)")
    return base.scaled(width=beta**phi, depth=alpha**phi, resolution=gamma**phi, name=name)


def _g(phi: int) -> ArchConfig:
    arch = compound_scale(G0, phi, name=f"efficientnet-g{phi}")
    return replace(arch, meta={"phi": phi, "alpha": PAPER_SCALING[0],
                               "beta": PAPER_SCALING[1], "gamma": PAPER_SCALING[2]})


#: Named architectures (like timm's variant table); G1-G3 are G0 scaled with phi = 1..3.
VARIANTS: dict[str, ArchConfig] = {
    "efficientnet-g0": G0,
    "efficientnet-g1": _g(1),
    "efficientnet-g2": _g(2),
    "efficientnet-g3": _g(3),
    "efficientnet-b0": B0,
    "mobilenet-v2": MOBILENET_V2,
}


#: Parameters and FLOPs quoted in the paper (Table 4, Sec. 5.1; MobileNetV2 from Sandler et
#: al. 2018), shown beside the counted figures by ``astromorph models``; comparison only.
PAPER_FIGURES: dict[str, tuple[str, str]] = {
    "efficientnet-g0": ("-", "~35M"),
    "efficientnet-g2": ("0.85M", "79M"),
    "efficientnet-g3": ("2.17M", "210M"),
    "efficientnet-b0": ("5.29M", "390M"),
    "mobilenet-v2": ("3.4M", "300M"),
}


def load_arch(path: str | Path) -> ArchConfig:
    """Read an architecture/genotype JSON file (as written by ``astromorph search``)."""
    try:
        data = json.loads(Path(path).read_text())
        if not isinstance(data, dict) or not isinstance(data.get("arch", data), dict):
            raise ValueError("expected a JSON object (with the architecture under 'arch')")
        return ArchConfig.from_dict(data.get("arch", data))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        from ..errors import UserError

        raise UserError(f"cannot read architecture file {path}: {exc}") from None


def get_arch(name_or_path: str) -> ArchConfig:
    """A variant by name (``efficientnet-g0`` ... ``mobilenet-v2``, or ``g0``) or a JSON file."""
    key = name_or_path.lower()
    for candidate in (key, f"efficientnet-{key}"):
        if candidate in VARIANTS:
            return VARIANTS[candidate]
    if Path(name_or_path).is_file():
        return load_arch(name_or_path)
    from ..errors import UserError, suggest_names

    raise UserError(f"unknown architecture {name_or_path!r}{suggest_names(key, VARIANTS)}; "
                    f"known: {', '.join(VARIANTS)} or a JSON genotype file")
