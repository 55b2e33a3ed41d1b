"""The synthetic generator: reproducible, internally consistent, and its truth is what it says."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from helpers import synth


@pytest.fixture(scope="module")
def small() -> synth.SyntheticData:
    return synth.generate(3000, seed=7)


def test_same_seed_same_data(small):
    again = synth.generate(3000, seed=7)
    for name, df in small.tables.items():
        pd.testing.assert_frame_equal(df, again.tables[name], obj=name)
    pd.testing.assert_frame_equal(small.truth_customers, again.truth_customers)


def test_other_seed_other_data(small):
    other = synth.generate(3000, seed=8)
    assert not small.tables["orders"]["order_ts"].equals(other.tables["orders"]["order_ts"])


def test_keyed_uniform_is_deterministic_and_uniform():
    i = np.arange(200_000)
    u = synth.keyed_uniform(1, 2, i, 3)
    assert np.array_equal(u, synth.keyed_uniform(1, 2, i, 3))
    assert 0 < u.min() and u.max() < 1
    assert abs(u.mean() - 0.5) < 0.005
    # a different purpose or counter gives (nearly) independent draws
    v = synth.keyed_uniform(1, 2, i, 4)
    assert abs(np.corrcoef(u, v)[0, 1]) < 0.01


def test_nobody_buys_after_dropping_out(small):
    orders = small.tables["orders"].merge(small.truth_customers, on="customer_id")
    after = orders["dropout_ts"].notna() & (orders["order_ts"] > orders["dropout_ts"] + pd.Timedelta(days=1))
    assert not after.any()
    # and the drop-out moment is a purchase of that customer (BG/NBD: drop out after a purchase)
    last = orders.groupby("customer_id")["order_ts"].max()
    dead = small.truth_customers.dropna(subset=["dropout_ts"]).set_index("customer_id")["dropout_ts"]
    gap = (last.reindex(dead.index) - dead).abs()
    assert (gap < pd.Timedelta(days=1)).all()


def test_alive_at_matches_definition(small):
    t = synth.Truth(small.truth_customers, small.facts)
    alive = t.alive_at("2025-06-30")
    c = small.truth_customers.set_index("customer_id")
    assert (c.loc[alive.index, "first_purchase_ts"] <= pd.Timestamp("2025-06-30")).all()
    dead_ids = alive.index[~alive.to_numpy()]
    assert (c.loc[dead_ids, "dropout_ts"] <= pd.Timestamp("2025-06-30")).all()
    assert 0.3 < alive.mean() < 0.95


def test_personas_differ_in_value(small):
    orders = small.tables["orders"]
    lines = small.tables["order_lines"].drop_duplicates()
    value = (lines["quantity"] * lines["unit_price"]).groupby(lines["order_id"]).sum()
    spend = value.groupby(orders.set_index("order_id").loc[value.index, "customer_id"]).sum()
    per = small.truth_customers.set_index("customer_id")["persona"]
    by_persona = spend.groupby(per.reindex(spend.index)).mean()
    assert by_persona["premium_loyalist"] > 2 * by_persona["occasional_browser"]


def test_experiment_is_randomized_and_effect_positive(small):
    exp = small.tables["experiments"]
    loy = exp[exp["experiment_id"] == "loyalty_holdout_2025"]
    share = (loy["arm"] == "treatment").mean()
    assert 0.45 < share < 0.55
    eff = small.facts["experiment"]["true_effect"]
    assert 0.0 < eff < small.facts["loyalty_rate_multiplier"] - 1 + 0.05
    # every treated customer is a member enrolled no later than the experiment start
    members = small.tables["loyalty"].set_index("customer_id")
    treated = loy.loc[loy["arm"] == "treatment", "customer_id"]
    assert treated.isin(members.index).all()
    assert (members.loc[treated, "enrolled_at"] <= pd.Timestamp("2025-07-01")).all()
    held = loy.loc[loy["arm"] == "holdout", "customer_id"]
    assert not held.isin(members.index).any()


def test_self_selection_into_membership(small):
    per = small.truth_customers.set_index("customer_id")["persona"]
    exp = small.tables["experiments"]
    treated = set(exp.loc[exp["arm"] == "treatment", "customer_id"])
    self_members = [c for c in small.tables["loyalty"]["customer_id"] if c not in treated]
    share_premium_members = (per.loc[self_members] == "premium_loyalist").mean()
    assert share_premium_members > 1.3 * (per == "premium_loyalist").mean()


def test_dirty_records_present(small):
    lines = small.tables["order_lines"]
    assert lines.duplicated().sum() > 0
    assert small.tables["customers"]["gender"].isna().sum() > 0
    assert (small.tables["customers"]["age"] > 110).sum() > 0


def test_surveys_predict_churn(small):
    s = small.tables["surveys"].groupby("customer_id")["nps"].mean()
    t = small.truth_customers.set_index("customer_id")
    dead = t.loc[s.index, "dropout_ts"].notna()
    assert s[~dead].mean() > s[dead].mean()


def test_written_dataset_roundtrip(small, tmp_path):
    path = synth.write_dataset(small, tmp_path / "syn")
    assert (path / "dataset.yaml").exists()
    t = synth.Truth.load(path / "truth")
    assert len(t.customers) == 3000
    assert t.facts["experiment"]["experiment_id"] == "loyalty_holdout_2025"
    back = pd.read_parquet(path / "orders.parquet")
    pd.testing.assert_frame_equal(back, small.tables["orders"], check_dtype=False)
