"""Two or more models side by side: ``python -m benchmarks.models A.amz B.amz [--write]``.

For each model file (or registered name): model-only ONNX Runtime rate (the backend's
default batch, all cores), the same with test-time augmentation (``--tta``: 8 views), and
``astromorph classify`` end to end on the same real Galaxy Zoo JPEGs, all in one run, with
each rate's ratio to the first model's. ``--write`` puts the table into
``docs/performance.md`` (the models block).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmarks.__main__ import (
    DEFAULT_IMAGES,
    _best,
    _catalog,
    _write_block,
    end_to_end,
    jpeg_ids,
    machine,
    model_only,
)
from benchmarks.arguments import count


def main() -> None:
    from astro_morph.inference.load import model_file as model_path

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+", help="model files or registered names; first = base")
    ap.add_argument("--n", type=count, default=3000, help="galaxies per end-to-end run")
    ap.add_argument("--repeats", type=count, default=2)
    ap.add_argument("--image-dir", type=Path, default=DEFAULT_IMAGES)
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    ids = jpeg_ids(args.image_dir)
    cat = _catalog(ids, args.n)
    rows = []
    for name in args.models:
        path = model_path(name)
        model = 1 / model_only(path, "onnx", args.n)[0]
        tta = 1 / model_only(path, "onnx", max(1024, args.n // 8), tta=True)[0]
        e2e = len(cat) / _best(lambda p=path: end_to_end(cat, args.image_dir, p, "onnx"),
                               args.repeats)
        e2e_tta = len(cat) / _best(lambda p=path: end_to_end(cat, args.image_dir, p, "onnx",
                                                            tta=True), 1)
        rows.append((name, model, tta, e2e, e2e_tta))
        print(f"{name}: model {model:,.0f}/s, +TTA {tta:,.0f}/s, end to end {e2e:,.0f}/s, "
              f"+TTA {e2e_tta:,.0f}/s", flush=True)
    base = rows[0]
    lines = ["| model | model only (onnx) | with --tta | end to end | end to end --tta |",
             "|---|---|---|---|---|"]
    for name, *rates in rows:
        cells = [f"{r:,.0f}/s ({r / b:.2f}x)" for r, b in zip(rates, base[1:], strict=True)]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    print(table)
    if args.write:
        cmd = "python -m benchmarks.models " + " ".join(sys.argv[1:])
        _write_block("models", f"Measured by `{cmd.strip()}` on {len(cat):,} real Galaxy Zoo "
                     f"JPEGs on: {machine()}. Ratios are to the first model's rate in the "
                     f"same column.\n\n{table}")


if __name__ == "__main__":
    from astro_morph.errors import run_script

    run_script(main)
