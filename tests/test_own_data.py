"""The "bring your own data" walk-through (docs/own_data.md) works as written.

Each test does what one step of the page says: validate the example with the command line, load
it, convert it to Parquet and to a SQLite table and load those, pseudonymize, and run chapter 03
on it with the runner and the params file the page names.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from helpers.data import DataContractError, load_dataset
from helpers.paths import PARAMS, ROOT

EXAMPLE = ROOT / "examples" / "own_data"
DOC = ROOT / "docs" / "own_data.md"
PII_COLUMNS = ("buyer_name", "buyer_phone", "ship_address")


def run_py(*args: str, cwd: Path = ROOT, env: dict | None = None,
           timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """``.venv/bin/python <args>`` from the project root, as the page shows."""
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=cwd,
                          timeout=timeout, env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def ds():
    return load_dataset("examples/own_data")


def copy_example(tmp_path: Path) -> Path:
    folder = tmp_path / "own_data"
    shutil.copytree(EXAMPLE, folder, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    return folder


def set_source(folder: Path, source: dict) -> None:
    cfg = yaml.safe_load((folder / "dataset.yaml").read_text(encoding="utf-8"))
    cfg["source"] = source
    (folder / "dataset.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True),
                                         encoding="utf-8")


def test_committed_export_is_what_the_generator_makes():
    sys.path.insert(0, str(EXAMPLE))
    try:
        import make_export  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(EXAMPLE))
    committed = (EXAMPLE / "shop_export.csv").read_text(encoding="utf-8")
    assert make_export.make().to_csv(index=False) == committed
    assert 200 <= committed.count("\n") <= 600


def test_validate_command_prints_the_report_shown_in_the_docs():
    res = run_py("-m", "helpers.data", "validate", "examples/own_data")
    assert res.returncode == 0, res.stderr
    doc = DOC.read_text(encoding="utf-8")
    shown = re.search(r"```text\n(Dataset 'own_data_example' \(format.*?)```", doc, re.S)
    assert shown, "the report block is missing from docs/own_data.md"
    assert res.stdout.strip() == shown.group(1).strip()


def test_the_mapping_loads_the_export_into_the_contract(ds):
    q = ds.quality.set_index("table")
    assert q.loc["orders", "rows_in"] == 344
    assert q.loc["orders", "rows_kept"] + q.loc["orders", "rows_set_aside"] == 344
    assert (q.rows_in == q.rows_kept + q.rows_set_aside).all()
    reasons = ds.set_aside["orders"]["reason"].value_counts().to_dict()
    assert reasons == {"cancelled before payment": 14, "test order": 8, "exact duplicate": 1}
    o = ds.orders
    # +08:00 converted to Asia/Shanghai: the same wall-clock time, made naive
    first = o.sort_values("order_ts").iloc[0]
    assert first["order_id"] == "SO25000001"
    assert first["order_ts"] == pd.Timestamp("2025-01-01 11:01:11")
    assert o["order_ts"].dt.tz is None and ds.timezone == "Asia/Shanghai"
    assert set(o["channel"].dropna()) == {"mini_program", "app", "web"}
    assert (o["amount"] > 1).all()  # the 0.01 test orders are gone
    assert set(ds.customers["region"].dropna()) <= {"上海", "北京", "杭州", "广州", "深圳", "成都"}
    assert len(ds.order_lines) == len(o) and ds.products["product_id"].str.startswith("SKU-").all()
    # personal data: not mapped, so not loaded; reported by name only
    for df in ds.tables.values():
        assert not set(PII_COLUMNS) & set(df.columns)
    unused = ds.issues.query("rule == 'unused_column'")
    assert unused["column"].tolist() == ["buyer_name, buyer_phone, ship_address"]
    raw = pd.read_csv(EXAMPLE / "shop_export.csv", dtype=str)
    text = ds.report() + "".join(df.to_csv() for df in ds.tables.values()) + "".join(
        df.to_csv() for df in ds.set_aside.values())
    for col in PII_COLUMNS:
        assert not any(v in text for v in raw[col].unique())


def test_parquet_and_sqlite_sources_give_the_same_orders(ds, tmp_path):
    folder = copy_example(tmp_path)
    # Parquet, as the page converts it
    pd.read_csv(folder / "shop_export.csv", dtype=str).to_parquet(folder / "shop_export.parquet",
                                                                  index=False)
    set_source(folder, {"file": "shop_export.parquet"})
    pq_ds = load_dataset(folder)
    # SQLite table, as the page converts it (a real database engine, no mock)
    with sqlite3.connect(folder / "shop.db") as con:
        pd.read_csv(folder / "shop_export.csv").to_sql("shop_orders", con, index=False)
    set_source(folder, {"url": "sqlite:///shop.db", "table": "shop_orders"})
    sql_ds = load_dataset(folder)
    for other in (pq_ds, sql_ds):
        pd.testing.assert_frame_equal(other.orders, ds.orders)
        pd.testing.assert_frame_equal(other.quality, ds.quality)
    # the query form of the page
    set_source(folder, {"url": "sqlite:///shop.db",
                        "query": "SELECT * FROM shop_orders WHERE paid_at >= '2025-01-01'"})
    assert len(load_dataset(folder).orders) == len(ds.orders)


def test_the_error_shown_in_the_docs(tmp_path):
    folder = copy_example(tmp_path)
    cfg = yaml.safe_load((folder / "dataset.yaml").read_text(encoding="utf-8"))
    cfg["columns"]["order_ts"] = "paid_time"
    (folder / "dataset.yaml").write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    with pytest.raises(DataContractError) as info:
        load_dataset(folder)
    msg = str(info.value)
    for part in ("orders.order_ts: column 'paid_time' mapped to 'order_ts' is not in "
                 "shop_export.csv", "did you mean 'paid_at'? (344 rows)",
                 "map it in dataset.yaml under columns: {order_ts: 'paid_at'}"):
        assert part in msg and part in DOC.read_text(encoding="utf-8"), part
    res = run_py("-m", "helpers.data", "validate", str(folder))
    assert res.returncode == 2 and "did you mean 'paid_at'" in res.stderr


def test_pseudonymized_variant(ds, tmp_path, monkeypatch):
    folder = copy_example(tmp_path)
    cfg = yaml.safe_load((folder / "dataset.yaml").read_text(encoding="utf-8"))
    cfg["privacy"] = {"pseudonymize_ids": True, "salt_env": "HANDBOOK_SALT"}
    (folder / "dataset.yaml").write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    monkeypatch.setenv("HANDBOOK_SALT", "0123456789abcdef" * 4)
    pseudo = load_dataset(folder)
    assert pseudo.orders["customer_id"].str.fullmatch(r"p_[0-9a-f]{16}").all()
    # one pseudonym per buyer, consistently in orders and customers
    assert pseudo.orders["customer_id"].nunique() == ds.orders["customer_id"].nunique()
    pairs = pd.DataFrame({"raw": ds.orders["customer_id"], "p": pseudo.orders["customer_id"]})
    assert (pairs.groupby("raw")["p"].nunique() == 1).all()
    assert set(pseudo.customers["customer_id"]) == set(pseudo.orders["customer_id"])


def test_runner_runs_chapter_03_on_the_example(tmp_path):
    out = tmp_path / "report"
    res = run_py("-m", "helpers.run", "--params", str(PARAMS / "own_data_example.yaml"),
                 "--chapters", "03", "--out", str(out),
                 env={"JUPYTER_PREFER_ENV_PATH": "1"})
    assert res.returncode == 0, res.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["status"]["03_rfm_segments"]["status"] == "ok"
    assert metrics["chapters"]["03_rfm_segments"]["n_customers"] == 117
    assert (out / "03_rfm_segments.html").is_file()
    assert (out / "exports" / "03_rfm_segments" / "rfm_segments.csv").is_file()
    raw = pd.read_csv(EXAMPLE / "shop_export.csv", dtype=str)
    for path in [p for p in out.rglob("*") if p.suffix in (".ipynb", ".html", ".csv", ".json")]:
        text = path.read_text(encoding="utf-8")
        for col in PII_COLUMNS:
            assert not any(v in text for v in raw[col].unique()), (path.name, col)
