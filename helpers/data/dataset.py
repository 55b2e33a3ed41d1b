"""The :class:`Dataset` returned by :func:`load_dataset`, and :class:`Truth` (synthetic data)."""
from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import pandas as pd

from helpers.contract import CAPABILITIES, TABLES

from . import cache as _cache
from .cache import LazyTables, Parts, project
from .config import DatasetConfig, parse_config, resolve
from .errors import DataContractError
from .formats import Builder
from .privacy import STRING, pseudonymize
from .rules import RuleBook
from .validate import ISSUE_COLUMNS, MISSING_COLUMNS, QUALITY_COLUMNS, Ledger, missing_counts

if TYPE_CHECKING:  # pragma: no cover
    from helpers.synth import Truth


@dataclass
class Dataset:
    """A loaded, validated dataset in contract form.

    ``tables``      dict of contract table name -> DataFrame (contract columns only, contract
                    dtypes, ``RangeIndex``); from the cache a :class:`~helpers.data.cache.LazyTables`
                    mapping that reads a big table on first access; :meth:`read` gives some
                    columns of a table (only those are read from the cache);
    ``quality``     one row per table: ``rows_in`` (rows read or derived), ``rows_kept``,
                    ``rows_repaired`` (kept rows changed by a ``repair`` rule — a subset of
                    ``rows_kept``), ``rows_set_aside``; always ``rows_in == rows_kept +
                    rows_set_aside``;
    ``issues``      one row per rule firing: ``table, column, rule, action, n_rows, examples``
                    (besides the rules in :data:`helpers.data.rules.RULES`: ``parent_set_aside``
                    for rows set aside with a set-aside parent, ``unused_column`` for source
                    columns not mapped to the contract (dropped), ``empty_table``,
                    ``excluded`` for source rows selected by an ``exclude`` entry);
    ``set_aside``   dict of table -> rows set aside, with a ``reason`` column; the index is the
                    row's 0-based position in its source (for derived tables: in the derived
                    table);
    ``truth``       :class:`helpers.synth.Truth` (planted truth of synthetic data) when
                    dataset.yaml names a ``truth`` folder, else ``None``;
    ``missing``     missing values of the loaded tables, counted at load time (stored in the
                    cache, so no big table is read for it): one row per column of every table,
                    ``table, column, rows`` (the table's rows), ``missing``; e.g.
                    ``m = ds.missing; m[m.missing > 0]`` lists the columns with gaps and
                    ``m.missing / m.rows`` their share (equal to counting ``ds.tables[t].isna()``);
    ``pseudonymized`` customer ids were replaced by keyed hashes at load time
                    (``privacy.pseudonymize_ids`` in dataset.yaml, see
                    :mod:`helpers.data.privacy`).
    """

    name: str
    description: str
    format: str
    timezone: str
    currency: str | None
    default_analysis_date: pd.Timestamp | None
    data_end: pd.Timestamp | None
    tables: MutableMapping[str, pd.DataFrame]
    quality: pd.DataFrame
    issues: pd.DataFrame
    set_aside: dict[str, pd.DataFrame]
    truth: "Truth | None" = None
    path: Path | None = None
    rules: dict[str, str] = field(default_factory=dict)
    pseudonymized: bool = False
    missing: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=MISSING_COLUMNS))

    # table shortcuts ------------------------------------------------------------------------
    def _get(self, name: str) -> pd.DataFrame | None:
        return self.tables.get(name)

    @property
    def orders(self) -> pd.DataFrame:
        return self.tables["orders"]

    customers = property(lambda self: self._get("customers"))
    order_lines = property(lambda self: self._get("order_lines"))
    returns = property(lambda self: self._get("returns"))
    products = property(lambda self: self._get("products"))
    events = property(lambda self: self._get("events"))
    loyalty = property(lambda self: self._get("loyalty"))
    experiments = property(lambda self: self._get("experiments"))
    surveys = property(lambda self: self._get("surveys"))

    def read(self, table: str, columns: Sequence[str] | None = None,
             dictionary: Sequence[str] = ()) -> pd.DataFrame:
        """Table ``table`` with only ``columns`` (in the order given; ``None``: all columns).

        Use it for big tables a chapter needs a few columns of, e.g.
        ``ds.read("events", columns=["customer_id", "event_ts", "event_type"])``: from the
        dataset cache only those Parquet columns are read (the rest never reaches memory), and
        the frame is not kept by the dataset (keep what you get; a second call reads again). A
        table already in memory (small tables, a table read in full before, an uncached load) is
        selected from. The result equals ``ds.tables[table][columns]``: same dtypes, same
        ``RangeIndex``. Raises ``KeyError`` when the dataset has no table ``table`` and
        ``ValueError`` naming the table and the unknown column(s) (with the table's columns).

        ``dictionary``: string columns (among ``columns``) to return dictionary-encoded
        (``pd.ArrowDtype`` dictionary, the distinct values in order of first appearance; equal
        values, other dtypes unchanged). ``helpers.ids`` then works on their integer codes; for
        the id columns of :data:`helpers.data.cache.CODED_COLUMNS` (the events' customer and
        session ids) a cached dataset reads stored codes instead of hashing the strings again.
        """
        if table not in self.tables:
            have = ", ".join(self.tables) or "none"
            raise KeyError(f"dataset {self.name!r} has no table {table!r} (tables: {have})")
        if isinstance(self.tables, LazyTables):
            return self.tables.read(table, columns, dictionary)
        return project(table, self.tables[table], columns, dictionary)

    def columns(self, table: str) -> list[str]:
        """The column names of ``table`` without reading a lazy table from the cache."""
        if table not in self.tables:
            have = ", ".join(self.tables) or "none"
            raise KeyError(f"dataset {self.name!r} has no table {table!r} (tables: {have})")
        if isinstance(self.tables, LazyTables):
            return self.tables.column_names(table)
        return [str(c) for c in self.tables[table].columns]

    def has(self, table: str) -> bool:
        """The table is present and non-empty."""
        if table not in TABLES:
            raise KeyError(f"{table!r} is not a contract table ({', '.join(TABLES)})")
        return table in self.tables and self.n_rows(table) > 0

    def n_rows(self, table: str) -> int:
        """Rows of a loaded table, without reading a lazy table from the cache."""
        if isinstance(self.tables, LazyTables):
            return self.tables.n_rows(table)
        return len(self.tables[table])

    def supports(self, capability: str) -> bool:
        """All tables that ``capability`` (see ``contract.CAPABILITIES``) needs are present."""
        if capability not in CAPABILITIES:
            raise KeyError(f"unknown capability {capability!r} ({', '.join(CAPABILITIES)})")
        return all(self.has(t) for t in CAPABILITIES[capability])

    # reports --------------------------------------------------------------------------------
    def report(self, max_issues: int | None = None) -> str:
        """Plain-text data-quality report: header, quality table, issues (deterministic)."""
        head = [f"Dataset {self.name!r} (format {self.format}, time zone {self.timezone}, "
                f"currency {self.currency or '-'}, default analysis date "
                f"{self.default_analysis_date.date() if self.default_analysis_date is not None else '-'})"
                + (" — customer ids pseudonymized" if self.pseudonymized else "")]
        q = self.quality.copy()
        head.append("\nRows per table (rows_in = rows_kept + rows_set_aside; repaired rows are kept):")
        head.append(q.to_string(index=False))
        if len(self.issues):
            issues = self.issues if max_issues is None else self.issues.head(max_issues)
            head.append(f"\nIssues ({len(self.issues)}):")
            with pd.option_context("display.max_colwidth", 60, "display.width", 200):
                head.append(issues.to_string(index=False))
            if max_issues is not None and len(self.issues) > max_issues:
                head.append(f"... {len(self.issues) - max_issues} more (see ds.issues)")
        else:
            head.append("\nNo issues.")
        reasons = self.set_aside_reasons()
        if len(reasons):
            head.append("\nRows set aside, by reason:")
            head.append(reasons.to_string(index=False))
        return "\n".join(head)

    def set_aside_reasons(self) -> pd.DataFrame:
        """Counts of set-aside rows per table and reason."""
        rows = []
        for table, df in self.set_aside.items():
            if len(df):
                counts = df["reason"].value_counts()
                for reason in sorted(counts.index, key=lambda r: (-counts[r], r)):
                    rows.append(dict(table=table, reason=reason, n_rows=int(counts[reason])))
        return pd.DataFrame(rows, columns=["table", "reason", "n_rows"])

    def __repr__(self) -> str:
        sizes = ", ".join(f"{k}={self.n_rows(k):,}" for k in self.tables)
        return f"<Dataset {self.name!r} ({self.format}): {sizes}>"


