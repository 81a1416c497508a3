"""Dask scale-out: a LocalCluster on loopback gives the single-process result row for row."""

import os

import numpy as np
import pytest
from astropy.table import Table

pytest.importorskip("dask.distributed", reason="dask extra not installed")


@pytest.fixture(scope="module")
def client():
    from astro_morph.scaleout import connect

    c = connect("local:2")
    yield c
    cluster = c.cluster
    c.close()
    cluster.close()


def _catalog(image_dir):
    ids = [1, 2, 3, 4, 5, 404, 2, 1, 3, 5, 4, 2, 1, 999, 3, 4, 5]
    return Table({"GalaxyID": ids, "row": np.arange(len(ids))})


@pytest.mark.slow
def test_dask_matches_single_process_row_for_row(client, image_dir, tiny_model, tmp_path):
    import astro_morph
    from astro_morph.scaleout import classify_dask

    cat = _catalog(image_dir)
    kw = dict(image_dir=image_dir, chunk_size=4, batch_size=4)
    single = astro_morph.classify(cat, model=tiny_model, progress=False, **kw)
    dist = classify_dask(cat, client, model=tiny_model, partition_rows=8, **kw)
    assert dist.colnames == single.colnames and len(dist) == len(single)
    for name in single.colnames:
        a, b = single[name], dist[name]
        assert np.array_equal(np.ma.getmaskarray(a), np.ma.getmaskarray(b)), name
        if a.dtype.kind == "f":  # bitwise: same batches, same kernels
            assert np.array_equal(np.ma.filled(a, 0), np.ma.filled(b, 0), equal_nan=True), name
        else:
            fill = "" if a.dtype.kind == "U" else 0
            assert list(np.ma.filled(a, fill)) == list(np.ma.filled(b, fill)), name
    assert list(dist["morph_flags"][[5, 13]]) == [1, 1]
    # Partitioned Parquet: the workers write, nothing is gathered; a rerun skips done parts.
    parts = classify_dask(cat, client, model=tiny_model, partition_rows=8,
                          output_dir=tmp_path / "parts", **kw)
    assert [p.rsplit("/", 1)[1] for p in parts] == [f"part-0000{i}.parquet" for i in range(3)]
    from astropy.table import vstack

    back = vstack([Table.read(p) for p in parts], metadata_conflicts="silent")
    assert list(back["row"]) == list(cat["row"])
    stamp = [os.stat(p).st_mtime_ns for p in parts]
    classify_dask(cat, client, model=tiny_model, partition_rows=8,
                  output_dir=tmp_path / "parts", **kw)
    assert [os.stat(p).st_mtime_ns for p in parts] == stamp


@pytest.mark.slow
def test_cli_dask_local(image_dir, tiny_model, tmp_path):
    from click.testing import CliRunner

    from astro_morph.cli import cli

    cat = tmp_path / "c.fits"
    _catalog(image_dir).write(cat)
    res = CliRunner().invoke(cli, ["classify", str(cat), "--image-dir", str(image_dir),
                                   "--model", str(tiny_model), "--dask", "local:2",
                                   "--partition-rows", "5", "-o", str(tmp_path / "o.fits")])
    assert res.exit_code == 0, res.output
    out = Table.read(tmp_path / "o.fits")
    assert list(out["row"]) == list(range(17)) and (out["morph_flags"] != 0).sum() == 2
    res = CliRunner().invoke(cli, ["classify", str(cat), "--image-dir", str(image_dir),
                                   "--model", str(tiny_model), "--dask", "local:1", "--resume",
                                   "-o", str(tmp_path / "p.fits")])
    assert res.exit_code != 0 and "--resume is for single-process runs" in str(res.exception)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:The inplace keyword")  # inside lsdb/nested-pandas
def test_lsdb_catalog_gets_the_same_columns(image_dir, tiny_model):
    lsdb = pytest.importorskip("lsdb", reason="lsdb not installed (optional: pip install lsdb)")
    import astro_morph
    from astro_morph.scaleout import classify_lsdb

    cat = _catalog(image_dir)
    rng = np.random.default_rng(0)
    cat["ra"] = rng.uniform(0, 360, len(cat))
    cat["dec"] = rng.uniform(-60, 60, len(cat))
    hats = lsdb.from_dataframe(cat.to_pandas(), ra_column="ra", dec_column="dec")
    got = classify_lsdb(hats, model=tiny_model, image_dir=image_dir).compute()
    want = astro_morph.classify(cat, model=tiny_model, image_dir=image_dir, progress=False)
    got = got.sort_values("row")
    assert list(got["row"]) == list(want["row"])
    assert list(got["morph_flags"]) == list(want["morph_flags"])
    ok = np.asarray(want["morph_flags"]) == 0
    assert list(got["morph_label"][ok]) == list(np.asarray(want["morph_label"])[ok])
    np.testing.assert_allclose(got["morph_prob_spiral"][ok], want["morph_prob_spiral"][ok],
                               rtol=1e-5)


