"""Does light-profile photometry add to the network? Stack classical morphology features
(colours, concentration, axis ratio, asymmetry, smoothness) with each model's probabilities.

    python3 scripts/feature_stacking.py ../shared/data/gz1/labels.csv \
        --image-dir ../shared/data/gz1/images run/efficientnet-g3-s*.amz

For each model, three logistic regressions are fitted on the `train` split and scored on
`val` and `test`: the network's log-probabilities alone (a learned recalibration, the fair
baseline for a stacked model), the features alone, and both together. The network's own
argmax is printed too. One line per predictor: val and test accuracy and macro-F1, mean and
standard deviation (ddof=1) over the models. Decide on val only.

The features are measured on the JPEG as the classifier's source reads it (galaxy at the
centre, as in Galaxy Zoo cutouts), after subtracting the median of the top and bottom
strips as sky: gri colours (log ratios of the R, G, B sums) and log flux in four central
apertures and one annulus; the radii holding 20, 50 and 80 % of the light within a third of
the side, with the concentration log(r80/r20); the axis ratio from the light's second
moments; the 180-degree rotational asymmetry and the residual from a box smoothing of the
central half (the C, A, S of Conselice 2003, in simple forms).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from astro_morph.inference.load import load_model
from astro_morph.sources.galaxyzoo import GalaxyZooSource
from astro_morph.training.data import load_labels, split_rows
from astro_morph.training.metrics import classification_report

# Aperture radii as fractions of the image side (8, 20, 45 and 90 px on gz1's 423).
APERTURES = (0.019, 0.047, 0.106, 0.213)
FEATURE_NAMES = (
    [f"{kind}_{i}" for i in range(len(APERTURES)) for kind in ("r_g", "g_b", "log_flux")]
    + ["annulus_r_g", "annulus_g_b", "r20", "r50", "r80", "concentration", "axis_ratio",
       "asymmetry", "smoothness"])


def morphology_features(image: np.ndarray) -> np.ndarray:
    """The ``FEATURE_NAMES`` of one ``(H, W, 3)`` image (uint8 or float), galaxy at centre."""
    from scipy.ndimage import uniform_filter

    a = np.asarray(image, dtype=np.float64)[:, :, :3]
    h, w = a.shape[:2]
    side = min(h, w)
    strip = max(1, side // 20)
    sky = np.median(np.concatenate([a[:strip].reshape(-1, 3), a[-strip:].reshape(-1, 3)]), 0)
    a = np.clip(a - sky, 0, None)
    grey = a.sum(axis=2)
    y, x = np.mgrid[:h, :w]
    y = y - (h - 1) / 2
    x = x - (w - 1) / 2
    r = np.hypot(x, y)
    out: list[float] = []
    for frac in APERTURES:
        s = a[r < frac * side].sum(axis=0) + 1.0
        out += [np.log(s[0] / s[1]), np.log(s[1] / s[2]), np.log(s.sum())]
    s = a[(r > 0.047 * side) & (r < 0.14 * side)].sum(axis=0) + 1.0
    out += [np.log(s[0] / s[1]), np.log(s[1] / s[2])]
    inside = r.ravel() < side / 3
    order = np.argsort(r.ravel()[inside])
    radii = r.ravel()[inside][order]
    growth = np.cumsum(grey.ravel()[inside][order])
    total = growth[-1] + 1e-9
    r20, r50, r80 = (radii[min(np.searchsorted(growth, f * total), len(radii) - 1)]
                     for f in (0.2, 0.5, 0.8))
    out += [r20 / side, r50 / side, r80 / side, np.log((r80 + 1) / (r20 + 1))]
    wgt = grey * (r < max(1.5 * r80, 0.024 * side))
    total = wgt.sum() + 1e-9
    mx, my = (wgt * x).sum() / total, (wgt * y).sum() / total
    cxx = (wgt * (x - mx) ** 2).sum() / total
    cyy = (wgt * (y - my) ** 2).sum() / total
    cxy = (wgt * (x - mx) * (y - my)).sum() / total
    low, high = np.linalg.eigvalsh([[cxx, cxy], [cxy, cyy]])
    out.append(np.sqrt(max(low, 0.0) / max(high, 1e-9)))
    q = side // 4
    centre = grey[h // 2 - q:h // 2 + q + 1, w // 2 - q:w // 2 + q + 1]
    flux = centre.sum() + 1e-9
    out.append(np.abs(centre - centre[::-1, ::-1]).sum() / flux)
    out.append(np.abs(centre - uniform_filter(centre, max(3, side // 47))).sum() / flux)
    return np.array(out)


def _fit_score(x_train, y_train, x_eval, y_eval, names) -> dict:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scale = StandardScaler().fit(x_train)
    fit = LogisticRegression(C=1.0, max_iter=5000).fit(scale.transform(x_train), y_train)
    probs = np.zeros((len(x_eval), len(names)))
    probs[:, fit.classes_] = fit.predict_proba(scale.transform(x_eval))
    return classification_report(y_eval, probs, names)


def stacking_scores(labels: Path, models: list[str], image_dir: str, workers: int = 2
                    ) -> dict[str, dict[str, list[tuple[float, float]]]]:
    """``{predictor: {"val": [(accuracy, macro-F1) per model], "test": [...]}}``."""
    import astro_morph
    from astro_morph.columns import read_probabilities

    table = load_labels(labels, "OBJID")
    source = GalaxyZooSource(image_dir, id_column="OBJID", workers=workers)
    splits = {s: split_rows(table, s, labels) for s in ("train", "val", "test")}
    features = {}
    for s, rows in splits.items():
        cutouts = source.fetch(rows)
        features[s] = np.array([morphology_features(c.image) if c.image is not None
                                else np.full(len(FEATURE_NAMES), np.nan) for c in cutouts])
    predictors = ("network", "network, refitted", "features", "network + features")
    scores = {p: {"val": [], "test": []} for p in predictors}
    for path in models:
        model = load_model(path, "onnx")
        names = list(model.class_names)
        data = {}
        for s, rows in splits.items():
            out = astro_morph.classify(rows, image_dir=image_dir, id_column="OBJID",
                                       model=model, progress=False)
            probs = read_probabilities(out, names)
            known = np.isin(np.asarray(rows["label"]).astype(str), names)
            ok = known & np.isfinite(probs).all(1) & np.isfinite(features[s]).all(1)
            y = np.array([names.index(str(v)) for v in np.asarray(rows["label"]).astype(str)[ok]])
            data[s] = (y, np.log(probs[ok] + 1e-6), features[s][ok], probs[ok])
        y_tr, lp_tr, f_tr, _ = data["train"]
        for s in ("val", "test"):
            y, lp, f, probs = data[s]
            reports = {
                "network": classification_report(y, probs, names),
                "network, refitted": _fit_score(lp_tr, y_tr, lp, y, names),
                "features": _fit_score(f_tr, y_tr, f, y, names),
                "network + features": _fit_score(np.hstack([lp_tr, f_tr]), y_tr,
                                                 np.hstack([lp, f]), y, names),
            }
            for p, r in reports.items():
                scores[p][s].append((r["accuracy"], r["f1_macro"]))
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("labels", type=Path)
    parser.add_argument("models", nargs="+", help="trained .amz files")
    parser.add_argument("--image-dir", required=True)
    parser.add_argument("--workers", type=int, default=2, help="image decoding threads")
    args = parser.parse_args()
    scores = stacking_scores(args.labels, args.models, args.image_dir, args.workers)
    print(f"{len(args.models)} models; logistic regressions fitted on train; "
          "mean +- standard deviation (ddof=1) over the models")
    print(f"{'predictor':<20}  val acc          val macro-F1     test acc         test macro-F1")
    for p, by_split in scores.items():
        cells = []
        for split in ("val", "test"):
            m = np.array(by_split[split])
            sd = m.std(axis=0, ddof=1) if len(m) > 1 else np.zeros(2)
            cells += [f"{m[:, k].mean():.4f} +- {sd[k]:.4f}" for k in (0, 1)]
        print(f"{p:<20}  " + "  ".join(cells))


if __name__ == "__main__":
    from astro_morph.errors import run_script

    run_script(main)
