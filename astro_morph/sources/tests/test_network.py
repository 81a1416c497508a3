"""SDSS and Legacy Survey sources against recorded responses through a mocked transport.

The 15 SkyServer getjpeg responses in ../shared/data/sdss_skyserver are replayed for the
requests that made them; timeouts, 5xx and corrupt payloads are injected. No network.
"""

import csv
import re

import numpy as np
import pytest
import requests
from astropy.table import Table

from astro_morph.flags import MorphFlag
from astro_morph.sources.legacysurvey import LegacySurveySource
from astro_morph.sources.sdss import SdssSource
from conftest import shared_data


class FakeTransport:
    """Stands in for requests.Session.request: a script of answers per request.

    Set on the class, an instance is not bound to the session, so it receives
    ``(method, url, ...)`` exactly as astroquery calls ``session.request``.
    """

    def __init__(self, answer):
        self.answer = answer
        self.calls = []

    def __call__(self, method, url, params=None, **kw):
        self.calls.append((url, dict(params or {})))
        result = self.answer(url, dict(params or {}), len(self.calls))
        if isinstance(result, Exception):
            raise result
        status, content = result
        resp = requests.Response()
        resp.status_code, resp._content, resp.url = status, content, url
        return resp


@pytest.fixture
def recorded():
    d = shared_data("sdss_skyserver")
    with open(d / "requests.csv") as fh:
        rows = list(csv.DictReader(fh))
    by_pos = {(f"{float(r['ra']):.6f}", f"{float(r['dec']):.6f}"): (d / r["file"]).read_bytes()
              for r in rows}
    table = Table({"ra": [float(r["ra"]) for r in rows], "dec": [float(r["dec"]) for r in rows],
                   "gz1": [r["gz1_label"] for r in rows]})
    return by_pos, table


def _source(tmp_path, **kw):
    opts = dict(size_arcsec=24, pixels=120, cache_dir=tmp_path / "cache", backoff=0.0,
                rate=0, concurrency=2)
    opts.update(kw)
    return SdssSource(**opts)


def test_replays_the_15_recorded_skyserver_responses(recorded, tmp_path, monkeypatch):
    by_pos, table = recorded
    fake = FakeTransport(lambda url, p, n: (200, by_pos[(p["ra"], p["dec"])]))
    monkeypatch.setattr(requests.Session, "request", fake)
    out = _source(tmp_path).fetch(table)
    assert len(fake.calls) == 15 and all(c.flags == 0 for c in out)
    assert all(c.image.shape == (120, 120, 3) for c in out)
    url, params = fake.calls[0]
    assert "getjpeg" in url and params["scale"] == "0.2000" and params["width"] == 120
    # Second run: every response comes from the disk cache, offline too.
    again = _source(tmp_path, offline=True).fetch(table)
    assert len(fake.calls) == 15
    assert all(np.array_equal(a.image, b.image) for a, b in zip(out, again, strict=True))


def test_retries_timeouts_and_5xx_then_succeeds(recorded, tmp_path, monkeypatch):
    by_pos, table = recorded
    script = {1: requests.Timeout("read timed out"), 2: (503, b"busy"), 3: (500, b"")}
    fake = FakeTransport(lambda url, p, n: script.get(n, (200, by_pos[(p["ra"], p["dec"])])))
    monkeypatch.setattr(requests.Session, "request", fake)
    out = _source(tmp_path, concurrency=1).fetch(table[:1])
    assert out[0].flags == 0 and len(fake.calls) == 4


def test_gives_up_and_flags_then_the_run_goes_on(recorded, tmp_path, monkeypatch):
    by_pos, table = recorded
    bad_ra = f"{table['ra'][1]:.6f}"

    def answer(url, p, n):
        if p["ra"] == bad_ra:
            return requests.ConnectionError("connection reset")
        return 200, by_pos[(p["ra"], p["dec"])]

    monkeypatch.setattr(requests.Session, "request", FakeTransport(answer))
    out = _source(tmp_path, retries=2).fetch(table[:3])
    assert [c.flags for c in out] == [0, MorphFlag.DOWNLOAD_FAILED, 0]
    assert "gave up after 3 attempts: ConnectionError" in out[1].message


