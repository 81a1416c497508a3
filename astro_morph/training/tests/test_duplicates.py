import numpy as np
from PIL import Image

from astro_morph.training.duplicates import near_duplicates, same_sky


def _sky(seed: int, side: int = 200, ell: float = 0.6) -> np.ndarray:
    """A smooth elliptical galaxy plus this seed's pixel noise and field stars."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:side, :side] - side / 2
    img = 180 * np.exp(-(xx ** 2 + (yy / ell) ** 2) / 300) + rng.normal(20, 6, (side, side))
    for _ in range(6):
        y, x = rng.integers(10, side - 10, 2)
        img[y - 1:y + 2, x - 1:x + 2] += 120
    return img.clip(0, 255)


def _save(a: np.ndarray, path, side: int | None = None) -> None:
    im = Image.fromarray(a.astype(np.uint8)).convert("RGB")
    if side is not None:  # another release's pixel scale
        im = im.resize((side, side), Image.BILINEAR)
    im.save(path, quality=90)


def test_the_same_sky_at_another_scale_is_found_and_a_look_alike_is_not(tmp_path):
    _save(_sky(1), tmp_path / "query.jpg")
    _save(_sky(1), tmp_path / "same_rescaled.jpg", side=212)  # 6 % larger pixels grid
    _save(_sky(2), tmp_path / "look_alike.jpg")  # same galaxy shape, other noise and stars
    _save(_sky(3, ell=0.9), tmp_path / "other.jpg")
    pool = [tmp_path / n for n in ("look_alike.jpg", "other.jpg", "same_rescaled.jpg")]
    assert near_duplicates([tmp_path / "query.jpg"], pool) == {0: 2}
    assert near_duplicates([tmp_path / "query.jpg"], pool[:2]) == {}
    q = np.asarray(Image.open(tmp_path / "query.jpg").convert("L"), dtype=np.float32)
    look = np.asarray(Image.open(pool[0]).convert("L"), dtype=np.float32)
    assert same_sky(q, look) < 0.2
    assert near_duplicates([], pool) == {}
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")  # matches nothing, stops nothing
    assert near_duplicates([tmp_path / "query.jpg"], [tmp_path / "broken.jpg", *pool]) == {0: 3}


def test_the_command_names_the_val_test_images_found_elsewhere(tmp_path, capsys):
    import json

    from astro_morph.training.duplicates import main

    labelled, other = tmp_path / "labelled", tmp_path / "other"
    labelled.mkdir()
    other.mkdir()
    for key, seed in ((11, 1), (12, 2), (13, 3)):
        _save(_sky(seed, ell=0.5 + 0.2 * (seed % 2)), labelled / f"{key}.jpg")
    _save(_sky(2), other / "x.jpg", side=212)  # galaxy 12 (val) at another pixel scale
    _save(_sky(1), other / "y.jpg", side=212)  # galaxy 11 (train): not an evaluation image
    _save(_sky(9), other / "z.jpg")
    (tmp_path / "labels.csv").write_text("OBJID,label,split\n11,a,train\n12,a,val\n13,b,test\n")
    main([str(tmp_path / "labels.csv"), str(labelled), str(other),
          "--json", str(tmp_path / "d.json")])
    assert "1 of 2 val/test images" in capsys.readouterr().out
    assert json.loads((tmp_path / "d.json").read_text()) == {"12": "x.jpg"}
