"""The bad-input matrix: every case run through ``astromorph classify`` as a user would.

``tests/test_bad_input_matrix.py`` runs the cases, checks each against its expectation, and
checks that ``docs/bad_input.md`` is exactly the table this run observed. Regenerate the page
after a deliberate change with::

    ASTROMORPH_WRITE_DOCS=1 python3 -m pytest tests/test_bad_input_matrix.py
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.table import MaskedColumn, Table

from astro_morph.catalog_io import read_catalog
from astro_morph.flags import describe_flags


@dataclass
class Case:
    name: str
    setup: Callable[[Path, Path], list[str]]  # (workdir, image_dir) -> extra CLI args
    expect_exit: int
    expect: str | list[int]  # error substring, or morph_flags per row
    patch: Callable | None = None  # applied (with a MonkeyPatch) around the run
    command: str = "classify"
    group: str = "catalogs and images"


#: What a setup may need beyond its folders: the model file under test (set by run_case).
CTX: dict = {}


@dataclass
class Observed:
    exit: int
    message: str
    flags: list[int] | None
    rows_in: int | None
    traceback: bool
    row_message: str = ""


def _cat(work: Path, table: Table, name: str = "cat.fits") -> Path:
    path = work / name
    table.write(path, overwrite=True)
    return path


def _two_fits_tables(work: Path, images: Path) -> list[str]:
    """A FITS file whose first table is not the galaxies (astropy reads the first)."""
    from astropy.io import fits

    path = work / "cat.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.table_to_hdu(Table({"x": [1.0]})),
                  fits.table_to_hdu(Table({"GalaxyID": [1, 2]}))]).writeto(path)
    return [str(path)]


def _parquet_null_id(work: Path, images: Path) -> list[str]:
    """Parquet writers store a missing name as a null, which astropy's reader refuses."""
    import pandas as pd

    path = work / "cat.parquet"
    pd.DataFrame({"GalaxyID": ["1", None, "2"]}).to_parquet(path)
    return [str(path)]


def _fifo_output(work: Path, images: Path) -> list[str]:
    """The atomic rename would have replaced the FIFO (or /dev/null) with a plain file."""
    os.mkfifo(work / "pipe.fits")
    return _ids(work, [1]) + ["-o", str(work / "pipe.fits"), "--overwrite"]


def _ids(work: Path, ids, name: str = "cat.fits") -> list[str]:
    return [str(_cat(work, Table({"GalaxyID": ids}), name))]


def _write_image(images: Path, name: str, mode: str, size=(64, 64)) -> None:
    from PIL import Image

    from conftest import make_galaxy_image

    rgb = Image.fromarray(make_galaxy_image(size[0], seed=7))
    if mode == "L":
        rgb.convert("L").save(images / name)
    elif mode == "CMYK":
        rgb.convert("CMYK").save(images / name, "JPEG")
    elif mode == "I;16":
        arr = (np.asarray(rgb.convert("L"), dtype=np.uint16) * 257)
        Image.fromarray(arr).save(images / name)  # 16-bit greyscale PNG
    elif mode == "huge":
        Image.new("1", size).save(images / name)  # 64 Mpx, a few kB on disk


def _mosaic(work: Path) -> Path:
    """A small TAN-projected FITS mosaic with one galaxy at RA 150, Dec 2."""
    from astropy.io import fits
    from astropy.wcs import WCS

    n = 200
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [150.0, 2.0]
    w.wcs.crpix = [n / 2 + 0.5, n / 2 + 0.5]
    w.wcs.cdelt = [-0.4 / 3600, 0.4 / 3600]
    y, x = np.mgrid[:n, :n]
    data = np.exp(-(((x - n / 2) / 8) ** 2 + ((y - n / 2) / 5) ** 2)).astype(np.float32)
    path = work / "mosaic.fits"
    fits.PrimaryHDU(data, header=w.to_header()).writeto(path, overwrite=True)
    return path


def _coords(work: Path, ra, dec) -> list[str]:
    cat = _cat(work, Table({"RA": ra, "DEC": dec}))
    return [str(cat), "--source", "fits", "--image", str(_mosaic(work)), "--size-arcsec", "30"]


def _degrees_spelled_out(work: Path, images: Path) -> list[str]:
    """TUNIT 'degrees' and 'DEG': outside the FITS list, so astropy's unrecognised units."""
    from astropy.io import fits

    args = _coords(work, [150.0], [2.0])
    fits.BinTableHDU.from_columns([
        fits.Column(name="RA", format="D", array=np.array([150.0]), unit="degrees"),
        fits.Column(name="DEC", format="D", array=np.array([2.0]), unit="DEG")]).writeto(
        args[0], overwrite=True)
    return args


def _two_grids(work: Path, images: Path) -> list[str]:
    """A second band at half the pixel scale: one pixel box would cut another patch of sky."""
    from astropy.io import fits

    args = _coords(work, [150.0], [2.0])
    with fits.open(work / "mosaic.fits") as hdul:
        header = hdul[0].header.copy()
        header["CDELT1"], header["CDELT2"] = header["CDELT1"] / 2, header["CDELT2"] / 2
        fits.PrimaryHDU(hdul[0].data, header=header).writeto(work / "g.fits")
    return args + ["--image", str(work / "g.fits")]


