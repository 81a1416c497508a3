"""``astromorph scale``: the paper's compound-scaling grid search (Sec. 3.3).

Step 1: with phi = 1, try alpha, beta, gamma >= 1 on a grid (step 0.05 by default) whose
FLOPs factor alpha * beta**2 * gamma**2 lies within ``tolerance`` of 2 (the paper's
constraint; 0.1 by default, i.e. 1.9-2.1, because a 0.05 grid rarely hits 2 exactly), train
each scaled baseline briefly with the ordinary trainer, and keep the best validation
accuracy. Candidates are tried nearest-to-2 first, and the paper's (1.15, 1.1, 1.2) first of
all, so a small budget still compares the paper's choice with its closest rivals. Step 2:
build G1..Gn = the baseline scaled with phi = 1..n and write each as an architecture JSON.

Finished candidates are recorded in ``<out>/scale.json``; a rerun (``resume``) skips them and
a half-trained candidate resumes from its own checkpoint.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError
from ..fileio import atomic_write_text
from ..models.arch import PAPER_SCALING, ArchConfig, compound_scale
from ..models.flops import count
from ..models.model_file import MAX_INPUT_SIZE, MIN_INPUT_SIZE

__all__ = ["grid", "realised_ratios", "scale_search", "build_family", "family_ratios",
           "write_family"]


def grid(step: float = 0.05, upper: tuple[float, float, float] = (1.5, 1.3, 1.3),
         target: float = 2.0, tolerance: float = 0.1) -> list[tuple[float, float, float]]:
    """(alpha, beta, gamma) on the grid with ``|alpha*beta^2*gamma^2 - target| <= tolerance``.

    Ordered: the paper's triple first when it qualifies, then by distance to ``target``, then
    lexicographically (deterministic).
    """
    def axis(hi: float) -> list[float]:
        n = int(round((hi - 1.0) / step))
        return [round(1.0 + i * step, 4) for i in range(n + 1)]

    found = [(a, b, g) for a, b, g in itertools.product(axis(upper[0]), axis(upper[1]),
                                                        axis(upper[2]))
             if abs(a * b * b * g * g - target) <= tolerance + 1e-9]
    found.sort(key=lambda t: (t != PAPER_SCALING, abs(t[0] * t[1] ** 2 * t[2] ** 2 - target),
                              t))
    return found


#: Nominal alpha * beta**2 * gamma**2 window searched for realised 2x candidates.
NOMINAL_WINDOW = 0.6


def realised_ratios(base: ArchConfig, alpha: float, beta: float, gamma: float, phis: int,
                    num_classes: int = 5) -> list[float]:
    """Multiply-add ratio of each phi step (G1/G0, G2/G1, ...) after the rounding of widths
    to multiples of 8, depths up and resolutions to whole pixels: the cost the grid's
    nominal ``alpha * beta**2 * gamma**2 = 2`` actually buys."""
    family = build_family(base, alpha, beta, gamma, phis, num_classes=num_classes)
    return family_ratios(base, family, num_classes)


def _noise_note(done: dict[str, dict], best_key: str) -> str:
    """Whether the best candidate's mean is within one pooled spread of the runner-up's."""
    means = sorted(((v["val_accuracy_mean"], k) for k, v in done.items()), reverse=True)
    if len(means) < 2:
        return "one candidate: no comparison"
    (m1, _), (m2, k2) = means[0], means[1]
    spread = max(done[best_key]["val_accuracy_std"], done[k2]["val_accuracy_std"])
    if m1 - m2 <= spread:
        return (f"within noise: the runner-up {k2} is {m1 - m2:.4f} behind, less than the "
                f"seed spread {spread:.4f}")
    return f"separated: {m1 - m2:.4f} ahead of {k2}, seed spread {spread:.4f}"


def build_family(base: ArchConfig, alpha: float, beta: float, gamma: float, phis: int,
                 prefix: str = "g", hold_ratio: float | None = None,
                 num_classes: int = 5) -> list[ArchConfig]:
    """G1..Gn: ``base`` compound-scaled with phi = 1..``phis``.

    With ``hold_ratio`` (e.g. 2.0), each step's input size is re-rounded so that the step's
    multiply-add ratio over the previous member is as close to ``hold_ratio`` as whole
    pixels allow: rounding widths to multiples of 8 and depths up moves a small network's
    cost in jumps, and the resolution (cost ~ side squared) is the one knob fine enough to
    take the slack. The nominal size is kept in ``meta["nominal_resolution"]``.
    """
    family, prev = [], base
    for phi in range(1, phis + 1):
        try:
            arch = compound_scale(base, phi, alpha, beta, gamma, name=f"{prefix}{phi}")
        except ValueError as err:  # past the largest input size a model file may have
            raise UserError(f"{prefix}{phi} cannot be built ({err}): with these coefficients "
                            f"ask for at most {phi - 1} scaling steps (--phis)") from None
        meta = {"phi": phi, "alpha": alpha, "beta": beta, "gamma": gamma, "base": base.name}
        if hold_ratio is not None:
            arch, meta["nominal_resolution"] = _hold(arch, prev, hold_ratio, num_classes), \
                arch.resolution
        family.append(replace(arch, meta=meta))
        prev = family[-1]
    return family


def _hold(arch: ArchConfig, prev: ArchConfig, ratio: float, num_classes: int) -> ArchConfig:
    """``arch`` at the whole-pixel input size whose cost over ``prev`` is nearest ``ratio``
    (never smaller than ``prev``'s size: a bigger family member does not see less)."""
    target = ratio * count(prev, num_classes).macs
    sizes = range(max(MIN_INPUT_SIZE, prev.resolution),
                  min(2 * arch.resolution, MAX_INPUT_SIZE) + 1)
    if not sizes:
        return arch
    best = min(sizes, key=lambda r: (abs(count(arch, num_classes, r).macs - target), r))
    return replace(arch, resolution=best)


def family_ratios(base: ArchConfig, family: list[ArchConfig],
                  num_classes: int = 5) -> list[float]:
    """Multiply-add ratio of each step of ``family`` over the previous member (G1/G0 ...)."""
    macs = [count(a, num_classes).macs for a in [base, *family]]
    return [macs[i + 1] / macs[i] for i in range(len(family))]


def write_family(base: ArchConfig, alpha: float, beta: float, gamma: float, phis: int,
                 out_dir: str | os.PathLike, prefix: str = "g",
                 hold_ratio: float | None = 2.0,
                 num_classes: int = 5) -> tuple[list[ArchConfig], list[Path], list[float]]:
    """Build G1..G``phis`` (:func:`build_family`) and write each as ``<prefix><phi>.json``.

    Returns the family, the files written and each phi step's multiply-add ratio.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    family = build_family(base, alpha, beta, gamma, phis, prefix=prefix,
                          hold_ratio=hold_ratio, num_classes=num_classes)
    files = []
    for arch in family:
        path = out / f"{arch.name}.json"
        atomic_write_text(path, json.dumps({"arch": arch.to_dict()}, indent=1))
        files.append(path)
    return family, files, family_ratios(base, family, num_classes)


def scale_search(base: ArchConfig, labels: str | os.PathLike, image_dir: str | os.PathLike,
                 out_dir: str | os.PathLike, id_column: str = "OBJID",
                 class_names: list[str] | None = None, epochs: int = 3,
                 max_candidates: int | None = 6, budget_minutes: float | None = None,
                 phis: int = 3, step: float = 0.05, tolerance: float = 0.1,
                 resume: bool = False, progress: bool | None = None,
                 seeds: tuple[int, ...] = (0, 1), hold_ratio: float | None = 2.0,
                 prefix: str = "g", **recipe: Any) -> dict[str, Any]:
    """Grid-search alpha, beta, gamma at phi = 1, then write G1..G``phis`` JSON files.

    Candidates are the grid points whose *realised* G1/G0 multiply-add ratio
    (:func:`realised_ratios`, after rounding) is within ``tolerance`` of 2: the paper's
    triple first if it is one of them, then the closest first.
    Each is trained once per seed; the choice is by mean validation accuracy, and the
    summary says whether it is within the seed spread of the runner-up. ``recipe`` goes to
    :class:`~astro_morph.training.train.TrainConfig` (batch_size, lr, schedule, limit, ...).
    ``hold_ratio`` re-rounds each family member's input size so every phi step costs about
    that much more than the one before (:func:`build_family`); ``None`` keeps Eq. 6's sizes.
    The family's files are ``<prefix>1.json`` ... in ``out_dir``.
    """
    from ..training.train import TrainConfig, train

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state_path = out / "scale.json"
    state: dict[str, Any] = {"base": base.to_dict(), "epochs": epochs, "recipe": recipe,
                             "seeds": list(seeds), "hold_ratio": hold_ratio, "done": {},
                             "elapsed": 0.0}
    if resume and state_path.is_file():
        saved = json.loads(state_path.read_text())
        if (saved["base"], saved["epochs"], saved["recipe"], saved.get("seeds"),
                saved.get("hold_ratio")) != (state["base"], epochs,
                                             json.loads(json.dumps(recipe)), list(seeds),
                                             hold_ratio):
            raise UserError(f"{state_path} was made with another base or recipe; start "
                            "without --resume or in another folder")
        state = saved
    elif state_path.is_file() and not resume:
        raise UserError(f"{state_path} exists; pass --resume to continue it or use another "
                        "folder")
    k = len(class_names) if class_names else 5
    # Rounding (widths to multiples of 8, depths up) moves a small network's real cost far
    # from the nominal product, so candidates come from a wide nominal window and are kept
    # by the ratio they really buy. With ``hold_ratio`` each candidate is the family's own
    # G1 (input size re-rounded to cost ~2x the base), so what is trained is what is kept;
    # the size then absorbs gamma, and triples giving the same network are trained once.
    nominal = grid(step, tolerance=max(tolerance, NOMINAL_WINDOW))

    def phi1(c: tuple[float, float, float]) -> ArchConfig:
        if hold_ratio is None:
            return compound_scale(base, 1, *c)
        return build_family(base, *c, 1, hold_ratio=hold_ratio, num_classes=k)[0]

    nets = {c: phi1(c) for c in nominal}
    base_macs = count(base, k).macs
    realised = {c: count(nets[c], k).macs / base_macs for c in nominal}
    # The paper's triple first when it qualifies, so a small budget still compares it with
    # its closest rivals; then by closeness of the realised ratio to 2.
    ordered = sorted((c for c in nominal if abs(realised[c] - 2.0) <= tolerance),
                     key=lambda c: (c != PAPER_SCALING, abs(realised[c] - 2.0), c))
    candidates, seen = [], set()
    for c in ordered:
        net = nets[c]
        sig = json.dumps({f: v for f, v in net.to_dict().items() if f not in ("name", "meta")},
                         sort_keys=True)
        if sig not in seen:
            seen.add(sig)
            candidates.append(c)
    if max_candidates is not None:
        candidates = candidates[:max_candidates]
    for c in candidates:  # a family too large to build fails now, not after the training
        build_family(base, *c, phis, hold_ratio=hold_ratio, num_classes=k)
    started = time.perf_counter() - state["elapsed"]
    for a, b, g in candidates:
        key = f"{a:.2f},{b:.2f},{g:.2f}"
        if key in state["done"]:
            continue
        if budget_minutes is not None and state["elapsed"] >= budget_minutes * 60:
            break
        arch = replace(nets[(a, b, g)], name=f"scale-{key}")
        arch_file = out / f"candidate_{key.replace(',', '_')}.json"
        atomic_write_text(arch_file, json.dumps({"arch": arch.to_dict()}))
        runs = []
        for seed in seeds:
            model = out / f"candidate_{key.replace(',', '_')}-s{seed}.amz"
            ckpt = Path(str(model) + ".ckpt") / "checkpoint.pt"
            if model.is_file():  # kept from an interrupted run
                from ..models.model_file import read_bundle

                report = read_bundle(model).config["provenance"]["val_report"]
                runs.append({"val": report, "train_seconds": None})
                continue
            cfg = TrainConfig(labels=str(labels), image_dir=str(image_dir), output=str(model),
                              id_column=id_column, arch=str(arch_file),
                              class_names=class_names, epochs=epochs, name=arch.name,
                              seed=seed, **recipe)
            runs.append(train(cfg, resume=ckpt.is_file(), progress=progress))
        accs = np.array([r["val"]["accuracy"] for r in runs])
        c = count(arch, len(class_names or runs[0]["val"]["class_names"]), arch.resolution)
        state["done"][key] = {"alpha": a, "beta": b, "gamma": g,
                              "flops_factor": a * b * b * g * g,
                              "realised_ratio": realised[(a, b, g)],
                              "val_accuracy_mean": float(accs.mean()),
                              "val_accuracy_std": float(accs.std(ddof=1)) if len(accs) > 1
                              else 0.0,
                              "val_accuracy": [float(v) for v in accs],
                              "params": c.params, "macs": c.macs,
                              "resolution": arch.resolution,
                              "train_seconds": [r["train_seconds"] for r in runs]}
        state["elapsed"] = time.perf_counter() - started
        atomic_write_text(state_path, json.dumps(state, indent=1))
    if not state["done"]:
        raise UserError("no scaling candidate finished within the budget")
    best_key = max(state["done"], key=lambda k: (state["done"][k]["val_accuracy_mean"],
                                                  -state["done"][k]["macs"]))
    best = state["done"][best_key]
    state["choice"] = _noise_note(state["done"], best_key)
    state["nominal_family_ratios"] = realised_ratios(base, best["alpha"], best["beta"],
                                                     best["gamma"], phis, k)
    family, files, state["family_ratios"] = write_family(
        base, best["alpha"], best["beta"], best["gamma"], phis, out, prefix=prefix,
        hold_ratio=hold_ratio, num_classes=k)
    state["best"] = best_key
    atomic_write_text(state_path, json.dumps(state, indent=1))
    return {"best": best, "candidates": state["done"], "family": family, "files": files,
            "choice": state["choice"], "family_ratios": state["family_ratios"],
            "paper": dict(zip(("alpha", "beta", "gamma"), PAPER_SCALING, strict=True))}
