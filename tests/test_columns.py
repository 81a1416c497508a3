"""The output schema read back: class names and probabilities of a classify output."""

import numpy as np
import pytest
from astropy.table import Table

from astro_morph.columns import add_columns, classes_of, provenance_meta, read_probabilities
from astro_morph.errors import UserError

CLASSES = ["elliptical", "dont know", "spiral"]  # "dont know" becomes morph_prob_dont_know


def _classified(prefix="morph_"):
    probs = np.array([[0.7, 0.1, 0.2], [np.nan] * 3, [0.1, 0.2, 0.7]])
    flags = np.array([0, 1, 0])
    meta = provenance_meta("m", "0" * 64, "torch", "galaxyzoo", "none", CLASSES, "0")
    return add_columns(Table({"id": [1, 2, 3]}), CLASSES, probs, flags, prefix=prefix,
                       meta=meta)


@pytest.mark.parametrize("suffix", [".fits", ".ecsv"])
def test_classes_come_back_as_the_model_spelt_them(tmp_path, suffix):
    path = tmp_path / f"out{suffix}"
    _classified().write(path)
    table = Table.read(path)
    assert classes_of(table) == CLASSES
    probs = read_probabilities(table, classes_of(table))
    assert np.allclose(probs[[0, 2]], [[0.7, 0.1, 0.2], [0.1, 0.2, 0.7]])
    assert np.isnan(probs[1]).all()


def test_without_the_meta_the_column_names_are_used():
    table = _classified(prefix="gz_")
    table.meta.clear()
    assert classes_of(table, "gz_") == ["elliptical", "dont_know", "spiral"]


def test_meta_that_does_not_match_the_columns_is_not_trusted():
    table = _classified()
    table.meta["MORPHCLS"] = "elliptical,merger"
    assert classes_of(table) == ["elliptical", "dont_know", "spiral"]


def test_a_table_with_no_probability_columns_is_one_line():
    with pytest.raises(UserError, match=r"no morph_prob_<class> columns"):
        classes_of(Table({"id": [1]}))
