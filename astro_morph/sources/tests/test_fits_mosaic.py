"""A generated mosaic with a real TAN WCS and Sersic galaxies injected at known RA/Dec."""

import numpy as np
import pytest
from astropy import units as u
from astropy.io import fits
from astropy.modeling.models import Sersic2D
from astropy.table import Table, vstack
from astropy.wcs import WCS

from astro_morph.catalog_io import read_catalog
from astro_morph.errors import UserError
from astro_morph.flags import MorphFlag
from astro_morph.sources.fits_mosaic import FitsMosaicSource

PIXEL = 0.396  # arcsec, SDSS
# (true RA, true Dec) of each galaxy, and the catalog's pixel error (dx, dy) on top.
OFFSETS = [(0.0, 0.0), (3.4, -2.2), (-4.1, 1.7), (2.0, 4.5)]


def _wcs(n=800):
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [150.1, 2.2]
    w.wcs.crpix = [n / 2 + 0.5, n / 2 + 0.5]
    w.wcs.cdelt = [-PIXEL / 3600, PIXEL / 3600]
    w.wcs.cunit = ["deg", "deg"]
    return w


@pytest.fixture(scope="module")
def mosaic(tmp_path_factory):
    """i, r, g mosaics with four galaxies; returns (paths, catalog with offset positions)."""
    d = tmp_path_factory.mktemp("mosaic")
    n = 800
    wcs = _wcs(n)
    y, x = np.mgrid[:n, :n]
    truth = [(100, 100), (300, 500), (550, 250), (650, 650)]  # pixel (x, y)
    rng = np.random.default_rng(3)
    paths = []
    for band, amp in (("i", 1.2), ("r", 1.0), ("g", 0.6)):
        img = rng.normal(0, 0.01, (n, n))
        for k, (gx, gy) in enumerate(truth):
            img += Sersic2D(amp, r_eff=6 + 2 * k, n=1 + k % 3, x_0=gx, y_0=gy,
                            ellip=0.3, theta=0.5 * k)(x, y)
        path = d / f"{band}.fits"
        fits.PrimaryHDU(img.astype(np.float32), header=wcs.to_header()).writeto(path)
        paths.append(path)
    # The catalog position is off the true centre by OFFSETS pixels (x, y).
    cat_xy = np.array(truth, float) - np.array(OFFSETS)
    sky = wcs.pixel_to_world(cat_xy[:, 0], cat_xy[:, 1])
    cat = Table({"ra": sky.ra.deg, "Dec": sky.dec.deg})
    return paths, cat, wcs


def test_recentring_recovers_injected_offsets(mosaic, tiny_model):
    import astro_morph

    paths, cat, _ = mosaic
    out = astro_morph.classify(cat, source="fits", image=paths, size_arcsec=40,
                               centring="recentre", model=tiny_model, progress=False)
    assert list(out["morph_flags"]) == [0, 0, 0, 0]
    for (dx, dy), mdx, mdy in zip(OFFSETS, out["morph_dx"], out["morph_dy"], strict=True):
        assert abs(mdx - dx) < 1 and abs(mdy - dy) < 1
    assert out["morph_dx"].unit == u.pix
    assert out.meta["MORPHSRC"] == "fits"