def load_dataset(name_or_path: str | Path, *, rules: Mapping[str, str] | None = None,
                 cache: bool | None = None) -> Dataset:
    """Load and validate a dataset by name (``data/<name>/dataset.yaml``) or path.

    ``name_or_path``: a dataset name, a path to a ``dataset.yaml`` (or another ``*.yaml`` with a
    ``format`` key), or a folder holding a ``dataset.yaml``. ``rules``: settings that override
    the ``rules:`` of dataset.yaml (e.g. ``{"exact_duplicate": "error"}``). ``cache``: use the
    validated-dataset cache (:mod:`helpers.data.cache`; default: on unless the environment
    variable ``HANDBOOK_CACHE=off``); a cached load returns the same frames as a fresh one, and
    reads big tables (``events``) only when they are first accessed.

    Raises :class:`~helpers.data.errors.DataContractError` (a ``ValueError``) for schema-level
    problems and for row-level problems whose rule says ``error``; the message names the table,
    column, problem, number of rows, example values and a fix.
    """
    cfg = parse_config(resolve(name_or_path))
    return load_config(cfg, rules=rules, cache=cache)


def validate(cfg: DatasetConfig, book: RuleBook) -> Parts:
    """Read and validate ``cfg`` from its sources (no cache): tables, quality, issues, set-aside.

    Raises :class:`DataContractError` as :func:`load_dataset`.
    """
    ledger = Ledger(book, cfg.name)
    builder = Builder(cfg, ledger)
    if cfg.format == "tables":
        tables = builder.build_tables()
    elif cfg.format == "transactions":
        tables = builder.build_transactions()
    else:
        tables = builder.build_lines()
    ledger.raise_errors()
    quality = ledger.quality(tables)
    set_aside = ledger.set_aside_frames()
    ordered = {}
    for t in TABLES:
        if t in tables:  # a RangeIndex in place (reset_index would copy every column)
            tables[t].index = pd.RangeIndex(len(tables[t]))
            ordered[t] = tables[t]
    del tables
    return Parts(ordered, quality, ledger.issues_frame(), set_aside, missing_counts(ordered))


