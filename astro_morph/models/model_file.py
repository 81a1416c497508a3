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
import math
import os
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UserError, first_line

__all__ = ["FORMAT_VERSION", "ModelBundle", "model_digest", "read_bundle", "write_bundle"]

FORMAT_VERSION = 1
CONFIG, WEIGHTS, ONNX = "config.json", "weights.safetensors", "model.onnx"
REQUIRED_KEYS = ("format_version", "name", "arch", "class_names", "input_size", "mean", "std")
#: Input side limits: a model file is untrusted input, and a huge side would allocate
#: gigabytes before the first image (the paper's networks use 55-224 px).
MIN_INPUT_SIZE, MAX_INPUT_SIZE = 8, 1024
#: Largest member a model file may hold once inflated (the shipped G3 is ~4 MB; B0 ~20 MB).
MAX_MEMBER_BYTES = 512 * 1024 * 1024
#: Most members read from a zip (config, weights, ONNX and a few extras).
MAX_MEMBERS = 64


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

    @property
    def crop_fraction(self) -> float | None:
        """Centre-crop side (fraction of the image side) the network was trained on; ``None``
        in files from before it was recorded: the paper's 200/424."""
        value = self.config.get("crop_fraction")
        return None if value is None else float(value)


def _check_config(config: dict[str, Any], where: str) -> None:
    """Validate a model file's config before anything is built from it (one-line errors)."""
    if not isinstance(config, dict):
        raise UserError(f"{where}: config.json is not a JSON object")
    version = config.get("format_version")
    if version != FORMAT_VERSION:
        raise UserError(
            f"{where}: model format version {version!r} is not supported by this astro_morph "
            f"(reads version {FORMAT_VERSION}); re-export the model or upgrade astro_morph"
        )
    missing = [k for k in REQUIRED_KEYS if k not in config]
    if missing:
        raise UserError(f"{where}: config.json lacks {', '.join(missing)}")
    size = config["input_size"]
    if isinstance(size, bool) or not isinstance(size, int):
        raise UserError(f"{where}: config.json input_size must be an integer, not {size!r}")
    if not MIN_INPUT_SIZE <= size <= MAX_INPUT_SIZE:
        raise UserError(f"{where}: config.json input_size {size} is outside "
                        f"{MIN_INPUT_SIZE}-{MAX_INPUT_SIZE} pixels")
    names = config["class_names"]
    if (not isinstance(names, list) or not names
            or not all(isinstance(c, str) and c for c in names)):
        raise UserError(f"{where}: config.json class_names must be a non-empty list of names")
    dupes = sorted({c for c in names if names.count(c) > 1})
    if dupes:
        raise UserError(f"{where}: config.json repeats class names {', '.join(dupes)}")
    for key in ("mean", "std"):
        v = config[key]
        if (not isinstance(v, list) or not 1 <= len(v) <= 16
                or not all(isinstance(x, (int, float)) and not isinstance(x, bool)
                           and math.isfinite(x) for x in v)):
            raise UserError(f"{where}: config.json {key} must be a list of 1-16 numbers")
    if not all(x > 0 for x in config["std"]) or len(config["std"]) != len(config["mean"]):
        raise UserError(f"{where}: config.json std must be positive, one per mean")
    t = config.get("temperature", 1.0)
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t <= 0:
        raise UserError(f"{where}: config.json temperature must be a positive number, not {t!r}")
    crop = config.get("crop_fraction")
    if crop is not None and (isinstance(crop, bool) or not isinstance(crop, (int, float))
                             or not 0 < crop <= 1):
        raise UserError(f"{where}: config.json crop_fraction must be a number in (0, 1], "
                        f"not {crop!r}")
    _check_arch(config["arch"], len(names), size, where)


#: Largest network a model file may describe (B0 has 5.3 M parameters): an edited config must
#: not make the builder allocate gigabytes.
MAX_PARAMS = 200_000_000


def _check_arch(arch: Any, num_classes: int, size: int, where: str) -> None:
    from .arch import ArchConfig
    from .flops import count

    if not isinstance(arch, dict):
        raise UserError(f"{where}: config.json arch must be an object")
    try:
        cfg = ArchConfig.from_dict(arch)
        widths = [cfg.stem_channels, cfg.head_channels, cfg.in_chans,
                  *(b.out_channels * b.expand_ratio for b in cfg.blocks)]
        if (len(cfg.blocks) > 64 or max(widths) > 16384 or cfg.stem_kernel > 31
                or any(b.layers > 64 or b.kernel > 31 for b in cfg.blocks)):
            raise ValueError("stages, layers, kernels or channels out of bounds")
        params = count(cfg, num_classes, size).params
    except (ValueError, KeyError, TypeError) as exc:
        reason = first_line(exc)
        raise UserError(f"{where}: config.json arch is not a valid architecture "
                        f"({reason})") from None
    if params > MAX_PARAMS:
        raise UserError(f"{where}: config.json arch has {params:,} parameters, over the "
                        f"{MAX_PARAMS:,} limit")


