"""The exact-duplicate and duplicate-key checks (helpers.data.validate, issue 10).

They find candidates on a 64-bit row hash and confirm them exactly, so they must group rows
exactly like ``DataFrame.duplicated`` for every column type, and a hash collision (forced here)
must never mark distinct rows as duplicates.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from helpers.data import validate
from helpers.data.validate import _duplicate_masks, _duplicated, _row_hash, _shared

STRING = pd.StringDtype("pyarrow")


def _chunked_strings(values: list[object], n_chunks: int) -> pd.arrays.ArrowStringArray:
    """Arrow strings split into several chunks (as Parquet reads give them)."""
    bounds = np.linspace(0, len(values), n_chunks + 1).astype(int)
    chunks = [pa.array(values[a:b], type=pa.string()) for a, b in zip(bounds[:-1], bounds[1:])]
    return pd.arrays.ArrowStringArray(pa.chunked_array(chunks))


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    n = 3000
    floats = rng.integers(0, 3, n).astype(float)
    floats[rng.random(n) < 0.1] = np.nan
    floats[rng.random(n) < 0.1] = -0.0
    floats[rng.random(n) < 0.05] = 0.0
    return pd.DataFrame({
        "s": _chunked_strings(list(rng.choice(["a", "b", None, " c", ""], n)), 5),
        "s1": pd.array(rng.choice(["x", "y"], n), dtype=STRING),  # one chunk
        "f": floats,
        "t": pd.to_datetime(rng.integers(0, 3, n), unit="D").where(rng.random(n) > 0.1),
        "i": rng.integers(0, 2, n),
        "b": pd.array(rng.choice([True, False, None], n), dtype="boolean"),
        "nb": rng.random(n) < 0.5,
        "o": pd.Series(rng.choice(["p", "q", None], n), dtype=object),
        "I": pd.array(rng.choice([1, 2, None], n), dtype="Int64"),
    }, index=pd.RangeIndex(7, 7 + n))


COLUMN_SETS = (["s"], ["f"], ["t"], ["s", "f"], ["s", "s1", "f", "t"], ["i", "nb", "o", "I", "b"],
               ["s", "s1", "f", "t", "i", "b", "nb", "o", "I"])


@pytest.mark.parametrize("cols", COLUMN_SETS, ids=["+".join(c) for c in COLUMN_SETS])
def test_duplicates_match_dataframe_duplicated(frame, cols):
    for keep in ("first", False):
        pd.testing.assert_series_equal(_duplicated(frame, cols, keep=keep),
                                       frame[cols].duplicated(keep=keep), check_names=False)
    any_dup, later = _duplicate_masks(frame, cols)
    assert (any_dup == frame[cols].duplicated(keep=False).to_numpy()).all()
    assert (later == frame[cols].duplicated(keep="first").to_numpy()).all()


def test_equal_rows_hash_equal_and_distinct_rows_rarely_collide(frame):
    cols = list(frame.columns)
    h = pd.Series(_row_hash(frame, cols))
    assert frame[cols].duplicated().any()
    # rows equal in every column (DataFrame.duplicated's notion) share one hash, others differ
    assert h.nunique() == len(frame[cols].drop_duplicates())
    later = frame[cols].duplicated(keep="first").to_numpy()
    assert set(h[later]) <= set(h[~later])
    unique_rows = pd.DataFrame({"a": pd.array([f"id{i}" for i in range(50_000)], dtype=STRING),
                                "b": np.arange(50_000, dtype=float)})
    assert pd.Series(_row_hash(unique_rows, ["a", "b"])).nunique() == 50_000


@pytest.mark.parametrize("collide", ["all", "pairs"])
def test_a_hash_collision_never_marks_distinct_rows(frame, monkeypatch, collide):
    """With a hash that collides for every row (or for pairs of distinct rows), the exact
    confirmation still gives DataFrame.duplicated's answer."""
    def bad_hash(df, columns, h=None, start=0):
        if collide == "all":
            return np.zeros(len(df), dtype=np.uint64)
        return (np.arange(len(df)) // 2).astype(np.uint64)  # rows 0/1, 2/3, ... collide

    monkeypatch.setattr(validate, "_row_hash", bad_hash)
    for cols in (["s"], ["s", "f", "t"], list(frame.columns)):
        for keep in ("first", False):
            pd.testing.assert_series_equal(_duplicated(frame, cols, keep=keep),
                                           frame[cols].duplicated(keep=keep), check_names=False)
    distinct = pd.DataFrame({"a": pd.array(["u", "v", "w", "z"], dtype=STRING)})
    assert not _duplicated(distinct, ["a"], keep=False).any()


def test_edge_sizes():
    empty = pd.DataFrame({"a": pd.array([], dtype=STRING)})
    assert _duplicated(empty, ["a"]).empty
    one = pd.DataFrame({"a": pd.array([None], dtype=STRING)})
    assert not _duplicated(one, ["a"]).any()
    nulls = pd.DataFrame({"a": pd.array([None, None, "x"], dtype=STRING)})
    assert _duplicated(nulls, ["a"]).tolist() == [False, True, False]


def test_shared_marks_every_repeated_value():
    rng = np.random.default_rng(5)
    h = rng.integers(0, 500, 2000).astype(np.uint64)
    assert (_shared(h) == pd.Series(h).duplicated(keep=False).to_numpy()).all()
    assert not _shared(np.arange(10, dtype=np.uint64)).any()
    assert not _shared(np.array([], dtype=np.uint64)).any()
    assert _shared(np.array([3, 3], dtype=np.uint64)).all()
    many = rng.integers(0, 50_000, 100_000).astype(np.uint64)  # many repeated values
    few = np.arange(100_000, dtype=np.uint64)
    few[[5, 70_000, 99_999]] = [7, 7, 12]  # few repeated values (the lookup branch)
    assert np.flatnonzero(_shared(few)).tolist() == [5, 7, 12, 70_000, 99_999]
    assert (_shared(many) == pd.Series(many).duplicated(keep=False).to_numpy()).all()