def test_final_4xx_corrupt_payload_offline_and_bad_coordinates(recorded, tmp_path,
                                                                 monkeypatch):
    by_pos, table = recorded
    ras = [f"{v:.6f}" for v in table["ra"]]

    def answer(url, p, n):
        if p["ra"] == ras[0]:
            return 404, b"not found"
        if p["ra"] == ras[1]:
            return 200, b"\xff\xd8\xff garbage, not a jpeg"
        return 200, by_pos[(p["ra"], p["dec"])]

    fake = FakeTransport(answer)
    monkeypatch.setattr(requests.Session, "request", fake)
    rows = Table({"RA": list(table["ra"][:3]) + [np.nan],
                  "DEC": list(table["dec"][:3]) + [0.0]})
    out = _source(tmp_path, retries=3).fetch(rows)
    assert out[0].flags == MorphFlag.DOWNLOAD_FAILED and "HTTP 404" in out[0].message
    assert out[1].flags == MorphFlag.IMAGE_UNREADABLE
    assert out[2].flags == 0 and out[3].flags == MorphFlag.BAD_COORDINATES
    assert len(fake.calls) == 3  # a 404 is final: no retry
    offline = _source(tmp_path / "empty", offline=True).fetch(rows[:1])
    assert offline[0].flags == MorphFlag.DOWNLOAD_FAILED and "--offline" in offline[0].message


def test_rate_limit_spaces_requests(recorded, tmp_path, monkeypatch):
    import time

    by_pos, table = recorded
    stamps = []

    def answer(url, p, n):
        stamps.append(time.monotonic())
        return 200, by_pos[(p["ra"], p["dec"])]

    monkeypatch.setattr(requests.Session, "request", FakeTransport(answer))
    _source(tmp_path, rate=20, concurrency=4).fetch(table[:6])
    gaps = np.diff(sorted(stamps))
    assert gaps.min() > 0.04  # 20 requests/s at most


def test_legacysurvey_request_is_built_by_astroquery_hips2fits(tmp_path, monkeypatch):
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (40, 30, 20)).save(buf, "JPEG")
    fake = FakeTransport(lambda url, p, n: (200, buf.getvalue()))
    monkeypatch.setattr(requests.Session, "request", fake)
    src = LegacySurveySource(pixels=64, size_arcsec=36, cache_dir=tmp_path, rate=0)
    out = src.fetch(Table({"RA": [202.46958], "DEC": [47.19526]}))
    assert out[0].flags == 0 and out[0].image.shape == (64, 64, 3)
    url, params = fake.calls[0]
    assert "hips2fits" in url and params["hips"] == "CDS/P/DESI-Legacy-Surveys/DR10/color"
    assert params["format"] == "jpg" and float(params["fov"]) == pytest.approx(0.01)


def test_classify_end_to_end_with_recorded_sdss(recorded, tiny_model, tmp_path, monkeypatch):
    import astro_morph

    by_pos, table = recorded
    monkeypatch.setattr(requests.Session, "request",
                        FakeTransport(lambda url, p, n: (200, by_pos[(p["ra"], p["dec"])])))
    out = astro_morph.classify(table, source="sdss", model=tiny_model, size_arcsec=24,
                               pixels=120, cache_dir=tmp_path / "c", progress=False)
    assert len(out) == 15 and (out["morph_flags"] == 0).all()
    assert list(out["gz1"]) == list(table["gz1"])


@pytest.mark.remote_data
def test_live_sdss_cutout(tmp_path):
    out = SdssSource(size_arcsec=40, pixels=64, cache_dir=tmp_path).fetch(
        Table({"RA": [202.46958], "DEC": [47.19526]}))
    assert out[0].flags == 0 and out[0].image.shape == (64, 64, 3)