def _singular_wcs(work: Path, images: Path) -> list[str]:
    """A mosaic header whose CDELT are 0: wcslib's reason comes in three lines."""
    from astropy.io import fits

    args = _coords(work, [150.0], [2.0])
    with fits.open(work / "mosaic.fits", mode="update") as hdul:
        hdul[0].header["CDELT1"] = hdul[0].header["CDELT2"] = 0.0
    return args


def _disk_full(monkeypatch) -> None:
    def full(self, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Table, "write", full)


def _with_previous_output(work: Path, images: Path) -> list[str]:
    (work / "out.fits").write_bytes(b"previous output")
    return _ids(work, [1, 2]) + ["--overwrite"]


def _zero_bytes(work: Path, images: Path) -> list[str]:
    (work / "cat.fits").write_bytes(b"")
    return [str(work / "cat.fits")]


def _truncated(work: Path, images: Path) -> list[str]:
    path = _cat(work, Table({"GalaxyID": np.arange(500)}))
    path.write_bytes(path.read_bytes()[:3000])
    return [str(path)]


def _not_fits(work: Path, images: Path) -> list[str]:
    (work / "cat.fits").write_text("GalaxyID\n1\n")
    return [str(work / "cat.fits")]


def _corrupt(work: Path, images: Path) -> list[str]:
    (images / "3.jpg").write_bytes(b"\xff\xd8\xff junk")
    return _ids(work, [3, 1])


def _image(name: str, mode: str, size=(64, 64)):
    def setup(work: Path, images: Path) -> list[str]:
        _write_image(images, name, mode, size)
        return _ids(work, [int(name.split(".")[0]), 1])
    return setup


def _blank_and_tiny(work: Path, images: Path) -> list[str]:
    """A black 120 px JPEG (what a cutout service answers off its footprint) and a 1x1 PNG."""
    from PIL import Image

    Image.new("RGB", (120, 120)).save(images / "24.jpg")
    Image.new("RGB", (1, 1), (200, 100, 50)).save(images / "25.png")
    return _ids(work, [24, 25, 1])


def _paths(paths: list[str], name: str = "cat.ecsv"):
    def setup(work: Path, images: Path) -> list[str]:
        # ECSV keeps a NUL byte inside a string (FITS and Parquet cut the value there).
        return [str(_cat(work, Table({"path": paths}), name)), "--path-column", "path"]
    return setup


def _links(work: Path, images: Path) -> list[str]:
    import os

    os.symlink("/etc/passwd", images / "7.jpg")
    os.symlink("/dev/zero", images / "8.jpg")
    os.mkfifo(images / "9.jpg")
    os.symlink(images / "1.jpg", images / "10.jpg")  # a link inside the folder is fine
    return _ids(work, [1, 7, 8, 9, 10])


def _bom_csv(work: Path, images: Path) -> list[str]:
    (work / "cat.csv").write_text("GalaxyID,mag\n1,17.2\n2,16.9\n", encoding="utf-8-sig")
    return [str(work / "cat.csv")]


def _non_ascii(work: Path, images: Path) -> list[str]:
    return [str(_cat(work, Table({"GalaxyID": ["1", "NGC 4486 \u2013 M87"]}), "cat.ecsv"))]


def _same_as_input(work: Path, images: Path) -> list[str]:
    cat = _ids(work, [1])[0]
    return [cat, "-o", cat, "--overwrite"]


def _read_only_output(work: Path, images: Path) -> list[str]:
    """An earlier output marked read-only (chmod 444) to keep it."""
    out = work / "kept.fits"
    Table({"GalaxyID": [1]}).write(out)
    out.chmod(0o444)
    return _ids(work, [1]) + ["-o", str(out), "--overwrite"]


def _stale_journal(overwrite: bool):
    def setup(work: Path, images: Path) -> list[str]:
        (work / "out.fits.partial").mkdir()
        (work / "out.fits.partial" / "run.json").write_text('{"input": "another run"}')
        return _ids(work, [1, 2]) + (["--overwrite"] if overwrite else [])
    return setup


def _stale_temp(work: Path, images: Path) -> list[str]:
    (work / ".out.fits.k3x9_q2z.fits").write_bytes(b"half a FITS file")
    return _ids(work, [1, 2])


def _model_dir(work: Path, **changes) -> Path:
    import json
    import zipfile

    d = work / "model"
    with zipfile.ZipFile(CTX["model"]) as zf:
        zf.extractall(d)
    cfg = json.loads((d / "config.json").read_text())
    cfg.update(changes)
    (d / "config.json").write_text(json.dumps(cfg))
    return d


def _model(damage: str | None = None, **changes):
    def setup(work: Path, images: Path) -> list[str]:
        d = _model_dir(work, **changes)
        if damage == "weights":
            (d / "model.onnx").unlink()  # the ONNX graph must then be exported from them
            (d / "weights.safetensors").write_bytes(b"\x40\x00\x00\x00\x00\x00\x00\x00{bad")
        elif damage == "onnx":
            (d / "model.onnx").write_bytes(b"\x08\x07" + b"not a graph" * 20)
        return _ids(work, [1, 2]) + ["--model", str(d)]
    return setup


