"""The chunked run: source -> centring -> classifier -> columns.

Every step sees one chunk of rows at a time, so memory holds about two chunks of network
inputs (the one being classified and the one being prepared), not the whole catalog's.
"""

from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from astropy.table import Table

from .centring.base import CentringStep, Prepared
from .errors import UserError
from .flags import FATAL_FLAGS, MorphFlag
from .models.base import Classifier
from .sources.base import Source, decode_threads
from .sources.images import unusable_image

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


#: Errors that end the run rather than flag a row: the user's (one line), Ctrl-C, memory.
_RUN_ENDING = (UserError, KeyboardInterrupt, MemoryError)


def _raised(what: str, exc: BaseException, origin: str | None = None) -> str:
    """One row's message for an exception a plugin raised: where, what, why, on one line."""
    where = f"{origin}: " if origin else ""
    return f"{where}{what} raised {type(exc).__name__}: {' '.join(str(exc).split())[:300]}"


def _guarded(step: CentringStep, size: int) -> Any:
    """``cutout -> Prepared`` through ``step``, with the checks every row gets whatever the
    plugins: an unusable image is flagged ``IMAGE_BLANK``, and a centring step that raises
    (a plugin bug on one odd image) flags its row ``PREPARE_FAILED``, not the run."""

    def prepare(cutout: Any) -> Prepared:
        origin = cutout.meta.get("origin")
        if cutout.image is not None and not cutout.flags & FATAL_FLAGS:
            reason = unusable_image(cutout.image)
            if reason:
                said = f"{origin}: {reason}" if origin else reason
                message = f"{cutout.message}; {said}" if cutout.message else said
                return Prepared(None, cutout.flags | MorphFlag.IMAGE_BLANK, message=message)
        try:
            return step(cutout, size)
        except _RUN_ENDING:
            raise
        except Exception as exc:  # noqa: BLE001 - one row's problem, named in its message
            return Prepared(None, cutout.flags | MorphFlag.PREPARE_FAILED,
                            message=_raised("centring step", exc, origin))
    return prepare


def _prepare_all(cutouts: list, prepare: Any, pool: Executor | None) -> list[Prepared]:
    if pool is None or len(cutouts) < 8:
        return [prepare(c) for c in cutouts]
    return list(pool.map(prepare, cutouts))


def _fetch_prepare(rows: Table, source: Source, step: CentringStep, size: int,
                   pool: Executor | None) -> list[Prepared]:
    """One slice of rows through the source and the centring step (``pool``: its threads)."""
    prepare = _guarded(step, size)
    try:
        items = _fetch_slice(rows, source, prepare, pool)
    except _RUN_ENDING:
        raise
    except Exception as exc:  # noqa: BLE001 - the source broke its contract (rows, not runs)
        if len(rows) == 1:
            items = [Prepared(None, MorphFlag.PREPARE_FAILED, message=_raised("source", exc))]
        else:  # row by row: the rows it can fetch still classify, the others are flagged
            items = []
            for i in range(len(rows)):
                items += _fetch_prepare(rows[i:i + 1], source, step, size, None)
    if len(items) != len(rows):
        raise RuntimeError(f"source returned {len(items)} cutouts for {len(rows)} rows")
    return items


def _fetch_slice(rows: Table, source: Source, prepare: Any,
                 pool: Executor | None) -> list[Prepared]:
    # A fusing source's threads centre each row right after decoding it, while the decoded
    # image is still in cache; other sources return Cutouts that the pool then centres.
    if source.fuses_prepare:
        return source.fetch_prepared(rows, prepare)
    return _prepare_all(source.fetch(rows), prepare, pool)


class _Prefetcher:
    """Fetch and prepare slices of rows in a background thread, ahead of the classifier.

    Decoding (source + centring, threads that release the GIL) then overlaps inference on
    the previous chunk. At most ``depth`` prepared slices wait in the queue, so memory stays
    at about one chunk of network inputs ahead. An exception in the thread is re-raised by
    :meth:`get`; :meth:`close` stops the thread early (error or interrupt in the consumer).
    """

    def __init__(self, table: Table, slices: list[tuple[int, int]], source: Source,
                 step: CentringStep, size: int, pool: Executor | None, depth: int) -> None:
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(table, slices, source, step, size, pool),
            name="astromorph-prefetch", daemon=True)
        self._thread.start()

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, table: Table, slices: list[tuple[int, int]], source: Source,
             step: CentringStep, size: int, pool: Executor | None) -> None:
        try:
            for start, stop in slices:
                if self._stop.is_set():
                    return
                prepared = _fetch_prepare(table[start:stop], source, step, size, pool)
                if not self._put((start, prepared)):
                    return
        except BaseException as exc:  # handed to the consumer, which re-raises it
            self._put(exc)

    def get(self) -> tuple[int, list[Prepared]]:
        """The next slice's first row and prepared rows (the consumer asks for no more
        slices than it handed over)."""
        item = self._queue.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self, timeout: float = 10.0) -> None:
        """Stop the thread; it finishes the slice in hand (a slow network source may take a
        while: the daemon thread is then left to end on its own rather than block Ctrl-C)."""
        self._stop.set()
        self._thread.join(timeout)


