import os
from pathlib import Path

import numpy as np
import pytest
from astropy import units as u
from astropy.table import MaskedColumn, Table

from astro_morph.catalog_io import guess_format, read_catalog, write_catalog
from astro_morph.errors import UserError


def _table():
    t = Table()
    t["objid"] = np.array([587722952767439450, 2], dtype=np.int64)
    t["ra"] = [10.5, 20.25] * u.deg
    t["name"] = ["M31", "NGC 891"]
    t["z"] = MaskedColumn([0.1, 0.0], mask=[False, True])
    return t


@pytest.mark.parametrize("suffix", [".fits", ".ecsv", ".vot", ".parquet", ".csv"])
def test_round_trip(tmp_path, suffix):
    path = tmp_path / f"cat{suffix}"
    write_catalog(_table(), path)
    back = read_catalog(path)
    assert list(back["objid"]) == [587722952767439450, 2]
    assert list(back["name"]) == ["M31", "NGC 891"]
    if suffix != ".csv":
        assert back["ra"].unit == u.deg


def test_never_replaces_without_overwrite(tmp_path):
    path = tmp_path / "c.fits"
    write_catalog(_table(), path)
    before = path.read_bytes()
    with pytest.raises(UserError, match="exists; pass --overwrite"):
        write_catalog(_table()[:1], path)
    assert path.read_bytes() == before
    write_catalog(_table()[:1], path, overwrite=True)
    assert len(read_catalog(path)) == 1


def test_failed_write_keeps_previous_output(tmp_path, monkeypatch):
    path = tmp_path / "c.ecsv"
    write_catalog(_table(), path)
    before = path.read_bytes()

    def boom(self, *a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Table, "write", boom)
    with pytest.raises(UserError, match="No space left on device"):
        write_catalog(_table(), path, overwrite=True)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["c.ecsv"]  # no temp file left


@pytest.mark.parametrize("content,match", [
    (b"", "is empty"),
    (b"SIMPLE  = T this is not fits", "cannot read catalog"),
])
def test_bad_catalogs(tmp_path, content, match):
    path = tmp_path / "bad.fits"
    path.write_bytes(content)
    with pytest.raises(UserError, match=match):
        read_catalog(path)


@pytest.mark.parametrize("name, fmt", [
    ("cat.csv.gz", "ascii.csv"), ("cat.ecsv.bz2", "ascii.ecsv"), ("cat.vot.xz", "votable"),
    ("cat.tbl", "ascii.ipac"), ("cat.tsv", "ascii.tab"), ("cat.tbl.gz", "ascii.ipac")])
def test_reads_compressed_ipac_and_tsv(tmp_path, name, fmt):
    """IRSA's IPAC tables, TSV and compressed text/VOTables are read as such (astropy
    undoes the compression); the values and IPAC's units survive."""
    import bz2
    import gzip
    import lzma

    t = _table()
    t.remove_column("z")  # TSV and CSV have no mask, which this test is not about
    plain = tmp_path / name.split(".")[0]
    t.write(plain, format=fmt)
    opener = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}.get(Path(name).suffix)
    path = tmp_path / name
    if opener:
        with opener(path, "wb") as out:
            out.write(plain.read_bytes())
    else:
        plain.rename(path)
    assert guess_format(path) == fmt
    back = read_catalog(path)
    assert list(back["objid"]) == [587722952767439450, 2]
    assert list(back["name"]) == ["M31", "NGC 891"]
    if fmt == "ascii.ipac":
        assert back["ra"].unit == u.deg


@pytest.mark.parametrize("name, match", [
    ("out.tbl", "read, not written; write ECSV instead \\(-o out.ecsv\\)"),
    ("out.tsv", "read, not written"),
    ("out.csv.gz", "only .fits.gz is written; write out.csv"),
    ("out.parquet.gz", "only .fits.gz is written")])
def test_read_only_outputs_refused(tmp_path, name, match):
    with pytest.raises(UserError, match=match):
        write_catalog(_table(), tmp_path / name)
    with pytest.raises(UserError, match="read, not written"):
        guess_format("out.x", "ipac", "--output-format")
    with pytest.raises(UserError, match="cannot tell the format"):
        guess_format("cat.parquet.gz")  # Parquet compresses inside; astropy cannot undo gzip


def test_missing_and_unknown(tmp_path):
    with pytest.raises(UserError, match="catalog not found"):
        read_catalog(tmp_path / "nope.fits")
    with pytest.raises(UserError, match="cannot tell the format"):
        guess_format("cat.txt")
    assert guess_format("cat.txt", "ecsv") == "ascii.ecsv"
    assert guess_format("a.FITS.gz") == "fits"


def test_unwritable_directory(tmp_path):
    with pytest.raises(UserError, match="output directory does not exist"):
        write_catalog(_table(), tmp_path / "nope" / "c.fits")
    if os.geteuid() == 0:
        pytest.skip("root can write to read-only directories")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    with pytest.raises(UserError, match="cannot write"):
        write_catalog(_table(), ro / "c.fits")


