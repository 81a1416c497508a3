"""Property-based: any table, any column types and masks, goes through classify intact."""

import numpy as np
import pytest
from astropy.table import MaskedColumn, Table
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from astro_morph.flags import MorphFlag

IDS = st.one_of(st.sampled_from([1, 2, 3, 4, 5]), st.just(404), st.none())
DTYPES = {"int": st.integers(-2**40, 2**40), "float": st.floats(allow_nan=True, width=64),
          "str": st.text("abcxyz é", max_size=6), "bool": st.booleans()}


@st.composite
def catalogs(draw):
    n = draw(st.integers(1, 8))
    ids = draw(st.lists(IDS, min_size=n, max_size=n))
    cols = {"GalaxyID": MaskedColumn([0 if i is None else i for i in ids],
                                     mask=[i is None for i in ids])}
    for k in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(sorted(DTYPES)))
        values = draw(st.lists(DTYPES[kind], min_size=n, max_size=n))
        mask = draw(st.lists(st.booleans(), min_size=n, max_size=n))
        cols[f"c{k}_{kind}"] = MaskedColumn(values, mask=mask)
    return Table(cols)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    from PIL import Image

    from conftest import make_galaxy_image

    d = tmp_path_factory.mktemp("images")
    for i in range(1, 6):
        Image.fromarray(make_galaxy_image(48, seed=i)).save(d / f"{i}.jpg")
    return d


def _same(a, b):
    am, bm = np.ma.getmaskarray(a), np.ma.getmaskarray(b)
    if not np.array_equal(am, bm):
        return False
    av, bv = np.asarray(a)[~am], np.asarray(b)[~bm]
    if av.dtype.kind == "f":
        return np.array_equal(av, bv, equal_nan=True)
    return list(av) == list(bv)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(table=catalogs())
def test_every_row_and_column_survives(table, images, tiny_model, tmp_path_factory):
    import astro_morph

    out = astro_morph.classify(table, image_dir=images, model=tiny_model, progress=False)
    assert len(out) == len(table)
    assert out.colnames[: len(table.colnames)] == table.colnames
    for name in table.colnames:
        assert _same(out[name], table[name]), name
    ids = np.ma.filled(table["GalaxyID"], -1)
    expected = np.where(ids == 404, int(MorphFlag.IMAGE_MISSING),
                        np.where(ids == -1, int(MorphFlag.BAD_ID), 0))
    assert list(out["morph_flags"]) == list(expected)
    ok = expected == 0
    probs = np.stack([np.ma.filled(out[c], np.nan) for c in out.colnames
                      if c.startswith("morph_prob_")], 1)
    assert np.isfinite(probs[ok]).all() and np.isnan(probs[~ok]).all()
    # ... and through a file: Parquet keeps values, types and masks exactly (text formats
    # cannot: astropy's ECSV reader strips blanks and reads "" as masked).
    path = tmp_path_factory.mktemp("rt") / "out.parquet"
    from astro_morph.catalog_io import read_catalog, write_catalog

    write_catalog(out, path)
    back = read_catalog(path)
    for name in out.colnames:
        assert _same(back[name], out[name]), name
