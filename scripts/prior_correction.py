"""Post-hoc prior correction (logit adjustment) of trained models: each image's probabilities
multiplied by (training count of the class) ** A and renormalised, for several A.

    python3 scripts/prior_correction.py ../shared/data/gz1/labels.csv \
        --image-dir ../shared/data/gz1/images --powers 0,0.25,0.5 run/efficientnet-g3-s*.amz

A = 0 is the model as trained; A = 0.5 undoes the 1/sqrt(count) class weights of the base
recipe (a bias towards the common classes, i.e. ellipticals). One line per A: val and test
accuracy and macro-F1, mean and standard deviation over the models. Choose A on val only.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import astro_morph
from astro_morph.columns import read_probabilities
from astro_morph.inference.load import load_model
from astro_morph.training.data import load_labels, split_rows
from astro_morph.training.metrics import classification_report


def split_probabilities(table, split: str, model, image_dir: str, source: str):
    """(labels as class indices, probabilities) of one split, failed rows dropped."""
    names = list(model.class_names)
    rows = split_rows(table, split, source)
    rows = rows[np.isin(np.asarray(rows["label"]).astype(str), names)]
    out = astro_morph.classify(rows, image_dir=image_dir, id_column="OBJID", model=model,
                               progress=False)
    probs = read_probabilities(out, names)
    ok = np.isfinite(probs).all(1)
    y = np.array([names.index(str(t)) for t in np.asarray(rows["label"]).astype(str)])
    return y[ok], probs[ok]


def prior_scores(labels: Path, models: list[str], image_dir: str,
                 powers: list[float]) -> dict[float, dict[str, list[tuple[float, float]]]]:
    """``{A: {"val": [(accuracy, macro-F1) per model], "test": [...]}}``."""
    table = load_labels(labels, "OBJID")
    train_labels = np.asarray(split_rows(table, "train", labels)["label"]).astype(str)
    scores = {a: {"val": [], "test": []} for a in powers}
    for path in models:
        model = load_model(path, "onnx")
        names = list(model.class_names)
        counts = np.array([(train_labels == c).sum() for c in names], dtype=float)
        for split in ("val", "test"):
            y, probs = split_probabilities(table, split, model, image_dir, labels)
            for a in powers:
                adjusted = probs * counts ** a
                adjusted /= adjusted.sum(1, keepdims=True)
                r = classification_report(y, adjusted, names)
                scores[a][split].append((r["accuracy"], r["f1_macro"]))
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("labels", type=Path)
    parser.add_argument("models", nargs="+", help="trained .amz files")
    parser.add_argument("--image-dir", required=True)
    parser.add_argument("--powers", default="0,0.25,0.5", help="comma-separated A values")
    args = parser.parse_args()
    powers = [float(a) for a in args.powers.split(",")]
    scores = prior_scores(args.labels, args.models, args.image_dir, powers)
    print(f"{len(args.models)} models; mean +- standard deviation (ddof=1, as compare) over them")
    print("A      val acc          val macro-F1     test acc         test macro-F1")
    for a in powers:
        cells = []
        for split in ("val", "test"):
            m = np.array(scores[a][split])
            cells += [f"{m[:, 0].mean():.4f} +- {m[:, 0].std(ddof=1):.4f}",
                      f"{m[:, 1].mean():.4f} +- {m[:, 1].std(ddof=1):.4f}"]
        print(f"{a:<5}  " + "  ".join(cells))


if __name__ == "__main__":
    from astro_morph.errors import run_script

    run_script(main)