def _zip_bomb(work: Path, images: Path) -> list[str]:
    import zipfile

    path = work / "bomb.amz"
    with zipfile.ZipFile(CTX["model"]) as src, \
            zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zf.writestr("config.json", src.read("config.json"))
        with zf.open("weights.safetensors", "w") as fh:  # 1 GiB of zeros, ~1 MB on disk
            chunk = bytes(1 << 20)
            for _ in range(1024):
                fh.write(chunk)
    return _ids(work, [1, 2]) + ["--model", str(path)]


def _journal_fault(err: int, after: int):
    """Chunk files of the resume journal fail with ``err`` once ``after`` were written."""
    def patch(monkeypatch) -> None:
        from astro_morph import journal

        real = journal.atomic_write_bytes
        written = []

        def write(path, data):
            if Path(path).name.startswith("chunk-"):
                if len(written) >= after:
                    raise OSError(err, os.strerror(err))
                written.append(path)
            return real(path, data)

        monkeypatch.setattr(journal, "atomic_write_bytes", write)
    return patch


def _locked(work: Path, images: Path) -> list[str]:
    from astro_morph.journal import OutputLock

    lock = OutputLock(work / "out.fits").acquire()  # as a first run would hold it
    CTX.setdefault("cleanup", []).append(lock.release)
    return _ids(work, [1, 2])


def _onnx_out_of_memory(monkeypatch) -> None:
    """ONNX Runtime's arena failing as it does past the machine's memory (a huge batch)."""
    import onnxruntime

    def run(self, *args, **kwargs):
        raise RuntimeError("[ONNXRuntimeError] : 1 : FAIL : Non-zero status code returned "
                           "while running Conv node. Status Message: Failed to allocate "
                           "memory for requested buffer of size 1354752000")

    monkeypatch.setattr(onnxruntime.InferenceSession, "run", run)


def _torch_out_of_memory(monkeypatch) -> None:
    """torch's CPU allocator failing as it does past the machine's memory (a huge batch)."""
    import torch

    def forward(self, x):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: "
                           "can't allocate memory: you tried to allocate 677376000 bytes. "
                           "Error code 12 (Cannot allocate memory)")

    monkeypatch.setattr(torch.nn.Conv2d, "forward", forward)


def _interrupt_after(chunks: int):
    def patch(monkeypatch) -> None:
        from astro_morph import pipeline

        real = pipeline._classify_chunk
        done = []

        def classify_then_interrupt(*args, **kwargs):
            if len(done) >= chunks:
                raise KeyboardInterrupt
            done.append(1)
            return real(*args, **kwargs)

        monkeypatch.setattr(pipeline, "_classify_chunk", classify_then_interrupt)
    return patch


def _resume_other_backend(work: Path, images: Path) -> list[str]:
    args = _ids(work, [1, 2, 3]) + ["-o", str(work / "out.fits"), "--image-dir", str(images),
                                    "--model", str(CTX["model"]), "--no-progress",
                                    "--chunk-size", "1"]
    code, _ = _invoke(["classify", *args, "--backend", "torch"], _interrupt_after(1),
                      CTX["monkeypatch"])
    assert code == 130 and (work / "out.fits.partial").is_dir()
    return args + ["--resume", "--backend", "onnx"]


def _no_skimage(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "skimage", None)  # import skimage -> ImportError


def _network_down(work: Path, images: Path) -> list[str]:
    rng = np.random.default_rng(0)
    cat = _cat(work, Table({"RA": rng.uniform(150, 151, 200), "DEC": rng.uniform(1, 2, 200)}))
    return [str(cat), "--source", "sdss", "--cache-dir", str(work / "cache")]


def _refused_port(monkeypatch) -> None:
    from astro_morph.sources import sdss

    # Nothing listens on port 9 here: every connect is refused at once, as with no network.
    monkeypatch.setattr(sdss, "SKYSERVER_CUTOUT_URL", "http://127.0.0.1:9/getjpeg")


def _labels(work: Path, images: Path, classes: str | None = None,
            existing: bool = False) -> list[str]:
    labels = work / "labels.csv"
    labels.write_text("OBJID,label,split\n1,spiral,train\n2,elliptical,train\n"
                      "3,spiral,val\n")
    out = work / "m.amz"
    if existing:
        out.write_bytes(b"a model someone trained for a week")
    args = [str(labels), "--image-dir", str(images), "-o", str(out), "--epochs", "1"]
    return args + (["--classes", classes] if classes else [])


def _labels_missing_image(work: Path, images: Path) -> list[str]:
    args = _labels(work, images)
    (work / "labels.csv").write_text("OBJID,label,split\n1,spiral,train\n2,elliptical,train\n"
                                     "404,spiral,train\n3,spiral,val\n")
    return args


def _kaggle_votes(work: Path, images: Path, repeat: bool = False) -> list[str]:
    """Kaggle's training_solutions_rev1.csv, cut down: one vote 'n/a', one galaxy twice."""
    cols = ["Class1.1", "Class1.2", "Class1.3", "Class2.1", "Class2.2", "Class4.1",
            "Class4.2", "Class7.1", "Class7.2", "Class7.3"]
    smooth = "0.9,0.1,0,0.05,0.05,0,0.05,0.81,0.09,0"
    ids = ["100008", "100023" if not repeat else "100008", "100053"]
    rows = [f"{ids[0]},{smooth}", f"{ids[1]},n/a,{smooth[4:]}", f"{ids[2]},{smooth}"]
    path = work / "training_solutions_rev1.csv"
    path.write_text("GalaxyID," + ",".join(cols) + "\n" + "\n".join(rows) + "\n")
    return [str(path), "-o", str(work / "labels.csv")]


