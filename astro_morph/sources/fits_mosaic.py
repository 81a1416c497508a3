"""Local FITS mosaics with a WCS (``--source fits --image g.fits --image r.fits ...``).

One mosaic per band, reddest first or in any order with ``bands`` telling which is which.
Each row's RA/Dec is cut out of every band with astropy's ``Cutout2D`` (partial overlap
filled with NaN) and the bands are combined with the Lupton asinh stretch
(:mod:`astro_morph.centring.stretch`). Rows outside every mosaic are flagged
``OUTSIDE_FOOTPRINT``; rows on blank or NaN pixels ``NAN_PIXELS``.
"""

from __future__ import annotations

import logging
import os
import threading
import warnings
import weakref
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
from astropy import units as u
from astropy.table import Table

from ..centring.stretch import SURVEY_STRETCH, lupton_rgb
from ..errors import UserError, check_option, first_line, suggest_names
from ..flags import MorphFlag
from ..hookspecs import hookimpl
from .base import Cutout, Source
from .coords import GZ_FIELD_PER_PETROR90, cut_each_position, find_column, radec_degrees

__all__ = ["FitsMosaicSource", "GZ_FIELD_PER_PETROR90", "MAX_CUTOUT_PIXELS"]

#: Largest cutout side in pixels: a wider field is cut from every n-th mosaic pixel.
MAX_CUTOUT_PIXELS = 4096


