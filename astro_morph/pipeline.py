"""The chunked run: source -> centring -> classifier -> columns.

Every step sees one chunk of rows at a time, so memory holds one chunk of images, not the
whole catalog's.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from astropy.table import Table

from .centring.crop import Prepared
from .flags import FATAL_FLAGS, MorphFlag
from .models.base import Classifier

__all__ = ["RunResult", "run_chunks"]

log = logging.getLogger("astro_morph")

#: Rows fetched and prepared at a time inside a chunk (bounds the full-size images in memory).
FETCH_ROWS = 128


@dataclass
class RunResult:
    """Per-row outputs of a run, aligned with the input rows."""

    probs: np.ndarray
    flags: np.ndarray
    dx: np.ndarray
    dy: np.ndarray
    messages: list[tuple[int, str]] = field(default_factory=list)


def _prepare_all(cutouts: list, step: Callable, size: int, workers: int) -> list[Prepared]:
    if workers <= 1 or len(cutouts) < 8:
        return [step(c, size) for c in cutouts]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda c: step(c, size), cutouts))


def run_chunks(table: Table, source: Any, step: Callable, classifier: Classifier,
               chunk_size: int = 1024, workers: int | None = None,
               progress: bool | None = None, journal: Any = None) -> RunResult:
    """Classify every row of ``table``; a bad row is flagged, never dropped or fatal.

    With a :class:`astro_morph.journal.Journal`, finished chunks are read back instead of
    recomputed and each new chunk is saved as soon as it is done.
    """
    from tqdm.auto import tqdm

    n = len(table)
    k = len(classifier.class_names)
    size = classifier.input_size
    workers = workers or min(8, os.cpu_count() or 1)
    result = RunResult(np.full((n, k), np.nan, np.float32), np.zeros(n, np.int32),
                       np.full(n, np.nan, np.float32), np.full(n, np.nan, np.float32))
    # disable=None: tqdm shows the bar only on a terminal.
    bar = tqdm(total=n, unit="gal", desc="classify", leave=False,
               disable=None if progress is None else not progress)
    try:
        for start in range(0, n, chunk_size):
            stop = min(n, start + chunk_size)
            done = journal.load(start) if journal is not None else None
            if done is not None:
                sl = slice(start, stop)
                result.probs[sl], result.flags[sl] = done["probs"], done["flags"]
                result.dx[sl], result.dy[sl] = done["dx"], done["dy"]
                result.messages += [(int(r), str(m)) for r, m in
                                    zip(done["message_rows"], done["messages"], strict=True)]
                bar.update(stop - start)
                continue
            n_messages = len(result.messages)
            # Fetch and prepare in slices: full-size cutouts of a whole chunk would dominate
            # memory (1,024 x 424 x 424 x 3 bytes); prepared ones are small.
            prepared = []
            for sub in range(start, stop, FETCH_ROWS):
                sub_stop = min(stop, sub + FETCH_ROWS)
                cutouts = source.fetch(table[sub:sub_stop])
                if len(cutouts) != sub_stop - sub:
                    raise RuntimeError(f"source returned {len(cutouts)} cutouts for "
                                       f"{sub_stop - sub} rows")
                prepared += _prepare_all(cutouts, step, size, workers)
                del cutouts
            good = []
            for j, p in enumerate(prepared):
                row = start + j
                result.flags[row] = int(p.flags)
                result.dx[row], result.dy[row] = p.dx, p.dy
                if p.message:
                    result.messages.append((row, p.message))
                if p.image is not None and not (p.flags & FATAL_FLAGS):
                    good.append(j)
            if good:
                batch = np.stack([prepared[j].image for j in good])
                probs = classifier.predict(batch)
                bad = ~np.isfinite(probs).all(axis=1)
                for j, row_probs, is_bad in zip(good, probs, bad, strict=True):
                    row = start + j
                    if is_bad:
                        result.flags[row] |= int(MorphFlag.CLASSIFY_FAILED)
                        result.messages.append((row, "classifier returned non-finite values"))
                    else:
                        result.probs[row] = row_probs
            if journal is not None:
                new = result.messages[n_messages:]
                sl = slice(start, stop)
                journal.save(start, probs=result.probs[sl], flags=result.flags[sl],
                             dx=result.dx[sl], dy=result.dy[sl],
                             message_rows=np.array([r for r, _ in new], np.int64),
                             messages=np.array([m for _, m in new], dtype=str))
            bar.update(stop - start)
    finally:
        bar.close()
    return result
