"""Parsing of ``dataset.yaml``: where a dataset's files are and how they map to the contract.

The schema (every key, with an example) is documented in ``docs/datasets.md``; a summary:

.. code-block:: yaml

    name: my_shop                  # dataset name (defaults to the folder name)
    description: ...
    format: tables                 # tables | transactions | lines
    timezone: Europe/London        # local time zone of the timestamps after loading
    currency: GBP
    analysis_date: 2011-12-09      # default analysis date of the chapters
    data_end: 2011-12-09           # optional: later timestamps are "future" (default analysis_date)
    truth: truth                   # optional folder with planted truth (synthetic data)
    reader: {...}                  # default reader options (see ReaderOptions)
    rules: {exact_duplicate: set_aside, orders.amount.zero_value: keep}
    # format: tables
    tables:
      orders: orders.parquet       # or {file: ..., columns: {contract: source}, codes: {...}, reader: {...}}
    # format: transactions / lines
    source: {file: data.csv}       # or {url: sqlite:///shop.db, table: orders} / {url: ..., query: ...}
    columns: {customer_id: "Customer ID", order_ts: InvoiceDate, ...}   # contract <- source
    codes: {channel: {App: app}}
    lines: {cancellation: {...}, non_product_codes: {...}}               # format: lines only
    exclude: [{column: status, values: [cancelled, test], reason: not a sale}]  # rows set aside
    privacy: {pseudonymize_ids: true, salt_env: HANDBOOK_SALT}         # see helpers.data.privacy
"""
from __future__ import annotations

import difflib
import os
import re
import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd
import yaml

from helpers.contract import TABLES

from .errors import DataContractError
from .privacy import PrivacyOptions, check_currency

FORMATS = ("tables", "transactions", "lines")
TOP_KEYS = ("name", "description", "format", "timezone", "currency", "analysis_date", "data_end",
            "truth", "reader", "rules", "tables", "source", "columns", "codes", "lines",
            "licence", "license", "citation", "notes", "homepage", "exclude", "privacy")
READER_KEYS = ("delimiter", "header", "names", "encoding", "date_format", "decimal", "thousands",
               "skiprows", "na_values", "keep_default_na", "source_timezone", "comment")
TABLE_KEYS = ("file", "url", "table", "query", "columns", "codes", "reader", "exclude")
SOURCE_KEYS = ("file", "url", "table", "query")
LINES_KEYS = ("cancellation", "non_product_codes")


def data_dir() -> Path:
    """The project's ``data/`` folder (from ``helpers.paths`` when available)."""
    try:
        from helpers.paths import DATA  # type: ignore[import-not-found]

        return Path(DATA)
    except ImportError:  # paths.py not there yet: the repository root is two levels up
        return Path(__file__).resolve().parents[2] / "data"


def _config_error(where: str, text: str) -> DataContractError:
    return DataContractError(f"{where}: {text}")


