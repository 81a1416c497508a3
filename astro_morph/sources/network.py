"""Shared machinery of network cutout sources: disk cache, retries, rate limit, offline mode.

HTTP goes through astroquery's ``BaseQuery._request`` (its session, user agent and timeout
handling). Responses are cached on disk by a hash of URL and parameters, so a rerun, a
``--resume`` or ``--offline`` costs no request. Timeouts, connection errors, HTTP 429 and 5xx
are retried with exponential backoff; other 4xx are final. A row whose download fails is
flagged ``DOWNLOAD_FAILED`` and the run goes on. After ``max_connection_failures`` attempts in
a row fail to connect at all (no network, DNS failure, connection refused), the source stops
trying: every later uncached row is flagged at once, with one warning for the whole run,
instead of seconds of backoff per row.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from astropy.table import Table

from ..errors import UserError, check_option
from ..flags import MorphFlag
from .base import Cutout, Source
from .coords import cut_each_position, find_column

__all__ = ["NetworkSource", "DownloadError", "default_cache_dir"]

RETRY_STATUS = {429, 500, 502, 503, 504}

log = logging.getLogger("astro_morph")


def _short_reason(exc: Exception) -> str:
    """``ConnectionError: [Errno 111] Connection refused`` rather than urllib3's whole chain."""
    import re

    m = re.search(r"\[Errno -?\d+\] [^'\")]+|Temporary failure in name resolution|"
                  r"Name or service not known|timed out", str(exc))
    return f"{type(exc).__name__}: {m.group(0) if m else str(exc)[:120]}"


class DownloadError(Exception):
    """A request failed for good (after retries, or a final 4xx, or offline and uncached)."""


def default_cache_dir(name: str) -> Path:
    """``<cache root>/cutouts/<name>`` (:func:`astro_morph.fileio.cache_root`)."""
    from ..fileio import cache_root

    return cache_root() / "cutouts" / name


