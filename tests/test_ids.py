"""helpers.ids: one id lookup with the same missing-value rules for every dtype."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from helpers import ids

ARROW = "string[pyarrow]"


def _reference_positions(values, lookup) -> list[int]:
    """Plain-Python reference: first position, -1 for absent or missing values."""
    first: dict = {}
    for i, v in enumerate(lookup):
        if not pd.isna(v) and v not in first:
            first[v] = i
    return [-1 if pd.isna(v) else first.get(v, -1) for v in values]


@pytest.mark.parametrize("make", [
    lambda x: pd.Series(x, dtype=ARROW),
    lambda x: pd.Series(x, dtype=object),
    lambda x: pd.Index(x, dtype=ARROW),
    lambda x: np.array(x, dtype=object),
    lambda x: pa.array(x, type=pa.string()),
    lambda x: pa.chunked_array([pa.array(x[:2]), pa.array(x[2:])]),
])
def test_string_positions_match_the_reference_for_every_container(make):
    values = ["c2", None, "c9", "c1", "c2", "c1"]
    lookup = ["c1", "c2", "c3", None, "c2"]
    got = ids.positions(make(values), make(lookup))
    assert got.dtype == np.int64
    assert got.tolist() == _reference_positions(values, lookup) == [1, -1, -1, 0, 1, 0]
    assert ids.isin(make(values), make(lookup)).tolist() == [True, False, False, True, True, True]


def test_mixed_string_storages_are_compared_as_strings():
    values = pd.Series(["a", "b", "x"], dtype=ARROW)
    assert ids.positions(values, ["b", "a"]).tolist() == [1, 0, -1]
    assert ids.positions(["b", "a"], values).tolist() == [1, 0]


@pytest.mark.parametrize("values,lookup", [
    ([3, 1, 7, 3], [1, 2, 3, 3]),
    ([3.0, np.nan, 1.5], [1.5, np.nan, 3.0]),
    (pd.to_datetime(["2025-01-02", None, "2025-01-01"]), pd.to_datetime(["2025-01-01", None])),
    (pd.array([5, None, 2], dtype="Int64"), pd.array([2, None, 5, 2], dtype="Int64")),
])
def test_numbers_and_timestamps_follow_the_same_rules(values, lookup):
    got = ids.positions(values, lookup)
    assert got.tolist() == _reference_positions(list(values), list(lookup))
    assert (got[np.asarray(pd.isna(values))] == -1).all()  # missing never matches missing


def test_strings_never_match_numbers():
    assert ids.positions(pd.Series(["1", "2"], dtype=ARROW), [1, 2]).tolist() == [-1, -1]
    assert ids.positions([1, 2], pd.Series(["1", "2"], dtype=ARROW)).tolist() == [-1, -1]


def test_empty_inputs():
    assert ids.positions([], ["a"]).tolist() == []
    assert ids.positions(pd.Series(["a", None], dtype=ARROW), []).tolist() == [-1, -1]
    assert ids.isin(pd.Series([], dtype=ARROW), pd.Series([], dtype=ARROW)).dtype == bool


def test_random_ids_agree_with_pandas_get_indexer():
    rng = np.random.default_rng(7)
    lookup = pd.Series([f"C{i:07d}" for i in rng.permutation(5000)], dtype=ARROW)
    values = pd.Series([f"C{i:07d}" for i in rng.integers(0, 8000, 20000)], dtype=ARROW)
    expected = pd.Index(lookup.astype(object)).get_indexer(values.astype(object))
    np.testing.assert_array_equal(ids.positions(values, lookup), expected)
    np.testing.assert_array_equal(ids.isin(values, lookup), values.isin(lookup).to_numpy())


def test_as_arrow_strings_keeps_missing_values():
    arr = ids.as_arrow_strings(pd.Series(["a", None], dtype=object))
    assert arr.type == pa.large_string() and arr.to_pylist() == ["a", None]
    arr = ids.as_arrow_strings(pd.Series(["a", None], dtype=ARROW))
    assert arr.to_pylist() == ["a", None]


@pytest.mark.parametrize("make", [
    lambda x: pd.Series(x, dtype=object),
    lambda x: pd.Series(pd.array(x, dtype=ARROW)),
    # several Arrow chunks: the codes of every chunk must refer to one dictionary
    lambda x: pd.Series(pd.arrays.ArrowStringArray(pa.chunked_array([x[:3], x[3:5], x[5:]]))),
])
def test_dictionary_codes_number_values_by_first_appearance(make):
    values = ["b", "a", None, "b", "c", "a", None, "d"]
    codes, uniques = ids.dictionary_codes(make(values))
    ref_codes, ref_uniques = pd.factorize(pd.Series(values, dtype=object), sort=False)
    assert codes.dtype == np.int64
    np.testing.assert_array_equal(codes, ref_codes)  # -1 where missing
    uniq = uniques.to_pylist() if isinstance(uniques, pa.Array) else list(uniques)
    assert uniq == list(ref_uniques) == ["b", "a", "c", "d"]


def test_dictionary_codes_of_numbers_and_empty_input():
    codes, uniques = ids.dictionary_codes(pd.Series([7, 3, 7]))
    assert codes.tolist() == [0, 1, 0] and list(uniques) == [7, 3]
    codes, _ = ids.dictionary_codes(pd.Series([], dtype=ARROW))
    assert codes.tolist() == [] and codes.dtype == np.int64
