"""Row-level validation with full row accounting.

A :class:`Ledger` follows every row of every table from the source to its fate:

* ``rows_in``        rows that entered the table (read from the source, or derived);
* ``rows_kept``      rows in the loaded table;
* ``rows_set_aside`` rows moved to ``Dataset.set_aside[table]`` with a ``reason``;
* ``rows_repaired``  kept rows that a rule changed (a *subset* of ``rows_kept``).

``rows_in == rows_kept + rows_set_aside`` holds for every table; :meth:`Ledger.quality` checks it.
Rows rejected by an ``error`` rule are collected and raised together as one
:class:`~helpers.data.errors.DataContractError` at the end of loading.

Checks run per table in this order; a row is reported under the first check it fails:
``exact_duplicate`` -> ``missing_value`` -> ``non_product_code`` (format ``lines``) ->
``negative_value`` / ``zero_value`` / ``outlier`` / ``out_of_range`` / ``invalid_code`` ->
``future_date`` ->
``duplicate_key``; then across tables ``orphan_key`` (children of set-aside rows are set aside with
reason "<parent> row set aside").
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from helpers import ids
from helpers.contract import TABLES, Column

from .errors import DataContractError, Problem, examples
from .rules import PARENT_SET_ASIDE, RULES, RuleBook

ISSUE_COLUMNS = ["table", "column", "rule", "action", "n_rows", "examples"]
QUALITY_COLUMNS = ["table", "rows_in", "rows_kept", "rows_repaired", "rows_set_aside"]
MISSING_COLUMNS = ["table", "column", "rows", "missing"]


@dataclass
class TableBook:
    """Accounting of one table."""

    table: str
    rows_in: int = 0
    derived: bool = False
    parts: list[pd.DataFrame] = field(default_factory=list)
    repaired: list[pd.Index] = field(default_factory=list)
    rejected: list[pd.DataFrame] = field(default_factory=list)

    @property
    def n_set_aside(self) -> int:
        return int(sum(len(p) for p in self.parts))

    @property
    def n_rejected(self) -> int:
        return int(sum(len(p) for p in self.rejected))

    def set_aside_keys(self, column: str) -> pd.Series:
        frames = [p[column] for p in self.parts + self.rejected if column in p.columns]
        return (pd.concat(frames, ignore_index=True) if frames
                else pd.Series([], dtype=pd.StringDtype("pyarrow")))


class Ledger:
    """Records the fate of every row, the issues found and the errors to raise."""

    def __init__(self, rules: RuleBook, dataset: str):
        self.rules = rules
        self.dataset = dataset
        self.books: dict[str, TableBook] = {}
        self.issues: list[dict[str, object]] = []
        self.errors: list[Problem] = []

    # -- bookkeeping ---------------------------------------------------------------------------
    def start(self, table: str, rows_in: int, *, derived: bool = False) -> None:
        book = self.books.setdefault(table, TableBook(table, derived=derived))
        book.rows_in += int(rows_in)

    def issue(self, table: str, column: str | None, rule: str, action: str, n_rows: int,
              ex: Iterable[str] = ()) -> None:
        self.issues.append(dict(table=table, column=column or "", rule=rule, action=action,
                                n_rows=int(n_rows), examples=", ".join(ex)))

    def set_aside(self, table: str, rows: pd.DataFrame, reason: str) -> None:
        if len(rows):
            self.books[table].parts.append(rows.assign(reason=reason))

    def repaired(self, table: str, index: pd.Index) -> None:
        self.books[table].repaired.append(index)

    def raise_errors(self) -> None:
        if self.errors:
            raise DataContractError(self.errors, dataset=self.dataset)

    # -- applying a rule -----------------------------------------------------------------------
    def act(self, table: str, df: pd.DataFrame, mask: pd.Series, rule: str,
            column: Column | None, problem: str, *,
            example_cols: Sequence[str] | None = None,
            repair: Callable[[pd.DataFrame, pd.Series], pd.DataFrame] | None = None,
            reason: str | None = None, column_label: str | None = None) -> pd.DataFrame:
        """Apply ``rule`` to the rows of ``df`` selected by ``mask``; return the rows kept."""
        mask = _as_bool(mask)
        df, action = self.apply(table, df, mask, rule, column, problem,
                                example_cols=example_cols, repair=repair, reason=reason,
                                column_label=column_label)
        return df[~mask.to_numpy()] if action in ("error", "set_aside") else df

    def apply(self, table: str, df: pd.DataFrame, mask: pd.Series, rule: str,
              column: Column | None, problem: str, *,
              example_cols: Sequence[str] | None = None,
              repair: Callable[[pd.DataFrame, pd.Series], pd.DataFrame] | None = None,
              reason: str | None = None,
              column_label: str | None = None) -> tuple[pd.DataFrame, str | None]:
        """Record ``rule`` firing on the rows selected by ``mask`` without removing them.

        Rows for ``error`` are remembered as rejected, rows for ``set_aside`` are copied to the
        set-aside list; the caller removes both from the table. ``repair`` rows are fixed and
        the repaired frame is returned. Returns ``(frame, action)`` (action ``None``: no rows).
        """
        mask = _as_bool(mask)
        n = int(mask.sum())
        if n == 0:
            return df, None
        action = self.rules.action(rule, table, column)
        cols = list(example_cols) if example_cols else ([column.name] if column is not None
                                                         else list(df.columns[:3]))
        ex = examples(df.loc[mask, cols] if len(cols) > 1 else df.loc[mask, cols[0]])
        colname = column_label or (column.name if column is not None else (
            ", ".join(example_cols) if example_cols else None))
        if action == "keep" and rule == "missing_value" and column is not None and column.required:
            raise DataContractError(f"rules: '{rule}: keep' cannot apply to required column "
                                    f"{table}.{column.name}; use error or set_aside.")
        if action == "repair" and repair is None:
            others = ", ".join(a for a in RULES[rule].actions if a != "repair")
            raise DataContractError(f"rules: '{rule}: repair' is not possible for "
                                    f"{table}.{colname}; use {others}.")
        self.issue(table, colname, rule, action, n, ex)
        if action == "error":
            required = column is not None and (column.required or not column.nullable)
            self.errors.append(Problem(table, colname, problem, n, ex,
                                       self.rules.fix_hint(rule, table, colname, required),
                                       rule, len(df)))
            self.books[table].rejected.append(df[mask])
        elif action == "set_aside":
            text = reason or RULES[rule].reason.format(column=(colname or "").replace("_", " "))
            self.set_aside(table, df[mask], text)
        elif action == "repair":
            assert repair is not None
            self.repaired(table, df.index[mask])
            df = repair(df, mask)
        return df, action

    # -- results -------------------------------------------------------------------------------
    def quality(self, kept: dict[str, pd.DataFrame]) -> pd.DataFrame:
        """The quality table; asserts ``rows_in == rows_kept + rows_set_aside`` for every table."""
        rows = []
        for name in list(TABLES) + [t for t in self.books if t not in TABLES]:
            if name not in self.books:
                continue
            book = self.books[name]
            df = kept.get(name)
            n_kept = 0 if df is None else len(df)
            rep = (pd.Index(np.unique(np.concatenate([np.asarray(i) for i in book.repaired])))
                   if book.repaired else pd.Index([]))
            n_rep = 0 if df is None else int(pd.Index(df.index).isin(rep).sum())
            rows.append(dict(table=name, rows_in=book.rows_in, rows_kept=n_kept,
                             rows_repaired=n_rep, rows_set_aside=book.n_set_aside))
            if book.rows_in != n_kept + book.n_set_aside + book.n_rejected:
                raise AssertionError(f"row accounting broken for {name}: in={book.rows_in} "
                                     f"kept={n_kept} set aside={book.n_set_aside} "
                                     f"rejected={book.n_rejected}")
        return pd.DataFrame(rows, columns=QUALITY_COLUMNS)

    def issues_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.issues, columns=ISSUE_COLUMNS)

    def set_aside_frames(self) -> dict[str, pd.DataFrame]:
        out = {}
        for name, book in self.books.items():
            if book.parts:
                out[name] = pd.concat(book.parts).sort_index(kind="stable")
            else:
                out[name] = pd.DataFrame(columns=["reason"])
        return out


def n_missing(s: pd.Series) -> int:
    """Missing values of ``s`` (``s.isna().sum()``; for Arrow-backed columns the null count the
    arrays already hold, without a pass over the values)."""
    if isinstance(s.dtype, pd.StringDtype) and s.dtype.storage == "pyarrow":
        return int(pa.chunked_array(s.array.__arrow_array__()).null_count)
    return int(s.isna().sum())


def missing_counts(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per column of every table (tables in the order given, columns in table order):
    ``table, column, rows`` (rows of the table), ``missing`` (missing values in the column)."""
    rows = [dict(table=name, column=str(c), rows=len(df), missing=n_missing(df[c]))
            for name, df in tables.items() for c in df.columns]
    return pd.DataFrame(rows, columns=MISSING_COLUMNS).astype({"rows": "int64",
                                                                "missing": "int64"})


