"""``astromorph evaluate``: metrics of a model on a labelled split, through ``classify`` itself.

The images go through exactly the path ``astromorph classify`` uses (source, centring,
backend), so the reported figures are the ones a user reproduces with ``classify``.
"""

from __future__ import annotations

import os
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..api import classify
from ..columns import read_probabilities
from ..errors import UserError, some_values
from ..inference.load import load_model
from .data import load_labels, split_rows
from .metrics import classification_report

__all__ = ["evaluate", "plot_confusion", "latency", "recorded_history"]


def latency(clf: Any, repeats: int = 50, batch: int = 256) -> dict[str, float]:
    """Model-only CPU timing: median ms for one image, and images/s at ``batch``."""
    size = clf.input_size
    one = np.random.default_rng(0).random((1, size, size, 3), dtype=np.float32)
    many = np.random.default_rng(1).random((batch, size, size, 3), dtype=np.float32)
    clf.predict(one)
    clf.predict(many)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        clf.predict(one)
        times.append(time.perf_counter() - t)
    t = time.perf_counter()
    for _ in range(3):
        clf.predict(many)
    per_batch = (time.perf_counter() - t) / 3
    return {"latency_ms": float(np.median(times) * 1e3), "images_per_s": batch / per_batch}


def _train_seconds(model: Any, config: dict) -> float | None:
    """Training time from the log beside a model file (older files kept it inside)."""
    import json

    from ..models.model_file import train_log_path

    old = config.get("provenance", {}).get("train_seconds")
    if old is not None or not isinstance(model, (str, os.PathLike)):
        return old
    try:
        return json.loads(train_log_path(model).read_text()).get("train_seconds")
    except (OSError, ValueError):
        return None


def evaluate(model: str | os.PathLike | list[str | os.PathLike] | None, labels: str | os.PathLike,
             image_dir: str | os.PathLike, id_column: str = "OBJID", split: str = "test",
             backend: str = "onnx", label_column: str = "label", split_column: str = "split",
             png: str | os.PathLike | None = None, timing: bool = True,
             progress: bool | None = None, fast_decode: bool = False,
             tta: bool = False) -> dict[str, Any]:
    """Classify the ``split`` rows of ``labels`` and score them against ``label_column``.

    ``model`` may be a list: the members' probabilities are averaged
    (:class:`~astro_morph.inference.ensemble.EnsembleClassifier`)."""
    from ..models.arch import ArchConfig
    from ..models.flops import count

    table = load_labels(labels, id_column, label_column, split_column)
    rows = split_rows(table, split, labels, split_column)
    members = list(model) if isinstance(model, (list, tuple)) else [model]
    # The training log beside a model file is read for one model only, not an ensemble.
    single = members[0] if len(members) == 1 else None  # None alone: the default model
    if len(members) != 1:
        from ..inference.ensemble import EnsembleClassifier

        clf = EnsembleClassifier([load_model(m, backend) for m in members])
    else:
        clf = load_model(single, backend)
    if tta:
        from ..inference.tta import TTAClassifier

        clf = TTAClassifier(clf)
    classes = list(clf.class_names)
    truth = np.asarray(rows[label_column]).astype(str)
    known = np.isin(truth, classes)
    if not known.any():  # e.g. labels of another survey's classes, or the wrong --model
        raise UserError(f"{labels}: no {split!r} row has a label the model {clf.name} knows "
                        f"({', '.join(classes)}); the labels there: "
                        f"{some_values(truth.tolist()) or 'none'}")
    out = classify(rows[known], source="galaxyzoo", model=clf, image_dir=image_dir,
                   id_column=id_column, progress=progress, fast_decode=fast_decode)
    probs = read_probabilities(out, classes)
    ok = np.isfinite(probs).all(1)
    if not ok.any():
        raise UserError(f"{labels}: none of the {len(ok)} {split!r} rows could be classified "
                        f"(no readable image in {image_dir}?)")
    y = np.array([classes.index(t) for t in truth[known]])
    report = classification_report(y[ok], probs[ok], classes)
    report.update({"split": split, "model": clf.name, "sha256": clf.sha256, "backend": backend,
                   "skipped_unknown_label": int((~known).sum()), "failed_rows": int((~ok).sum()),
                   "fast_decode": fast_decode, "tta": tta,
                   "members": len(getattr(clf, "members", [clf]))})
    config = getattr(clf, "config", None)
    if config and "arch" in config:
        c = count(ArchConfig.from_dict(config["arch"]), len(classes), clf.input_size)
        report.update({"params": c.params, "macs": c.macs, "flops_eq13": c.flops_eq13,
                       "input_size": clf.input_size,
                       "train_seconds": _train_seconds(single, config)})
    if timing:
        report.update(latency(clf))
    if png:
        plot_confusion(np.array(report["confusion"]), classes, png,
                       f"{clf.name} on {split} ({report['n']} images): accuracy "
                       f"{report['accuracy']:.3f}")
    return report


def plot_confusion(matrix: np.ndarray, classes: list[str], path: str | os.PathLike,
                   title: str = "") -> Path:
    """Row-normalised confusion matrix (true rows, predicted columns) with counts, as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frac = matrix / np.maximum(matrix.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1.3 * len(classes) + 2, 1.1 * len(classes) + 1.5))
    ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(j, i, f"{frac[i, j]:.2f}\n({matrix[i, j]})", ha="center", va="center",
                    color="white" if frac[i, j] > 0.5 else "black", fontsize=8)
    ax.set_xticks(range(len(classes)), classes, rotation=30, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if title:
        ax.set_title(title, fontsize=9)
    return _save(fig, path, 120)


def _save(fig, path: str | os.PathLike, dpi: int) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return Path(path)


def recorded_history(model: str | os.PathLike) -> list[dict[str, Any]]:
    """The per-epoch history (loss, val accuracy, ...) a trained model file's provenance
    records; empty for a model trained elsewhere."""
    from ..models.model_file import read_bundle

    return (read_bundle(model).config.get("provenance") or {}).get("history") or []


def curve_labels(models: list[str | os.PathLike]) -> list[str]:
    """Legend names of model files: the file stem, with its folder where two files share a
    name (the same seed of one recipe from separate runs)."""
    stems = [Path(m).stem for m in models]
    return [f"{Path(m).parent.name}/{s}" if stems.count(s) > 1 else s
            for m, s in zip(models, stems, strict=True)]


def plot_learning_curves(models: list[str | os.PathLike], path: str | os.PathLike,
                         title: str = "") -> Path:
    """Validation accuracy and macro-F1 per epoch of trained model files (their recorded
    history), one line per file, as PNG: shows whether training has flattened."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # A recipe with teachers or pseudo-labels names long paths: wrap it, not cut it off.
    lines = textwrap.wrap(title, 180) if title else []
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2 + 0.18 * len(lines)))
    for model, label in zip(models, curve_labels(models), strict=True):
        history = recorded_history(model)
        if not history:
            continue
        epochs = [h["epoch"] + 1 for h in history]
        axes[0].plot(epochs, [h["loss"] for h in history], label=label)
        axes[1].plot(epochs, [h["val_accuracy"] for h in history], label=label)
        if "val_macro_f1" in history[0]:
            axes[2].plot(epochs, [h["val_macro_f1"] for h in history], label=label)
    for ax, name in zip(axes, ("training loss", "val accuracy", "val macro-F1"), strict=True):
        ax.set_xlabel("epoch")
        ax.set_title(name, fontsize=9)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7)
    if lines:
        fig.suptitle("\n".join(lines), fontsize=9)
    return _save(fig, path, 110)
