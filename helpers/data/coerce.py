"""Typing raw columns into contract form, reporting values that cannot be typed.

Contract form (see :mod:`helpers.contract`): ids, categories and text are Arrow-backed strings
(``string[pyarrow]``, missing = ``<NA>``, never ``""``); timestamps are naive ``datetime64[ns]``
in the dataset's time zone; numbers (``float`` and ``int`` kinds) are ``float64`` (an ``int``
column must hold whole numbers); booleans are the nullable ``boolean`` dtype; category codes are
stripped, mapped through the dataset's code mapping, and lower-cased.

Problems found here are *schema-level*: they are returned as :class:`Problem` objects and always
raised as errors by the caller.
"""
from __future__ import annotations

import re
from typing import Mapping

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from helpers.contract import Column

from .errors import Problem, examples

STRING = pd.StringDtype("pyarrow")
_TZ_SUFFIX = r"(?:Z|[+-]\d{2}:?\d{2})$"
_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"false", "f", "no", "n", "0"}


class Coercer:
    """Types the columns of one table; collects problems instead of raising at the first one."""

    def __init__(self, table: str, timezone: str, source_label: str = "",
                 source_names: Mapping[str, str] | None = None):
        self.table = table
        self.timezone = timezone
        self.source_label = source_label
        self.source_names = dict(source_names or {})
        self.problems: list[Problem] = []

    # -- helpers -------------------------------------------------------------------------------
    def _src(self, column: str) -> str:
        src = self.source_names.get(column)
        return f" (source column {src!r})" if src and src != column else ""

    def _problem(self, col: Column, problem: str, bad: pd.Series, n_total: int, fix: str) -> None:
        self.problems.append(Problem(self.table, col.name, problem + self._src(col.name),
                                     int(len(bad)), examples(bad), fix, None, n_total))

    # -- entry point ---------------------------------------------------------------------------
    def coerce(self, s: pd.Series, col: Column, *, date_format: str | None = None,
               source_timezone: str | None = None,
               codes: Mapping[str, str] | None = None, decimal: str = ".",
               thousands: str | None = None) -> pd.Series:
        """``s`` in contract form for ``col`` (on failure, records a problem and returns ``s``)."""
        if col.kind == "id":
            return self._id(s, col)
        if col.kind == "timestamp":
            return self._timestamp(s, col, date_format, source_timezone)
        if col.kind in ("float", "int"):
            return self._number(s, col, decimal, thousands)
        if col.kind == "bool":
            return self._bool(s, col)
        if col.kind == "category":
            return self._category(s, col, codes)
        return self._text(s, codes)

    # -- kinds ---------------------------------------------------------------------------------
    @staticmethod
    def _clean_strings(s: pd.Series) -> pd.Series:
        """``s`` as Arrow strings, stripped, empty strings missing.

        Returns the column itself, without a copy, when no value changes (the usual case for
        typed Parquet columns; checked chunk by chunk in Arrow, see :func:`_already_clean`);
        otherwise works on the distinct values (a 50M-row column of a few thousand ids or codes
        is stripped once per value, not once per row).
        """
        text = s.astype(STRING)
        if _already_clean(text):  # checked in Arrow, without hashing: nothing to change
            return text
        codes, uniques = pd.factorize(text)
        distinct = pd.Series(uniques, dtype=STRING)
        cleaned = distinct.str.strip()
        cleaned = cleaned.mask(cleaned == "")
        if cleaned.equals(distinct):
            return text
        arr = cleaned.array.take(codes, allow_fill=True)
        return pd.Series(arr, index=s.index, dtype=STRING, name=s.name)

    def _id(self, s: pd.Series, col: Column) -> pd.Series:
        if pd.api.types.is_bool_dtype(s) or pd.api.types.is_datetime64_any_dtype(s):
            self._problem(col, f"ids must be text or whole numbers, found {s.dtype}", s.dropna(),
                          len(s), "map an identifier column to this contract column.")
            return s
        if pd.api.types.is_float_dtype(s):
            frac = s.notna() & (s != np.floor(s.fillna(0)))
            if frac.any():
                self._problem(col, "ids with decimals", s[frac], len(s),
                              "ids must be whole numbers or text; check the column mapping.")
                return s
            return _via_uniques(s, lambda u: u.astype("int64").astype(str))
        if pd.api.types.is_integer_dtype(s):
            return _via_uniques(s, lambda u: u.astype(str))
        if s.dtype == object:  # e.g. from SQL: mixed python objects; floats like 13085.0 -> "13085"
            s = _via_uniques(s, lambda u: [str(int(v)) if isinstance(v, float) and v.is_integer()
                                           else str(v) for v in u])
        out = self._clean_strings(s)
        # a number column written as floats into a text file (pandas/Excel exports: "13085.0"):
        # when *every* id is digits + ".0", drop the ".0" (as for float ids in Parquet/SQL).
        # The first present id decides whether the (hashing) check of every distinct id is
        # needed: when it does not look like "13085.0", not every id does.
        first = out.first_valid_index()
        if first is None or not _FLOAT_ID.fullmatch(str(out.loc[first])):
            return out
        uniques = pd.Series(pd.unique(out.array), dtype=STRING).dropna()
        if len(uniques) and uniques.str.fullmatch(_FLOAT_ID.pattern).all():
            out = out.str.replace(r"\.0+$", "", regex=True)
        return out

    def _timestamp(self, s: pd.Series, col: Column, date_format: str | None,
                   source_timezone: str | None) -> pd.Series:
        fix_fmt = ("correct these values, or set reader.date_format in dataset.yaml to the "
                   "format the file uses (e.g. date_format: \"%d/%m/%Y %H:%M\").")
        if pd.api.types.is_datetime64_any_dtype(s):
            out = s
        elif pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
            if date_format is None:
                self._problem(col, "numbers in a timestamp column", s.dropna(), len(s),
                              "set reader.date_format (e.g. \"%Y%m%d\" for 19970101) in "
                              "dataset.yaml, or store real dates.")
                return s
            num = s.astype("Float64")
            text = num.astype("Int64").astype(STRING) if (num.dropna() % 1 == 0).all() else num.astype(STRING)
            return self._timestamp(text, col, date_format, source_timezone)
        elif pd.api.types.is_string_dtype(s) or s.dtype == object:
            text = self._clean_strings(s)
            present = text.notna()
            has_tz = text.str.contains(_TZ_SUFFIX, regex=True).fillna(False).astype(bool)
            n_tz = int(has_tz.sum())
            if 0 < n_tz < int(present.sum()):
                naive = text[present & ~has_tz]
                self._problem(col, f"mixes time-zone-aware values ({n_tz:,}, e.g. "
                                   f"{examples(text[has_tz], 2)[0]}) and naive values", naive,
                              len(s), "give every timestamp with its UTC offset or none of them "
                                      "(and set reader.source_timezone for naive ones).")
                return s
            fmt = date_format or "ISO8601"
            try:
                out = pd.to_datetime(text, format=fmt, errors="coerce", utc=n_tz > 0)
            except (ValueError, TypeError) as exc:
                self._problem(col, f"dates cannot be parsed with format {fmt!r} ({exc})",
                              text.dropna(), len(s), fix_fmt)
                return s
            bad = present & out.isna()
            if bad.any():
                what = "dates that do not parse" + (f" with format {fmt!r}" if date_format else
                                                    " as ISO 8601 (YYYY-MM-DD[ HH:MM:SS])")
                self._problem(col, what, text[bad], len(s), fix_fmt)
                return s
        else:
            self._problem(col, f"values of type {s.dtype} are not timestamps", s.dropna(), len(s),
                          "map a date/time column to this contract column.")
            return s
        if getattr(out.dt, "tz", None) is not None:
            out = out.dt.tz_convert(self.timezone).dt.tz_localize(None)
        elif source_timezone:
            out = (out.dt.tz_localize(source_timezone, ambiguous=False,
                                      nonexistent="shift_forward")
                   .dt.tz_convert(self.timezone).dt.tz_localize(None))
        try:
            return out.astype("datetime64[ns]")
        except (OverflowError, ValueError, pd.errors.OutOfBoundsDatetime) as exc:
            self._problem(col, f"timestamps out of the supported range ({exc})", s.dropna(),
                          len(s), "correct dates before 1678 or after 2261.")
            return s

    def _number(self, s: pd.Series, col: Column, decimal: str = ".",
                thousands: str | None = None) -> pd.Series:
        if pd.api.types.is_bool_dtype(s) or pd.api.types.is_datetime64_any_dtype(s):
            self._problem(col, f"expected numbers, found {s.dtype}", s.dropna(), len(s),
                          "map a numeric column to this contract column.")
            return s
        if pd.api.types.is_numeric_dtype(s):
            out = s.astype("float64")
        else:
            text = self._clean_strings(s)
            plain = text
            if thousands:
                plain = plain.str.replace(thousands, "", regex=False)
            if decimal != ".":
                plain = plain.str.replace(decimal, ".", regex=False)
            out = pd.to_numeric(plain, errors="coerce")
            out = out.astype("float64")
            bad = text.notna() & out.isna()
            if bad.any():
                self._problem(col, "values that are not numbers", text[bad], len(s),
                              "remove currency signs/units, or set reader.decimal / "
                              "reader.thousands / reader.na_values in dataset.yaml.")
                return s
        inf = np.isinf(out)
        if inf.any():
            self._problem(col, "infinite values", out[inf], len(s), "replace them by real values.")
            return s
        if col.kind == "int":
            frac = out.notna() & (out != np.floor(out.fillna(0)))
            if frac.any():
                self._problem(col, "values that are not whole numbers", out[frac], len(s),
                              "this column holds counts; check the column mapping.")
                return s
        return out

    def _bool(self, s: pd.Series, col: Column) -> pd.Series:
        if pd.api.types.is_bool_dtype(s):
            return s.astype("boolean")
        if pd.api.types.is_numeric_dtype(s):
            bad = s.notna() & ~s.isin([0, 1])
            if bad.any():
                self._problem(col, "numbers other than 0/1 in a yes/no column", s[bad], len(s),
                              "use true/false, yes/no or 1/0.")
                return s
            return s.astype("Float64").astype("boolean")
        text = self._clean_strings(s).str.lower()
        out = pd.Series(pd.NA, index=s.index, dtype="boolean")
        out[text.isin(_TRUE).fillna(False).astype(bool)] = True
        out[text.isin(_FALSE).fillna(False).astype(bool)] = False
        bad = text.notna() & out.isna()
        if bad.any():
            self._problem(col, "values that are not yes/no", text[bad], len(s),
                          "use true/false, yes/no or 1/0 (or map codes under 'codes').")
            return s
        return out

    def _category(self, s: pd.Series, col: Column, codes: Mapping[str, str] | None) -> pd.Series:
        if pd.api.types.is_float_dtype(s) and (s.dropna() % 1 == 0).all():
            s = s.astype("Int64")
        text = self._clean_strings(s)
        distinct = _distinct(text)  # cheap (no per-row codes): usually nothing changes
        if len(distinct) == 0 or distinct.equals(self._category_values(distinct, codes)):
            return text
        codes_arr, uniques = pd.factorize(text)
        mapped = self._category_values(pd.Series(uniques, dtype=STRING), codes)
        arr = mapped.array.take(codes_arr, allow_fill=True)
        return pd.Series(arr, index=s.index, dtype=STRING)

    @staticmethod
    def _category_values(distinct: pd.Series, codes: Mapping[str, str] | None) -> pd.Series:
        """Distinct (present) category values mapped through ``codes``, stripped, lower-cased,
        ``""`` as missing."""
        mapped = distinct
        if codes:
            lower = {str(k).strip().lower(): v for k, v in codes.items()}
            exact = mapped.map(lambda v: codes.get(v, lower.get(v.lower(), v)))
            mapped = exact.astype(STRING)
        mapped = mapped.str.strip().str.lower()
        return mapped.mask(mapped == "")

    def _text(self, s: pd.Series, codes: Mapping[str, str] | None) -> pd.Series:
        out = self._clean_strings(s)
        if codes:
            out = out.replace(codes).astype(STRING)
        return out


