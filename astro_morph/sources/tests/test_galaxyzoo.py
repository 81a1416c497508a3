import numpy as np
import pytest
from astropy.table import MaskedColumn, Table
from PIL import Image

from astro_morph.errors import UserError
from astro_morph.flags import MorphFlag
from astro_morph.sources.base import bad_id_reason, format_id
from astro_morph.sources.galaxyzoo import GalaxyZooSource


def test_ids_find_jpg_and_jpeg(image_dir):
    src = GalaxyZooSource(image_dir)
    out = src.fetch(Table({"GalaxyID": [1, 5, 99]}))
    assert out[0].image.shape == (64, 64, 3) and out[0].image.dtype == np.uint8
    assert out[1].image is not None  # 5.jpeg
    assert out[2].image is None and out[2].flags == MorphFlag.IMAGE_MISSING
    assert "99.jpg" in out[2].message


def test_upper_case_extensions_are_found_and_other_formats_named(image_dir):
    """1.JPG (cameras, Windows tools) had been 'no image'; a 6.gif is named in the message.
    The training loader finds the same files."""
    from pathlib import Path

    from astro_morph.training.data import _find_image

    (image_dir / "2.jpg").rename(image_dir / "2.JPG")
    (image_dir / "3.jpg").rename(image_dir / "3.PNG")  # a JPEG named .PNG: Pillow reads both
    Image.new("RGB", (8, 8)).save(image_dir / "6.gif")
    out = GalaxyZooSource(image_dir).fetch(Table({"GalaxyID": [2, 3, 6]}))
    assert out[0].image is not None and out[1].image is not None
    assert out[2].flags == MorphFlag.IMAGE_MISSING
    assert "(6.gif is there: a format not read here; convert it to PNG or JPEG)" in \
        out[2].message
    assert _find_image(Path(image_dir), "2") == image_dir / "2.JPG"
    assert _find_image(Path(image_dir), "6") is None


def test_zero_padding_mismatches_are_named(image_dir):
    """Cutouts exported as 000007.jpg for id 7, or ids kept as '0002' for 2.jpg: the missing
    row says which side is padded instead of only 'no image'."""
    (image_dir / "3.jpg").rename(image_dir / "000007.jpg")
    out = GalaxyZooSource(image_dir).fetch(Table({"GalaxyID": ["7", "0002", "0008", "7x"]}))
    assert [c.flags for c in out] == [MorphFlag.IMAGE_MISSING] * 4
    assert "(000007.jpg is there: the file names are zero-padded, the ids are not;" in \
        out[0].message
    assert "(2.jpg is there: the ids are zero-padded, the file names are not;" in out[1].message
    assert "is there" not in out[2].message and "is there" not in out[3].message


def test_id_formats():
    assert format_id(587722952767439450) == "587722952767439450"
    assert format_id(np.int64(587722952767439450)) == "587722952767439450"
    assert format_id(100018.0) == "100018"
    assert format_id(1.5) is None and format_id(float("nan")) is None
    assert format_id(np.ma.masked) is None and format_id("  ") is None
    assert format_id(b"abc") == "abc"
    # Each refusal says why, in the flagged row's message.
    assert "too large to hold every digit" in bad_id_reason(587722952767439450.0)
    assert format_id(587722952767439450.0) is None
    assert bad_id_reason(1.5) == "id 1.5 is not a whole number"
    assert bad_id_reason(float("nan")) == "id is nan"
    assert bad_id_reason(np.ma.masked) == bad_id_reason("  ") == "empty id/path"
    # A column of vectors or of booleans holds no file-name id (they became '[0 1]', 'True').
    assert format_id(np.array([0, 1])) is None and format_id(np.True_) is None
    assert "holds an array (shape (2,))" in bad_id_reason(np.array([0, 1]))
    assert bad_id_reason(True) == "id True is a boolean, not an id"