def test_a_skycoord_column_is_read_by_its_parts(mosaic, tiny_model, tmp_path):
    """astropy writes a SkyCoord column to ECSV/FITS as coord.ra/coord.dec and reads it back
    whole: --ra-column coord.ra finds its ICRS parts (a galactic one converted), the absent
    default RA names them, and the output keeps the SkyCoord column as it was."""
    from astropy.coordinates import SkyCoord
    from astropy.table import QTable

    import astro_morph

    paths, cat, _ = mosaic
    icrs = SkyCoord(cat["ra"] * u.deg, cat["Dec"] * u.deg)
    path = tmp_path / "sc.fits"
    QTable({"coord": icrs.galactic, "n": np.arange(4)}).write(path)
    table = read_catalog(path)
    with pytest.raises(UserError, match="it has 'coord.ra': --ra-column coord.ra"):
        astro_morph.classify(table, source="fits", image=paths, model=tiny_model)
    out = astro_morph.classify(table, source="fits", image=paths, size_arcsec=40,
                               ra_column="coord.ra", dec_column="coord.dec",
                               centring="recentre", model=tiny_model, progress=False)
    assert list(out["morph_flags"]) == [0, 0, 0, 0]  # on the galaxies: converted to ICRS
    for (dx, dy), mdx, mdy in zip(OFFSETS, out["morph_dx"], out["morph_dy"], strict=True):
        assert abs(mdx - dx) < 1 and abs(mdy - dy) < 1
    assert isinstance(out["coord"], SkyCoord) and out["coord"].frame.name == "galactic"
    assert "coord.ra" not in out.colnames


def test_footprint_nan_and_bad_coordinates(mosaic):
    paths, cat, wcs = mosaic
    edge = wcs.pixel_to_world(5, 400)
    rows = Table({"RA": [cat["ra"][0], 10.0, edge.ra.deg, np.nan, 150.1],
                  "DEC": [cat["Dec"][0], -40.0, edge.dec.deg, 2.2, 95.0]})
    out = FitsMosaicSource(paths, size_arcsec=30).fetch(rows)
    assert out[0].flags == 0 and out[0].image.shape[:2] == (76, 76)
    assert out[0].image.dtype == np.float32 and np.nanmax(out[0].image) <= 1
    assert out[1].flags == MorphFlag.OUTSIDE_FOOTPRINT and "outside" in out[1].message
    assert out[2].flags == MorphFlag.NAN_PIXELS  # half off the edge: NaN-filled, still used
    assert out[3].flags == MorphFlag.BAD_COORDINATES == out[4].flags


def test_sexagesimal_quantities_and_size_column(mosaic):
    paths, cat, _ = mosaic
    from astropy.coordinates import SkyCoord

    c = SkyCoord(cat["ra"][1] * u.deg, cat["Dec"][1] * u.deg)
    rows = Table({"ra": [c.ra.to_string(u.hourangle, sep=":"), "nonsense"],
                  "dec": [c.dec.to_string(sep=":", alwayssign=True), "+02:00:00"],
                  "petroR90": [3.0, 3.0]})
    out = FitsMosaicSource(paths, size_column="petroR90").fetch(rows)
    assert out[0].flags == 0 and out[1].flags == MorphFlag.BAD_COORDINATES
    side = round(3.0 * 424 * 0.024 / PIXEL)
    assert abs(out[0].image.shape[0] - side) <= 1
    rad = Table({"RA": (np.asarray(cat["ra"][:1]) * u.deg).to(u.rad),
                 "DEC": (np.asarray(cat["Dec"][:1]) * u.deg).to(u.rad)})
    assert FitsMosaicSource(paths).fetch(rad)[0].flags == 0


def test_bad_files_and_columns(tmp_path, mosaic):
    paths, _, _ = mosaic
    with pytest.raises(UserError, match="needs at least one --image"):
        FitsMosaicSource([])
    bad = tmp_path / "bad.fits"
    bad.write_bytes(b"not fits at all" * 10)
    with pytest.raises(UserError, match="cannot read FITS image"):
        FitsMosaicSource([bad])
    nowcs = tmp_path / "nowcs.fits"
    fits.PrimaryHDU(np.zeros((10, 10), np.float32)).writeto(nowcs)
    with pytest.raises(UserError, match="no celestial WCS"):
        FitsMosaicSource([nowcs])
    with pytest.raises(UserError, match=r"no column 'RA' \(did you mean 'R_A'\?\)"):
        FitsMosaicSource(paths).check_columns(["R_A", "DEC"])


