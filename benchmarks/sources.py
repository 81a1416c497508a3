"""Cutout sources side by side: ``python -m benchmarks.sources [--n 2000] [--write]``.

Rows per second, in one run on one machine, through each local source and the paper's
centre crop (what ``classify`` does before the model: ``benchmarks.__main__.decode_only``'s
path for any source), and end to end (``astro_morph.classify`` with the default model):

* the Galaxy Zoo JPEG folder (``../shared/data/galaxyzoo``, the real images);
* local FITS mosaics (``--source fits``): three bands of a synthetic 4096 x 4096 px mosaic
  (TAN WCS, 0.262 arcsec/px, Sersic-like galaxies on noise), each row cut at a galaxy's
  RA/Dec with the default 60 arcsec field, stored three ways: 32-bit floats
  (memory-mapped), 16-bit integers with BSCALE/BZERO (the raw-integer path), and
  Rice tile-compressed ``.fits.fz`` in astropy's default whole-row tiles (rows decompressed
  once and kept: each timed run starts with a new source, so it includes that once).

The mosaic is synthetic (no real mosaic ships with the project); pixel values do not change
the cost of a cut. Ratios are to the JPEG folder. With ``--write`` the table goes into
``docs/performance.md``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from astropy.table import Table

from .__main__ import (
    DEFAULT_IMAGES,
    _best,
    _catalog,
    _write_block,
    fetch_and_centre,
    jpeg_ids,
    machine,
)
from .arguments import count

SIDE = 4096  # mosaic pixels a side
SCALE = 0.262  # arcsec per pixel (Legacy Survey's)


def write_mosaics(folder: Path, galaxies: int, side: int = SIDE,
                  seed: int = 0) -> tuple[dict[str, list[Path]], Table]:
    """Three bands of one synthetic mosaic in each storage (``float32``, ``int16 BSCALE``,
    ``Rice .fits.fz``), and a table of its galaxies' RA/Dec (degrees)."""
    from astropy.io import fits
    from astropy.wcs import WCS

    rng = np.random.default_rng(seed)
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [150.0, 2.0]
    wcs.wcs.crpix = [side / 2 + 0.5, side / 2 + 0.5]
    wcs.wcs.cdelt = [-SCALE / 3600, SCALE / 3600]
    margin = 40
    x = rng.uniform(margin, side - margin, galaxies)
    y = rng.uniform(margin, side - margin, galaxies)
    yy, xx = np.mgrid[-24:25, -24:25]
    stamps = []
    for _ in range(galaxies):
        r = np.hypot(xx, yy * rng.uniform(0.3, 1)) / rng.uniform(2, 8)
        stamps.append(np.exp(-7.67 * (r ** 0.25 - 1)).astype(np.float32))
    header = wcs.to_header()
    paths: dict[str, list[Path]] = {"float32": [], "int16 BSCALE": [], "Rice .fits.fz": []}
    for band, flux in (("i", 1.0), ("r", 0.8), ("g", 0.5)):
        sky = rng.normal(0, 0.02, (side, side)).astype(np.float32)
        for (gx, gy), stamp in zip(zip(x, y, strict=True), stamps, strict=True):
            i, j = int(gy) - 24, int(gx) - 24
            sky[i:i + 49, j:j + 49] += flux * stamp
        paths["float32"].append(folder / f"mosaic_{band}.fits")
        fits.PrimaryHDU(sky, header).writeto(paths["float32"][-1])
        scaled = fits.PrimaryHDU(sky, header)
        scaled.scale("int16", bscale=float(np.ptp(sky)) / 65000,
                     bzero=float(sky.min() + np.ptp(sky) / 2))
        paths["int16 BSCALE"].append(folder / f"mosaic_{band}_int16.fits")
        scaled.writeto(paths["int16 BSCALE"][-1])
        paths["Rice .fits.fz"].append(folder / f"mosaic_{band}.fits.fz")
        fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(sky, header,
                                                           compression_type="RICE_1")]
                     ).writeto(paths["Rice .fits.fz"][-1])
    ra, dec = wcs.pixel_to_world_values(x, y)
    return paths, Table({"RA": ra, "DEC": dec})


def mosaic_catalog(positions: Table, n: int) -> Table:
    """``n`` rows: the mosaic's galaxy positions repeated."""
    reps = -(-n // len(positions))
    return Table({c: np.tile(positions[c], reps)[:n] for c in positions.colnames})


def run(image_dir: Path, n: int, repeats: int, galaxies: int = 500,
        side: int = SIDE) -> list[tuple[str, float, float]]:
    """(source, fetch + centre rows/s, end-to-end rows/s), medians of ``repeats``."""
    import os

    import astro_morph
    from astro_morph.inference.load import load_model
    from astro_morph.sources.fits_mosaic import FitsMosaicSource
    from astro_morph.sources.galaxyzoo import GalaxyZooSource

    clf = load_model("default")
    size = clf.input_size
    workers = min(32, os.cpu_count() or 1)

    def timed(fn) -> float:
        return n / _best(fn, repeats)

    rows = []
    jpegs = _catalog(jpeg_ids(image_dir), n)
    rows.append(("Galaxy Zoo JPEG folder",
                 timed(lambda: fetch_and_centre(jpegs, GalaxyZooSource(image_dir=image_dir),
                                                size, workers)),
                 timed(lambda: astro_morph.classify(jpegs, model=clf, image_dir=image_dir,
                                                    progress=False))))
    with tempfile.TemporaryDirectory() as tmp:
        paths, positions = write_mosaics(Path(tmp), galaxies, side)
        cat = mosaic_catalog(positions, n)
        for storage, images in paths.items():
            images = [str(p) for p in images]
            rows.append((f"FITS mosaics, 3 bands, {storage}",
                         timed(lambda images=images: fetch_and_centre(
                             cat, FitsMosaicSource(image=images), size, workers)),
                         timed(lambda images=images: astro_morph.classify(
                             cat, source="fits", model=clf, image=images, progress=False))))
    return rows


def table(rows: list[tuple[str, float, float]]) -> str:
    base_fetch, base_e2e = rows[0][1], rows[0][2]
    out = ["| source | fetch + centre crop, rows/s | ratio | end to end, rows/s | ratio |",
           "|---|---|---|---|---|"]
    for name, fetch, e2e in rows:
        out.append(f"| {name} | {fetch:,.0f} | {fetch / base_fetch:.2f}x | {e2e:,.0f} | "
                   f"{e2e / base_e2e:.2f}x |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image-dir", type=Path, default=DEFAULT_IMAGES)
    ap.add_argument("--n", type=count, default=2000, help="rows per timed run")
    ap.add_argument("--repeats", type=count, default=3)
    ap.add_argument("--write", action="store_true", help="update docs/performance.md")
    args = ap.parse_args()
    if not args.image_dir.is_dir():
        raise SystemExit(f"no images at {args.image_dir} (give --image-dir)")
    rows = run(args.image_dir, args.n, args.repeats)
    command = "python -m benchmarks.sources" + (f" --n {args.n}" if args.n != 2000 else "") \
        + (f" --repeats {args.repeats}" if args.repeats != 3 else "") \
        + (" --write" if args.write else "")
    block = (f"Measured by `{command}` ({args.n:,} rows per run, median of {args.repeats}; "
             f"default model, ONNX backend) on: {machine()}.\n\n{table(rows)}")
    print(block)
    if args.write:
        _write_block("sources", block)


if __name__ == "__main__":
    main()
