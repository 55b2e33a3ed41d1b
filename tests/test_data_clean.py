"""The fast paths of string cleaning (helpers.data.coerce, issue 10): a column is passed through
untouched only when no value would change; otherwise it is stripped exactly as before."""
from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pytest

from helpers.data.coerce import Coercer, _already_clean, _no_space_bytes

STRING = pd.StringDtype("pyarrow")


def _reference(values: list[object]) -> pd.Series:
    s = pd.Series(values, dtype=STRING).str.strip()
    return s.mask(s == "")


def _chunked(values: list[object], cut: int) -> pd.Series:
    chunks = [pa.array(values[:cut], type=pa.large_string()),
              pa.array(values[cut:], type=pa.large_string())]
    return pd.Series(pd.arrays.ArrowStringArray(pa.chunked_array(chunks)))


CASES = {
    "clean": ["a1", "b2", None, "c3"],
    "leading space": ["a1", " b2", "c3", "d4"],
    "trailing tab": ["a1", "b2", "c3\t", "d4"],
    "inner space only": ["a b", "c d", "e", "f"],
    "empty string": ["a1", "", "c3", "d4"],
    "no-break space": ["a1", "b2", "c3\u00a0", "d4"],
    "non-ASCII, clean": ["é1", "ü2", "ß3", "d4"],
    "all missing": [None, None, None, None],
}


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("cut", [0, 2, 4])
def test_clean_strings_equals_strip_and_blank_to_missing(name, cut):
    values = CASES[name]
    s = _chunked(values, cut)
    got = Coercer._clean_strings(s)
    pd.testing.assert_series_equal(got.reset_index(drop=True), _reference(values),
                                   check_names=False)
    assert _already_clean(s) == _reference(values).equals(pd.Series(values, dtype=STRING))


def test_sliced_arrays_only_look_at_their_own_bytes():
    arr = pa.array([" dirty ", "a1", "b2", " x"], type=pa.large_string())
    assert _no_space_bytes(arr.slice(1, 2))
    assert not _no_space_bytes(arr.slice(0, 2))
    assert not _no_space_bytes(arr.slice(2, 2))
    s = pd.Series(pd.arrays.ArrowStringArray(pa.chunked_array([arr.slice(1, 2)])))
    assert _already_clean(s)