def test_a_worker_uses_its_own_threads_not_every_core(tiny_model, monkeypatch):
    from astro_morph import scaleout

    monkeypatch.setattr(scaleout, "_MODELS", {})
    assert scaleout._worker_threads() is None  # not inside a Dask worker here
    monkeypatch.setattr(scaleout, "_worker_threads", lambda: 1)
    assert scaleout._model(str(tiny_model), "onnx", "cpu", None).streams == 1


@pytest.mark.parametrize(("address", "says"), [
    ("nonsense", "missing port number"), ("local:abc", "worker count"),
    ("local:0", "worker count")])
def test_bad_dask_addresses_are_one_line(address, says):
    import dask

    from astro_morph.errors import UserError
    from astro_morph.scaleout import _default_client, connect

    before = dask.config.get("scheduler", None), _default_client()
    with pytest.raises(UserError, match=f"--dask '{address}': .*{says}"):
        connect(address)
    # A Client that failed to connect had made itself dask's default; left open, any later
    # compute in the process (an LSDB catalog's) asked for it ("no Client active").
    assert (dask.config.get("scheduler", None), _default_client()) == before


def _hats_catalog(lsdb, image_dir, path, seed):
    """The test catalog at random sky positions, written as a HATS catalog at ``path``."""
    cat = _catalog(image_dir)
    rng = np.random.default_rng(seed)
    cat["ra"], cat["dec"] = rng.uniform(0, 360, len(cat)), rng.uniform(-60, 60, len(cat))
    hats = lsdb.from_dataframe(cat.to_pandas(), ra_column="ra", dec_column="dec")
    hats.write_catalog(path, progress_bar=False)
    return cat