def _labels_text(text: str):
    """A labels table with these rows (after the header), for the train cases."""
    def make(work: Path, images: Path) -> list[str]:
        args = _labels(work, images)
        (work / "labels.csv").write_text("OBJID,label,split\n" + text)
        return args
    return make


def _blank_images(work: Path, images: Path) -> list[str]:
    """Cutouts from outside a survey's footprint: one grey value throughout."""
    from PIL import Image

    blank = work / "blank"
    blank.mkdir()
    for i in (1, 2, 3):
        Image.new("RGB", (64, 64), (0, 0, 0)).save(blank / f"{i}.jpg")
    args = _labels(work, images)
    return args[:1] + ["--image-dir", str(blank)] + args[3:]


def _damaged_checkpoint(work: Path, images: Path) -> list[str]:
    """A checkpoint cut short by a full disk (written atomically, so only from outside)."""
    args = _labels(work, images)
    (work / "m.amz.ckpt").mkdir()
    (work / "m.amz.ckpt" / "checkpoint.pt").write_bytes(b"PK\x03\x04 cut short")
    return args + ["--resume"]


def _pseudo_mixed_case(work: Path, images: Path) -> list[str]:
    """The sources open <id>.jpg/.jpeg/.png (or .JPG ...) only: .Jpg files are no pool."""
    folder = work / "unlabelled"
    folder.mkdir()
    for src in sorted(images.glob("*.jpg"))[:2]:
        (folder / f"{src.stem}.Jpg").write_bytes(src.read_bytes())
    return _labels(work, images) + ["--teacher", str(CTX["model"]), "--distill-weight", "0",
                                    "--pseudo-labels", str(folder)]


def _extra_other_classes(work: Path, images: Path) -> list[str]:
    """Galaxy Zoo 2's binary table holds no gz1 class but spiral; one without it adds nothing."""
    table = work / "gz2.csv"
    table.write_text("GalaxyID,label,split\n1,non_spiral,train\n2,smooth,train\n")
    return _labels(work, images) + ["--extra-labels", str(table), "--extra-image-dir",
                                    str(images)]