def run_chunks(table: Table, source: Source, step: CentringStep, classifier: Classifier,
               chunk_size: int = 1024, workers: int | None = None,
               progress: bool | None = None, journal: Any = None) -> RunResult:
    """Classify every row of ``table``; a bad row is flagged, never dropped or fatal.

    Rows are fetched and prepared in slices of :data:`FETCH_ROWS` by a background thread
    while the classifier runs on the previous chunk; each chunk goes to the classifier in one
    call, so results do not depend on the overlap. With a
    :class:`astro_morph.journal.Journal`, finished chunks are read back instead of recomputed
    and each new chunk is saved as soon as it is done.
    """
    from tqdm.auto import tqdm

    n = len(table)
    k = len(classifier.class_names)
    size = classifier.input_size
    workers = workers or decode_threads()
    result = RunResult(np.full((n, k), np.nan, np.float32), np.zeros(n, np.int32),
                       np.full(n, np.nan, np.float32), np.full(n, np.nan, np.float32))
    # disable=None: tqdm shows the bar only on a terminal.
    bar = tqdm(total=n, unit="gal", desc="classify", leave=False,
               disable=None if progress is None else not progress)
    todo = []
    for start in range(0, n, chunk_size):
        stop = min(n, start + chunk_size)
        done = journal.load(start) if journal is not None else None
        if done is None:
            todo.append((start, stop))
            continue
        sl = slice(start, stop)
        result.probs[sl], result.flags[sl] = done["probs"], done["flags"]
        result.dx[sl], result.dy[sl] = done["dx"], done["dy"]
        result.messages += [(int(r), str(m)) for r, m in
                            zip(done["message_rows"], done["messages"], strict=True)]
        bar.update(stop - start)
    # Full-size cutouts of a whole chunk would dominate memory (1,024 x 424 x 424 x 3
    # bytes): the thread fetches FETCH_ROWS at a time and keeps only prepared inputs.
    slices = [(s, min(stop, s + FETCH_ROWS)) for start, stop in todo
              for s in range(start, stop, FETCH_ROWS)]
    # One pool of centring threads for the whole run, not one per slice (a source that
    # fuses decoding and centring runs both in its own threads).
    pool = ThreadPoolExecutor(workers, thread_name_prefix="astromorph-prepare") \
        if workers > 1 and slices and not source.fuses_prepare else None
    prefetch = _Prefetcher(table, slices, source, step, size, pool,
                           depth=-(-chunk_size // FETCH_ROWS)) if slices else None
    try:
        for start, stop in todo:
            n_messages = len(result.messages)
            prepared: list[Prepared] = []
            while len(prepared) < stop - start:
                sub, items = prefetch.get()
                if sub != start + len(prepared):
                    raise RuntimeError(f"prefetcher out of order at row {sub}")  # a bug
                prepared += items
            _classify_chunk(start, prepared, classifier, result)
            if journal is not None:
                new = result.messages[n_messages:]
                sl = slice(start, stop)
                journal.save(start, probs=result.probs[sl], flags=result.flags[sl],
                             dx=result.dx[sl], dy=result.dy[sl],
                             message_rows=np.array([r for r, _ in new], np.int64),
                             messages=np.array([m for _, m in new], dtype=str))
            bar.update(stop - start)
    finally:
        if prefetch is not None:
            prefetch.close()
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        bar.close()
    return result


def _classify_chunk(start: int, prepared: list[Prepared], classifier: Classifier,
                    result: RunResult) -> None:
    """Record flags and offsets of one chunk's rows and classify its usable images."""
    good = []
    for j, p in enumerate(prepared):
        row = start + j
        result.flags[row] = int(p.flags)
        result.dx[row], result.dy[row] = p.dx, p.dy
        if p.message:
            result.messages.append((row, p.message))
        if p.image is not None and not (p.flags & FATAL_FLAGS):
            good.append(j)
    if not good:
        return
    probs = classifier.predict(np.stack([prepared[j].image for j in good]))
    bad = ~np.isfinite(probs).all(axis=1)
    for j, row_probs, is_bad in zip(good, probs, bad, strict=True):
        row = start + j
        if is_bad:
            result.flags[row] |= int(MorphFlag.CLASSIFY_FAILED)
            result.messages.append((row, "classifier returned non-finite values"))
        else:
            result.probs[row] = row_probs
