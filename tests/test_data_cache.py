"""The validated-dataset cache and lazy tables (helpers.data.cache, issue 10).

A cached load must give exactly what a fresh load gives (tables, quality, issues, set-aside
rows: values, dtypes and indexes), read big tables only when touched, notice every change of
its inputs, survive damage, stay off when asked, and never store anything but contract columns.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

from helpers.data import DataContractError, load_dataset
from helpers.data import cache as dcache

from test_bad_inputs import CASES  # the bad-input suite's malformed datasets


@pytest.fixture
def cache_env(tmp_path, monkeypatch) -> Path:
    """A private cache folder; every dataset is cached however small."""
    folder = tmp_path / "cache"
    monkeypatch.setenv(dcache.CACHE_DIR_ENV, str(folder))
    monkeypatch.setenv(dcache.CACHE_MIN_BYTES_ENV, "0")
    monkeypatch.delenv(dcache.CACHE_ENV, raising=False)
    return folder


@pytest.fixture(scope="module")
def synthetic_small(tmp_path_factory) -> Path:
    """300 synthetic customers: every table, planted duplicates, missing values, bad ages."""
    from helpers import synth

    out = tmp_path_factory.mktemp("synth") / "s300"
    synth.write_dataset(synth.generate(300, seed=3), out)
    return out


def entries(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def assert_same(fresh, other, check_rules: bool = True) -> None:
    """Tables, quality, issues and set-aside rows identical (dtypes and indexes included)."""
    kw = dict(check_index_type=True, check_column_type=True, check_exact=True)
    assert list(fresh.tables) == list(other.tables)
    for name in fresh.tables:
        pd.testing.assert_frame_equal(fresh.tables[name], other.tables[name], obj=name, **kw)
    pd.testing.assert_frame_equal(fresh.quality, other.quality, obj="quality", **kw)
    pd.testing.assert_frame_equal(fresh.issues, other.issues, obj="issues", **kw)
    pd.testing.assert_frame_equal(fresh.missing, other.missing, obj="missing", **kw)
    assert list(fresh.set_aside) == list(other.set_aside)
    for name in fresh.set_aside:
        pd.testing.assert_frame_equal(fresh.set_aside[name], other.set_aside[name],
                                      obj=f"set_aside[{name}]", **kw)
    assert fresh.report() == other.report()
    assert repr(fresh) == repr(other)
    for attr in ("name", "format", "timezone", "currency", "default_analysis_date", "data_end",
                 "pseudonymized") + (("rules",) if check_rules else ()):
        assert getattr(fresh, attr) == getattr(other, attr), attr


# ---------------------------------------------------------------------------- equality
def test_cached_load_equals_fresh_load_on_synthetic_data(synthetic_small, cache_env,
                                                         monkeypatch):
    monkeypatch.setattr(dcache, "LAZY_MIN_ROWS", 1000)  # events, orders, ... are lazy here
    fresh = load_dataset(synthetic_small, cache=False)
    assert not cache_env.exists()
    assert len(fresh.set_aside["order_lines"]) and len(fresh.issues)  # planted defects
    first = load_dataset(synthetic_small)       # validates and writes the entry
    assert len(entries(cache_env)) == 1
    second = load_dataset(synthetic_small)      # read from the entry
    assert isinstance(second.tables, dcache.LazyTables)
    assert_same(fresh, first)
    assert_same(fresh, second)
    pd.testing.assert_frame_equal(fresh.truth.customers, second.truth.customers)


@pytest.mark.parametrize("case", [c for c in CASES if c.error is None],
                         ids=[c.id for c in CASES if c.error is None])
def test_bad_inputs_load_the_same_through_the_cache(case, tmp_path, cache_env):
    """Every repaired/flagged input of the bad-input suite: identical results from the cache."""
    folder = case.build(tmp_path / "data")
    rules = case.rules or None
    fresh = load_dataset(folder, rules=rules, cache=False)
    load_dataset(folder, rules=rules)
    cached = load_dataset(folder, rules=rules)
    assert_same(fresh, cached)


@pytest.mark.parametrize("case", [c for c in CASES if c.error is not None][:8],
                         ids=[c.id for c in CASES if c.error is not None][:8])
def test_errors_are_raised_the_same_and_never_cached(case, tmp_path, cache_env):
    folder = case.build(tmp_path / "data")
    with pytest.raises(DataContractError) as fresh:
        load_dataset(folder, rules=case.rules or None, cache=False)
    for _ in range(2):
        with pytest.raises(DataContractError) as cached:
            load_dataset(folder, rules=case.rules or None)
        assert str(cached.value) == str(fresh.value)
    assert not cache_env.exists() or not entries(cache_env)


# ---------------------------------------------------------------------------- laziness
def test_big_tables_are_read_on_first_access(synthetic_small, cache_env, monkeypatch):
    monkeypatch.setattr(dcache, "LAZY_MIN_ROWS", 1000)
    load_dataset(synthetic_small)
    ds = load_dataset(synthetic_small)
    lazy = [t for t in ds.tables if ds.n_rows(t) >= 1000]
    assert "events" in lazy
    assert set(ds.tables.loaded()).isdisjoint(lazy)
    assert ds.has("events") and "events" in repr(ds) and ds.report()
    assert set(ds.tables.loaded()).isdisjoint(lazy)  # has/repr/report use stored row counts
    events = ds.events
    assert "events" in ds.tables.loaded() and len(events) == ds.n_rows("events")
    assert ds.events is events  # read once, then kept


def cached_load_with_events_file_gone(folder, cache_dir, monkeypatch):
    """(cached load whose lazy events file was deleted after loading, fresh load)."""
    monkeypatch.setattr(dcache, "LAZY_MIN_ROWS", 1000)
    fresh = load_dataset(folder, cache=False)
    load_dataset(folder)
    ds = load_dataset(folder)
    (entries(cache_dir)[0] / "tables" / "events.parquet").unlink()
    return ds, fresh


def test_a_lazy_table_whose_file_vanished_is_validated_again(synthetic_small, cache_env,
                                                             monkeypatch):
    ds, fresh = cached_load_with_events_file_gone(synthetic_small, cache_env, monkeypatch)
    pd.testing.assert_frame_equal(ds.events, fresh.events)


# ---------------------------------------------------------------------------- invalidation
def _copy(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest)
    return dest


def test_a_changed_source_file_invalidates(synthetic_small, tmp_path, cache_env):
    data = _copy(synthetic_small, tmp_path / "d")
    before = load_dataset(data)
    assert len(entries(cache_env)) == 1
    orders = pd.read_parquet(data / "orders.parquet")
    orders.loc[0, "discount_amount"] = orders.loc[0, "discount_amount"] + 1.5
    orders.to_parquet(data / "orders.parquet", index=False)
    after = load_dataset(data)
    assert len(entries(cache_env)) == 2
    assert after.orders["discount_amount"].sum() == pytest.approx(
        before.orders["discount_amount"].sum() + 1.5)
    assert_same(load_dataset(data, cache=False), after)


def test_a_touched_source_file_invalidates(synthetic_small, tmp_path, cache_env):
    data = _copy(synthetic_small, tmp_path / "d")
    load_dataset(data)
    st = (data / "events.parquet").stat()
    os.utime(data / "events.parquet", ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    load_dataset(data)
    assert len(entries(cache_env)) == 2


def test_a_changed_dataset_yaml_or_rules_argument_invalidates(synthetic_small, tmp_path,
                                                              cache_env):
    data = _copy(synthetic_small, tmp_path / "d")
    base = load_dataset(data)
    cfg = yaml.safe_load((data / "dataset.yaml").read_text())
    cfg["rules"]["customers.age.missing_value"] = "set_aside"  # instead of keep
    (data / "dataset.yaml").write_text(yaml.safe_dump(cfg))
    aside = load_dataset(data)
    assert len(entries(cache_env)) == 2
    assert len(aside.customers) < len(base.customers)
    assert_same(load_dataset(data, cache=False), aside)
    repaired = load_dataset(data, rules={"customers.age.missing_value": "keep"})
    assert len(entries(cache_env)) == 3
    assert_same(base, repaired, check_rules=False)  # rules differ, not the result


def test_a_change_of_loader_code_invalidates(synthetic_small, cache_env, monkeypatch):
    load_dataset(synthetic_small)
    monkeypatch.setattr(dcache, "code_version", lambda: "another loader")
    load_dataset(synthetic_small)
    assert len(entries(cache_env)) == 2


# ---------------------------------------------------------------------------- off, damage
def test_the_cache_can_be_turned_off(synthetic_small, cache_env, monkeypatch):
    monkeypatch.setenv(dcache.CACHE_ENV, "off")
    a = load_dataset(synthetic_small)
    b = load_dataset(synthetic_small)
    assert not cache_env.exists()
    assert type(a.tables) is dict and type(b.tables) is dict
    assert_same(a, b)
    monkeypatch.setenv(dcache.CACHE_ENV, "on")
    load_dataset(synthetic_small, cache=False)  # the argument wins over the environment
    assert not cache_env.exists()


def test_small_datasets_are_not_cached_by_default(synthetic_small, cache_env, monkeypatch):
    monkeypatch.delenv(dcache.CACHE_MIN_BYTES_ENV)
    load_dataset("cdnow_sample")  # a few hundred kB
    assert not cache_env.exists()


@pytest.mark.parametrize("damage", ["truncate_table", "no_meta", "bad_meta", "drop_set_aside"])
def test_a_damaged_entry_is_ignored_and_rebuilt(damage, synthetic_small, cache_env):
    fresh = load_dataset(synthetic_small, cache=False)
    load_dataset(synthetic_small)
    entry = entries(cache_env)[0]
    if damage == "truncate_table":
        p = entry / "tables" / "orders.parquet"
        p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    elif damage == "no_meta":  # as a writer killed before the end (without the rename)
        (entry / "meta.json").unlink()
    elif damage == "bad_meta":
        (entry / "meta.json").write_text("{not json")
    else:
        shutil.rmtree(entry / "set_aside")
    again = load_dataset(synthetic_small)
    assert_same(fresh, again)
    assert entries(cache_env) == [entry]            # rebuilt in place
    repaired = load_dataset(synthetic_small)
    assert isinstance(repaired.tables, dcache.LazyTables)
    assert_same(fresh, repaired)


def test_leftover_temporary_folders_are_ignored(synthetic_small, cache_env):
    cache_env.mkdir(parents=True)
    (cache_env / ".tmp-s300-half-written").mkdir()
    ((cache_env / ".tmp-s300-half-written") / "quality.parquet").write_bytes(b"PAR1")
    load_dataset(synthetic_small)
    ds = load_dataset(synthetic_small)
    assert isinstance(ds.tables, dcache.LazyTables)


def test_two_writers_of_one_key_leave_one_good_entry(synthetic_small, cache_env):
    """The second writer's rename fails (the entry exists): it keeps the first entry."""
    from helpers.data.config import parse_config, resolve
    from helpers.data.dataset import validate
    from helpers.data.rules import RuleBook

    cfg = parse_config(resolve(synthetic_small))
    parts = validate(cfg, RuleBook(cfg.rules))
    store = dcache.Store.for_config(cfg, None, None)
    assert store.write(parts) and store.write(parts)
    assert entries(cache_env) == [store.path]
    assert not [p for p in cache_env.iterdir() if p.name.startswith(".tmp-")]
    assert_same(load_dataset(synthetic_small, cache=False), load_dataset(synthetic_small))


