"""Column projection: ``Dataset.read(table, columns=[...])`` (helpers.data, issue 10).

The result must equal ``ds.tables[table][columns]`` (values, dtypes, index) whether the dataset
came from a fresh load, from the cache (lazy tables: only the asked columns are read from the
Parquet file and nothing is kept), or from a table already in memory; unknown names must raise
errors that name the table and the column.
"""
from __future__ import annotations

import json

import pandas as pd
import pytest

from helpers import ids
from helpers.data import load_dataset
from helpers.data import cache as dcache

from test_data_cache import cache_env, entries, synthetic_small  # noqa: F401 - fixtures
from test_data_cache import cached_load_with_events_file_gone

EVENT_COLS = ["event_type", "customer_id", "event_ts"]  # not in file order on purpose


def _check_all_tables(ds, full) -> None:
    for table in full.tables:
        cols = list(full.tables[table].columns)
        for pick in (cols[::-1][:3], cols[:1], cols):
            got = ds.read(table, columns=pick)
            pd.testing.assert_frame_equal(got, full.tables[table][pick], check_exact=True,
                                          check_index_type=True, obj=f"{table}{pick}")
        assert ds.columns(table) == cols


def test_read_equals_selecting_from_a_fresh_load(synthetic_small):
    fresh = load_dataset(synthetic_small, cache=False)
    _check_all_tables(fresh, fresh)
    assert fresh.read("events") is fresh.events  # columns=None: the table itself


def test_read_from_the_cache_reads_only_the_asked_columns(synthetic_small, cache_env,
                                                          monkeypatch):
    monkeypatch.setattr(dcache, "LAZY_MIN_ROWS", 1000)  # events is lazy here
    fresh = load_dataset(synthetic_small, cache=False)
    load_dataset(synthetic_small)
    ds = load_dataset(synthetic_small)
    assert isinstance(ds.tables, dcache.LazyTables)
    assert "events" not in ds.tables.loaded()
    asked: list[object] = []
    real = dcache.pq.read_table

    def spy(path, *args, **kwargs):
        asked.append((str(path), kwargs.get("columns")))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(dcache.pq, "read_table", spy)
    got = ds.read("events", columns=EVENT_COLS)
    pd.testing.assert_frame_equal(got, fresh.events[EVENT_COLS], check_exact=True,
                                  check_index_type=True)
    assert asked == [(str(entries(cache_env)[0] / "tables" / "events.parquet"), EVENT_COLS)]
    assert "events" not in ds.tables.loaded()  # a projection is not kept
    assert ds.columns("events") == list(fresh.events.columns)  # known without reading
    assert len(asked) == 1
    _check_all_tables(ds, fresh)
    events = ds.events  # read in full: later projections select from it, no file read
    asked.clear()
    pd.testing.assert_frame_equal(ds.read("events", columns=EVENT_COLS), events[EVENT_COLS])
    assert asked == []


def test_read_of_a_vanished_cache_file_validates_again(synthetic_small, cache_env,
                                                       monkeypatch):
    ds, fresh = cached_load_with_events_file_gone(synthetic_small, cache_env, monkeypatch)
    pd.testing.assert_frame_equal(ds.read("events", columns=EVENT_COLS),
                                  fresh.events[EVENT_COLS])


@pytest.mark.parametrize("cached", [False, True])
def test_unknown_names_are_clear_errors(synthetic_small, cache_env, monkeypatch, cached):
    monkeypatch.setattr(dcache, "LAZY_MIN_ROWS", 1000)
    if cached:
        load_dataset(synthetic_small)
    ds = load_dataset(synthetic_small, cache=cached)
    assert isinstance(ds.tables, dcache.LazyTables) == cached
    with pytest.raises(ValueError, match=r"table 'events' has no column 'evnt_type'.*"
                                         r"customer_id, event_ts, event_type"):
        ds.read("events", columns=["customer_id", "evnt_type"])
    with pytest.raises(ValueError, match="listed more than once: customer_id"):
        ds.read("events", columns=["customer_id", "customer_id"])
    with pytest.raises(ValueError, match=r"dictionary: 'session_id' of table 'events' is not "
                                         r"among the columns read \(customer_id\)"):
        ds.read("events", columns=["customer_id"], dictionary=["session_id"])
    with pytest.raises(TypeError, match="list of names"):
        ds.read("events", columns=["customer_id"], dictionary="customer_id")
    with pytest.raises(TypeError, match="list of names"):
        ds.read("events", columns="customer_id")
    del ds.tables["surveys"]
    with pytest.raises(KeyError, match="has no table 'surveys'"):
        ds.read("surveys", columns=["customer_id"])
    with pytest.raises(KeyError, match="has no table 'surveys'"):
        ds.columns("surveys")
    if cached:
        assert "events" not in ds.tables.loaded()


