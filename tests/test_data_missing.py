"""Missing values per table and column, counted at load time (``Dataset.missing``, issue 10).

Chapter 01 reports them; with ``ds.missing`` it no longer reads every table (53M event rows at
1M customers) to count them. The counts must equal counting the loaded tables, fresh or cached.
"""
from __future__ import annotations

import pandas as pd
import pytest

from helpers.data import load_dataset
from helpers.data import cache as dcache
from helpers.data.validate import MISSING_COLUMNS, missing_counts, n_missing

from test_bad_inputs import CASES
from test_data_cache import cache_env, synthetic_small  # noqa: F401 - fixtures


def _counted(tables) -> pd.DataFrame:
    """The reference: ``isna().sum()`` of every column of every table."""
    rows = [dict(table=t, column=c, rows=len(df), missing=int(df[c].isna().sum()))
            for t, df in tables.items() for c in df.columns]
    return pd.DataFrame(rows, columns=MISSING_COLUMNS).astype({"rows": "int64",
                                                                "missing": "int64"})


def test_missing_counts_equal_counting_the_tables(synthetic_small, cache_env, monkeypatch):
    monkeypatch.setattr(dcache, "LAZY_MIN_ROWS", 1000)
    fresh = load_dataset(synthetic_small, cache=False)
    expected = _counted(fresh.tables)
    assert expected["missing"].gt(0).any()  # the synthetic data has gaps (e.g. ages)
    pd.testing.assert_frame_equal(fresh.missing, expected)
    load_dataset(synthetic_small)
    cached = load_dataset(synthetic_small)
    pd.testing.assert_frame_equal(cached.missing, expected)
    assert "events" not in cached.tables.loaded()  # the counts did not need the big table


def test_missing_counts_give_portraits_table(synthetic_small):
    """What chapter 01 shows (portrait.missing_values) follows from the counts."""
    from helpers import portrait

    ds = load_dataset(synthetic_small, cache=False)
    m = ds.missing[(ds.missing["missing"] > 0) & (ds.missing["rows"] > 0)]
    got = pd.DataFrame({"table": m["table"], "column": m["column"], "missing": m["missing"],
                        "missing_share": (m["missing"] / m["rows"]).round(4)}
                       ).reset_index(drop=True)
    pd.testing.assert_frame_equal(got, portrait.missing_values(ds.tables), check_dtype=False)


@pytest.mark.parametrize("case", [c for c in CASES if c.error is None][:12],
                         ids=[c.id for c in CASES if c.error is None][:12])
def test_missing_counts_on_bad_inputs(case, tmp_path):
    ds = load_dataset(case.build(tmp_path / "data"), rules=case.rules or None, cache=False)
    pd.testing.assert_frame_equal(ds.missing, _counted(ds.tables))


def test_n_missing_for_every_dtype():
    s = pd.Series(["a", None, "b", None], dtype=pd.StringDtype("pyarrow"))
    assert n_missing(s) == 2
    assert n_missing(pd.Series([1.0, float("nan")])) == 1
    assert n_missing(pd.Series(pd.to_datetime(["2020-01-01", None]))) == 1
    assert n_missing(pd.Series([True, None], dtype="boolean")) == 1
    frame = missing_counts({"t": pd.DataFrame({"a": s, "b": [1.0, 2.0, 3.0, 4.0]})})
    assert frame.to_dict("list") == {"table": ["t", "t"], "column": ["a", "b"], "rows": [4, 4],
                                     "missing": [2, 0]}