def test_old_entries_are_pruned(synthetic_small, tmp_path, cache_env, monkeypatch):
    monkeypatch.setenv(dcache.CACHE_MAX_ENTRIES_ENV, "2")
    data = _copy(synthetic_small, tmp_path / "d")
    for i in range(4):
        (data / "dataset.yaml").write_text((data / "dataset.yaml").read_text() + f"\n# {i}\n")
        load_dataset(data)
    assert len(entries(cache_env)) == 2


# ---------------------------------------------------------------------------- privacy
def test_only_contract_columns_and_pseudonyms_reach_the_cache(tmp_path, cache_env, monkeypatch):
    """A source with personal columns and pseudonymized ids: the cache holds neither the
    personal values nor the source ids nor the salt, and a new salt means a new entry."""
    folder = tmp_path / "shop"
    folder.mkdir()
    n = 40
    orders = pd.DataFrame({
        "order_id": [f"O{i}" for i in range(n)],
        "customer_id": [f"mail{i % 7}@example.org" for i in range(n)],
        "order_ts": pd.date_range("2024-01-01", periods=n, freq="D").astype(str),
        "amount": [10.0 + i for i in range(n)],
        "full_name": [f"Secret Person {i}" for i in range(n)],
        "phone": [f"+86 139 0000 {i:04d}" for i in range(n)],
    })
    orders.to_csv(folder / "orders.csv", index=False)
    (folder / "dataset.yaml").write_text(yaml.safe_dump({
        "name": "shop", "format": "tables", "timezone": "UTC", "currency": "CNY",
        "analysis_date": "2024-12-31", "tables": {"orders": "orders.csv"},
        "privacy": {"pseudonymize_ids": True, "salt_env": "HANDBOOK_SALT_CACHE_TEST"}}))
    salt = "a-very-secret-salt-value"
    monkeypatch.setenv("HANDBOOK_SALT_CACHE_TEST", salt)
    fresh = load_dataset(folder, cache=False)
    load_dataset(folder)
    cached = load_dataset(folder)
    assert_same(fresh, cached)
    blob = b"".join(p.read_bytes() for p in cache_env.rglob("*") if p.is_file())
    for secret in ["Secret Person", "+86 139", "@example.org", salt]:
        assert secret.encode() not in blob, secret
    for p in cache_env.rglob("*.parquet"):
        assert set(pq.read_schema(p).names) - {"__index_level_0__"} <= (
            dcache.ALLOWED_COLUMNS | {"table", "column", "rule", "action", "n_rows", "examples",
                                      "rows_in", "rows_kept", "rows_repaired",
                                      "rows_set_aside", "rows", "missing"}), p
    monkeypatch.setenv("HANDBOOK_SALT_CACHE_TEST", salt + "-rotated")
    rotated = load_dataset(folder)
    assert len(entries(cache_env)) == 2
    assert set(rotated.orders["customer_id"]).isdisjoint(cached.orders["customer_id"])


def test_the_writer_refuses_non_contract_columns(tmp_path):
    parts = dcache.Parts({"orders": pd.DataFrame({"order_id": ["1"], "email": ["a@b.c"]})},
                         pd.DataFrame({"table": ["orders"]}), pd.DataFrame({"table": []}), {},
                         pd.DataFrame({"table": ["orders"]}))
    store = dcache.Store(tmp_path / "c", "x", "k" * 64)
    with pytest.raises(ValueError, match="email"):
        store.write(parts)
    assert not store.path.exists()
    assert not [p for p in (tmp_path / "c").iterdir()]
