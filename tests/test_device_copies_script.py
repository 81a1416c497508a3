"""scripts/device_copies.py: the small gz1 copies a GPU machine trains on."""

import sys

import numpy as np
from PIL import Image

from astro_morph.centring.crop import crop_resize
from astro_morph.training.data import TRAIN_REGION, cache_size_for
from conftest import load_script


def _galaxy(side: int = 423) -> np.ndarray:
    """A smooth elliptical blob with a gradient: what the copies must keep in the centre."""
    y, x = np.mgrid[:side, :side] - side / 2
    blob = np.exp(-(x**2 / 2 + y**2) / (side / 8) ** 2)
    rgb = np.stack([blob, blob * 0.8, 0.2 + 0.5 * blob * (x > 0)], -1)
    return (rgb * 255).astype(np.uint8)


def test_copies_keep_the_centre_black_the_rest_and_serve_their_input(tmp_path, monkeypatch,
                                                                     capsys):
    script = load_script("device_copies")
    src = tmp_path / "images"
    src.mkdir()
    for key in ("11", "22"):
        Image.fromarray(_galaxy()).save(src / f"{key}.jpeg", quality=95)
    labels = tmp_path / "labels.csv"
    labels.write_text("OBJID,label,split\n11,spiral,train\n22,elliptical,val\n")
    out = tmp_path / "copies"
    monkeypatch.setattr(sys, "argv", ["device_copies.py", str(labels), "--image-dir", str(src),
                                      "--id-column", "OBJID", "-o", str(out)])
    script.main()
    assert "2 copies at 188 px" in capsys.readouterr().out
    assert (out / "labels.csv").read_text() == labels.read_text()
    copy = np.asarray(Image.open(out / "images" / "11.jpeg"))
    assert copy.shape == (188, 188, 3)
    # black outside the centre 0.80 (17 px here), but for JPEG ringing at its edge
    assert copy[:12].max() < 8 and copy[:, -12:].max() < 8
    # what the trainer and evaluation read is the same picture at the network's input
    full = crop_resize(np.asarray(Image.open(src / "11.jpeg")), 88)
    small = crop_resize(copy, 88)
    assert np.abs(full - small).mean() < 0.02
    # the largest input served: its training cache fits in the kept centre, and no larger
    assert script.largest_input(188) == 88
    assert cache_size_for(88) <= TRAIN_REGION * 188 < cache_size_for(89)
