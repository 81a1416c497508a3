"""Train several architectures with one recipe and tabulate them (the paper's Tables 3-4).

``astromorph compare`` is the single command behind ``docs/results.md``: each architecture is
trained on the ``train`` split with the same recipe and budget, selected on ``val``, scored on
``test`` through the classify pipeline, and one Markdown row is written per model. Model files
already in the output folder are reused, so an interrupted comparison resumes where it stopped
(a half-trained model resumes from its checkpoint).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..errors import UserError, refuse_repeats
from ..fileio import atomic_write_text
from ..models.model_file import MAX_INPUT_SIZE, MIN_INPUT_SIZE

__all__ = ["parse_arch_spec", "compare", "summarise", "markdown_table", "per_class_table",
           "wilson_interval"]


def parse_arch_spec(spec: str) -> tuple[str, int | None]:
    """``"efficientnet-b0@64"`` -> ``("efficientnet-b0", 64)``; no ``@`` keeps the native size."""
    name, _, res = spec.partition("@")
    if res and not (res.isdigit() and MIN_INPUT_SIZE <= int(res) <= MAX_INPUT_SIZE):
        raise UserError(f"architecture {spec!r}: the part after @ must be a size of "
                        f"{MIN_INPUT_SIZE}-{MAX_INPUT_SIZE} pixels")
    return name, int(res) if res else None


def compare(labels: str | os.PathLike, image_dir: str | os.PathLike, archs: list[str],
            out_dir: str | os.PathLike, id_column: str = "OBJID",
            classes: list[str] | None = None, progress: bool | None = None,
            seeds: list[int] | tuple[int, ...] = (0,), **recipe: Any) -> list[dict[str, Any]]:
    """Train and evaluate each of ``archs`` once per seed; return one summary per arch.

    Parameters
    ----------
    labels, image_dir
        Labelled catalog with ``label`` and ``split`` columns, and its image folder.
    archs : list of str
        Architecture names, optionally ``@size`` for a non-native input size.
    out_dir
        Where model files (``<arch>-s<seed>.amz``, all kept, so any row can be re-evaluated),
        reports (``<arch>-s<seed>.json``, ``<arch>.json``) and confusion PNGs go.
    seeds : list of int
        One training per seed; the summary gives the mean and standard deviation over them.
    **recipe
        :class:`~astro_morph.training.train.TrainConfig` fields shared by every model
        (epochs, lr, schedule, batch_size, class_weighting, threads, device, ...).
    """
    from ..models.arch import get_arch
    from ..models.model_file import read_bundle
    from .evaluate import evaluate
    from .train import TrainConfig, train

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if not archs:
        raise UserError("compare needs at least one architecture (--arch)")
    refuse_repeats(archs, "--arch")
    specs = [parse_arch_spec(a) for a in archs]
    for name, _ in specs:
        get_arch(name)  # unknown names fail before hours of training, not after
    if not seeds:
        raise UserError("compare needs at least one seed")
    from .data import load_labels, split_rows

    table = load_labels(labels, id_column)
    for split in ("train", "val", "test"):  # found before the training, not after it
        try:
            split_rows(table, split, labels)
        except UserError as err:
            raise UserError(f"{err} (compare trains on 'train', selects on 'val' and reports "
                            f"'test')") from None
    summaries = []
    for name, res in specs:
        # A genotype file (from `astromorph search`) is named by its file stem.
        label = (Path(name).stem if name.endswith(".json") else name) + (f"@{res}" if res else "")
        stem = label.replace("@", "-")
        runs = []
        for seed in seeds:
            model = out_dir / f"{stem}-s{seed}.amz"
            if not model.exists():
                cfg = TrainConfig(labels=str(labels), image_dir=str(image_dir),
                                  output=str(model), id_column=id_column, arch=name,
                                  resolution=res, class_names=classes, name=stem, seed=seed,
                                  **recipe)
                ckpt = Path(str(model) + ".ckpt") / "checkpoint.pt"
                train(cfg, resume=ckpt.exists(), progress=progress)
            run = {"seed": seed, "model": str(model)}
            provenance = read_bundle(model).config.get("provenance") or {}
            for added in ("pseudo_labels", "extra_labels"):  # what joined training, per class
                if provenance.get(added) is not None:
                    run[added] = provenance[added]
            for split in ("val", "test"):
                run[split] = evaluate(model, labels, image_dir, id_column=id_column,
                                      split=split, progress=progress, timing=split == "test",
                                      png=out_dir / f"{stem}-s{seed}_confusion.png"
                                      if split == "test" else None)
            atomic_write_text(out_dir / f"{stem}-s{seed}.json",
                              json.dumps(run, indent=1, default=str))
            runs.append(run)
        from .evaluate import plot_learning_curves

        plot_learning_curves([r["model"] for r in runs], out_dir / f"{stem}_learning_curve.png",
                             title=f"{label}: {recipe_title(recipe)}")
        summary = summarise(runs)
        summary.update({"arch": label, "recipe": recipe, "seeds": list(seeds)})
        atomic_write_text(out_dir / f"{stem}.json", json.dumps(summary, indent=1, default=str))
        summaries.append(summary)
    return summaries


def recipe_title(recipe: dict[str, Any]) -> str:
    """``k=v, ...`` of the recipe, without the settings that do nothing in it (a distillation
    weight with no teacher, a pseudo-label threshold with no folder, winding values and
    weight with no winding column, EMA, mixup, SAM or weight decay 0) or are the paper's
    (colour jitter on, its crop)."""
    idle = {"distill_weight": not recipe.get("teacher"),
            "pseudo_threshold": not recipe.get("pseudo_labels"), "ema": not recipe.get("ema"),
            "mixup": not recipe.get("mixup"), "sam": not recipe.get("sam"),
            "weight_decay": not recipe.get("weight_decay"),
            "colour_jitter": recipe.get("colour_jitter", True),
            "crop_fraction": recipe.get("crop_fraction") is None,
            "spin_values": not recipe.get("spin_column"),
            "spin_weight": not recipe.get("spin_column")}
    return ", ".join(f"{k}={v}" for k, v in recipe.items() if not idle.get(k))


#: Metrics summarised over seeds (mean and standard deviation).
METRICS = ("accuracy", "f1_macro", "f1_weighted", "precision_weighted", "recall_weighted", "ece")


def _mean_std(values: list[float]) -> dict[str, float]:
    import numpy as np

    a = np.asarray(values, dtype=float)
    return {"mean": float(a.mean()), "std": float(a.std(ddof=1)) if len(a) > 1 else 0.0,
            "values": [float(v) for v in a]}


def wilson_interval(accuracy: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of an accuracy measured on ``n`` images."""
    import math

    if n <= 0:
        return (float("nan"), float("nan"))
    centre = (accuracy + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(accuracy * (1 - accuracy) / n + z * z / (4 * n * n))
    return (centre - half, centre + half)


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and spread over seeds of the val and test metrics, per-class test metrics, the
    test accuracy's binomial 95 % interval, and the models' cost (the same for every seed)."""
    out: dict[str, Any] = {"runs": [{"seed": r["seed"], "model": r["model"]} for r in runs]}
    for split in ("val", "test"):
        out[split] = {m: _mean_std([r[split][m] for r in runs]) for m in METRICS}
        out[split]["n"] = runs[0][split]["n"]
    classes = list(runs[0]["test"]["per_class"])
    out["test_per_class"] = {c: {m: _mean_std([r["test"]["per_class"][c][m] for r in runs])
                                 for m in ("precision", "recall", "f1")} for c in classes}
    out["test_accuracy_ci95"] = wilson_interval(out["test"]["accuracy"]["mean"],
                                                out["test"]["n"])
    first = runs[0]["test"]
    for key in ("params", "macs", "input_size", "images_per_s", "latency_ms"):
        if key in first:
            out[key] = first[key]
    seconds = [r["test"].get("train_seconds") for r in runs]
    out["train_seconds"] = (sum(seconds) / len(seconds)) if all(seconds) else None
    return out


def mean_sd(stat: dict[str, float], digits: int = 3) -> str:
    """``mean ± sd`` of one summarised metric, as the tables print it."""
    return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"


def markdown_table(summaries: list[dict[str, Any]]) -> str:
    """One row per architecture: val and test means ± standard deviation over seeds (the
    paper's Tables 3-4 layout plus macro-F1, ECE, the interval, speed and cost)."""
    head = ("| model | input | params | MACs | seeds | val accuracy | val macro-F1 "
            "| test accuracy | test 95% CI | test macro-F1 | test F1 (w) | test ECE "
            "| CPU img/s | train time / seed |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    rows = [head]
    for r in summaries:
        lo, hi = r["test_accuracy_ci95"]
        # Reports written with --no-timing carry no speed.
        speed = f"{r['images_per_s']:.0f}" if "images_per_s" in r else "-"
        rows.append(
            f"| {r['arch']} | {r.get('input_size', '?')} | {r.get('params', 0) / 1e6:.3f} M "
            f"| {r.get('macs', 0) / 1e6:.1f} M | {len(r['runs'])} "
            f"| {mean_sd(r['val']['accuracy'])} | {mean_sd(r['val']['f1_macro'])} "
            f"| {mean_sd(r['test']['accuracy'])} | {lo:.3f}-{hi:.3f} "
            f"| {mean_sd(r['test']['f1_macro'])} | {mean_sd(r['test']['f1_weighted'])} "
            f"| {mean_sd(r['test']['ece'])} | {speed} "
            f"| {(r.get('train_seconds') or 0) / 60:.1f} min |")
    return "\n".join(rows) + "\n"


def per_class_table(summary: dict[str, Any]) -> str:
    """Test precision / recall / F1 per class, mean ± standard deviation over seeds."""
    rows = ["| class | precision | recall | F1 |", "|---|---|---|---|"]
    for c, m in summary["test_per_class"].items():
        cells = " | ".join(mean_sd(m[k]) for k in ("precision", "recall", "f1"))
        rows.append(f"| {c} | {cells} |")
    return "\n".join(rows) + "\n"
