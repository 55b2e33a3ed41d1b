"""Fast id lookups: which values occur in a set of ids, and where.

pandas' ``Series.isin`` and ``Index.get_indexer`` turn Arrow-backed strings into Python objects
first, which takes seconds for a few hundred thousand ids and minutes for tens of millions of
event rows. The two functions here look values up with one hash pass in C (Arrow's ``index_in``
for strings, pandas' hash tables for numbers and timestamps) and never create Python strings.

Semantics, the same for every dtype:

* a **missing value** (``None``, ``NaN``, ``pd.NA``, ``NaT``) never matches, not even a missing
  value in the lookup: ids are never missing after validation, and "unknown customer" must not
  match "unknown customer";
* strings and numbers are different values (``"1"`` does not match ``1``); the lookup is
  compared as it is, without stripping or case folding (the loader has already cleaned ids);
* the lookup may contain duplicates; :func:`positions` then returns the first position.

Every chapter module and the data loader use these two functions (``helpers.ids``) rather than a
local copy, so the rules above hold everywhere.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["isin", "positions", "dictionary_codes", "as_arrow_strings"]


def _is_arrow_string(values: Any) -> bool:
    dtype = getattr(values, "dtype", None)
    return isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow"


def _is_stringlike(values: Any) -> bool:
    """True for Arrow arrays of strings, pandas string dtypes, and object arrays of strings."""
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        return pa.types.is_string(values.type) or pa.types.is_large_string(values.type)
    dtype = getattr(values, "dtype", None)
    if isinstance(dtype, pd.StringDtype):
        return True
    if dtype is not None and dtype != object:
        return False
    arr = np.asarray(values, dtype=object)
    kind = pd.api.types.infer_dtype(arr, skipna=True)
    return kind in ("string", "empty")


def as_arrow_strings(values: Any) -> pa.Array:
    """``values`` (Series, Index, numpy array, list or Arrow array of strings) as one Arrow
    ``large_string`` array; missing values stay missing. Arrow-backed strings are taken without
    converting to Python objects."""
    if isinstance(values, pa.ChunkedArray):
        arr = values.combine_chunks() if values.num_chunks != 1 else values.chunk(0)
    elif isinstance(values, pa.Array):
        arr = values
    elif _is_arrow_string(values):
        chunked = pa.chunked_array(pd.Series(values, copy=False).array.__arrow_array__())
        arr = chunked.combine_chunks() if chunked.num_chunks != 1 else chunked.chunk(0)
    else:
        obj = np.asarray(values, dtype=object)
        arr = pa.array(obj, type=pa.large_string(), from_pandas=True)
    return arr.cast(pa.large_string()) if not pa.types.is_large_string(arr.type) else arr


def _length(values: Any) -> int:
    return len(values)


def _arrow_view(values: Any) -> pa.Array | pa.ChunkedArray:
    """Strings as Arrow data for a lookup, without copying Arrow-backed input: chunked arrays stay
    chunked and ``string`` stays ``string`` (``index_in`` accepts both and casts the value set),
    so looking up a 50M-row id column does not copy it."""
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        return values
    if _is_arrow_string(values):
        return pa.chunked_array(pd.Series(values, copy=False).array.__arrow_array__())
    return as_arrow_strings(values)


def positions(values: Any, lookup: Any) -> np.ndarray:
    """For each element of ``values``, its position in ``lookup`` (the first, if repeated), or -1
    when it is absent or missing. Returns an ``int64`` array as long as ``values``.

    >>> positions(pd.Series(["b", None, "z"], dtype="string[pyarrow]"), ["a", "b"]).tolist()
    [1, -1, -1]
    """
    n = _length(values)
    if n == 0 or _length(lookup) == 0:
        return np.full(n, -1, dtype=np.int64)
    if _is_stringlike(values) and _is_stringlike(lookup):
        vals, look = _arrow_view(values), _arrow_view(lookup)
        if isinstance(look, pa.ChunkedArray):  # the value set must be one array (small side)
            look = look.combine_chunks() if look.num_chunks != 1 else look.chunk(0)
        # index_in: first position of each value; null never matches when skip_nulls=True
        pos = pc.index_in(vals, value_set=look, skip_nulls=True)
        return np.asarray(pc.fill_null(pos, -1).to_numpy(zero_copy_only=False), dtype=np.int64)
    if _is_stringlike(values) != _is_stringlike(lookup) and not (
            _is_all_missing(values) or _is_all_missing(lookup)):
        # strings against numbers: nothing can match (pandas would compare "1" and 1 as unequal)
        return np.full(n, -1, dtype=np.int64)
    look_idx = pd.Index(_plain(lookup))
    if not look_idx.is_unique:
        first = ~look_idx.duplicated(keep="first")
        where = np.flatnonzero(first)
        look_idx = look_idx[first]
    else:
        where = None
    pos = np.asarray(look_idx.get_indexer(pd.Index(_plain(values))), dtype=np.int64)
    missing = np.asarray(pd.isna(_plain(values)), dtype=bool)
    pos[missing] = -1
    if where is not None:
        found = pos >= 0
        pos[found] = where[pos[found]]
    return pos


def isin(values: Any, lookup: Any) -> np.ndarray:
    """Boolean array: which elements of ``values`` occur in ``lookup`` (missing never matches).

    >>> isin(pd.Series(["b", None, "z"], dtype="string[pyarrow]"), ["a", "b"]).tolist()
    [True, False, False]
    """
    return positions(values, lookup) >= 0


def _plain(values: Any) -> Any:
    """A pandas-friendly view of ``values`` (Arrow arrays become pandas arrays)."""
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        return values.to_pandas()
    return values


def _is_all_missing(values: Any) -> bool:
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        return values.null_count == len(values)
    return bool(pd.isna(np.asarray(values, dtype=object)).all())


def dictionary_codes(values: Any) -> tuple[np.ndarray, Any]:
    """Integer code per row (-1 where missing) and the distinct values (an Arrow array for
    Arrow strings, else a pandas Index), numbered in order of first appearance (as
    ``pd.factorize(values, sort=False)``); a missing value gets -1, as in :func:`positions`.

    Arrow-backed strings are dictionary-encoded by Arrow (one hash pass, no Python string
    objects, no copy of the column); other dtypes go through ``pd.factorize``.
    """
    s = pd.Series(values, copy=False)
    dtype = s.dtype
    if isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow":
        chunked = pa.chunked_array(s.array.__arrow_array__())
        if chunked.num_chunks == 0 or len(chunked) == 0:
            return np.zeros(0, dtype=np.int64), pa.array([], type=pa.string())
        enc = pc.dictionary_encode(chunked)
        # the hash state is shared across chunks: every chunk's indices point into the
        # dictionary of the last chunk (each chunk's dictionary is a prefix of it)
        dictionary = enc.chunk(enc.num_chunks - 1).dictionary
        codes = np.concatenate([
            np.asarray(pc.fill_null(c.indices, -1).to_numpy(zero_copy_only=False),
                       dtype=np.int64) for c in enc.chunks])
        return codes, dictionary
    codes, uniques = pd.factorize(s, sort=False)
    return np.asarray(codes, dtype=np.int64), pd.Index(uniques)
