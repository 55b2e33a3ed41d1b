"""The bad-input suite (issue 9, part 2): malformed inputs the handbook meets in real exports.

Every case is a small dataset written to ``tmp_path`` (CSV, Parquet, gzip or a SQLite table plus
``dataset.yaml``) and one test id. It ends in one of two ways:

* a clear error — :class:`DataContractError` whose message names the table, the column, how many
  rows, example values and a fix (checked on the structured :class:`Problem` and on the text);
* a documented repair or flag (docs/datasets.md) — the dataset loads, the repair is visible in
  the data, it is reported in ``ds.issues``, and the row accounting holds: for every table
  ``rows_in == rows_kept + rows_set_aside``, repaired rows are kept rows, set-aside rows carry a
  reason and their source position.

The 35 tests of tests/test_data.py cover the mechanics of each rule once; this suite is the
catalogue of *inputs*, one per kind of mistake.
"""
from __future__ import annotations

import gzip
import re
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pytest
import yaml

from helpers.data import DataContractError, Dataset, load_dataset


# ----------------------------------------------------------------------------------------------
# fixtures: a small, valid shop
# ----------------------------------------------------------------------------------------------
def customers() -> pd.DataFrame:
    return pd.DataFrame({
        "customer_id": [f"C{i}" for i in range(1, 9)],
        "signup_date": [f"2023-0{i}-15" for i in range(1, 9)],
        "gender": ["f", "m", "f", "m", "other", "f", "m", "f"],
        "age": [25, 31, 47, 52, 38, 29, 63, 41],
        "region": ["north", "south", "east", "west", "north", "south", "east", "west"],
    })


def products() -> pd.DataFrame:
    return pd.DataFrame({"product_id": ["P1", "P2", "P3", "P4"],
                         "category": ["tea", "tea", "cups", "gifts"],
                         "price": [12.0, 30.0, 8.5, 55.0]})


def orders(n: int = 12) -> pd.DataFrame:
    return pd.DataFrame({
        "order_id": [f"O{i:02d}" for i in range(1, n + 1)],
        "customer_id": [f"C{(i % 8) + 1}" for i in range(n)],
        "order_ts": [str(pd.Timestamp("2024-01-03 10:00") + pd.Timedelta(days=7 * i))
                     for i in range(n)],
    })


def lines() -> pd.DataFrame:
    o = orders()["order_id"]
    return pd.DataFrame({
        "order_id": list(o) + list(o[:4]),
        "product_id": [f"P{(i % 4) + 1}" for i in range(12)] + ["P4", "P3", "P2", "P1"],
        "quantity": [1, 2, 1, 3, 1, 1, 2, 1, 1, 4, 1, 2, 1, 1, 2, 1],
        "unit_price": [12.0, 30.0, 8.5, 55.0] * 4,
    })


def returns() -> pd.DataFrame:
    return pd.DataFrame({"return_id": ["R1", "R2"], "customer_id": ["C2", "C4"],
                         "return_ts": ["2024-01-20 09:00", "2024-02-10 12:00"],
                         "amount": [30.0, 55.0], "order_id": ["O02", "O04"],
                         "product_id": ["P2", "P4"], "quantity": [1, 1]})


def priced_orders(n: int = 30, amount: float = 100.0) -> pd.DataFrame:
    """Orders with an amount column (no order lines): amounts around ``amount``."""
    df = orders(n)
    df["amount"] = [round(amount * (0.5 + (i % 7) / 6), 2) for i in range(n)]
    return df


def shop(**replace: pd.DataFrame) -> dict[str, pd.DataFrame]:
    frames = {"customers": customers(), "products": products(), "orders": orders(),
              "order_lines": lines(), "returns": returns()}
    frames.update(replace)
    return {k: v for k, v in frames.items() if v is not None}