# -- dictionary-encoded id columns (cache format 3: stored codes of CODED_COLUMNS) ---------------
CODED = ["session_id", "customer_id"]


def _decoded(df: pd.DataFrame, like: pd.DataFrame) -> pd.DataFrame:
    """``df`` with its dictionary columns cast back to the dtypes of ``like``."""
    out = df.copy()
    for c in out.columns:
        if ids.is_dictionary(out[c]):
            out[c] = ids.as_arrow_strings(out[c]).to_pandas(
                types_mapper=lambda t: like[c].dtype).astype(like[c].dtype)
    return out


def _check_coded(got: pd.DataFrame, want: pd.DataFrame) -> None:
    for c in CODED:
        assert ids.is_dictionary(got[c]), c
        codes, uniq = ids.dictionary_codes(got[c])
        ref_codes, ref_uniq = pd.factorize(want[c].astype(object))
        assert codes.tolist() == ref_codes.tolist() and uniq.to_pylist() == list(ref_uniq)
    assert not ids.is_dictionary(got["event_type"])
    pd.testing.assert_frame_equal(_decoded(got, want), want, check_exact=True,
                                  check_index_type=True)


def test_dictionary_columns_from_stored_codes(synthetic_small, cache_env, monkeypatch):
    monkeypatch.setattr(dcache, "LAZY_MIN_ROWS", 1000)  # events is lazy and coded here
    fresh = load_dataset(synthetic_small, cache=False)
    load_dataset(synthetic_small)
    entry = entries(cache_env)[0]
    meta = json.loads((entry / "meta.json").read_text())
    assert meta["tables"]["events"]["coded"] == {
        c: f"events.{c}.arrow" for c in dcache.CODED_COLUMNS["events"]}
    assert "coded" not in meta["tables"]["orders"]  # only the declared columns are coded
    ds = load_dataset(synthetic_small)
    asked: list[object] = []
    real = dcache.pq.read_table

    def spy(path, *args, **kwargs):
        asked.append(kwargs.get("columns"))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(dcache.pq, "read_table", spy)
    cols = ["event_type", "session_id", "event_ts", "customer_id"]
    got = ds.read("events", columns=cols, dictionary=CODED)
    assert asked == [["event_type", "event_ts"]]  # the id strings are not read from Parquet
    assert list(got.columns) == cols
    _check_coded(got, fresh.events[cols])
    # a category column asked as codes comes from Parquet's dictionary pages (no strings)
    asked.clear()
    typed = ds.read("events", columns=cols, dictionary=CODED + ["event_type"])
    assert asked == [["event_type", "event_ts"]] and ids.is_dictionary(typed["event_type"])
    codes, uniq = ids.dictionary_codes(typed["event_type"])
    ref_codes, ref_uniq = pd.factorize(fresh.events["event_type"].astype(object))
    assert codes.tolist() == ref_codes.tolist() and uniq.to_pylist() == list(ref_uniq)
    pd.testing.assert_frame_equal(_decoded(typed, fresh.events[cols]), fresh.events[cols])
    # the same answers from a fresh load (encoded on the fly) and from a table in memory
    _check_coded(fresh.read("events", columns=cols, dictionary=CODED), fresh.events[cols])
    ds.events  # noqa: B018 - read in full
    _check_coded(ds.read("events", columns=cols, dictionary=CODED), fresh.events[cols])
    # numbers are left as they are; None = every column
    whole = fresh.read("orders", dictionary=["customer_id", "order_ts"])
    assert ids.is_dictionary(whole["customer_id"]) and not ids.is_dictionary(whole["order_ts"])


def test_damaged_stored_codes_fall_back_to_a_fresh_load(synthetic_small, cache_env,
                                                        monkeypatch):
    monkeypatch.setattr(dcache, "LAZY_MIN_ROWS", 1000)
    fresh = load_dataset(synthetic_small, cache=False)
    load_dataset(synthetic_small)
    ds = load_dataset(synthetic_small)
    (entries(cache_env)[0] / "tables" / "events.session_id.arrow").write_bytes(b"not arrow")
    got = ds.read("events", columns=["customer_id", "session_id"], dictionary=CODED)
    _check_coded(pd.concat([got, fresh.events[["event_type"]]], axis=1),
                 fresh.events[["customer_id", "session_id", "event_type"]])