class FitsMosaicSource(Source):
    """Cut galaxies out of FITS mosaics.

    Parameters
    ----------
    image : list of path
        One to three FITS images, one per band, reddest first (each its first 2-D HDU, extra
        axes of length 1 allowed, with a celestial WCS), sharing one pixel scale and
        orientation: every band is cut by the same pixel box.
    ra_column, dec_column : str
        Coordinate columns (case-insensitive): degrees, angle Quantities or sexagesimal text.
    size_arcsec : float
        Cutout side when there is no size column (default 60 arcsec).
    size_column : str, optional
        Column with petroR90-like radii in arcsec; the cutout side is
        ``GZ_FIELD_PER_PETROR90`` times it (Galaxy Zoo's framing). A field over
        :data:`MAX_CUTOUT_PIXELS` mosaic pixels across is cut from every n-th pixel, so a
        cutout's memory stays bounded (a 999.99 radius sentinel asked for gigabytes).
    survey : str
        Whose Lupton stretch to apply (a key of
        :data:`astro_morph.centring.stretch.SURVEY_STRETCH`: ``sdss``, ``legacysurvey`` or
        ``default``).
    max_nan_fraction : float
        More blank pixels than this and the row is flagged ``OUTSIDE_FOOTPRINT``.
    cache_mb : float
        Memory for the decompressed rows of tile-compressed bands (``.fits.fz``), shared by
        them: rows are decompressed once and kept, least recently used out first, so a
        mosaic that fits is decompressed once per run instead of once per cutout.
    """

    def __init__(self, image: list[str | os.PathLike] | str | None = None,
                 ra_column: str = "RA", dec_column: str = "DEC", size_arcsec: float = 60.0,
                 size_column: str | None = None, survey: str = "default",
                 max_nan_fraction: float = 0.5, cache_mb: float = 256.0, *,
                 workers: int | None = None, draft_side: int | None = None) -> None:
        super().__init__(workers=workers, draft_side=draft_side)
        from astropy.io.fits.hdu.compressed import CompImageSection
        from astropy.wcs import WCS

        paths = [image] if isinstance(image, (str, os.PathLike)) else list(image or [])
        if not paths:
            raise UserError("--source fits needs at least one --image FILE (one per band)")
        if len(paths) > 3:  # the colour composite takes 1-3 bands, reddest first
            raise UserError(f"--source fits takes 1 to 3 --image bands (reddest first), not "
                            f"{len(paths)}")
        if survey not in SURVEY_STRETCH:
            raise UserError(f"source 'fits' option survey={survey!r} is not known"
                            f"{suggest_names(survey, SURVEY_STRETCH)}; known: "
                            f"{', '.join(SURVEY_STRETCH)}")
        check_option(size_arcsec > 0, "source 'fits'", "size_arcsec", size_arcsec,
                     "a side > 0 arcsec")
        check_option(0 <= max_nan_fraction <= 1, "source 'fits'", "max_nan_fraction",
                     max_nan_fraction, "a fraction in [0, 1]")
        check_option(cache_mb >= 0, "source 'fits'", "cache_mb", cache_mb,
                     "megabytes >= 0")
        # Per band: its pixels (memory-mapped), its celestial WCS, and the BSCALE, BZERO and
        # BLANK that turn its raw integers into values (None for pixels that are values).
        self.bands: list[tuple[np.ndarray, Any, tuple[float, float, int | None] | None]] = []
        for p in paths:
            p = Path(p)
            try:
                hdul, hdu = _open_image(p)
                weakref.finalize(self, hdul.close)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # FITS WCS fix-up notices
                    wcs = WCS(hdu.header)
                if len(hdu.shape) > 2 and sorted([wcs.wcs.lng, wcs.wcs.lat]) != [0, 1]:
                    raise UserError(f"{p}: its celestial axes are not its first two "
                                    f"(CTYPE {', '.join(wcs.wcs.ctype)})")
                scaling = None
                try:  # memory-mapped: only the pages cutouts touch are read
                    data = _section_or_data(hdu)
                except ValueError:  # scaled integers (BSCALE/BZERO/BLANK): astropy would
                    hdul.close()    # read them whole; map the raw integers, scale each cut
                    hdul, hdu = _open_image(p, raw=True)
                    weakref.finalize(self, hdul.close)
                    data = hdu.data
                    scaling = (float(hdu.header.get("BSCALE", 1.0)),
                               float(hdu.header.get("BZERO", 0.0)), hdu.header.get("BLANK"))
                if scaling is None and data.dtype.kind in "iu":
                    # Integers with no BSCALE: the same path (a cut's off-mosaic part can
                    # only be NaN in floats; Cutout2D refuses a NaN fill for integers)
                    scaling = (1.0, 0.0, hdu.header.get("BLANK"))
                if data.ndim > 2:
                    data = data.reshape(data.shape[-2:])  # a NAXIS3 = 1 image: its plane
            except (OSError, ValueError, TypeError) as exc:
                raise UserError(f"cannot read FITS image {p}: {first_line(exc)}") from None
            if not wcs.has_celestial:
                raise UserError(f"{p}: header has no celestial WCS")
            self.bands.append((data, wcs.celestial, scaling))
        compressed = [i for i, band in enumerate(self.bands)
                      if isinstance(band[0], CompImageSection)]
        for i in compressed:
            data, wcs, scaling = self.bands[i]
            self.bands[i] = (_DecompressedRows(data, cache_mb * 2**20 / len(compressed),
                                               Path(paths[i])), wcs, scaling)
        self.ra_column, self.dec_column = ra_column, dec_column
        self.size_arcsec, self.size_column = size_arcsec, size_column
        self.stretch = SURVEY_STRETCH[survey]
        self.max_nan_fraction = max_nan_fraction
        # Each band is cut by the same pixel box, so the bands must share a pixel scale: on
        # different grids the planes would show different patches of sky, stacked silently.
        band_scales = [float(np.mean([s.to_value(u.arcsec)
                                      for s in wcs.proj_plane_pixel_scales()]))
                       for _, wcs, _ in self.bands]
        first = self.bands[0][1].pixel_scale_matrix
        for p, scale, (_, wcs, _) in zip(paths[1:], band_scales[1:], self.bands[1:],
                                         strict=True):
            if abs(scale / band_scales[0] - 1) > 0.01:
                raise UserError(f"--image {p}: {scale:.4g} arcsec per pixel, but {paths[0]} has "
                                f"{band_scales[0]:.4g}; give bands on one pixel grid (resample "
                                f"them first, e.g. with the reproject package)")
            # The same scale turned or mirrored: the same box would hold the sky rotated.
            if np.abs(wcs.pixel_scale_matrix - first).max() > 0.01 * np.abs(first).max():
                raise UserError(f"--image {p}: its pixel grid is rotated or flipped against "
                                f"{paths[0]}'s; give bands on one pixel grid (resample them "
                                f"first, e.g. with the reproject package)")
        self.pixel_scale = band_scales[0]

    def check_columns(self, columns: list[str]) -> None:
        """Raise a UserError naming a missing coordinate or size column."""
        find_column(columns, self.ra_column, "--ra-column")
        find_column(columns, self.dec_column, "--dec-column")
        if self.size_column:
            find_column(columns, self.size_column, "--size-column")

    def _pixels(self, ra: np.ndarray, dec: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Each band's pixel (x, y) of every position, NaN where it has none (a bad
        coordinate, or a sky position beyond the band's projection). One vectorised
        transform per band and slice: per row, a SkyCoord and its frame transform cost more
        than the cut itself."""
        from astropy.coordinates import SkyCoord
        from astropy.wcs import NoConvergence
        from astropy.wcs.utils import skycoord_to_pixel

        good = np.isfinite(ra) & np.isfinite(dec)
        coords = SkyCoord(ra[good] * u.deg, dec[good] * u.deg) if good.any() else None
        out = []
        for _, wcs, _ in self.bands:
            x, y = np.full(len(ra), np.nan), np.full(len(ra), np.nan)
            if coords is not None:
                try:
                    with warnings.catch_warnings(), np.errstate(invalid="ignore"):
                        warnings.simplefilter("ignore")  # wcslib's notices on invalid points
                        x[good], y[good] = skycoord_to_pixel(coords, wcs, mode="all")
                except NoConvergence as exc:  # SIP distortions diverge far off the image:
                    best = np.array(exc.best_solution, float).reshape(-1, 2)
                    if exc.divergent is not None:  # those rows are outside the mosaic
                        best[exc.divergent] = np.nan
                    x[good], y[good] = best[:, 0], best[:, 1]
                except ValueError:  # a singular or unusable WCS: no row has a pixel here
                    pass
            out.append((x, y))
        return out

    def _cut(self, xy: list[tuple[float, float]], ra: float, dec: float,
             side_pix: int) -> Cutout:
        """The row at pixel ``xy[band]`` of each band (``ra``, ``dec`` for messages)."""
        from astropy.nddata import Cutout2D
        from astropy.nddata.utils import NoOverlapError, overlap_slices

        planes = []
        position = None
        # A field wider than MAX_CUTOUT_PIXELS (a large nearby galaxy, or a radius sentinel)
        # is cut from every step-th pixel: the memory-mapped mosaic is read only there, and
        # the cutout stays at most that many pixels a side, framed as asked.
        step = -(-side_pix // MAX_CUTOUT_PIXELS)
        side = (-(-side_pix // step),) * 2
        for (data, _, scaling), (x, y) in zip(self.bands, xy, strict=True):
            try:
                if not (np.isfinite(x) and np.isfinite(y)):
                    raise ValueError("no pixel")  # beyond the projection
                if step > 1:  # pixel k of data[::step] is pixel step*k of the mosaic
                    data = data.every(step) if isinstance(data, _DecompressedRows) \
                        else data[::step, ::step]
                    x, y = x / step, y / step
                elif isinstance(data, _DecompressedRows):  # the rows and columns the cut
                    (rows, cols), _ = overlap_slices(data.shape, side, (y, x), mode="partial")
                    data = data.box(rows, cols)  # overlaps, then the same cut of them
                    x, y = x - cols.start, y - rows.start
                cut = Cutout2D(data, (x, y), side, mode="partial",
                               fill_value=np.nan if scaling is None else 0)
            except (NoOverlapError, ValueError):
                return Cutout(None, MorphFlag.OUTSIDE_FOOTPRINT,
                              f"RA={ra:.6f} Dec={dec:.6f} is outside the mosaic")
            planes.append(cut.data.astype(np.float64) if scaling is None
                          else _scaled(cut, *scaling))
            position = position or tuple(float(v) for v in cut.input_position_cutout)
        blank = np.mean([_blank(plane) for plane in planes])
        if blank > self.max_nan_fraction:
            return Cutout(None, MorphFlag.OUTSIDE_FOOTPRINT,
                          f"RA={ra:.6f} Dec={dec:.6f}: {blank:.0%} of the cutout is blank")
        flags = MorphFlag.NAN_PIXELS if blank > 0 else 0
        # The catalog position inside the cutout (x, y): centring measures offsets from it.
        return Cutout(lupton_rgb(planes, **self.stretch), flags,
                      pixel_scale=self.pixel_scale * step,
                      meta={"position": position, "origin": f"RA={ra:.6f} Dec={dec:.6f}"})

    def fetch(self, rows: Table) -> list[Cutout]:
        """One Cutout per row, cut from every band at the row's position."""
        coords = radec_degrees(rows, self.ra_column, self.dec_column)
        pixels = self._pixels(*coords[:2])
        # Rows in the source's threads: the stretch is numpy work that releases the GIL.
        threads = self.workers > 1 and len(rows) > 1
        return cut_each_position(
            rows, self.ra_column, self.dec_column, self.size_column, self.size_arcsec,
            lambda i, ra, dec, side: self._cut(
                [(float(x[i]), float(y[i])) for x, y in pixels], ra, dec,
                max(8, int(round(side / self.pixel_scale)))),
            self._threads().map if threads else map, coords)


def _scaled(cut, bscale: float, bzero: float, blank: int | None) -> np.ndarray:
    """A Cutout2D of raw scaled integers as physical floats (``raw * BSCALE + BZERO``, as
    astropy would scale the whole image), NaN off the mosaic and on BLANK pixels."""
    raw = cut.data
    plane = raw.astype(np.float64) * bscale + bzero
    missing = np.ones(raw.shape, bool)
    missing[cut.slices_cutout] = False
    if blank is not None:
        missing |= raw == blank
    plane[missing] = np.nan
    return plane


def _open_image(path: Path, raw: bool = False):
    """(the open, memory-mapped HDUList, its first image HDU with a 2-D sky: 2-D, or with
    extra axes of length 1, as some pipelines write a single plane); a UserError when there
    is none. ``raw``: scaled integers stay unscaled (so that they can be memory-mapped)."""
    from astropy.io import fits

    hdul = fits.open(path, memmap=True, do_not_scale_image_data=raw)
    hdu = next((h for h in hdul if h.is_image and h.shape
                and sum(n > 1 for n in h.shape) == 2
                and tuple(h.shape[-2:]) == tuple(n for n in h.shape if n > 1)), None)
    if hdu is None:
        hdul.close()
        raise UserError(f"{path}: no 2-D image HDU")
    return hdul, hdu


def _section_or_data(hdu):
    """A tile-compressed (.fits.fz) 2-D image's lazy section, of which Cutout2D decompresses
    only the tiles a cutout overlaps (``hdu.data`` decompresses the whole mosaic, in every
    Dask partition); any other HDU's data (memory-mapped)."""
    from astropy.io.fits import CompImageHDU

    if isinstance(hdu, CompImageHDU) and len(hdu.shape) == 2:
        return hdu.section
    return hdu.data


class _DecompressedRows:
    """A tile-compressed band's rows, decompressed on first use and kept up to a memory
    budget (least recently used out first). astropy's section decompresses every tile a
    cutout overlaps on every read, and fpack's default tiles are whole image rows, so
    without this each cutout decompresses its rows in full width again. Reads and the
    cache are one thread at a time (the section reads its file)."""

    def __init__(self, section, budget_bytes: float, path: Path) -> None:
        self.section = section
        self.shape = tuple(section.shape)
        row_bytes = self.shape[1] * np.dtype(section.dtype).itemsize
        self._max_rows = int(budget_bytes // row_bytes)
        self._rows: OrderedDict[int, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        if self._max_rows < self.shape[0]:  # not all kept: misses decompress tiles again
            _warn_wide_tiles(path, section)

    def box(self, rows: slice, cols: slice) -> np.ndarray:
        """``section[rows, cols]`` (steps of 1), from kept rows where it can."""
        want = range(rows.start, rows.stop)
        with self._lock:
            missing = [y for y in want if y not in self._rows]
            out = {}
            for start, stop in _runs(missing):
                block = self.section[start:stop, :]
                out.update({start + k: block[k] for k in range(stop - start)})
            out.update({y: self._rows[y] for y in want if y in self._rows})
            if self._max_rows:
                for y in want:
                    self._rows[y] = out[y]
                    self._rows.move_to_end(y)
                while len(self._rows) > self._max_rows:
                    self._rows.popitem(last=False)
        return np.stack([out[y][cols] for y in want])

    def every(self, step: int) -> np.ndarray:
        """``section[::step, ::step]`` (a field wider than MAX_CUTOUT_PIXELS), not kept."""
        with self._lock:
            return self.section[::step, ::step]


def _runs(values: list[int]):
    """Consecutive runs of sorted integers as (start, stop) pairs."""
    start = prev = None
    for v in values:
        if start is None:
            start = prev = v
        elif v == prev + 1:
            prev = v
        else:
            yield start, prev + 1
            start = prev = v
    if start is not None:
        yield start, prev + 1


#: Tiles at least this wide make a tile-compressed band slow to cut (one warning).
WIDE_TILE_PIXELS = 2048


def _warn_wide_tiles(path: Path, section) -> None:
    """Warn that a compressed band too large for its share of ``cache_mb`` is compressed
    in tiles so wide (fpack's default: whole image rows) that each cutout missing the cache
    decompresses many times its own pixels (docs/performance.md, "Cutout sources",
    measures both)."""
    tiles = tuple(int(n) for n in section.hdu.tile_shape)
    if tiles[-1] >= WIDE_TILE_PIXELS:
        size = float(np.prod(section.shape)) * np.dtype(section.dtype).itemsize
        logging.getLogger("astro_morph").warning(
            "%s is tile-compressed in %s px tiles and its %.0f MB do not fit the cache "
            "(--source-option cache_mb): cutouts decompress whole tiles of that width again "
            "and again, much slower than cutting a decompressed copy; for many rows, raise "
            "cache_mb or decompress it first (funpack %s)", path, " x ".join(map(str, tiles)),
            size / 2**20, path.name)


def _blank(plane: np.ndarray) -> np.ndarray:
    """Pixels with no data: NaN or inf, and regions of exact zeros (how coadds such as
    SWarp's fill no coverage). A zero counts only inside a 3 x 3 block of zeros: lossy tile
    compression (.fits.fz) quantises faint sky to exact 0 in scattered pixels, which are
    data."""
    from scipy.ndimage import binary_opening

    zero = plane == 0
    if zero.any():
        zero = binary_opening(zero, structure=np.ones((3, 3), bool))
    return ~np.isfinite(plane) | zero


@hookimpl
def astromorph_register_sources(register):
    register("fits", FitsMosaicSource,
             "local FITS mosaics with a WCS (--image per band), Cutout2D at RA/Dec, Lupton RGB")
