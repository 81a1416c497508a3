"""Find images of the same sky in two image sets (e.g. a labelled test split and a folder of
unlabelled images from another survey release).

Galaxy Zoo releases share galaxies: the same SDSS object can appear in GZ1 (labelled here)
and in the Kaggle GZ2 images, cut out at a different pixel scale. A smooth elliptical looks
like many others at thumbnail size, so shape alone cannot tell a duplicate from a look-alike;
the *noise* can: two cutouts of the same frames carry the same pixel noise, look-alikes carry
independent noise. So: (1) shortlist candidates by thumbnail correlation, (2) confirm by the
correlation of the high-pass (noise and fine structure) of the central region, searched over
relative pixel scales.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

__all__ = ["thumbnail", "same_sky", "near_duplicates", "pool_duplicates"]


def _grey(path: str | os.PathLike, side: int | None = None) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("L")
        if side is not None:
            im.draft("L", (2 * side, 2 * side))
        return np.asarray(im, dtype=np.float32)


def thumbnail(path: str | os.PathLike, side: int = 24) -> np.ndarray:
    """The central half of the image at ``side`` x ``side``, zero mean, unit norm (flat)."""
    from PIL import Image

    a = _grey(path, 4 * side)
    h, w = a.shape
    crop = Image.fromarray(a[h // 4:3 * h // 4, w // 4:3 * w // 4])
    t = np.asarray(crop.resize((side, side), Image.BILINEAR), dtype=np.float32).ravel()
    t = t - t.mean()
    return t / (np.linalg.norm(t) + 1e-6)


def _thumbnail_or_zero(path: str | os.PathLike) -> np.ndarray:
    """An unreadable image matches nothing (the trainer skips it later, with a count)."""
    from PIL import Image

    try:
        return thumbnail(path)
    except (OSError, ValueError, Image.DecompressionBombError):
        return np.zeros(24 * 24, np.float32)


def _highpass_centre(a: np.ndarray, radius: int) -> np.ndarray:
    from scipy.ndimage import uniform_filter

    h, w = a.shape
    c = a[h // 2 - radius:h // 2 + radius, w // 2 - radius:w // 2 + radius]
    d = (c - uniform_filter(c, 9)).ravel()
    d = d - d.mean()
    return d / (np.linalg.norm(d) + 1e-6)


def same_sky(a: np.ndarray, b: np.ndarray, scales: Sequence[float] = tuple(
        np.round(np.arange(0.80, 1.25, 0.02), 2)), radius: int = 64) -> float:
    """Best high-pass correlation of the centres of greyscale images ``a`` and ``b`` over
    ``b``'s pixel scale relative to ``a`` (~0.8 for the same sky, ~0 for look-alikes)."""
    from PIL import Image

    ha = _highpass_centre(a, radius)
    hb_, wb_ = b.shape
    best = -1.0
    for s in scales:
        zoom = a.shape[1] * s / wb_  # b pixels -> a pixels at this relative scale
        half = int(np.ceil((radius + 4) / zoom))  # only the centre is compared: crop first
        if 2 * half > min(hb_, wb_):
            continue
        centre = b[hb_ // 2 - half:hb_ // 2 + half, wb_ // 2 - half:wb_ // 2 + half]
        side = max(2 * radius, round(2 * half * zoom))
        hb = _highpass_centre(np.asarray(Image.fromarray(centre).resize((side, side),
                                                                       Image.BILINEAR),
                                         dtype=np.float32), radius)
        best = max(best, float(ha @ hb))
    return best


def near_duplicates(queries: Sequence[str | os.PathLike], pool: Sequence[str | os.PathLike],
                    shortlist: int = 5, floor: float = 0.95,
                    threshold: float = 0.5) -> dict[int, int]:
    """``{query index: pool index}`` for every query image whose sky is in ``pool``.

    Each query's ``shortlist`` pool images of highest thumbnail correlation (at least
    ``floor``: a duplicate's thumbnails correlate at ~0.99) are checked with
    :func:`same_sky`; a pair counts at ``threshold`` or more.
    """
    if not len(queries) or not len(pool):
        return {}
    q = np.stack([_thumbnail_or_zero(p) for p in queries])
    t = np.stack([_thumbnail_or_zero(p) for p in pool])
    corr = q @ t.T
    top = np.argsort(-corr, axis=1)[:, :shortlist]
    found: dict[int, int] = {}
    for i, row in enumerate(top):
        row = [int(j) for j in row if corr[i, j] >= floor]
        if not row:
            continue
        a = _grey(queries[i])
        score, j = max((same_sky(a, _grey(pool[j])), j) for j in row)
        if score >= threshold:
            found[i] = j
    return found


def pool_duplicates(queries: Sequence[str | os.PathLike],
                    pool: Sequence[str | os.PathLike | None]) -> set[int]:
    """Indices of the ``pool`` images that show the sky of any of ``queries`` (a None in
    ``pool``, an image not found, matches nothing): the rows to drop from training."""
    have = [i for i, p in enumerate(pool) if p is not None]
    if not len(queries) or not have:
        return set()
    return {have[j] for j in near_duplicates(queries, [pool[i] for i in have]).values()}


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m astro_morph.training.duplicates LABELS IMAGE_DIR OTHER_DIR [--json OUT]``:
    which val/test images of a labelled set show a galaxy that is also in OTHER_DIR."""
    import argparse
    import json
    from pathlib import Path

    from .data import load_labels
    from .pseudo import evaluation_images, unlabelled_images

    ap = argparse.ArgumentParser(prog="python -m astro_morph.training.duplicates",
                                 description=main.__doc__)
    ap.add_argument("labels")
    ap.add_argument("image_dir")
    ap.add_argument("other_dir")
    ap.add_argument("--id-column", default="OBJID")
    ap.add_argument("--json", help="Write {labelled id: other file} here.")
    args = ap.parse_args(argv)
    queries = evaluation_images(load_labels(args.labels, args.id_column), args.image_dir,
                                args.id_column)
    pool = list(unlabelled_images(args.other_dir).values())
    found = {queries[i].stem: pool[j].name for i, j in near_duplicates(queries, pool).items()}
    print(f"{len(found)} of {len(queries)} val/test images show a galaxy that is in "
          f"{args.other_dir} ({len(pool)} images)")
    if args.json:
        Path(args.json).write_text(json.dumps(found, indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
