"""The GPU side of the benchmarks, for a lent GPU machine: ``python -m benchmarks.gpu``.

Measured side by side in one run, on the machine it runs on:

* model only, default model (G3) in torch on CUDA, channels-last, bf16 autocast, inputs
  already on the GPU, per batch size; the same replayed as a CUDA graph;
* ``predict`` from host arrays (pinned copies per batch), as ``classify`` calls it;
* decode + crop/resize on the machine's CPU cores (the ceiling for end to end), full and
  DCT-scaled (``--fast-decode``);
* end to end ``astromorph classify --backend torch --device cuda``, with and without
  ``--fast-decode``, and the ONNX CPU backend on the same machine as the baseline; with
  ``--dask N,...`` also through ``--dask local:N`` (N worker processes, one GPU).

The device machine has no ``../shared``: ``benchmarks/device_check.sh`` carries some Galaxy
Zoo JPEGs and the missing wheels. ``--out FILE`` saves the table; ``--apply FILE`` (run
here, after the check) puts a saved table into ``docs/performance.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from astro_morph.sources.base import decode_threads

from .__main__ import (
    DEFAULT_IMAGES,
    _best,
    _catalog,
    _write_block,
    decode_only,
    end_to_end,
    jpeg_ids,
)
from .arguments import count, counts


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def model_only_gpu(path: Path, batch: int, device: str = "cuda", repeats: int = 20,
                   graph: bool = False) -> float:
    """Images/s of the deployable network on inputs already on ``device``."""
    import torch

    from astro_morph.inference.torch_backend import TorchClassifier
    from astro_morph.models.model_file import read_bundle

    clf = TorchClassifier(read_bundle(path), device=device, batch_size=batch)
    size = clf.input_size
    x = torch.rand(batch, size, size, 3, device=clf.device)
    cuda = clf.device.type == "cuda"

    def step() -> torch.Tensor:
        # PyTorch's CUDA-graph notes: autocast's cast cache must be off in a captured region
        with torch.autocast(clf.device.type, dtype=torch.bfloat16, enabled=clf.amp,
                            cache_enabled=not graph):
            return clf.model(x)

    with torch.inference_mode():
        for _ in range(3):
            step()
        _sync(device)
        if graph and cuda:
            g = torch.cuda.CUDAGraph()
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                step()  # warm-up on the side stream, as graph capture requires
            torch.cuda.current_stream().wait_stream(stream)
            with torch.cuda.graph(g):
                step()
            run = g.replay
        else:
            run = step
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            run()
            _sync(device)
            times.append(time.perf_counter() - t)
    return batch / statistics.median(times)


def predict_from_host(path: Path, n: int, device: str = "cuda") -> float:
    """Images/s of ``TorchClassifier.predict`` on host float32 arrays (default batch)."""
    from astro_morph.inference.torch_backend import TorchClassifier
    from astro_morph.models.model_file import read_bundle

    clf = TorchClassifier(read_bundle(path), device=device)
    x = np.random.default_rng(0).random((n, clf.input_size, clf.input_size, 3),
                                        dtype=np.float32)
    clf.predict(x[: clf.batch_size])
    t = time.perf_counter()
    clf.predict(x)
    _sync(device)
    return n / (time.perf_counter() - t)


def _args_shown(argv: list[str]) -> str:
    """The command line as others would rerun it: without ``--out FILE`` (a device's path)."""
    shown, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--out":
            skip = True
        elif not arg.startswith("--out="):
            shown.append(arg)
    return " ".join(shown)


def machine(device: str) -> str:
    import torch

    gpu = torch.cuda.get_device_name(0) if device.startswith("cuda") else "no GPU"
    return (f"{gpu}, {os.cpu_count()} CPU cores, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}, torch {torch.__version__}")


#: Rows per Dask task in the ``--dask`` rows: one chunk, so several tasks per worker (the
#: default, 8 chunks of 1,024, would leave workers idle on a benchmark-sized catalog).
PARTITION = 1024


def run(image_dir: Path, n: int, device: str = "cuda",
        batches: tuple[int, ...] = (512, 2048, 8192), repeats: int = 20,
        dask_workers: tuple[int, ...] = ()) -> str:
    """All GPU figures as a markdown block (the 'Measured by' line and the table)."""
    from astro_morph.inference.load import model_file as model_path

    model = model_path("default")
    ids = jpeg_ids(image_dir)
    cat = _catalog(ids, n)
    rows: list[tuple[str, float, str]] = []

    def add(what: str, rate: float, note: str) -> None:
        # printed as measured: a run stopped at the device's time limit still shows its rows
        rows.append((what, rate, note))
        print(f"measured: {what}: {rate:,.0f} galaxies/s {note}", flush=True)

    for batch in batches:
        how = ", bf16, channels-last" if device.startswith("cuda") else ", float32"
        add(f"model only: default (G3, 55 px), torch {device}{how}",
            model_only_gpu(model, batch, device, repeats), f"batch {batch}, inputs on device")
        if device.startswith("cuda"):
            add("model only, replayed as a CUDA graph",
                model_only_gpu(model, batch, device, repeats, graph=True), f"batch {batch}")
    add("predict() from host arrays", predict_from_host(model, 8 * max(batches), device),
        "default batch")
    decode_only(cat[:len(ids)], image_dir, 55)  # every file into the page cache
    one_n = min(n, 5000)
    one = one_n / _best(lambda: decode_only(cat[:one_n], image_dir, 55, workers=1), 1)
    add("decode + crop/resize to 55 px, one thread", one, "")
    for fast in (False, True):
        how = "DCT-scaled decode (--fast-decode)" if fast else "decode"
        rate = n / _best(lambda f=fast: decode_only(cat, image_dir, 55, f), 1)
        add(f"{how} + crop/resize to 55 px, {decode_threads()} threads (ceiling)",
            rate, "" if fast else f"{rate / one:.1f}x one thread")
    # Decoding threads share one GIL; worker processes do not (the Dask scale-out path, each
    # worker single-threaded, with its own model on the same GPU). Measured right after the
    # plain run, before the rest: a check stopped at its time limit keeps those rows.
    runs: list[tuple[str, str, tuple[str, ...]]] = [("torch", device, ())]
    runs += [("torch", device, ("--dask", f"local:{k}", "--partition-rows", str(PARTITION)))
             for k in dask_workers]
    runs += [("torch", device, ("--fast-decode",)), ("onnx", "cpu", ())]
    for backend, dev, extra in runs:
        t = _best(lambda b=backend, d=dev, e=extra: end_to_end(cat, image_dir, model, b,
                                                               device=d, extra=e), 1)
        # start-up (imports, CUDA context, model load, output write): a one-row catalog
        t0 = _best(lambda b=backend, d=dev, e=extra: end_to_end(cat[:1], image_dir, model, b,
                                                                device=d, extra=e), 1)
        flags = "".join(f" {e}" for e in extra)
        add(f"end to end: `classify --backend {backend} --device {dev}{flags}`", n / t,
            f"start-up included; {n / max(t - t0, 1e-9):,.0f}/s after its {t0:.1f} s start-up")
    lines = ["| run | galaxies/s | note |", "|---|---|---|"]
    lines += [f"| {what} | {rate:,.0f} | {note} |" for what, rate, note in rows]
    cmd = "python -m benchmarks.gpu " + _args_shown(sys.argv[1:])
    return (f"Measured by `{cmd.strip()}` ({len(ids):,} real Galaxy Zoo JPEGs repeated to "
            f"{n:,} rows) on: {machine(device)}.\n\n" + "\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description="astro_morph GPU benchmarks")
    ap.add_argument("--image-dir", type=Path, default=DEFAULT_IMAGES)
    ap.add_argument("--n", type=count, default=20000, help="catalog rows for end to end")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--batches", type=counts, default=[512, 2048, 8192],
                    help="comma-separated batch sizes")
    ap.add_argument("--repeats", type=count, default=20)
    ap.add_argument("--dask", type=counts, default=[],
                    help="comma-separated worker counts: also end to end with --dask local:N")
    ap.add_argument("--out", type=Path, help="also save the block to this file")
    ap.add_argument("--apply", type=Path, metavar="FILE",
                    help="put a block saved with --out into docs/performance.md and exit")
    args = ap.parse_args()
    if args.apply:
        _write_block("gpu", args.apply.read_text().strip())
        return
    block = run(args.image_dir, args.n, args.device,
                tuple(args.batches), args.repeats, tuple(args.dask))
    print(block)
    if args.out:
        args.out.write_text(block + "\n")


if __name__ == "__main__":
    from astro_morph.errors import run_script

    run_script(main)
