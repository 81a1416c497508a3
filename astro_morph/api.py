"""Python API: classify a table (or a catalog file) and get a new table back."""

from __future__ import annotations

import logging
import os
from typing import Any

from astropy.table import Table

from .catalog_io import read_catalog
from .columns import (
    DEFAULT_PREFIX,
    add_columns,
    check_no_clash,
    earlier_provenance,
    provenance_meta,
)
from .errors import UserError, whole_number
from .inference.tta import TTAClassifier
from .models.base import Classifier, training_crop
from .options import accepted_options, build_centring, build_source, check_options
from .pipeline import run_chunks
from .plugins import lookup, pm
from .sources.coords import with_skycoord_parts

__all__ = ["classify"]

log = logging.getLogger("astro_morph")


def classify(table: Table | str | os.PathLike, source: str = "galaxyzoo",
             model: str | os.PathLike | Classifier | None = None, backend: str = "onnx",
             device: str = "cpu", batch_size: int | None = None,
             centring: str = "centre-crop",
             centring_options: dict[str, Any] | None = None, prefix: str = DEFAULT_PREFIX,
             chunk_size: int = 1024, workers: int | None = None, progress: bool | None = None,
             journal_dir: str | os.PathLike | None = None, resume: bool = False,
             fast_decode: bool = False, tta: bool = False, **source_options: Any) -> Table:
    """Add morphology columns to a catalog.

    Parameters
    ----------
    table : astropy.table.Table, pandas.DataFrame or path
        The catalog; a path is read with :func:`astro_morph.catalog_io.read_catalog`, a
        DataFrame converted with ``Table.from_pandas`` (the result is a Table).
        It is not modified.
    source : str
        Registered cutout source (``astro_morph plugins`` lists them).
    model : str, path or Classifier, optional
        Registered model name, model file, or a loaded classifier; default: ``default``.
    backend : {"onnx", "torch"}
        Inferencer for model files.
    device : str
        ``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (torch backend).
    batch_size : int, optional
        Images per network call; default the backend's (32 on CPU, 512 on CUDA).
    centring : str
        Registered centring step (``centre-crop`` or ``recentre`` builtin).
    prefix : str
        Prefix of the added columns.
    journal_dir : path, optional
        Keep per-chunk results here while running (``classify --resume`` uses
        ``<output>.partial``); removed by the caller once the output is written.
    resume : bool
        Reuse the finished chunks in ``journal_dir`` (same input, model and options only).
    workers : int, optional
        Decoding and centring threads; default one per core (at most 32). Handed to the
        source as its ``workers`` (:class:`astro_morph.sources.base.Source`).
    fast_decode : bool
        Let the source decode JPEGs at a reduced DCT scale when the centring step says the
        crop/resize needs fewer pixels (faster; probabilities differ slightly from a full
        decode; see ``docs/performance.md``).
    tta : bool
        Average the probabilities over the 8 rotations/flips of each cutout
        (:class:`astro_morph.inference.tta.TTAClassifier`; 8x the model time).
    centring_options : dict, optional
        Options of the centring step's factory (e.g. ``{"nsigma": 3}`` for ``recentre``).
        Without ``crop_fraction``, a model trained on another crop than the paper's
        (``train --crop-fraction``) has its own passed to the step.
    **source_options
        Options of the source's factory (``image_dir``, ``id_column``, ``path_column``, ...);
        ``None`` values are left out, so the source's own defaults apply. Unknown keys are a
        :class:`~astro_morph.errors.UserError` listing the valid ones.

    Returns
    -------
    astropy.table.Table
        The input rows and columns, in order, plus ``<prefix>label``,
        ``<prefix>prob_<class>``, ``<prefix>flags`` (and ``<prefix>dx``, ``<prefix>dy``
        when the centring step reports offsets), with provenance in ``meta``.
    """
    from . import __version__
    from .inference.load import load_model

    if type(table).__name__ == "DataFrame" and type(table).__module__.startswith("pandas"):
        table = Table.from_pandas(table)  # survey scripts often hold a DataFrame
    elif isinstance(table, (str, os.PathLike)):
        table = read_catalog(table)
    elif not isinstance(table, Table):
        raise UserError(f"classify takes an astropy Table, a pandas DataFrame or a catalog "
                        f"path, not {type(table).__name__}")
    # The CLI's click ranges, for API callers: a chunk of 0 rows would never advance.
    for key, value in (("chunk_size", chunk_size), ("workers", workers),
                       ("batch_size", batch_size)):
        whole_number(f"classify: {key}", value, 1)
    # Only the options the caller set reach the factories, so each plugin's own defaults
    # apply; unknown keys fail before anything is built or loaded.
    src_options = {k: v for k, v in source_options.items() if v is not None}
    check_options(lookup("source", source).factory, src_options, f"source {source!r}")
    factory = lookup("centring", centring).factory
    check_options(factory, centring_options or {}, f"centring {centring!r}")  # before loading
    clf = model if isinstance(model, Classifier) else load_model(model, backend, device,
                                                                 batch_size)
    centring_options = _with_model_crop(centring, factory, centring_options or {}, clf)
    step = build_centring(centring, centring_options)
    if tta and not isinstance(clf, TTAClassifier):
        clf = TTAClassifier(clf)
    tta_name = clf.tta if isinstance(clf, TTAClassifier) else None
    draft = step.min_input_side(clf.input_size) if fast_decode else None
    src = build_source(source, src_options, workers=workers, draft_side=draft)
    view = with_skycoord_parts(table)  # what the source reads; the output is built on table
    src.check_columns(view.colnames)
    offsets = step.reports_offset
    check_no_clash(table, clf.class_names, prefix, offsets)
    journal = None
    if journal_dir is not None:
        from .journal import Journal, table_fingerprint

        # Everything that changes a row's result: resuming under another backend or device
        # would mix two models' arithmetic in one output.
        signature = {"input": table_fingerprint(table), "model": clf.sha256,
                     "model_name": clf.name, "backend": clf.backend,
                     "device": device, "batch_size": batch_size, "source": source,
                     "centring": centring,
                     "centring_options": centring_options or {}, "chunk_size": chunk_size,
                     "prefix": prefix, "fast_decode": fast_decode, "tta": tta_name,
                     "source_options": {k: str(v) for k, v in sorted(src_options.items())}}
        journal = Journal(journal_dir, signature, resume)
    result = run_chunks(view, src, step, clf, chunk_size=chunk_size, workers=workers,
                        progress=progress, journal=journal)
    for row, message in result.messages:
        log.warning("row %d: %s", row, message)
    meta = provenance_meta(clf.name, clf.sha256, clf.backend, source, centring,
                           clf.class_names, __version__, tta_name, prefix)
    # A catalog classified before (another --prefix) keeps that run's provenance as a
    # comment: the new MORPH* keys replace the old ones.
    comments = (_as_comment_list(table.meta.get("comments")) + earlier_provenance(table.meta)
                + meta.pop("comments"))
    out = add_columns(table, clf.class_names, result.probs, result.flags, prefix,
                      result.dx if offsets else None, result.dy if offsets else None, meta)
    out.meta["comments"] = comments
    pm.hook.astromorph_output_columns(table=out, classifier=clf)
    return out


def _with_model_crop(centring: str, factory: Any, options: dict[str, Any],
                     clf: Classifier) -> dict[str, Any]:
    """``options`` plus the model's training crop as ``crop_fraction``, unless the caller set
    one: a network sees the framing it was trained on. Models without one (the paper's crop)
    and steps without the option are left as they are; the latter with a warning."""
    crop = training_crop(clf)
    if crop is None or "crop_fraction" in options:
        return options
    valid = accepted_options(factory)
    if valid is not None and "crop_fraction" not in valid:
        log.warning("centring %r has no crop_fraction option: model %s was trained on centre "
                    "crops of %.4g of the image side, which it will not get", centring,
                    clf.name, crop)
        return options
    return {**options, "crop_fraction": crop}


def _as_comment_list(value: object) -> list:
    """The input's ``meta["comments"]`` as a list: a table written by hand may hold one
    string there (which ``list()`` would split into its characters) or nothing."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]
