"""Speed and memory, side by side in one run: ``python -m benchmarks [--n 2000] [--write]``.

Everything runs on the same real images (``../shared/data/galaxyzoo``, or ``--image-dir``):

* decode-only: the Galaxy Zoo source + the paper's centre crop/resize, no model (the ceiling);
* model-only: ``predict`` on already prepared arrays, per model and backend;
* end to end: ``astromorph classify`` catalog -> FITS with columns, per model and backend;
* peer: Zoobot-style inference a user would otherwise run (EfficientNet-B0 at 224 px, torch,
  PIL decode + resize, batch 64) on the same images;
* peak RSS of ``astromorph classify`` on catalogs of ``--rss-rows`` rows (the real images
  repeated), each in a fresh process.

It prints one table of galaxies/s and the ratios (ours / peer, end-to-end time per galaxy /
(decode + model) time), and with ``--write`` puts it in ``docs/performance.md`` together with
the machine description. Timings are wall-clock medians of ``--repeats`` runs.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from astropy.table import Table

from .arguments import count, counts

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_IMAGES = ROOT.parent / "shared" / "data" / "galaxyzoo" / "images"


def _best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _catalog(ids: list[str], n: int) -> Table:
    reps = int(np.ceil(n / len(ids)))
    return Table({"GalaxyID": (ids * reps)[:n]})


def _models() -> dict[str, object]:
    """Default, every other shipped model, and an untrained Table-2 G0 (speed does not depend
    on the weights)."""
    from astro_morph.inference.deploy import export_onnx
    from astro_morph.models.arch import G0
    from astro_morph.models.efficientnet_g import build_model
    from astro_morph.models.model_file import write_bundle
    from astro_morph.models.torch_io import bundle_from_network

    g0 = Path(tempfile.mkdtemp()) / "g0.amz"
    bundle = bundle_from_network(build_model(G0, 5).eval(), "g0", [f"c{i}" for i in range(5)])
    bundle.onnx = export_onnx(bundle)
    write_bundle(bundle, g0)
    from astro_morph.models.model_file import read_bundle
    from astro_morph.models.registry import default_name, shipped_models

    models: dict[str, object] = {}
    for name, path in shipped_models().items():
        size = read_bundle(path).config["input_size"]
        label = f"default ({name}, {size} px)" if name == default_name() else \
            f"{name} ({size} px)"
        models[label] = path
    models["Table-2 G0 (32 px, untrained)"] = g0
    return models


def decode_only(cat: Table, image_dir: Path, size: int, fast: bool = False,
                workers: int | None = None) -> float:
    """Fetch and centre every row as ``classify`` does (``workers``: decoding threads)."""
    from astro_morph.centring.crop import CentreCrop
    from astro_morph.sources.galaxyzoo import GalaxyZooSource

    src = GalaxyZooSource(image_dir=image_dir, workers=workers,
                          draft_side=CentreCrop().min_input_side(size) if fast else None)
    return fetch_and_centre(cat, src, size, workers or 1)


def fetch_and_centre(cat: Table, source, size: int, workers: int) -> int:
    """Every row through ``source`` and the centre crop, in the slices and with the centring
    pool ``classify`` uses (none for a source that centres in its own decoding threads);
    returns the rows done."""
    from concurrent.futures import ThreadPoolExecutor

    from astro_morph.centring.crop import CentreCrop
    from astro_morph.pipeline import FETCH_ROWS, _fetch_prepare

    step = CentreCrop()
    pool = None if source.fuses_prepare or workers < 2 else ThreadPoolExecutor(workers)
    try:
        for start in range(0, len(cat), FETCH_ROWS):
            _fetch_prepare(cat[start:start + FETCH_ROWS], source, step, size, pool)
    finally:
        if pool is not None:
            pool.shutdown()
    return len(cat)


def model_only(path: Path, backend: str, n: int, tta: bool = False) -> tuple[float, int]:
    from astro_morph.inference.load import load_model

    clf = load_model(str(path), backend, "cpu")  # the backend's default batch, as classify
    if tta:
        from astro_morph.inference.tta import TTAClassifier

        clf = TTAClassifier(clf)
    x = np.random.default_rng(0).random((1024, clf.input_size, clf.input_size, 3),
                                        dtype=np.float32)
    clf.predict(x)
    reps = max(1, n // 1024)
    t = time.perf_counter()
    for _ in range(reps):
        clf.predict(x)
    return (time.perf_counter() - t) / (reps * 1024), clf.input_size


def end_to_end(cat: Table, image_dir: Path, model: Path, backend: str,
               fast: bool = False, device: str = "cpu", tta: bool = False,
               extra: tuple[str, ...] = ()) -> None:
    with tempfile.TemporaryDirectory() as d:
        cat_path, out = Path(d) / "cat.fits", Path(d) / "out.fits"
        cat.write(cat_path)
        done = subprocess.run([sys.executable, "-m", "astro_morph", "classify", str(cat_path),
                               "--image-dir", str(image_dir), "--model", str(model),
                               "--backend", backend, "--device", device, "-o", str(out),
                               "--no-progress", *(["--fast-decode"] if fast else []),
                               *(["--tta"] if tta else []), *extra],
                              capture_output=True, text=True)
        if done.returncode:
            # the child's own error, not only its exit status (a benchmark run is often remote)
            raise RuntimeError(f"astromorph classify --backend {backend} --device {device} "
                               f"failed ({done.returncode}):\n{done.stderr[-3000:]}")


def peer(cat: Table, image_dir: Path) -> None:
    """Zoobot-style: PIL decode + resize to 224, EfficientNet-B0 in torch, batch 64."""
    import torch
    from PIL import Image

    from astro_morph.models.arch import B0
    from astro_morph.models.efficientnet_g import build_model

    net = build_model(B0, 5).eval()
    ids = [str(v) for v in cat["GalaxyID"]]
    with torch.inference_mode():
        for start in range(0, len(ids), 64):
            batch = []
            for key in ids[start:start + 64]:
                with Image.open(image_dir / f"{key}.jpg") as im:
                    batch.append(np.asarray(im.convert("RGB").resize((224, 224)),
                                            dtype=np.float32) / 255)
            x = torch.from_numpy(np.stack(batch)).permute(0, 3, 1, 2)
            net(x)


def peak_rss(rows: int, ids: list[str], image_dir: Path) -> tuple[float, float]:
    """Peak RSS (MB) and wall time (s) of one classify run on ``rows`` rows, in a fresh
    process (the default model, ONNX, full decoding)."""
    with tempfile.TemporaryDirectory() as d:
        cat_path, out = Path(d) / "cat.fits", Path(d) / "out.fits"
        _catalog(ids, rows).write(cat_path)
        # VmHWM, not getrusage's ru_maxrss: Linux carries the parent's peak over fork and
        # exec into ru_maxrss, so a child of this (large) process would report the
        # benchmark's own footprint instead of its own.
        code = ("import sys; from astro_morph.cli import main; "
                f"sys.argv=['astromorph','classify',{str(cat_path)!r},'--image-dir',"
                f"{str(image_dir)!r},'-o',{str(out)!r},'--no-progress']\n"
                "try:\n    main()\nexcept SystemExit:\n    pass\n"
                "print([ln.split()[1] for ln in open('/proc/self/status') "
                "if ln.startswith('VmHWM:')][0])")
        t = time.perf_counter()
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True)
        return int(res.stdout.strip().splitlines()[-1]) / 1024, time.perf_counter() - t


#: CPU flags that change these benchmarks' figures (/proc/cpuinfo name, how it is written).
_VECTOR_FLAGS = (("avx2", "AVX2"), ("avx512f", "AVX-512"), ("avx512_bf16", "AVX512-BF16"),
                 ("amx_bf16", "AMX-BF16"))


def machine(cpuinfo: str | os.PathLike = "/proc/cpuinfo") -> str:
    """The CPU (with the vector extensions that matter here), cores, OS and library versions:
    figures from machines with and without AVX-512 or AMX differ by up to 2x."""
    cpu, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path(cpuinfo).read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                cpu = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
                break
    except OSError:
        pass
    vector = [name for flag, name in _VECTOR_FLAGS if flag in flags]
    if vector:
        cpu = f"{cpu} ({', '.join(vector)})"
    import onnxruntime
    import torch

    return (f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}, torch {torch.__version__}, onnxruntime "
            f"{onnxruntime.__version__}")


_OP_MEANING = {
    "Conv": "convolutions (1x1 expand/project, depthwise kxk)",
    "FusedConv": "convolutions with a fused activation (SE gates)",
    "QuickGelu": "SiLU activations (x * sigmoid(x), fused by ONNX Runtime)",
    "Mul": "squeeze-excitation gating (x * gate)",
    "ReduceMean": "squeeze-excitation pooling",
    "ReorderInput": "layout conversion to blocked NCHWc",
    "ReorderOutput": "layout conversion from blocked NCHWc",
    "Transpose": "NHWC input to NCHW",
    "Sub": "input normalisation (x - mean)",
}


def profile_model(path: Path, batch: int = 32, runs: int = 20) -> list[tuple[str, float]]:
    """Share of ONNX Runtime kernel time per operator type (one thread, one batch size)."""
    import json

    import onnxruntime as ort

    from astro_morph.inference.onnx_backend import _cached_export
    from astro_morph.models.model_file import read_bundle

    bundle = read_bundle(path)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1  # as the backend runs each batch
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.enable_profiling = True
    opts.profile_file_prefix = str(Path(tempfile.mkdtemp()) / "ort")
    sess = ort.InferenceSession(bundle.onnx or _cached_export(bundle), opts,
                                providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random((batch, bundle.input_size, bundle.input_size, 3),
                                        dtype=np.float32)
    for _ in range(runs):
        sess.run(None, {"images": x})
    events = json.loads(Path(sess.end_profiling()).read_text())
    by_op: dict[str, float] = {}
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            op = e["args"]["op_name"]
            by_op[op] = by_op.get(op, 0.0) + e["dur"]
    total = sum(by_op.values())
    return sorted(((op, t / total) for op, t in by_op.items()), key=lambda r: -r[1])


def profile_decode(cat: Table, image_dir: Path, size: int,
                   fast: bool = False) -> list[tuple[str, float]]:
    """Microseconds per row of each part of decode + crop/resize, in one thread.

    The parts are timed by wrapping the calls that do them (cheap timers, unlike a
    profiler's per-call hooks, which would swamp the Python-level part being measured).
    """
    from unittest import mock

    import simplejpeg
    from PIL import Image

    from astro_morph.centring import crop
    from astro_morph.sources import galaxyzoo

    spent = dict.fromkeys(("decode", "read_rgb", "pillow", "resize"), 0.0)

    def timed(key, fn):
        def wrapper(*args, **kwargs):
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[key] += time.perf_counter() - t
        return wrapper

    with mock.patch.object(simplejpeg, "decode_jpeg", timed("decode", simplejpeg.decode_jpeg)), \
            mock.patch.object(galaxyzoo, "read_rgb", timed("read_rgb", galaxyzoo.read_rgb)), \
            mock.patch.object(crop, "pillow_rgb", timed("pillow", crop.pillow_rgb)), \
            mock.patch.object(Image.Image, "resize", timed("resize", Image.Image.resize)):
        t = time.perf_counter()
        decode_only(cat, image_dir, size, fast, workers=1)
        total = time.perf_counter() - t
    per = 1e6 / len(cat)
    parts = [("JPEG decode (simplejpeg, libjpeg-turbo)", spent["decode"] * per),
             ("file open + read, JPEG header, size checks",
              (spent["read_rgb"] - spent["decode"]) * per),
             ("decoded array to a Pillow image (shared, not copied, since 2026-11-28)",
              spent["pillow"] * per),
             ("crop + resize (Pillow)", spent["resize"] * per)]
    parts.append(("the rest: slicing rows, locating files, flags, float conversion (Python)",
                  total * per - sum(us for _, us in parts)))
    return parts


def _write_block(marker: str, block: str, page: Path = ROOT / "docs" / "performance.md") -> None:
    """Replace the text between ``<!-- marker ... -->`` and its closing comment."""
    start, end = f"<!-- {marker}: rewritten by python -m benchmarks", f"<!-- /{marker} -->"
    text = page.read_text()
    head, rest = text.split(start, 1)
    opening, rest = rest.split("-->", 1)
    page.write_text(f"{head}{start}{opening}-->\n{block}\n{end}{rest.split(end, 1)[1]}")


def jpeg_ids(image_dir: Path) -> list[str]:
    """The stems of the .jpg files the benchmarks time, sorted; exits with one line when the
    folder is missing or holds none."""
    if not image_dir.is_dir():
        sys.exit(f"no image folder {image_dir}; pass --image-dir")
    ids = sorted(p.stem for p in image_dir.glob("*.jpg"))
    if not ids:
        sys.exit(f"no .jpg images in {image_dir}; pass --image-dir")
    return ids


def main() -> None:
    ap = argparse.ArgumentParser(description="astro_morph speed and memory benchmarks")
    ap.add_argument("--image-dir", type=Path, default=DEFAULT_IMAGES)
    ap.add_argument("--n", type=count, default=2000, help="galaxies per timed run")
    ap.add_argument("--peer-n", type=count, default=256, help="galaxies for the (slow) peer")
    ap.add_argument("--repeats", type=count, default=3)
    ap.add_argument("--rss-rows", type=counts, default=[10000],
                    help="comma-separated catalog sizes")
    ap.add_argument("--write", action="store_true", help="write docs/performance.md")
    ap.add_argument("--profile", action="store_true",
                    help="only profile the default model's operators in ONNX Runtime, and "
                         "decode + crop/resize per part, in one thread")
    args = ap.parse_args()
    if args.profile:
        from astro_morph.inference.load import model_file as model_path

        shares = [(op, share) for op, share in profile_model(model_path("default"))
                  if share >= 0.001]
        lines = ["| operator | share of kernel time | what it is |", "|---|---|---|"]
        lines += [f"| {op} | {share:.1%} | {_OP_MEANING.get(op, '')} |" for op, share in shares]
        table = "\n".join(lines)
        ids = jpeg_ids(args.image_dir)
        cat = _catalog(ids, args.n)
        decode_only(cat, args.image_dir, 55)  # the files into the page cache first
        full, fast = (profile_decode(cat, args.image_dir, 55, f) for f in (False, True))
        lines = ["| part of decode + crop/resize to 55 px | us per row | with --fast-decode |",
                 "|---|---|---|"]
        lines += [f"| {what} | {a:,.0f} | {b:,.0f} |"
                  for (what, a), (_, b) in zip(full, fast, strict=True)]
        lines.append(f"| total | {sum(a for _, a in full):,.0f} | "
                     f"{sum(b for _, b in fast):,.0f} |")
        decode_table = "\n".join(lines)
        print(table, decode_table, sep="\n\n")
        if args.write:
            cmd = "python -m benchmarks " + " ".join(sys.argv[1:])
            _write_block("profile", f"Measured by `{cmd.strip()}` (the default model, "
                         f"batch 32, one thread, ONNX Runtime's profiler; then {len(cat):,} "
                         f"real Galaxy Zoo JPEGs decoded in one thread) on: {machine()}."
                         f"\n\n{table}\n\n{decode_table}")
        return
    ids = jpeg_ids(args.image_dir)
    cat = _catalog(ids, args.n)
    rows: list[tuple[str, float, str]] = []  # (what, galaxies/s, note)
    models = _models()
    dec = {}
    one = len(cat) / _best(lambda: decode_only(cat, args.image_dir, 55, workers=1),
                           args.repeats)
    rows.append(("decode + crop/resize to 55 px, one thread", one, ""))
    from astro_morph.models.model_file import read_bundle

    # the decode ceiling at every model's own input size (and at 55 px, the old default's)
    sizes = sorted({55} | {read_bundle(p).config["input_size"] for p in models.values()})
    for size in sizes:
        for fast in (False, True):
            t = _best(lambda s=size, f=fast: decode_only(cat, args.image_dir, s, f),
                      args.repeats)
            dec[(size, fast)] = t / len(cat)
            how = "DCT-scaled decode (--fast-decode)" if fast else "decode"
            note = "" if fast or size != 55 else f"{len(cat) / t / one:.2f}x one thread"
            rows.append((f"{how} + crop/resize to {size} px (ceiling)", len(cat) / t, note))
    model_t = {}
    for name, path in models.items():
        for backend in ("onnx", "torch"):
            per, size = model_only(path, backend, args.n)
            model_t[(name, backend)] = (per, size)
            rows.append((f"model only: {name}, {backend}", 1 / per, "default batch (32)"))
    for name, path in models.items():
        for backend, fast in (("onnx", False), ("onnx", True), ("torch", False)):
            t = _best(lambda p=path, b=backend, f=fast: end_to_end(cat, args.image_dir, p, b,
                                                                  f), args.repeats)
            # Start-up (interpreter, imports, model load, output write) is in every
            # end-to-end figure; a one-row catalog measures it.
            t0 = _best(lambda p=path, b=backend, f=fast: end_to_end(cat[:1], args.image_dir,
                                                                   p, b, f), args.repeats)
            per, size = model_t[(name, backend)]
            ideal = dec[(size, fast)] + per
            flag = " --fast-decode" if fast else ""
            rows.append((f"end to end: {name}, {backend}{flag}", len(cat) / t,
                         f"{t / len(cat) / ideal:.2f}x (decode + model); "
                         f"{(t - t0) / len(cat) / ideal:.2f}x after {t0:.1f} s start-up"))
    peer_cat = cat[: args.peer_n]
    tp = _best(lambda: peer(peer_cat, args.image_dir), 1) / len(peer_cat)
    rows.append(("peer: Zoobot-style B0 224 px, torch, PIL, batch 64", 1 / tp, ""))
    lines = ["| run | galaxies/s | ratio to the peer | note |", "|---|---|---|---|"]
    for what, rate, note in rows:
        lines.append(f"| {what} | {rate:,.0f} | {rate * tp:.1f}x | {note} |")
    rss = [(r, peak_rss(r, ids, args.image_dir)) for r in args.rss_rows]
    lines += ["", "| catalog rows | peak RSS of `astromorph classify` (MB) | wall time (s) | "
              "galaxies/s |", "|---|---|---|---|"]
    lines += [f"| {r:,} | {m:,.0f} | {t:,.0f} | {r / t:,.0f} |" for r, (m, t) in rss]
    table = "\n".join(lines)
    print(table)
    if args.write:
        cmd = "python -m benchmarks " + " ".join(sys.argv[1:])
        block = (f"Measured by `{cmd.strip()}` on {len(cat):,} real Galaxy Zoo JPEGs "
                 f"(424x424) on: {machine()}.\n\n{table}")
        _write_block("benchmark", block)


if __name__ == "__main__":
    from astro_morph.errors import run_script

    run_script(main)
