"""Tests for helpers.lifecycle on small hand-computed fixtures (every expected number below is
worked out by hand from the fixture, not copied from a run)."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from helpers import lifecycle as lc  # noqa: E402
from helpers.data.cache import encode_columns  # noqa: E402


def _orders(rows):
    df = pd.DataFrame(rows, columns=["customer_id", "order_ts", "amount"])
    df["order_ts"] = pd.to_datetime(df["order_ts"])
    df.insert(0, "order_id", [f"o{i}" for i in range(len(df))])
    return df


ORDERS = _orders([
    ("c1", "2024-01-05 10:00", 100.0),
    ("c1", "2024-01-20 10:00", 50.0),
    ("c1", "2024-03-10 10:00", 30.0),
    ("c2", "2024-02-01 10:00", 200.0),
    ("c3", "2024-02-15 10:00", 10.0),
    ("c3", "2024-02-16 10:00", 20.0),
    ("c3", "2024-04-30 23:00", 40.0),   # late on the analysis day: counts
    ("c3", "2024-05-01 00:00", 999.0),  # after the analysis day: ignored everywhere
])
RETURNS = pd.DataFrame({"return_id": ["r1"], "customer_id": ["c1"],
                        "return_ts": pd.to_datetime(["2024-01-25"]), "amount": [15.0]})
AD = "2024-04-30"


def test_monthly_kpis_hand_computed():
    k = lc.monthly_kpis(ORDERS, analysis_date=AD, returns=RETURNS)
    assert [str(m) for m in k.index] == ["2024-01", "2024-02", "2024-03", "2024-04"]
    assert k["active_customers"].tolist() == [1, 2, 1, 1]
    assert k["new_customers"].tolist() == [1, 2, 0, 0]
    assert k["returning_customers"].tolist() == [0, 0, 1, 1]
    assert k["orders"].tolist() == [2, 3, 1, 1]
    assert k["gmv"].tolist() == [150, 230, 30, 40]
    np.testing.assert_allclose(k["aov"], [75, 230 / 3, 30, 40])
    # Jan: c1 ordered twice (1 of 1); Feb: c3 twice, c2 once (1 of 2)
    np.testing.assert_allclose(k["repurchase_rate"], [1, 0.5, 0, 0])
    np.testing.assert_allclose(k["return_rate"], [0.1, 0, 0, 0])
    assert k["conversion"].isna().all() and k["complete"].all()


def test_monthly_kpis_incomplete_month_and_empty():
    k = lc.monthly_kpis(ORDERS, analysis_date="2024-04-29")
    assert k.loc[pd.Period("2024-04"), "orders"] == 0   # the 30 April order is after the date
    assert not k.loc[pd.Period("2024-04"), "complete"]
    assert lc.last_complete_month("2024-04-29") == pd.Period("2024-03")
    assert lc.last_complete_month("2024-02-29") == pd.Period("2024-02")
    with pytest.raises(ValueError):
        lc.monthly_kpis(ORDERS, analysis_date="2023-12-31")


def test_cohort_matrices_hand_computed():
    cust = lc.cohort_matrix(ORDERS, analysis_date=AD, measure="customers")
    jan, feb = pd.Period("2024-01"), pd.Period("2024-02")
    np.testing.assert_allclose(cust.loc[jan].to_numpy(), [1, 0, 1, 0])
    np.testing.assert_allclose(cust.loc[feb].to_numpy()[:3], [1, 0, 0.5])
    assert np.isnan(cust.loc[feb, 3])  # May 2024 is not observed yet
    rev = lc.cohort_matrix(ORDERS, analysis_date=AD, measure="revenue")
    np.testing.assert_allclose(rev.loc[jan].to_numpy(), [150, 0, 30, 0])
    np.testing.assert_allclose(rev.loc[feb].to_numpy()[:3], [115, 0, 20])
    cum = lc.cohort_matrix(ORDERS, analysis_date=AD, measure="cumulative_revenue")
    np.testing.assert_allclose(cum.loc[jan].to_numpy(), [150, 150, 180, 180])
    np.testing.assert_allclose(cum.loc[feb].to_numpy()[:3], [115, 115, 135])
    assert lc.cohort_sizes(ORDERS, analysis_date=AD).tolist() == [1, 2]
    with pytest.raises(ValueError):
        lc.cohort_matrix(ORDERS, analysis_date=AD, measure="profit")


def test_retention_curves_only_observed_cohorts():
    groups = pd.Series({"c1": "x", "c2": "y", "c3": "y"})
    rc = lc.retention_curves(ORDERS, groups, analysis_date=AD, max_age=3)
    np.testing.assert_allclose(rc["x"].to_numpy(), [1, 0, 1, 0])
    np.testing.assert_allclose(rc["y"].to_numpy()[:3], [1, 0, 0.5])
    assert np.isnan(rc.loc[3, "y"])  # the February cohort has only 2 months observed


def test_value_in_first_months_net_of_returns():
    v = lc.value_in_first_months(ORDERS, analysis_date=AD, months=1, returns=RETURNS)
    # c1: 100 + 50 within 30.4 days of 5 Jan, minus the 15 refund; c2: 200; c3: 10 + 20
    assert v["value"].to_dict() == {"c1": 135.0, "c2": 200.0, "c3": 30.0}
    v3 = lc.value_in_first_months(ORDERS, analysis_date=AD, months=3)
    # 3 x 30.44 days after 1 Feb 10:00 is 2 May: only c1 (5 Jan + 91.3 days = 5 Apr) is
    # observed for three full months
    assert sorted(v3.index) == ["c1"]


# ------------------------------------------------------------------------------------------
# Stages and transitions
# ------------------------------------------------------------------------------------------
STAGE_ORDERS = pd.concat([ORDERS, _orders([("c6", "2024-04-20 09:00", 5.0),
                                           ("c7", "2024-02-20 09:00", 7.0)])], ignore_index=True)
CUSTOMERS = pd.DataFrame({"customer_id": ["c1", "c2", "c3", "c4", "c5", "c6", "c7"],
                          "signup_date": pd.to_datetime(["2024-01-01", "2024-01-01", "2024-01-01",
                                                         "2024-04-01", "2024-05-10", "2024-04-20",
                                                         "2024-02-20"])})
RULES = lc.StageRules(new_days=30, at_risk_days=60, churn_days=75, loyal_orders=2,
                      loyal_window_days=90)


def test_lifecycle_stages_hand_computed():
    st = lc.lifecycle_stages(STAGE_ORDERS, as_of=AD, rules=RULES, customers=CUSTOMERS)
    # c1: last order 51 days ago, 1 order in the 90-day window -> active
    # c2: last order 89 days ago > 75 -> churned; c3: 3 orders in the window -> loyal
    # c4: registered, no order -> potential; c5 registers after the date -> absent
    # c6: first order 10 days ago -> new; c7: last order 70 days ago (60 < 70 <= 75) -> at_risk
    assert st["stage"].astype(str).to_dict() == {
        "c1": "active", "c2": "churned", "c3": "loyal", "c4": "potential", "c6": "new",
        "c7": "at_risk"}
    assert st.loc["c1", "days_since_last"] == 51
    assert st.loc["c7", "days_since_last"] == 70


def test_customers_without_signup_date():
    cust = pd.DataFrame({"customer_id": ["c6", "c8"], "signup_date": pd.to_datetime([None, None])})
    early = lc.lifecycle_stages(STAGE_ORDERS, as_of="2024-03-31", rules=RULES, customers=cust)
    # c8 never orders: potential; c6 orders only on 20 April: unknown before that
    assert early.loc["c8", "stage"] == "potential"
    assert "c6" not in early.index
    late = lc.lifecycle_stages(STAGE_ORDERS, as_of=AD, rules=RULES, customers=cust)
    assert late.loc["c6", "stage"] == "new"


def test_stage_rules_validation():
    with pytest.raises(ValueError):
        lc.StageRules(at_risk_days=400, churn_days=365)
    with pytest.raises(ValueError):
        lc.StageRules(loyal_orders=1)


def test_transition_matrix_hand_computed():
    m = lc.transition_matrix(STAGE_ORDERS, from_date="2024-03-31", to_date=AD, rules=RULES,
                             customers=CUSTOMERS)
    # at 31 March: c1 loyal (3 orders in 90 days), c2 active, c3 loyal, c7 active,
    # c4 and c6 not yet registered
    expected = {("loyal", "active"): 1, ("active", "churned"): 1, ("loyal", "loyal"): 1,
                ("not_yet", "potential"): 1, ("not_yet", "new"): 1, ("active", "at_risk"): 1}
    assert int(m.to_numpy().sum()) == 6
    for (a, b), n in expected.items():
        assert m.loc[a, b] == n, (a, b)
    assert list(m.columns) == list(lc.STAGES)
    with pytest.raises(ValueError):
        lc.transition_matrix(STAGE_ORDERS, from_date=AD, to_date="2024-03-31")
    fig, ax = plt.subplots()
    lc.plot_stage_flows(m, ax)  # draws without error
    plt.close(fig)


# ------------------------------------------------------------------------------------------
# Funnel, anomalies, tiers
# ------------------------------------------------------------------------------------------
def test_funnel_hand_computed():
    ev = pd.DataFrame({
        "customer_id": ["u1"] * 3 + ["u2"] * 2 + ["u3", "u4"],
        "session_id": ["s1", "s1", "s1", "s2", "s2", "s3", "s4"],
        "event_type": ["view", "cart", "purchase", "view", "cart", "view", "purchase"],
        "event_ts": pd.to_datetime(["2024-01-01 10:00", "2024-01-01 10:05", "2024-01-01 10:09",
                                    "2024-01-02 10:00", "2024-01-02 10:01", "2024-01-03 10:00",
                                    "2024-01-04 10:00"]),
        "channel": ["a", "a", "a", "a", "a", "b", "b"],
        "device": ["mobile"] * 7,
    })
    f = lc.funnel(ev, analysis_date="2024-01-31").loc["all"]
    assert (f["sessions"], f["view"], f["cart"], f["purchase"]) == (4, 3, 2, 1)
    assert f["view_to_cart"] == pytest.approx(2 / 3)
    assert f["cart_to_purchase"] == pytest.approx(0.5)
    assert f["view_to_purchase"] == pytest.approx(1 / 3)
    byc = lc.funnel(ev, analysis_date="2024-01-31", by="channel")
    assert byc.loc["a", ["view", "cart", "purchase"]].tolist() == [2, 2, 1]
    assert byc.loc["b", "sessions"] == 2 and np.isnan(byc.loc["b", "cart_to_purchase"])
    # events after the analysis date are ignored
    assert lc.funnel(ev, analysis_date="2024-01-02").loc["all", "sessions"] == 2


def test_robust_z_and_anomalous_months():
    z = lc.robust_z(pd.Series([1.0, 2, 3, 4, 100]))
    assert z.iloc[-1] == pytest.approx(97 / 1.4826)
    assert lc.robust_z(pd.Series([5.0, 5, 5])).isna().all()
    assert lc.robust_z(pd.Series([np.nan, np.nan])).isna().all()
    # MAD = 0 (most values tied): mean absolute deviation 2/5 = 0.4, scaled by 1.2533
    assert lc.robust_z(pd.Series([1.0, 1, 1, 1, 3])).iloc[-1] == pytest.approx(2 / (1.2533 * 0.4))
    months = pd.period_range("2024-01", periods=8, freq="M")
    gmv = [100, 110, 121, 133.1, 400, 146.41, 161.05, 177.16]  # +10% a month, one spike
    k = pd.DataFrame({"gmv": gmv, "orders": gmv, "active_customers": gmv, "complete": True},
                     index=months)
    a = lc.flag_anomalous_months(k, columns=("gmv",))
    flagged = a.loc[a["anomalous"], "month"].astype(str).tolist()
    assert flagged == ["2024-05", "2024-06"]  # the jump up and the fall back


def test_flag_anomalous_days_finds_a_spike_not_the_weekly_rhythm():
    days = pd.date_range("2024-01-01", periods=126, freq="D")  # 18 weeks from a Monday
    rng = np.random.default_rng(0)
    counts = rng.integers(9, 12, len(days))  # 9..11 orders a day
    counts[days.dayofweek == 5] = 0           # closed on Saturdays: a rhythm, not an anomaly
    counts[60] = 50                           # one spike (a Friday)
    orders = pd.DataFrame({"customer_id": "c", "order_ts": np.repeat(days, counts),
                           "amount": 1.0})
    d = lc.flag_anomalous_days(orders, analysis_date=days[-1], column="orders")
    assert d.index[d["anomalous"]].tolist() == [days[60]]
    assert d["robust_z"].iloc[:21].isna().all()  # no centred 7-week window in the first 3 weeks
    assert d["baseline"].iloc[61] == 0  # Saturday's baseline is other Saturdays
    with pytest.raises(ValueError):
        lc.flag_anomalous_days(orders, analysis_date=days[-1], weeks=4)


def test_clv_tiers_shares():
    clv = pd.Series(np.arange(10, 0, -1, dtype=float), index=[f"c{i}" for i in range(10)])
    t = lc.clv_tiers(clv, high_share=0.2, potential_share=0.3)
    assert t.astype(str).tolist() == ["high_value"] * 2 + ["potential"] * 3 + ["low_value"] * 5
    with pytest.raises(ValueError):
        lc.clv_tiers(clv, high_share=0.8, potential_share=0.3)


def test_session_table_customer_day_sessions_without_session_id():
    ev = pd.DataFrame({"customer_id": ["c1", "c1", "c2", "c1", "c2"],
                       "event_ts": pd.to_datetime(["2024-01-01 09:00", "2024-01-01 20:00",
                                                   "2024-01-01 10:00", "2024-01-02 08:00",
                                                   "2024-01-01 11:00"]),
                       "event_type": ["view", "cart", "view", "view", "purchase"],
                       "channel": ["app", "web", "web", "app", "app"]})
    st = lc.session_table(ev, analysis_date="2024-01-31")
    # sessions in order of first appearance: c1 on 1 Jan, c2 on 1 Jan, c1 on 2 Jan
    assert st["view"].tolist() == [True, True, True]
    assert st["cart"].tolist() == [True, False, False]
    assert st["purchase"].tolist() == [False, True, False]
    assert st["channel"].tolist() == ["app", "web", "app"]
    assert st["start"].tolist() == list(pd.to_datetime(["2024-01-01 09:00", "2024-01-01 10:00",
                                                        "2024-01-02 08:00"]))


def _arrow(df: pd.DataFrame) -> pd.DataFrame:
    """The same events with every string column as Arrow-backed strings (as the loader gives)."""
    return df.astype({c: "string[pyarrow]" for c in df.columns if df[c].dtype == object})


EVENTS_UNSORTED = pd.DataFrame({
    # row order is not time order; s9 has only a non-funnel event; s1's two earliest events
    # share a time (the first row, channel "web", is its first event)
    "customer_id": ["u9", "u2", "u1", "u1", "u1", "u2"],
    "session_id": ["s9", "s2", "s1", "s1", "s1", "s2"],
    "event_type": ["favourite", "cart", "view", "view", "purchase", "view"],
    "event_ts": pd.to_datetime(["2024-01-01 08:00", "2024-01-02 10:05", "2024-01-01 10:00",
                                "2024-01-01 09:00", "2024-01-01 09:00", "2024-01-02 10:00"]),
    "channel": ["app", "app", "app", "web", "app", None],
    "device": ["pc", "pc", "pc", "pc", "pc", "pc"],
})


@pytest.mark.parametrize("arrow", [False, True])
def test_session_table_first_event_and_order(arrow):
    ev = _arrow(EVENTS_UNSORTED) if arrow else EVENTS_UNSORTED
    st = lc.session_table(ev, analysis_date="2024-01-31")
    # sessions in order of their first funnel row: s2 (row 1), then s1 (row 2); s9 has no funnel
    # event and is not a session of the funnel
    assert len(st) == 2
    assert st["start"].tolist() == list(pd.to_datetime(["2024-01-02 10:00", "2024-01-01 09:00"]))
    # s2's first event (10:00) has no channel -> "unknown"; s1: the tie at 09:00 goes to row 3
    assert st["channel"].astype(str).tolist() == ["unknown", "web"]
    assert st["view"].tolist() == [True, True]
    assert st["cart"].tolist() == [True, False]
    assert st["purchase"].tolist() == [False, True]
    by = lc.funnel(st, analysis_date="2024-01-31", by="channel")
    assert by.index.tolist() == ["unknown", "web"] and by.index.dtype == object
    assert by["sessions"].tolist() == [1, 1]
    # a start date drops s1 (1 Jan) entirely
    assert len(lc.session_table(ev, analysis_date="2024-01-31", start="2024-01-02")) == 1


class _FakeDataset:
    """The part of helpers.data.Dataset that session_table_from uses, recording the reads."""

    def __init__(self, events: pd.DataFrame):
        self.events, self.reads, self.coded = events, [], []

    def has(self, table: str) -> bool:
        return table == "events" and len(self.events) > 0

    def columns(self, table: str) -> list[str]:
        return list(self.events.columns)

    def read(self, table: str, columns=None, dictionary=()) -> pd.DataFrame:
        self.reads.append(list(columns))
        self.coded.append(list(dictionary))
        return encode_columns(self.events[list(columns)].copy(), dictionary)


def test_session_table_from_reads_only_the_columns_it_uses():
    ev = EVENTS_UNSORTED.assign(product_id="p1")
    fake = _FakeDataset(ev)
    st = lc.session_table_from(fake, analysis_date="2024-01-31")
    assert fake.reads == [["event_ts", "event_type", "session_id", "channel", "device"]]
    assert fake.coded == [["session_id", "event_type"]]  # codes: the same table as from strings
    pd.testing.assert_frame_equal(st, lc.session_table(ev, analysis_date="2024-01-31"))
    # a missing session id: sessions become customer-days, so customer_id is read as well
    fake = _FakeDataset(ev.assign(session_id=[None, "s2", "s1", "s1", "s1", "s2"]))
    st = lc.session_table_from(fake, analysis_date="2024-01-31")
    assert fake.reads[-1] == ["customer_id"] and len(st) == 2  # u2 on 2 Jan, u1 on 1 Jan
    assert fake.coded[-1] == ["customer_id"]
    assert lc.session_table_from(_FakeDataset(ev.iloc[:0]), analysis_date="2024-01-31") is None