class _RateLimiter:
    """At most ``rate`` request starts per second across threads."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.lock = threading.Lock()
        self.next = 0.0

    def wait(self) -> None:
        with self.lock:
            now = time.monotonic()
            start = max(now, self.next)
            self.next = start + self.interval
        if start > now:
            time.sleep(start - now)


class NetworkSource(Source):
    """Base of the SDSS and Legacy Survey sources; subclasses give ``request`` and ``decode``.

    Parameters
    ----------
    ra_column, dec_column : str
        Coordinate columns (case-insensitive; degrees, angle Quantities or sexagesimal).
    size_arcsec : float
        Cutout side when there is no size column.
    size_column : str, optional
        Galaxy radius column in arcsec (petroR90-like): side = 10.18 radii (Galaxy Zoo).
    pixels : int
        Cutout side in pixels requested from the service.
    cache_dir : path, optional
        Response cache (default: astropy's cache dir / astro_morph / cutouts / <name>).
    offline : bool
        Use the cache only; uncached rows are flagged ``DOWNLOAD_FAILED``.
    retries, backoff, timeout : int, float, float
        Attempts after the first, first backoff in seconds (doubling), request timeout.
    rate : float
        Maximum requests started per second (politeness to the archive).
    concurrency : int
        Requests in flight at once.
    max_blank_fraction : float
        A FITS cutout with more NaN pixels than this is flagged ``OUTSIDE_FOOTPRINT``.
    max_connection_failures : int
        Consecutive attempts that fail to connect (across rows and threads) after which the
        network is taken as down for the rest of the run.
    """

    name = "network"

    def __init__(self, ra_column: str = "RA", dec_column: str = "DEC",
                 size_arcsec: float | None = None, size_column: str | None = None,
                 pixels: int = 128, cache_dir: str | os.PathLike | None = None,
                 offline: bool = False, retries: int = 4, backoff: float = 1.0,
                 timeout: float = 30.0, rate: float = 5.0, concurrency: int = 4,
                 max_blank_fraction: float = 0.5, max_connection_failures: int = 8, *,
                 workers: int | None = None, draft_side: int | None = None) -> None:
        super().__init__(workers=workers, draft_side=draft_side)
        from astroquery.query import BaseQuery

        what = f"source {self.name!r}"
        check_option(size_arcsec is None or size_arcsec > 0, what, "size_arcsec", size_arcsec,
                     "a side > 0 arcsec")
        check_option(pixels >= 1, what, "pixels", pixels, "a cutout side of at least 1 pixel")
        check_option(retries >= 0, what, "retries", retries, "0 or more")
        check_option(backoff >= 0, what, "backoff", backoff, "0 or more seconds")
        check_option(timeout > 0, what, "timeout", timeout, "more than 0 seconds")
        check_option(concurrency >= 1, what, "concurrency", concurrency, "1 or more")
        check_option(0 <= max_blank_fraction <= 1, what, "max_blank_fraction",
                     max_blank_fraction, "a fraction in [0, 1]")
        check_option(max_connection_failures >= 1, what, "max_connection_failures",
                     max_connection_failures, "1 or more")
        self.ra_column, self.dec_column = ra_column, dec_column
        self.size_arcsec = size_arcsec or 60.0
        self.size_column = size_column
        self.pixels = int(pixels)
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir(self.name)
        if self.cache_dir.exists() and not self.cache_dir.is_dir():  # else every row fails
            raise UserError(f"--cache-dir {self.cache_dir} is a file, not a folder")
        self.offline = offline
        self.retries, self.backoff, self.timeout = retries, backoff, timeout
        self.limiter = _RateLimiter(rate)
        self.concurrency = int(concurrency)
        self.max_blank_fraction = max_blank_fraction
        self.query = BaseQuery()
        self.requests_made = 0
        self.max_connection_failures = int(max_connection_failures)
        self._failures = 0  # consecutive attempts that could not connect
        self._down: str | None = None  # why the network is taken as down, once it is
        self._state_lock = threading.Lock()

    # --- to be provided by subclasses ---------------------------------------------------
    def request(self, ra: float, dec: float, size_arcsec: float) -> tuple[str, dict]:
        """URL and query parameters of one cutout."""
        raise NotImplementedError

    def decode(self, content: bytes) -> np.ndarray:
        """Response bytes to an (H, W, 3) image; raises on a corrupt payload.

        JPEG/PNG give uint8 RGB. A FITS payload (an image, or a cube of up to three band
        planes, reddest first) goes through the survey's Lupton stretch to float32 in [0, 1],
        with blank pixels left NaN for the centring step to flag.
        """
        if content[:6] == b"SIMPLE":
            return self.decode_fits(content)
        from .images import decode_rgb

        return decode_rgb(content)

    def decode_fits(self, content: bytes) -> np.ndarray:
        """A FITS response to a stretched (H, W, 3) float32 image."""
        from astropy.io import fits

        from ..centring.stretch import SURVEY_STRETCH, lupton_rgb

        with fits.open(io.BytesIO(content)) as hdul:
            hdu = next((h for h in hdul if h.data is not None and h.data.ndim in (2, 3)), None)
            if hdu is None:
                raise ValueError("FITS response has no 2-D image or 3-plane cube")
            data = np.asarray(hdu.data, dtype=np.float32)
        planes = [data] if data.ndim == 2 else list(data)
        if not 1 <= len(planes) <= 3:
            raise ValueError(f"FITS cube has {len(planes)} planes; expected 1-3 bands")
        # FITS rows run south to north; flip to the image-row order JPEG cutouts use.
        planes = [p[::-1] for p in planes]
        return lupton_rgb(planes, **SURVEY_STRETCH.get(self.name, SURVEY_STRETCH["default"]))

    # --- shared ---------------------------------------------------------------------------
    def check_columns(self, columns: list[str]) -> None:
        """Raise a UserError naming a missing coordinate or size column."""
        find_column(columns, self.ra_column, "--ra-column")
        find_column(columns, self.dec_column, "--dec-column")
        if self.size_column:
            find_column(columns, self.size_column, "--size-column")

    def _cache_path(self, url: str, params: dict) -> Path:
        key = json.dumps([url, sorted((k, str(v)) for k, v in params.items())])
        return self.cache_dir / f"{hashlib.sha256(key.encode()).hexdigest()}.bin"

    def get(self, url: str, params: dict) -> bytes:
        """Response content from the cache, or the network with retries; DownloadError."""
        import requests

        path = self._cache_path(url, params)
        if path.is_file():
            return path.read_bytes()
        if self.offline:
            raise DownloadError("not in the cache and --offline is set")
        last = ""
        for attempt in range(self.retries + 1):
            if self._down:
                raise DownloadError(f"not tried: {self._down}")
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
                if self._down:
                    raise DownloadError(f"not tried: {self._down}")
            self.limiter.wait()
            try:
                self.requests_made += 1
                resp = self.query._request("GET", url, params=params, timeout=self.timeout,
                                           cache=False)
            except requests.ConnectionError as exc:  # DNS, refused, unreachable, connect timeout
                last = _short_reason(exc)
                self._connection_failed(last)
                continue
            except requests.Timeout as exc:  # a slow answer: the network is up
                last = f"{type(exc).__name__}: {exc}"
                continue
            with self._state_lock:
                self._failures = 0
            if resp.status_code in RETRY_STATUS:
                last = f"HTTP {resp.status_code}"
                continue
            if resp.status_code >= 400:
                raise DownloadError(f"HTTP {resp.status_code} from {url}")
            content = resp.content
            if not content:
                last = "empty response"
                continue
            self._store(path, content)
            return content
        raise DownloadError(f"gave up after {self.retries + 1} attempts: {last}")

    def _connection_failed(self, reason: str) -> None:
        """Count a failed connect; past the limit, take the network as down (one warning)."""
        with self._state_lock:
            self._failures += 1
            if self._down or self._failures < self.max_connection_failures:
                return
            self._down = (f"{self.name} unreachable after {self._failures} connection failures "
                          f"in a row")
        log.warning("%s (last: %s); the remaining uncached rows are flagged DOWNLOAD_FAILED "
                    "without trying (cached rows still classify; downloads are cached, so a "
                    "rerun once the network is back costs only the missing rows)",
                    self._down, reason[:200])

    def _store(self, path: Path, content: bytes) -> None:
        from ..fileio import cache_put

        cache_put(path, content)  # an unwritable cache costs a re-download, not the row

    def _one(self, ra: float, dec: float, size: float) -> Cutout:
        url, params = self.request(ra, dec, size)
        where = f"RA={ra:.6f} Dec={dec:.6f}"
        try:
            content = self.get(url, params)
        except DownloadError as exc:
            return Cutout(None, MorphFlag.DOWNLOAD_FAILED, f"{self.name} {where}: {exc}")
        try:
            image = self.decode(content)
        except Exception as exc:  # a corrupt payload is the row's problem, not the run's
            self._cache_path(url, params).unlink(missing_ok=True)
            return Cutout(None, MorphFlag.IMAGE_UNREADABLE,
                          f"{self.name} {where}: unreadable response ({exc})")
        if image.dtype.kind == "f":
            blank = float(np.isnan(image[..., 0]).mean())
            if blank > self.max_blank_fraction:  # hips2fits answers NaN off the survey
                return Cutout(None, MorphFlag.OUTSIDE_FOOTPRINT,
                              f"{self.name} {where}: {blank:.0%} of the cutout is blank")
        return Cutout(image, pixel_scale=size / self.pixels,
                      meta={"origin": f"{self.name} {where}"})

    def fetch(self, rows: Table) -> list[Cutout]:
        """One Cutout per row; requests run ``concurrency`` at a time under the rate limit."""
        with ThreadPoolExecutor(self.concurrency) as pool:
            return cut_each_position(rows, self.ra_column, self.dec_column, self.size_column,
                                     self.size_arcsec,
                                     lambda _, ra, dec, side: self._one(ra, dec, side), pool.map)