def test_cli_cache_dir_then_offline(recorded, tiny_model, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from astro_morph.cli import cli

    by_pos, table = recorded
    cat = tmp_path / "cat.ecsv"
    table[:4].write(cat)
    fake = FakeTransport(lambda url, p, n: (200, by_pos[(p["ra"], p["dec"])]))
    monkeypatch.setattr(requests.Session, "request", fake)
    args = ["classify", str(cat), "--source", "sdss", "--model", str(tiny_model), "--pixels", "96",
            "--size-arcsec", "24", "--cache-dir", str(tmp_path / "cache"), "--no-progress"]
    first = CliRunner().invoke(cli, [*args, "-o", str(tmp_path / "a.fits")])
    assert first.exit_code == 0, first.output
    assert len(fake.calls) == 4 and fake.calls[0][1]["width"] == 96
    # Offline: served from --cache-dir, no request made.
    second = CliRunner().invoke(cli, [*args, "--offline", "-o", str(tmp_path / "b.fits")])
    assert second.exit_code == 0, second.output
    assert len(fake.calls) == 4
    assert (Table.read(tmp_path / "b.fits")["morph_flags"] == 0).all()
    # Offline with an empty cache: every row flagged, none lost.
    third = CliRunner().invoke(cli, [*args[:-3], "--cache-dir", str(tmp_path / "none"),
                                     "--no-progress", "--offline", "-o", str(tmp_path / "c.fits")])
    assert third.exit_code == 3, third.output  # written, but nothing could be classified
    assert "no row was classified" in third.output
    flags = Table.read(tmp_path / "c.fits")["morph_flags"]
    assert len(flags) == 4 and (flags == int(MorphFlag.DOWNLOAD_FAILED)).all()


def _fits_response(planes, blank=False):
    """A hips2fits-like FITS answer: real TAN WCS header, generated galaxy pixels."""
    import io

    from astropy.io import fits
    from astropy.modeling.models import Sersic2D
    from astropy.wcs import WCS

    n = 64
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [202.46958, 47.19526]
    wcs.wcs.crpix = [n / 2 + 0.5, n / 2 + 0.5]
    wcs.wcs.cdelt = [-36 / 3600 / n, 36 / 3600 / n]
    y, x = np.mgrid[:n, :n]
    galaxy = Sersic2D(amplitude=1.0, r_eff=6, n=1.5, x_0=n / 2, y_0=n / 2, ellip=0.5)(x, y)
    data = np.stack([galaxy * (1.2 - 0.2 * k) for k in range(planes)]).astype(np.float32)
    if blank:
        data[:, :, : n * 3 // 4] = np.nan
    hdu = fits.PrimaryHDU(data[0] if planes == 1 else data, header=wcs.to_header())
    buf = io.BytesIO()
    hdu.writeto(buf)
    return buf.getvalue()


@pytest.mark.parametrize("planes", [1, 3])
def test_fits_responses_are_stretched_like_mosaics(planes, tmp_path, monkeypatch):
    fake = FakeTransport(lambda url, p, n: (200, _fits_response(planes)))
    monkeypatch.setattr(requests.Session, "request", fake)
    src = LegacySurveySource(pixels=64, size_arcsec=36, cache_dir=tmp_path, rate=0,
                             image_format="fits")
    out = src.fetch(Table({"RA": [202.46958], "DEC": [47.19526]}))
    assert fake.calls[0][1]["format"] == "fits"
    img = out[0].image
    assert out[0].flags == 0 and img.dtype == np.float32 and img.shape == (64, 64, 3)
    assert np.isfinite(img).all() and 0 <= img.min() and img.max() <= 1
    # The light's centroid is the galaxy's centre: the stretch kept the geometry.
    g = img[..., 1]
    y, x = np.mgrid[: g.shape[0], : g.shape[1]]
    cy, cx = (g * y).sum() / g.sum(), (g * x).sum() / g.sum()
    assert abs(cy - 31.5) < 1 and abs(cx - 31.5) < 1 and g[32, 32] > g[32, 2] + 0.3


def test_blank_fits_response_is_flagged_outside_footprint(tmp_path, monkeypatch):
    monkeypatch.setattr(requests.Session, "request",
                        FakeTransport(lambda url, p, n: (200, _fits_response(3, blank=True))))
    src = LegacySurveySource(pixels=64, cache_dir=tmp_path, rate=0, image_format="fits")
    out = src.fetch(Table({"RA": [10.0], "DEC": [-80.0]}))
    assert out[0].flags == MorphFlag.OUTSIDE_FOOTPRINT and "blank" in out[0].message


def test_query_region_replays_astroquerys_recorded_skyserver_response(recorded, tiny_model,
                                                                      tmp_path, monkeypatch):
    """astroquery's own recorded crossid response (xid_im.txt): 18 detections of one galaxy."""
    import os

    import astroquery
    from astroquery.query import BaseQuery
    from astroquery.utils.mocks import MockResponse

    import astro_morph
    from astro_morph.sources.sdss import query_region

    path = os.path.join(os.path.dirname(astroquery.__file__), "sdss/tests/data/xid_im.txt")
    if not os.path.isfile(path):
        pytest.skip("astroquery's test data (sdss/tests/data/xid_im.txt) is not installed")
    with open(path, "rb") as fh:
        content = fh.read()
    monkeypatch.setattr(BaseQuery, "_request",
                        lambda self, method, url, **kw: MockResponse(content, url=url))
    found = query_region("2.02344 14.8398", radius="5 arcsec")
    assert len(found) == 1 and found["objid"][0] == 1237653651835781245
    assert found["RA"].unit == "deg"
    # ... and that one-row catalog goes straight into the SDSS source.
    by_pos, _ = recorded
    jpeg = next(iter(by_pos.values()))
    monkeypatch.undo()
    fake = FakeTransport(lambda url, p, n: (200, jpeg))
    monkeypatch.setattr(requests.Session, "request", fake)
    out = astro_morph.classify(found, source="sdss", model=tiny_model,
                               cache_dir=tmp_path, rate=0, progress=False)
    assert out["morph_flags"][0] == 0 and fake.calls[0][1]["ra"] == "2.023443"


def test_network_down_stops_trying_after_consecutive_connection_failures(tmp_path, monkeypatch):
    """No network: a few connects fail, then every other row is flagged without a request
    (not retries with backoff per row), and one warning says why."""
    import logging

    fake = FakeTransport(lambda url, p, n: requests.ConnectionError(
        "HTTPSConnectionPool: Failed to resolve 'skyserver.sdss.org' ([Errno -3] Temporary "
        "failure in name resolution)"))
    monkeypatch.setattr(requests.Session, "request", fake)
    rows = Table({"ra": np.linspace(150, 151, 200), "dec": np.full(200, 2.0)})
    src = _source(tmp_path, retries=4, concurrency=4, max_connection_failures=8)
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("astro_morph").addHandler(handler)
    try:
        out = src.fetch(rows)
    finally:
        logging.getLogger("astro_morph").removeHandler(handler)
    assert all(c.flags == MorphFlag.DOWNLOAD_FAILED for c in out)
    # At most the limit plus the attempts already in flight when it tripped.
    assert 8 <= len(fake.calls) <= 8 + 4
    assert "not tried: sdss unreachable after 8 connection failures" in out[-1].message
    assert len(records) == 1 and "Temporary failure in name resolution" in records[0].getMessage()


def test_a_success_resets_the_failure_count(recorded, tmp_path, monkeypatch):
    by_pos, table = recorded

    def flaky(url, p, n):  # every other request fails to connect
        return requests.ConnectionError("refused") if n % 2 else (200, by_pos[(p["ra"], p["dec"])])

    monkeypatch.setattr(requests.Session, "request", FakeTransport(flaky))
    out = _source(tmp_path, concurrency=1, max_connection_failures=2).fetch(table)
    assert all(c.flags == 0 for c in out)


def test_cli_retries_and_timeout_reach_the_source(monkeypatch, tmp_path):
    from click.testing import CliRunner

    from astro_morph import api
    from astro_morph.cli import cli

    seen = {}

    def fake_classify(table, **options):
        seen.update(options)
        raise KeyboardInterrupt

    monkeypatch.setattr(api, "classify", fake_classify)
    cat = tmp_path / "cat.ecsv"
    Table({"RA": [150.0], "DEC": [2.0]}).write(cat)
    result = CliRunner().invoke(cli, ["classify", str(cat), "--source", "sdss", "--retries", "1",
                                      "--timeout", "5", "-o", str(tmp_path / "o.fits")])
    assert result.exit_code == 130, result.output
    assert seen["retries"] == 1 and seen["timeout"] == 5.0


def test_a_cache_dir_that_is_a_file_is_refused(tmp_path):
    """Before: every row was flagged 'not in the cache' (offline) or failed to write."""
    from astro_morph.errors import UserError

    (tmp_path / "cat.fits").write_bytes(b"a catalog, not a folder")
    with pytest.raises(UserError, match="cat.fits is a file, not a folder"):
        SdssSource(cache_dir=tmp_path / "cat.fits", offline=True)


@pytest.mark.parametrize(("option", "says"), [
    ({"pixels": 0}, "pixels=0: expected a cutout side of at least 1 pixel"),
    ({"concurrency": 0}, "concurrency=0: expected 1 or more"),
    ({"timeout": 0.0}, "timeout=0.0: expected more than 0 seconds"),
    ({"retries": -1}, "retries=-1: expected 0 or more"),
    ({"max_blank_fraction": 2.0}, "max_blank_fraction=2.0: expected a fraction in"),
    ({"size_arcsec": -1.0}, "size_arcsec=-1.0: expected a side > 0 arcsec")])
def test_out_of_range_options_are_one_line(option, says, tmp_path):
    """Set through the API or --source-option (the CLI's own flags have click ranges): before,
    pixels=0 ended in a ZeroDivisionError and the others flagged every row or were clamped."""
    from astro_morph.errors import UserError

    with pytest.raises(UserError, match=f"^source 'sdss' option {re.escape(says)}"):
        SdssSource(cache_dir=tmp_path, offline=True, **option)
