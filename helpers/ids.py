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

**Dictionary-encoded ids.** Every function here also takes a dictionary-encoded column
(``pd.ArrowDtype(pa.dictionary(..., pa.string()))``, as ``Dataset.read(..., dictionary=[...])``
returns id columns of big tables from the dataset cache): it then works on the integer codes and
looks up only the distinct values, so a 50M-row events column costs no string hashing at all.
The results are the same as for the plain strings.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["isin", "positions", "dictionary_codes", "as_arrow_strings", "dictionary_encoded",
           "is_dictionary", "first_appearance_codes", "sorted_codes"]


def _dictionary_chunks(values: Any) -> pa.ChunkedArray | None:
    """``values`` as a chunked Arrow dictionary array when they are dictionary-encoded (a pandas
    ``ArrowDtype`` dictionary column or an Arrow dictionary array), else ``None``."""
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        if not pa.types.is_dictionary(values.type):
            return None
        return values if isinstance(values, pa.ChunkedArray) else pa.chunked_array([values])
    dtype = getattr(values, "dtype", None)
    if isinstance(dtype, pd.ArrowDtype) and pa.types.is_dictionary(dtype.pyarrow_dtype):
        return pa.chunked_array(pd.Series(values, copy=False).array.__arrow_array__())
    return None


def is_dictionary(values: Any) -> bool:
    """True for a dictionary-encoded column (see the module notes)."""
    return _dictionary_chunks(values) is not None


def _dictionary_parts(chunked: pa.ChunkedArray) -> tuple[np.ndarray, pa.Array]:
    """``(codes, dictionary)`` of a chunked dictionary array: int64 codes into one dictionary
    (-1 where missing). Chunks that share their dictionary (the dataset cache writes them so)
    are taken as they are; otherwise the dictionaries are unified first."""
    if chunked.num_chunks == 0:
        return np.zeros(0, dtype=np.int64), pa.array([], type=chunked.type.value_type)
    first = chunked.chunk(0).dictionary
    shared = [b.address if b is not None else 0 for b in first.buffers()]
    if not all([b.address if b is not None else 0 for b in c.dictionary.buffers()] == shared
               or c.dictionary.equals(first) for c in chunked.chunks[1:]):
        chunked = chunked.unify_dictionaries()
        first = chunked.chunk(0).dictionary
    codes = np.empty(len(chunked), dtype=np.int64)
    at = 0
    for c in chunked.chunks:
        idx = c.indices
        n = len(idx)
        codes[at:at + n] = (pc.fill_null(idx, -1) if idx.null_count else idx).to_numpy()
        at += n
    return codes, first


def dictionary_encoded(values: Any) -> pd.Series:
    """``values`` as a dictionary-encoded pandas Series (``pd.ArrowDtype``, int32 codes, the
    distinct values in order of first appearance); already encoded input is returned as it is.
    Only strings are encoded: other dtypes come back unchanged (as a Series)."""
    s = values if isinstance(values, pd.Series) else pd.Series(values, copy=False)
    if is_dictionary(s) or not _is_stringlike(s):
        return s
    enc = _encode_chunks(_arrow_view(s))
    return pd.Series(pd.arrays.ArrowExtensionArray(enc), index=s.index, name=s.name, copy=False)


def _encode_chunks(chunked: pa.Array | pa.ChunkedArray) -> pa.ChunkedArray:
    """Arrow strings dictionary-encoded in one hash pass: a chunked dictionary array whose
    chunks all share one dictionary, the distinct values in order of first appearance."""
    if isinstance(chunked, pa.Array):
        chunked = pa.chunked_array([chunked])
    if len(chunked) == 0:
        return pa.chunked_array([], type=pa.dictionary(pa.int32(), chunked.type))
    enc = pc.dictionary_encode(chunked)
    # one hash state for all chunks: the last chunk's dictionary holds every value, and each
    # chunk's indices point into it (its own dictionary is a prefix)
    last = enc.chunk(enc.num_chunks - 1).dictionary
    return pa.chunked_array([pa.DictionaryArray.from_arrays(c.indices, last)
                             for c in enc.chunks if len(c)], type=enc.type)


