"""Decode + crop speed of two commits, side by side: ``python -m benchmarks.revisions BASE``.

A change to decoding is judged against the commit before it in one run, interleaved (base,
this tree, base, this tree, ...), since this machine's speed drifts between runs by more
than such a change (the model-only rows of ``python -m benchmarks``, which decoding does not
touch, moved 3-27 % between two runs a month apart). ``BASE`` is checked out into a
temporary git worktree; each measurement is a fresh process that imports the code of its
tree and times ``benchmarks.__main__.decode_only`` (the Galaxy Zoo source + the paper's
centre crop, as ``classify`` runs them) after a warm-up.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from .__main__ import DEFAULT_IMAGES, ROOT, jpeg_ids
from .arguments import count, counts

_CHILD = """
import json, sys, time
from pathlib import Path
from benchmarks.__main__ import _catalog, decode_only, jpeg_ids
image_dir, n, workers = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
fast = sys.argv[4] == "1"
cat = _catalog(jpeg_ids(image_dir), n)
decode_only(cat[:256], image_dir, 55, fast, workers=workers)  # warm-up: imports, pool, cache
t = time.perf_counter()
decode_only(cat, image_dir, 55, fast, workers=workers)
print(json.dumps(n / (time.perf_counter() - t)))
"""


def rate(tree: Path, image_dir: Path, n: int, workers: int, fast: bool) -> float:
    """Rows/s of decode + crop to 55 px with the code of ``tree``, in a fresh process."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run([sys.executable, "-c", _CHILD, str(image_dir), str(n), str(workers),
                           "1" if fast else "0"], cwd=tree, env=env, capture_output=True,
                          text=True)
    if done.returncode:
        raise RuntimeError(f"decode run in {tree} failed:\n{done.stderr[-2000:]}")
    return float(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    ap = argparse.ArgumentParser(description="decode speed of two commits, side by side")
    ap.add_argument("base", help="the commit to compare this working tree with")
    ap.add_argument("--image-dir", type=Path, default=DEFAULT_IMAGES)
    ap.add_argument("--n", type=count, default=3000, help="rows per measurement")
    ap.add_argument("--threads", type=counts, default=[1, 2])
    ap.add_argument("--rounds", type=count, default=3, help="interleaved rounds (median)")
    args = ap.parse_args()
    jpeg_ids(args.image_dir)  # a folder without JPEGs is one line, before any checkout
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                          capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        subprocess.run(["git", "worktree", "add", "--detach", "-q", str(base), args.base],
                       cwd=ROOT, check=True)
        try:
            configs = [(w, fast) for w in args.threads for fast in (False, True)]
            got: dict[tuple[str, int, bool], list[float]] = {}
            for _ in range(args.rounds):
                for w, fast in configs:
                    for name, tree in (("base", base), ("this", ROOT)):
                        got.setdefault((name, w, fast), []).append(
                            rate(tree, args.image_dir, args.n, w, fast))
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=ROOT)
    print(f"decode + crop/resize to 55 px, rows/s, median of {args.rounds} interleaved rounds "
          f"of {args.n:,} rows ({args.base} against this tree, HEAD {head})\n")
    print(f"| threads | decode | {args.base} | this tree | ratio |\n|---|---|---|---|---|")
    for w, fast in configs:
        a = statistics.median(got[("base", w, fast)])
        b = statistics.median(got[("this", w, fast)])
        how = "DCT-scaled (--fast-decode)" if fast else "full"
        print(f"| {w} | {how} | {a:,.0f} | {b:,.0f} | {b / a:.2f}x |")


if __name__ == "__main__":
    from astro_morph.errors import run_script

    run_script(main)