def test_cli_fits_source(mosaic, tiny_model, tmp_path):
    from click.testing import CliRunner

    from astro_morph.cli import cli

    paths, cat, _ = mosaic
    path = tmp_path / "cat.fits"
    cat.write(path)
    args = ["classify", str(path), "--source", "fits", "--ra-column", "RA", "--dec-column",
            "dec", "--model", str(tiny_model), "--centring", "recentre"]
    for p in paths:
        args += ["--image", str(p)]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    out = Table.read(tmp_path / "cat_morph.fits")
    assert len(out) == 4 and (out["morph_flags"] == 0).all()
    # The gallery of a mosaic run cuts from the same mosaics (it had no --image before).
    args = ["gallery", str(tmp_path / "cat_morph.fits"), "--png", str(tmp_path / "g.png"),
            "--source", "fits", "--source-option", "ra_column=ra", "--source-option",
            "dec_column=Dec"]
    res = CliRunner().invoke(cli, args)
    assert "needs at least one --image" in str(res.exception)
    res = CliRunner().invoke(cli, args + [a for p in paths for a in ("--image", str(p))])
    assert res.exit_code == 0, res.output
    assert "4 of the 4 rows classified" in res.output
    assert (tmp_path / "g.png").read_bytes()[:4] == b"\x89PNG"


def test_first_line_skips_wcslib_source_locations():
    from astro_morph.errors import first_line

    err = ValueError("ERROR 3 in wcsset() at line 2868 of file cextern/wcslib/C/wcs.c:\n"
                     "Linear transformation matrix is singular.\nERROR 3 in linset() at line "
                     "691 of file cextern/wcslib/C/lin.c:\nPCi_ja matrix is singular.")
    assert first_line(err) == "Linear transformation matrix is singular."
    assert first_line(ValueError("one\ntwo")) == "one" and first_line(ValueError()) == "ValueError"


def test_size_column_units_and_bad_radii_are_flagged(mosaic):
    """Both kinds of source read radii the same way: an arcmin column is converted (the fits
    source had read it as arcsec), and a radius that is NaN or not positive gets the fixed
    --size-arcsec side with SIZE_DEFAULTED set (it had been replaced silently)."""
    from astro_morph.errors import UserError

    paths, cat, _ = mosaic
    ra, dec = [cat["ra"][1]] * 4, [cat["Dec"][1]] * 4
    rows = Table({"ra": ra, "dec": dec,
                  "r90": [3.0 / 60, -1.0, np.nan, 0.0] * u.arcmin})
    out = FitsMosaicSource(paths, size_column="r90", size_arcsec=20.0).fetch(rows)
    assert abs(out[0].image.shape[0] - round(3.0 * 424 * 0.024 / PIXEL)) <= 1
    assert out[0].flags == 0
    for cut in out[1:]:
        assert cut.flags == MorphFlag.SIZE_DEFAULTED
        assert abs(cut.image.shape[0] - round(20.0 / PIXEL)) <= 1
    rows["r90"] = [1.0, 1.0, 1.0, 1.0] * u.kpc
    with pytest.raises(UserError, match="has unit kpc, not an angle"):
        FitsMosaicSource(paths, size_column="r90").fetch(rows)


def test_a_field_wider_than_the_pixel_limit_is_cut_from_every_nth_pixel(mosaic, monkeypatch):
    """A 999.99 radius sentinel asked for gigabytes of pixels per band (a large nearby galaxy
    too): past MAX_CUTOUT_PIXELS the cut takes every n-th pixel, with the position scaled to
    match, so the field is framed as asked in bounded memory."""
    from astro_morph.sources import fits_mosaic

    paths, cat, _ = mosaic
    rows = Table({"ra": [cat["ra"][2]], "dec": [cat["Dec"][2]], "r": [3.0]})
    full = FitsMosaicSource(paths, size_column="r").fetch(rows)[0]
    monkeypatch.setattr(fits_mosaic, "MAX_CUTOUT_PIXELS", 20)  # 3.0 * 10.18 / 0.396 = 77 px
    every4 = FitsMosaicSource(paths, size_column="r").fetch(rows)[0]
    assert every4.flags == 0 and every4.image.shape[:2] == (20, 20)
    assert every4.pixel_scale == pytest.approx(4 * full.pixel_scale)
    # The galaxy lies where the WCS says, relative to the catalog position, in both cuts:
    # its peak sits OFFSETS[2] mosaic pixels from the position (a quarter of that, every 4th).
    for cut, scale in ((full, 1), (every4, 4)):
        (x, y), peak = cut.meta["position"], np.unravel_index(
            np.nanargmax(cut.image.sum(2)), cut.image.shape[:2])
        offset = (np.array([peak[1], peak[0]]) - (x, y)) * scale
        assert np.allclose(offset, OFFSETS[2], atol=1.0 if scale == 1 else 2.5), (scale, offset)


