"""Classification metrics of the paper (Eq. 7-12), calibration error and the confusion matrix.

Note the paper's Eq. 8-9 swap FN and FP in precision and recall (a typo): here precision is
TP / (TP + FP) and recall TP / (TP + FN), the standard definitions, and the weighted averages
follow Eq. 11-12 (weights = class support).
"""

from __future__ import annotations

import numpy as np

__all__ = ["confusion", "classification_report", "expected_calibration_error"]


def confusion(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> np.ndarray:
    """Counts ``m[true, pred]``."""
    m = np.zeros((k, k), np.int64)
    np.add.at(m, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return m


def classification_report(y_true: np.ndarray, probs: np.ndarray,
                          class_names: list[str]) -> dict:
    """Accuracy, per-class and weighted precision/recall/F1, ECE and the confusion matrix."""
    k = len(class_names)
    y_pred = probs.argmax(1)
    m = confusion(y_true, y_pred, k)
    tp = np.diag(m).astype(float)
    support = m.sum(1).astype(float)
    predicted = m.sum(0).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    w = support / max(support.sum(), 1)
    # Macro-F1 over the classes the split holds or the model predicts (scikit-learn's
    # convention): a class with neither has no F1, and counting it as 0 would pull the mean
    # down by a class the split never tested (a small val or test split).
    scored = (support > 0) | (predicted > 0)
    return {
        "n": int(len(y_true)),
        "accuracy": float(tp.sum() / max(len(y_true), 1)),
        "precision_weighted": float((w * precision).sum()),
        "recall_weighted": float((w * recall).sum()),
        "f1_weighted": float((w * f1).sum()),
        "f1_macro": float(f1[scored].mean()) if scored.any() else 0.0,
        "ece": expected_calibration_error(y_true, probs),
        "per_class": {c: {"precision": float(precision[i]), "recall": float(recall[i]),
                          "f1": float(f1[i]), "support": int(support[i]),
                          "scored": bool(scored[i])}
                      for i, c in enumerate(class_names)},
        "confusion": m.tolist(),
        "class_names": list(class_names),
    }


def expected_calibration_error(y_true: np.ndarray, probs: np.ndarray, bins: int = 15) -> float:
    """ECE with equal-width confidence bins (Guo et al. 2017)."""
    conf = probs.max(1)
    correct = probs.argmax(1) == np.asarray(y_true)
    edges = np.linspace(0, 1, bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        sel = (conf > lo) & (conf <= hi)
        if sel.any():
            ece += sel.mean() * abs(correct[sel].mean() - conf[sel].mean())
    return float(ece)
