"""No personal data in outputs (issue 9, part 3).

A small synthetic dataset is given the personal data real exports carry: the customer id is an
e-mail address (in every table and in the planted truth), and the customers file has extra
columns with a full name, a second e-mail, a phone number and a postal address that the mapping
does not use. With ``privacy: {pseudonymize_ids: true}`` the loader replaces every customer id by
a keyed hash and drops the unmapped columns; all six chapters are then run once through the
runner's command line, and every file of the run folder (executed notebooks, HTML reports, CSV
and Parquet exports, metrics.json, anything else) is scanned for every personal value.

The unit tests at the top check the loader alone (cheap); the run is a module-scoped fixture
(expensive: run once).
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from helpers.data import DataContractError, load_dataset
from helpers.data.privacy import pseudonym
from helpers.paths import PARAMS

N_CUSTOMERS = 1500
SEED = 11
SALT = "test-salt-3f9a1c"  # the secret of this test run (never written to the dataset folder)
PSEUDONYM = re.compile(r"\bp_[0-9a-f]{16}\b")
ID_TABLES = ("customers", "orders", "returns", "events", "loyalty", "experiments", "surveys")
TEXT_SUFFIXES = {".ipynb", ".html", ".json", ".csv", ".txt", ".md", ".tsv", ".yaml", ".yml",
                 ".log", ".svg"}


# ----------------------------------------------------------------------------------------------
# the dataset with personal data
# ----------------------------------------------------------------------------------------------
def _personal(ids: pd.Series) -> pd.DataFrame:
    """Distinctive fake personal data for each id (no real person)."""
    n = pd.Series(range(1, len(ids) + 1), index=ids.index)
    surnames = ["Zhang", "Wang", "Li", "Zhao", "Liu", "Chen", "Yang", "Huang"]
    given = ["Xiuying", "Wei", "Fang", "Jing", "Lei", "Qiang", "Min", "Yan"]
    return pd.DataFrame({
        "email_id": [f"shopper.{i:05d}@mail-example.cn" for i in n],
        "full_name": [f"{surnames[i % 8]} {given[(i // 8) % 8]}{i:05d}" for i in n],
        "email": [f"contact.{i:05d}@post-example.cn" for i in n],
        "phone": [f"+86 139 {i // 10000:04d} {i % 10000:04d}" for i in n],
        "address": [f"Room {i:05d}, 88 Huaihai Road, Xuhui, Shanghai" for i in n],
    }, index=ids.index)


def make_pii_dataset(folder: Path, *, pseudonymize: bool) -> tuple[Path, pd.DataFrame]:
    """A synthetic dataset whose customer ids are e-mails and whose customers file carries
    name, e-mail, phone and address columns (not mapped). Returns the folder and the personal
    data (one row per customer: original id, e-mail id, name, e-mail, phone, address)."""
    from helpers import synth

    synth.write_dataset(synth.generate(N_CUSTOMERS, seed=SEED), folder)
    customers = pd.read_parquet(folder / "customers.parquet")
    pii = _personal(customers["customer_id"]).assign(customer_id=customers["customer_id"])
    to_email = dict(zip(pii["customer_id"], pii["email_id"]))
    for table in ID_TABLES:
        path = folder / f"{table}.parquet"
        df = pd.read_parquet(path)
        df["customer_id"] = df["customer_id"].map(lambda c: to_email.get(c, c))
        if table == "customers":
            df = df.join(pii.set_index("email_id")[["full_name", "email", "phone", "address"]],
                         on="customer_id")
        df.to_parquet(path, index=False)
    truth = folder / "truth" / "customers.parquet"
    t = pd.read_parquet(truth)
    t["customer_id"] = t["customer_id"].map(lambda c: to_email.get(c, c))
    t.to_parquet(truth, index=False)
    cfg = yaml.safe_load((folder / "dataset.yaml").read_text(encoding="utf-8"))
    cfg["name"] = "synthetic_pii"
    if pseudonymize:
        cfg["privacy"] = {"pseudonymize_ids": True, "salt_env": "HANDBOOK_SALT"}
    (folder / "dataset.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return folder, pii


def pii_values(pii: pd.DataFrame) -> list[str]:
    return [str(v) for col in ("email_id", "full_name", "email", "phone", "address")
            for v in pii[col]]


# ----------------------------------------------------------------------------------------------
# loader only (cheap)
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pii_plain(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    return make_pii_dataset(tmp_path_factory.mktemp("pii") / "plain", pseudonymize=False)


def test_unmapped_personal_columns_are_dropped_and_reported_by_name_only(pii_plain):
    folder, pii = pii_plain
    ds = load_dataset(folder)
    assert set(ds.customers.columns) <= {"customer_id", "signup_date", "gender", "age", "region",
                                         "device", "acquisition_channel"}
    unused = ds.issues.query("rule == 'unused_column' and table == 'customers'")
    assert len(unused) == 1 and unused.iloc[0]["action"] == "dropped"
    for col in ("full_name", "email", "phone", "address"):
        assert col in unused.iloc[0]["column"]
    text = ds.report() + ds.issues.to_string()
    for value in pii[["full_name", "email", "phone", "address"]].head(50).to_numpy().ravel():
        assert value not in text
    # without pseudonymization an e-mail used as the id stays an e-mail: that is what the
    # privacy option is for
    assert ds.orders["customer_id"].str.contains("@").all()
    assert not ds.pseudonymized


def test_pseudonymized_ids_are_consistent_across_tables_and_with_the_truth(pii_plain,
                                                                         monkeypatch):
    folder, pii = pii_plain
    cfg = yaml.safe_load((folder / "dataset.yaml").read_text(encoding="utf-8"))
    cfg["privacy"] = {"pseudonymize_ids": True}
    other = folder / "pseudo.yaml"
    other.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    monkeypatch.setenv("HANDBOOK_SALT", SALT)
    ds = load_dataset(other)
    assert ds.pseudonymized and "pseudonymized" in ds.report()
    expected = {e: pseudonym(e, SALT.encode()) for e in pii["email_id"]}
    for table in ID_TABLES:
        ids = ds.tables[table]["customer_id"]
        assert ids.str.fullmatch(PSEUDONYM.pattern[2:-2]).all(), table
        assert set(ids) <= set(expected.values()), table
    # same id -> same pseudonym in every table: the orders of a customer still join
    raw_orders = pd.read_parquet(folder / "orders.parquet")
    kept = ds.orders.merge(raw_orders[["order_id", "customer_id"]], on="order_id",
                           suffixes=("", "_raw"))
    assert (kept["customer_id"] == kept["customer_id_raw"].map(expected)).all()
    assert set(ds.truth.customers["customer_id"]) == set(ds.customers["customer_id"])
    # nothing personal in the report, the issues or the set-aside rows
    text = ds.report() + ds.issues.to_string() + "".join(
        df.to_csv() for df in ds.set_aside.values())
    assert "@" not in text
    # a different salt gives different pseudonyms; the same salt the same ones (across runs)
    monkeypatch.setenv("HANDBOOK_SALT", SALT + "-other")
    assert set(load_dataset(other).customers["customer_id"]).isdisjoint(ds.customers["customer_id"])


def test_pseudonymization_without_the_salt_is_a_clear_error(pii_plain, monkeypatch):
    folder, _ = pii_plain
    cfg = yaml.safe_load((folder / "dataset.yaml").read_text(encoding="utf-8"))
    cfg["privacy"] = {"pseudonymize_ids": True, "salt_env": "MY_SHOP_SALT"}
    other = folder / "no_salt.yaml"
    other.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    monkeypatch.delenv("MY_SHOP_SALT", raising=False)
    with pytest.raises(DataContractError, match=r"MY_SHOP_SALT.*not set.*export MY_SHOP_SALT="):
        load_dataset(other)
    cfg["privacy"] = {"pseudonymise_ids": True}
    other.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    with pytest.raises(DataContractError, match="Did you mean 'pseudonymize_ids'"):
        load_dataset(other)


# ----------------------------------------------------------------------------------------------
# a full run of every chapter (expensive: once per module)
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pii_run(tmp_path_factory) -> dict:
    folder, pii = make_pii_dataset(tmp_path_factory.mktemp("pii") / "pseudo", pseudonymize=True)
    out = tmp_path_factory.mktemp("run") / "report"
    env = {**os.environ, "JUPYTER_PREFER_ENV_PATH": "1", "HANDBOOK_SALT": SALT}
    res = subprocess.run(
        [sys.executable, "-m", "helpers.run", "--params", str(PARAMS / "small.yaml"),
         "-p", f"dataset={folder}", "--out", str(out), "--on-error", "continue"],
        capture_output=True, text=True, timeout=1800, cwd=os.sep, env=env)
    return {"folder": folder, "pii": pii, "out": out, "res": res}


def _file_text(path: Path) -> str | None:
    """Searchable text of one output file (``None`` for binary files such as images)."""
    if path.suffix.lower() == ".parquet":
        return pd.read_parquet(path).to_csv(index=False)
    if path.suffix.lower() in TEXT_SUFFIXES:
        return path.read_text(encoding="utf-8", errors="replace")
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def test_run_completes_on_the_pseudonymized_dataset(pii_run):
    res = pii_run["res"]
    metrics = json.loads((pii_run["out"] / "metrics.json").read_text(encoding="utf-8"))
    failed = {s: v["error"] for s, v in metrics["status"].items() if v["status"] != "ok"}
    assert res.returncode == 0 and not failed, (failed, res.stderr[-3000:])


def test_no_personal_value_in_any_output_file(pii_run):
    out, pii = pii_run["out"], pii_run["pii"]
    files = [p for p in out.rglob("*") if p.is_file()]
    kinds = {p.suffix for p in files}
    assert {".ipynb", ".html", ".json"} <= kinds, kinds
    # Every personal value carries a marker (its e-mail domain, the phone prefix, the street,
    # a surname + given name + number); scanning for the markers finds each value in
    # one linear pass (an alternation of all 7,500 values takes minutes on large HTML files).
    # The first assertion proves the markers cover every value; any e-mail address at all is
    # also reported.
    # markers are loose on purpose, so that truncated values ("Zhang Wei00...") are found too
    markers = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+|mail-example|post-example|\+86 139|Huaihai"
                         r"|\b(?:Zhang|Wang|Li|Zhao|Liu|Chen|Yang|Huang) [A-Z][a-z]+\d")
    needles = set(pii_values(pii))
    assert all(markers.search(v) for v in needles)
    found: dict[str, list[str]] = {}
    scanned = 0
    for path in files:
        text = _file_text(path)
        if text is None:
            continue
        scanned += 1
        hits = markers.findall(text)
        if hits:
            found[str(path.relative_to(out))] = sorted(set(hits))[:5]
    assert scanned >= 13  # 6 notebooks + 6 HTML + metrics.json (+ exports)
    assert not found, found


def test_pseudonymized_ids_in_exports_are_consistent(pii_run):
    out, pii = pii_run["out"], pii_run["pii"]
    known = {pseudonym(e, SALT.encode()) for e in pii["email_id"]}
    exports = [p for p in (out / "exports").rglob("*") if p.suffix in (".csv", ".parquet")]
    with_ids = 0
    for path in exports:
        df = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, dtype=str)
        if "customer_id" not in df.columns:
            continue
        with_ids += 1
        ids = df["customer_id"].dropna().astype(str)
        pseudo = ids.str.fullmatch(r"p_[0-9a-f]{16}")
        assert set(ids[pseudo]) <= known, path
        # besides pseudonyms only a few labels (e.g. chapter 05's "(no history)" row for new
        # customers), none of them an id of the source
        labels = set(ids[~pseudo])
        assert len(labels) <= 3 and not labels & set(pii["email_id"]) and not any(
            "@" in v or re.fullmatch(r"C\d+", v) for v in labels), (path, sorted(labels)[:5])
        assert pseudo.any(), path
    assert with_ids >= 3, [p.name for p in exports]
    # every pseudonym printed in a notebook or report is one of the dataset's
    for path in list(out.glob("*.ipynb")) + list(out.glob("*.html")):
        tokens = set(PSEUDONYM.findall(path.read_text(encoding="utf-8")))
        assert tokens <= known, (path.name, sorted(tokens - known)[:3])
