"""``astromorph classify`` end to end, as a user runs it."""

import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from click.testing import CliRunner

from astro_morph.cli import cli, default_output
from conftest import shared_data


def run(*args, **kw):
    """Run the real console script (user errors must not print tracebacks)."""
    exe = shutil.which("astromorph")
    cmd = [exe] if exe else [sys.executable, "-m", "astro_morph"]
    return subprocess.run(cmd + [str(a) for a in args], capture_output=True, text=True, **kw)


def _client(name, package):
    exe = shutil.which(name)
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is not installed; .ci/run installs Debian's {package}")
        pytest.skip(f"{name} not installed (apt-get install {package})")
    return exe


def fitsverify_errors(path):
    """HEASARC fitsverify must report 0 errors."""
    out = subprocess.run([_client("fitsverify", "fitsverify"), "-q", str(path)],
                         capture_output=True, text=True)
    # -q prints one line: "verification OK: ..." or "... N warnings and M errors".
    assert "verification OK" in out.stdout or " 0 error" in out.stdout, out.stdout
    return out.stdout


def stilts_rows(path):
    """STILTS (Starlink's Java table library) must load the file; returns its row count."""
    out = subprocess.run([_client("stilts", "stilts"), "tpipe", f"in={path}", "omode=count"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    # "columns: 12   rows: 651"
    return int(out.stdout.split("rows:")[1].split()[0])


@pytest.mark.slow
def test_galaxyzoo_val_split_to_fits(tiny_model, tmp_path):
    data = shared_data("galaxyzoo")
    labels = Table.read(data / "labels.csv", format="ascii.csv")
    val = labels[labels["split"] == "val"]
    val["note"] = [f"row {i}" for i in range(len(val))]
    cat = tmp_path / "val.fits"
    val.write(cat)
    before = cat.read_bytes()
    out = tmp_path / "val_morph.fits"
    res = run("classify", cat, "--image-dir", data / "images", "--model", tiny_model,
              "-o", out)
    assert res.returncode == 0, res.stderr
    assert cat.read_bytes() == before
    t = Table.read(out)
    assert len(t) == len(val) == 651
    assert list(t["GalaxyID"]) == list(val["GalaxyID"]) and list(t["note"]) == list(val["note"])
    classes = ["elliptical", "spiral", "edge_on", "merger", "dont_know"]
    assert t.colnames == val.colnames + ["morph_label"] + [f"morph_prob_{c}" for c in classes] \
        + ["morph_flags"]
    assert (t["morph_flags"] == 0).all()
    probs = np.stack([t[f"morph_prob_{c}"] for c in classes], 1)
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)
    assert set(t["morph_label"]) <= set(classes)
    hdr = fits.getheader(out, 1)
    assert hdr["MORPHSHA"] == __import__("hashlib").sha256(tiny_model.read_bytes()).hexdigest()
    assert hdr["MORPHMOD"] == "tiny-g0" and hdr["MORPHVER"]
    fitsverify_errors(out)
    assert stilts_rows(out) == 651
    assert "651 rows" in res.stderr


def test_bad_rows_are_flagged_not_lost(tiny_model, image_dir, tmp_path):
    (image_dir / "3.jpg").write_bytes(b"\xff\xd8 corrupt")
    cat = tmp_path / "c.ecsv"
    Table({"GalaxyID": [1, 2, 3, 404, 5], "mag": [1.0, 2, 3, 4, 5]}).write(cat)
    out = tmp_path / "out.fits"
    res = CliRunner().invoke(cli, ["classify", str(cat), "--image-dir", str(image_dir),
                                   "--model", str(tiny_model), "-o", str(out)])
    assert res.exit_code == 0, res.output
    t = Table.read(out)
    assert list(t["GalaxyID"]) == [1, 2, 3, 404, 5]
    assert list(t["morph_flags"]) == [0, 0, 2, 1, 0]
    assert t["morph_label"].mask[2] and np.isnan(np.ma.filled(t["morph_prob_spiral"], np.nan)[3])
    assert "row 2:" in res.output and "row 3:" in res.output and "2 flagged" in res.output
    fitsverify_errors(out)
    assert stilts_rows(out) == 5


@pytest.mark.parametrize("fmt", ["ecsv", "vot", "parquet", "csv"])
def test_output_formats_and_torch_backend(tiny_model, image_dir, tmp_path, fmt):
    cat = tmp_path / "c.fits"
    Table({"GalaxyID": [1, 2]}).write(cat)
    out = tmp_path / f"o.{fmt}"
    res = CliRunner().invoke(cli, ["classify", str(cat), "--image-dir", str(image_dir),
                                   "--model", str(tiny_model), "--backend", "torch",
                                   "--centring", "recentre", "-o", str(out)])
    assert res.exit_code == 0, res.output
    t = Table.read(out)
    assert len(t) == 2 and "morph_dx" in t.colnames and t["morph_label"][0]
    if fmt == "parquet":  # other readers than astropy's own
        import pyarrow.parquet as pq

        assert pq.read_table(out).column("morph_flags").to_pylist() == [0, 0]
    if fmt == "vot":  # Debian's STILTS 3.4 has no Parquet reader; pyarrow checks that one
        _check_votable_provenance(out, tiny_model)
        assert stilts_rows(out) == 2
    if fmt != "csv":  # a probability is a pure number: no unit, not an empty unit string
        assert t["morph_prob_spiral"].unit is None


def test_a_closed_log_reader_does_not_cost_the_output(tiny_model, image_dir, tmp_path):
    """`astromorph classify ... 2>&1 | head -1`: the reader leaves at the first warning. The
    run had ended there, its rows done but the output unwritten; now the messages go to
    /dev/null, the output is written, and the status is the shell's 141 for a closed pipe."""
    cat = tmp_path / "c.fits"
    Table({"GalaxyID": list(range(1, 41))}).write(cat)  # 35 rows with no image: warnings
    out = tmp_path / "o.fits"
    proc = subprocess.Popen(
        [sys.executable, "-m", "astro_morph", "classify", str(cat), "--image-dir",
         str(image_dir), "--model", str(tiny_model), "-o", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    proc.stderr.close()
    assert proc.wait(timeout=300) == 141
    t = Table.read(out)
    assert len(t) == 40 and int((t["morph_flags"] == 0).sum()) == 5
    assert not (tmp_path / "o.fits.partial").exists()


def test_the_inputs_comments_are_kept_whole(tiny_model, image_dir, tmp_path):
    """An ECSV written by hand may hold one string as meta['comments']; it had been split
    into its characters, one comment each, before the flag bits."""
    cat = tmp_path / "c.ecsv"
    t = Table({"GalaxyID": [1, 2]})
    t.meta["comments"] = "selected by hand"
    t.write(cat)
    out = tmp_path / "o.ecsv"
    res = CliRunner().invoke(cli, ["classify", str(cat), "--image-dir", str(image_dir),
                                   "--model", str(tiny_model), "-o", str(out)])
    assert res.exit_code == 0, res.output
    comments = Table.read(out).meta["comments"]
    assert comments[0] == "selected by hand"
    assert comments[1].startswith("morph_flags bit 1:")


def test_classifying_again_keeps_the_earlier_runs_provenance(tiny_model, image_dir, tmp_path):
    """A second run (another --prefix) had overwritten the first run's MORPH* keys, and an
    old MORPHTTA stayed as if the new run had used it: the new keys now describe the new
    run only, the old ones stay as 'earlier KEY=value' comments."""
    cat = tmp_path / "c.fits"
    Table({"GalaxyID": [1, 2]}).write(cat)
    base = ["classify", "--image-dir", str(image_dir), "--model", str(tiny_model)]
    first, second = tmp_path / "o1.fits", tmp_path / "o2.ecsv"
    res = CliRunner().invoke(cli, base + [str(cat), "-o", str(first), "--tta"])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(cli, base + [str(first), "-o", str(second), "--prefix", "m2_"])
    assert res.exit_code == 0, res.output
    old, new = Table.read(first).meta, Table.read(second).meta
    assert new["MORPHPFX"] == "m2_" and "MORPHTTA" not in new
    assert f"earlier MORPHTTA={old['MORPHTTA']}" in new["comments"]
    assert "earlier MORPHPFX=morph_" in new["comments"]
    assert f"earlier MORPHSHA={old['MORPHSHA']}" in new["comments"]
    assert "m2_flags bit 1: image missing" in new["comments"]


def _check_votable_provenance(out, model):
    """Provenance keywords and flag bits travel as INFO elements; the file is valid."""
    import hashlib

    from astropy.io.votable import parse

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any VOTable spec warning fails
        vot = parse(out, verify="exception")
    infos = {}
    for info in vot.resources[0].infos:
        infos.setdefault(info.name, []).append(info.value)
    assert infos["MORPHSHA"] == [hashlib.sha256(model.read_bytes()).hexdigest()]
    assert infos["MORPHBKD"] == ["torch"] and infos["MORPHCEN"] == ["recentre"]
    assert "morph_flags bit 1: image missing" in infos["comment"]
    field = {f.name: f for f in vot.get_first_table().fields}["morph_prob_spiral"]
    assert field.unit is None


@pytest.mark.parametrize("setup,args,message", [
    ("missing-column", [], "no column 'GalaxyID' (did you mean 'galaxyid'?)"),
    ("unreadable", [], "cannot read catalog"),
    ("empty", [], "has no rows"),
    ("zero-bytes", [], "is empty (0 bytes)"),
    ("ok", ["--model", "nope.amz"], "model file not found: nope.amz"),
    ("ok", ["--model", "nope"], "unknown model 'nope'"),
    ("ok", ["-o", "{cat}"], "is the input catalog"),
    ("ok", ["--source", "sdsss"], "unknown source 'sdsss'"),
])
def test_user_errors_are_one_line(tiny_model, image_dir, tmp_path, setup, args, message):
    cat = tmp_path / "c.fits"
    if setup == "missing-column":
        Table({"galaxyid": [1]}).write(cat)
    elif setup == "unreadable":
        cat.write_bytes(b"x" * 100)
    elif setup == "empty":
        Table({"GalaxyID": np.zeros(0, int)}).write(cat)
    elif setup == "zero-bytes":
        cat.write_bytes(b"")
    else:
        Table({"GalaxyID": [1]}).write(cat)
    args = [a.format(cat=cat) for a in args]
    if "--model" not in args:
        args += ["--model", str(tiny_model)]
    res = run("classify", cat, "--image-dir", image_dir, *args)
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), res.stderr
    assert message in lines[0]
    assert "Traceback" not in res.stderr


@pytest.mark.parametrize("name, default", [
    ("c.fits", "c_morph.fits"), ("c.FITS.gz", "c_morph.FITS.gz"), ("c.fits.bz2", "c_morph.fits"),
    ("c.csv.gz", "c_morph.csv"), ("c.vot.xz", "c_morph.vot"), ("c.tbl", "c_morph.ecsv"),
    ("c.tsv.gz", "c_morph.ecsv"), ("c.txt", "c_morph.txt"), ("hats_dir", "hats_dir_morph")])
def test_default_output_is_a_format_that_is_written(name, default):
    assert default_output(Path("d") / name) == Path("d") / default


def test_existing_output_needs_overwrite(tiny_model, image_dir, tmp_path):
    cat = tmp_path / "c.fits"
    Table({"GalaxyID": [1]}).write(cat)
    out = default_output(cat)
    assert out.name == "c_morph.fits"
    args = ["classify", str(cat), "--image-dir", str(image_dir), "--model", str(tiny_model)]
    assert CliRunner().invoke(cli, args).exit_code == 0
    again = run(*args)
    assert again.returncode == 1 and "exists; pass --overwrite" in again.stderr
    assert run(*args, "--overwrite").returncode == 0


def test_in_place_rewrites_the_catalog_and_keeps_the_rest_of_the_file(tiny_model, image_dir,
                                                                       tmp_path):
    """Only when asked (--in-place), atomically, keeping a FITS file's primary header; a
    file the rewrite would shrink (a second table, a VOTable) is refused and left as it was."""
    from astropy.io import fits

    base = ["--image-dir", str(image_dir), "--model", str(tiny_model)]
    cat = tmp_path / "c.fits"
    t = Table({"GalaxyID": [1, 2, 404]})
    fits.HDUList([fits.PrimaryHDU(header=fits.Header([("SURVEY", "SDSS DR7")])),
                  fits.table_to_hdu(t)]).writeto(cat)
    refused = run("classify", cat, "-o", cat, "--overwrite", *base)
    assert refused.returncode == 1 and "modifies only with --in-place" in refused.stderr
    done = run("classify", cat, "--in-place", *base)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir() if p != image_dir) == ["c.fits"]  # no journal
    with fits.open(cat) as hdul:
        assert len(hdul) == 2 and hdul[0].header["SURVEY"] == "SDSS DR7"
    out = Table.read(cat)
    assert list(out["GalaxyID"]) == [1, 2, 404] and list(out["morph_flags"]) == [0, 0, 1]
    assert out.meta["MORPHSRC"] == "galaxyzoo"
    # A second table in the file, a VOTable, -o elsewhere: refused, the file untouched.
    two = tmp_path / "two.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.table_to_hdu(t), fits.table_to_hdu(t)]).writeto(two)
    vot = tmp_path / "c.vot"
    t.write(vot, format="votable")
    for path, says in ((two, "holds more than its catalog table (HDU 2 (BinTableHDU))"),
                       (vot, "is a VOTable, whose resources")):
        before = path.read_bytes()
        res = run("classify", path, "--in-place", *base)
        assert res.returncode == 1 and says in res.stderr, res.stderr
        assert path.read_bytes() == before
    res = run("classify", vot, "--in-place", "-o", tmp_path / "x.fits", *base)
    assert res.returncode == 1 and "--in-place writes CATALOG itself: leave out -o" in res.stderr
    csv = tmp_path / "c.csv"
    t.write(csv)
    assert run("classify", csv, "--in-place", *base).returncode == 0
    assert "morph_label" in Table.read(csv).colnames


def test_column_clash_is_refused(tiny_model, image_dir, tmp_path):
    cat = tmp_path / "c.fits"
    Table({"GalaxyID": [1], "MORPH_LABEL": ["x"]}).write(cat)
    res = run("classify", cat, "--image-dir", image_dir, "--model", tiny_model)
    assert res.returncode == 1 and "--prefix" in res.stderr
    res = run("classify", cat, "--image-dir", image_dir, "--model", tiny_model,
              "--prefix", "am_")
    assert res.returncode == 0, res.stderr
    assert "am_label" in Table.read(default_output(cat)).colnames


def test_models_command_prints_family_and_paper():
    res = CliRunner().invoke(cli, ["models"])
    assert res.exit_code == 0
    assert "efficientnet-g3" in res.output and "2.17M" in res.output and "MACs" in res.output


def test_export_onnx(tiny_model, tmp_path):
    import onnx

    out = tmp_path / "m.onnx"
    res = CliRunner().invoke(cli, ["export-onnx", str(tiny_model), "-o", str(out)])
    assert res.exit_code == 0, res.output
    proto = onnx.load(out)
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["name"] == '"tiny-g0"' and "elliptical" in meta["class_names"]
    assert float(meta["crop_fraction"]) == 200 / 424  # how to crop, for tools without us
    res = CliRunner().invoke(cli, ["export-onnx", str(tiny_model), "-o", str(tmp_path / "m.amz")])
    assert res.exit_code == 0
    # A mistyped folder is refused, as by every other command, not created.
    res = CliRunner().invoke(cli, ["export-onnx", str(tiny_model), "-o",
                                   str(tmp_path / "no" / "m.amz")])
    assert res.exit_code == 1 and not (tmp_path / "no").exists()
    # A registered name, as --model takes: the shipped default as a bare ONNX file.
    res = CliRunner().invoke(cli, ["export-onnx", "default", "-o", str(tmp_path / "d.onnx")])
    assert res.exit_code == 0, res.output
    meta = {p.key: p.value for p in onnx.load(tmp_path / "d.onnx").metadata_props}
    assert meta["name"] == '"gz1-efficientnet-g3"'


def test_gallery_draws_classified_rows(tiny_model, image_dir, tmp_path):
    cat = tmp_path / "c.fits"
    Table({"GalaxyID": [1, 2, 404]}).write(cat)
    out = tmp_path / "o.fits"
    base = ["--image-dir", str(image_dir)]
    assert CliRunner().invoke(cli, ["classify", str(cat), "--model", str(tiny_model), "-o",
                                    str(out), *base]).exit_code == 0
    png = tmp_path / "g.png"
    res = CliRunner().invoke(cli, ["gallery", str(out), "--png", str(png), "--sort",
                                   "-confidence", *base])
    assert res.exit_code == 0, res.output
    assert png.read_bytes()[:4] == b"\x89PNG"
    res = run("gallery", out, "--png", png, "--label", "nonexistent", *base)
    assert res.returncode == 1 and "no classified rows" in res.stderr
    assert "the catalog's labels: " in res.stderr  # what it could have asked for
    # The wrong folder: nothing to draw, said so (it had drawn a grid of empty panels).
    res = run("gallery", out, "--png", tmp_path / "w.png", "--image-dir", tmp_path)
    assert res.returncode == 1 and "none of the 2 cutouts to draw could be read" in res.stderr
    assert not (tmp_path / "w.png").exists()
    # Against known classes: only the disagreements, counted.
    t = Table.read(out)
    t["truth"] = [t["morph_label"][0], "not-a-class", "x"]  # row 2 (404) is unclassified
    t.write(tmp_path / "t.fits")
    res = run("gallery", tmp_path / "t.fits", "--png", png, "--truth-column", "truth",
              "--only-wrong", *base)
    assert res.returncode == 0 and "1 of the 1 rows that disagree with 'truth'" in res.stderr
    res = run("gallery", tmp_path / "t.fits", "--png", png, "--only-wrong", *base)
    assert res.returncode == 1 and "--only-wrong needs --truth-column" in res.stderr
    # Some unreadable: drawn empty, with a warning naming the first.
    (image_dir / "1.jpg").rename(image_dir / "1.moved")
    res = run("gallery", out, "--png", png, *base)
    assert res.returncode == 0 and "1 of 2 cutouts could not be read" in res.stderr
    res = run("gallery", cat, "--png", png, *base)
    assert res.returncode == 1 and "classify output" in res.stderr


@pytest.mark.slow
def test_sigkill_then_resume_gives_the_clean_result(tiny_model, tmp_path):
    import signal
    import time

    data = shared_data("galaxyzoo")
    labels = Table.read(data / "labels.csv", format="ascii.csv")
    cat = tmp_path / "val.ecsv"
    labels[labels["split"] == "val"].write(cat)
    args = ["classify", cat, "--image-dir", data / "images", "--model", tiny_model,
            "--chunk-size", "40", "--workers", "1"]
    clean = tmp_path / "clean.fits"
    assert run(*args, "-o", clean).returncode == 0
    out = tmp_path / "out.fits"
    journal = tmp_path / "out.fits.partial"
    exe = shutil.which("astromorph")
    proc = subprocess.Popen([exe or sys.executable] + ([] if exe else ["-m", "astro_morph"])
                            + [str(a) for a in args] + ["-o", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and len(list(journal.glob("chunk-*.npz"))) < 3:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len(list(journal.glob("chunk-*.npz")))
    assert 3 <= done < 17 and not out.exists()
    again = run(*args, "-o", out)
    assert again.returncode == 1 and "--resume" in again.stderr
    assert run(*args, "-o", out, "--resume").returncode == 0
    a, b = Table.read(clean), Table.read(out)
    assert a.colnames == b.colnames and len(a) == len(b) == 651
    for name in a.colnames:
        assert np.array_equal(np.ma.filled(a[name]), np.ma.filled(b[name])), name
    assert not journal.exists()


def test_resume_refuses_a_different_run(tiny_model, image_dir, tmp_path):
    cat = tmp_path / "c.fits"
    Table({"GalaxyID": [1, 2]}).write(cat)
    (tmp_path / "c_morph.fits.partial").mkdir()
    (tmp_path / "c_morph.fits.partial" / "run.json").write_text('{"model": "other"}')
    res = run("classify", cat, "--image-dir", image_dir, "--model", tiny_model, "--resume")
    assert res.returncode == 1 and "cannot resume" in res.stderr and "model" in res.stderr


def test_many_flagged_rows_print_ten_warnings_and_a_count(tmp_path):
    """A long run stays readable: the first 10 row warnings, then one line counting the rest,
    before the summary."""
    Table({"GalaxyID": np.arange(13)}).write(tmp_path / "cat.csv")
    (tmp_path / "images").mkdir()
    r = run("classify", tmp_path / "cat.csv", "--image-dir", tmp_path / "images",
            "-o", tmp_path / "out.fits")
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 3, r.stderr
    assert sum(line.startswith("warning: row ") for line in lines) == 10
    assert lines[-3] == "warning: ... 3 more flagged rows"
    assert lines[-2].startswith("wrote ") and lines[-2].endswith("13 rows, 0 classified cleanly, "
                                                                 "13 flagged")
    assert lines[-1].startswith("Error: no row was classified (all 13 flagged")


def test_every_command_counts_the_warnings_past_the_tenth(capsys):
    """train and compare use the same handler: their summary names what was counted."""
    import logging

    from astro_morph.cli import row_warnings

    with row_warnings("warnings"):
        for i in range(12):
            logging.getLogger("astro_morph.training.data").warning("split 'train': left out %d", i)
    err = capsys.readouterr().err.splitlines()
    assert err[9] == "warning: split 'train': left out 9"
    assert err[10:] == ["warning: ... 2 more warnings"]


def test_a_damaged_journal_chunk_is_classified_again(tiny_model, image_dir, tmp_path,
                                                      monkeypatch, caplog):
    """Chunks are renamed into place whole, but a disk fault or a cut-short copy can still
    damage one: --resume redoes its rows (with a warning) instead of ending in a traceback."""
    import astro_morph
    from astro_morph import pipeline

    cat = Table({"GalaxyID": [1, 2, 3, 4, 5, 1]})
    kw = dict(image_dir=image_dir, model=tiny_model, id_column="GalaxyID", chunk_size=2,
              progress=False)
    clean = astro_morph.classify(cat, **kw)
    real, done = pipeline._classify_chunk, []

    def classify_then_interrupt(*args, **kwargs):
        if len(done) == 2:
            raise KeyboardInterrupt
        done.append(1)
        return real(*args, **kwargs)

    journal = tmp_path / "out.partial"
    monkeypatch.setattr(pipeline, "_classify_chunk", classify_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        astro_morph.classify(cat, journal_dir=journal, **kw)
    monkeypatch.setattr(pipeline, "_classify_chunk", real)
    chunks = sorted(journal.glob("chunk-*.npz"))
    assert len(chunks) == 2
    chunks[1].write_bytes(chunks[1].read_bytes()[:40])  # a copy cut short
    resumed = astro_morph.classify(cat, journal_dir=journal, resume=True, **kw)
    assert "unreadable" in caplog.text and chunks[1].name in caplog.text
    for name in clean.colnames:
        assert np.array_equal(np.ma.filled(clean[name]), np.ma.filled(resumed[name])), name


def test_repeated_model_is_an_ensemble_not_the_last_one(tiny_model, image_dir, tmp_path):
    """``--model a --model b`` had kept only b, silently; it now averages the members as
    ``evaluate`` does. Two copies of one model give its own probabilities."""
    cat = tmp_path / "cat.ecsv"
    Table({"GalaxyID": [1, 2, 3]}).write(cat)
    twin = tmp_path / "twin.amz"
    shutil.copy(tiny_model, twin)
    base = ["classify", str(cat), "--image-dir", str(image_dir), "--model", str(tiny_model)]
    assert CliRunner().invoke(cli, base + ["-o", str(tmp_path / "one.ecsv")]).exit_code == 0
    res = CliRunner().invoke(cli, base + ["--model", str(twin), "-o", str(tmp_path / "two.ecsv")])
    assert res.exit_code == 0, res.output
    one, two = Table.read(tmp_path / "one.ecsv"), Table.read(tmp_path / "two.ecsv")
    assert two.meta["MORPHMOD"] == "+".join([one.meta["MORPHMOD"]] * 2)  # the bundle names
    np.testing.assert_allclose(two["morph_prob_spiral"], one["morph_prob_spiral"], rtol=1e-6)
    res = CliRunner().invoke(cli, base + ["--model", str(twin), "--dask", "local:1", "-o",
                                          str(tmp_path / "three.ecsv")])
    assert "--dask takes one --model" in str(res.exception)
