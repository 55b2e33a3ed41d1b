"""Tests of the data layer (helpers.data): dataset.yaml formats, schema errors, row rules, row
accounting, the validate CLI, and the shipped real datasets (CDNOW, Online Retail II)."""
from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from helpers.data import DataContractError, load_dataset
from helpers.data.__main__ import main as cli
from helpers.data.config import data_dir

ORII_FILE = data_dir() / "online_retail_ii" / "online_retail_ii.parquet"


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------
def write_dataset(folder: Path, frames: dict[str, pd.DataFrame], /, *, fmt: str = "csv",
                  **config: object) -> Path:
    """A ``tables`` dataset in ``folder``: one file per table plus dataset.yaml (``config``
    entries override the defaults, e.g. ``tables=...`` or ``rules=...``)."""
    folder.mkdir(parents=True, exist_ok=True)
    entries = {}
    for name, df in frames.items():
        path = folder / f"{name}.{fmt}"
        if fmt == "csv":
            df.to_csv(path, index=False)
        else:
            df.to_parquet(path, index=False)
        entries[name] = path.name
    cfg: dict[str, object] = {"name": folder.name, "format": "tables", "timezone": "UTC",
                              "currency": "EUR", "analysis_date": "2024-12-31",
                              "tables": entries}
    cfg.update(config)
    (folder / "dataset.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return folder


def assert_accounting(ds) -> None:
    """Every row is kept or set aside; repaired rows are kept rows; set-aside frames match."""
    q = ds.quality
    assert list(q.columns) == ["table", "rows_in", "rows_kept", "rows_repaired", "rows_set_aside"]
    assert (q.rows_in == q.rows_kept + q.rows_set_aside).all(), q
    assert (q.rows_repaired <= q.rows_kept).all(), q
    for row in q.itertuples():
        assert row.rows_kept == len(ds.tables[row.table]), row
        aside = ds.set_aside.get(row.table)
        n_aside = 0 if aside is None else len(aside)
        assert n_aside == row.rows_set_aside, row
        if n_aside:
            assert aside["reason"].notna().all()
    assert list(ds.issues.columns) == ["table", "column", "rule", "action", "n_rows", "examples"]


def customers_df() -> pd.DataFrame:
    return pd.DataFrame({"customer_id": ["c1", "c2", "c3"],
                         "gender": ["F", "m", None], "age": [34, 150, 27]})


def orders_df() -> pd.DataFrame:
    return pd.DataFrame({
        "order_id": ["o1", "o2", "o3", "o4", "o5"],
        "customer_id": ["c1", "c1", "c2", "c3", "c3"],
        "order_ts": ["2024-01-05 10:00", "2024-02-01 11:30", "2024-03-03", "2024-04-04 09:15",
                     "2024-05-05 18:00"],
        "amount": [10.0, 25.5, 7.25, 100.0, 12.0],
    })


# ----------------------------------------------------------------------------------------------
# schema-level errors: always raised, with table, column, count, examples and a fix
# ----------------------------------------------------------------------------------------------
def test_missing_column_names_table_column_found_columns_and_suggestion(tmp_path):
    orders = orders_df().rename(columns={"order_ts": "order_date"})
    write_dataset(tmp_path / "shop", {"orders": orders})
    with pytest.raises(DataContractError) as err:
        load_dataset(tmp_path / "shop")
    msg = str(err.value)
    assert "orders.order_ts" in msg
    assert "required column 'order_ts' is missing" in msg
    assert "found columns: 'order_id', 'customer_id', 'order_date', 'amount'" in msg
    assert "did you mean 'order_date'?" in msg
    assert "(5 rows)" in msg
    assert "tables.orders.columns: {order_ts: 'order_date'}" in msg  # how to fix
    assert isinstance(err.value, ValueError)


def test_column_mapping_fixes_the_missing_column(tmp_path):
    orders = orders_df().rename(columns={"order_ts": "order_date", "amount": "Total"})
    write_dataset(tmp_path / "shop", {"orders": orders},
                  tables={"orders": {"file": "orders.csv",
                                     "columns": {"order_ts": "order_date", "amount": "Total"}}})
    ds = load_dataset(tmp_path / "shop" / "dataset.yaml")
    assert ds.orders["amount"].tolist() == [10.0, 25.5, 7.25, 100.0, 12.0]
    assert ds.orders["order_ts"].iloc[2] == pd.Timestamp("2024-03-03")


def test_unparseable_dates_are_an_error_with_examples(tmp_path):
    orders = orders_df()
    orders.loc[1, "order_ts"] = "2024-13-45"
    orders.loc[3, "order_ts"] = "yesterday"
    write_dataset(tmp_path / "shop", {"orders": orders})
    with pytest.raises(DataContractError) as err:
        load_dataset(tmp_path / "shop")
    msg = str(err.value)
    assert "orders.order_ts: dates that do not parse" in msg
    assert "2 of 5 rows" in msg
    assert "'2024-13-45'" in msg and "'yesterday'" in msg
    assert "date_format" in msg  # the fix
    problem = err.value.problems[0]
    assert (problem.table, problem.column, problem.n_rows) == ("orders", "order_ts", 2)


def test_date_format_option_parses_non_iso_dates(tmp_path):
    orders = orders_df()
    orders["order_ts"] = ["05/01/2024", "01/02/2024", "03/03/2024", "04/04/2024", "05/05/2024"]
    write_dataset(tmp_path / "shop", {"orders": orders}, reader={"date_format": "%d/%m/%Y"})
    ds = load_dataset(tmp_path / "shop")
    assert ds.orders["order_ts"].iloc[0] == pd.Timestamp("2024-01-05")
    assert ds.orders["order_ts"].dtype == "datetime64[ns]"


def test_negative_amounts_are_an_error_naming_table_column_count_and_examples(tmp_path):
    orders = orders_df()
    orders.loc[[0, 2], "amount"] = [-5.0, -12.5]
    write_dataset(tmp_path / "shop", {"orders": orders})
    with pytest.raises(DataContractError) as err:
        load_dataset(tmp_path / "shop")
    msg = str(err.value)
    assert "orders.amount: negative values in 'amount'" in msg
    assert "2 of 5 rows" in msg
    assert "-5" in msg and "-12.5" in msg
    assert "orders.amount.negative_value: set_aside" in msg  # the fix names the rule


def test_negative_amounts_can_be_set_aside_by_rule(tmp_path):
    orders = orders_df()
    orders.loc[[0, 2], "amount"] = [-5.0, -12.5]
    write_dataset(tmp_path / "shop", {"orders": orders})
    ds = load_dataset(tmp_path / "shop", rules={"negative_value": "set_aside"})
    assert ds.orders["order_id"].tolist() == ["o2", "o4", "o5"]
    aside = ds.set_aside["orders"]
    assert aside["order_id"].tolist() == ["o1", "o3"]
    assert set(aside["reason"]) == {"negative amount"}
    assert aside.index.tolist() == [0, 2]  # positions in the source file
    issue = ds.issues.query("rule == 'negative_value'").iloc[0]
    assert (issue.table, issue.column, issue.action, issue.n_rows) == ("orders", "amount",
                                                                      "set_aside", 2)
    assert_accounting(ds)


def test_text_in_a_number_column_is_a_type_error(tmp_path):
    orders = orders_df()
    orders["amount"] = orders["amount"].astype(object)
    orders.loc[4, "amount"] = "£12.00"
    write_dataset(tmp_path / "shop", {"orders": orders})
    with pytest.raises(DataContractError, match=r"orders\.amount: values that are not numbers "
                                                r"\(1 of 5 rows\); examples: '£12.00'"):
        load_dataset(tmp_path / "shop")


def test_all_missing_required_column_and_empty_table(tmp_path):
    orders = orders_df()
    orders["customer_id"] = None
    write_dataset(tmp_path / "a", {"orders": orders})
    with pytest.raises(DataContractError, match=r"orders\.customer_id: all values are missing"):
        load_dataset(tmp_path / "a")
    write_dataset(tmp_path / "b", {"orders": orders_df().iloc[:0]})
    with pytest.raises(DataContractError, match=r"orders: the table is empty"):
        load_dataset(tmp_path / "b")


def test_several_schema_problems_are_reported_together(tmp_path):
    orders = orders_df().drop(columns=["customer_id"])
    orders.loc[0, "order_ts"] = "not a date"
    write_dataset(tmp_path / "shop", {"orders": orders})
    with pytest.raises(DataContractError) as err:
        load_dataset(tmp_path / "shop")
    assert {p.column for p in err.value.problems} == {"customer_id", "order_ts"}
    assert "(2 problems)" in str(err.value)


# ----------------------------------------------------------------------------------------------
# row-level rules
# ----------------------------------------------------------------------------------------------
def test_exact_duplicates_set_aside_and_duplicate_keys_are_an_error(tmp_path):
    orders = pd.concat([orders_df(), orders_df().iloc[[1]]], ignore_index=True)  # exact copy of o2
    ds = load_dataset(write_dataset(tmp_path / "a", {"orders": orders}))
    assert ds.orders["order_id"].tolist() == ["o1", "o2", "o3", "o4", "o5"]
    assert ds.set_aside["orders"]["reason"].tolist() == ["exact duplicate"]
    assert ds.set_aside["orders"].index.tolist() == [5]
    assert_accounting(ds)

    clash = orders_df()
    clash.loc[4, "order_id"] = "o4"  # same key, different row
    write_dataset(tmp_path / "b", {"orders": clash})
    with pytest.raises(DataContractError) as err:
        load_dataset(tmp_path / "b")
    msg = str(err.value)
    assert "orders.order_id: rows share the unique key (order_id)" in msg
    assert "2 of 5 rows" in msg and "'o4'" in msg

    ds = load_dataset(tmp_path / "b", rules={"orders.duplicate_key": "set_aside"})
    assert ds.orders["order_id"].tolist() == ["o1", "o2", "o3"]
    assert ds.set_aside["orders"]["reason"].tolist() == ["duplicate key", "duplicate key"]
    ds = load_dataset(tmp_path / "b", rules={"duplicate_key": "repair"})
    assert ds.orders["order_id"].tolist() == ["o1", "o2", "o3", "o4"]  # first kept
    assert ds.set_aside["orders"]["reason"].tolist() == ["duplicate key (first kept)"]
    assert ds.quality.set_index("table").loc["orders", "rows_repaired"] == 1
    assert_accounting(ds)


def test_exact_duplicate_rule_can_keep_or_error(tmp_path):
    orders = pd.concat([orders_df(), orders_df().iloc[[1]]], ignore_index=True)
    folder = write_dataset(tmp_path / "a", {"orders": orders})
    with pytest.raises(DataContractError, match="identical to an earlier row"):
        load_dataset(folder, rules={"exact_duplicate": "error"})
    # keeping an exact duplicate order makes a duplicate key: the key rule still applies
    with pytest.raises(DataContractError, match="unique key"):
        load_dataset(folder, rules={"exact_duplicate": "keep"})


def test_order_lines_with_the_same_key_are_merged_on_repair(tmp_path):
    lines = pd.DataFrame({"order_id": ["o1", "o1", "o1", "o2"],
                          "product_id": ["p1", "p2", "p1", "p1"],
                          "quantity": [2, 1, 3, 1], "unit_price": [10.0, 4.0, 5.0, 10.0]})
    orders = orders_df().iloc[:2].drop(columns=["amount"])
    folder = write_dataset(tmp_path / "a", {"orders": orders, "order_lines": lines})
    with pytest.raises(DataContractError, match=r"order_lines\.order_id, product_id"):
        load_dataset(folder)
    ds = load_dataset(folder, rules={"order_lines.duplicate_key": "repair"})
    ol = ds.order_lines
    merged = ol[(ol.order_id == "o1") & (ol.product_id == "p1")].iloc[0]
    assert merged.quantity == 5 and merged.unit_price == pytest.approx(35 / 5)  # weighted price
    assert ds.set_aside["order_lines"]["reason"].tolist() == [
        "merged into an earlier line (duplicate key)"]
    q = ds.quality.set_index("table")
    assert q.loc["order_lines", "rows_repaired"] == 1 and q.loc["order_lines", "rows_kept"] == 3
    # orders.amount is derived from the lines (money is conserved by the merge)
    assert ds.orders.set_index("order_id")["amount"].to_dict() == {"o1": 39.0, "o2": 10.0}
    assert ds.orders.set_index("order_id")["n_items"].to_dict() == {"o1": 6.0, "o2": 1.0}
    assert_accounting(ds)


def test_orphan_keys_error_or_set_aside_and_children_of_set_aside_rows_follow(tmp_path):
    lines = pd.DataFrame({"order_id": ["o1", "o2", "o9"], "product_id": ["p1", "p1", "p1"],
                          "quantity": [1, 1, 1], "unit_price": [5.0, 6.0, 7.0]})
    orders = orders_df().iloc[:2]
    folder = write_dataset(tmp_path / "a", {"orders": orders, "order_lines": lines,
                                            "customers": customers_df().iloc[1:]})
    with pytest.raises(DataContractError) as err:
        load_dataset(folder)
    msg = str(err.value)
    assert "orders.customer_id: values not found in customers.customer_id" in msg
    assert "order_lines.order_id: values not found in orders.order_id" in msg
    assert "'o9'" in msg and "'c1'" in msg

    ds = load_dataset(folder, rules={"orphan_key": "set_aside"})
    # o1 and o2 belong to c1, who is not in customers: both orders set aside as orphans, and the
    # lines of those orders follow them; o9's line is an orphan itself.
    assert len(ds.orders) == 0
    reasons = ds.set_aside["order_lines"].set_index("order_id")["reason"].to_dict()
    assert reasons == {"o1": "orders row set aside", "o2": "orders row set aside",
                       "o9": "unknown order id"}
    assert set(ds.set_aside["orders"]["reason"]) == {"unknown customer id"}
    assert_accounting(ds)


def test_out_of_range_age_is_repaired_and_missing_demographics_kept(tmp_path):
    ds = load_dataset(write_dataset(tmp_path / "a", {"orders": orders_df(),
                                                     "customers": customers_df()}))
    cust = ds.customers.set_index("customer_id")
    assert np.isnan(cust.loc["c2", "age"]) and cust.loc["c1", "age"] == 34
    assert cust["gender"].tolist()[:2] == ["f", "m"] and pd.isna(cust.loc["c3", "gender"])
    q = ds.quality.set_index("table")
    assert q.loc["customers", "rows_repaired"] == 1 and q.loc["customers", "rows_kept"] == 3
    iss = ds.issues.set_index(["table", "column", "rule"])
    assert iss.loc[("customers", "age", "out_of_range"), "action"] == "repair"
    assert iss.loc[("customers", "age", "out_of_range"), "examples"] == "150"
    assert iss.loc[("customers", "gender", "missing_value"), "action"] == "keep"
    assert_accounting(ds)


def test_invalid_codes_repaired_on_optional_columns_and_code_mapping(tmp_path):
    orders = orders_df().assign(device=["Mobile", "PC", "pc", "tablet", "smart-tv"])
    folder = write_dataset(tmp_path / "a", {"orders": orders}, tables={
        "orders": {"file": "orders.csv", "codes": {"device": {"PC": "desktop"}}}})
    ds = load_dataset(folder)
    assert ds.orders["device"].tolist()[:4] == ["mobile", "desktop", "desktop", "tablet"]
    assert pd.isna(ds.orders["device"].iloc[4])
    assert ds.issues.query("rule == 'invalid_code'")["examples"].tolist() == ["'smart-tv'"]


def test_future_dates_are_an_error_and_can_be_set_aside(tmp_path):
    orders = orders_df()
    orders.loc[4, "order_ts"] = "2031-01-01"
    folder = write_dataset(tmp_path / "a", {"orders": orders})
    with pytest.raises(DataContractError, match=r"orders\.order_ts: timestamps after the data end "
                                                r"2024-12-31 \(analysis_date\) \(1 of 5 rows\)"):
        load_dataset(folder)
    ds = load_dataset(folder, rules={"future_date": "set_aside"})
    assert ds.set_aside["orders"]["reason"].tolist() == ["order ts after data end"]
    # a timestamp during the last day is not in the future
    orders.loc[4, "order_ts"] = "2024-12-31 23:59"
    assert len(load_dataset(write_dataset(tmp_path / "b", {"orders": orders})).orders) == 5


def test_zero_amounts_error_by_default_and_keep_rule(tmp_path):
    orders = orders_df()
    orders.loc[3, "amount"] = 0.0
    folder = write_dataset(tmp_path / "a", {"orders": orders})
    with pytest.raises(DataContractError, match=r"orders\.amount: zero values"):
        load_dataset(folder)
    ds = load_dataset(folder, rules={"orders.amount.zero_value": "keep"})
    assert ds.orders["amount"].iloc[3] == 0.0
    assert ds.issues.query("rule == 'zero_value'")["action"].tolist() == ["keep"]


def test_missing_ids_error_or_set_aside(tmp_path):
    orders = orders_df()
    orders.loc[2, "customer_id"] = None
    folder = write_dataset(tmp_path / "a", {"orders": orders})
    with pytest.raises(DataContractError, match=r"orders\.customer_id: missing values in required "
                                                r"column 'customer_id' \(1 of 5 rows\); "
                                                r"examples: 'o3'"):
        load_dataset(folder)
    ds = load_dataset(folder, rules={"missing_value": "set_aside"})
    assert ds.set_aside["orders"]["reason"].tolist() == ["no customer id"]
    with pytest.raises(DataContractError, match="cannot apply to required column"):
        load_dataset(folder, rules={"missing_value": "keep"})


# ----------------------------------------------------------------------------------------------
# time zones and types
# ----------------------------------------------------------------------------------------------
def test_tz_aware_timestamps_are_converted_to_the_dataset_zone_then_made_naive(tmp_path):
    orders = orders_df()
    orders["order_ts"] = pd.to_datetime(
        ["2024-01-05 10:00", "2024-07-01 12:00", "2024-03-03 00:00", "2024-04-04 00:00",
         "2024-05-05 00:00"]).tz_localize("UTC")
    ds = load_dataset(write_dataset(tmp_path / "a", {"orders": orders}, fmt="parquet",
                                    timezone="Europe/London"))
    ts = ds.orders["order_ts"]
    assert ts.dtype == "datetime64[ns]" and ts.dt.tz is None
    assert ts.iloc[0] == pd.Timestamp("2024-01-05 10:00")  # GMT in winter
    assert ts.iloc[1] == pd.Timestamp("2024-07-01 13:00")  # BST in summer

    # ISO strings with offsets (CSV)
    orders = orders_df()
    orders["order_ts"] = ["2024-01-05T10:00:00+01:00", "2024-07-01T12:00:00Z",
                          "2024-03-03T00:00:00+00:00", "2024-04-04T09:00:00-05:00",
                          "2024-05-05T18:00:00+00:00"]
    ds = load_dataset(write_dataset(tmp_path / "b", {"orders": orders}, timezone="Asia/Shanghai"))
    assert ds.orders["order_ts"].iloc[0] == pd.Timestamp("2024-01-05 17:00")
    assert ds.orders["order_ts"].iloc[3] == pd.Timestamp("2024-04-04 22:00")


def test_naive_timestamps_in_a_declared_source_zone_and_mixed_zones(tmp_path):
    folder = write_dataset(tmp_path / "a", {"orders": orders_df()}, timezone="Asia/Shanghai",
                           reader={"source_timezone": "UTC"})
    ds = load_dataset(folder)
    assert ds.orders["order_ts"].iloc[0] == pd.Timestamp("2024-01-05 18:00")
    orders = orders_df()
    orders.loc[0, "order_ts"] = "2024-01-05T10:00:00+01:00"
    with pytest.raises(DataContractError, match="mixes time-zone-aware values"):
        load_dataset(write_dataset(tmp_path / "b", {"orders": orders}))


def test_contract_dtypes_and_float_ids(tmp_path):
    orders = orders_df()
    orders["customer_id"] = [13085.0, 13085.0, 12.0, 7.0, 7.0]
    ds = load_dataset(write_dataset(tmp_path / "a", {"orders": orders}, fmt="parquet"))
    o = ds.orders
    assert o["customer_id"].tolist() == ["13085", "13085", "12", "7", "7"]
    assert isinstance(o["order_id"].dtype, pd.StringDtype)
    assert o["amount"].dtype == "float64"
    assert o["order_ts"].dtype == "datetime64[ns]"


# ----------------------------------------------------------------------------------------------
# formats: transactions, lines, SQL
# ----------------------------------------------------------------------------------------------
def test_transactions_format_with_products(tmp_path):
    folder = tmp_path / "tx"
    folder.mkdir()
    pd.DataFrame({"cust": ["a", "a", "b"], "when": ["2024-01-01", "2024-01-02", "2024-01-03"],
                  "paid": [10.0, 6.0, 9.0], "sku": ["x", "y", "x"], "qty": [2, 3, 1]}
                 ).to_csv(folder / "tx.csv", index=False)
    cfg = {"format": "transactions", "source": {"file": "tx.csv"},
           "columns": {"customer_id": "cust", "order_ts": "when", "amount": "paid",
                       "product_id": "sku", "quantity": "qty"},
           "analysis_date": "2024-12-31"}
    (folder / "dataset.yaml").write_text(yaml.safe_dump(cfg))
    ds = load_dataset(folder)
    assert ds.orders["order_id"].tolist() == ["1", "2", "3"]  # 1-based row numbers
    assert ds.orders["n_items"].tolist() == [2.0, 3.0, 1.0]
    assert ds.order_lines["unit_price"].tolist() == [5.0, 2.0, 9.0]
    assert sorted(ds.products["product_id"]) == ["x", "y"]
    assert ds.supports("products") and not ds.supports("demographics")
    assert_accounting(ds)


def lines_source() -> pd.DataFrame:
    return pd.DataFrame({
        "Invoice": ["100", "100", "100", "100", "101", "101", "C102", "103", "104", "105"],
        "StockCode": ["A1", "A2", "A1", "POST", "A1", "A2", "A1", "A2", "A1", "A2"],
        "Description": ["Mug", "Plate", "Mug", "Postage", "Mug", "plate", "Mug", "Plate", "Mug",
                        "Plate"],
        "Quantity": [2, 1, 3, 1, 1, 4, -1, 1, 5, 1],
        "InvoiceDate": ["2024-01-01 10:00"] * 4 + ["2024-01-02 09:00"] * 2
                       + ["2024-01-03 12:00", "2024-01-04 08:00", "2024-01-04 09:00",
                          "2024-01-05 10:00"],
        "Price": [3.0, 5.0, 4.0, 10.0, 3.0, 5.0, 3.0, 0.0, 3.0, 5.0],
        "Customer ID": [1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 1.0, 2.0, np.nan, 2.0],
        "Country": ["France", "France", "France", "France", "UK", "UK", "France", "UK", "UK",
                    "Germany"],
    })


def lines_config(**rules: str) -> dict:
    return {"format": "lines", "source": {"file": "lines.parquet"},
            "columns": {"order_id": "Invoice", "product_id": "StockCode",
                        "product_name": "Description", "quantity": "Quantity",
                        "unit_price": "Price", "order_ts": "InvoiceDate",
                        "customer_id": "Customer ID", "region": "Country"},
            "lines": {"cancellation": {"column": "Invoice", "prefix": "C"},
                      "non_product_codes": {"column": "StockCode", "codes": ["post"],
                                            "ignore_case": True}},
            "analysis_date": "2024-12-31", "timezone": "Europe/London", "currency": "GBP",
            "rules": {"missing_value": "set_aside", "zero_value": "set_aside",
                      "duplicate_key": "repair", **rules}}


def test_lines_format_builds_orders_returns_products_customers(tmp_path):
    folder = tmp_path / "shop"
    folder.mkdir()
    lines_source().to_parquet(folder / "lines.parquet", index=False)
    (folder / "dataset.yaml").write_text(yaml.safe_dump(lines_config()))
    ds = load_dataset(folder)
    assert_accounting(ds)
    q = ds.quality.set_index("table")
    assert q.loc["order_lines", "rows_in"] + q.loc["returns", "rows_in"] == 10
    reasons = ds.set_aside["order_lines"]["reason"].value_counts().to_dict()
    assert reasons == {"merged into an earlier line (duplicate key)": 1, "non-product code": 1,
                       "zero unit price": 1, "no customer id": 1}
    orders = ds.orders.set_index("order_id")
    assert orders.loc["100", "amount"] == 2 * 3 + 3 * 4 + 1 * 5  # merged A1 line + A2
    assert orders.loc["100", "n_items"] == 6
    assert sorted(orders.index) == ["100", "101", "105"]
    r = ds.returns.iloc[0]
    assert (r.customer_id, r.amount, r.quantity, r.product_id) == ("1", 3.0, 1.0, "A1")
    assert pd.isna(r.order_id)
    prods = ds.products.set_index("product_id")
    assert prods.loc["A2", "product_name"] == "Plate"  # most frequent description
    assert prods.loc["A2", "price"] == 5.0
    cust = ds.customers.set_index("customer_id")
    assert cust.loc["1", "region"] == "france"
    assert cust.loc["2", "region"] == "uk"  # most frequent of uk, uk, germany
    assert q.loc["customers", "rows_repaired"] == 1
    merged = ds.order_lines.query("order_id == '100' and product_id == 'A1'")
    assert merged["quantity"].tolist() == [5.0]
    assert merged["unit_price"].tolist() == [pytest.approx(18 / 5)]


def test_lines_format_bad_selector_column_is_a_clear_error(tmp_path):
    folder = tmp_path / "shop"
    folder.mkdir()
    lines_source().to_parquet(folder / "lines.parquet", index=False)
    cfg = lines_config()
    cfg["lines"]["cancellation"]["column"] = "Invoce"
    (folder / "dataset.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(DataContractError, match="'Invoce' named in lines.cancellation.column"):
        load_dataset(folder)


def test_sql_source_through_sqlite(tmp_path):
    folder = tmp_path / "db"
    folder.mkdir()
    with sqlite3.connect(folder / "shop.db") as con:
        orders_df().to_sql("orders_export", con, index=False)
        customers_df().to_sql("customers", con, index=False)
    cfg = {"format": "tables", "analysis_date": "2024-12-31",
           "tables": {"orders": {"url": "sqlite:///shop.db", "table": "orders_export"},
                      "customers": {"url": "sqlite:///shop.db",
                                    "query": "SELECT * FROM customers"}}}
    (folder / "dataset.yaml").write_text(yaml.safe_dump(cfg))
    ds = load_dataset(folder)
    assert len(ds.orders) == 5 and len(ds.customers) == 3
    assert ds.orders["order_ts"].iloc[0] == pd.Timestamp("2024-01-05 10:00")
    assert_accounting(ds)


# ----------------------------------------------------------------------------------------------
# dataset.yaml mistakes, lookup, CLI
# ----------------------------------------------------------------------------------------------
def test_config_mistakes_are_explained(tmp_path):
    folder = write_dataset(tmp_path / "a", {"orders": orders_df()},
                           rules={"zero_amounts": "keep"})
    with pytest.raises(DataContractError, match="Unknown rule 'zero_amounts'"):
        load_dataset(folder)
    folder = write_dataset(tmp_path / "b", {"orders": orders_df()}, analysis_dat="2024-01-01")
    with pytest.raises(DataContractError, match="Did you mean 'analysis_date'"):
        load_dataset(folder)
    with pytest.raises(DataContractError, match="action 'drop' is not allowed"):
        load_dataset(write_dataset(tmp_path / "c", {"orders": orders_df()}),
                     rules={"exact_duplicate": "drop"})
    with pytest.raises(DataContractError, match="No dataset 'no_such_dataset'"):
        load_dataset("no_such_dataset")


def test_cli_validate_prints_report_or_error(tmp_path, capsys):
    good = write_dataset(tmp_path / "good", {"orders": orders_df(), "customers": customers_df()})
    assert cli(["validate", str(good)]) == 0
    out = capsys.readouterr().out
    assert "rows_in" in out and "customers" in out and "out_of_range" in out
    bad_orders = orders_df()
    bad_orders.loc[0, "amount"] = -1.0
    bad = write_dataset(tmp_path / "bad", {"orders": bad_orders})
    assert cli(["validate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "orders.amount: negative values" in err
    assert cli(["validate", str(bad), "--rule", "negative_value=set_aside"]) == 0


# ----------------------------------------------------------------------------------------------
# shipped real datasets
# ----------------------------------------------------------------------------------------------
def test_cdnow_counts_match_the_published_numbers():
    ds = load_dataset("cdnow")
    assert len(ds.orders) == 69_659
    assert ds.orders["customer_id"].nunique() == 23_570
    assert ds.orders["order_ts"].min() == pd.Timestamp("1997-01-01")
    assert ds.orders["order_ts"].max() <= pd.Timestamp("1998-06-30")
    assert ds.default_analysis_date == pd.Timestamp("1998-06-30")
    # zero-value purchases are kept as orders (as in the literature) and reported
    assert (ds.orders["amount"] == 0).sum() == 80
    zero = ds.issues.query("rule == 'zero_value'").iloc[0]
    assert (zero.table, zero.column, zero.action, zero.n_rows) == ("orders", "amount", "keep", 80)
    assert set(ds.tables) == {"orders"} and not ds.supports("products")
    assert_accounting(ds)

    sample = load_dataset("cdnow_sample")
    assert len(sample.orders) == 6_919
    assert sample.orders["customer_id"].nunique() == 2_357
    assert (sample.orders["amount"] == 0).sum() == 8
    # the sample's customer ids are the master file's ids: same purchases
    master = ds.orders.set_index(["customer_id", "order_ts", "amount"]).index
    assert sample.orders.set_index(["customer_id", "order_ts", "amount"]).index.isin(master).all()
    assert_accounting(sample)


@pytest.fixture(scope="module")
def orii():
    if not ORII_FILE.exists():
        pytest.skip("Online Retail II not shipped")
    return load_dataset("online_retail_ii")


def test_online_retail_ii_accounting_adds_up(orii):
    assert_accounting(orii)
    q = orii.quality.set_index("table")
    n_source = len(pd.read_parquet(ORII_FILE, columns=["Invoice"]))
    assert n_source == 1_044_847
    # every source line is an order line or a return, kept or set aside
    assert q.loc["order_lines", "rows_in"] + q.loc["returns", "rows_in"] == n_source
    assert q.loc["returns", "rows_in"] == 19_165  # invoices starting with "C"
    assert orii.timezone == "Europe/London" and orii.currency == "GBP"
    assert orii.default_analysis_date == pd.Timestamp("2011-12-09")


def test_online_retail_ii_set_aside_reasons_match_an_independent_count(orii):
    raw = pd.read_parquet(ORII_FILE)
    canc = raw["Invoice"].str.startswith("C")
    sales = raw[~canc]
    expected = {}
    dup = sales.duplicated()
    expected["exact duplicate"] = int(dup.sum())
    sales = sales[~dup]
    nocust = sales["Customer ID"].isna()
    expected["no customer id"] = int(nocust.sum())
    sales = sales[~nocust]
    codes = {"POST", "DOT", "M", "C2", "C3", "D", "S", "B", "BANK CHARGES", "AMAZONFEE", "ADJUST",
             "ADJUST2", "CRUK", "PADS", "TEST001", "TEST002", "GIFT"}
    code = sales["StockCode"].str.upper()
    nonprod = code.isin(codes) | code.str.startswith("GIFT_")
    expected["non-product code"] = int(nonprod.sum())
    sales = sales[~nonprod]
    zero = sales["Price"] == 0
    expected["zero unit price"] = int(zero.sum())
    sales = sales[~zero]
    assert (sales["Price"] > 0).all() and (sales["Quantity"] > 0).all()
    merged = sales.duplicated(["Invoice", "StockCode"])
    expected["merged into an earlier line (duplicate key)"] = int(merged.sum())
    got = orii.set_aside["order_lines"]["reason"].value_counts().to_dict()
    assert got == expected
    assert len(orii.order_lines) == len(sales) - merged.sum()
    q = orii.quality.set_index("table")
    repaired = sales.duplicated(["Invoice", "StockCode"], keep=False) & ~merged
    assert q.loc["order_lines", "rows_repaired"] == repaired.sum()
    # the reasons and counts are reported in ds.issues too
    iss = orii.issues.query("table == 'order_lines'").set_index("rule")
    assert iss.loc["missing_value", "n_rows"] == expected["no customer id"]
    assert iss.loc["non_product_code", "action"] == "set_aside"
    assert "'POST'" in iss.loc["non_product_code", "examples"]
    assert set(orii.set_aside["returns"]["reason"]) == {"exact duplicate", "no customer id",
                                                        "non-product code"}


def test_online_retail_ii_tables_follow_the_contract(orii):
    o, ol, r = orii.orders, orii.order_lines, orii.returns
    assert not o["customer_id"].str.contains(r"\.").any()  # 13085.0 -> "13085"
    assert "13085" in set(o["customer_id"])
    assert (o["amount"] > 0).all() and (r["amount"] > 0).all() and (r["quantity"] > 0).all()
    assert r["order_id"].isna().all()  # cancellations are not linked to an original order
    assert not ol.duplicated(["order_id", "product_id"]).any()
    sums = (ol["quantity"] * ol["unit_price"]).groupby(ol["order_id"]).sum()
    assert np.allclose(o.set_index("order_id")["amount"].loc[sums.index], sums)
    assert set(orii.products["product_id"]) >= set(ol["product_id"]) | set(r["product_id"])
    assert (orii.customers["region"] == "united kingdom").mean() > 0.8
    assert not orii.products["product_id"].str.upper().isin(["POST", "M", "DOT"]).any()
    assert orii.supports("products") and orii.supports("returns")
    assert orii.supports("demographics") and not orii.supports("events")


@pytest.mark.skipif(not (data_dir() / "synthetic" / "dataset.yaml").exists(),
                    reason="synthetic data not generated")
def test_synthetic_tables_dataset_loads_with_dirt_accounted():
    ds = load_dataset("synthetic")
    assert_accounting(ds)
    q = ds.quality.set_index("table")
    assert q.loc["customers", "rows_repaired"] > 0  # impossible ages repaired to NA
    assert ds.customers["age"].dropna().between(10, 110).all()
    aside = ds.set_aside
    assert set(aside["order_lines"]["reason"]) <= {"exact duplicate"}
    assert set(aside["events"]["reason"]) <= {"exact duplicate"}
    assert ds.truth is not None and "customer_id" in ds.truth.customers.columns


# ----------------------------------------------------------------------------------------------
# reader options and unreadable files
# ----------------------------------------------------------------------------------------------
def test_encoding_decimal_comma_and_semicolon_csv(tmp_path):
    folder = tmp_path / "eu"
    folder.mkdir()
    text = ("order_id;customer_id;order_ts;amount\n"
            "o1;Müller;05.01.2024;1.234,50\n"
            "o2;Zoë;06.01.2024;7,25\n")
    (folder / "orders.csv").write_bytes(text.encode("latin-1"))
    cfg = {"format": "tables", "analysis_date": "2024-12-31", "tables": ["orders"],
           "reader": {"delimiter": ";", "date_format": "%d.%m.%Y", "decimal": ",",
                      "thousands": "."}}
    (folder / "dataset.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(DataContractError, match=r"not valid utf-8 text.*reader\.encoding"):
        load_dataset(folder)
    cfg["reader"]["encoding"] = "latin-1"
    (folder / "dataset.yaml").write_text(yaml.safe_dump(cfg))
    ds = load_dataset(folder)
    assert ds.orders["amount"].tolist() == [1234.5, 7.25]
    assert ds.orders["customer_id"].tolist() == ["Müller", "Zoë"]
    assert ds.orders["order_ts"].tolist() == [pd.Timestamp("2024-01-05"),
                                              pd.Timestamp("2024-01-06")]


def test_truncated_parquet_and_missing_file_are_clear_errors(tmp_path):
    folder = write_dataset(tmp_path / "a", {"orders": orders_df()}, fmt="parquet")
    data = (folder / "orders.parquet").read_bytes()
    (folder / "orders.parquet").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataContractError, match=r"orders \(orders.parquet\): cannot read parquet "
                                                r"source.*truncated"):
        load_dataset(folder)
    (folder / "orders.parquet").unlink()
    with pytest.raises(DataContractError, match=r"orders.parquet does not exist"):
        load_dataset(folder)


def test_empty_optional_table_is_present_but_has_no_rows(tmp_path):
    folder = write_dataset(tmp_path / "a", {"orders": orders_df(),
                                            "events": pd.DataFrame()})
    (folder / "events.csv").write_text("")
    ds = load_dataset(folder)
    assert not ds.has("events") and ds.events is not None and len(ds.events) == 0
    assert ds.events["event_ts"].dtype == "datetime64[ns]"
    assert_accounting(ds)


# ----------------------------------------------------------------------------------------------
# fingerprint (the record of which bytes a run read)
# ----------------------------------------------------------------------------------------------
def test_fingerprint_changes_with_any_file_and_hides_passwords(tmp_path, capsys):
    import json

    from helpers.data import fingerprint
    from helpers.data.fingerprint import redact_url

    folder = write_dataset(tmp_path / "shop", {"customers": customers_df(), "orders": orders_df()})
    first = fingerprint(folder)
    assert set(first["files"]) == {"dataset.yaml", "customers.csv", "orders.csv"}
    assert fingerprint(folder) == first  # stable
    with open(folder / "orders.csv", "a", encoding="utf-8") as fh:  # a half-written export
        fh.write("O9,C1,")
    second = fingerprint(folder)
    assert second["sha256"] != first["sha256"]
    assert second["files"]["customers.csv"] == first["files"]["customers.csv"]
    assert redact_url("postgresql://ann:s3cret@db/shop") == "postgresql://ann:***@db/shop"
    assert cli(["fingerprint", str(folder)]) == 0
    assert json.loads(capsys.readouterr().out)["sha256"] == second["sha256"]


def test_row_ids_match_dataframe_duplicated() -> None:
    """The compact row ids used by the duplicate checks group rows exactly like
    ``DataFrame.duplicated`` (strings, missing values, floats, timestamps, booleans)."""
    from helpers.data.validate import _duplicated, _row_ids

    rng = np.random.default_rng(0)
    n = 2000
    df = pd.DataFrame({
        "s": pd.array(rng.choice(["a", "b", None, " c"], n), dtype=pd.StringDtype("pyarrow")),
        "f": np.where(rng.random(n) < 0.2, np.nan, rng.integers(0, 3, n).astype(float)),
        "t": pd.to_datetime(rng.integers(0, 3, n), unit="D"),
        "b": pd.array(rng.choice([True, False, None], n), dtype="boolean"),
    }, index=pd.RangeIndex(10, 10 + n))
    for cols in (["s"], ["s", "f"], ["s", "f", "t", "b"]):
        for keep in ("first", False):
            expected = df[cols].duplicated(keep=keep)
            got = _duplicated(df, cols, keep=keep)
            pd.testing.assert_series_equal(got, expected, check_names=False)
        ids = _row_ids(df, cols)
        # same id <=> same row: as many ids as distinct rows
        assert len(np.unique(ids)) == len(df[cols].drop_duplicates())
    assert _duplicated(df.iloc[:0], ["s", "f"]).empty


def test_take_rows_consume_matches_boolean_indexing() -> None:
    """Moving the kept rows column by column gives the same frame as ``df[keep]``."""
    from helpers.data.validate import _take_rows

    df = pd.DataFrame({
        "a": pd.array(["x", None, "z", "w"], dtype=pd.StringDtype("pyarrow")),
        "t": pd.to_datetime([1, 2, 3, 4], unit="D"),
        "f": [1.0, np.nan, 3.0, 4.0],
        "b": pd.array([True, None, False, True], dtype="boolean"),
    }, index=pd.RangeIndex(5, 9))
    keep = np.array([True, False, True, False])
    expected = df[keep]
    handed_over = df.copy()
    pd.testing.assert_frame_equal(_take_rows(handed_over, keep, consume=True), expected)
    assert handed_over.shape[1] == 0  # the columns were moved out, not copied
    pd.testing.assert_frame_equal(_take_rows(df, keep, consume=False), expected)
    assert df.shape == (4, 4)