CASES: list[Case] = [
    Case("0-byte catalog", _zero_bytes, 1, "is empty (0 bytes)"),
    Case("truncated FITS catalog", _truncated, 1, "cannot read catalog"),
    Case("not a FITS file (.fits suffix)", _not_fits, 1, "cannot read catalog"),
    Case("misspelled id column", lambda w, i: [str(_cat(w, Table({"GalaxyId": [1]})))], 1,
         "did you mean 'GalaxyId'?"),
    Case("a Galaxy Zoo 1 table (ids in OBJID) without --id-column",
         lambda w, i: [str(_cat(w, Table({"OBJID": [1], "label": ["spiral"]})))], 1,
         "(it has 'OBJID': --id-column OBJID?)"),
    Case("a SExtractor catalog (ALPHA_J2000, DELTA_J2000) for a positional source",
         lambda w, i: [str(_cat(w, Table({"ALPHA_J2000": [150.0], "DELTA_J2000": [2.0]}))),
                       "--source", "sdss", "--offline"], 1,
         "(it has 'ALPHA_J2000': --ra-column ALPHA_J2000?)"),
    Case("empty catalog (0 rows)", lambda w, i: _ids(w, np.zeros(0, int)), 1, "has no rows"),
    Case("CSV with a UTF-8 byte-order mark (Excel)", _bom_csv, 0, [0, 0]),
    Case("non-ASCII id, FITS output", _non_ascii, 1, "which FITS cannot store"),
    Case("non-ASCII column name (ECSV input), FITS output",
         lambda w, i: [str(_cat(w, Table({"GalaxyID": [1, 2], "Hα": [1.0, 2.0]}),
                                "cat.ecsv"))], 1, "cannot be a FITS column name"),
    Case("a true/false column with a blank (ECSV input), FITS output",
         lambda w, i: [str(_cat(w, Table({"GalaxyID": [1, 2], "barred": MaskedColumn(
             [True, False], mask=[False, True])}), "cat.ecsv"))], 1, "FITS would write as True"),
    Case("a 70-character --prefix, FITS output",
         lambda w, i: _ids(w, [1, 2]) + ["--prefix", "p" * 70], 1,
         "(from --prefix) cannot be a FITS column name: too long"),
    Case("a 58-character --prefix: label fits a FITS card, prob_<class> does not",
         lambda w, i: _ids(w, [1, 2]) + ["--prefix", "p" * 58], 1,
         "prob_elliptical' (from --prefix) cannot be a FITS column name"),
    Case("duplicate ids", lambda w, i: _ids(w, [1, 1, 2]), 0, [0, 0, 0]),
    Case("missing image", lambda w, i: _ids(w, [1, 404]), 0, [0, 1]),
    Case("every row flagged (wrong --image-dir)", lambda w, i: _ids(w, [404, 405]), 3, [1, 1]),
    Case("corrupt JPEG", _corrupt, 0, [2, 0]),
    Case("greyscale JPEG", _image("20.jpg", "L"), 0, [0, 0]),
    Case("CMYK JPEG", _image("21.jpg", "CMYK"), 0, [0, 0]),
    Case("16-bit PNG", _image("22.png", "I;16"), 0, [0, 0]),
    Case("a black JPEG (a survey's answer off its footprint) and a 1x1 px PNG", _blank_and_tiny,
         0, [4096, 4096, 0]),
    Case("huge image (8000x8000 px)", _image("23.png", "huge", (8000, 8000)), 0, [2, 0]),
    Case("path column outside --image-dir", lambda w, i: [
        str(_cat(w, Table({"path": ["1.jpg", "../../etc/passwd", "/etc/hostname"]}))),
        "--path-column", "path"], 0, [0, 8, 8]),
    Case("NUL byte and a 5,000-character name in the path column",
         _paths(["1.jpg", "2\0.jpg", "x" * 5000 + ".jpg"]), 0, [0, 4, 4]),
    Case("id mode: symlinks to /etc/passwd and /dev/zero, a FIFO, a link inside the folder",
         _links, 0, [0, 8, 8, 8, 0]),
    Case("a column of arrays (a 3-vector per row) with output to plain CSV",
         lambda w, i: [str(_cat(w, Table({"GalaxyID": [1, 2], "vec": np.zeros((2, 3))}),
                                "cat.ecsv")), "-o", str(w / "out.csv")], 1,
         "column 'vec' holds arrays (shape (3,) per row), which CSV cannot store"),
    Case("FITS catalog with two tables, the galaxies in the second", _two_fits_tables, 1,
         "catalog has no column 'GalaxyID'"),
    Case("Parquet catalog with a null id", _parquet_null_id, 0, [0, 4, 0]),
    Case("masked id", lambda w, i: [str(_cat(w, Table(
        {"GalaxyID": np.ma.array([1, 0], mask=[False, True])})))], 0, [0, 4]),
    Case("id column of 2-vectors (one id per row was meant)",
         lambda w, i: _ids(w, np.array([[1, 2], [3, 4]])), 3, [4, 4]),
    Case("ids stored as floats: 1.0 (fine), 1.5, and an 18-digit SDSS objid (digits lost)",
         lambda w, i: [str(_cat(w, Table({"GalaxyID": [1.0, 1.5, 587722981742084144.0]})))],
         0, [0, 4, 4]),
    Case("FITS catalog whose RA/Dec unit is spelled 'degrees' and 'DEG'",
         _degrees_spelled_out, 0, [0]),
    Case("NaN and out-of-range RA/Dec", lambda w, i: _coords(
        w, [150.0, np.nan, 400.0, 150.0], [2.0, 2.0, 2.0, 95.0]), 0, [0, 16, 16, 16]),
    Case("sexagesimal RA/Dec strings", lambda w, i: _coords(
        w, ["10h00m00s", "10:00:00.0", "ten"], ["+02d00m00s", "+02:00:00", "two"]),
        0, [0, 0, 16]),
    Case("position outside the mosaic", lambda w, i: _coords(w, [150.0, 151.0], [2.0, 2.0]),
         0, [0, 32]),
    Case("FITS mosaic whose WCS matrix is singular (CDELT 0)", _singular_wcs, 1,
         "mosaic.fits: Linear transformation matrix is singular."),
    Case("FITS bands on different pixel grids (0.4 and 0.2 arcsec per pixel)", _two_grids, 1,
         "give bands on one pixel grid"),
    Case("--centring recentre without scikit-image", lambda w, i: _ids(w, [1]) + [
        "--centring", "recentre"], 1, "needs scikit-image", patch=_no_skimage),
    # Options and outputs
    Case("-o naming the input catalog (even with --overwrite; --in-place is how to ask)",
         _same_as_input, 1, "modifies only with --in-place", group="options and outputs"),
    Case("--overwrite onto an output marked read-only (chmod 444)", _read_only_output, 1,
         "it is read-only (mode 444)", group="options and outputs"),
    Case("-o naming a FIFO (a device or /dev/stdout alike)", _fifo_output, 1,
         "is not a regular file", group="options and outputs"),
    Case("unknown output suffix", lambda w, i: _ids(w, [1]) + ["-o", str(w / "out.txt")], 1,
         "or pass --output-format", group="options and outputs"),
    Case("unfinished run in <out>.partial, rerun without --resume", _stale_journal(False), 1,
         "holds an unfinished run", group="options and outputs"),
    Case("unfinished run in <out>.partial, rerun with --overwrite", _stale_journal(True), 0,
         [0, 0], group="options and outputs"),
    Case("temp file left by a killed final write", _stale_temp, 0, [0, 0],
         group="options and outputs"),
    Case("--device gpu (not a torch device name)", lambda w, i: _ids(w, [1]) + [
        "--device", "gpu"], 1, "expected cpu, cuda, cuda:N or auto",
        group="options and outputs"),
    Case("misspelled --source-option key", lambda w, i: _ids(w, [1]) + [
        "--source-option", "max_pixel=100"], 1, "has no option 'max_pixel'",
        group="options and outputs"),
    Case("a flag meant for another source (--ra-column with galaxyzoo)",
         lambda w, i: _ids(w, [1]) + ["--ra-column", "RA"], 1, "has no option 'ra_column'",
         group="options and outputs"),
    Case("--centring-option of the wrong type", lambda w, i: _ids(w, [1]) + [
        "--centring", "recentre", "--centring-option", "nsigma=high"], 1,
        "expected a float", group="options and outputs"),
    # Model files
    Case("damaged weights.safetensors (no ONNX graph)", _model("weights"), 1,
         "weights.safetensors is damaged", group="model files"),
    Case("damaged model.onnx", _model("onnx"), 1, "model.onnx cannot be loaded",
         group="model files"),
    Case("unknown architecture key", _model(arch={"name": "x", "blocks": [], "wings": 2}), 1,
         "arch is not a valid architecture", group="model files"),
    Case("input_size not an integer", _model(input_size="55"), 1,
         "input_size must be an integer", group="model files"),
    Case("input_size 100000", _model(input_size=100000), 1, "is outside 8-1024 pixels",
         group="model files"),
    Case("class count differs from the ONNX output", _model(class_names=["a", "b", "c"]), 1,
         "gives 5 probabilities but config.json names 3 classes", group="model files"),
    Case("duplicate class names", _model(class_names=["a", "b", "a", "c", "d"]), 1,
         "repeats class names a", group="model files"),
    Case("crop_fraction 2 (over the whole image)", _model(crop_fraction=2), 1,
         "crop_fraction must be a number in (0, 1], not 2", group="model files"),
    Case("zip member that inflates to 1 GiB", _zip_bomb, 1, "over the 512 MiB limit",
         group="model files"),
    # Storage faults
    Case("unwritable output directory", lambda w, i: _ids(w, [1]) + [
        "-o", str(w / "no" / "such" / "dir" / "out.fits")], 1,
        "output directory does not exist", group="storage faults"),
    Case("disk full while writing", _with_previous_output, 1, "No space left on device",
         patch=_disk_full, group="storage faults"),
    Case("disk full while writing the resume journal",
         lambda w, i: _ids(w, [1, 2, 3]) + ["--chunk-size", "1"], 1, "No space left on device",
         patch=_journal_fault(errno.ENOSPC, 1), group="storage faults"),
    Case("a batch too large for memory (ONNX Runtime cannot allocate it)",
         lambda w, i: _ids(w, [1, 2]) + ["--batch-size", "100000"], 1,
         "out of memory (ONNX Runtime could not allocate memory for a batch of 2 images)",
         patch=_onnx_out_of_memory, group="storage faults"),
    Case("journal folder turned read-only mid-run",
         lambda w, i: _ids(w, [1, 2, 3]) + ["--chunk-size", "1"], 1, "Read-only file system",
         patch=_journal_fault(errno.EROFS, 2), group="storage faults"),
    # Concurrency and interrupts
    Case("a second run writing the same output", _locked, 1, "another run is writing",
         group="concurrency and interrupts"),
    Case("Ctrl-C during the run", lambda w, i: _ids(w, [1, 2, 3]) + ["--chunk-size", "1"], 130,
         "rerun the same command with --resume", patch=_interrupt_after(1),
         group="concurrency and interrupts"),
    Case("--resume under another --backend", _resume_other_backend, 1,
         "the run differs in backend", group="concurrency and interrupts"),
    # Network
    Case("network down: 200 rows through --source sdss", _network_down, 3, [512] * 200,
         patch=_refused_port, group="network"),
    # Training
    Case("train onto an existing model file", lambda w, i: _labels(w, i, existing=True), 1,
         "exists; pass --overwrite", command="train", group="train"),
    Case("train --classes with a misspelled class",
         lambda w, i: _labels(w, i, classes="spirall,elliptical"), 1,
         "class 'spirall' (did you mean 'spiral'?) is not in the 'train' split",
         command="train", group="train"),
    Case("train on a labels table with no split column (a new survey's labels)",
         lambda w, i: [str(_cat(w, Table({"OBJID": [1, 2], "label": ["spiral", "elliptical"]}),
                                "labels.csv")), "--image-dir", str(i), "-o", str(w / "m.amz")],
         1, "no column 'split' (make one with `astromorph split", command="train",
         group="train"),
    Case("split on a labels table whose ids repeat", lambda w, i: [
        str(_cat(w, Table({"OBJID": [1, 1], "label": ["spiral", "spiral"]}), "labels.csv")),
        "-o", str(w / "out.csv")], 1, "OBJID 1 appears 2 times (rows 0, 1)", command="split",
        group="train"),
    Case("train on labels whose train split holds one class",
         _labels_text("1,spiral,train\n2,spiral,train\n3,spiral,val\n"), 1,
         "needs at least two classes; the 'train' split labels every row 'spiral'",
         command="train", group="train"),
    Case("train on split names spelled TRAIN and validation",
         _labels_text("1,spiral,TRAIN\n2,elliptical,TRAIN\n3,spiral,validation\n"), 1,
         "no rows in split 'train' (did you mean 'TRAIN'?); its 'split' column holds 'TRAIN', "
         "'validation'", command="train", group="train"),
    Case("train on a labels file with a header and no rows", _labels_text(""), 1,
         "labels.csv: the table has no rows (a header only?)", command="train", group="train"),
    Case("train on blank images", _blank_images, 1,
         "split 'train': no usable image for any of its 2 rows (first: 1: 1.jpg: image is blank",
         command="train",
         group="train"),
    Case("train with a batch too large for memory (torch cannot allocate it)",
         lambda w, i: _labels(w, i) + ["--batch-size", "100000"], 1,
         "out of memory (torch could not allocate 646 MiB); lower --batch-size",
         patch=_torch_out_of_memory, command="train", group="train"),
    Case("train with a learning rate that diverges (--lr 1e6)",
         lambda w, i: _labels(w, i) + ["--lr", "1e6"], 1,
         "training diverged in epoch 1", command="train", group="train"),
    Case("train --resume from a damaged checkpoint", _damaged_checkpoint, 1,
         "checkpoint.pt is damaged or not a training checkpoint", command="train",
         group="train"),
    Case("train on labels with one galaxy in both train and val", _labels_text(
        "1,spiral,train\n2,elliptical,train\n1,spiral,val\n3,spiral,val\n"), 0,
        "1 ids are in both 'train' and 'val' (first: 1)", command="train", group="train"),
    Case("train --freeze-backbone without --init (a random backbone kept random)",
         lambda w, i: _labels(w, i) + ["--freeze-backbone"], 1,
         "--freeze-backbone needs --init", command="train", group="train"),
    Case("train --init default --arch efficientnet-g0 (--arch was ignored, and recorded)",
         lambda w, i: _labels(w, i) + ["--init", "default", "--arch", "efficientnet-g0"], 1,
         "--arch efficientnet-g0 with --init: a fine-tuned model keeps the network of",
         command="train", group="train"),
    Case("train on labels whose 18-digit ids were saved as floats",
         _labels_text("587722981742084144.0,spiral,train\n587722981742084145.0,elliptical,"
                      "train\n3,spiral,val\n"), 1,
         "id 5.87723e+17 is a floating-point number too large to hold every digit",
         command="train", group="train"),
    Case("train on a labelled set with a missing image", _labels_missing_image, 0,
         "left out 1 of 3 rows whose image is missing", command="train", group="train"),
    Case("train --pseudo-labels on a folder of mixed-case .Jpg files", _pseudo_mixed_case, 1,
         "no .jpg/.jpeg/.png images in", command="train", group="train"),
    Case("train --extra-labels on a table with none of the training classes",
         _extra_other_classes, 1, "no row of split 'train' has a training class",
         command="train", group="train"),
    Case("kaggle-select on a solutions file with a vote 'n/a'", _kaggle_votes, 0,
         "left out 1 galaxies whose votes are missing, not numbers or negative (first: row 1, "
         "GalaxyID 100023, column Class1.1)", command="kaggle-select", group="train"),
    Case("kaggle-select on a solutions file that lists a galaxy twice",
         lambda w, i: _kaggle_votes(w, i, repeat=True), 1,
         "GalaxyID 100008 appears 2 times (rows 0, 1)", command="kaggle-select", group="train"),
    # Evaluate and compare
    Case("evaluate where no image of the split can be read", lambda w, i: _evaluate(w, i, (
        "--image-dir", str(w))), 1, "none of the 1 'val' rows could be classified",
        command="evaluate", group="evaluate"),
    Case("evaluate on labels of classes the model does not have", lambda w, i: (
        _evaluate_other_classes(w, i)), 1,
        "no 'val' row has a label the model", command="evaluate", group="evaluate"),
    Case("evaluate --json into a folder that does not exist", lambda w, i: _evaluate(w, i, (
        "--json", str(w / "no" / "r.json"))), 1, "output directory does not exist",
        command="evaluate", group="evaluate"),
    Case("compare on labels without a test split", lambda w, i: _compare(w, i), 1,
         "no rows in split 'test'", command="compare", group="compare"),
    Case("compare --seeds 0,0 (one run would count twice in the spread)", lambda w, i: [
        *_compare(w, i)[:-6], "--seeds", "0,0", "--epochs", "1", "-o", str(w / "runs")], 1,
        "--seeds repeats 0", command="compare", group="compare"),
    Case("compare --arch with a size of 0 pixels", lambda w, i: _compare(
        w, i, "efficientnet-g0@0"), 1, "must be a size of 8-1024 pixels", command="compare",
        group="compare"),
]