def test_bands_options_and_grids_that_cannot_work_are_refused(tmp_path, mosaic):
    """Before: four bands ended in a ValueError traceback at the first row, a misspelled
    survey silently used the default stretch, and bands on different pixel grids were cut
    by one pixel box and stacked (different patches of sky in one colour image)."""
    paths, _, _ = mosaic
    with pytest.raises(UserError, match="takes 1 to 3 --image bands .*not 4"):
        FitsMosaicSource(paths + paths[:1])
    with pytest.raises(UserError, match=r"survey='sdsss' is not known \(did you mean 'sdss'"):
        FitsMosaicSource(paths, survey="sdsss")
    with pytest.raises(UserError, match="size_arcsec=0: expected a side > 0"):
        FitsMosaicSource(paths, size_arcsec=0)
    with pytest.raises(UserError, match=r"max_nan_fraction=1.5: expected a fraction in \[0, 1\]"):
        FitsMosaicSource(paths, max_nan_fraction=1.5)
    fine = _wcs(400)
    fine.wcs.cdelt = [-PIXEL / 7200, PIXEL / 7200]  # half the pixel of the other bands
    half = tmp_path / "half.fits"
    fits.PrimaryHDU(np.zeros((400, 400), np.float32), header=fine.to_header()).writeto(half)
    with pytest.raises(UserError, match=r"--image .*half.fits: 0.198 arcsec per pixel, but "
                                        r".*i.fits has 0.396; give bands on one pixel grid"):
        FitsMosaicSource([paths[0], half])
    turned = _wcs(800)
    turned.wcs.cdelt = [PIXEL / 3600, PIXEL / 3600]  # east to the right: mirrored
    flipped = tmp_path / "flipped.fits"
    fits.PrimaryHDU(np.zeros((800, 800), np.float32), header=turned.to_header()).writeto(
        flipped)
    with pytest.raises(UserError, match=r"--image .*flipped.fits: its pixel grid is rotated "
                                        r"or flipped against .*i.fits's"):
        FitsMosaicSource([paths[0], flipped])


def test_an_image_with_a_degenerate_third_axis_is_read(tmp_path, mosaic):
    """NAXIS3 = 1 (one plane, as some pipelines write images) had been 'no 2-D image HDU'."""
    paths, cat, _ = mosaic
    data = fits.getdata(paths[0])
    header = _wcs(800).to_header()
    header["WCSAXES"] = 3
    header["CTYPE3"], header["CRVAL3"], header["CDELT3"], header["CRPIX3"] = "FREQ", 1e9, 1, 1
    cube = tmp_path / "cube.fits"
    fits.PrimaryHDU(data[None], header=header).writeto(cube)
    rows = Table({"RA": cat["ra"][:2], "DEC": cat["Dec"][:2]})
    got = FitsMosaicSource([cube]).fetch(rows)
    want = FitsMosaicSource([paths[0]]).fetch(rows)
    for g, w in zip(got, want, strict=True):
        assert g.flags == w.flags == 0
        np.testing.assert_array_equal(g.image, w.image)
    two = tmp_path / "two-planes.fits"
    fits.PrimaryHDU(np.stack([data, data]), header=header).writeto(two)
    with pytest.raises(UserError, match="no 2-D image HDU"):
        FitsMosaicSource([two])


