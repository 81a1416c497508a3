"""The output schema: morphology columns and provenance meta added to the input table."""

from __future__ import annotations

import datetime as _dt
import re

import numpy as np
from astropy import units as u
from astropy.table import Column, MaskedColumn, Table

from .errors import UserError
from .flags import FLAG_DESCRIPTIONS, flags_column_description

__all__ = ["DEFAULT_PREFIX", "output_column_names", "add_columns", "check_no_clash",
           "read_probabilities", "classes_of", "earlier_provenance", "is_provenance_key"]

DEFAULT_PREFIX = "morph_"


def _safe(name: str) -> str:
    return re.sub(r"[^0-9A-Za-z_]", "_", name)


def output_column_names(class_names: list[str], prefix: str = DEFAULT_PREFIX,
                        offsets: bool = False) -> list[str]:
    """Names of the columns a run adds, in order."""
    names = [f"{prefix}label"] + [f"{prefix}prob_{_safe(c)}" for c in class_names]
    names.append(f"{prefix}flags")
    if offsets:
        names += [f"{prefix}dx", f"{prefix}dy"]
    return names


def read_probabilities(table: Table, class_names: list[str],
                       prefix: str = DEFAULT_PREFIX) -> np.ndarray:
    """The probability columns of ``class_names`` as ``(N, K)`` floats, NaN where a row
    failed (masked): the inverse of :func:`add_columns` for the probabilities."""
    _, *probs, _ = output_column_names(class_names, prefix)
    return np.stack([np.ma.filled(table[c], np.nan).astype(float) for c in probs], 1)


def classes_of(table: Table, prefix: str = DEFAULT_PREFIX) -> list[str]:
    """The class names of a classify output, in the model's order.

    They come from the ``MORPHCLS`` meta when every one of its classes has its probability
    column (so a name :func:`output_column_names` rewrote, e.g. ``dont know``, comes back
    as the model spelt it); otherwise, e.g. from a VOTable whose meta was not kept, from the
    ``<prefix>prob_<class>`` column names in table order. Raises UserError when there are none.
    """
    meta = {str(k).upper(): v for k, v in table.meta.items()}
    listed = str(meta.get("MORPHCLS", "")).split(",")
    if all(listed) and all(f"{prefix}prob_{_safe(c)}" in table.colnames for c in listed):
        return listed
    start = f"{prefix}prob_"
    found = [c[len(start):] for c in table.colnames if c.startswith(start)]
    if not found:
        raise UserError(f"no {start}<class> columns: is this an astromorph classify output "
                        f"(made with --prefix {prefix!r})?")
    return found


def is_provenance_key(key: object) -> bool:
    """A meta key of a run's provenance (``MORPHMOD``, ``MORPHSHA``, ...), in any case."""
    return str(key).upper().startswith("MORPH")


def earlier_provenance(meta: dict) -> list[str]:
    """An earlier run's ``MORPH*`` keys as comments (``earlier MORPHMOD=...``, one a key),
    which a new run's provenance replaces: a catalog classified again with another
    ``--prefix``. Its ``MORPHPFX`` (absent from files written before that key was added)
    names the columns they describe."""
    return [f"earlier {k}={v}" for k, v in meta.items() if is_provenance_key(k)]


def check_no_clash(table: Table, class_names: list[str], prefix: str, offsets: bool) -> None:
    """Refuse to overwrite input columns (case-insensitively, as FITS compares them)."""
    existing = {c.lower() for c in table.colnames}
    names = output_column_names(class_names, prefix, offsets)
    clash = [n for n in names if n.lower() in existing]
    if clash:
        raise UserError(f"input already has column {clash[0]!r}; choose another --prefix "
                        f"(now {prefix!r}) so no input column is replaced")


def add_columns(table: Table, class_names: list[str], probs: np.ndarray, flags: np.ndarray,
                prefix: str = DEFAULT_PREFIX, dx: np.ndarray | None = None,
                dy: np.ndarray | None = None, meta: dict | None = None) -> Table:
    """Return a copy of ``table`` with the morphology columns and provenance meta.

    Rows with no classification have a masked label (an empty string in FITS) and NaN
    probabilities; their flags say why. Input columns, their order and all rows are kept.
    """
    out = table.copy(copy_data=False)
    label_idx = np.argmax(np.nan_to_num(probs, nan=-1.0), axis=1) if len(probs) else np.zeros(0)
    ok = np.isfinite(probs).all(axis=1) if len(probs) else np.zeros(0, bool)
    width = max([len(c) for c in class_names] + [1])
    labels = np.array([class_names[i] if good else ""
                       for i, good in zip(label_idx, ok, strict=True)], dtype=f"U{width}")
    cols = [MaskedColumn(labels, name=f"{prefix}label", mask=~ok,
                         description="most probable morphology class (masked: see flags)")]
    for k, cname in enumerate(class_names):
        # No unit: a probability is a pure number, and an empty unit string ('' in VOTable
        # and ECSV, from dimensionless_unscaled) reads as "unit unknown" in some tools.
        cols.append(Column(probs[:, k].astype(np.float32), name=f"{prefix}prob_{_safe(cname)}",
                           description=f"calibrated probability of class {cname}"))
    cols.append(Column(flags.astype(np.int32), name=f"{prefix}flags",
                       description=flags_column_description()))
    if dx is not None and dy is not None:
        cols.append(Column(dx.astype(np.float32), name=f"{prefix}dx", unit=u.pix,
                           description="re-centring offset in x (image columns), input pixels"))
        cols.append(Column(dy.astype(np.float32), name=f"{prefix}dy", unit=u.pix,
                           description="re-centring offset in y (image rows), input pixels"))
    out.add_columns(cols)
    if meta:
        # An earlier run's MORPH* keys would pass for this run's (a MORPHTTA this run has
        # not): they go, all of them (classify keeps them as 'earlier KEY=value' comments).
        for key in [k for k in out.meta if is_provenance_key(k)]:
            del out.meta[key]
        out.meta.update(meta)
    return out


def provenance_meta(model_name: str, sha256: str, backend: str, source: str, centring: str,
                    class_names: list[str], version: str,
                    tta: str | None = None, prefix: str = DEFAULT_PREFIX) -> dict[str, str]:
    """Table meta recording how the columns were made. Keys are FITS-safe (8 characters)."""
    meta = {
        "MORPHPFX": prefix,
        "MORPHVER": version,
        "MORPHMOD": model_name,
        "MORPHSHA": sha256,
        "MORPHBKD": backend,
        "MORPHSRC": source,
        "MORPHCEN": centring,
        "MORPHCLS": ",".join(class_names),
        "MORPHDAT": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"),
    }
    if tta:
        meta["MORPHTTA"] = tta
    comments = [f"{prefix}flags bit {int(f)}: {d}" for f, d in FLAG_DESCRIPTIONS.items()]
    meta["comments"] = comments
    return meta
