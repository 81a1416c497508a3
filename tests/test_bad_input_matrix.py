"""Every bad-input case behaves as documented in docs/bad_input.md (which this test checks)."""

import os
import stat
from pathlib import Path

import pytest
from astropy.table import Table

from tests.bad_input_matrix import CASES, markdown, run_case

DOC = Path(__file__).resolve().parent.parent / "docs" / "bad_input.md"


def _images(tmp: Path) -> Path:
    from PIL import Image

    from conftest import make_galaxy_image

    d = tmp / "images"
    d.mkdir()
    for i in (1, 2, 3):
        Image.fromarray(make_galaxy_image(64, seed=i)).save(d / f"{i}.jpg")
    return d


@pytest.mark.slow
def test_bad_input_matrix(tiny_model, tmp_path):
    results = []
    for k, case in enumerate(CASES):
        work = tmp_path / f"case{k}"
        work.mkdir()
        mp = pytest.MonkeyPatch()
        try:
            obs = run_case(case, work, _images(work), tiny_model, mp)
        finally:
            mp.undo()
        results.append((case, obs))
        assert not obs.traceback, case.name
        assert obs.exit == case.expect_exit, (case.name, obs)
        if isinstance(case.expect, str) and obs.exit == 0:  # done, with a warning
            assert case.expect in obs.row_message, (case.name, obs)
        elif isinstance(case.expect, str):
            assert case.expect in obs.message, (case.name, obs.message)
            assert obs.message.startswith("Error: ") or obs.exit == 130, (case.name, obs)
        else:
            assert obs.flags == case.expect and obs.rows_in == len(obs.flags), (case.name, obs)
        if obs.exit == 1 and case.command == "classify" and case.group != "storage faults":
            assert not (work / "out.fits").exists(), case.name
        if case.name == "disk full while writing":  # the previous output is intact
            assert (work / "out.fits").read_bytes() == b"previous output"
            assert not [p for p in work.iterdir() if p.name.startswith(".out.fits")]
        if "journal" in case.name or case.name == "Ctrl-C during the run":
            # The chunks finished before the fault are kept for --resume.
            assert sorted(p.name for p in (work / "out.fits.partial").iterdir())[:1] == [
                "chunk-000000000000.npz"], case.name
        if case.name == "temp file left by a killed final write":
            assert not (work / ".out.fits.k3x9_q2z.fits").exists()
        if case.name.startswith("unfinished run") and obs.exit == 0:
            assert not (work / "out.fits.partial").exists()
        if case.name.startswith("-o naming a FIFO"):  # still a FIFO, not a plain file
            assert stat.S_ISFIFO(os.lstat(work / "pipe.fits").st_mode)
        if case.name.startswith("--overwrite onto an output marked read-only"):
            assert "morph_label" not in Table.read(work / "kept.fits").colnames
        if case.name == "train onto an existing model file":
            assert (work / "m.amz").read_bytes() == b"a model someone trained for a week"
        assert not (work / ".out.fits.lock").exists(), case.name
    page = markdown(results)
    if os.environ.get("ASTROMORPH_WRITE_DOCS"):
        DOC.write_text(page)
    assert DOC.read_text() == page, "docs/bad_input.md is stale: rerun with ASTROMORPH_WRITE_DOCS=1"
