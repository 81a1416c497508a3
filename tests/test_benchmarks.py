"""The benchmark script's own parts (its figures live in docs/performance.md, not here)."""

import pytest
from astropy.table import Table

from benchmarks.__main__ import (
    _write_block,
    decode_only,
    end_to_end,
    machine,
    profile_decode,
    profile_model,
)


def test_write_block_replaces_only_the_marked_text(tmp_path):
    page = tmp_path / "p.md"
    page.write_text("intro\n<!-- profile: rewritten by python -m benchmarks --profile -->\n"
                    "old table\n<!-- /profile -->\nprose after\n")
    _write_block("profile", "new table", page)
    assert page.read_text() == ("intro\n<!-- profile: rewritten by python -m benchmarks "
                                "--profile -->\nnew table\n<!-- /profile -->\nprose after\n")


def test_machine_names_the_cpu_and_its_vector_extensions(tmp_path):
    # Figures from machines with and without AVX-512 or AMX differ: the line names them.
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Some Xeon\nflags\t\t: fpu sse2 avx2 "
                    "avx512f avx512_bf16 amx_tile amx_bf16\n\nprocessor\t: 1\n"
                    "model name\t: Some Xeon\nflags\t\t: fpu avx2\n")
    assert machine(info).startswith("Some Xeon (AVX2, AVX-512, AVX512-BF16, AMX-BF16), ")
    info.write_text("model name\t: Some EPYC\nflags\t\t: fpu sse2 avx2 fma\n")
    assert machine(info).startswith("Some EPYC (AVX2), ")
    assert " cores, " in machine(tmp_path / "absent")


def test_profile_model_shares_add_up(tiny_model):
    shares = dict(profile_model(tiny_model, batch=4, runs=2))
    assert abs(sum(shares.values()) - 1) < 1e-6 and min(shares.values()) >= 0
    # Which operator dominates is a timing, left to the benchmark (a loaded machine can put
    # a cheap op first); the profile must name the network's convolutions, fused or not.
    assert {"Conv", "FusedConv"} & set(shares)


def test_decode_only_prepares_every_row(image_dir):
    cat = Table({"GalaxyID": [1, 2, 3, 4, 5] * 60})  # more than one FETCH_ROWS slice
    assert decode_only(cat, image_dir, 32) == 300
    assert decode_only(cat, image_dir, 32, fast=True) == 300


def test_gpu_helpers_run_on_cpu(tiny_model, image_dir):
    # The GPU check runs only on a lent machine; its code path is exercised here on a CPU.
    from benchmarks.gpu import model_only_gpu, predict_from_host

    assert model_only_gpu(tiny_model, 4, "cpu", repeats=1) > 0
    assert predict_from_host(tiny_model, 40, "cpu") > 0


def test_gpu_command_line_leaves_out_the_output_path():
    from benchmarks.gpu import _args_shown

    assert _args_shown(["--n", "50000", "--out", "/tmp/x/gpu.md", "--device", "cuda"]) == (
        "--n 50000 --device cuda")
    assert _args_shown(["--out=/tmp/gpu.md", "--repeats", "2"]) == "--repeats 2"


def test_end_to_end_failure_shows_the_childs_error(tmp_path, image_dir):
    # On a device machine only the benchmark's output comes back: it must carry the reason.
    with pytest.raises(RuntimeError, match="no-such-model"):
        end_to_end(Table({"GalaxyID": [1]}), image_dir, tmp_path / "no-such-model.amz", "onnx")


def test_profile_decode_times_every_part(tmp_path):
    from PIL import Image

    from conftest import make_galaxy_image

    for i in range(1, 4):
        Image.fromarray(make_galaxy_image(128, seed=i)).save(tmp_path / f"{i}.jpg")
    parts = dict(profile_decode(Table({"GalaxyID": [1, 2, 3] * 50}), tmp_path, 32))
    assert len(parts) == 5 and all(us > 0 for us in parts.values())
    assert parts["JPEG decode (simplejpeg, libjpeg-turbo)"] > 0.5  # the wrapper saw the calls


def test_counts_and_seconds_refuse_zero_and_words():
    import argparse

    from benchmarks.arguments import count, counts, seconds

    assert count("3") == 3 and counts("10, 20,") == [10, 20] and seconds("0.5") == 0.5
    for parse, bad in [(count, "0"), (count, "-2"), (count, "x"), (count, "1.5"),
                       (counts, "10,a"), (seconds, "0"), (seconds, "inf"), (seconds, "nan"),
                       (seconds, "soon")]:
        with pytest.raises(argparse.ArgumentTypeError):
            parse(bad)


def test_a_folder_without_jpegs_is_one_line(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    done = subprocess.run([sys.executable, "-m", "benchmarks", "--image-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parent.parent)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip() == f"no .jpg images in {tmp_path}; pass --image-dir"


def test_thread_scaling_measures_every_part_at_every_count(tmp_path):
    from PIL import Image

    from benchmarks.threads import run
    from conftest import make_galaxy_image

    for i in range(1, 4):
        Image.fromarray(make_galaxy_image(96, seed=i)).save(tmp_path / f"{i}.jpg")
    rows = run(tmp_path, 40, (1, 2))
    parts = dict.fromkeys(what for what, _, _ in rows)
    assert len(parts) == 5 and len(rows) == 10
    assert {k for _, k, _ in rows} == {1, 2} and all(rate > 0 for _, _, rate in rows)
    from astro_morph.pipeline import FETCH_ROWS

    assert f"slices of {8 * FETCH_ROWS}" in " ".join(parts)  # the longer slice was patched in


def test_revisions_times_a_commit_beside_this_tree(image_dir):
    # Against HEAD itself: both columns are measured (fresh processes, a temporary worktree
    # that is removed afterwards), one table row per thread count and decode.
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent

    def worktrees() -> str:
        return subprocess.run(["git", "worktree", "list"], capture_output=True, text=True,
                              cwd=root).stdout

    before = worktrees()
    done = subprocess.run([sys.executable, "-m", "benchmarks.revisions", "HEAD",
                           "--image-dir", str(image_dir), "--n", "12", "--threads", "1",
                           "--rounds", "1"], capture_output=True, text=True, timeout=300,
                          cwd=root)
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("| 1 |")]
    assert len(rows) == 2 and all(line.endswith("x |") for line in rows)
    assert worktrees() == before  # the temporary worktree is gone


def test_sources_benchmark_mosaics_cut_in_every_storage(tmp_path):
    """The FITS rows of ``python -m benchmarks.sources``: each storage of the synthetic
    mosaic is read back by the FITS source, and every galaxy cut (those near an edge with
    NaN beyond it) and centred."""
    from astro_morph.sources.fits_mosaic import FitsMosaicSource
    from benchmarks.__main__ import fetch_and_centre
    from benchmarks.sources import table, write_mosaics

    paths, positions = write_mosaics(tmp_path, galaxies=6, side=512)
    assert list(paths) == ["float32", "int16 BSCALE", "Rice .fits.fz"]
    for images in paths.values():
        source = FitsMosaicSource(image=[str(p) for p in images])
        assert all(c.image is not None for c in source.fetch(positions))
        assert fetch_and_centre(positions, source, 32, workers=2) == 6
    text = table([("jpeg", 100.0, 50.0), ("fits", 25.0, 20.0)])
    assert "| fits | 25 | 0.25x | 20 | 0.40x |" in text