def write(folder: Path, frames: dict[str, pd.DataFrame], *, fmt: str = "csv",
          tables: dict | None = None, **config: object) -> Path:
    """Write ``frames`` (one file each) and a ``tables`` dataset.yaml; ``tables`` entries
    override the default ``{table: file}``; ``config`` overrides top-level keys."""
    folder.mkdir(parents=True, exist_ok=True)
    entries: dict[str, object] = {}
    for name, df in frames.items():
        path = folder / f"{name}.{fmt}"
        df.to_csv(path, index=False) if fmt == "csv" else df.to_parquet(path, index=False)
        entries[name] = path.name
    entries.update(tables or {})
    cfg: dict[str, object] = {"name": "bad", "format": "tables", "timezone": "UTC",
                              "currency": "EUR", "analysis_date": "2024-12-31",
                              "tables": entries}
    cfg.update(config)
    (folder / "dataset.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return folder


def write_yaml(folder: Path, cfg: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    base = {"name": "bad", "timezone": "UTC", "currency": "EUR", "analysis_date": "2024-12-31"}
    (folder / "dataset.yaml").write_text(yaml.safe_dump({**base, **cfg}, sort_keys=False),
                                         encoding="utf-8")
    return folder


# ----------------------------------------------------------------------------------------------
# expectations
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Err:
    """An expected error: the problem on ``table``/``column`` with ``n`` rows and these example
    values; ``text``: regular expressions the whole message must match (e.g. a hint)."""

    table: str
    column: str | None = None
    n: int | None = None
    examples: tuple[str, ...] = ()
    text: tuple[str, ...] = ()


@dataclass(frozen=True)
class Case:
    id: str
    build: Callable[[Path], Path]
    error: Err | None = None
    check: Callable[[Dataset], None] | None = None
    rules: dict[str, str] = field(default_factory=dict)


def assert_error(exc: DataContractError, want: Err) -> None:
    msg = str(exc)
    for pattern in want.text:
        assert re.search(pattern, msg, flags=re.IGNORECASE | re.DOTALL), (pattern, msg)
    if not exc.problems:  # a file-level error (unreadable file, dataset.yaml mistake)
        assert want.table in msg and "Fix" in msg, msg
        return
    hits = [p for p in exc.problems if p.table == want.table
            and (want.column is None or (p.column or "").find(want.column) >= 0)]
    assert hits, (want, msg)
    p = hits[0]
    where = f"{p.table}.{p.column}" if p.column else p.table
    assert where in msg, msg
    if want.n is not None:
        assert p.n_rows == want.n, (p, msg)
        assert f"{want.n:,} " in p.message(), p.message()
    shown = ", ".join(p.examples)
    for ex in want.examples:
        assert ex in shown, (ex, shown)
    assert p.fix and "Fix: " in msg, msg


def assert_accounting(ds: Dataset) -> None:
    q = ds.quality.set_index("table")
    assert (q.rows_in == q.rows_kept + q.rows_set_aside).all(), q
    assert (q.rows_repaired <= q.rows_kept).all(), q
    for table, row in q.iterrows():
        assert row.rows_kept == len(ds.tables[table]), table
        aside = ds.set_aside.get(table)
        n = 0 if aside is None else len(aside)
        assert n == row.rows_set_aside, table
        if n:
            assert aside["reason"].notna().all() and aside.index.is_unique, table
            assert (aside.index >= 0).all() and (aside.index < row.rows_in).all(), table


def issue(ds: Dataset, table: str, rule: str) -> pd.Series:
    hits = ds.issues.query("table == @table and rule == @rule")
    assert len(hits) == 1, ds.issues
    return hits.iloc[0]


def quality(ds: Dataset, table: str) -> pd.Series:
    return ds.quality.set_index("table").loc[table]


# ----------------------------------------------------------------------------------------------
# the cases
# ----------------------------------------------------------------------------------------------
def _drop(df: pd.DataFrame, col: str) -> pd.DataFrame:
    return df.drop(columns=[col])


def _set(df: pd.DataFrame, col: str, rows: list[int], values: list[object]) -> pd.DataFrame:
    df = df.copy().astype({col: object})
    for r, v in zip(rows, values):
        df.loc[r, col] = v
    return df


def b_missing_column(tmp: Path) -> Path:
    return write(tmp, shop(orders=_drop(orders(), "order_ts")))


def b_renamed_column(tmp: Path) -> Path:
    return write(tmp, shop(orders=orders().rename(columns={"order_ts": "order_time"})))


def b_mapped_column_absent(tmp: Path) -> Path:
    df = orders().rename(columns={"order_ts": "paid_at"})
    return write(tmp, shop(orders=df), tables={
        "orders": {"file": "orders.csv", "columns": {"order_ts": "paid_time"}}})


def b_text_in_amount(tmp: Path) -> Path:
    df = _set(priced_orders(), "amount", [3, 7], ["12,50 EUR", "n.a."])
    return write(tmp, {"customers": customers(), "orders": df})


def b_fractional_quantity(tmp: Path) -> Path:
    return write(tmp, shop(order_lines=_set(lines(), "quantity", [5], [1.5])))


def b_ids_with_decimals(tmp: Path) -> Path:
    c = customers().assign(customer_id=[float(i) for i in range(1, 9)])
    o = orders().assign(customer_id=[float((i % 8) + 1) for i in range(12)])
    o.loc[2, "customer_id"] = 3.5
    return write(tmp, {"customers": c, "orders": o, "order_lines": lines()}, fmt="parquet")


def b_unparseable_dates(tmp: Path) -> Path:
    return write(tmp, shop(orders=_set(orders(), "order_ts", [1, 4], ["2024-13-45", "yesterday"])))


def b_mixed_format_dates(tmp: Path) -> Path:
    return write(tmp, shop(orders=_set(orders(), "order_ts", [2, 3, 9],
                                       ["17/01/2024 10:00", "24/01/2024 10:00", "Mar 6, 2024"])))


def b_numeric_dates_without_format(tmp: Path) -> Path:
    o = orders().assign(order_ts=[20240103 + 7 * i for i in range(12)])
    return write(tmp, shop(orders=o), fmt="parquet")


def b_tz_naive_aware_mix(tmp: Path) -> Path:
    return write(tmp, shop(orders=_set(orders(), "order_ts", [0, 5],
                                       ["2024-01-03T10:00:00+08:00", "2024-02-07T10:00:00Z"])))


def b_tz_aware_parquet(tmp: Path) -> Path:
    o = orders()
    o["order_ts"] = pd.to_datetime(o["order_ts"]).dt.tz_localize("Asia/Shanghai")
    return write(tmp, shop(orders=o), fmt="parquet", timezone="Europe/London")


def b_exact_duplicate_lines(tmp: Path) -> Path:
    ln = lines()
    return write(tmp, shop(order_lines=pd.concat([ln, ln.iloc[[3, 3, 8]]], ignore_index=True)))


def b_duplicate_key_lines(tmp: Path) -> Path:
    ln = lines()
    extra = ln.iloc[[0]].assign(quantity=3, unit_price=10.0)
    return write(tmp, shop(order_lines=pd.concat([ln, extra], ignore_index=True)))


def b_duplicate_key_orders(tmp: Path) -> Path:
    o = orders()
    clash = o.iloc[[6]].assign(order_ts="2024-06-01 08:00:00")
    return write(tmp, shop(orders=pd.concat([o, clash], ignore_index=True)))


def b_orphan_lines(tmp: Path) -> Path:
    ln = lines()
    ln = pd.concat([ln, pd.DataFrame({"order_id": ["O77", "O78"], "product_id": ["P1", "P2"],
                                      "quantity": [1, 1], "unit_price": [12.0, 30.0]})],
                   ignore_index=True)
    return write(tmp, shop(order_lines=ln))


def b_orphan_lines_set_aside(tmp: Path) -> Path:
    return b_orphan_lines(tmp)


def b_customer_missing_from_customers(tmp: Path) -> Path:
    return write(tmp, shop(customers=customers().iloc[:6]))  # C7, C8 still have orders


def b_negative_prices(tmp: Path) -> Path:
    return write(tmp, shop(order_lines=_set(lines(), "unit_price", [2, 6], [-8.5, -55.0])))


def b_zero_prices(tmp: Path) -> Path:
    return write(tmp, shop(order_lines=_set(lines(), "unit_price", [1], [0.0])))


def b_zero_prices_kept(tmp: Path) -> Path:  # free gifts, by rule
    return write(tmp, shop(order_lines=_set(lines(), "unit_price", [1], [0.0])),
                 rules={"order_lines.unit_price.zero_value": "keep"})


def b_quantity_zero(tmp: Path) -> Path:
    return write(tmp, shop(order_lines=_set(lines(), "quantity", [4, 10], [0, 0])))


def _lines_source() -> pd.DataFrame:
    return pd.DataFrame({
        "Invoice": ["1001", "1001", "1002", "1003", "C1004", "C1005"],
        "StockCode": ["A", "B", "A", "C", "A", "Z"],
        "Quantity": [2, 1, 3, 1, -1, -2],
        "Price": [2.5, 4.0, 2.5, 9.0, 2.5, 7.0],
        "InvoiceDate": ["2011-01-04 10:00", "2011-01-04 10:00", "2011-01-05 11:00",
                        "2011-01-06 12:00", "2011-01-07 13:00", "2011-01-08 14:00"],
        "Customer ID": [12345, 12345, 12346, 12347, 12345, 12399],
    })


def _lines_yaml(tmp: Path, df: pd.DataFrame, **rules: str) -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    df.to_csv(tmp / "lines.csv", index=False)
    return write_yaml(tmp, {
        "format": "lines", "currency": "GBP", "analysis_date": "2011-12-09",
        "source": {"file": "lines.csv"},
        "columns": {"order_id": "Invoice", "product_id": "StockCode", "quantity": "Quantity",
                    "unit_price": "Price", "order_ts": "InvoiceDate",
                    "customer_id": "Customer ID"},
        "lines": {"cancellation": {"column": "Invoice", "prefix": "C"}},
        **({"rules": rules} if rules else {})})


def b_cancellation_without_original(tmp: Path) -> Path:
    return _lines_yaml(tmp, _lines_source())  # C1005: customer 12399 never bought Z


def b_future_dates(tmp: Path) -> Path:
    return write(tmp, shop(orders=_set(orders(), "order_ts", [11], ["2031-05-01 09:00"])))


def b_all_null_required_column(tmp: Path) -> Path:
    return write(tmp, shop(orders=orders().assign(customer_id="")))


def b_all_null_optional_column(tmp: Path) -> Path:
    return write(tmp, shop(customers=customers().assign(age=np.nan)))


def b_empty_orders(tmp: Path) -> Path:
    return write(tmp, shop(orders=orders().iloc[:0], order_lines=None, returns=None))


def b_zero_byte_optional_file(tmp: Path) -> Path:
    folder = write(tmp, shop())
    (folder / "events.csv").write_bytes(b"")
    cfg = yaml.safe_load((folder / "dataset.yaml").read_text())
    cfg["tables"]["events"] = "events.csv"
    (folder / "dataset.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return folder


def b_single_customer(tmp: Path) -> Path:
    o = orders().assign(customer_id="C1")
    return write(tmp, shop(customers=customers().iloc[:1], orders=o,
                           returns=returns().assign(customer_id="C1")))


def b_non_utf8_text(tmp: Path) -> Path:
    folder = write(tmp, shop(products=products().assign(
        category=["thé vert", "thé noir", "tasses", "cadeaux"])))
    text = (folder / "products.csv").read_text(encoding="utf-8")
    (folder / "products.csv").write_bytes(text.encode("latin-1"))
    return folder


def b_utf8_bom_and_padding(tmp: Path) -> Path:
    folder = write(tmp, shop(orders=orders().assign(customer_id=lambda d: " " + d.customer_id
                                                    + " ")))
    data = (folder / "orders.csv").read_bytes()
    (folder / "orders.csv").write_bytes(b"\xef\xbb\xbf" + data)
    return folder


def b_huge_outlier(tmp: Path) -> Path:
    return write(tmp, {"customers": customers(),
                       "orders": _set(priced_orders(), "amount", [17], [9_990_000.0])})


def b_huge_outlier_set_aside(tmp: Path) -> Path:
    return write(tmp, {"customers": customers(),
                       "orders": _set(priced_orders(), "amount", [17], [9_990_000.0])},
                 rules={"orders.amount.outlier": "set_aside"})


def b_unknown_currency(tmp: Path) -> Path:
    return write(tmp, shop(), currency="RMB")


def b_truncated_csv(tmp: Path) -> Path:
    folder = write(tmp, shop())
    data = (folder / "order_lines.csv").read_bytes()
    (folder / "order_lines.csv").write_bytes(data + b'O12,"P1')  # cut inside a quoted field
    return folder


def b_truncated_gzip(tmp: Path) -> Path:
    folder = write(tmp, shop())
    raw = gzip.compress((folder / "orders.csv").read_bytes())
    (folder / "orders.csv.gz").write_bytes(raw[: len(raw) // 2])
    cfg = yaml.safe_load((folder / "dataset.yaml").read_text())
    cfg["tables"]["orders"] = "orders.csv.gz"
    (folder / "dataset.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return folder


def b_invalid_required_code(tmp: Path) -> Path:
    ev = pd.DataFrame({"customer_id": ["C1", "C2", "C3", "C4"],
                       "event_ts": ["2024-02-01 10:00"] * 4,
                       "event_type": ["view", "click", "cart", "Scroll"]})
    return write(tmp, shop(events=ev))


def b_invalid_optional_code(tmp: Path) -> Path:
    return write(tmp, shop(customers=_set(customers(), "gender", [1, 6], ["unknown", "?"])))


def b_out_of_range_nps(tmp: Path) -> Path:
    sv = pd.DataFrame({"customer_id": ["C1", "C2", "C3"], "survey_ts": ["2024-03-01"] * 3,
                       "nps": [9, 11, 7], "csat": [5, 4, 3]})
    return write(tmp, shop(surveys=sv))


def b_return_before_order(tmp: Path) -> Path:
    return write(tmp, shop(returns=_set(returns(), "return_ts", [1], ["2024-01-02 08:00"])))


def b_nan_amounts_without_lines(tmp: Path) -> Path:
    return write(tmp, {"customers": customers(),
                       "orders": _set(priced_orders(12), "amount", [2, 9], [np.nan, "NaN"])})


def b_nan_amounts_with_lines(tmp: Path) -> Path:
    o = orders().assign(amount=[12.0, 60.0, 8.5, 165.0, 12.0, 30.0, 17.0, 55.0, 12.0, 120.0,
                                8.5, 110.0])
    o.loc[[0, 1, 2, 3], "amount"] = np.nan  # the orders with two lines
    return write(tmp, shop(orders=o))


def b_infinite_amount(tmp: Path) -> Path:
    return write(tmp, {"customers": customers(),
                       "orders": _set(priced_orders(12), "amount", [4], ["inf"])})


def b_sqlite_wrong_types(tmp: Path) -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    o = priced_orders(12).astype({"amount": object})
    o.loc[[2, 5], "amount"] = ["twelve", "¥30"]
    with sqlite3.connect(tmp / "shop.db") as con:
        o.to_sql("orders", con, index=False)
    return write_yaml(tmp, {"format": "tables", "tables": {
        "orders": {"url": "sqlite:///shop.db", "table": "orders"}}})


def b_sqlite_missing_table(tmp: Path) -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(tmp / "shop.db") as con:
        priced_orders(12).to_sql("orders", con, index=False)
    return write_yaml(tmp, {"format": "tables", "tables": {
        "orders": {"url": "sqlite:///shop.db", "table": "order"}}})


def b_test_and_cancelled_orders(tmp: Path) -> Path:
    o = priced_orders(12).assign(status=["paid"] * 12)
    o.loc[[3, 8], "status"] = "TEST"
    o.loc[[5], "status"] = "cancelled"
    return write(tmp, {"customers": customers(), "orders": o}, tables={"orders": {
        "file": "orders.csv",
        "exclude": [{"column": "status", "values": ["test"], "ignore_case": True,
                     "reason": "test order"},
                    {"column": "status", "values": ["cancelled"], "reason": "cancelled order"}]}})


def b_float_ids_in_csv(tmp: Path) -> Path:
    c = customers().assign(customer_id=[str(1000 + i) for i in range(1, 9)])
    o = orders().assign(customer_id=[f"{1000 + (i % 8) + 1}.0" for i in range(12)])
    return write(tmp, shop(customers=c, orders=o,
                           returns=returns().assign(customer_id=["1002", "1004"])))


def b_lines_with_test_invoices(tmp: Path) -> Path:
    src = _lines_source()
    src["Customer ID"] = [12345, 12345, 12346, 12347, 12345, 12346]
    src.loc[2, "Invoice"] = "T1002"  # a test invoice, and a test customer
    src.loc[3, "Customer ID"] = 99999
    folder = _lines_yaml(tmp, src)
    cfg = yaml.safe_load((folder / "dataset.yaml").read_text())
    cfg["exclude"] = [{"column": "Invoice", "prefix": "T", "reason": "test invoice"},
                      {"column": "Customer ID", "values": ["99999"], "reason": "test customer"}]
    (folder / "dataset.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return folder


# -- checks of the loadable cases ---------------------------------------------------------------
def c_tz_aware(ds: Dataset) -> None:
    # 2024-01-03 10:00 in Shanghai is 02:00 in London (winter, UTC+0): converted, then naive
    assert ds.orders["order_ts"].iloc[0] == pd.Timestamp("2024-01-03 02:00")
    assert ds.orders["order_ts"].dt.tz is None


def c_exact_duplicates(ds: Dataset) -> None:
    assert quality(ds, "order_lines").rows_set_aside == 3
    assert set(ds.set_aside["order_lines"]["reason"]) == {"exact duplicate"}
    assert issue(ds, "order_lines", "exact_duplicate")["n_rows"] == 3
    assert list(ds.set_aside["order_lines"].index) == [16, 17, 18]


def c_duplicate_key_merged(ds: Dataset) -> None:
    line = ds.order_lines.query("order_id == 'O01' and product_id == 'P1'")
    assert len(line) == 1 and line["quantity"].item() == 4
    assert line["unit_price"].item() == pytest.approx((12.0 + 30.0) / 4)
    assert quality(ds, "order_lines").rows_repaired == 1
    assert issue(ds, "order_lines", "duplicate_key")["action"] == "repair"
    # O01: P1 merged (4 units, 42.0) + P4 (1 unit at 12.0)
    assert ds.orders.set_index("order_id").loc["O01", "amount"] == pytest.approx(54.0)


def c_orphans_set_aside(ds: Dataset) -> None:
    aside = ds.set_aside["order_lines"]
    assert set(aside["order_id"]) == {"O77", "O78"}
    assert set(aside["reason"]) == {"unknown order id"}
    assert issue(ds, "order_lines", "orphan_key")["n_rows"] == 2


def c_zero_price_kept(ds: Dataset) -> None:
    assert (ds.order_lines["unit_price"] == 0).sum() == 1
    assert issue(ds, "order_lines", "zero_value")["action"] == "keep"


def c_unmatched_return(ds: Dataset) -> None:
    r = ds.returns.set_index("product_id")
    assert set(r.index) == {"A", "Z"} and r["order_id"].isna().all()
    assert r.loc["Z", "amount"] == pytest.approx(14.0) and r.loc["Z", "customer_id"] == "12399"
    row = issue(ds, "returns", "unmatched_return")
    assert row["action"] == "keep" and row["n_rows"] == 1 and "'Z'" in row["examples"]
    assert quality(ds, "order_lines").rows_in + quality(ds, "returns").rows_in == 6


def c_all_null_optional(ds: Dataset) -> None:
    assert ds.customers["age"].isna().all()
    row = issue(ds, "customers", "missing_value")
    assert row["column"] == "age" and row["action"] == "keep" and row["n_rows"] == 8


def c_zero_byte_optional(ds: Dataset) -> None:
    assert "events" in ds.tables and len(ds.events) == 0 and not ds.has("events")
    assert not ds.supports("events")


def c_single_customer(ds: Dataset) -> None:
    assert ds.orders["customer_id"].nunique() == 1 and len(ds.orders) == 12


def c_bom_and_padding(ds: Dataset) -> None:
    assert "order_id" in ds.orders.columns
    assert set(ds.orders["customer_id"]) <= set(ds.customers["customer_id"])
    assert not ds.orders["customer_id"].str.contains(" ").any()


def c_outlier_kept(ds: Dataset) -> None:
    assert ds.orders["amount"].max() == 9_990_000.0
    row = issue(ds, "orders", "outlier")
    assert row["column"] == "amount" and row["action"] == "keep" and row["n_rows"] == 1
    assert "9.99e+06" in row["examples"]


def c_outlier_set_aside(ds: Dataset) -> None:
    aside = ds.set_aside["orders"]
    assert list(aside.index) == [17] and aside["reason"].item() == "amount outlier"
    assert ds.orders["amount"].max() < 1000


def c_invalid_optional_code(ds: Dataset) -> None:
    assert ds.customers["gender"].isna().sum() == 2
    assert quality(ds, "customers").rows_repaired == 2
    row = issue(ds, "customers", "invalid_code")
    assert row["action"] == "repair" and "'unknown'" in row["examples"]


def c_amount_from_lines(ds: Dataset) -> None:
    amount = ds.orders.set_index("order_id")["amount"]
    assert amount["O01"] == pytest.approx(12.0 + 12.0)  # P1 1 x 12.0 + P4 1 x 12.0
    assert amount["O02"] == pytest.approx(60.0 + 30.0)  # P2 2 x 30.0 + P3 1 x 30.0
    assert amount["O05"] == 12.0                        # given in the source: kept
    row = issue(ds, "orders", "missing_value")
    assert row["column"] == "amount" and row["action"] == "keep" and row["n_rows"] == 4


def c_excluded(ds: Dataset) -> None:
    aside = ds.set_aside["orders"]
    assert aside["reason"].value_counts().to_dict() == {"test order": 2, "cancelled order": 1}
    assert sorted(aside.index) == [3, 5, 8] and len(ds.orders) == 9
    ex = ds.issues.query("rule == 'excluded'")
    assert ex["n_rows"].tolist() == [2, 1] and set(ex["action"]) == {"set_aside"}
    assert "status" not in ds.orders.columns


def c_float_ids(ds: Dataset) -> None:
    assert set(ds.orders["customer_id"]) == {str(1000 + i) for i in range(1, 9)}
    assert "orphan_key" not in set(ds.issues["rule"])


def c_lines_excluded(ds: Dataset) -> None:
    aside = ds.set_aside["order_lines"]
    assert sorted(aside["reason"]) == ["test customer", "test invoice"]
    assert sorted(aside.index) == [2, 3]  # source positions
    assert quality(ds, "order_lines").rows_in + quality(ds, "returns").rows_in == 6
    assert set(ds.orders["order_id"]) == {"1001"} and len(ds.returns) == 2
    assert "excluded" in set(ds.issues["rule"])


CASES: list[Case] = [
    Case("missing_column", b_missing_column,
         Err("orders", "order_ts", text=(r"required column 'order_ts' is missing",
                                         r"found columns: 'order_id', 'customer_id'"))),
    Case("renamed_column_did_you_mean", b_renamed_column,
         Err("orders", "order_ts", text=(r"did you mean 'order_time'",
                                         r"columns: \{order_ts: 'order_time'\}"))),
    Case("mapped_column_absent", b_mapped_column_absent,
         Err("orders", "order_ts", text=(r"column 'paid_time' mapped to 'order_ts' is not in",
                                         r"did you mean 'paid_at'"))),
    Case("text_in_amount", b_text_in_amount,
         Err("orders", "amount", 2, ("'12,50 EUR'", "'n.a.'"), (r"not numbers", r"decimal"))),
    Case("fractional_quantity", b_fractional_quantity,
         Err("order_lines", "quantity", 1, ("1.5",), (r"not whole numbers",))),
    Case("ids_with_decimals", b_ids_with_decimals,
         Err("orders", "customer_id", 1, ("3.5",), (r"ids with decimals",))),
    Case("unparseable_dates", b_unparseable_dates,
         Err("orders", "order_ts", 2, ("'2024-13-45'", "'yesterday'"),
             (r"do not parse", r"date_format"))),
    Case("mixed_format_dates", b_mixed_format_dates,
         Err("orders", "order_ts", 3, ("'17/01/2024 10:00'", "'Mar 6, 2024'"),
             (r"ISO 8601",))),
    Case("numeric_dates_without_format", b_numeric_dates_without_format,
         Err("orders", "order_ts", 12, ("20240103",), (r"%Y%m%d",))),
    Case("tz_naive_aware_mix", b_tz_naive_aware_mix,
         Err("orders", "order_ts", 10, ("'2024-01-10 10:00:00'",),
             (r"mixes time-zone-aware values \(2", r"source_timezone"))),
    Case("tz_aware_parquet_converted", b_tz_aware_parquet, check=c_tz_aware),
    Case("exact_duplicate_order_lines", b_exact_duplicate_lines, check=c_exact_duplicates),
    Case("duplicate_key_lines_error", b_duplicate_key_lines,
         Err("order_lines", "order_id, product_id", 2, ("('O01', 'P1')",),
             (r"duplicate_key: set_aside",))),
    Case("duplicate_key_lines_merged", b_duplicate_key_lines, check=c_duplicate_key_merged,
         rules={"order_lines.duplicate_key": "repair"}),
    Case("duplicate_keys_different_content", b_duplicate_key_orders,
         Err("orders", "order_id", 2, ("'O07'",), (r"differ in other columns",))),
    Case("orphan_order_lines", b_orphan_lines,
         Err("order_lines", "order_id", 2, ("'O77'", "'O78'"), (r"not found in orders",))),
    Case("orphan_order_lines_set_aside", b_orphan_lines_set_aside, check=c_orphans_set_aside,
         rules={"orphan_key": "set_aside"}),
    Case("customer_missing_from_customers", b_customer_missing_from_customers,
         Err("orders", "customer_id", 2, ("'C7'", "'C8'"), (r"not found in customers",))),
    Case("negative_prices", b_negative_prices,
         Err("order_lines", "unit_price", 2, ("-8.5", "-55"), (r"negative",))),
    Case("zero_prices", b_zero_prices,
         Err("order_lines", "unit_price", 1, ("0",), (r"zero values", r"zero_value: set_aside"))),
    Case("zero_prices_kept_by_rule", b_zero_prices_kept, check=c_zero_price_kept),
    Case("quantity_zero", b_quantity_zero,
         Err("order_lines", "quantity", 2, ("0",), (r"zero values in 'quantity'",))),
    Case("cancellation_without_original", b_cancellation_without_original,
         check=c_unmatched_return),
    Case("future_dates", b_future_dates,
         Err("orders", "order_ts", 1, ("2031-05-01 09:00:00",),
             (r"after the data end 2024-12-31",))),
    Case("all_null_required_column", b_all_null_required_column,
         Err("orders", "customer_id", 12, (), (r"all values are missing",))),
    Case("all_null_optional_column", b_all_null_optional_column, check=c_all_null_optional),
    Case("empty_orders_table", b_empty_orders, Err("orders", None, 0, (), (r"table is empty",))),
    Case("zero_byte_optional_file", b_zero_byte_optional_file, check=c_zero_byte_optional),
    Case("single_customer", b_single_customer, check=c_single_customer),
    Case("non_utf8_text", b_non_utf8_text,
         Err("products", None, text=(r"not valid utf-8 text", r"reader.encoding",
                                     r"latin-1"))),
    Case("utf8_bom_and_padded_ids", b_utf8_bom_and_padding, check=c_bom_and_padding),
    Case("huge_outlier_flagged", b_huge_outlier, check=c_outlier_kept),
    Case("huge_outlier_set_aside_by_rule", b_huge_outlier_set_aside, check=c_outlier_set_aside),
    Case("unknown_currency", b_unknown_currency,
         Err("dataset.yaml", None, text=(r"currency 'RMB' is not an ISO 4217 code",
                                         r"Did you mean 'CNY'"))),
    Case("truncated_csv", b_truncated_csv,
         Err("order_lines", None, text=(r"cannot read csv source", r"truncated"))),
    Case("truncated_gzip", b_truncated_gzip,
         Err("orders", None, text=(r"cannot read csv source", r"truncated"))),
    Case("invalid_required_code", b_invalid_required_code,
         Err("events", "event_type", 2, ("'click'", "'scroll'"), (r"allowed list",))),
    Case("invalid_optional_code_repaired", b_invalid_optional_code,
         check=c_invalid_optional_code),
    Case("out_of_range_nps", b_out_of_range_nps,
         Err("surveys", "nps", 1, ("11",), (r"allowed range \[0, 10\]",))),
    Case("return_before_order", b_return_before_order,
         Err("returns", "return_ts", 1, ("'R2'", "'O04'"), (r"before their order",))),
    Case("nan_amounts_without_lines", b_nan_amounts_without_lines,
         Err("orders", "amount", 2, ("'O03'", "'O10'"), (r"missing values in required column",))),
    Case("nan_amounts_derived_from_lines", b_nan_amounts_with_lines, check=c_amount_from_lines),
    Case("infinite_amount", b_infinite_amount,
         Err("orders", "amount", 1, ("inf",), (r"infinite values",))),
    Case("sqlite_wrong_types", b_sqlite_wrong_types,
         Err("orders", "amount", 2, ("'twelve'", "'¥30'"), (r"not numbers",))),
    Case("sqlite_missing_table", b_sqlite_missing_table,
         Err("SQL table order", None, text=(r"has no table or view 'order'",
                                            r"Did you mean 'orders'"))),
    Case("test_and_cancelled_orders_excluded", b_test_and_cancelled_orders, check=c_excluded),
    Case("ids_written_as_floats_in_csv", b_float_ids_in_csv, check=c_float_ids),
    Case("lines_with_test_invoices_excluded", b_lines_with_test_invoices,
         check=c_lines_excluded),
]


def test_the_suite_has_at_least_25_distinct_inputs():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)) >= 25


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, tmp_path: Path) -> None:
    path = case.build(tmp_path / "shop")
    if case.error is not None:
        with pytest.raises(DataContractError) as info:
            load_dataset(path, rules=case.rules or None)
        assert_error(info.value, case.error)
        return
    ds = load_dataset(path, rules=case.rules or None)
    assert_accounting(ds)
    assert case.check is not None
    case.check(ds)
