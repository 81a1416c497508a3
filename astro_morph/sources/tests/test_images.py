"""The shared decoder: simplejpeg fast path, Pillow for the rest, same pixels and errors."""

import io

import numpy as np
import pytest
from PIL import Image

from astro_morph.sources import images
from astro_morph.sources.images import decode_rgb, read_rgb


def _jpeg(arr: np.ndarray, mode: str | None = None, **save) -> bytes:
    buf = io.BytesIO()
    im = Image.fromarray(arr)
    if mode:
        im = im.convert(mode)
    im.save(buf, "JPEG", **save)
    return buf.getvalue()


def _pillow(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


@pytest.fixture
def picture():
    from conftest import make_galaxy_image

    return make_galaxy_image(128, seed=5)


@pytest.mark.parametrize("save", [{"quality": 90}, {"quality": 75, "progressive": True},
                                  {"quality": 95, "subsampling": 0}])
def test_jpeg_fast_path_gives_pillows_pixels(picture, save, monkeypatch):
    data = _jpeg(picture, **save)
    calls = []
    real = images._decode_simplejpeg
    monkeypatch.setattr(images, "_decode_simplejpeg",
                        lambda *a: calls.append(1) or real(*a))
    out = decode_rgb(data)
    assert calls and out.dtype == np.uint8 and out.shape == (128, 128, 3)
    np.testing.assert_array_equal(out, _pillow(data))


def test_greyscale_and_cmyk_jpegs_come_out_rgb(picture):
    grey = _jpeg(picture, "L")
    assert np.array_equal(decode_rgb(grey), _pillow(grey))
    cmyk = _jpeg(picture, "CMYK")
    assert images._decode_simplejpeg(cmyk, 10**8, None) is None  # Pillow's job
    assert np.array_equal(decode_rgb(cmyk), _pillow(cmyk))


def test_dct_scaling_picks_the_smallest_scale_that_is_big_enough(picture):
    data = _jpeg(np.asarray(Image.fromarray(picture).resize((424, 424))))
    assert decode_rgb(data, draft_side=68).shape == (106, 106, 3)  # 2/8
    assert decode_rgb(data, draft_side=117).shape == (159, 159, 3)  # 3/8
    assert decode_rgb(data, draft_side=424).shape == (424, 424, 3)


def test_truncated_jpeg_raises_and_recoverable_junk_is_accepted(picture, tmp_path):
    data = _jpeg(picture)
    with pytest.raises(OSError, match="truncated"):
        decode_rgb(data[: len(data) // 2])
    # Bytes between the image data and EOI: libjpeg warns, Pillow (the fallback) accepts.
    junk = data[:-2] + b"\x00\x00\x00" + data[-2:]
    assert np.array_equal(decode_rgb(junk), _pillow(junk))
    (tmp_path / "t.jpg").write_bytes(data[:100])
    with pytest.raises(OSError, match="(?i)truncated"):
        read_rgb(tmp_path / "t.jpg")


def test_pixel_limit_is_checked_before_decoding(picture):
    data = _jpeg(picture)
    with pytest.raises(ValueError, match="128x128, over the 1000 pixel limit"):
        decode_rgb(data, max_pixels=1000)
    png = io.BytesIO()
    Image.fromarray(picture).save(png, "PNG")
    with pytest.raises(ValueError, match="over the 1000 pixel limit"):
        decode_rgb(png.getvalue(), max_pixels=1000)
