"""The model file: one format for every backend.

A zip (``*.amz``) or a directory holding

* ``config.json``: format version, architecture, class names, input size, normalisation,
  softmax temperature, training provenance;
* ``weights.safetensors``: the torch state dict (no pickle);
* ``model.onnx`` (optional): the same network with preprocessing and softmax baked in, for
  ONNX Runtime (input ``images``: (N, H, W, 3) float32 in [0, 1]; output ``probabilities``).

Nothing here imports torch, so the ONNX path runs without it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UserError

__all__ = ["FORMAT_VERSION", "ModelBundle", "read_bundle", "write_bundle"]

FORMAT_VERSION = 1
CONFIG, WEIGHTS, ONNX = "config.json", "weights.safetensors", "model.onnx"
REQUIRED_KEYS = ("format_version", "name", "arch", "class_names", "input_size", "mean", "std")


@dataclass
class ModelBundle:
    """A model file's contents. ``sha256`` identifies the file (see :func:`read_bundle`)."""

    config: dict[str, Any]
    weights: bytes | None = None
    onnx: bytes | None = None
    path: str = ""
    sha256: str = ""
    extra: dict[str, bytes] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.config["name"])

    @property
    def class_names(self) -> list[str]:
        return [str(c) for c in self.config["class_names"]]

    @property
    def input_size(self) -> int:
        return int(self.config["input_size"])

    @property
    def temperature(self) -> float:
        return float(self.config.get("temperature", 1.0))


def _check_config(config: dict[str, Any], where: str) -> None:
    version = config.get("format_version")
    if version != FORMAT_VERSION:
        raise UserError(
            f"{where}: model format version {version!r} is not supported by this astro_morph "
            f"(reads version {FORMAT_VERSION}); re-export the model or upgrade astro_morph"
        )
    missing = [k for k in REQUIRED_KEYS if k not in config]
    if missing:
        raise UserError(f"{where}: config.json lacks {', '.join(missing)}")


def read_bundle(path: str | os.PathLike) -> ModelBundle:
    """Read a model zip or directory.

    The recorded ``sha256`` is the SHA-256 of the zip file itself (so ``sha256sum`` agrees),
    or, for a directory, of ``weights.safetensors`` (of ``model.onnx`` when there are no
    weights).
    """
    p = Path(path)
    members: dict[str, bytes] = {}
    try:
        if p.is_dir():
            for name in (CONFIG, WEIGHTS, ONNX):
                if (p / name).is_file():
                    members[name] = (p / name).read_bytes()
            digest_of = members.get(WEIGHTS) or members.get(ONNX) or b""
            sha = hashlib.sha256(digest_of).hexdigest()
        else:
            raw = p.read_bytes()
            sha = hashlib.sha256(raw).hexdigest()
            with zipfile.ZipFile(io.BytesIO(raw)) as zf:
                for info in zf.infolist():
                    members[info.filename] = zf.read(info)
        config = json.loads(members[CONFIG])
    except FileNotFoundError:
        raise UserError(f"model file not found: {p}") from None
    except KeyError:
        raise UserError(f"{p}: not a model file (no {CONFIG})") from None
    except (zipfile.BadZipFile, json.JSONDecodeError, UnicodeDecodeError, OSError) as exc:
        raise UserError(f"{p}: not a readable model file ({exc})") from None
    _check_config(config, str(p))
    if WEIGHTS not in members and ONNX not in members:
        raise UserError(f"{p}: model file has neither {WEIGHTS} nor {ONNX}")
    extra = {k: v for k, v in members.items() if k not in (CONFIG, WEIGHTS, ONNX)}
    return ModelBundle(config, members.get(WEIGHTS), members.get(ONNX), str(p), sha, extra)


def write_bundle(bundle: ModelBundle, path: str | os.PathLike, overwrite: bool = False) -> str:
    """Write ``bundle`` as a zip, atomically (temp file + rename). Returns its SHA-256."""
    p = Path(path)
    if p.exists() and not overwrite:
        raise UserError(f"{p} exists; pass overwrite=True (--overwrite) to replace it")
    config = dict(bundle.config)
    config["format_version"] = FORMAT_VERSION
    _check_config(config, str(p))
    buf = io.BytesIO()
    # ZIP_STORED for the weights: safetensors and ONNX barely compress, and stored members
    # read faster.
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(CONFIG, json.dumps(config, indent=2, sort_keys=True),
                    compress_type=zipfile.ZIP_DEFLATED)
        if bundle.weights is not None:
            zf.writestr(WEIGHTS, bundle.weights)
        if bundle.onnx is not None:
            zf.writestr(ONNX, bundle.onnx)
        for name, data in bundle.extra.items():
            zf.writestr(name, data)
    data = buf.getvalue()
    p.parent.mkdir(parents=True, exist_ok=True)
    from ..catalog_io import atomic_write_bytes

    atomic_write_bytes(p, data)
    bundle.path, bundle.sha256 = str(p), hashlib.sha256(data).hexdigest()
    return bundle.sha256