_FLOAT_ID = re.compile(r"-?\d+\.0+")


def _arrow_chunks(s: pd.Series) -> list[pa.Array] | None:
    """The Arrow chunks of an Arrow-backed string column (``None`` for other columns)."""
    if isinstance(s.dtype, pd.StringDtype) and s.dtype.storage == "pyarrow":
        return list(pa.chunked_array(s.array.__arrow_array__()).chunks)
    return None


def _already_clean(s: pd.Series) -> bool:
    """No value of the Arrow string column ``s`` has leading or trailing white space or is
    empty, i.e. :meth:`Coercer._clean_strings` would change nothing. Checked chunk by chunk in
    Arrow (string lengths before and after trimming), stopping at the first dirty chunk."""
    chunks = _arrow_chunks(s)
    if chunks is None:
        return False
    for chunk in chunks:
        if not len(chunk) or chunk.null_count == len(chunk):
            continue
        length = pc.binary_length(chunk)
        if pc.any(pc.equal(length, 0)).as_py():
            return False
        if _no_space_bytes(chunk):  # no white space anywhere: none to strip
            continue
        trimmed = pc.binary_length(pc.utf8_trim_whitespace(chunk))
        if pc.any(pc.not_equal(trimmed, length)).as_py():
            return False
    return True


def _no_space_bytes(chunk: pa.Array) -> bool:
    """The character bytes of a (large) string array hold neither an ASCII space or control
    character (<= 0x20) nor a non-ASCII byte (which might belong to a Unicode space), so no value
    can start or end with white space. One vectorized pass over the bytes, no per-value work;
    ``False`` means "maybe" (the caller then trims)."""
    if not (pa.types.is_large_string(chunk.type) or pa.types.is_string(chunk.type)):
        return False
    offsets_buf, data_buf = chunk.buffers()[1], chunk.buffers()[2]
    if data_buf is None or offsets_buf is None:
        return False
    off_type = np.int64 if pa.types.is_large_string(chunk.type) else np.int32
    offsets = np.frombuffer(offsets_buf, dtype=off_type)
    start, end = int(offsets[chunk.offset]), int(offsets[chunk.offset + len(chunk)])
    data = np.frombuffer(data_buf, dtype=np.uint8)[start:end]
    return bool(len(data)) and int(data.min()) > 0x20 and int(data.max()) < 0x80


def _distinct(s: pd.Series) -> pd.Series:
    """The distinct present values of a string column, in order of first appearance."""
    if isinstance(s.dtype, pd.StringDtype) and s.dtype.storage == "pyarrow":
        values = pc.unique(pa.chunked_array(s.array.__arrow_array__()))
        return pd.Series(pd.arrays.ArrowStringArray(values.drop_null()), dtype=STRING)
    return pd.Series(pd.unique(s.dropna().to_numpy()), dtype=STRING)


def _via_uniques(s: pd.Series, fn) -> pd.Series:  # type: ignore[no-untyped-def]
    """Convert ``s`` to Arrow strings by converting its distinct non-missing values with ``fn``."""
    codes, uniques = pd.factorize(s)
    converted = pd.array(np.asarray(fn(np.asarray(uniques)), dtype=object), dtype=STRING)
    return pd.Series(converted.take(codes, allow_fill=True), index=s.index, dtype=STRING)