def _row_ids(df: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    """One int64 id per row of ``df`` such that two rows get the same id exactly when they are
    equal in every column of ``columns`` (missing values equal each other, as in
    ``DataFrame.duplicated``).

    Built column by column without hashing collisions: each column is factorized to compact
    codes and folded into the running id (``id * n_codes + code``), which is re-factorized so it
    stays below the number of rows (no overflow for tables of any realistic size). Only the
    running id and one column's codes are in memory at a time, instead of a frame of codes.
    """
    ids: np.ndarray | None = None
    for c in columns:
        codes = pd.factorize(df[c])[0]
        n_codes = int(codes.max()) + 2 if len(codes) else 1  # missing (-1) -> 0
        codes += 1
        if ids is None:
            ids = codes
            continue
        ids *= n_codes
        ids += codes
        del codes
        ids = pd.factorize(ids)[0]
    return ids if ids is not None else np.zeros(len(df), dtype=np.int64)


_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_NAN_BITS = np.uint64(0x7FF8000000000000)


_MIX_BLOCK = 1 << 20


def _mix(h: np.ndarray) -> None:
    """The splitmix64 finalizer, in place on a ``uint64`` array (a bijection that spreads every
    input bit over the whole word); block by block, so the shifted temporaries stay small."""
    for start in range(0, len(h), _MIX_BLOCK):
        b = h[start:start + _MIX_BLOCK]
        b ^= b >> np.uint64(30)
        b *= _MIX1
        b ^= b >> np.uint64(27)
        b *= _MIX2
        b ^= b >> np.uint64(31)


def _column_words(s: pd.Series) -> np.ndarray:
    """One ``uint64`` per row of ``s``, equal for two rows exactly when ``pd.factorize`` treats
    their values as equal (all missing values alike). Arrow strings: their dictionary-encoding
    indices (one memo table for all chunks, computed in C++); numbers: their bits (``-0.0`` as
    ``0.0``, every NaN alike); timestamps: their int64 nanoseconds (NaT is one value); anything
    else: ``pd.factorize`` codes."""
    dtype = s.dtype
    if isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow":
        chunked = pa.chunked_array(s.array.__arrow_array__())
        if chunked.num_chunks and len(s):
            enc = chunked.dictionary_encode()
            dicts = [c.dictionary for c in enc.chunks]
            if all(d is dicts[-1] or d.equals(dicts[-1]) for d in dicts):  # one shared memo
                # indices straight into one uint64 array, chunk by chunk (no int64 copies)
                out = np.empty(len(s), dtype=np.uint64)
                pos = 0
                for chunk in enc.chunks:
                    idx = chunk.indices
                    n = len(idx)
                    if idx.null_count:
                        out[pos:pos + n] = pc.fill_null(idx, -1).to_numpy().astype(np.int64)
                    else:
                        out[pos:pos + n] = idx.to_numpy()
                    pos += n
                del enc
                return out
    elif dtype == np.float64:
        v = s.to_numpy(dtype=np.float64) + 0.0  # -0.0 + 0.0 == +0.0 (factorize: equal)
        w = v.view(np.uint64)
        w[np.isnan(v)] = _NAN_BITS
        return w
    elif dtype.kind in "iuMm" and not isinstance(dtype, pd.api.extensions.ExtensionDtype):
        return s.to_numpy().view(np.int64).astype(np.uint64)
    elif dtype == np.bool_:
        return s.to_numpy().astype(np.uint64)
    return pd.factorize(s)[0].astype(np.uint64)


def _row_hash(df: pd.DataFrame, columns: Sequence[str], h: np.ndarray | None = None,
              start: int = 0) -> np.ndarray:
    """A 64-bit hash per row of ``df[columns]``: rows equal in every column (as
    ``DataFrame.duplicated`` compares) always get the same hash; different rows almost always
    get different ones (a collision is possible, so equal hashes are only *candidates*).
    Built column by column (:func:`_column_words` folded in with the splitmix64 mixer), so only
    the running hash and one column's words are in memory at a time. ``h``/``start``: continue
    the hash ``h`` of the first ``start`` columns (modified in place)."""
    if h is None:
        h = np.zeros(len(df), dtype=np.uint64)
    for i, c in enumerate(columns, start):
        w = _column_words(df[c])
        h += np.uint64((0x9E3779B97F4A7C15 * (i + 1)) % (1 << 64))  # column salt
        h ^= w
        del w
        _mix(h)
    return h


def _shared(h: np.ndarray) -> np.ndarray:
    """Boolean mask of the elements of ``h`` (``uint64``) that occur more than once, by sorting
    (a hash table over tens of millions of elements, as in ``Series.duplicated``, misses the CPU
    caches and is several times slower). When few values repeat, the repeated values are read
    off a sorted copy and every element is looked up among them; otherwise the sort order
    (``argsort``) marks the repeated runs directly."""
    n = len(h)
    if n < 2:
        return np.zeros(n, dtype=bool)
    srt = np.sort(h)
    same = srt[1:] == srt[:-1]  # sorted position i+1 repeats position i
    repeated = np.unique(srt[1:][same])
    del srt  # the sorted values are not needed again: argsort gives the same order
    if not len(repeated):
        return np.zeros(n, dtype=bool)
    if len(repeated) <= n // 64:
        return pd.Series(h, copy=False).isin(repeated).to_numpy()
    del repeated
    order = np.argsort(h)  # h[order] is the sorted array above, so ``same`` applies to it
    in_run = np.zeros(n, dtype=bool)
    in_run[1:] |= same
    in_run[:-1] |= same
    del same
    out = np.empty(n, dtype=bool)
    out[order] = in_run
    return out


def _duplicate_masks(df: pd.DataFrame, columns: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(df[columns].duplicated(keep=False), df[columns].duplicated(keep="first"))`` as boolean
    arrays, exactly.

    Candidates are the rows whose 64-bit hash (:func:`_row_hash`) is shared with another row;
    only they are compared exactly (:func:`_row_ids` on the candidate rows), so a hash
    collision can never mark distinct rows as duplicates, and the exact comparison costs time
    in proportion to the (usually few) candidates instead of the table.
    """
    n = len(df)
    any_dup = np.zeros(n, dtype=bool)
    later = np.zeros(n, dtype=bool)
    if n == 0 or not len(columns):
        if len(columns) == 0 and n > 1:  # no columns: every row equals the first
            any_dup[:] = True
            later[1:] = True
        return any_dup, later
    h = _row_hash(df, columns)
    shared = _shared(h)
    del h
    cand = np.flatnonzero(shared)
    del shared
    if len(cand):
        sub = df.iloc[cand][list(columns)] if len(cand) < n else df
        exact = pd.Series(_row_ids(sub, columns), copy=False)
        any_dup[cand] = exact.duplicated(keep=False).to_numpy()
        later[cand] = exact.duplicated(keep="first").to_numpy()
    return any_dup, later


def _duplicated(df: pd.DataFrame, columns: Sequence[str], keep: str | bool = "first") -> pd.Series:
    """``df[columns].duplicated(keep=keep)`` (``keep``: ``"first"`` or ``False``), computed with
    :func:`_duplicate_masks`."""
    any_dup, later = _duplicate_masks(df, columns)
    if keep not in ("first", False):
        raise ValueError(f"keep must be 'first' or False, not {keep!r}")
    return pd.Series(later if keep == "first" else any_dup, index=df.index)


def _as_bool(mask: pd.Series) -> pd.Series:
    return mask if mask.dtype == bool else mask.fillna(False).astype(bool)


# -- per-table checks ---------------------------------------------------------------------------
def _set_na(column: str) -> Callable[[pd.DataFrame, pd.Series], pd.DataFrame]:
    def fix(df: pd.DataFrame, mask: pd.Series) -> pd.DataFrame:
        df = df.copy()
        df.loc[mask, column] = pd.NA if df[column].dtype != "float64" else np.nan
        return df
    return fix


#: Rule ``outlier``: a positive amount, price or quantity above ``OUTLIER_RATIO`` x the median
#: of the positive values of its column, when the column has at least ``OUTLIER_MIN_VALUES``.
OUTLIER_RATIO = 1000
OUTLIER_MIN_VALUES = 20


def outliers(values: pd.Series) -> tuple[pd.Series, float | None]:
    """Huge values (rule ``outlier``) and the median they are compared with.

    The rule is robust on purpose: the median is not moved by the outliers themselves (a mean or
    standard deviation would be), and a factor of 1,000 (three orders of magnitude) is far beyond
    the spread of real spend distributions (heavy-tailed, yet rarely wider than ~100x the median)
    while it catches the usual typos: amounts in cents instead of units, extra zeros, a
    quantity typed into the price field. Returns ``(mask, None)`` with an all-false mask when the
    column has fewer than ``OUTLIER_MIN_VALUES`` positive values.
    """
    pos = values[values > 0]
    if len(pos) < OUTLIER_MIN_VALUES:
        return pd.Series(False, index=values.index), None
    median = float(pos.median())
    return (values > OUTLIER_RATIO * median).fillna(False).astype(bool), median


def _key_label(key: Sequence[str]) -> str:
    return ", ".join(key)


def check_rows(ledger: Ledger, table: str, df: pd.DataFrame, columns: Sequence[Column],
               key: Sequence[str], *, limit: pd.Timestamp, limit_label: str,
               duplicate_ignore: Sequence[str] = (),
               non_product: pd.Series | None = None, non_product_column: Column | None = None,
               merge_lines: bool = False, example_key: Sequence[str] = (),
               consume: bool = False) -> pd.DataFrame:
    """Run the row-level checks on one table (``columns``: the contract columns it carries).

    ``key``: the table's unique key (rule ``duplicate_key``); ``example_key``: columns that
    identify a row in messages when there is no key; ``duplicate_ignore``: columns left out of
    the exact-duplicate comparison; ``non_product``: mask of non-product lines (format lines);
    ``merge_lines``: ``duplicate_key: repair`` merges lines instead of keeping the first;
    ``consume``: the caller hands ``df`` over (it is not used afterwards): when rows leave the
    table its columns are moved one by one into the result and removed from ``df``, so the
    table is not held twice at the peak (see :func:`_take_rows`).
    """
    present = [c for c in columns if c.name in df.columns]
    key = [k for k in key if k in df.columns]
    ex_cols = key or [k for k in example_key if k in df.columns] or [c.name for c in present[:2]]
    # Rows leave the table by clearing ``alive`` (one copy at the end instead of one per check).
    alive = pd.Series(True, index=df.index)

    def fire(mask: pd.Series, rule: str, column: Column | None, problem: str,
             **kw: object) -> None:
        nonlocal df, alive
        mask = _as_bool(mask) & alive
        df, action = ledger.apply(table, df, mask, rule, column, problem, **kw)  # type: ignore[arg-type]
        if action in ("error", "set_aside"):
            alive = alive & ~mask

    # 1. exact duplicates (64-bit row hashes, candidates confirmed exactly: _duplicate_masks)
    dup_cols = [c for c in df.columns if c not in duplicate_ignore]
    if len(df) and dup_cols:
        fire(_duplicated(df, dup_cols), "exact_duplicate", None,
             "rows identical to an earlier row", example_cols=ex_cols,
             column_label="(all columns)")

    # 2. missing values
    for col in present:
        mask = df[col.name].isna() & alive
        if not mask.any():
            continue
        others = [c for c in ex_cols if c != col.name] or None
        if col.required or not col.nullable:
            fire(mask, "missing_value", col, f"missing values in required column {col.name!r}",
                 example_cols=others, reason=f"no {col.name.replace('_', ' ')}")
        elif ledger.rules.action("missing_value", table, col) == "keep":
            ledger.issue(table, col.name, "missing_value", "keep", int(mask.sum()))
        else:
            fire(mask, "missing_value", col, f"missing values in column {col.name!r}",
                 example_cols=others, reason=f"no {col.name.replace('_', ' ')}")

    # 3. non-product codes (format lines)
    if non_product is not None:
        fire(non_product.reindex(df.index, fill_value=False), "non_product_code",
             non_product_column, "non-product codes")

    # 4. values
    for col in present:
        if col.kind in ("float", "int"):
            if col.positive:
                fire(df[col.name] < 0, "negative_value", col,
                     f"negative values in {col.name!r} (must be > 0)")
                fire(df[col.name] == 0, "zero_value", col,
                     f"zero values in {col.name!r} (must be > 0)")
                mask, median = outliers(df[col.name].where(alive))
                if median is not None:
                    fire(mask, "outlier", col,
                         f"values more than {OUTLIER_RATIO:,} times the column's median "
                         f"({median:g})")
            lo, hi = col.min_value, col.max_value
            if lo is not None or hi is not None:
                s = df[col.name]
                mask = pd.Series(False, index=df.index)
                if lo is not None:
                    mask |= s < lo
                if hi is not None:
                    mask |= s > hi
                rng = f"[{'' if lo is None else f'{lo:g}'}, {'' if hi is None else f'{hi:g}'}]"
                fire(mask, "out_of_range", col, f"values outside the allowed range {rng}",
                     repair=_set_na(col.name))
        elif col.kind == "category" and col.allowed:
            s = df[col.name]
            fire(s.notna() & ~s.isin(col.allowed), "invalid_code", col,
                 f"codes not in the allowed list ({', '.join(col.allowed)}; source codes can "
                 "be mapped under 'codes' in dataset.yaml)", repair=_set_na(col.name))

    # 5. future dates
    for col in present:
        if col.kind == "timestamp":
            fire(df[col.name] > limit, "future_date", col,
                 f"timestamps after the data end {limit_label}")

    if not alive.all():
        df = _take_rows(df, alive.to_numpy(), consume=consume)
    del alive
    # 6. duplicate keys (non-identical rows sharing the key)
    if key and len(df):
        any_dup, later = _duplicate_masks(df, key)
        if any_dup.any():
            df = _duplicate_keys(ledger, table, df, pd.Series(any_dup, index=df.index), key,
                                 merge_lines, first=pd.Series(~later, index=df.index))
    return df


def _take_rows(df: pd.DataFrame, keep: np.ndarray, *, consume: bool) -> pd.DataFrame:
    """``df[keep]`` (``keep``: boolean array). With ``consume`` the result is built column by
    column and each column is deleted from ``df`` as soon as its kept rows are copied: peak
    memory is the table plus one column instead of two tables (``df`` is left without columns,
    so only pass ``consume=True`` for a frame nobody uses afterwards)."""
    if not consume:
        return df[keep]
    out: dict[object, object] = {}
    for c in list(df.columns):
        s = df[c]
        out[c] = s.array[keep] if isinstance(s.dtype, pd.api.extensions.ExtensionDtype) \
            else s.to_numpy()[keep]
        del s
        del df[c]
    return pd.DataFrame(out, index=df.index[keep], copy=False)


def _duplicate_keys(ledger: Ledger, table: str, df: pd.DataFrame, mask: pd.Series,
                    key: Sequence[str], merge_lines: bool, first: pd.Series) -> pd.DataFrame:
    """Rule ``duplicate_key`` on the rows of ``mask`` (all rows sharing a key); ``first`` marks
    the first row of each key."""
    action = ledger.rules.action("duplicate_key", table, None)
    n = int(mask.sum())
    ex = examples(df.loc[mask, list(key)] if len(key) > 1 else df.loc[mask, key[0]])
    label = _key_label(key)
    ledger.issue(table, label, "duplicate_key", action, n, ex)
    if action == "error":
        ledger.errors.append(Problem(
            table, label, f"rows share the unique key ({label}) but differ in other columns", n,
            ex, ledger.rules.fix_hint("duplicate_key", table, None), "duplicate_key", len(df)))
        ledger.books[table].rejected.append(df[mask])
        return df[~mask]
    if action == "set_aside":
        ledger.set_aside(table, df[mask], "duplicate key")
        return df[~mask]
    # repair
    extra = mask & ~first
    if merge_lines and {"quantity", "unit_price"} <= set(df.columns):
        sub = df.loc[mask, list(key) + ["quantity", "unit_price"]]
        value = sub["quantity"] * sub["unit_price"]
        agg = (sub.assign(_value=value).groupby(list(key), sort=False, observed=True)
               [["quantity", "_value"]].sum())
        survivors = df.loc[mask & first, list(key)]
        merged = survivors.join(agg, on=list(key))
        df = df.copy()
        df.loc[merged.index, "quantity"] = merged["quantity"].to_numpy()
        df.loc[merged.index, "unit_price"] = (merged["_value"] / merged["quantity"]).to_numpy()
        reason = "merged into an earlier line (duplicate key)"
    else:
        reason = "duplicate key (first kept)"
    ledger.repaired(table, df.index[mask & first])
    ledger.set_aside(table, df[extra], reason)
    return df[~extra]


def position_in(s: pd.Series, values: pd.Series) -> np.ndarray:
    """Position in ``values`` of each element of ``s`` (:func:`helpers.ids.positions`: the first
    position of a repeated value); every element must be found (``AssertionError`` otherwise)."""
    out = ids.positions(s, values)
    if (out < 0).any():
        raise AssertionError("position_in: some values were not found")
    return out


# -- foreign keys -------------------------------------------------------------------------------
def check_foreign_keys(ledger: Ledger, tables: dict[str, pd.DataFrame],
                       children: Sequence[str]) -> None:
    """Orphan checks for ``children`` (in order), updating ``tables`` in place.

    A child row whose parent key was set aside is set aside too (reason "<parent> row set aside");
    a child row whose key exists nowhere in the parent table is governed by rule ``orphan_key``.
    Foreign keys to a table the dataset lacks are not checked.
    """
    for child in children:
        if child not in tables:
            continue
        spec = TABLES[child]
        for column, parent in spec.foreign_keys.items():
            df = tables[child]
            if parent not in tables or column not in df.columns or not len(df):
                continue
            pkey = TABLES[parent].key[0]
            vals = df[column]
            known = ids.isin(vals, tables[parent][pkey])  # missing never matches
            bad = pd.Series(vals.notna().to_numpy() & ~known, index=df.index)
            if not bad.any():
                continue
            cascade = bad & ids.isin(vals, ledger.books[parent].set_aside_keys(pkey)) \
                if parent in ledger.books else pd.Series(False, index=df.index)
            if cascade.any():
                n = int(cascade.sum())
                ledger.issue(child, column, "parent_set_aside", "set_aside", n,
                             examples(df.loc[cascade, column]))
                ledger.set_aside(child, df[cascade], PARENT_SET_ASIDE.format(parent=parent))
                df = df[~cascade]
            orphan = bad.reindex(df.index) & ~cascade.reindex(df.index)
            df = ledger.act(child, df, orphan, "orphan_key", spec.column(column),
                            f"values not found in {parent}.{pkey}",
                            reason=f"unknown {column.replace('_', ' ')}")
            tables[child] = df