def test_outputs_get_the_umask_mode_not_the_temp_file_mode(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        path = write_catalog(Table({"a": [1]}), tmp_path / "o.fits")
    finally:
        os.umask(old)
    assert oct(path.stat().st_mode & 0o777) == oct(0o644)


@pytest.mark.parametrize("suffix", [".fits", ".ecsv", ".parquet", ".vot"])
def test_a_replaced_output_keeps_its_mode_and_a_read_only_one_is_refused(tmp_path, suffix):
    """The rename would replace a file whatever its mode: a group-only catalog must not come
    back world-readable, and one marked read-only (no write bit: root too) is left alone."""
    path = tmp_path / f"o{suffix}"
    write_catalog(Table({"a": [1]}), path)
    path.chmod(0o640)
    write_catalog(Table({"a": [2]}), path, overwrite=True)
    assert oct(path.stat().st_mode & 0o777) == oct(0o640)
    assert list(read_catalog(path)["a"]) == [2]
    path.chmod(0o444)
    with pytest.raises(UserError, match=r"cannot write .*: it is read-only \(mode 444\); "
                                        r"make it writable to replace it"):
        write_catalog(Table({"a": [3]}), path, overwrite=True)
    path.chmod(0o644)
    assert list(read_catalog(path)["a"]) == [2]
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no temp file left


def test_outputs_that_are_not_regular_files_are_refused_not_replaced(tmp_path):
    """The atomic rename would replace a FIFO, a device node or a link to one (/dev/null,
    /dev/stdout) with a plain file; found when `evaluate --json /dev/full` turned the
    machine's /dev/full into a JSON file."""
    import os
    import stat

    from astro_morph.errors import UserError
    from astro_morph.fileio import atomic_write_text, require_output_dir

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    link = tmp_path / "out.json"
    link.symlink_to(fifo)
    for path in (fifo, link, tmp_path):
        with pytest.raises(UserError, match="is not a regular file"):
            require_output_dir(path)
        with pytest.raises(UserError, match="is not a regular file"):
            atomic_write_text(path, "{}")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and link.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json", "pipe"]  # no temp left
    atomic_write_text(tmp_path / "ok.json", "{}")  # a plain file is still written
    assert (tmp_path / "ok.json").read_text() == "{}"


def test_masked_booleans_are_not_written_to_fits_as_true(tmp_path):
    """astropy writes a masked FITS logical as True: an unknown would read back as a yes."""
    from astro_morph.catalog_io import check_writable

    t = Table({"id": [1, 2], "barred": MaskedColumn([False, False], mask=[False, True])})
    with pytest.raises(UserError, match=r"column 'barred' row 1 holds a blank \(masked\) "
                                        r"true/false value, which FITS would write as True"):
        check_writable(t, tmp_path / "o.fits")
    for suffix in (".ecsv", ".vot", ".parquet"):  # these keep the blank
        write_catalog(t, tmp_path / f"o{suffix}")
        assert read_catalog(tmp_path / f"o{suffix}")["barred"].mask.tolist() == [False, True]
    t["barred"].mask = False
    check_writable(t, tmp_path / "o.fits")


def test_fits_column_names_that_cannot_be_written_are_one_line_errors(tmp_path):
    from astro_morph.catalog_io import check_writable

    long = Table({"x" * 75: [1]})
    with pytest.raises(UserError, match=r"'x+' cannot be a FITS column name: too long"):
        check_writable(long, tmp_path / "o.fits")
    with pytest.raises(UserError, match=r"'Hα_label' \(from --prefix\) .*printable ASCII"):
        check_writable(Table({"id": [1]}), tmp_path / "o.fits", new_columns=("Hα_label",))
    check_writable(long, tmp_path / "o.ecsv")  # other formats take them
    check_writable(Table({"x" * 68: [1]}), tmp_path / "o.fits")  # the longest that fits
    # Past the check (a plugin's long class name), astropy's assertion at write time is
    # still one line, and nothing is left at the output path.
    with pytest.raises(UserError, match="cannot write .* as fits: Column name must"):
        write_catalog(long, tmp_path / "o.fits")
    assert not (tmp_path / "o.fits").exists()


def test_fits_names_differing_only_in_case_are_warned_of(tmp_path, caplog):
    """FITS compares column names case-insensitively: 'ra' beside 'RA' is written (astropy
    keeps both) but fitsverify warns and other readers may take one for the other."""
    from astro_morph.catalog_io import check_writable

    table = Table({"ra": [1.0], "RA": [2.0]})
    with caplog.at_level("WARNING", logger="astro_morph"):
        check_writable(table, tmp_path / "o.ecsv")
        assert caplog.text == ""
        check_writable(table, tmp_path / "o.fits")
    assert "columns 'ra' and 'RA' differ only in case" in caplog.text


def test_a_hats_catalogs_provenance_reads_back_in_any_case(tmp_path):
    """MORPH* keys in hats.properties become the table's meta (upper case, as a FITS header
    gives them), also when another tool or a hand edit wrote them in lower case; an earlier
    run's earlier_MORPH* keys become 'earlier KEY=value' comments."""
    lsdb = pytest.importorskip("lsdb", reason="lsdb not installed (optional: pip install lsdb)")
    import pandas as pd

    frame = pd.DataFrame({"ra": [10.0, 200.0], "dec": [5.0, -30.0], "objid": [1, 2]})
    lsdb.from_dataframe(frame, ra_column="ra", dec_column="dec").write_catalog(
        tmp_path / "cat", progress_bar=False,
        addl_hats_properties={"MORPHMOD": "gz1-efficientnet-g3", "morphcls": "a,b",
                              "earlier_morphtta": "D4", "owner": "not ours"})
    back = read_catalog(tmp_path / "cat")
    assert sorted(back["objid"]) == [1, 2]
    assert back.meta["MORPHMOD"] == "gz1-efficientnet-g3" and back.meta["MORPHCLS"] == "a,b"
    assert back.meta["comments"] == ["earlier MORPHTTA=D4"]
    assert "owner" not in back.meta and "OWNER" not in back.meta
