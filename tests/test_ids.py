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


# -- dictionary-encoded columns (Dataset.read(..., dictionary=[...])) ----------------------------
def _dictionary_variants(values: list) -> list:
    """The same strings as dictionary-encoded columns of several shapes: encoded by
    ``dictionary_encoded``; split into chunks with *different* dictionaries; and with a
    dictionary in reverse order (codes not in order of first appearance)."""
    enc = ids.dictionary_encoded(pd.Series(values, dtype=ARROW))
    half = len(values) // 2
    split = pa.chunked_array([pa.array(values[:half]).dictionary_encode(),
                              pa.array(values[half:]).dictionary_encode()])
    distinct = sorted({v for v in values if v is not None}, reverse=True)
    rev = pa.DictionaryArray.from_arrays(
        pa.array([None if v is None else distinct.index(v) for v in values], type=pa.int32()),
        pa.array(distinct, type=pa.string()))
    return [enc, pd.Series(pd.arrays.ArrowExtensionArray(split)),
            pd.Series(pd.arrays.ArrowExtensionArray(pa.chunked_array([rev])))]


def test_dictionary_encoded_keeps_values_and_leaves_other_dtypes_alone():
    values = ["c2", None, "c9", "c1", "c2", "c1"]
    enc = ids.dictionary_encoded(pd.Series(values, dtype=ARROW, name="customer_id"))
    assert ids.is_dictionary(enc) and enc.name == "customer_id"
    assert enc.astype(object).where(enc.notna(), None).tolist() == values
    assert enc.isna().tolist() == [v is None for v in values]
    nums = pd.Series([3, 1, 3])
    assert not ids.is_dictionary(ids.dictionary_encoded(nums))
    assert ids.dictionary_encoded(nums).tolist() == [3, 1, 3]
    assert ids.dictionary_encoded(enc) is enc


@pytest.mark.parametrize("variant", [0, 1, 2])
def test_dictionary_columns_give_the_same_answers_as_plain_strings(variant):
    rng = np.random.default_rng(variant)
    values = [None if rng.random() < 0.1 else f"c{int(rng.integers(0, 40))}"
              for _ in range(500)]
    lookup = [f"c{i}" for i in rng.permutation(60)[:30]] + ["c1", None]
    plain = pd.Series(values, dtype=ARROW)
    col = _dictionary_variants(values)[variant]
    assert ids.positions(col, lookup).tolist() == _reference_positions(values, lookup)
    assert ids.isin(col, lookup).tolist() == ids.isin(plain, lookup).tolist()
    # a dictionary column as the lookup is read as its values
    assert ids.positions(pd.Series(lookup, dtype=ARROW), col).tolist() == \
        _reference_positions(lookup, values)
    codes, uniq = ids.dictionary_codes(col)
    ref_codes, ref_uniq = pd.factorize(pd.Series(values, dtype=object))
    assert codes.tolist() == ref_codes.tolist()
    assert uniq.to_pylist() == list(ref_uniq)
    scodes, suniq = ids.sorted_codes(col)
    ref_codes, ref_uniq = pd.factorize(pd.Series(values, dtype=object), sort=True)
    assert scodes.tolist() == ref_codes.tolist()
    assert suniq.to_pylist() == list(ref_uniq)
    assert ids.as_arrow_strings(col).to_pylist() == values


def test_filtered_dictionary_column_is_renumbered_by_first_appearance():
    enc = ids.dictionary_encoded(pd.Series(["a", "b", "c", "b", "a"], dtype=ARROW))
    sub = enc.iloc[[2, 3, 2]]  # keeps the full dictionary; "c" now comes first
    codes, uniq = ids.dictionary_codes(sub)
    assert codes.tolist() == [0, 1, 0] and uniq.to_pylist() == ["c", "b"]
    head = enc.iloc[:2]  # first-appearance order holds; unused values are dropped
    codes, uniq = ids.dictionary_codes(head)
    assert codes.tolist() == [0, 1] and uniq.to_pylist() == ["a", "b"]


def test_first_appearance_codes_match_factorize():
    rng = np.random.default_rng(3)
    for codes in (rng.integers(-1, 50, 1000), np.arange(10), np.array([4, 4, -1, 2, 4, 0])):
        want = pd.factorize(np.where(codes < 0, np.nan, codes))[0]
        assert ids.first_appearance_codes(codes).tolist() == want.tolist()
    assert ids.first_appearance_codes(np.zeros(0, dtype=np.int64)).tolist() == []


def test_sorted_codes_of_numbers_match_factorize_sort():
    values = pd.Series([30, 10, np.nan, 20, 10])
    codes, uniq = ids.sorted_codes(values)
    ref_codes, ref_uniq = pd.factorize(values, sort=True)
    assert codes.tolist() == ref_codes.tolist() and list(uniq) == list(ref_uniq)


def test_first_appearance_check_agrees_with_factorize_across_blocks():
    rng = np.random.default_rng(5)
    for _ in range(200):
        n = int(rng.integers(1, 30))
        codes = rng.integers(-1, 6, n)
        if rng.random() < 0.5:  # make many of them valid first-appearance sequences
            codes = pd.factorize(np.where(codes < 0, np.nan, codes))[0]
        valid = codes[codes >= 0]
        want = bool(np.array_equal(valid, pd.factorize(valid)[0]))
        for block in (1, 3, 7, 1 << 20):
            assert ids._in_first_appearance_order(np.asarray(codes), block=block) == want