def _memory_mapped(array) -> bool:
    import mmap

    while array is not None and not isinstance(array, mmap.mmap):
        array = getattr(array, "base", None)
    return array is not None


def test_scaled_integer_and_tile_compressed_images_are_read(tmp_path, mosaic, monkeypatch):
    """A BSCALE/BZERO int16 image (archives write them) had been refused: astropy cannot
    memory-map scaled data ('Set memmap=False'). Its raw integers are now memory-mapped and
    each cutout scaled (it had then been read whole as floats: 8 bytes a pixel for a 2-byte
    file), off-mosaic and BLANK pixels NaN; Rice tile-compressed images (.fits.fz) are read
    through their lazy section, only the tiles a cutout overlaps (they had been decompressed
    whole). A plain image stays memory-mapped (it had been copied whole into memory, for
    every Dask partition again): cutouts read only their pages."""
    from astropy.io.fits.hdu.compressed.section import CompImageSection

    paths, cat, _ = mosaic
    data = fits.getdata(paths[0]).astype(np.float32)
    header = _wcs(800).to_header()
    scaled = fits.PrimaryHDU(data.copy(), header=header)
    scaled.scale("int16", bscale=float(np.ptp(data)) / 60000, bzero=float(data.mean()))
    scaled.writeto(tmp_path / "scaled.fits")
    assert fits.getheader(tmp_path / "scaled.fits")["BITPIX"] == 16
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(data, header=header)]).writeto(
        tmp_path / "band.fits.fz")
    rows = Table({"RA": cat["ra"], "DEC": cat["Dec"]})
    want = FitsMosaicSource([paths[0]]).fetch(rows)
    for name in ("scaled.fits", "band.fits.fz"):
        got = FitsMosaicSource([tmp_path / name]).fetch(rows)
        for g, w in zip(got, want, strict=True):
            assert g.flags == w.flags == 0
            # int16 quantisation (and the compressor's) moves the stretched pixels a little
            assert np.abs(g.image.astype(int) - w.image.astype(int)).mean() < 2
    assert isinstance(FitsMosaicSource([tmp_path / "band.fits.fz"]).bands[0][0].section,
                      CompImageSection)
    # A field wider than the pixel limit, cut from every n-th pixel of the section too.
    from astro_morph.sources import fits_mosaic

    with monkeypatch.context() as m:
        m.setattr(fits_mosaic, "MAX_CUTOUT_PIXELS", 20)  # 60 arcsec = 152 px: every 8th
        a, b = (FitsMosaicSource([p], size_arcsec=60).fetch(rows[:1])[0]
                for p in (paths[0], tmp_path / "band.fits.fz"))
    assert a.flags == b.flags == 0 and a.image.shape == b.image.shape == (19, 19, 3)
    assert np.abs(a.image.astype(int) - b.image.astype(int)).mean() < 2
    assert _memory_mapped(FitsMosaicSource([paths[0]]).bands[0][0])
    assert _memory_mapped(FitsMosaicSource([tmp_path / "scaled.fits"]).bands[0][0])
    # Half off the edge, and on BLANK pixels: NaN as in the float image, so NAN_PIXELS.
    edge = _wcs(800).pixel_to_world(5, 400)
    half = Table({"RA": [edge.ra.deg], "DEC": [edge.dec.deg]})
    assert FitsMosaicSource([tmp_path / "scaled.fits"], size_arcsec=30).fetch(half)[0].flags \
        == MorphFlag.NAN_PIXELS
    bscale, bzero = float(np.ptp(data)) / 60000, float(data.mean())
    blanked = fits.PrimaryHDU(np.round((data - bzero) / bscale).astype(np.int16), header=header)
    blanked.header.update(BSCALE=bscale, BZERO=bzero, BLANK=-32768)
    gx, gy = (int(v) for v in _wcs(800).world_to_pixel_values(cat["ra"][1], cat["Dec"][1]))
    blanked.data[gy - 40:gy + 40, gx - 40:gx] = -32768  # half the cutout's width
    blanked.writeto(tmp_path / "blanked.fits")
    got = FitsMosaicSource([tmp_path / "blanked.fits"], size_arcsec=30).fetch(rows[1:2])[0]
    assert got.flags == MorphFlag.NAN_PIXELS
    # Integers with no BSCALE (raw counts), plain and tile-compressed: a cutout half off the
    # edge had been called outside the mosaic (Cutout2D refuses a NaN fill for integers).
    counts = np.round(data - data.min() + 100).astype(np.int16)  # no zeros (coadd gaps)
    fits.PrimaryHDU(counts, header=header).writeto(tmp_path / "counts.fits")
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(counts, header=header)]).writeto(
        tmp_path / "counts.fits.fz")
    for name in ("counts.fits", "counts.fits.fz"):
        source = FitsMosaicSource([tmp_path / name], size_arcsec=30)
        assert "BSCALE" not in fits.getheader(tmp_path / name, ext=-1)
        assert [c.flags for c in source.fetch(half)] == [MorphFlag.NAN_PIXELS], name
        for g, w in zip(source.fetch(rows), want, strict=True):
            assert g.flags == w.flags == 0
    # A region of zeros (a coadd's missing coverage) is still blank: here the left half of
    # the first galaxy's cutout (about 76 px), so NAN_PIXELS; all of it: outside.
    gap = data.copy()
    gap[:, :100] = 0
    fits.PrimaryHDU(gap, header=header).writeto(tmp_path / "gap.fits")
    gx, _ = _wcs(800).world_to_pixel_values(cat["ra"][0], cat["Dec"][0])
    assert 60 < gx < 140  # the first galaxy sits on the edge of the gap
    got = FitsMosaicSource([tmp_path / "gap.fits"], size_arcsec=30).fetch(rows[:1])
    assert got[0].flags == MorphFlag.NAN_PIXELS
    gap[:, :300] = 0
    fits.PrimaryHDU(gap, header=header).writeto(tmp_path / "gap2.fits")
    got = FitsMosaicSource([tmp_path / "gap2.fits"], size_arcsec=30).fetch(rows[:1])
    assert got[0].flags == MorphFlag.OUTSIDE_FOOTPRINT and "blank" in got[0].message


