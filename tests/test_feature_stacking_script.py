"""scripts/feature_stacking.py: the feature-stacking row of docs/results.md."""

import numpy as np
import pytest

from conftest import load_script


def _script():
    return load_script("feature_stacking")


def _blob(axis_ratio: float, colour, shift: float = 0.0, size: int = 101) -> np.ndarray:
    y, x = np.mgrid[:size, :size] - (size - 1) / 2
    r2 = ((x - shift) / 8.0) ** 2 + (y / (8.0 * axis_ratio)) ** 2
    return 200 * np.exp(-r2)[:, :, None] * np.asarray(colour, float)


def test_features_measure_shape_colour_and_symmetry():
    f = _script()
    names = list(f.FEATURE_NAMES)
    round_red = f.morphology_features(_blob(1.0, [1.0, 0.6, 0.3]))
    flat_blue = f.morphology_features(_blob(0.3, [0.3, 0.6, 1.0]))
    assert len(round_red) == len(names)
    assert round_red[names.index("axis_ratio")] == pytest.approx(1.0, abs=0.02)
    # 0.3 in truth; the circular aperture trims the long axis a little.
    assert 0.28 < flat_blue[names.index("axis_ratio")] < 0.4
    assert round_red[names.index("r_g_0")] > 0 > flat_blue[names.index("r_g_0")]
    assert round_red[names.index("asymmetry")] < 1e-9
    off_centre = f.morphology_features(_blob(1.0, [1, 1, 1], shift=6.0))
    assert off_centre[names.index("asymmetry")] > 0.5
    # A wider profile holds its light further out.
    wide = f.morphology_features(np.repeat(np.kron(_blob(1.0, [1, 1, 1], size=51)[:, :, :1],
                                                   np.ones((2, 2, 1)))[:101, :101], 3, 2))
    assert wide[names.index("r50")] > round_red[names.index("r50")]


def test_scores_cover_every_predictor_and_split(tmp_path, tiny_model, image_dir):
    from astro_morph.training.evaluate import evaluate

    labels = tmp_path / "labels.csv"
    rows = ["1,spiral,val", "2,elliptical,val", "3,edge_on,test", "4,elliptical,test"] + [
        f"{1 + i % 5},{('elliptical', 'spiral')[i % 2]},train" for i in range(12)]
    labels.write_text("OBJID,label,split\n" + "\n".join(rows) + "\n")
    scores = _script().stacking_scores(labels, [str(tiny_model)], str(image_dir), workers=1)
    assert set(scores) == {"network", "network, refitted", "features", "network + features"}
    for split in ("val", "test"):
        r = evaluate(str(tiny_model), labels, image_dir, split=split, timing=False)
        assert scores["network"][split][0] == pytest.approx((r["accuracy"], r["f1_macro"]))
        for p in scores:
            acc, f1 = scores[p][split][0]
            assert 0.0 <= acc <= 1.0 and 0.0 <= f1 <= 1.0


def test_an_unreadable_image_is_left_out_not_fatal(tmp_path, tiny_model, image_dir):
    (image_dir / "2.jpg").write_bytes(b"not a jpeg")
    labels = tmp_path / "labels.csv"
    rows = ["1,spiral,val", "2,elliptical,val", "3,edge_on,test", "4,elliptical,test"] + [
        f"{1 + i % 5},{('elliptical', 'spiral')[i % 2]},train" for i in range(12)]
    labels.write_text("OBJID,label,split\n" + "\n".join(rows) + "\n")
    scores = _script().stacking_scores(labels, [str(tiny_model)], str(image_dir), workers=1)
    # Row 2 is dropped: val is scored on row 1 alone, so every accuracy is 0 or 1.
    assert all(scores[p]["val"][0][0] in (0.0, 1.0) for p in scores)