def load_config(cfg: DatasetConfig, *, rules: Mapping[str, str] | None = None,
                cache: bool | None = None) -> Dataset:
    """Load a parsed :class:`DatasetConfig` (see :func:`load_dataset`)."""
    book = RuleBook(cfg.rules).updated(rules)
    pseudonym_key = cfg.privacy.key(cfg.name)  # None unless privacy.pseudonymize_ids
    store = _cache.Store.for_config(cfg, rules, pseudonym_key) if _cache.enabled(cache) else None
    parts = None
    if store is not None:
        parts = store.read(fallback=lambda: validate(cfg, book).tables)
    if parts is None:
        parts = validate(cfg, book)
        if store is not None:
            store.write(parts)
    truth = None
    if cfg.truth is not None:
        if not (cfg.truth / "customers.parquet").exists():
            raise DataContractError(f"{cfg.path}: truth folder {cfg.truth} has no "
                                    "customers.parquet.")
        from helpers.synth import Truth  # the lead's truth reader (synthetic data only)

        truth = Truth.load(cfg.truth)
        if pseudonym_key is not None:  # the truth follows the pseudonymized ids
            truth.customers = truth.customers.assign(customer_id=pseudonymize(
                truth.customers["customer_id"].astype(STRING), pseudonym_key))
    return Dataset(name=cfg.name, description=cfg.description, format=cfg.format,
                   timezone=cfg.timezone, currency=cfg.currency,
                   default_analysis_date=cfg.analysis_date, data_end=cfg.data_end,
                   tables=parts.tables, quality=parts.quality,
                   issues=parts.issues, set_aside=parts.set_aside, truth=truth,
                   path=cfg.path, rules=dict(book.settings),
                   pseudonymized=pseudonym_key is not None, missing=parts.missing)


__all__ = ["Dataset", "load_dataset", "load_config", "validate", "ISSUE_COLUMNS", "MISSING_COLUMNS",
           "QUALITY_COLUMNS"]
