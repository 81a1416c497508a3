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
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.table import Table

from astro_morph.flags import describe_flags


@dataclass
class Case:
    name: str
    setup: Callable[[Path, Path], list[str]]  # (workdir, image_dir) -> extra CLI args
    expect_exit: int
    expect: str | list[int]  # error substring, or morph_flags per row
    patch: Callable | None = None  # applied (with a MonkeyPatch) around the run


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


CASES: list[Case] = [
    Case("0-byte catalog", _zero_bytes, 1, "is empty (0 bytes)"),
    Case("truncated FITS catalog", _truncated, 1, "cannot read catalog"),
    Case("not a FITS file (.fits suffix)", _not_fits, 1, "cannot read catalog"),
    Case("misspelled id column", lambda w, i: [str(_cat(w, Table({"GalaxyId": [1]})))], 1,
         "did you mean 'GalaxyId'?"),
    Case("empty catalog (0 rows)", lambda w, i: _ids(w, np.zeros(0, int)), 1, "has no rows"),
    Case("duplicate ids", lambda w, i: _ids(w, [1, 1, 2]), 0, [0, 0, 0]),
    Case("missing image", lambda w, i: _ids(w, [1, 404]), 0, [0, 1]),
    Case("corrupt JPEG", _corrupt, 0, [2, 0]),
    Case("greyscale JPEG", _image("20.jpg", "L"), 0, [0, 0]),
    Case("CMYK JPEG", _image("21.jpg", "CMYK"), 0, [0, 0]),
    Case("16-bit PNG", _image("22.png", "I;16"), 0, [0, 0]),
    Case("huge image (8000x8000 px)", _image("23.png", "huge", (8000, 8000)), 0, [2, 0]),
    Case("path column outside --image-dir", lambda w, i: [
        str(_cat(w, Table({"path": ["1.jpg", "../../etc/passwd", "/etc/hostname"]}))),
        "--path-column", "path"], 0, [0, 8, 8]),
    Case("masked id", lambda w, i: [str(_cat(w, Table(
        {"GalaxyID": np.ma.array([1, 0], mask=[False, True])})))], 0, [0, 4]),
    Case("NaN and out-of-range RA/Dec", lambda w, i: _coords(
        w, [150.0, np.nan, 400.0, 150.0], [2.0, 2.0, 2.0, 95.0]), 0, [0, 16, 16, 16]),
    Case("sexagesimal RA/Dec strings", lambda w, i: _coords(
        w, ["10h00m00s", "10:00:00.0", "ten"], ["+02d00m00s", "+02:00:00", "two"]),
        0, [0, 0, 16]),
    Case("position outside the mosaic", lambda w, i: _coords(w, [150.0, 151.0], [2.0, 2.0]),
         0, [0, 32]),
    Case("unwritable output directory", lambda w, i: _ids(w, [1]) + [
        "-o", str(w / "no" / "such" / "dir" / "out.fits")], 1,
        "output directory does not exist"),
    Case("disk full while writing", _with_previous_output, 1, "No space left on device",
         patch=_disk_full),
]


def run_case(case: Case, work: Path, images: Path, model: Path, monkeypatch) -> Observed:
    """Run one case through the console entry point in-process; capture what a user sees."""
    from astro_morph import cli

    args = case.setup(work, images)
    if "-o" not in args:
        args += ["-o", str(work / "out.fits")]
    argv = ["astromorph", "classify", *args, "--image-dir", str(images), "--model", str(model),
            "--no-progress"]
    if case.patch:
        case.patch(monkeypatch)
    err = io.StringIO()
    code = 0
    with monkeypatch.context() as m:
        m.setattr(sys, "argv", argv)
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                cli.main()
            except SystemExit as exc:
                code = int(exc.code or 0)
    monkeypatch.undo()
    text = err.getvalue()
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    flags = rows_in = None
    out = work / "out.fits"
    if code == 0 and out.is_file():
        t = Table.read(out)
        flags = [int(v) for v in t["morph_flags"]]
        rows_in = len(Table.read(args[0]))
    message = lines[-1] if lines else ""
    row_message = next((ln for ln in lines if ln.startswith("warning: ")), "")
    return Observed(code, message, flags, rows_in, "Traceback" in text, row_message)


def markdown(results: list[tuple[Case, Observed]]) -> str:
    """The docs page: one row per case, with what the run did."""
    head = [
        "# Bad input: what `astromorph classify` does",
        "",
        "Generated by `tests/test_bad_input_matrix.py` from a real run of every case (see",
        "`tests/bad_input_matrix.py`); the test fails if this page and the behaviour differ.",
        "User errors exit 1 with one line naming the file, column or row, and no traceback",
        "(`--debug` shows one). Row problems never stop a run: the row keeps its place with",
        "`morph_flags` set (see `docs/columns.md`) and the rest of the catalog is classified.",
        "",
        "| case | exit | rows in / out | morph_flags per row | what the user reads on stderr "
        "(first row warning; last line) |",
        "|---|---|---|---|---|",
    ]
    for case, obs in results:
        if obs.flags is not None:
            names = ", ".join(
                f"{f} ({'+'.join(describe_flags(f)) or 'ok'})" for f in obs.flags)
            rows = f"{obs.rows_in} / {len(obs.flags)}"
        else:
            names, rows = "-", "none written (an existing output is left as it was)"
        text = f"{obs.row_message}<br>{obs.message}" if obs.row_message else obs.message
        msg = _scrub(text).replace("|", "\\|")
        head.append(f"| {case.name} | {obs.exit} | {rows} | {names} | {msg} |")
    return "\n".join(head) + "\n"


def _scrub(text: str) -> str:
    import re

    # Temporary paths differ per run.
    text = re.sub(r"(/private)?/tmp/\S*?/images\b", "IMAGES", text)
    return re.sub(r"(/private)?/tmp/\S*?/(cat\.fits|out\.fits|no/such/dir)", r"WORK/\2", text)