def test_rows_cut_in_threads_equal_rows_cut_in_one(mosaic, tmp_path):
    """The cuts run in the source's threads (a tile-compressed band's reads one at a time):
    every row, flag and pixel is what one thread gives, for plain, scaled-integer and
    compressed bands, bad and off-mosaic rows included."""
    paths, cat, wcs = mosaic
    data = fits.getdata(paths[0])
    scaled = fits.PrimaryHDU(data, header=wcs.to_header())
    scaled.scale("int16", bscale=float(np.ptp(data)) / 60000, bzero=float(data.mean()))
    scaled.writeto(tmp_path / "i16.fits")
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(data, header=wcs.to_header())]).writeto(
        tmp_path / "i.fits.fz")
    rows = Table({"ra": list(cat["ra"]) * 20 + [np.nan, 10.0, 150.1],
                  "Dec": list(cat["Dec"]) * 20 + [2.2, 2.2, -85.0]})
    for images in (paths, [tmp_path / "i16.fits", paths[1], tmp_path / "i.fits.fz"]):
        one = FitsMosaicSource(images, workers=1).fetch(rows)
        four = FitsMosaicSource(images, workers=4).fetch(rows)
        assert [c.flags for c in one] == [c.flags for c in four]
        assert {int(c.flags) for c in one} == {0, MorphFlag.BAD_COORDINATES,
                                               MorphFlag.OUTSIDE_FOOTPRINT}
        for a, b in zip(one, four, strict=True):
            assert a.message == b.message and a.meta == b.meta
            assert (a.image is None and b.image is None) or np.array_equal(
                a.image, b.image, equal_nan=True)


