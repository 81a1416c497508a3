"""Training speed, side by side in one run: ``python -m benchmarks.training [--write]``.

Times the trainer's own step (``astro_morph.training.train``: batch augmentation, forward,
loss, backward, Adam) on real gz1 training images for G0..G3 at their native sizes, in the
settings the trainer offers: the old defaults (batch 64, fp32, NCHW) beside channels-last,
bf16 autocast and larger batches. Prints images/s and the ratio to the old defaults, and a
breakdown of one step into augmentation / forward / backward / optimizer for the default G3.
With ``--write`` the tables go into ``docs/performance.md`` (training section).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GZ1 = ROOT.parent / "shared" / "data" / "gz1"


@dataclass(frozen=True)
class Setting:
    name: str
    batch: int
    channels_last: bool
    bf16: bool


SETTINGS = (
    Setting("before: batch 64, fp32, NCHW", 64, False, False),
    Setting("batch 64, channels-last", 64, True, False),
    Setting("batch 64, channels-last, bf16", 64, True, True),
    Setting("batch 32, channels-last", 32, True, False),
    Setting("batch 128, channels-last", 128, True, False),
    Setting("batch 256, channels-last", 256, True, False),
    Setting("batch 256, channels-last, bf16", 256, True, True),
)


def _data(size: int, n: int):
    from astro_morph.training.data import cache_size_for, load_labels, load_split

    classes = ["elliptical", "spiral", "edge_on", "merger", "dont_know"]
    table = load_labels(GZ1 / "labels.csv", "OBJID")
    return load_split(table, GZ1 / "images", "train", classes, "OBJID", cache_size_for(size),
                      train=True, limit=n)


def step_rate(arch_name: str, setting: Setting, data, steps: int,
              parts: dict[str, float] | None = None) -> float:
    """Images per second of the trainer's step (after two warm-up steps)."""
    import torch
    import torch.nn.functional as F

    from astro_morph.models.arch import get_arch
    from astro_morph.models.efficientnet_g import build_model
    from astro_morph.training.augment import augment_batch

    torch.manual_seed(0)
    arch = get_arch(arch_name)
    layout = torch.channels_last if setting.channels_last else torch.contiguous_format
    net = build_model(arch, 5).train().to(memory_format=layout)
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    images = torch.from_numpy(data.images)
    labels = torch.from_numpy(data.labels)
    gen = torch.Generator().manual_seed(0)
    clock = {"augmentation": 0.0, "forward": 0.0, "backward": 0.0, "optimizer": 0.0}

    def one(i: int) -> None:
        t0 = time.perf_counter()
        idx = torch.arange(i * setting.batch, (i + 1) * setting.batch) % len(labels)
        x = images[idx].permute(0, 3, 1, 2).float() / 255
        x = augment_batch(x, arch.resolution, data.region, generator=gen)
        x = ((x - 0.5) / 0.25).contiguous(memory_format=layout)
        t1 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=setting.bf16):
            logits = net(x).float()
        loss = F.cross_entropy(logits, labels[idx])
        t2 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        t3 = time.perf_counter()
        opt.step()
        t4 = time.perf_counter()
        for key, dt in zip(clock, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
            clock[key] += dt

    for i in range(2):
        one(i)
    clock = dict.fromkeys(clock, 0.0)
    start = time.perf_counter()
    for i in range(steps):
        one(i + 2)
    elapsed = time.perf_counter() - start
    if parts is not None:
        parts.update({k: v / elapsed for k, v in clock.items()})
    return steps * setting.batch / elapsed


def main() -> None:
    import torch

    from benchmarks.__main__ import _write_block, machine
    from benchmarks.arguments import count, seconds

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", default="efficientnet-g0,efficientnet-g1,efficientnet-g2,"
                    "efficientnet-g3")
    ap.add_argument("--images", type=count, default=1024, help="real training images used")
    ap.add_argument("--seconds", type=seconds, default=6.0,
                    help="about how long each row measures")
    ap.add_argument("--write", action="store_true", help="update docs/performance.md")
    args = ap.parse_args()
    threads = torch.get_num_threads()
    rows, parts = [], {}
    for arch in args.archs.split(","):
        size = {"efficientnet-g0": 32, "efficientnet-g1": 38, "efficientnet-g2": 46,
                "efficientnet-g3": 55}.get(arch)
        from astro_morph.models.arch import get_arch

        data = _data(size or get_arch(arch).resolution, args.images)
        base = None
        for setting in SETTINGS:
            # A first short run sizes the measured one to about --seconds.
            quick = step_rate(arch, setting, data, 2)
            steps = max(3, int(args.seconds * quick / setting.batch))
            breakdown = {} if arch == "efficientnet-g3" and setting is SETTINGS[1] else None
            rate = step_rate(arch, setting, data, steps, breakdown)
            if breakdown:
                parts = breakdown
            base = base or rate
            rows.append((arch, setting.name, rate, rate / base))
            print(f"{arch:16s} {setting.name:32s} {rate:8.1f} img/s  {rate / base:5.2f}x",
                  flush=True)
    cmd = " ".join(["python -m benchmarks.training", *sys.argv[1:]])
    lines = [f"Measured by `{cmd}` ({threads} threads) on "
             f"{args.images} real gz1 training images, on: {machine()}.", "",
             "| network | setting | training images/s | ratio to before |", "|---|---|---|---|"]
    lines += [f"| {a} | {s} | {r:,.0f} | {x:.2f}x |" for a, s, r, x in rows]
    if parts:
        lines += ["", f"One step of G3 ({SETTINGS[1].name}): " + ", ".join(
            f"{k} {v:.0%}" for k, v in parts.items()) + "."]
    block = "\n".join(lines)
    print(block)
    if args.write:
        _write_block("training", block)


if __name__ == "__main__":
    from astro_morph.errors import run_script

    run_script(main)
