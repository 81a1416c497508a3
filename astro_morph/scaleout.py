"""Catalogs larger than one machine: the same per-partition pipeline on dask.distributed.

The catalog is cut into partitions of ``partition_rows`` rows; each partition runs
:func:`astro_morph.classify` on a Dask worker, which loads the model once and keeps it for the
partitions that follow. Results come back in catalog order (one table), or each worker writes
its partition as ``part-NNNNN.parquet`` into an output folder (nothing gathered; a rerun skips
the parts already written, which makes a partitioned run resumable).

With ``partition_rows`` a multiple of ``chunk_size`` (the default), every inference batch
holds the same images as in a single-process run, so the output is identical row for row.
LSDB/HATS catalogs go through :func:`classify_lsdb` (``lsdb`` installed separately).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from astropy.table import Table

from .errors import UserError, first_line
from .journal import Journal, folder_fingerprint

__all__ = ["connect", "dask_client", "classify_dask", "classify_lsdb", "is_local"]

#: Models loaded in this (worker) process, by (path, backend, device, batch size).
_MODELS: dict[tuple, Any] = {}


def _worker_threads() -> int | None:
    """Threads the Dask worker running this task was given (None outside a worker)."""
    try:
        from distributed import get_worker

        return get_worker().state.nthreads
    except (ImportError, ValueError, AttributeError):
        return None


def _model(ref: str, backend: str, device: str, batch_size: int | None):
    from .inference.load import load_model

    key = (ref, backend, device, batch_size)
    if key not in _MODELS:
        # Several workers share a machine: each runs as many ONNX streams as it has
        # threads, not one per core of the machine.
        _MODELS[key] = load_model(ref, backend, device, batch_size, threads=_worker_threads())
    return _MODELS[key]


class _Refused(str):
    """A partition's UserError, returned rather than raised: a raised one is also logged by
    the worker with its traceback (on the user's terminal, for a local cluster), though it
    is the one-line error the client then prints."""


def _run_partition(part: Table, index: int, model: str, backend: str, device: str,
                   batch_size: int, output_dir: str | None, options: dict[str, Any]):
    """Worker side: classify one partition; return it, or write it and return its path
    (a :class:`_Refused` message for a UserError)."""
    try:
        return _classify_partition(part, index, model, backend, device, batch_size,
                                   output_dir, options)
    except UserError as exc:
        return _Refused(str(exc))


def _classify_partition(part: Table, index: int, model: str, backend: str, device: str,
                        batch_size: int, output_dir: str | None, options: dict[str, Any]):
    from .api import classify

    if output_dir is not None:
        path = Path(output_dir) / f"part-{index:05d}.parquet"
        if path.is_file():
            return str(path), len(part)
    options = {"workers": _worker_threads(), **options}  # decode threads, likewise
    out = classify(part, model=_model(model, backend, device, batch_size), progress=False,
                   batch_size=batch_size, **options)
    if output_dir is None:
        return out
    from .catalog_io import write_catalog

    write_catalog(out, path, "parquet", overwrite=True)
    return str(path), len(out)


@contextlib.contextmanager
def dask_client(address: str | None) -> Iterator[Any]:
    """A connected Client for the length of a ``with`` block; a LocalCluster started for
    ``local[:N]`` is shut down with it."""
    client = connect(address)
    try:
        yield client
    finally:
        cluster = getattr(client, "cluster", None)  # dask's Client API: set for LocalCluster
        client.close()
        if is_local(address) and cluster is not None:
            cluster.close()


def is_local(address: str | None) -> bool:
    """Whether ``address`` (``--dask``) asks for a LocalCluster on this machine: ``None``,
    ``"local"`` or ``"local:N"`` (``"localhost:8786"`` is a scheduler's address)."""
    return address in (None, "local") or str(address).startswith("local:")


def connect(address: str | None):
    """A dask.distributed Client: ``None``/``"local"``/``"local:N"`` start a LocalCluster
    of N single-threaded worker processes on loopback; anything else is a scheduler address."""
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise UserError("--dask needs dask.distributed: pip install 'astro_morph[dask]'") \
            from None
    if is_local(address):
        n = str(address).partition(":")[2] if address else ""
        if n and not (n.isdigit() and int(n) >= 1):
            raise UserError(f"--dask {address!r}: N in local:N must be a worker count >= 1")
        cluster = LocalCluster(n_workers=int(n) if n else os.cpu_count() or 1,
                               threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address=":0")
        return Client(cluster)
    previous = _default_client()
    try:
        return Client(address)
    except ValueError as exc:  # distributed's parse errors ("missing port number ...")
        # The Client had made itself dask's default before it failed, and nothing closes it:
        # every later compute in this process (an LSDB catalog's, a script's fallback to
        # local dask) would ask for it, and closing another Client would not reset dask.
        failed = _default_client()
        if failed is not None and failed is not previous:
            failed.close()
        raise UserError(f"--dask {address!r}: {first_line(exc)}; give a scheduler address "
                        "such as tcp://host:8786, or local[:N]") from None


def _default_client():
    """dask.distributed's default Client, or ``None`` when none is started."""
    from dask.distributed import default_client

    try:
        return default_client()
    except ValueError:  # "No clients found"
        return None


def classify_dask(table: Table, client, model: str | os.PathLike | None = None,
                  backend: str = "onnx", device: str = "cpu", batch_size: int | None = None,
                  chunk_size: int = 1024, partition_rows: int | None = None,
                  output_dir: str | os.PathLike | None = None, progress: bool | None = None,
                  **options: Any) -> Table | list[str]:
    """Classify ``table`` on the workers of ``client``.

    Parameters
    ----------
    client : dask.distributed.Client
        See :func:`connect`.
    model : str or path, optional
        Registered model name or model file; every worker loads it once.
    partition_rows : int, optional
        Rows per task (default ``8 * chunk_size``).
    output_dir : path, optional
        Write ``part-NNNNN.parquet`` files here instead of gathering one table.
    **options
        As for :func:`astro_morph.classify` (source, centring, image_dir, ...).

    Returns
    -------
    astropy.table.Table or list of str
        The classified catalog in input order, or the written part files in order.
    """
    from astropy.table import vstack

    from .inference.load import portable_model

    if len(table) == 0:
        raise UserError("the catalog has no rows")
    ref = portable_model(model)
    rows = partition_rows or 8 * chunk_size
    if output_dir is not None:
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        output_dir = str(output_dir)
    parts = [table[i:i + rows] for i in range(0, len(table), rows)]
    options = {**options, "chunk_size": chunk_size}
    futures = [client.submit(_run_partition, part, i, ref, backend, device, batch_size,
                             output_dir, options, pure=False)
               for i, part in enumerate(parts)]
    if progress:
        from dask.distributed import progress as dask_progress

        dask_progress(futures)
    results = client.gather(futures)
    refused = next((r for r in results if isinstance(r, _Refused)), None)
    if refused is not None:
        raise UserError(str(refused))
    if output_dir is not None:
        return [path for path, _ in results]
    out = vstack(results, join_type="exact", metadata_conflicts="silent")
    out.meta = results[0].meta
    return out


def classify_lsdb(catalog, model: str | os.PathLike | None = None, backend: str = "onnx",
                  device: str = "cpu", batch_size: int | None = 256, **options: Any):
    """Add morphology columns to an LSDB catalog, partition by partition (lazy).

    Each HATS partition (a pandas DataFrame) becomes an astropy Table, goes through
    :func:`astro_morph.classify`, and comes back as a DataFrame; compute the result with
    ``.compute()`` or write it with ``.write_catalog(...)`` (:func:`classify_hats` does
    both ends), on a dask.distributed cluster or dask's local scheduler. The returned
    catalog's ``morph_provenance`` holds the run's provenance (the MORPH* keys of a
    table's meta), for the written catalog's properties.
    """
    try:
        import lsdb  # noqa: F401
    except ImportError:
        raise UserError("LSDB catalogs need lsdb: pip install lsdb") from None
    from .api import classify
    from .columns import DEFAULT_PREFIX, is_provenance_key, output_column_names
    from .inference.load import portable_model

    ref = portable_model(model)
    clf = _model(ref, backend, device, batch_size)
    # The catalog's empty frame meets every check a partition would (columns, image folder,
    # options) here, as one line, not in the first partition (LSDB wraps that in its own
    # RuntimeError) after the task graph is built.
    checked = classify(Table.from_pandas(catalog.meta.reset_index(drop=True)), model=clf,
                       device=device, progress=False, **options)
    meta = catalog.meta.copy()
    # The columns the run adds, as the empty run made them (the centring step's dx/dy
    # too): the same names as every other output (class names made column-safe).
    added = checked.to_pandas(index=False)
    label = output_column_names(clf.class_names, options.get("prefix", DEFAULT_PREFIX))[0]
    for name in checked.colnames[len(catalog.meta.columns):]:
        meta[name] = (meta.index.to_series().astype(str).iloc[:0] if name == label
                      else np.zeros(0, added[name].dtype))

    def one(df):
        if len(df) == 0:
            return meta
        out = classify(Table.from_pandas(df), model=_model(ref, backend, device, batch_size),
                       device=device, progress=False, **options)
        result = out.to_pandas(index=False)
        result.index = df.index
        # pandas gives masked labels (failed rows) as None; keep the meta's dtypes.
        return result.astype({k: v for k, v in meta.dtypes.items() if k in result})

    lazy = catalog.map_partitions(one, meta=meta)
    #: The run's provenance (MORPHMOD, MORPHSHA, ...), as a table's meta has it.
    lazy.morph_provenance = {k: str(v) for k, v in checked.meta.items() if k != "comments"}
    # LSDB carries the input's properties into the new catalog: an input classified before
    # would pass its MORPH* keys (a MORPHTTA this run has not) for this run's. They are kept
    # as earlier_MORPH* keys, as a table keeps them as 'earlier KEY=value' comments.
    for part in (lazy, getattr(lazy, "margin", None)):
        info = getattr(getattr(part, "hc_structure", None), "catalog_info", None)
        extra = getattr(info, "model_extra", None)
        if extra:
            earlier = {k: v for k, v in extra.items() if is_provenance_key(k)}
            # A new dict: the input catalog's own properties are left as they are.
            info.__pydantic_extra__ = {k: v for k, v in extra.items() if k not in earlier}
            if part is lazy:
                lazy.morph_provenance.update({f"earlier_{k}": str(v)
                                              for k, v in earlier.items()})
    return lazy


def classify_hats(catalog_dir: str | os.PathLike, output_dir: str | os.PathLike,
                  model: str | os.PathLike | None = None, overwrite: bool = False,
                  resume: bool = False, progress: bool | None = None,
                  prefix: str | None = None, **options: Any) -> tuple[int, int]:
    """Classify a HATS catalog into a new HATS catalog at ``output_dir``, lazily with LSDB.

    Partitions run on the dask.distributed Client in use, else dask's local scheduler. The
    catalog is written inside ``<output_dir>.partial`` (a resume journal, as for catalog
    files) and moved into place only when complete; an interrupted run keeps the partitions
    written so far there, and ``resume=True`` continues it (the same input, model and options
    only: checked against the journal's run record). The run's provenance (model, digest,
    classes, ...: the MORPH* keys of a table's meta) goes into its ``hats.properties``.
    Returns (rows, rows classified cleanly).
    """
    from .catalog_io import open_hats
    from .columns import DEFAULT_PREFIX

    source, out = Path(catalog_dir), Path(output_dir)
    if out.resolve().is_relative_to(source.resolve()):  # the input itself, or inside it
        raise UserError(f"output {out} is the input catalog or inside it, which astromorph "
                        "never modifies; choose another -o")
    if not out.parent.is_dir():
        raise UserError(f"output directory does not exist: {out.parent}")
    if out.exists() and not overwrite:
        raise UserError(f"output {out} exists; pass --overwrite to replace it")
    # <out>.partial is the resume journal, as for catalog files: its run.json says what the
    # run was, and LSDB writes the catalog inside it.
    partial = out.with_name(out.name + ".partial")
    if resume and not partial.exists():
        raise UserError(f"--resume: no unfinished run at {partial}")
    if overwrite and not resume:
        shutil.rmtree(partial, ignore_errors=True)
    catalog = open_hats(source)
    prefix = DEFAULT_PREFIX if prefix is None else prefix
    lazy = classify_lsdb(catalog, model=model, prefix=prefix, **options)
    # The input's content, not its path: a catalog rewritten in place is not resumed into.
    signature = {"input": folder_fingerprint(source), "prefix": prefix,
                 "options": {k: str(v) for k, v in sorted(options.items())},
                 **{k: v for k, v in lazy.morph_provenance.items()
                    if k not in ("MORPHDAT", "MORPHPFX")}}
    # Refuses an unfinished run without --resume, and resuming another one.
    journal = Journal(partial, signature, resume)
    written = partial / "catalog"
    again = resume and written.exists()
    show = sys.stderr.isatty() if progress is None else progress  # tqdm's "auto"
    try:  # the provenance goes into the catalog's hats.properties
        lazy.write_catalog(written, catalog_name=out.name, progress_bar=show,
                           overwrite=not again, resume=again,
                           addl_hats_properties=lazy.morph_provenance)
    except RuntimeError as exc:  # LSDB's "Error applying function ... to partition N"
        if isinstance(exc.__cause__, (UserError, OSError)):
            raise UserError(f"{first_line(exc)}; the partitions written so far are kept in "
                            f"{partial}: fix the cause and rerun with --resume") from None
        raise
    if out.exists():
        shutil.rmtree(out)
    written.rename(out)
    journal.remove()
    flags = open_hats(out, columns=[f"{prefix}flags"]).compute(
        progress_bar=False)[f"{prefix}flags"]
    return len(flags), int((np.asarray(flags) == 0).sum())
