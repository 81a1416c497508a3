"""Small JPEG copies of a labelled image folder, for a GPU machine that takes at most 64 MiB.

A lent device machine has no ``../shared``; gz1's 6,664 images (93 MB) do not fit beside the
repository. The trainer reads only the centre of each image: the training cache covers
``TRAIN_REGION`` (0.80) of the side, the val/test crop 200/424. So each copy is resized to
``--side`` pixels and everything outside that centre is set to black, which JPEG stores in
almost no bytes. ``--side`` bounds the input size a copy serves: ``cache_size_for(size)``
pixels must fit in ``TRAIN_REGION * side`` (188 px serves inputs up to 88 px).

Models trained on the copies are scored on the original images here (``astromorph
evaluate``): the copies only feed the training.

    python3 scripts/device_copies.py ../shared/data/gz1/labels.csv \\
        --image-dir ../shared/data/gz1/images --id-column OBJID -o .device/gz1
"""

from __future__ import annotations

import argparse
import math
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from astro_morph.errors import UserError
from astro_morph.sources.base import format_id
from astro_morph.training.data import TRAIN_REGION, _find_image, cache_size_for, load_labels


def largest_input(side: int) -> int:
    """The largest network input the copies serve without upsampling (train and val)."""
    size = int(side * 200 / 424)
    while size > 1 and cache_size_for(size) > TRAIN_REGION * side:
        size -= 1
    return size


def copy_one(src: Path, dst: Path, side: int, quality: int) -> int:
    """Write the masked, resized copy; returns its size in bytes."""
    with Image.open(src) as im:
        a = np.asarray(im.convert("RGB").resize((side, side), Image.LANCZOS)).copy()
    # black outside the centre TRAIN_REGION, with a pixel to spare for the resampling
    margin = max(int(math.floor(side * (1 - TRAIN_REGION) / 2)) - 1, 0)
    if margin:
        a[:margin], a[-margin:], a[:, :margin], a[:, -margin:] = 0, 0, 0, 0
    Image.fromarray(a).save(dst, "JPEG", quality=quality)
    return dst.stat().st_size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("labels", type=Path)
    ap.add_argument("--image-dir", type=Path, required=True)
    ap.add_argument("--id-column", required=True)
    ap.add_argument("-o", "--out", type=Path, required=True)
    ap.add_argument("--side", type=int, default=188)
    ap.add_argument("--quality", type=int, default=85)
    args = ap.parse_args()
    table = load_labels(args.labels, args.id_column)
    args.out.mkdir(parents=True, exist_ok=True)
    images = args.out / "images"
    images.mkdir(exist_ok=True)
    pairs = []
    for value in table[args.id_column]:
        key = format_id(value) or ""
        found = _find_image(args.image_dir, key)  # the file the trainer would open
        if found is None:
            raise UserError(f"{args.image_dir}: no image for id {key or repr(value)}")
        pairs.append((found, images / (key + ".jpeg")))
    with ThreadPoolExecutor() as pool:
        sizes = list(pool.map(lambda p: copy_one(*p, args.side, args.quality), pairs))
    shutil.copy(args.labels, args.out / args.labels.name)
    print(f"{len(sizes)} copies at {args.side} px (quality {args.quality}) in {images}: "
          f"{sum(sizes) / 2**20:.1f} MiB; inputs up to {largest_input(args.side)} px")


if __name__ == "__main__":
    from astro_morph.errors import run_script

    run_script(main)
