"""Summarise the per-epoch history a model file records: the figures docs/results.md quotes
about learning curves (best epoch, the range over the last epochs).

    python3 scripts/training_history.py run/efficientnet-g3-s0.amz run/g5-55-s0.amz --last 5

One line per model: epochs, best val accuracy and its epoch (1-based, as the training log
prints), and over the last N epochs the range of val accuracy, of training accuracy (on the
augmented batches) and the training loss from first to last of them, and for a run with
``--spin-column`` its val winding accuracy at every epoch. With ``--png``, also
the learning-curve figure ``astromorph compare`` draws, for model files trained by separate
runs (seeds added to a row later):

    python3 scripts/training_history.py runs/lr3e-3/efficientnet-g3-s{1,2}.amz \\
        --png curve.png --title "efficientnet-g3: lr=0.003"
"""

from __future__ import annotations

import argparse
from pathlib import Path

from astro_morph.training.evaluate import plot_learning_curves, recorded_history


def summary(path: Path, last: int) -> str:
    history = recorded_history(path)
    if not history:
        return f"{path}: no training history recorded"
    tail = history[-last:]
    best = max(history, key=lambda h: h["val_accuracy"])
    val = [h["val_accuracy"] for h in tail]
    acc = [h["train_accuracy"] for h in tail]
    line = (f"{path}: {len(history)} epochs; best val {best['val_accuracy']:.4f} at epoch "
            f"{best['epoch'] + 1}; last {len(tail)}: val {min(val):.4f}-{max(val):.4f}, "
            f"train accuracy {min(acc):.3f}-{max(acc):.3f}, loss {tail[0]['loss']:.3f} -> "
            f"{tail[-1]['loss']:.3f}")
    spin = [h.get("val_spin_accuracy") for h in history]
    if any(v is not None for v in spin):  # trained with --spin-column
        line += ("; val winding accuracy per epoch: "
                 + " ".join("-" if v is None else f"{v:.2f}" for v in spin))
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", type=Path, nargs="+", help="trained .amz files")
    parser.add_argument("--last", type=int, default=5, help="epochs at the end to summarise")
    parser.add_argument("--png", type=Path, help="also draw their learning curves here")
    parser.add_argument("--title", default="", help="the figure's title (with --png)")
    args = parser.parse_args()
    for path in args.models:
        print(summary(path, max(args.last, 1)))
    if args.png:
        print(f"wrote {plot_learning_curves(args.models, args.png, title=args.title)}")


if __name__ == "__main__":
    from astro_morph.errors import run_script

    run_script(main)