def _check_keys(mapping: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
    for key in mapping:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise _config_error(where, f"unknown key {key!r}.{hint} Allowed keys: "
                                       f"{', '.join(allowed)}.")


def _as_mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _config_error(where, f"expected a mapping, got {type(value).__name__} {value!r}.")
    return dict(value)


def _timestamp(value: Any, where: str) -> pd.Timestamp | None:
    if value is None:
        return None
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise _config_error(where, f"{value!r} is not a date ({exc}); use YYYY-MM-DD.") from None
    if ts.tzinfo is not None:
        raise _config_error(where, f"{value!r} has a time zone; give a local (naive) date.")
    return ts


@dataclass(frozen=True)
class ReaderOptions:
    """How to read a file.

    ``delimiter``: a single character, ``"\\t"``, or ``whitespace`` (runs of spaces/tabs; CSV only);
    ``header``: the first line holds column names (else give ``names``); ``names``: column names
    (replace the header when ``header`` is true); ``encoding`` (default utf-8); ``date_format``:
    one ``strftime`` format for all timestamp columns or a mapping contract column -> format
    (default: ISO 8601); ``decimal``, ``thousands``, ``skiprows``, ``comment``; ``na_values``
    (extra strings read as missing) and ``keep_default_na`` (default true: "", NA, NaN, null, ...
    are missing); ``source_timezone``: time zone of *naive* timestamps in the source (default: they
    are already in the dataset's time zone).
    """

    delimiter: str | None = None
    header: bool = True
    names: tuple[str, ...] | None = None
    encoding: str = "utf-8"
    date_format: str | Mapping[str, str] | None = None
    decimal: str = "."
    thousands: str | None = None
    skiprows: int = 0
    na_values: tuple[str, ...] | None = None
    keep_default_na: bool = True
    source_timezone: str | None = None
    comment: str | None = None

    @classmethod
    def parse(cls, raw: Mapping[str, Any], base: "ReaderOptions | None", where: str) -> "ReaderOptions":
        _check_keys(raw, READER_KEYS, where)
        values = dict(base.__dict__) if base else {}
        for key, value in raw.items():
            if key in ("names", "na_values") and value is not None:
                if not isinstance(value, (list, tuple)):
                    raise _config_error(where, f"{key} must be a list.")
                value = tuple(str(v) for v in value)
            if key == "source_timezone" and value is not None:
                _check_tz(value, f"{where}.source_timezone")
            values[key] = value
        return cls(**values)

    def date_format_for(self, column: str) -> str | None:
        if isinstance(self.date_format, Mapping):
            return self.date_format.get(column)
        return self.date_format


@dataclass(frozen=True)
class SourceSpec:
    """Where a table's rows come from: a file (CSV or Parquet) or a SQL table/query."""

    label: str
    file: Path | None = None
    url: str | None = None
    table: str | None = None
    query: str | None = None
    reader: ReaderOptions = field(default_factory=ReaderOptions)

    @property
    def kind(self) -> str:
        if self.url:
            return "sql"
        assert self.file is not None
        suffixes = [s.lower() for s in self.file.suffixes]
        if suffixes and suffixes[-1] in (".parquet", ".pq"):
            return "parquet"
        return "csv"


@dataclass(frozen=True)
class Exclusion:
    """Source rows that are not what the table holds (test orders, cancelled-before-payment
    orders, internal accounts, ...): selected by ``selector`` (a :class:`Selector` on a *source*
    column), set aside with ``reason`` and listed in ``Dataset.issues`` under rule ``excluded``.
    Never an error: the rows are counted in ``rows_in`` and ``rows_set_aside``."""

    selector: "Selector"
    reason: str


@dataclass(frozen=True)
class TableSpec:
    """One contract table of a ``tables`` dataset: its source, column mapping and code mapping."""

    name: str
    source: SourceSpec
    columns: Mapping[str, str] = field(default_factory=dict)  # contract column -> source column
    codes: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # column -> {value: code}
    exclude: tuple[Exclusion, ...] = ()


@dataclass(frozen=True)
class Selector:
    """Rows whose (source) ``column`` starts with ``prefix`` / equals one of ``values`` /
    matches one of ``patterns`` (regular expressions). Used for cancellation markers and
    non-product codes."""

    column: str
    prefix: str | None = None
    values: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()
    ignore_case: bool = False

    def mask(self, series: pd.Series) -> pd.Series:
        """Boolean mask of the selected rows (computed once per distinct value)."""
        codes, uniques = pd.factorize(series)
        s = pd.Series(uniques).astype(pd.StringDtype("pyarrow")).str.strip()
        if self.ignore_case:
            s = s.str.upper()
        hit = pd.Series(False, index=s.index)
        if self.prefix is not None:
            prefix = self.prefix.upper() if self.ignore_case else self.prefix
            hit |= s.str.startswith(prefix).fillna(False).astype(bool)
        if self.values:
            vals = [v.upper() if self.ignore_case else v for v in self.values]
            hit |= s.isin(vals).fillna(False).astype(bool)
        for pat in self.patterns:
            hit |= s.str.contains(pat, regex=True, case=not self.ignore_case).fillna(False).astype(bool)
        hits = np.append(hit.to_numpy(dtype=bool), False)  # code -1 (missing) -> False
        return pd.Series(hits[codes], index=series.index)

    @classmethod
    def parse(cls, raw: Mapping[str, Any], where: str, list_key: str = "values") -> "Selector":
        _check_keys(raw, ("column", "prefix", "values", "codes", "patterns", "ignore_case",
                          "quantity_sign", "reason"), where)
        if "column" not in raw:
            raise _config_error(where, "needs 'column' (the source column to look at).")
        values = raw.get("values", raw.get("codes", ())) or ()
        patterns = raw.get("patterns", ()) or ()
        for p in patterns:
            try:
                re.compile(p)
            except re.error as exc:
                raise _config_error(where, f"pattern {p!r} is not a valid regular expression: {exc}")
        sel = cls(str(raw["column"]), raw.get("prefix"), tuple(str(v) for v in values),
                  tuple(str(p) for p in patterns), bool(raw.get("ignore_case", False)))
        if sel.prefix is None and not sel.values and not sel.patterns:
            raise _config_error(where, "give at least one of prefix, values/codes, patterns.")
        return sel


@dataclass(frozen=True)
class LinesOptions:
    """Options of the ``lines`` format.

    ``cancellation``: a :class:`Selector` (plus ``quantity_sign``: ``negative`` (default) when
    cancelled quantities are recorded as negative numbers, ``positive`` otherwise) for lines that
    are cancellations/returns; they become ``returns`` rows (amount = quantity x price, positive)
    linked to the customer but to no order. ``non_product_codes``: a :class:`Selector` for lines
    that are not products (postage, fees, adjustments); they are governed by rule
    ``non_product_code`` (default ``set_aside``).
    """

    cancellation: Selector | None = None
    cancellation_sign: str = "negative"
    non_product_codes: Selector | None = None


@dataclass(frozen=True)
class DatasetConfig:
    """A parsed ``dataset.yaml``."""

    name: str
    path: Path  # the yaml file
    format: str
    description: str = ""
    timezone: str = "UTC"
    currency: str | None = None
    analysis_date: pd.Timestamp | None = None
    data_end: pd.Timestamp | None = None
    truth: Path | None = None
    reader: ReaderOptions = field(default_factory=ReaderOptions)
    rules: Mapping[str, str] = field(default_factory=dict)
    tables: Mapping[str, TableSpec] = field(default_factory=dict)
    source: SourceSpec | None = None
    columns: Mapping[str, str] = field(default_factory=dict)
    codes: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    lines: LinesOptions = field(default_factory=LinesOptions)
    exclude: tuple[Exclusion, ...] = ()  # formats transactions / lines (tables: per table)
    privacy: PrivacyOptions = field(default_factory=PrivacyOptions)
    raw: Mapping[str, Any] = field(default_factory=dict)

    @property
    def folder(self) -> Path:
        return self.path.parent


def _check_tz(tz: str, where: str) -> None:
    try:
        zoneinfo.ZoneInfo(str(tz))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise _config_error(where, f"unknown time zone {tz!r}; use an IANA name such as "
                                   "'Europe/London' or 'UTC'.") from None


def _source(raw: Mapping[str, Any], folder: Path, reader: ReaderOptions, where: str,
            keys: tuple[str, ...]) -> SourceSpec:
    _check_keys(raw, keys, where)
    reader = ReaderOptions.parse(_as_mapping(raw.get("reader"), f"{where}.reader"), reader,
                                 f"{where}.reader")
    if raw.get("file") and raw.get("url"):
        raise _config_error(where, "give either 'file' or 'url', not both.")
    if raw.get("file"):
        path = Path(str(raw["file"]))
        path = path if path.is_absolute() else folder / path
        return SourceSpec(label=path.name, file=path, reader=reader)
    if raw.get("url"):
        url = os.path.expandvars(str(raw["url"]))
        m = re.match(r"^(sqlite(?:\+\w+)?:///)(?!/)(.+)$", url)
        if m and m.group(2) != ":memory:":  # relative SQLite path: relative to the yaml's folder
            url = m.group(1) + str((folder / m.group(2)).resolve())
        table, query = raw.get("table"), raw.get("query")
        if bool(table) == bool(query):
            raise _config_error(where, "a SQL source needs exactly one of 'table' or 'query'.")
        label = f"SQL table {table}" if table else "SQL query"
        return SourceSpec(label=label, url=url, table=table, query=query, reader=reader)
    raise _config_error(where, "needs 'file' (a CSV or Parquet file) or 'url' (a SQLAlchemy "
                               "database URL) with 'table' or 'query'.")


def _mapping_of_str(raw: Any, where: str) -> dict[str, str]:
    m = _as_mapping(raw, where)
    return {str(k): str(v) for k, v in m.items()}


def _codes(raw: Any, where: str) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for col, mapping in _as_mapping(raw, where).items():
        out[str(col)] = {str(k): str(v) for k, v in _as_mapping(mapping, f"{where}.{col}").items()}
    return out


def _exclusions(raw: Any, where: str) -> tuple[Exclusion, ...]:
    """``exclude:`` — a list of selectors, each with an optional ``reason``."""
    if raw is None:
        return ()
    if isinstance(raw, Mapping):
        raw = [raw]
    if not isinstance(raw, list):
        raise _config_error(where, "exclude must be a list of {column: ..., values: [...], "
                                   "reason: ...} entries.")
    out = []
    for i, item in enumerate(raw):
        iw = f"{where}[{i}]"
        item = _as_mapping(item, iw)
        if "quantity_sign" in item:
            raise _config_error(iw, "unknown key 'quantity_sign' (it belongs to "
                                    "lines.cancellation).")
        sel = Selector.parse(item, iw)
        what = (f"{sel.column} " + (f"starts with {sel.prefix!r}" if sel.prefix else
                                   "in " + ", ".join(sel.values) if sel.values else
                                   "matches " + ", ".join(sel.patterns)))
        out.append(Exclusion(sel, str(item.get("reason") or f"excluded ({what})")))
    return tuple(out)


def _discover_tables(folder: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    for name in TABLES:
        for suffix in (".parquet", ".csv", ".csv.gz", ".tsv"):
            if (folder / f"{name}{suffix}").exists():
                found[name] = f"{name}{suffix}"
                break
    return found


def parse_config(path: Path) -> DatasetConfig:
    """Read and check a ``dataset.yaml``. Raises :class:`DataContractError` on any mistake."""
    where = str(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise _config_error(where, f"not valid YAML: {exc}") from None
    raw = _as_mapping(raw, where)
    _check_keys(raw, TOP_KEYS, where)
    folder = path.parent
    fmt = raw.get("format", "tables")
    if fmt not in FORMATS:
        hint = (" A database table is a source, not a format: use format tables (source per "
                "table: {url: ..., table: ...}) or transactions/lines (source: {url: ..., "
                "table: ...})." if fmt == "sql" else "")
        raise _config_error(where, f"format {fmt!r} is not one of {', '.join(FORMATS)}.{hint}")
    tz = str(raw.get("timezone", "UTC"))
    _check_tz(tz, f"{where}: timezone")
    currency = raw.get("currency")
    if currency is not None:
        currency = check_currency(currency, where)
    privacy = PrivacyOptions.parse(_as_mapping(raw.get("privacy"), f"{where}: privacy"),
                                   f"{where}: privacy")
    reader = ReaderOptions.parse(_as_mapping(raw.get("reader"), f"{where}: reader"), None,
                                 f"{where}: reader")
    rules = _mapping_of_str(raw.get("rules"), f"{where}: rules")
    truth = raw.get("truth")
    truth_path = None
    if truth:
        truth_path = Path(str(truth))
        truth_path = truth_path if truth_path.is_absolute() else folder / truth_path
    common = dict(
        name=str(raw.get("name") or (folder.name if path.name == "dataset.yaml" else path.stem)),
        path=path, format=fmt, description=str(raw.get("description") or "").strip(),
        timezone=tz, currency=currency,
        analysis_date=_timestamp(raw.get("analysis_date"), f"{where}: analysis_date"),
        data_end=_timestamp(raw.get("data_end"), f"{where}: data_end"),
        truth=truth_path, reader=reader, rules=rules, privacy=privacy, raw=raw,
    )
    if fmt == "tables":
        for key in ("source", "columns", "codes", "lines", "exclude"):
            if key in raw:
                raise _config_error(where, f"key {key!r} belongs to formats 'transactions' and "
                                           "'lines'; with format 'tables' give them per table "
                                           "under 'tables'.")
        tables_raw = raw.get("tables")
        if tables_raw is None:
            tables_raw = _discover_tables(folder)
        elif isinstance(tables_raw, list):
            tables_raw = {str(t): None for t in tables_raw}
        tables_raw = _as_mapping(tables_raw, f"{where}: tables")
        specs: dict[str, TableSpec] = {}
        for tname, traw in tables_raw.items():
            twhere = f"{where}: tables.{tname}"
            if tname not in TABLES:
                close = difflib.get_close_matches(str(tname), TABLES, n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise _config_error(twhere, f"{tname!r} is not a contract table.{hint} Tables: "
                                            f"{', '.join(TABLES)}.")
            if traw is None:
                traw = _discover_tables(folder).get(tname)
                if traw is None:
                    raise _config_error(twhere, f"no file {tname}.parquet or {tname}.csv in {folder}.")
            if isinstance(traw, str):
                traw = {"file": traw}
            traw = _as_mapping(traw, twhere)
            _check_keys(traw, TABLE_KEYS, twhere)
            src = _source({k: v for k, v in traw.items() if k in SOURCE_KEYS + ("reader",)},
                          folder, reader, twhere, SOURCE_KEYS + ("reader",))
            specs[tname] = TableSpec(tname, src, _mapping_of_str(traw.get("columns"),
                                                                 f"{twhere}.columns"),
                                     _codes(traw.get("codes"), f"{twhere}.codes"),
                                     _exclusions(traw.get("exclude"), f"{twhere}.exclude"))
        if not specs:
            raise _config_error(where, f"format 'tables' but no tables listed and no "
                                       f"<table>.parquet/.csv files found in {folder}.")
        return DatasetConfig(tables=specs, **common)
    # transactions / lines
    if "tables" in raw:
        raise _config_error(where, f"key 'tables' belongs to format 'tables' (this is {fmt!r}).")
    src_raw = raw.get("source")
    if src_raw is None:
        raise _config_error(where, f"format {fmt!r} needs 'source' ({{file: ...}} or "
                                   "{url: ..., table: ...}).")
    if isinstance(src_raw, str):
        src_raw = {"file": src_raw}
    src = _source(_as_mapping(src_raw, f"{where}: source"), folder, reader, f"{where}: source",
                  SOURCE_KEYS + ("reader",))
    columns = _mapping_of_str(raw.get("columns"), f"{where}: columns")
    codes = _codes(raw.get("codes"), f"{where}: codes")
    lines = LinesOptions()
    if fmt == "lines":
        lraw = _as_mapping(raw.get("lines"), f"{where}: lines")
        _check_keys(lraw, LINES_KEYS, f"{where}: lines")
        canc = noncode = None
        sign = "negative"
        if lraw.get("cancellation") is not None:
            craw = _as_mapping(lraw["cancellation"], f"{where}: lines.cancellation")
            sign = str(craw.get("quantity_sign", "negative"))
            if sign not in ("negative", "positive"):
                raise _config_error(f"{where}: lines.cancellation",
                                    "quantity_sign must be 'negative' or 'positive'.")
            canc = Selector.parse(craw, f"{where}: lines.cancellation")
        if lraw.get("non_product_codes") is not None:
            noncode = Selector.parse(_as_mapping(lraw["non_product_codes"],
                                                 f"{where}: lines.non_product_codes"),
                                     f"{where}: lines.non_product_codes")
        lines = LinesOptions(canc, sign, noncode)
    elif "lines" in raw:
        raise _config_error(where, "key 'lines' belongs to format 'lines'.")
    return DatasetConfig(source=src, columns=columns, codes=codes, lines=lines,
                         exclude=_exclusions(raw.get("exclude"), f"{where}: exclude"), **common)


def available() -> dict[str, Path]:
    """Dataset names found under ``data/``: ``<name>/dataset.yaml`` and ``<folder>/<name>.yaml``."""
    out: dict[str, Path] = {}
    root = data_dir()
    if not root.is_dir():
        return out
    for yml in sorted(root.glob("*/*.yaml")):
        if yml.name == "dataset.yaml":
            out.setdefault(yml.parent.name, yml)
        else:
            try:
                head = yaml.safe_load(yml.read_text(encoding="utf-8"))
            except (yaml.YAMLError, OSError, UnicodeDecodeError):
                continue
            if isinstance(head, Mapping) and "format" in head:
                out.setdefault(str(head.get("name") or yml.stem), yml)
    return out


def _is_name(name_or_path: str | os.PathLike[str]) -> bool:
    text = os.fspath(name_or_path)
    return bool(isinstance(name_or_path, str) and re.fullmatch(r"[A-Za-z0-9_.-]+", text)
                and not text.endswith((".yaml", ".yml")))


def locate(name_or_path: str | os.PathLike[str], cwd: str | os.PathLike[str] | None = None) -> str:
    """The dataset argument in a form that means the same thing from any working directory.

    A dataset name (``synthetic``, a folder under ``data/``) is returned unchanged; an absolute
    path unchanged; a relative path is taken from ``cwd`` (default: the working directory) when
    it exists there, else from the project root, and returned as an absolute path. A relative
    path found in neither place is returned unchanged (loading it reports the error).

    This is the one rule :func:`resolve` applies; the runner applies it once, in the caller's
    folder, and hands the result to the notebooks (which run in ``notebooks/``), so that the
    data check and every chapter read the same dataset.
    """
    text = os.fspath(name_or_path)
    if _is_name(name_or_path) and ((data_dir() / text / "dataset.yaml").is_file()
                                   or text in available()):
        return text
    path = Path(text).expanduser()
    if path.is_absolute():
        return text
    here = Path(cwd) if cwd is not None else Path.cwd()
    for base in (here, data_dir().parent):
        candidate = base / path
        if candidate.exists():
            return os.path.normpath(candidate.absolute())
    return text


def resolve(name_or_path: str | os.PathLike[str]) -> Path:
    """The ``dataset.yaml`` meant by a dataset name or a path (file or folder).

    A name is looked up as ``data/<name>/dataset.yaml``, then among :func:`available`. A relative
    path is taken from the working directory, else from the project root (so that
    ``examples/own_data`` works from the command line and inside a notebook alike; see
    :func:`locate`).
    """
    text = os.fspath(name_or_path)
    if _is_name(name_or_path):
        direct = data_dir() / text / "dataset.yaml"
        if direct.is_file():
            return direct
        names = available()
        if text in names:
            return names[text]
    path = Path(locate(text)).expanduser()
    if path.is_dir():
        if (path / "dataset.yaml").is_file():
            return path / "dataset.yaml"
        raise DataContractError(f"{path}: folder has no dataset.yaml.")
    if path.is_file():
        return path
    names = sorted(available())
    close = difflib.get_close_matches(text, names, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise DataContractError(
        f"No dataset {text!r}: not a name under {data_dir()} and not a path to a dataset.yaml or "
        f"a folder holding one.{hint} Available: {', '.join(names) or 'none'}.")