def test_cli_classifies_a_hats_catalog_into_a_hats_catalog(image_dir, tiny_model, tmp_path):
    """`astromorph classify <HATS folder>` runs LSDB's partitions and writes a HATS catalog
    (it had been API-only); bad options are one line before any partition runs."""
    lsdb = pytest.importorskip("lsdb", reason="lsdb not installed (optional: pip install lsdb)")
    from click.testing import CliRunner

    import astro_morph
    from astro_morph.cli import cli
    from astro_morph.errors import UserError

    cat = _hats_catalog(lsdb, image_dir, tmp_path / "in", seed=1)
    out = tmp_path / "out"
    base = ["classify", str(tmp_path / "in"), "--image-dir", str(image_dir), "--model",
            str(tiny_model), "-o", str(out)]
    res = CliRunner().invoke(cli, base + ["--id-column", "Nope"])
    assert isinstance(res.exception, UserError) and "no column 'Nope'" in str(res.exception)
    res = CliRunner().invoke(cli, base + ["--resume"])
    assert "--resume: no unfinished run at" in str(res.exception)
    for where, says in ((tmp_path / "in" / "sub", "is the input catalog or inside it"),
                        (tmp_path / "out.fits", "a HATS catalog is written as a HATS catalog"),
                        (tmp_path / "no" / "out", "output directory does not exist")):
        res = CliRunner().invoke(cli, base[:-1] + [str(where)])
        assert says in str(res.exception), res.exception
    res = CliRunner().invoke(cli, base)
    assert res.exit_code == 0, (res.output, res.exception)
    want = astro_morph.classify(cat, model=tiny_model, image_dir=image_dir, progress=False)
    n_bad = int((want["morph_flags"] != 0).sum())
    assert f"{len(cat)} rows, {len(cat) - n_bad} classified cleanly, {n_bad} flagged" in res.output
    got = lsdb.open_catalog(out).compute(progress_bar=False).sort_values("row")
    assert list(got["row"]) == list(want["row"])
    assert list(got["morph_flags"]) == list(want["morph_flags"])
    np.testing.assert_allclose(got["morph_prob_spiral"], want["morph_prob_spiral"], rtol=1e-5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images", "in", "out"]  # no partial
    properties = (out / "out" / "hats.properties").read_text()
    assert f"MORPHCLS={want.meta['MORPHCLS']}" in properties
    assert f"MORPHSHA={want.meta['MORPHSHA']}" in properties
    res = CliRunner().invoke(cli, base)
    assert "exists; pass --overwrite" in str(res.exception)
    # The output folder reads back as one table with its provenance, e.g. for its gallery.
    from astro_morph.catalog_io import read_catalog

    back = read_catalog(out)
    assert len(back) == len(cat) and back.meta["MORPHSHA"] == want.meta["MORPHSHA"]
    res = CliRunner().invoke(cli, ["gallery", str(out), "--png", str(tmp_path / "g.png"),
                                   "--image-dir", str(image_dir)])
    assert res.exit_code == 0, (res.output, res.exception)
    assert f"of the {len(cat) - n_bad} rows classified" in res.output
    # A centring step that reports offsets adds its dx/dy columns to every partition too
    # (the partitions' declared columns had lacked them: a traceback).
    pytest.importorskip("skimage", reason="recentre needs scikit-image")
    res = CliRunner().invoke(cli, base[:-1] + [str(tmp_path / "rc"), "--centring", "recentre"])
    assert res.exit_code == 0, (res.output, res.exception)
    assert {"morph_dx", "morph_dy"} <= set(lsdb.open_catalog(tmp_path / "rc").columns)
    # Classified again (another prefix, no TTA, the first with it): LSDB carried the input's
    # properties over, so the first run's MORPHTTA had passed for the second run's. The new
    # keys describe the new run; the old ones stay as earlier_MORPH*.
    res = CliRunner().invoke(cli, base[:1] + [str(tmp_path / "rc")] + base[2:-1]
                             + [str(tmp_path / "tta"), "--tta", "--prefix", "t_"])
    assert res.exit_code == 0, (res.output, res.exception)
    res = CliRunner().invoke(cli, base[:1] + [str(tmp_path / "tta")] + base[2:-1]
                             + [str(tmp_path / "again"), "--prefix", "m2_"])
    assert res.exit_code == 0, (res.output, res.exception)
    again = read_catalog(tmp_path / "again")
    assert again.meta["MORPHPFX"] == "m2_" and "MORPHTTA" not in again.meta
    assert any(c.startswith("earlier MORPHTTA=D4") for c in again.meta["comments"])
    assert "earlier MORPHPFX=t_" in again.meta["comments"]
    assert "MORPHTTA" in read_catalog(tmp_path / "tta").meta  # the input is left as it was


def test_an_interrupted_hats_run_resumes_and_skips_the_written_partitions(
        image_dir, tiny_model, tmp_path, monkeypatch):
    """A failed HATS run keeps its partitions in <out>.partial; --resume writes only the
    rest, refuses another model, and the result equals an uninterrupted run."""
    lsdb = pytest.importorskip("lsdb", reason="lsdb not installed (optional: pip install lsdb)")
    import dask
    from click.testing import CliRunner

    import astro_morph.api
    from astro_morph.cli import cli
    from astro_morph.errors import UserError

    _hats_catalog(lsdb, image_dir, tmp_path / "in", seed=2)
    n_parts = len(lsdb.open_catalog(tmp_path / "in").get_healpix_pixels())
    base = ["classify", str(tmp_path / "in"), "--image-dir", str(image_dir), "--model",
            str(tiny_model)]
    assert CliRunner().invoke(cli, base + ["-o", str(tmp_path / "whole")]).exit_code == 0

    real, calls, failing = astro_morph.api.classify, [], [True]

    def flaky(table, **kw):  # the third partition fails, as a full disk would
        calls.append(len(table))
        if failing[0] and len(table) and len([n for n in calls if n]) == 3:
            raise UserError("no space left (simulated)")
        return real(table, **kw)

    monkeypatch.setattr(astro_morph.api, "classify", flaky)
    # In this process, where the patch is (the module's LocalCluster may be dask's default).
    monkeypatch.setitem(dask.config.config, "scheduler", "threads")
    out = ["-o", str(tmp_path / "out")]
    res = CliRunner().invoke(cli, base + out)
    assert "no space left (simulated); the partitions written so far are kept in" in \
        str(res.exception)
    assert not (tmp_path / "out").exists() and (tmp_path / "out.partial").is_dir()
    res = CliRunner().invoke(cli, base + out)
    assert "holds an unfinished run; pass --resume" in str(res.exception)
    res = CliRunner().invoke(cli, base + out + ["--resume", "--prefix", "m2_"])
    assert "the run differs in prefix" in str(res.exception)
    # The same path holding another catalog (rewritten in place) is not resumed into.
    import shutil

    shutil.move(tmp_path / "in", tmp_path / "in-kept")
    _hats_catalog(lsdb, image_dir, tmp_path / "in", seed=3)
    res = CliRunner().invoke(cli, base + out + ["--resume"])
    assert "the run differs in input" in str(res.exception)
    shutil.rmtree(tmp_path / "in")
    shutil.move(tmp_path / "in-kept", tmp_path / "in")
    calls.clear()
    failing[0] = False
    res = CliRunner().invoke(cli, base + out + ["--resume"])
    assert res.exit_code == 0, (res.output, res.exception)
    assert 0 < len([n for n in calls if n]) < n_parts  # the written partitions were skipped
    want = lsdb.open_catalog(tmp_path / "whole").compute(progress_bar=False).sort_values("row")
    got = lsdb.open_catalog(tmp_path / "out").compute(progress_bar=False).sort_values("row")
    assert list(got["row"]) == list(want["row"])
    np.testing.assert_array_equal(got["morph_prob_spiral"], want["morph_prob_spiral"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images", "in", "out", "whole"]


def test_a_workers_user_error_is_returned_and_raised_once_by_the_client(
        client, image_dir, tiny_model, monkeypatch):
    """A UserError in a partition (here --device cuda on a machine without one) had been
    raised in the worker, which logs it with its traceback (on the user's terminal, for a
    local cluster) before the client printed the one-line error: it is returned instead."""
    from astro_morph import scaleout
    from astro_morph.errors import UserError

    def refuse(*args):
        raise UserError("--device cuda asked for, but torch sees no CUDA GPU here")

    monkeypatch.setattr(scaleout, "_classify_partition", refuse)
    got = scaleout._run_partition(Table({"GalaxyID": [1]}), 0, "m", "torch", "cuda", 8,
                                  None, {})
    assert isinstance(got, scaleout._Refused) and got.startswith("--device cuda")
    monkeypatch.undo()

    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("the worker-side refusal needs a machine without CUDA")
    with pytest.raises(UserError, match="^--device cuda asked for, but torch sees no CUDA"):
        scaleout.classify_dask(_catalog(image_dir), client, model=tiny_model, backend="torch",
                               device="cuda", partition_rows=5, image_dir=image_dir)


@pytest.mark.filterwarnings("ignore:The 'mode.chained_assignment' option")  # lsdb's import
def test_a_local_cluster_without_the_gpu_asked_for_is_refused_before_it_starts(
        image_dir, tiny_model, tmp_path, monkeypatch):
    """`--dask local:N --backend torch --device cuda` on a machine without CUDA: the workers
    would run here, so the device is checked here, before any of them starts (catalog file
    and HATS folder alike)."""
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("needs a machine without CUDA")
    from click.testing import CliRunner

    from astro_morph import scaleout
    from astro_morph.cli import cli
    from astro_morph.errors import UserError

    def no_cluster(address):
        raise AssertionError(f"a cluster was started for {address}")

    monkeypatch.setattr(scaleout, "connect", no_cluster)
    cat = tmp_path / "c.fits"
    _catalog(image_dir).write(cat)
    inputs = [cat]
    try:  # a HATS folder too, where lsdb is installed
        import lsdb

        _hats_catalog(lsdb, image_dir, tmp_path / "hats", seed=1)
        inputs.append(tmp_path / "hats")
    except ImportError:
        pass
    for path, out in zip(inputs, ["out.fits", "hats-out"], strict=False):
        res = CliRunner().invoke(cli, ["classify", str(path), "--image-dir", str(image_dir),
                                       "--model", str(tiny_model), "--dask", "local:2",
                                       "--backend", "torch", "--device", "cuda",
                                       "-o", str(tmp_path / out)])
        assert isinstance(res.exception, UserError), (path, res.output)
        assert str(res.exception).startswith("--device cuda asked for, but torch sees no CUDA")


def test_which_addresses_start_a_local_cluster():
    from astro_morph.scaleout import is_local

    assert all(is_local(a) for a in (None, "local", "local:3"))
    assert not any(is_local(a) for a in ("localhost:8786", "tcp://10.0.0.1:8786", "locals"))
