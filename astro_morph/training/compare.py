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

from ..errors import UserError

__all__ = ["parse_arch_spec", "compare", "markdown_table"]


def parse_arch_spec(spec: str) -> tuple[str, int | None]:
    """``"efficientnet-b0@64"`` -> ``("efficientnet-b0", 64)``; no ``@`` keeps the native size."""
    name, _, res = spec.partition("@")
    if res and not res.isdigit():
        raise UserError(f"architecture {spec!r}: the part after @ must be a size in pixels")
    return name, int(res) if res else None


def compare(labels: str | os.PathLike, image_dir: str | os.PathLike, archs: list[str],
            out_dir: str | os.PathLike, id_column: str = "OBJID",
            classes: list[str] | None = None, progress: bool | None = None,
            **recipe: Any) -> list[dict[str, Any]]:
    """Train and evaluate each of ``archs``; return one report per model.

    Parameters
    ----------
    labels, image_dir
        Labelled catalog with ``label`` and ``split`` columns, and its image folder.
    archs : list of str
        Architecture names, optionally ``@size`` for a non-native input size.
    out_dir
        Where model files, reports (``<arch>.json``) and confusion PNGs go.
    **recipe
        :class:`~astro_morph.training.train.TrainConfig` fields shared by every model
        (epochs, lr, schedule, batch_size, class_weighting, seed, device, ...).
    """
    from ..models.arch import get_arch
    from .evaluate import evaluate
    from .train import TrainConfig, train

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    specs = [parse_arch_spec(a) for a in archs]
    for name, _ in specs:
        get_arch(name)  # unknown names fail before hours of training, not after
    reports = []
    for name, res in specs:
        # A genotype file (from `astromorph search`) is named by its file stem.
        label = (Path(name).stem if name.endswith(".json") else name) + (f"@{res}" if res else "")
        stem = label.replace("@", "-")
        model = out_dir / f"{stem}.amz"
        if not model.exists():
            cfg = TrainConfig(labels=str(labels), image_dir=str(image_dir), output=str(model),
                              id_column=id_column, arch=name, resolution=res,
                              class_names=classes, name=stem, **recipe)
            ckpt = Path(str(model) + ".ckpt") / "checkpoint.pt"
            train(cfg, resume=ckpt.exists(), progress=progress)
        report = evaluate(model, labels, image_dir, id_column=id_column, split="test",
                          png=out_dir / f"{stem}_confusion.png", progress=progress)
        report["arch"], report["recipe"] = label, recipe
        (out_dir / f"{stem}.json").write_text(json.dumps(report, indent=1, default=str))
        reports.append(report)
    return reports


def markdown_table(reports: list[dict[str, Any]]) -> str:
    """One row per model in the paper's Tables 3-4 layout (plus ECE, speed and cost)."""
    head = ("| model | input | params | MACs | accuracy | precision (w) | recall (w) | F1 (w) "
            "| ECE | CPU img/s | train time |\n|---|---|---|---|---|---|---|---|---|---|---|")
    rows = [head]
    for r in reports:
        rows.append(
            f"| {r['arch']} | {r['input_size']} | {r['params'] / 1e6:.3f} M "
            f"| {r['macs'] / 1e6:.1f} M | {r['accuracy']:.4f} | {r['precision_weighted']:.4f} "
            f"| {r['recall_weighted']:.4f} | {r['f1_weighted']:.4f} | {r['ece']:.4f} "
            f"| {r.get('images_per_s', float('nan')):.0f} "
            f"| {(r.get('train_seconds') or 0) / 60:.1f} min |")
    return "\n".join(rows) + "\n"
