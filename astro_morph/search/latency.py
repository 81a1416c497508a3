"""CPU latency of the search space's ops, measured once with ONNX Runtime (MnasNet-style).

``astromorph search --cost latency`` puts predicted latency in place of FLOPs in the paper's
Eq. 1: the product runs on CPUs through ONNX Runtime, where FLOPs are a poor guide (a
depthwise 5x5 or an SE block costs more time than its multiply-adds suggest). Each op a
genotype can use (stem, every stage's MBConv at each input width, width, expansion, kernel,
stride and SE, at the resolution it sees, and the head) is exported alone to ONNX and timed
in a single-threaded session at batch 32, the backend's CPU setting; a network's predicted
latency is the sum of its ops. The table is kept on disk per CPU and space
(``<cache root>/latency/``), so it is measured once per machine.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import platform
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from .space import SearchSpace

__all__ = ["LatencyTable", "measure_seconds"]

BATCH = 32


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def measure_seconds(module: Any, shape: tuple[int, int, int], repeats: int = 15) -> float:
    """Seconds per image of ``module`` (torch, eval) on inputs ``(BATCH, *shape)`` in a
    single-threaded ONNX Runtime session (median of ``repeats`` runs after a warm-up)."""
    import onnxruntime as ort
    import torch

    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), (torch.rand(BATCH, *shape),), buf, dynamo=False,
                          input_names=["x"], output_names=["y"], opset_version=17)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(buf.getvalue(), opts, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random((BATCH, *shape), dtype=np.float32)
    for _ in range(3):
        session.run(None, {"x": x})
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        session.run(None, {"x": x})
        times.append(time.perf_counter() - t)
    return float(np.median(times)) / BATCH


class LatencyTable:
    """Measured op latencies of ``space`` (milliseconds per image) and network predictions.

    Parameters
    ----------
    space : SearchSpace
        The space whose ops are timed (at ``space.resolution``).
    num_classes : int
        Classes of the head.
    path : path, optional
        The table's file (default: under the cache root, keyed by CPU and space).
    """

    def __init__(self, space: SearchSpace, num_classes: int,
                 path: str | Path | None = None) -> None:
        self.space, self.num_classes = space, num_classes
        key = hashlib.sha256(json.dumps([_cpu_name(), repr(space.stages), space.stem_kernel,
                                         space.stem_channels, space.head_channels,
                                         space.resolution, num_classes]).encode()
                             ).hexdigest()[:16]
        if path is None:
            from ..fileio import cache_root

            path = cache_root() / "latency" / f"{key}.json"
        self.path = Path(path)
        self.ms: dict[str, float] = {}
        self.measured = 0  # ops timed by this object (0 when the table came from disk)
        if self.path.is_file():
            try:
                self.ms = json.loads(self.path.read_text())["ms"]
            except (OSError, ValueError, KeyError):
                self.ms = {}

    # --- the ops a genotype uses ---------------------------------------------------------
    def _sides(self) -> list[int]:
        """Input side of every stage (after the stride-2 stem)."""
        side = math.ceil(self.space.resolution / 2)
        out = []
        for s in self.space.stages:
            out.append(side)
            side = math.ceil(side / s.stride)
        return out

    def ops(self, genotype: list[int]) -> list[tuple[str, dict]]:
        """(key, spec) of every op of ``genotype``, stem to head."""
        sides = self._sides()
        prev = self.space.stem_channels
        ops = [("stem", {"kind": "stem"})]
        for i, (s, v) in enumerate(zip(self.space.stages, self.space.decode(genotype),
                                       strict=True)):
            for layer in range(v["layers"]):
                cin = prev if layer == 0 else v["width"]
                stride = s.stride if layer == 0 else 1
                side = sides[i] if layer == 0 else math.ceil(sides[i] / s.stride)
                spec = {"kind": "mbconv", "cin": cin, "cout": v["width"], "e": v["expand"],
                        "k": v["kernel"], "s": stride, "se": v["se"], "side": side}
                ops.append((f"mb_c{cin}_o{v['width']}_e{v['expand']}_k{v['kernel']}"
                            f"_s{stride}_{'se' if v['se'] else 'nose'}_r{side}", spec))
            prev = v["width"]
        last_side = math.ceil(sides[-1] / self.space.stages[-1].stride)
        ops.append((f"head_c{prev}_r{last_side}", {"kind": "head", "cin": prev,
                                                   "side": last_side}))
        return ops

    def _module(self, spec: dict) -> tuple[Any, tuple[int, int, int]]:
        from torch import nn

        from ..models.efficientnet_g import MBConv, _conv_bn

        side0 = self.space.resolution
        if spec["kind"] == "stem":
            return (_conv_bn(3, self.space.stem_channels, self.space.stem_kernel, 2),
                    (3, side0, side0))
        if spec["kind"] == "head":
            return (nn.Sequential(_conv_bn(spec["cin"], self.space.head_channels, 1),
                                  nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                  nn.Linear(self.space.head_channels, self.num_classes)),
                    (spec["cin"], spec["side"], spec["side"]))
        return (MBConv(spec["cin"], spec["cout"], spec["e"], spec["k"], spec["s"], spec["se"],
                       0.25, "silu", 0.0), (spec["cin"], spec["side"], spec["side"]))

    # --- measuring and predicting ----------------------------------------------------------
    def predict(self, genotype: list[int]) -> float:
        """Predicted milliseconds per image of ``genotype`` (ops not yet in the table are
        measured now and the table saved)."""
        total, new = 0.0, False
        for key, spec in self.ops(genotype):
            if key not in self.ms:
                module, shape = self._module(spec)
                self.ms[key] = measure_seconds(module, shape) * 1e3
                self.measured += 1
                new = True
            total += self.ms[key]
        if new:
            self.save()
        return total

    def save(self) -> None:
        from ..fileio import atomic_write_text

        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, json.dumps({"cpu": _cpu_name(), "batch": BATCH,
                                                 "ms": self.ms}, indent=0, sort_keys=True))