def first_appearance_codes(codes: np.ndarray) -> np.ndarray:
    """Renumber non-negative integer ``codes`` 0, 1, ... in order of first appearance (as
    ``pd.factorize(codes)[0]``), with linear passes instead of a hash table; -1 stays -1."""
    codes = np.asarray(codes, dtype=np.int64)
    m = len(codes)
    if m == 0:
        return np.zeros(0, dtype=np.int64)
    if _in_first_appearance_order(codes):
        return codes
    top = int(codes.max()) + 1
    first = np.full(top + 1, m, dtype=np.int64)  # slot ``top``: the missing codes (-1)
    np.minimum.at(first, np.where(codes < 0, top, codes), np.arange(m, dtype=np.int64))
    first[top] = m
    order = np.argsort(first, kind="stable")
    new = np.full(top + 1, -1, dtype=np.int64)
    seen = first[order] < m
    new[order[seen]] = np.arange(int(seen.sum()), dtype=np.int64)
    new[top] = -1
    return new[codes]


def _in_first_appearance_order(codes: np.ndarray, block: int = 1 << 20) -> bool:
    """Whether the non-negative ``codes`` already are 0, 1, ... in order of first appearance:
    every code is at most one above the largest code before it (-1, missing, always passes).
    One vectorized pass, block by block so the running maximum stays in the CPU caches."""
    top = -1  # the largest code so far
    for start in range(0, len(codes), block):
        b = codes[start:start + block]
        run = np.maximum.accumulate(b)
        np.maximum(run, top, out=run)
        if b[0] > top + 1 or not bool((b[1:] <= run[:-1] + 1).all()):
            return False
        top = int(run[-1])
    return True


def sorted_codes(values: Any) -> tuple[np.ndarray, Any]:
    """``(codes, uniques)``: the distinct values in ascending order (an Arrow array for strings,
    else a pandas Index) and each row's position among them (-1 where missing), as
    ``pd.factorize(values, sort=True)``: one encoding pass, then a sort of the distinct values
    only. Strings sort by code point."""
    codes, uniq = dictionary_codes(values)
    if isinstance(uniq, (pa.Array, pa.ChunkedArray)):
        order = np.asarray(pc.sort_indices(uniq), dtype=np.int64)
        uniq = uniq.take(pa.array(order))
    else:
        order = np.asarray(uniq.argsort(), dtype=np.int64)
        uniq = uniq.take(order)
    rank = np.empty(len(order) + 1, dtype=np.int64)
    rank[order] = np.arange(len(order), dtype=np.int64)
    rank[-1] = -1  # code -1 (missing) -> -1
    return rank[codes], uniq


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
    dchunks = _dictionary_chunks(values)
    if dchunks is not None:  # look up the distinct values once, then take by code
        codes, dictionary = _dictionary_parts(dchunks)
        return np.append(positions(dictionary, lookup), -1)[codes]  # code -1 -> the last slot
    if is_dictionary(lookup):
        lookup = as_arrow_strings(lookup)
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
    objects, no copy of the column); a dictionary-encoded column gives its own codes (renumbered
    only if they are not in order of first appearance, e.g. after a row filter); other dtypes go
    through ``pd.factorize``.
    """
    dchunks = _dictionary_chunks(values)
    if dchunks is not None:
        codes, dictionary = _dictionary_parts(dchunks)
        new = first_appearance_codes(codes)  # ``codes`` itself when already in that order
        if new is codes:
            top = int(codes.max()) + 1 if len(codes) else 0
            return codes, dictionary.slice(0, top)
        ok = codes >= 0
        order = np.full(int(new.max()) + 1 if ok.any() else 0, 0, dtype=np.int64)
        order[new[ok]] = codes[ok]
        return new, dictionary.take(pa.array(order))
    if _is_arrow_string(values) or (isinstance(values, (pa.Array, pa.ChunkedArray))
                                    and _is_stringlike(values)):
        chunked = _arrow_view(values)
        if len(chunked) == 0:
            return np.zeros(0, dtype=np.int64), pa.array([], type=pa.string())
        return _dictionary_parts(_encode_chunks(chunked))  # first appearance by construction
    s = pd.Series(values, copy=False)
    codes, uniques = pd.factorize(s, sort=False)
    return np.asarray(codes, dtype=np.int64), pd.Index(uniques)