def _evaluate(work: Path, images: Path, extra: tuple[str, ...]) -> list[str]:
    _labels(work, images)
    args = [str(work / "labels.csv"), "--model", str(CTX["model"]), "--split", "val",
            "--no-timing", "--image-dir", str(images)]
    return args + list(extra)  # a second --image-dir overrides the first


def _evaluate_other_classes(work: Path, images: Path) -> list[str]:
    args = _evaluate(work, images, ())
    (work / "labels.csv").write_text("OBJID,label,split\n1,bar,train\n2,ring,val\n")
    return args


def _compare(work: Path, images: Path, arch: str = "efficientnet-g0") -> list[str]:
    _labels(work, images)
    return [str(work / "labels.csv"), "--image-dir", str(images), "--arch", arch, "--seeds",
            "0", "--epochs", "1", "-o", str(work / "runs")]


def run_case(case: Case, work: Path, images: Path, model: Path, monkeypatch) -> Observed:
    """Run one case through the console entry point in-process; capture what a user sees."""
    CTX.clear()
    CTX.update(model=model, monkeypatch=monkeypatch)
    try:
        args = case.setup(work, images)
        if case.command == "classify":
            if "-o" not in args:
                args += ["-o", str(work / "out.fits")]
            # --image-dir belongs to the Galaxy Zoo source (the default); other sources
            # refuse options that are not theirs.
            defaults = [("--model", str(model))]
            if "--source" not in args:
                defaults.append(("--image-dir", str(images)))
            for option, value in defaults:
                if option not in args:
                    args += [option, value]
            args.append("--no-progress")
        code, text = _invoke([case.command, *args], case.patch, monkeypatch)
    finally:
        for release in CTX.get("cleanup", []):
            release()
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    flags = rows_in = None
    out = work / "out.fits"
    if case.command == "classify" and code in (0, 3) and out.is_file():
        t = read_catalog(out)  # as astromorph reads: a unit outside FITS's list is no error
        flags = [int(v) for v in t["morph_flags"]]
        rows_in = len(read_catalog(args[0]))
    message = lines[-1] if lines else ""
    row_message = next((ln for ln in lines if ln.startswith(("warning: ", "note: "))), "")
    return Observed(code, message, flags, rows_in, "Traceback" in text, row_message)