def model_digest(members: dict[str, bytes]) -> str:
    """SHA-256 over every member's name and bytes (config included), in name order.

    Used for directory models, so an edited ``config.json`` (a new temperature, say) is a new
    model everywhere a model is identified: provenance, resume journal, ONNX cache.
    """
    h = hashlib.sha256()
    for name in sorted(members):
        h.update(f"{name}\0{len(members[name])}\0".encode())
        h.update(members[name])
    return h.hexdigest()


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, where: str) -> bytes:
    """One zip member, refusing one that inflates past :data:`MAX_MEMBER_BYTES` (the header's
    size may lie, so the read itself is bounded)."""
    if info.file_size > MAX_MEMBER_BYTES:
        raise UserError(f"{where}: member {info.filename} inflates to {info.file_size} bytes, "
                        f"over the {MAX_MEMBER_BYTES // 2**20} MiB limit")
    with zf.open(info) as fh:
        data = fh.read(MAX_MEMBER_BYTES + 1)
    if len(data) > MAX_MEMBER_BYTES:
        raise UserError(f"{where}: member {info.filename} inflates past the "
                        f"{MAX_MEMBER_BYTES // 2**20} MiB limit")
    return data


def read_bundle(path: str | os.PathLike) -> ModelBundle:
    """Read a model zip or directory.

    The recorded ``sha256`` identifies the whole model, config included: the SHA-256 of the
    zip file itself (so ``sha256sum`` agrees), or, for a directory, :func:`model_digest` of
    its members. The config is validated (:func:`_check_config`) before anything is built.
    """
    p = Path(path)
    members: dict[str, bytes] = {}
    try:
        if p.is_dir():
            for name in (CONFIG, WEIGHTS, ONNX):
                f = p / name
                if f.is_file():
                    if f.stat().st_size > MAX_MEMBER_BYTES:
                        raise UserError(f"{p}: {name} is over the "
                                        f"{MAX_MEMBER_BYTES // 2**20} MiB limit")
                    members[name] = f.read_bytes()
            sha = model_digest(members)
        else:
            raw = p.read_bytes()
            sha = hashlib.sha256(raw).hexdigest()
            with zipfile.ZipFile(io.BytesIO(raw)) as zf:
                infos = zf.infolist()
                if len(infos) > MAX_MEMBERS:
                    raise UserError(f"{p}: model file has {len(infos)} members "
                                    f"(at most {MAX_MEMBERS})")
                for info in infos:
                    members[info.filename] = _read_member(zf, info, str(p))
        config = json.loads(members[CONFIG])
    except FileNotFoundError:
        raise UserError(f"model file not found: {p}") from None
    except KeyError:
        raise UserError(f"{p}: not a model file (no {CONFIG})") from None
    except IsADirectoryError:
        raise UserError(f"{p}: not a model file") from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, json.JSONDecodeError, UnicodeDecodeError,
            OSError, EOFError, NotImplementedError, RuntimeError, ValueError, zlib.error) as exc:
        # zlib errors, CRC mismatches, encrypted or unsupported members: one line each
        reason = first_line(exc)
        if p.name in (CONFIG, WEIGHTS, ONNX) and (p.parent / CONFIG).is_file() and any(
                (p.parent / n).is_file() for n in (WEIGHTS, ONNX)):
            # one file of a model folder (an unzipped .amz): the folder is the model
            reason = f"it is part of the model folder {p.parent}: pass --model {p.parent}"
        raise UserError(f"{p}: not a readable model file ({reason})") from None
    _check_config(config, str(p))
    if WEIGHTS not in members and ONNX not in members:
        raise UserError(f"{p}: model file has neither {WEIGHTS} nor {ONNX}")
    extra = {k: v for k, v in members.items() if k not in (CONFIG, WEIGHTS, ONNX)}
    return ModelBundle(config, members.get(WEIGHTS), members.get(ONNX), str(p), sha, extra)


def train_log_path(model: str | os.PathLike) -> Path:
    """``m.amz`` -> ``m.amz.train.json``: a training run's timings and history, kept beside
    the model file (not in it, so the same training gives the same model bytes)."""
    return Path(str(model) + ".train.json")


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
    # Fixed member dates: the same model gives the same bytes, so the same SHA-256.
    def member(name: str, deflate: bool = False) -> zipfile.ZipInfo:
        info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
        info.external_attr = 0o644 << 16
        return info

    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(member(CONFIG, deflate=True), json.dumps(config, indent=2, sort_keys=True))
        if bundle.weights is not None:
            zf.writestr(member(WEIGHTS), bundle.weights)
        if bundle.onnx is not None:
            zf.writestr(member(ONNX), bundle.onnx)
        for name, data in sorted(bundle.extra.items()):
            zf.writestr(member(name), data)
    data = buf.getvalue()
    p.parent.mkdir(parents=True, exist_ok=True)
    from ..fileio import atomic_write_bytes

    atomic_write_bytes(p, data)
    bundle.path, bundle.sha256 = str(p), hashlib.sha256(data).hexdigest()
    return bundle.sha256