def test_a_mosaic_in_galactic_coordinates_is_cut_at_the_rows_icrs_position(mosaic, tmp_path):
    """The catalog's RA/Dec are ICRS; a mosaic whose WCS is galactic (GLON/GLAT) is cut
    where the same sky is, as with an equatorial mosaic of it."""
    from astropy.coordinates import SkyCoord

    paths, cat, wcs = mosaic
    centre = SkyCoord(wcs.wcs.crval[0] * u.deg, wcs.wcs.crval[1] * u.deg).galactic
    gal = WCS(naxis=2)
    gal.wcs.ctype = ["GLON-TAN", "GLAT-TAN"]
    gal.wcs.crval = [centre.l.deg, centre.b.deg]
    gal.wcs.crpix = [800.5, 800.5]  # wider than the equatorial one: the grids are turned
    gal.wcs.cdelt = wcs.wcs.cdelt
    # The same sky resampled onto the galactic grid is beyond this test; instead, a spot at
    # each galaxy's ICRS position on the galactic grid must be where its cut is centred.
    image = np.random.default_rng(0).normal(0, 0.01, (1600, 1600)).astype(np.float32)
    want = gal.world_to_pixel(SkyCoord(cat["ra"] * u.deg, cat["Dec"] * u.deg))
    assert np.all((np.array(want) > 20) & (np.array(want) < 1580))
    for x, y in zip(*want, strict=True):
        image[int(round(float(y))), int(round(float(x)))] = 1.0
    fits.PrimaryHDU(image, header=gal.to_header()).writeto(tmp_path / "gal.fits")
    cuts = FitsMosaicSource([tmp_path / "gal.fits"], size_arcsec=8).fetch(
        Table({"ra": cat["ra"], "Dec": cat["Dec"]}))
    for cut in cuts:
        assert cut.flags == 0, cut.message
        peak = np.unravel_index(np.nanargmax(cut.image[..., 0]), cut.image.shape[:2])
        assert np.allclose((peak[1], peak[0]), cut.meta["position"], atol=0.6), cut.meta


def test_a_band_compressed_in_whole_row_tiles_is_warned_of(mosaic, tmp_path, caplog):
    """fpack's default tiles are whole image rows: every cutout decompresses full-width
    rows, which on a wide mosaic is many times the cutout (docs/performance.md). Rows are
    kept in a cache (``cache_mb``); a band too large for it is warned of, with the cures.
    Square tiles, plain images, and bands that fit are not."""
    paths, _, wcs = mosaic
    wide = np.zeros((64, 4096), np.float32)  # 1 MB
    for name, tiles in (("rows.fits.fz", None), ("square.fits.fz", (64, 64))):
        fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(
            wide, header=wcs.to_header(), tile_shape=tiles)]).writeto(tmp_path / name)
    with caplog.at_level("WARNING", logger="astro_morph"):
        FitsMosaicSource([tmp_path / "square.fits.fz"], cache_mb=0.5)
        FitsMosaicSource([paths[0]], cache_mb=0.5)
        FitsMosaicSource([tmp_path / "rows.fits.fz"])  # fits the default 256 MB
        assert caplog.text == ""
        FitsMosaicSource([tmp_path / "rows.fits.fz"], cache_mb=0.5)
    assert "rows.fits.fz is tile-compressed in 1 x 4096 px tiles and its 1 MB" in caplog.text
    assert "raise cache_mb or decompress it first (funpack rows.fits.fz)" in caplog.text
    with pytest.raises(UserError, match="cache_mb=-1: expected megabytes >= 0"):
        FitsMosaicSource([paths[0]], cache_mb=-1)


