"""Put a trained model file into the package as the shipped default model.

    python3 scripts/ship_default_model.py /tmp/train/gz1-efficientnet-g3.amz

The embedded ONNX graph is dropped to keep the package small: the ONNX backend exports it
from the weights on first use and caches it by the file's SHA-256 (under
``astro_morph.fileio.cache_root()``, ``~/.astropy/cache/astro_morph/onnx/``). The
weights, architecture, classes, normalisation, temperature and training provenance are kept
unchanged. ``DEFAULT.txt`` is pointed at it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from astro_morph.models.model_file import read_bundle, write_bundle
from astro_morph.models.registry import MODELS_DIR


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="trained .amz file")
    parser.add_argument("--name", help="shipped name (default: the model's own name)")
    args = parser.parse_args()
    bundle = read_bundle(args.model)
    bundle.onnx = None
    name = args.name or bundle.name
    bundle.config["name"] = name  # what outputs record as MORPHMOD
    out = MODELS_DIR / f"{name}.amz"
    MODELS_DIR.mkdir(exist_ok=True)
    sha = write_bundle(bundle, out, overwrite=True)
    (MODELS_DIR / "DEFAULT.txt").write_text(name + "\n")
    print(f"shipped {out} ({out.stat().st_size / 1e6:.2f} MB, sha256 {sha}) as the default")


if __name__ == "__main__":
    from astro_morph.errors import run_script

    run_script(main)
