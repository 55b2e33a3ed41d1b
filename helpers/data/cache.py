"""A cache of validated datasets, and lazy access to their big tables.

Validating a dataset (reading, typing, checking every row) costs seconds at 20k customers and
minutes at a million; every chapter used to do it again. With the cache, the first load of a
dataset (normally the runner's data check) validates it once and writes the result — the
contract tables, ``quality``, ``issues``, ``set_aside`` and ``missing`` — as Parquet files into one folder per
*cache key*; every later load reads ``quality``, ``issues``, ``set_aside`` and the small tables at
once and each big table (:data:`LAZY_MIN_ROWS` rows or more, e.g. ``events``) only when a chapter
first touches it (:class:`LazyTables`). The frames read back are equal to a fresh load's, dtypes
and indexes included (``tests/test_data_cache.py`` checks it).

The key hashes everything that can change the result: the cache format, the loader's code
(``helpers/data/*.py``, ``helpers/contract.py`` and ``helpers/ids.py``), the pandas/pyarrow/numpy versions, the
``dataset.yaml`` path and bytes, each source file's resolved path, size and modification time
(ns), the ``rules`` passed to ``load_dataset``, a keyed digest of the privacy salt when customer
ids are pseudonymized (HMAC of a constant; never the salt), and today's date when the dataset
gives neither ``data_end`` nor ``analysis_date`` (then "future" means after today). Datasets with
a SQL source are never cached (the database can change without any file changing), nor are
datasets whose files total less than :data:`DEFAULT_MIN_BYTES` (validating them is about as fast
as reading a cache), nor loads that fail (errors are raised by a fresh load every time).

Environment variables:

``HANDBOOK_CACHE``            ``off`` (or ``0``, ``false``, ``no``) disables the cache;
``HANDBOOK_CACHE_DIR``        the cache folder (default ``<project root>/.cache/datasets``);
``HANDBOOK_CACHE_MIN_BYTES``  smallest dataset (sum of source file sizes) that is cached;
``HANDBOOK_CACHE_MAX_ENTRIES`` entries kept (least recently used are removed; default 8).

Safety: an entry is written into a temporary folder and renamed into place when complete, so a
reader never sees a half-written entry and two processes writing the same key cannot corrupt it
(the second rename fails and its copy is discarded). An entry that cannot be read back exactly
(missing or truncated file, unexpected dtype, other key) is ignored and rebuilt. Only contract
columns (plus ``reason`` in set-aside rows) are stored — the loader never keeps other source
columns — and :func:`write` refuses any other column, so names, e-mails or phones cannot reach
the cache; with pseudonymization on, only pseudonyms are stored. The folder is created with
mode 0700.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import hmac
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator, MutableMapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from helpers import ids
from helpers.contract import TABLES

from .config import DatasetConfig

#: Bump when the layout of an entry changes.
FORMAT_VERSION = 3  # 2: missing.parquet; 3: dictionary-coded id columns (CODED_COLUMNS)
CACHE_ENV = "HANDBOOK_CACHE"
CACHE_DIR_ENV = "HANDBOOK_CACHE_DIR"
CACHE_MIN_BYTES_ENV = "HANDBOOK_CACHE_MIN_BYTES"
CACHE_MAX_ENTRIES_ENV = "HANDBOOK_CACHE_MAX_ENTRIES"
#: Datasets smaller than this (sum of source file sizes) are not cached.
DEFAULT_MIN_BYTES = 1 << 20
DEFAULT_MAX_ENTRIES = 8
#: Tables with at least this many rows are read from the cache on first access only.
LAZY_MIN_ROWS = 1_000_000
_OFF = {"0", "off", "false", "no"}
_STRING = pd.StringDtype("pyarrow")
#: Column names an entry may hold: contract columns, the set-aside ``reason`` and the
#: ``cancellation_id`` of set-aside cancellation lines (format ``lines``).
ALLOWED_COLUMNS = frozenset({c for t in TABLES.values() for c in t.column_names}
                            | {"reason", "cancellation_id"})
_DICTIONARY_COLUMNS = frozenset(c.name for t in TABLES.values() for c in t.columns
                                if c.kind in ("category", "bool"))
#: Id columns of big tables that are also stored dictionary-encoded (``tables/<table>.<column>
#: .arrow``: int32 codes and the distinct values in order of first appearance, one Arrow IPC
#: file), so ``read(..., dictionary=[...])`` returns them without hashing tens of millions of
#: strings: the chapters that use the events (01, 02, 04) work on integer codes of the customer
#: and session ids, and encoding 50M ids costs ~10 s per column each time.
CODED_COLUMNS: dict[str, tuple[str, ...]] = {"events": ("customer_id", "session_id")}
#: Reads some columns of a stored table: ``(columns, dictionary columns) -> frame``.
ColumnLoader = Callable[[Sequence[str], Sequence[str]], pd.DataFrame]
_SMALL_FRAMES = {"quality": ("table", "rows_in", "rows_kept", "rows_repaired", "rows_set_aside"),
                 "issues": ("table", "column", "rule", "action", "n_rows", "examples"),
                 "missing": ("table", "column", "rows", "missing")}


def enabled(flag: bool | None = None) -> bool:
    """Whether loads use the cache: ``flag`` when given, else ``HANDBOOK_CACHE`` (default on)."""
    if flag is not None:
        return bool(flag)
    return os.environ.get(CACHE_ENV, "").strip().lower() not in _OFF


def cache_dir() -> Path:
    """The cache folder (``HANDBOOK_CACHE_DIR`` or ``<project root>/.cache/datasets``)."""
    env = os.environ.get(CACHE_DIR_ENV, "").strip()
    if env:
        return Path(env).expanduser().absolute()
    from helpers.paths import ROOT

    return ROOT / ".cache" / "datasets"


def _int_env(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, "").strip() or default)
    except ValueError:
        return default


@lru_cache(maxsize=1)
def code_version() -> str:
    """SHA-256 of the loader's source files (``helpers/data/*.py``, ``helpers/contract.py`` and
    ``helpers/ids.py``, whose lookups the checks use)."""
    here = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for p in sorted(here.glob("*.py")) + [here.parent / "contract.py", here.parent / "ids.py"]:
        h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def _source_files(cfg: DatasetConfig) -> list[Path] | None:
    """The source files of ``cfg`` (``None``: a SQL source, not cacheable)."""
    sources = [cfg.source] if cfg.source is not None else [s.source for s in cfg.tables.values()]
    files = []
    for src in sources:
        if src is None or src.file is None:
            return None
        files.append(Path(src.file))
    return files


def privacy_digest(key: bytes) -> str:
    """A digest that changes with the pseudonymization key but does not reveal it."""
    return hmac.new(key, b"crm-handbook dataset cache", hashlib.sha256).hexdigest()


def key_inputs(cfg: DatasetConfig, rules: Mapping[str, str] | None,
               pseudonym_key: bytes | None) -> dict[str, Any] | None:
    """Everything the cache key hashes (``None`` when the dataset is not cacheable: a SQL
    source, a missing file, or smaller than ``HANDBOOK_CACHE_MIN_BYTES``)."""
    files = _source_files(cfg)
    if files is None:
        return None
    stats = []
    total = 0
    for p in files:
        try:
            st = p.stat()
        except OSError:
            return None  # a fresh load reports the missing file
        total += st.st_size
        stats.append([str(p.resolve()), st.st_size, st.st_mtime_ns])
    if total < _int_env(CACHE_MIN_BYTES_ENV, DEFAULT_MIN_BYTES):
        return None
    try:
        config_bytes = Path(cfg.path).read_bytes()
    except OSError:
        return None
    today = None
    if cfg.data_end is None and cfg.analysis_date is None:
        today = _dt.date.today().isoformat()  # the loader's "future" limit is today then
    return {
        "format": FORMAT_VERSION, "code": code_version(),
        "versions": [pd.__version__, pa.__version__, np.__version__],
        "config": str(Path(cfg.path).resolve()),
        "config_sha256": hashlib.sha256(config_bytes).hexdigest(),
        "files": stats,
        "rules": sorted((str(k), str(v)) for k, v in (rules or {}).items()),
        "privacy": privacy_digest(pseudonym_key) if pseudonym_key is not None else None,
        "today": today,
    }


def cache_key(inputs: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


# -- lazy tables ---------------------------------------------------------------------------------
class LazyTables(MutableMapping[str, pd.DataFrame]):
    """``Dataset.tables`` of a cached dataset: a dict-like mapping whose frames are read from the
    cache on first access (then kept). :meth:`n_rows` answers without reading.

    ``fallback`` (optional) returns freshly validated tables; it is used, once, if a cache file
    has disappeared or is unreadable when a table is first accessed. ``columns``: table -> its
    column names; ``column_loaders``: table -> a function reading only some columns (both
    optional; used by :meth:`read`, which reads a few columns of a big table without the rest).
    """

    def __init__(self, loaders: Mapping[str, Callable[[], pd.DataFrame]],
                 rows: Mapping[str, int],
                 fallback: Callable[[], Mapping[str, pd.DataFrame]] | None = None,
                 columns: Mapping[str, Sequence[str]] | None = None,
                 column_loaders: Mapping[str, ColumnLoader] | None = None):
        self._loaders = dict(loaders)
        self._rows = dict(rows)
        self._columns = {k: list(v) for k, v in (columns or {}).items()}
        self._column_loaders = dict(column_loaders or {})
        self._frames: dict[str, pd.DataFrame] = {}
        self._fallback = fallback
        self._fresh: Mapping[str, pd.DataFrame] | None = None

    def __getitem__(self, name: str) -> pd.DataFrame:
        if name in self._frames:
            return self._frames[name]
        if name not in self._loaders:
            raise KeyError(name)
        try:
            df = self._loaders[name]()
        except Exception:  # noqa: BLE001 - a cache file removed or damaged under us
            if self._fallback is None:
                raise
            if self._fresh is None:
                self._fresh = self._fallback()
            df = self._fresh[name]
        self._frames[name] = df
        return df

    def _fresh_tables(self) -> Mapping[str, pd.DataFrame]:
        if self._fallback is None:
            raise RuntimeError("no fallback")  # pragma: no cover - only called with one
        if self._fresh is None:
            self._fresh = self._fallback()
        return self._fresh

    def column_names(self, name: str) -> list[str]:
        """The columns of table ``name`` without reading it."""
        if name in self._frames:
            return [str(c) for c in self._frames[name].columns]
        if name in self._columns:
            return list(self._columns[name])
        return [str(c) for c in self[name].columns]

    def read(self, name: str, columns: Sequence[str] | None = None,
             dictionary: Sequence[str] = ()) -> pd.DataFrame:
        """Table ``name`` with only ``columns`` (in that order; ``None``: all, as ``self[name]``).

        A table already in memory is selected from; otherwise only those columns are read from
        the cache file, and the result is *not* kept (each call reads again; keep the frame you
        get). Same dtypes and index as the full table, except the string columns named in
        ``dictionary``, which come back dictionary-encoded (:func:`helpers.ids.dictionary_encoded`;
        from the stored codes when the entry has them, see :data:`CODED_COLUMNS`). Unknown names
        raise (see :func:`select_columns`).
        """
        if name not in self._loaders:
            raise KeyError(name)
        if (columns is None and not dictionary) or name in self._frames \
                or name not in self._column_loaders:
            return project(name, self[name], columns, dictionary)
        wanted = check_columns(name, self.column_names(name),
                               self.column_names(name) if columns is None else columns)
        coded = check_dictionary(name, wanted, dictionary)
        try:
            return self._column_loaders[name](wanted, coded)
        except Exception:  # noqa: BLE001 - a cache file removed or damaged under us
            if self._fallback is None:
                raise
            return project(name, self._fresh_tables()[name], wanted, coded)

    def __setitem__(self, name: str, df: pd.DataFrame) -> None:
        self._frames[name] = df
        self._rows[name] = len(df)
        self._columns[name] = [str(c) for c in df.columns]
        self._column_loaders.pop(name, None)
        self._loaders.setdefault(name, lambda: df)

    def __delitem__(self, name: str) -> None:
        del self._loaders[name]
        self._rows.pop(name, None)
        self._frames.pop(name, None)
        self._columns.pop(name, None)
        self._column_loaders.pop(name, None)

    def __contains__(self, name: object) -> bool:  # without reading (Mapping's would read)
        return name in self._loaders

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._loaders))

    def __len__(self) -> int:
        return len(self._loaders)

    def n_rows(self, name: str) -> int:
        """Rows of table ``name`` without reading it."""
        if name in self._frames:
            return len(self._frames[name])
        return self._rows[name]

    def loaded(self) -> list[str]:
        """Tables read so far."""
        return [n for n in self._loaders if n in self._frames]

    def __repr__(self) -> str:
        parts = [f"{n!r}: <{self._rows.get(n, '?')} rows{'' if n in self._frames else ', not read yet'}>"
                 for n in self._loaders]
        return "LazyTables({" + ", ".join(parts) + "})"


def check_columns(table: str, available: Sequence[str], columns: Sequence[str]) -> list[str]:
    """``columns`` as a list after checking them against the ``available`` columns of
    ``table``: a ``ValueError`` names the table, the unknown columns and the available ones (or
    the columns listed twice)."""
    if isinstance(columns, str):
        raise TypeError(f"columns of {table!r}: give a list of names, not the string {columns!r}")
    wanted = [str(c) for c in columns]
    unknown = [c for c in wanted if c not in available]
    if unknown:
        raise ValueError(f"table {table!r} has no column {', '.join(map(repr, unknown))}; "
                         f"its columns are: {', '.join(available)}")
    twice = sorted({c for c in wanted if wanted.count(c) > 1})
    if twice:
        raise ValueError(f"columns of {table!r} listed more than once: {', '.join(twice)}")
    return wanted


def check_dictionary(table: str, columns: Sequence[str], dictionary: Sequence[str]) -> list[str]:
    """``dictionary`` (columns to return dictionary-encoded) as a list, each one of ``columns``
    (a ``ValueError`` names the others)."""
    if isinstance(dictionary, str):
        raise TypeError(f"dictionary columns of {table!r}: give a list of names, "
                        f"not the string {dictionary!r}")
    coded = [str(c) for c in dictionary]
    other = [c for c in coded if c not in columns]
    if other:
        raise ValueError(f"dictionary: {', '.join(map(repr, other))} of table {table!r} "
                         f"is not among the columns read ({', '.join(columns)})")
    return coded


def encode_columns(df: pd.DataFrame, coded: Sequence[str]) -> pd.DataFrame:
    """``df`` with its string columns in ``coded`` dictionary-encoded (others unchanged)."""
    if not coded:
        return df
    df = df.copy(deep=False)
    for c in coded:
        df[c] = ids.dictionary_encoded(df[c])
    return df


def project(table: str, df: pd.DataFrame, columns: Sequence[str] | None,
            dictionary: Sequence[str] = ()) -> pd.DataFrame:
    """``df`` itself (``columns`` None, no ``dictionary``), else ``df[columns]`` (all columns
    for None) with the ``dictionary`` columns encoded: the in-memory side of ``read``."""
    if columns is None and not dictionary:
        return df
    df = select_columns(table, df, [str(c) for c in df.columns] if columns is None else columns)
    return encode_columns(df, check_dictionary(table, list(df.columns), dictionary))


def select_columns(table: str, df: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """``df[columns]`` (a new frame; checked with :func:`check_columns`)."""
    wanted = check_columns(table, [str(c) for c in df.columns], columns)
    return df[wanted]


# -- entries -------------------------------------------------------------------------------------
@dataclass
class Parts:
    """What a validated load produces (and the cache stores)."""

    tables: MutableMapping[str, pd.DataFrame]
    quality: pd.DataFrame
    issues: pd.DataFrame
    set_aside: dict[str, pd.DataFrame]
    missing: pd.DataFrame  # missing values per table and column (validate.missing_counts)


def _dtype_tag(dtype: Any) -> str:
    if isinstance(dtype, pd.StringDtype):
        return f"string[{dtype.storage}]"
    return str(dtype)


def _types_mapper(t: pa.DataType) -> object | None:
    if pa.types.is_dictionary(t):  # a column read with ``read_dictionary``: kept encoded
        return pd.ArrowDtype(t)
    return _STRING if pa.types.is_string(t) or pa.types.is_large_string(t) else None


def _write_frame(df: pd.DataFrame, path: Path, check_columns: bool) -> dict[str, Any]:
    if check_columns:
        extra = [c for c in df.columns if c not in ALLOWED_COLUMNS]
        if extra:
            raise ValueError(f"not a contract column: {extra}")
    # Parquet dictionary pages for codes (few distinct values) only: building a dictionary of
    # ids or session keys costs writing time (a hash table per column chunk) and saves little
    dictionary = [str(c) for c in df.columns if c in _DICTIONARY_COLUMNS]
    # no min/max statistics: the cache is always read whole-column (no filters), and computing
    # them for tens of millions of strings is a quarter of the writing time
    pq.write_table(pa.Table.from_pandas(df, preserve_index=None), path,
                   use_dictionary=dictionary if check_columns else True, write_statistics=False)
    return {"rows": int(len(df)), "dtypes": {str(c): _dtype_tag(df[c].dtype) for c in df.columns}}


def _read_frame(path: Path, info: Mapping[str, Any],
                columns: Sequence[str] | None = None,
                dictionary: Sequence[str] = ()) -> pd.DataFrame:
    """A stored frame (only ``columns``, in that order); the ``dictionary`` columns (stored
    with dictionary pages) are read dictionary-encoded, without building their strings."""
    tbl = pq.read_table(path, columns=None if columns is None else list(columns),
                        read_dictionary=list(dictionary) or None)
    df = tbl.to_pandas(types_mapper=_types_mapper)
    dtypes = info["dtypes"]
    if columns is not None:
        dtypes = {c: dtypes[c] for c in columns}
    dtypes = {c: ("dictionary" if c in dictionary else t) for c, t in dtypes.items()}
    for c, tag in dtypes.items():
        if tag == "object" and df[c].dtype != object:
            df[c] = tbl.column(c).to_pandas().to_numpy()
    got = {str(c): "dictionary" if c in dictionary and ids.is_dictionary(df[c])
           else _dtype_tag(df[c].dtype) for c in df.columns}
    if got != dtypes or len(df) != info["rows"]:
        raise ValueError(f"{path.name}: read back {got} ({len(df)} rows), stored {dtypes} "
                         f"({info['rows']} rows)")
    return df


def _coded_file(table: str, column: str) -> str:
    return f"{table}.{column}.arrow"


def _write_coded(df: pd.DataFrame, table: str, folder: Path) -> dict[str, str]:
    """Store the :data:`CODED_COLUMNS` of ``table`` that hold strings as dictionary arrays
    (Arrow IPC, one dictionary for the whole column); returns column -> file name."""
    out: dict[str, str] = {}
    for c in CODED_COLUMNS.get(table, ()):
        if c not in df.columns or not isinstance(df[c].dtype, pd.StringDtype):
            continue
        enc = pa.chunked_array(ids.dictionary_encoded(df[c]).array.__arrow_array__())
        name = _coded_file(table, c)
        with pa.ipc.new_file(folder / name, pa.schema([(c, enc.type)])) as writer:
            writer.write_table(pa.table({c: enc}))
        out[c] = name
    return out


def _read_coded(path: Path, column: str, rows: int) -> pd.Series:
    with pa.OSFile(str(path), "rb") as f:
        col = pa.ipc.open_file(f).read_all().column(0)
    if len(col) != rows or not pa.types.is_dictionary(col.type):
        raise ValueError(f"{path.name}: {len(col)} rows of {col.type}, expected {rows} codes")
    return pd.Series(pd.arrays.ArrowExtensionArray(col), name=column, copy=False)


def _read_columns(path: Path, info: Mapping[str, Any], columns: Sequence[str],
                  coded: Sequence[str]) -> pd.DataFrame:
    """``columns`` of a stored table; those in ``coded`` dictionary-encoded, from their stored
    codes where the entry has them (no Parquet read of those strings)."""
    stored = info.get("coded", {})
    from_codes = [c for c in coded if c in stored]
    # codes (category columns) kept in Parquet's dictionary pages: read without the strings
    paged = [c for c in coded if c not in stored and c in _DICTIONARY_COLUMNS
             and info["dtypes"].get(c) == "string[pyarrow]"]
    df = _read_frame(path, info, [c for c in columns if c not in from_codes], paged)
    for c in sorted(from_codes, key=list(columns).index):  # inserted in place: no frame copy
        df.insert(list(columns).index(c), c, _read_coded(path.parent / stored[c], c,
                                                         int(info["rows"])))
    return encode_columns(df, [c for c in coded if c not in from_codes and c not in paged])


def _entry_name(name: str, key: str) -> str:
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)[:40] or "dataset"
    return f"{safe}-{key[:24]}"


class Store:
    """One dataset's cache entry (``<cache dir>/<name>-<key>/``)."""

    def __init__(self, root: Path, name: str, key: str):
        self.root = root
        self.key = key
        self.path = root / _entry_name(name, key)

    @classmethod
    def for_config(cls, cfg: DatasetConfig, rules: Mapping[str, str] | None,
                   pseudonym_key: bytes | None) -> "Store | None":
        inputs = key_inputs(cfg, rules, pseudonym_key)
        if inputs is None:
            return None
        return cls(cache_dir(), cfg.name, cache_key(inputs))

    # reading -----------------------------------------------------------------------------------
    def read(self, fallback: Callable[[], Mapping[str, pd.DataFrame]] | None = None
             ) -> Parts | None:
        """The stored parts (big tables lazily), or ``None`` for a missing or unusable entry."""
        meta_path = self.path / "meta.json"
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            if meta.get("version") != FORMAT_VERSION or meta.get("key") != self.key:
                raise ValueError("other version or key")
            small = {n: _read_frame(self.path / f"{n}.parquet", meta["frames"][n])
                     for n in _SMALL_FRAMES}
            set_aside = {t: _read_frame(self.path / "set_aside" / f"{t}.parquet", info)
                         for t, info in meta["set_aside"].items()}
            loaders: dict[str, Callable[[], pd.DataFrame]] = {}
            column_loaders: dict[str, ColumnLoader] = {}
            rows: dict[str, int] = {}
            columns: dict[str, list[str]] = {}
            for t, info in meta["tables"].items():
                path = self.path / "tables" / f"{t}.parquet"
                if not path.is_file():
                    raise FileNotFoundError(path)
                rows[t] = int(info["rows"])
                columns[t] = list(info["dtypes"])
                if rows[t] >= LAZY_MIN_ROWS:
                    loaders[t] = (lambda p=path, i=info: _read_frame(p, i))
                    column_loaders[t] = (lambda cols, coded, p=path, i=info:
                                         _read_columns(p, i, cols, coded))
                else:
                    df = _read_frame(path, info)
                    loaders[t] = (lambda d=df: d)
        except Exception:  # noqa: BLE001 - any damage means: ignore the entry and rebuild it
            return None
        try:
            os.utime(meta_path)  # least recently used entries are pruned first
        except OSError:
            pass
        tables = LazyTables(loaders, rows, fallback, columns, column_loaders)
        for t in rows:
            if rows[t] < LAZY_MIN_ROWS:
                tables[t]  # small tables are read already: keep them
        return Parts(tables, small["quality"], small["issues"], set_aside, small["missing"])

    # writing -----------------------------------------------------------------------------------
    def write(self, parts: Parts, inputs_note: Mapping[str, Any] | None = None) -> bool:
        """Store ``parts`` atomically; ``False`` when the entry could not be written (the load
        itself is not affected). Raises ``ValueError`` for a non-contract column (never
        written)."""
        tmp = self.root / f".tmp-{self.path.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
            (tmp / "tables").mkdir(parents=True)
            (tmp / "set_aside").mkdir()
            meta: dict[str, Any] = {"version": FORMAT_VERSION, "key": self.key, "frames": {},
                                    "tables": {}, "set_aside": {}}
            for n in _SMALL_FRAMES:
                meta["frames"][n] = _write_frame(getattr(parts, n), tmp / f"{n}.parquet", False)
            # the coded id columns are encoded on a second thread while the tables are written
            # (Arrow's hashing and Parquet's encoding both release the GIL)
            with ThreadPoolExecutor(max_workers=1) as pool:
                coded = {t: pool.submit(_write_coded, df, t, tmp / "tables")
                         for t, df in parts.tables.items()
                         if t in CODED_COLUMNS and len(df) >= LAZY_MIN_ROWS}
                for t, df in parts.tables.items():
                    meta["tables"][t] = _write_frame(df, tmp / "tables" / f"{t}.parquet", True)
                for t, job in coded.items():
                    meta["tables"][t]["coded"] = job.result()
            for t, df in parts.set_aside.items():
                meta["set_aside"][t] = _write_frame(df, tmp / "set_aside" / f"{t}.parquet", True)
            if inputs_note:
                meta["inputs"] = dict(inputs_note)
            (tmp / "meta.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
            try:
                os.rename(tmp, self.path)
            except OSError:  # another process stored the same key first, or a damaged entry
                if (self.path / "meta.json").is_file() and self.read() is not None:
                    _remove(tmp)
                    return True
                _remove(self.path)
                os.rename(tmp, self.path)
        except ValueError:
            _remove(tmp)
            raise
        except (OSError, pa.ArrowException, TypeError):
            _remove(tmp)
            return False
        prune(self.root, keep=self.path)
        return True


def _remove(path: Path) -> None:
    """Remove a folder safely: rename it away first (atomic), then delete it."""
    if not path.exists():
        return
    trash = path.with_name(f".trash-{uuid.uuid4().hex[:12]}")
    try:
        os.rename(path, trash)
    except OSError:
        return
    shutil.rmtree(trash, ignore_errors=True)


def prune(root: Path, keep: Path | None = None, max_entries: int | None = None) -> list[Path]:
    """Remove least recently used entries beyond ``HANDBOOK_CACHE_MAX_ENTRIES`` (and temporary
    or trash folders older than an hour); returns the entries removed."""
    limit = max_entries if max_entries is not None else _int_env(CACHE_MAX_ENTRIES_ENV,
                                                                 DEFAULT_MAX_ENTRIES)
    removed: list[Path] = []
    try:
        children = list(root.iterdir())
    except OSError:
        return removed
    now = time.time()
    entries = []
    for p in children:
        try:
            if p.name.startswith((".tmp-", ".trash-")):
                if now - p.stat().st_mtime > 3600:
                    shutil.rmtree(p, ignore_errors=True)
                continue
            if p.is_dir():
                meta = p / "meta.json"
                entries.append(((meta if meta.exists() else p).stat().st_mtime, p))
        except OSError:
            continue
    entries.sort(reverse=True)
    for _, p in entries[max(limit, 1):]:
        if p != keep:
            _remove(p)
            removed.append(p)
    return removed


def clear() -> int:
    """Remove every entry of the cache folder; returns how many were removed."""
    root = cache_dir()
    n = 0
    if root.is_dir():
        for p in root.iterdir():
            if p.is_dir():
                if p.name.startswith((".tmp-", ".trash-")):
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    _remove(p)
                    n += 1
    return n


__all__ = ["CODED_COLUMNS", "CACHE_ENV", "CACHE_DIR_ENV",
           "CACHE_MIN_BYTES_ENV", "CACHE_MAX_ENTRIES_ENV",
           "LAZY_MIN_ROWS", "LazyTables", "Parts", "Store", "cache_dir", "cache_key", "check_columns",
           "check_dictionary", "clear", "encode_columns", "project", "select_columns",
           "code_version", "enabled", "key_inputs", "privacy_digest", "prune"]
