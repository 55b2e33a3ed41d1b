"""Reading one source (CSV, Parquet or a SQL table/query) into a DataFrame of raw columns.

CSV columns are read as text and typed later by :mod:`helpers.data.coerce` (so that values that
do not parse are reported with examples rather than silently turned into NaN). Parquet and SQL
columns keep their types; Parquet strings are read as Arrow-backed strings.
"""
from __future__ import annotations

import zlib

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .config import SourceSpec
from .errors import DataContractError

STRING = pd.StringDtype("pyarrow")


def _types_mapper(t: pa.DataType) -> object | None:
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return STRING
    return None


def source_columns(src: SourceSpec) -> list[str] | None:
    """Column names of a Parquet source without reading its rows (``None`` for other kinds)."""
    if src.kind != "parquet":
        return None
    try:
        return list(pq.read_schema(src.file).names)
    except (OSError, pa.ArrowException):
        return None


def read_source(src: SourceSpec, table: str, columns: list[str] | None = None) -> pd.DataFrame:
    """Read ``src``; ``columns`` restricts a Parquet read to those columns (when present).

    Raises :class:`DataContractError` naming the table and file for a missing, unreadable,
    truncated or wrongly encoded file.
    """
    where = f"{table} ({src.label})"
    if src.kind != "sql":
        assert src.file is not None
        if not src.file.exists():
            raise DataContractError(f"{where}: file {src.file} does not exist. Fix: check the "
                                    "'file' entry in dataset.yaml (paths are relative to it).")
    try:
        if src.kind == "parquet":
            return _read_parquet(src, columns)
        if src.kind == "sql":
            return _read_sql(src)
        return _read_csv(src)
    except DataContractError:
        raise
    except UnicodeDecodeError as exc:
        raise DataContractError(
            f"{where}: the file is not valid {src.reader.encoding} text ({exc.reason} at byte "
            f"{exc.start}). Fix: set reader.encoding in dataset.yaml (e.g. 'latin-1' or "
            "'cp1252').") from None
    except pd.errors.EmptyDataError:
        return pd.DataFrame()
    except (pd.errors.ParserError, pa.ArrowException, OSError, ValueError, EOFError,
            zlib.error) as exc:  # EOFError/zlib.error: a truncated .csv.gz
        raise DataContractError(
            f"{where}: cannot read {src.kind} source: {type(exc).__name__}: {exc}. Fix: check that "
            "the file is complete (not truncated) and that the reader options in dataset.yaml "
            "(delimiter, header, encoding) match it.") from None


def _read_parquet(src: SourceSpec, columns: list[str] | None) -> pd.DataFrame:
    pf = pq.ParquetFile(src.file)
    names = pf.schema_arrow.names
    wanted = [c for c in columns if c in names] if columns is not None else None
    if pf.num_row_groups < 2:
        return pf.read(columns=wanted).to_pandas(types_mapper=_types_mapper)
    # Row group by row group, strings cast at once to the large_string pandas keeps (the cast
    # of a whole table would hold both copies), then converted column by column, each Arrow
    # column released once converted (self_destruct): the peak is the frame plus one row group.
    parts = []
    for i in range(pf.num_row_groups):
        part = pf.read_row_group(i, columns=wanted)
        large = pa.schema([f.with_type(pa.large_string()) if pa.types.is_string(f.type) else f
                           for f in part.schema], metadata=part.schema.metadata)
        parts.append(part.cast(large))
        del part
    table = pa.concat_tables(parts)
    del parts
    return table.to_pandas(types_mapper=_types_mapper, self_destruct=True, split_blocks=True)


def _read_csv(src: SourceSpec) -> pd.DataFrame:
    r = src.reader
    kwargs: dict[str, object] = dict(dtype=str, encoding=r.encoding, skiprows=r.skiprows,
                                     keep_default_na=r.keep_default_na, comment=r.comment)
    if r.na_values is not None:
        kwargs["na_values"] = list(r.na_values)
    if r.delimiter in ("whitespace", r"\s+"):
        kwargs["sep"] = r"\s+"
    elif r.delimiter is not None:
        kwargs["sep"] = "\t" if r.delimiter in ("\\t", "tab") else r.delimiter
    else:
        kwargs["sep"] = "\t" if src.file is not None and src.file.suffix.lower() == ".tsv" else ","
    if r.names is not None:
        kwargs["names"] = list(r.names)
        kwargs["header"] = 0 if r.header else None
    elif not r.header:
        raise DataContractError(f"{src.label}: reader.header is false but no reader.names given. "
                                "Fix: list the column names under reader.names in dataset.yaml.")
    df = pd.read_csv(src.file, **kwargs)  # type: ignore[arg-type]
    df.columns = [str(c).strip() for c in df.columns]
    return df.astype(STRING)


def _read_sql(src: SourceSpec) -> pd.DataFrame:
    import sqlalchemy as sa

    engine = sa.create_engine(src.url)
    try:
        with engine.connect() as conn:
            if src.table:
                names = sa.inspect(conn).get_table_names() + sa.inspect(conn).get_view_names()
                if src.table not in names:
                    import difflib

                    close = difflib.get_close_matches(src.table, names, n=1)
                    hint = f" Did you mean {close[0]!r}?" if close else ""
                    raise DataContractError(
                        f"{src.label}: the database has no table or view {src.table!r}.{hint} "
                        f"Tables: {', '.join(names[:20]) or 'none'}. Fix: set 'table' in "
                        "dataset.yaml to one of them (or use 'query').")
                return pd.read_sql_table(src.table, conn)
            return pd.read_sql_query(sa.text(src.query), conn)
    except sa.exc.SQLAlchemyError as exc:
        raise DataContractError(f"{src.label}: cannot read from the database: "
                                f"{type(exc).__name__}: {str(exc).splitlines()[0]}. Fix: check "
                                "source.url and source.table/query in dataset.yaml.") from None
    finally:
        engine.dispose()