def test_bad_images_are_flagged_not_fatal(image_dir):
    (image_dir / "10.jpg").write_bytes(b"")
    good = (image_dir / "1.jpg").read_bytes()
    (image_dir / "11.jpg").write_bytes(good[: len(good) // 2])  # truncated
    Image.fromarray(np.full((20, 20), 100, np.uint8), "L").save(image_dir / "12.jpg")
    Image.new("CMYK", (20, 20), (0, 50, 100, 0)).save(image_dir / "13.jpg")
    Image.fromarray(np.arange(400, dtype=np.uint16).reshape(20, 20) * 100).save(
        image_dir / "14.png")
    src = GalaxyZooSource(image_dir, max_pixels=10_000)
    Image.new("RGB", (200, 200)).save(image_dir / "15.jpg")  # over max_pixels
    src = GalaxyZooSource(image_dir, max_pixels=10_000)
    ids = MaskedColumn([10, 11, 12, 13, 14, 15, 1], mask=[0, 0, 0, 0, 0, 0, 1])
    out = src.fetch(Table({"GalaxyID": ids}))
    assert [c.flags for c in out] == [MorphFlag.IMAGE_UNREADABLE, MorphFlag.IMAGE_UNREADABLE,
                                      0, 0, 0, MorphFlag.IMAGE_UNREADABLE, MorphFlag.BAD_ID]
    for c in out[2:5]:
        assert c.image.shape == (20, 20, 3) and c.image.dtype == np.uint8
    assert out[4].image.max() == 255  # 16-bit data stretched, not clipped to black
    assert "pixel limit" in out[5].message


def test_path_column_refuses_escape(image_dir, tmp_path):
    (tmp_path / "secret.jpg").write_bytes((image_dir / "1.jpg").read_bytes())
    src = GalaxyZooSource(image_dir, path_column="file")
    out = src.fetch(Table({"file": ["2.jpg", "../secret.jpg", "/etc/passwd", "nope.jpg"]}))
    assert out[0].flags == 0
    assert out[1].flags == MorphFlag.PATH_REFUSED and out[2].flags == MorphFlag.PATH_REFUSED
    assert out[3].flags == MorphFlag.IMAGE_MISSING
    ids = GalaxyZooSource(image_dir).fetch(Table({"GalaxyID": ["../1", "1"]}))
    assert ids[0].flags == MorphFlag.PATH_REFUSED and ids[1].flags == 0


def test_missing_column_suggests(image_dir):
    src = GalaxyZooSource(image_dir)
    with pytest.raises(UserError, match=r"no column 'GalaxyID' \(did you mean 'galaxy_id'\?\)"):
        src.check_columns(["galaxy_id", "ra"])
    # Galaxy Zoo 1/2 tables name galaxies by SDSS OBJID, far from 'GalaxyID' as text.
    with pytest.raises(UserError, match=r"no column 'GalaxyID' \(it has 'OBJID': "
                                        r"--id-column OBJID\?\); choose one with --id-column"):
        src.check_columns(["OBJID", "label", "split"])


def test_missing_image_dir(tmp_path):
    with pytest.raises(UserError, match="image directory not found"):
        GalaxyZooSource(tmp_path / "nope")
    with pytest.raises(UserError, match="needs --image-dir"):
        GalaxyZooSource(None)


def test_fast_decode_uses_reduced_dct_scale_and_stays_close(tmp_path, tiny_model,
                                                          monkeypatch):
    import astro_morph
    from astro_morph.centring.crop import CentreCrop
    from astro_morph.sources.images import read_rgb
    from conftest import make_galaxy_image

    Image.fromarray(make_galaxy_image(424, seed=3)).save(tmp_path / "7.jpg", quality=95)
    assert read_rgb(tmp_path / "7.jpg").shape == (424, 424, 3)
    # 32 px from a 200/424 crop needs a 68 px image: libjpeg's 1/4 scale (106 px) is enough.
    step = CentreCrop()
    assert step.min_input_side(32) == 68
    assert read_rgb(tmp_path / "7.jpg", draft_side=68).shape == (106, 106, 3)
    cat = Table({"GalaxyID": [7]})
    full = step(GalaxyZooSource(image_dir=tmp_path).fetch(cat)[0], 32).image
    fast = step(GalaxyZooSource(image_dir=tmp_path, draft_side=68).fetch(cat)[0], 32).image
    assert full.shape == fast.shape and not np.array_equal(full, fast)
    assert np.abs(full - fast).mean() < 0.02  # same picture, slightly different filter
    # classify(fast_decode=True) hands the step's need to the source.
    seen = []
    real = GalaxyZooSource.fetch_prepared
    monkeypatch.setattr(GalaxyZooSource, "fetch_prepared",
                        lambda self, rows, prepare: seen.append(self.draft_side) or
                        real(self, rows, prepare))
    astro_morph.classify(cat, image_dir=tmp_path, model=tiny_model, progress=False,
                         fast_decode=True)
    astro_morph.classify(cat, image_dir=tmp_path, model=tiny_model, progress=False)
    assert seen == [68, None]


def _decode_threads() -> int:
    import threading

    return sum(t.name.startswith("astromorph-decode") for t in threading.enumerate())


def test_fetches_share_one_pool_that_ends_with_the_source(image_dir):
    # Dask workers build a source per partition: its threads must not outlive it.
    import gc
    import time

    def settle(limit: int) -> int:
        # Ended pools' threads exit asynchronously (slowly on a loaded machine).
        deadline = time.monotonic() + 10
        while _decode_threads() > limit and time.monotonic() < deadline:
            time.sleep(0.05)
        return _decode_threads()

    rows = Table({"GalaxyID": [1, 2, 3, 4, 5] * 4})
    gc.collect()
    before = settle(0)  # threads of earlier tests' sources end first
    for _ in range(3):
        src = GalaxyZooSource(image_dir=image_dir, workers=3)
        for _ in range(4):
            assert all(c.image is not None for c in src.fetch(rows))
        assert _decode_threads() - before <= 3  # one pool per source, not per fetch
        del src
        gc.collect()
        assert settle(before) <= before  # ... and its threads end with it