def _invoke(argv: list[str], patch: Callable | None, monkeypatch) -> tuple[int, str]:
    """``astromorph ARGV`` in this process: (exit status, stderr)."""
    from astro_morph import cli

    if patch:
        patch(monkeypatch)
    err = io.StringIO()
    code = 0
    with monkeypatch.context() as m:
        m.setattr(sys, "argv", ["astromorph", *argv])
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                cli.main()
            except SystemExit as exc:
                code = int(exc.code or 0)
    monkeypatch.undo()
    return code, err.getvalue()


EXIT_CODES = ("Exit status: 0 the output is written (flagged rows included); 1 a user error, "
              "nothing written (an existing output is left as it was); 2 a usage error "
              "(click); 3 the output is written but no row could be classified; 130 "
              "interrupted (finished chunks kept for `--resume`); 141 the reader of stdout "
              "or stderr left before the command finished printing (`| head`): the rest of "
              "its messages were dropped, its work and files are complete.")


def markdown(results: list[tuple[Case, Observed]]) -> str:
    """The docs page: one table per group, one row per case, with what the run did."""
    head = [
        "# Bad input: what `astromorph` does",
        "",
        "Generated by `tests/test_bad_input_matrix.py` from a real run of every case (see",
        "`tests/bad_input_matrix.py`); the test fails if this page and the behaviour differ.",
        "User errors exit 1 with one line naming the file, column or row, and no traceback",
        "(`--debug` shows one). Row problems never stop a run: the row keeps its place with",
        "`morph_flags` set (see `docs/columns.md`) and the rest of the catalog is classified.",
        "",
        EXIT_CODES,
    ]
    groups: dict[str, list[tuple[Case, Observed]]] = {}
    for case, obs in results:
        groups.setdefault(case.group, []).append((case, obs))
    for group, rows in groups.items():
        command = rows[0][0].command
        head += [
            "",
            f"## {group[0].upper() + group[1:]} (`astromorph {command}`)",
            "",
            "| case | exit | rows in / out | morph_flags per row | what the user reads on stderr "
            "(first warning or note; last line) |",
            "|---|---|---|---|---|",
        ]
        for case, obs in rows:
            if obs.flags is not None:
                names = _runs(obs.flags)
                rows_io = f"{obs.rows_in} / {len(obs.flags)}"
            elif case.command == "train" and obs.exit == 0:
                names, rows_io = "-", "model written"
            else:
                names, rows_io = "-", "none written"
            text = f"{obs.row_message}<br>{obs.message}" if obs.row_message else obs.message
            msg = _scrub(text).replace("|", "\\|")
            head.append(f"| {case.name} | {obs.exit} | {rows_io} | {names} | {msg} |")
    return "\n".join(head) + "\n"


def _runs(flags: list[int]) -> str:
    """``0 (ok), 512 (DOWNLOAD_FAILED) x199``: flags per row, repeats counted."""
    parts: list[list] = []
    for f in flags:
        if parts and parts[-1][0] == f:
            parts[-1][1] += 1
        else:
            parts.append([f, 1])
    return ", ".join(f"{f} ({'+'.join(describe_flags(f)) or 'ok'})" + (f" x{n}" if n > 1 else "")
                     for f, n in parts)


def _scrub(text: str) -> str:
    import re

    # Temporary paths, pids and temp-file names differ per run.
    text = re.sub(r"(/private)?/tmp/[^\s'\"]*?/case\d+/images\b", "IMAGES", text)
    text = re.sub(r"(/private)?/tmp/[^\s'\"]*?/case\d+\b", "WORK", text)
    text = re.sub(r"\(pid \d+\)", "(pid N)", text)
    # A trained model's bytes and scores depend on the CPU: keep the line, not the figures.
    text = re.sub(r" \(sha256 [0-9a-f]{64}\): .*$", " (sha256 ...): ...", text)
    return re.sub(r"\.out\.fits\.\w{8}\.fits", ".out.fits.XXXXXXXX.fits", text)
