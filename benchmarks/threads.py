"""How decoding scales with threads: ``python -m benchmarks.threads [--threads 1,4,16]``.

On a machine with many cores (the lent GPU machine), the pipeline's decode + crop/resize
stopped scaling at about 2x one thread while the cores were free. This separates the parts,
each in ``N`` threads over the same real JPEGs:

* libjpeg-turbo's decode alone (``simplejpeg.decode_jpeg``, which releases the GIL);
* Pillow's crop + resize alone, on images already decoded (releases the GIL in its loops);
* reading the file and both, as plain calls (``read_rgb`` then ``crop_resize``), no source;
* the pipeline's whole decode + centre crop per row (``benchmarks.__main__.decode_only``:
  the Galaxy Zoo source, the checks and flags, in its own decoding threads).

A part that scales while the next does not puts the limit in what the next one adds.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .__main__ import DEFAULT_IMAGES, _catalog, decode_only, jpeg_ids
from .arguments import count, counts


def _in_threads(items: list, work: Callable[[list], None], threads: int) -> float:
    """Items per second when ``threads`` threads each take an equal share."""
    parts = [items[i::threads] for i in range(threads)]
    with ThreadPoolExecutor(threads) as pool:
        t = time.perf_counter()
        list(pool.map(work, parts))
        return len(items) / (time.perf_counter() - t)


def run(image_dir: Path, n: int, threads: tuple[int, ...]) -> list[tuple[str, int, float]]:
    """(part, threads, items/s) for each part and thread count."""
    from unittest import mock

    import simplejpeg
    from PIL import Image

    from astro_morph import pipeline
    from astro_morph.centring.crop import crop_resize
    from astro_morph.sources.images import pillow_rgb, read_rgb

    ids = jpeg_ids(image_dir)
    data = [(image_dir / f"{i}.jpg").read_bytes() for i in ids]
    data = (data * -(-n // len(data)))[:n]
    images = [simplejpeg.decode_jpeg(d, "RGBX")[:, :, :3] for d in data[: len(ids)]]
    images = (images * -(-n // len(images)))[:n]

    def decode(part: list) -> None:
        for d in part:
            simplejpeg.decode_jpeg(d, "RGBX")

    def resize(part: list) -> None:
        for im in part:
            h, w = im.shape[:2]
            side = 200 / 424 * min(h, w)
            box = ((w - side) / 2, (h - side) / 2, (w + side) / 2, (h + side) / 2)
            pillow_rgb(im).resize((55, 55), Image.Resampling.BILINEAR, box=box)

    def read_crop(part: list) -> None:
        for path in part:
            crop_resize(read_rgb(path), 55)

    paths = [image_dir / f"{i}.jpg" for i in ids]
    paths = (paths * -(-n // len(paths)))[:n]
    cat = _catalog(ids, n)
    decode_only(cat[: len(ids)], image_dir, 55)  # every file into the page cache
    rows = []
    for k in threads:
        rows.append(("libjpeg-turbo decode alone (simplejpeg)", k, _in_threads(data, decode, k)))
        rows.append(("Pillow crop + resize to 55 px alone", k, _in_threads(images, resize, k)))
        rows.append(("read_rgb + crop_resize, plain calls", k, _in_threads(paths, read_crop, k)))
        for slice_rows in (pipeline.FETCH_ROWS, 8 * pipeline.FETCH_ROWS):
            # the pipeline's threads meet after every slice: does a longer one help?
            with mock.patch.object(pipeline, "FETCH_ROWS", slice_rows):
                t = time.perf_counter()
                decode_only(cat, image_dir, 55, workers=k)
            rows.append((f"pipeline decode + crop/resize per row, slices of {slice_rows}", k,
                         n / (time.perf_counter() - t)))
        print(*(f"{what}, {k} threads: {rate:,.0f}/s" for what, kk, rate in rows[-5:]),
              sep="\n", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description="astro_morph decoding thread scaling")
    ap.add_argument("--image-dir", type=Path, default=DEFAULT_IMAGES)
    ap.add_argument("--n", type=count, default=4000, help="images per measurement")
    ap.add_argument("--threads", type=counts, default=sorted({1, 4, os.cpu_count() or 1}))
    args = ap.parse_args()
    rows = run(args.image_dir, args.n, tuple(args.threads))
    one = {what: rate for what, k, rate in rows if k == min(args.threads)}
    print("\n| part | threads | per second | x fewest threads |\n|---|---|---|---|")
    for part in dict.fromkeys(what for what, _, _ in rows):  # grouped by part, in order
        for what, k, rate in rows:
            if what == part:
                print(f"| {what} | {k} | {rate:,.0f} | {rate / one[what]:.1f}x |")


if __name__ == "__main__":
    from astro_morph.errors import run_script

    run_script(main)