def test_rows_of_a_compressed_band_are_decompressed_once_and_cut_the_same(mosaic, tmp_path,
                                                                        monkeypatch):
    """Cuts from the kept rows equal cuts from the section itself (edges, off-mosaic parts
    and a decimated wide field included), and a row is decompressed again only once the
    cache has let it go."""
    from astropy.io.fits.hdu.compressed import CompImageSection

    from astro_morph.sources import fits_mosaic

    paths, cat, wcs = mosaic
    data = fits.getdata(paths[0])
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(data, header=wcs.to_header())]).writeto(
        tmp_path / "i.fits.fz")
    edge = wcs.pixel_to_world_values([5.0, 400.0, 400.0], [790.0, 8.0, 400.0])
    rows = Table({"ra": list(cat["ra"]) + list(edge[0]), "Dec": list(cat["Dec"]) + list(edge[1]),
                  "r": [2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 10.0]})
    reads = []
    real = CompImageSection.__getitem__

    def counted(section, index):
        reads.append(index)
        return real(section, index)

    monkeypatch.setattr(CompImageSection, "__getitem__", counted)
    monkeypatch.setattr(fits_mosaic, "MAX_CUTOUT_PIXELS", 100)  # r=10: 257 px, every 3rd
    cached = FitsMosaicSource([tmp_path / "i.fits.fz"], size_column="r", workers=1)
    got = cached.fetch(rows)
    assert [int(c.flags) for c in got] == [0, 0, 0, 0, MorphFlag.OUTSIDE_FOOTPRINT,
                                           MorphFlag.NAN_PIXELS, 0]
    assert got[-1].image.shape[:2] == (86, 86)
    rows_read = sum(i[0].stop - i[0].start for i in reads if i[0].step in (None, 1))
    assert cached.fetch(rows) and sum(i[0].stop - i[0].start for i in reads
                                      if i[0].step in (None, 1)) == rows_read  # all kept
    assert rows_read <= 800
    # Without the cache: the band is the section, cut by Cutout2D directly.
    monkeypatch.setattr(fits_mosaic, "_DecompressedRows",
                        type("Off", (), {"__new__": lambda cls, section, *_: section}))
    direct = FitsMosaicSource([tmp_path / "i.fits.fz"], size_column="r", workers=1)
    assert isinstance(direct.bands[0][0], CompImageSection)
    for a, b in zip(got, direct.fetch(rows), strict=True):
        assert (a.flags, a.message, a.meta) == (b.flags, b.message, b.meta)
        assert (a.image is None and b.image is None) or np.array_equal(
            a.image, b.image, equal_nan=True)


def test_rows_far_off_a_distorted_mosaic_are_outside_it_and_the_rest_cut(tmp_path):
    """A SIP-distorted WCS's inverse diverges far off the image (astropy's NoConvergence,
    which had escaped the source): those rows are flagged outside the mosaic, and the rows
    of the same slice on it are cut as they are alone."""
    from astropy.wcs import Sip

    wcs = _wcs(512)
    wcs.wcs.ctype = ["RA---TAN-SIP", "DEC--TAN-SIP"]
    a, b = np.zeros((4, 4)), np.zeros((4, 4))
    a[2, 0], b[0, 2], a[3, 0], b[0, 3] = 3e-5, 3e-5, 1e-7, -1e-7
    wcs.sip = Sip(a, b, None, None, wcs.wcs.crpix)
    sky = np.random.default_rng(0).normal(0, 0.02, (512, 512)).astype(np.float32)
    fits.PrimaryHDU(sky, header=wcs.to_header(relax=True)).writeto(tmp_path / "sip.fits")
    source = FitsMosaicSource([tmp_path / "sip.fits"])
    near = Table({"ra": [150.1, 150.11], "Dec": [2.2, 2.21]})
    far = Table({"ra": [155.0, 170.0, 330.0], "Dec": [2.2, 30.0, -60.0]})
    cuts = source.fetch(vstack([near, far]))
    assert [int(c.flags) for c in cuts] == [0, 0] + [MorphFlag.OUTSIDE_FOOTPRINT] * 3
    assert all("is outside the mosaic" in c.message for c in cuts[2:])
    alone = source.fetch(near)
    for c, d in zip(cuts[:2], alone, strict=True):
        assert c.meta == d.meta and np.array_equal(c.image, d.image)
