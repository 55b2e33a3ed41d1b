"""Tests of helpers.portrait: hand-computed tags, clustering on simulated truth, persona recovery.

The last test runs the chapter's pipeline on the committed synthetic dataset and asserts that the
segments recover the planted personas clearly better than chance and than any single tag.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import helpers.portrait as hp
from helpers.data.cache import encode_columns

DATE = "2025-03-31"


# --------------------------------------------------------------------------------------------
# a tiny shop with hand-computed tags
# --------------------------------------------------------------------------------------------


@pytest.fixture()
def shop() -> dict[str, pd.DataFrame]:
    ts = pd.Timestamp
    customers = pd.DataFrame({
        "customer_id": ["A", "B", "C", "D"],
        "signup_date": [ts("2024-01-01"), ts("2025-02-01"), ts("2024-06-01"), ts("2025-05-01")],
        "gender": ["f", "m", None, "f"],
        "age": [24.0, 40.0, np.nan, 30.0],
        "region": ["beijing", "other", "other", "other"],
        "device": ["mobile", "desktop", "mobile", "mobile"],
        "acquisition_channel": ["social", "search", "search", "social"],
    })
    products = pd.DataFrame({
        "product_id": ["p1", "p2", "p3"],
        "category": ["books", "books", "home"],
        "brand": ["x", "y", "x"],
        "price": [10.0, 30.0, 50.0],
    })
    orders = pd.DataFrame({
        "order_id": ["o1", "o2", "o3", "o4", "o5"],
        "customer_id": ["A", "A", "B", "A", "B"],
        "order_ts": [ts("2024-06-18 10:00"), ts("2025-01-10 09:00"), ts("2025-03-01 12:00"),
                     ts("2025-04-05 08:00"),  # after the analysis date: must be ignored
                     ts("2025-03-31 23:59")],  # last minute of the analysis date: counted
        "discount_amount": [10.0, 0.0, 0.0, 99.0, 0.0],
        "coupon_used": [True, False, False, True, False],
    })
    lines = pd.DataFrame({
        "order_id": ["o1", "o1", "o2", "o3", "o4", "o5"],
        "product_id": ["p1", "p3", "p2", "p3", "p1", "p1"],
        "quantity": [2, 1, 1, 1, 5, 1],
        "unit_price": [10.0, 50.0, 30.0, 50.0, 10.0, 10.0],
    })
    returns = pd.DataFrame({
        "return_id": ["r1", "r2"],
        "customer_id": ["A", "A"],
        "return_ts": [ts("2024-07-01"), ts("2025-06-01")],  # the second is after the date
        "amount": [20.0, 30.0],
    })
    events = pd.DataFrame({
        "customer_id": ["A", "A", "A", "A", "A", "C", "C", "A"],
        "event_ts": [ts("2024-06-18 09:50"), ts("2024-06-18 09:55"), ts("2024-06-18 10:00"),
                     ts("2024-08-01 20:00"), ts("2024-08-01 20:05"), ts("2025-01-01 10:00"),
                     ts("2025-01-01 10:01"), ts("2025-04-02 10:00")],
        "event_type": ["view", "cart", "purchase", "view", "favourite", "view", "view", "view"],
        "session_id": ["s1", "s1", "s1", "s2", "s2", "s3", "s3", "s9"],
    })
    return {"customers": customers, "products": products, "orders": orders,
            "order_lines": lines, "returns": returns, "events": events}


def _tags(shop, **kw):
    return hp.build_tags(shop["orders"], DATE, customers=shop["customers"],
                         order_lines=shop["order_lines"], products=shop["products"],
                         returns=shop["returns"], events=shop["events"], **kw)


def test_tags_by_hand(shop):
    t = _tags(shop)
    # D signed up after the analysis date and never ordered: not known yet
    assert list(t.index) == ["A", "B", "C"]
    a, b, c = t.loc["A"], t.loc["B"], t.loc["C"]
    # A: o1 = 2*10 + 50 = 70, o2 = 30 (o4 is after the date)
    assert a["orders"] == 2 and a["spend"] == pytest.approx(100.0)
    assert a["aov"] == pytest.approx(50.0) and bool(a["repurchase"])
    assert a["coupon_share"] == pytest.approx(0.5)
    assert a["discount_share"] == pytest.approx(10 / 110)
    assert a["net_spend"] == pytest.approx(80.0) and a["return_rate"] == pytest.approx(0.2)
    # categories: books = 20 + 30 = 50, home = 50
    assert a["share_books"] == pytest.approx(0.5) and a["share_home"] == pytest.approx(0.5)
    # brands: x = 20 + 50 = 70, y = 30 -> HHI 0.49 + 0.09
    assert a["brand_concentration"] == pytest.approx(0.58)
    # promotion day: o1 on 06-18 (70 of 100)
    assert a["promo_share"] == pytest.approx(0.7)
    # B: one order o3 = 50 home + o5 = 10 books (23:59 on the analysis date counts)
    assert b["orders"] == 2 and b["spend"] == pytest.approx(60.0)
    assert b["favourite_category"] == "home"
    # sessions of A before the date: s1 (view + purchase), s2 (view, no purchase)
    assert a["visits"] == 2 and a["views"] == 2 and a["favourites"] == 1
    assert a["view_to_purchase"] == pytest.approx(0.5)
    # days active of A: 2024-06-18 (order + events), 2024-08-01 (events), 2025-01-10 (order)
    assert a["days_active"] == 3
    # C browsed but never bought
    assert c["orders"] == 0 and c["lifecycle_stage"] == "potential"
    assert c["visits"] == 1 and c["view_to_purchase"] == pytest.approx(0.0)
    assert math.isnan(c["aov"])
    # age band of A (24) and the basic tags
    assert a["age_band"] == "<25" and a["gender"] == "f" and a["device"] == "mobile"


def test_price_level_by_hand(shop):
    t = _tags(shop)
    # unit prices are all at their category medians except none -> A pays typical prices
    # books lines (before date): 10 (o1), 30 (o2), 10 (o5) -> median 10; home: 50, 50 -> 50
    # A: books o1 (20 at ratio 1), books o2 (30 at ratio 3), home o1 (50 at ratio 1)
    expected = math.exp((30 * math.log(3.0)) / 100)
    assert t.loc["A", "price_level"] == pytest.approx(expected, rel=1e-3)
    assert t.loc["B", "price_level"] == pytest.approx(1.0)


def test_lifecycle_stages(shop):
    t = _tags(shop, new_days=30, active_days=60, churn_days=120)
    # A: first order 2024-06-18 (old), last 2025-01-10 -> 81 days before 2025-04-01 -> at_risk
    assert t.loc["A", "lifecycle_stage"] == "at_risk"
    # B: first order 2025-03-01 -> new
    assert t.loc["B", "lifecycle_stage"] == "new"
    t2 = _tags(shop, new_days=10, active_days=60, churn_days=70)
    assert t2.loc["A", "lifecycle_stage"] == "churned"
    with pytest.raises(ValueError):
        _tags(shop, new_days=100, active_days=50)


def test_no_look_ahead(shop):
    """Adding rows after the analysis date changes nothing."""
    before = _tags(shop)
    later = dict(shop)
    extra = shop["orders"].iloc[[0]].assign(order_id="o9", order_ts=pd.Timestamp("2025-04-01"))
    later["orders"] = pd.concat([shop["orders"], extra])
    later["order_lines"] = pd.concat([shop["order_lines"], pd.DataFrame(
        {"order_id": ["o9"], "product_id": ["p3"], "quantity": [3], "unit_price": [99.0]})])
    pd.testing.assert_frame_equal(before, _tags(later))


def test_orders_only_dataset(shop):
    """A CDNOW-like dataset: orders with amounts only."""
    o = shop["orders"][["order_id", "customer_id", "order_ts"]].assign(
        amount=[70.0, 30.0, 50.0, 50.0, 10.0])
    t = hp.build_tags(o, DATE)
    assert list(t.index) == ["A", "B"]
    assert t.loc["A", "spend"] == pytest.approx(100.0)
    assert "share_books" not in t and "visits" not in t and "age" not in t
    miss = hp.missing_dimensions(t.columns)
    assert {"age", "visits", "share_<category>", "return_rate"} <= set(miss["tag"])
    assert "orders" not in set(miss["tag"])
    d = hp.tag_dictionary(t.columns)
    assert "orders" in set(d["tag"]) and "visits" not in set(d["tag"])
    X, spec = hp.segment_features(t)
    assert set(X.columns) <= {"log_orders_per_year", "log_orders", "log_aov", "promo_share"}
    # price sensitivity needs two components: promo share alone is not enough
    t2 = hp.build_tags(o, DATE, promo_calendar=None)
    assert "promo_share" not in t2 and "price_sensitivity" not in t2
    with pytest.raises(ValueError):
        hp.build_tags(o, DATE, promo_calendar="us")


def test_arrow_string_ids_give_the_same_table(shop):
    """Tables as the loader returns them (Arrow strings) give the same tags as object columns."""
    arrow = {name: df.astype({c: "string[pyarrow]" for c in df.columns
                              if df[c].dtype == object and c not in ("gender",)})
             for name, df in shop.items()}
    pd.testing.assert_frame_equal(_tags(arrow), _tags(shop), check_dtype=False)


def test_missing_sessions_unknown_products_and_repeated_customers(shop):
    """Without a session id a visit is a customer-day; a product missing from the products table
    counts as category 'unknown'; a repeated customer row: the first one is used; events of
    customers unknown to the customers table are not counted."""
    s = dict(shop)
    s["events"] = shop["events"].assign(session_id=[None, None, None, "s2", "s2", None, "s3",
                                                    None])
    t = _tags(s)
    # A before the date: 2024-06-18 (no session: one visit, with a purchase), s2 (a view)
    assert t.loc["A", "visits"] == 2 and t.loc["A", "view_to_purchase"] == pytest.approx(0.5)
    # C: one event without session and one in s3 on the same day -> two visits
    assert t.loc["C", "visits"] == 2
    no_col = _tags({**shop, "events": shop["events"].drop(columns="session_id")})
    assert no_col.loc["A", "visits"] == 2 and no_col.loc["C", "visits"] == 1

    s = dict(shop)
    s["order_lines"] = shop["order_lines"].assign(
        product_id=["p1", "zz", "p2", "p3", "p1", "p1"])  # zz: not in products
    s["customers"] = pd.concat([shop["customers"], shop["customers"].iloc[[0]].assign(
        gender="m", age=60.0)], ignore_index=True)
    s["events"] = pd.concat([shop["events"], shop["events"].iloc[[0]].assign(
        customer_id="STRANGER")], ignore_index=True)
    t = _tags(s)
    assert t.loc["A", "share_unknown"] == pytest.approx(0.5)  # 50 of A's 100
    assert t.loc["A", "share_books"] == pytest.approx(0.5)
    assert t.loc["A", "gender"] == "f" and t.loc["A", "age"] == 24.0  # first row kept
    assert "STRANGER" not in t.index and t.loc["A", "views"] == 2


def test_orders_without_amount_need_lines(shop):
    o = shop["orders"].drop(columns=[c for c in ("amount",) if c in shop["orders"]])
    with pytest.raises(ValueError, match="amount"):
        hp.build_tags(o, DATE)


# --------------------------------------------------------------------------------------------
# features
# --------------------------------------------------------------------------------------------


def test_segment_features_transforms():
    tags = pd.DataFrame({
        "orders": [1, 3, 9, 1],
        "aov": [10.0, 100.0, 1000.0, 50.0],
        "coupon_share": [0.0, 0.5, 1.0, np.nan],
        "share_books": [1.0, 0.0, 0.5, 0.0],
        "share_home": [0.0, 1.0, 0.5, 1.0],
        "return_rate": [0.1, 0.1, 0.1, 0.1],  # constant: dropped
    }, index=pd.Index(list("abcd"), name="customer_id"))
    X, spec = hp.segment_features(tags, shrink_orders=2.0)
    assert "return_rate" not in X
    assert np.allclose(X.mean(), 0) and np.allclose(X.std(ddof=0), 1)
    # log1p then standardize: compare with a hand computation
    la = np.log1p(tags["aov"])
    assert np.allclose(X["log_aov"], (la - la.mean()) / la.std(ddof=0))
    # missing coupon share -> median 0.5 before standardizing
    c = tags["coupon_share"].fillna(0.5)
    assert np.allclose(X["coupon_share"], (c - c.mean()) / c.std(ddof=0))
    # shrinkage: (n * share + 2 * mean) / (n + 2), mean of books shares = 0.375
    raw = (tags["orders"] * tags["share_books"] + 2 * 0.375) / (tags["orders"] + 2)
    assert np.allclose(X["share_books"], (raw - raw.mean()) / raw.std(ddof=0))
    assert set(spec["feature"]) == set(X.columns)


# --------------------------------------------------------------------------------------------
# clustering on simulated truth
# --------------------------------------------------------------------------------------------


def _blobs(n_per: int, centers: np.ndarray, sd: float, seed: int
           ) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = np.vstack([c + sd * rng.standard_normal((n_per, centers.shape[1])) for c in centers])
    y = np.repeat(np.arange(len(centers)), n_per)
    return pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])]), y


def test_order_by_size():
    assert hp._order_by_size(np.array([7, 7, 3, 5, 5, 5])).tolist() == [2, 2, 3, 1, 1, 1]
    # ties broken by the original label
    assert hp._order_by_size(np.array([1, 0, 1, 0])).tolist() == [2, 1, 2, 1]


def test_kmeans_and_gmm_recover_separated_groups():
    centers = np.array([[0, 0, 0], [6, 0, 0], [0, 6, 0]], float)
    X, y = _blobs(200, centers, 1.0, seed=1)
    lab, _ = hp.fit_kmeans(X, 3, seed=0)
    gl, _ = hp.fit_gmm(X, 3, seed=0)
    from sklearn.metrics import adjusted_rand_score

    assert adjusted_rand_score(y, lab) > 0.95
    assert adjusted_rand_score(y, gl) > 0.95
    assert sorted(np.unique(lab)) == [1, 2, 3]
    with pytest.raises(ValueError):
        hp.fit_kmeans(X, 1, seed=0)


def test_kmeans_fitted_on_a_sample_assigns_every_customer():
    centers = np.array([[0, 0, 0], [6, 0, 0], [0, 6, 0]], float)
    X, y = _blobs(300, centers, 1.0, seed=5)
    full, _ = hp.fit_kmeans(X, 3, seed=0)
    lab, km = hp.fit_kmeans(X, 3, seed=0, fit_sample=60)
    assert len(lab) == len(X) and sorted(np.unique(lab)) == [1, 2, 3]
    assert km.cluster_centers_.shape == (3, 3)
    assert hp.adjusted_rand(full, lab) > 0.95
    # no sample below the threshold: the same labels as the plain fit
    assert (hp.fit_kmeans(X, 3, seed=0, fit_sample=len(X))[0] == full).all()


def test_adjusted_rand_equals_sklearn():
    from sklearn.metrics import adjusted_rand_score

    rng = np.random.default_rng(6)
    for n in (2, 7, 500):
        for _ in range(10):
            a = rng.integers(0, rng.integers(1, 6), n)
            b = rng.integers(0, rng.integers(1, 9), n)
            assert hp.adjusted_rand(a, b) == adjusted_rand_score(a, b)
            names = np.array(list("pqrstu"), dtype=object)[a]
            assert hp.adjusted_rand(names, b) == adjusted_rand_score(names, b)
    assert hp.adjusted_rand([0, 0, 1, 1], [5, 5, 7, 7]) == 1.0
    assert hp.adjusted_rand([0, 0, 1, 1], [0, 1, 0, 1]) == pytest.approx(-0.5)
    with pytest.raises(ValueError, match="length"):
        hp.adjusted_rand([0, 1], [0, 1, 1])


def test_scan_and_pick_k_find_three_groups():
    centers = np.array([[0, 0], [8, 0], [4, 7]], float)
    X, _ = _blobs(150, centers, 1.0, seed=2)
    scan = hp.scan_k(X, range(2, 7), seed=0, sample_size=400, n_boot=5)
    assert list(scan["k"]) == [2, 3, 4, 5, 6]
    assert scan.loc[scan["k"] == 3, "stability"].item() > 0.9
    assert hp.pick_k(scan) == 3


def test_pick_k_rule():
    scan = pd.DataFrame({"k": [2, 3, 4, 5], "silhouette": [0.30, 0.20, 0.40, 0.50],
                         "davies_bouldin": [1.0, 1.0, 1.0, 1.0],
                         "stability": [0.90, 0.80, 0.76, 0.50]})
    assert hp.pick_k(scan) == 4  # best silhouette among stability >= 0.75 (5 is unstable)
    assert hp.pick_k(scan, min_stability=0.85) == 2
    unstable = scan.assign(stability=[0.3, 0.6, 0.5, 0.4])
    assert hp.pick_k(unstable) == 3  # none stable: the most stable


def test_stability_separates_structure_from_noise():
    centers = np.array([[0, 0], [8, 0], [4, 7]], float)
    X, _ = _blobs(200, centers, 1.0, seed=3)
    lab, _ = hp.fit_kmeans(X, 3, seed=0)
    s_struct = hp.bootstrap_stability(X, lab, 3, seed=0, n_boot=8)
    noise = pd.DataFrame(np.random.default_rng(4).uniform(size=(600, 6)))
    nl, _ = hp.fit_kmeans(noise, 5, seed=0)
    s_noise = hp.bootstrap_stability(noise, nl, 5, seed=0, n_boot=8)
    assert np.median(s_struct) > 0.95
    assert np.median(s_noise) < np.median(s_struct) - 0.1


def test_persona_recovery_and_baselines():
    idx = pd.Index([f"c{i}" for i in range(300)])
    persona = pd.Series(np.repeat(["a", "b", "c"], 100), index=idx)
    labels = pd.Series(np.repeat([3, 1, 2], 100), index=idx)  # same partition, other names
    ari, conf = hp.persona_recovery(labels, persona)
    assert ari == pytest.approx(1.0)
    assert conf.loc[3, "a"] == 100.0 and conf.loc[1, "a"] == 0.0
    lo, hi = hp.ari_interval(labels, persona, seed=0, n_boot=20)
    assert lo == pytest.approx(1.0) and hi == pytest.approx(1.0)
    # half of the customers mislabelled at random: the interval brackets the point estimate
    noisy = labels.copy()
    flip = np.random.default_rng(5).random(300) < 0.5
    noisy[flip] = np.random.default_rng(6).integers(1, 4, flip.sum())
    a_noisy, _ = hp.persona_recovery(noisy, persona)
    lo, hi = hp.ari_interval(noisy, persona, seed=0, n_boot=200)
    assert lo < a_noisy < hi and hi - lo < 0.3
    rnd = hp.random_ari(persona, 3, seed=0, n=30)
    assert abs(rnd.mean()) < 0.02
    X = pd.DataFrame({"good": np.repeat([0.0, 1.0, 2.0], 100)
                      + np.random.default_rng(0).normal(0, 0.01, 300),
                      "noise": np.random.default_rng(1).normal(size=300)}, index=idx)
    single = hp.single_feature_ari(X, persona, 3)
    assert single.loc[0, "feature"] == "good" and single.loc[0, "ari"] > 0.95
    assert hp.supervised_ceiling(X, persona, seed=0) > 0.95
    assert hp.supervised_ceiling(X, persona, seed=0, fit_sample=90) > 0.95  # a sample of 90
    with pytest.raises(ValueError, match="fit_sample"):
        hp.supervised_ceiling(X, persona, seed=0, fit_sample=1)


# --------------------------------------------------------------------------------------------
# cards, export, quality helpers
# --------------------------------------------------------------------------------------------


def test_persona_cards_and_export():
    rng = np.random.default_rng(0)
    n = 300
    idx = pd.Index([f"c{i:03d}" for i in range(n)], name="customer_id")
    seg = pd.Series(np.where(np.arange(n) < 100, 1, 2), index=idx)
    big = seg == 1
    tags = pd.DataFrame({
        "age": rng.normal(35, 5, n),
        "gender": np.where(rng.random(n) < 0.5, "f", "m"),
        "region": "other",
        "acquisition_channel": np.where(big, "search", "social"),
        "orders": np.where(big, 12, 1),
        "orders_per_year": np.where(big, 10.0, 1.0) + rng.random(n),
        "spend": np.where(big, 5000.0, 100.0) + rng.random(n),
        "price_sensitivity": np.where(big, 0.2, 0.7) + 0.01 * rng.random(n),
        "lifecycle_stage": pd.Categorical(np.where(big, "active", "churned"),
                                          categories=hp.STAGES),
    }, index=idx)
    cards = hp.persona_cards(tags, seg)
    assert list(cards.index) == [1, 2]
    assert cards["customers"].tolist() == [100, 200]
    assert cards["revenue_share"].sum() == pytest.approx(1.0, abs=0.002)
    # revenue share by hand: segment 1 holds 100 customers at ~5000 of ~5000*100 + 100*200
    spend = tags["spend"]
    assert cards.loc[1, "revenue_share"] == pytest.approx(spend[big].sum() / spend.sum(), abs=1e-3)
    assert cards.loc[2, "median_spend"] == pytest.approx(spend[~big].median(), abs=0.1)
    assert "high-value" in cards.loc[1, "name"].lower()
    assert "points for old users" in cards.loc[1, "targeting"]
    assert "search" in cards.loc[1, "targeting"]
    assert "win-back" in cards.loc[2, "targeting"]
    assert "targeted promotion" in cards.loc[2, "targeting"]
    assert cards["name"].is_unique
    text = hp.card_text(cards.loc[1], 1)
    assert text.startswith("Segment 1 — ") and "revenue share" in text

    # one extra customer who never bought: exported with segment 0
    tags2 = pd.concat([tags, tags.iloc[[0]].rename(index={"c000": "zzz"})])
    ex = hp.export_table(tags2, seg, cards["name"].to_dict())
    assert not {"age", "gender", "region"} & set(ex.columns)
    assert ex.set_index("customer_id").loc["zzz", "segment"] == 0
    assert ex.set_index("customer_id").loc["zzz", "segment_name"] == "no purchase yet"
    assert ex.set_index("customer_id").loc["c000", "segment_name"] == cards.loc[1, "name"]


def test_quality_helpers():
    sa = {"events": pd.DataFrame({"reason": ["exact duplicate"] * 3 + ["no customer id"]}),
          "orders": pd.DataFrame({"reason": []}), "lines": pd.DataFrame({"x": [1]})}
    r = hp.set_aside_reasons(sa)
    assert r.to_dict("records") == [
        {"table": "events", "reason": "exact duplicate", "rows": 3},
        {"table": "events", "reason": "no customer id", "rows": 1},
        {"table": "lines", "reason": "unspecified", "rows": 1}]
    mv = hp.missing_values({"t": pd.DataFrame({"a": [1, None, None, 4], "b": [1, 2, 3, 4]}),
                            "none": None})
    assert mv.to_dict("records") == [{"table": "t", "column": "a", "missing": 2,
                                      "missing_share": 0.5}]
    # log amounts evenly spaced on [-1, 1] (step 0.02) plus two extremes: median 0, MAD = the
    # 52nd smallest |log amount| = 0.52 -> thresholds exp(+-3.5 * 1.4826 * 0.52) = 14.9, 0.067;
    # only the two planted extremes are outside
    amounts = pd.Series(np.r_[np.exp(np.linspace(-1, 1, 101)), 1000.0, 0.001])
    out = hp.amount_outliers(amounts).set_index("side")
    assert out.loc["high", "orders"] == 1 and out.loc["low", "orders"] == 1
    assert out.loc["high", "threshold"] == pytest.approx(math.exp(3.5 * 1.4826 * 0.52), rel=1e-3)
    # more than half identical amounts (MAD 0): still finds the extremes
    same = pd.Series([100.0] * 60 + [90.0, 110.0] * 10 + [1e6, 0.01])
    out2 = hp.amount_outliers(same).set_index("side")
    assert out2.loc["high", "orders"] == 1 and out2.loc["low", "orders"] == 1


# --------------------------------------------------------------------------------------------
# truth check on the committed synthetic dataset
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def synthetic():
    from helpers.data import load_dataset

    ds = load_dataset("synthetic")
    tags = hp.build_tags_from(ds, "2025-12-31")
    X, _ = hp.segment_features(tags[tags["orders"] > 0])
    return ds, tags, X


def test_persona_recovery_on_synthetic(synthetic):
    """The chapter's default pipeline recovers the six planted personas (the issue's bar).

    Bar, justified: a random split scores ARI ~0 (we take the max of 50 random splits), and the
    best split of any single tag into k bands scores about 0.08-0.12 (age is the most telling
    tag). The personas overlap strongly at the level of single customers: a supervised model
    that *sees* the personas only reaches ARI ~0.5 on these features. We require ARI >= 0.15
    (clearly above chance and above every single tag, i.e. the multivariate portrait adds real
    information) and at least 0.05 above the best single-tag split computed here; and sanity:
    not above the supervised ceiling.
    """
    ds, tags, X = synthetic
    scan = hp.scan_k(X, range(2, 9), seed=42, sample_size=3000, n_boot=8)  # as the notebook
    k = hp.pick_k(scan)
    lab, _ = hp.fit_kmeans(X, k, seed=42)
    labels = pd.Series(lab, index=X.index)
    persona = ds.truth.persona()
    ari, conf = hp.persona_recovery(labels, persona)
    single = hp.single_feature_ari(X, persona, k)
    rnd = hp.random_ari(persona.reindex(X.index), k, seed=42, n=50)
    ceiling = hp.supervised_ceiling(X, persona, seed=42)
    assert ari >= 0.15, f"persona ARI {ari:.3f} (k={k})"
    assert ari >= single["ari"].iloc[0] + 0.05
    assert ari > rnd.max() + 0.1
    assert ari < ceiling
    # the segments are reproducible (bootstrap ARI), the point of the k rule
    stab = hp.bootstrap_stability(X, lab, k, seed=42, n_boot=10)
    assert np.median(stab) >= 0.75
    # every segment is large enough to act on (at least 2% of buyers)
    assert labels.value_counts(normalize=True).min() >= 0.02


def test_known_persona_signatures_on_synthetic(synthetic):
    """Planted signatures show up in the tags: premium loyalists spend most, bargain hunters use
    the most coupons, young trendsetters are youngest (synth.PERSONAS parameters)."""
    ds, tags, _ = synthetic
    persona = ds.truth.persona().reindex(tags.index)
    b = tags["orders"] > 0
    g = tags[b].groupby(persona[b])
    assert g["spend"].mean().idxmax() == "premium_loyalist"
    assert g["coupon_share"].mean().idxmax() == "bargain_hunter"
    assert g["age"].median().idxmin() == "young_trendsetter"
    assert g["share_mother_baby"].mean().idxmax() == "family_shopper"
    assert g["share_electronics"].mean().idxmax() == "tech_enthusiast"


class _ShopDataset:
    """The part of helpers.data.Dataset that build_tags_from uses, recording the events reads."""

    timezone = "Asia/Shanghai"

    def __init__(self, shop):
        self._shop, self.reads = shop, []
        for name, df in shop.items():
            setattr(self, name, df)
        self.events = None  # a chapter must not touch the whole events table

    def has(self, table: str) -> bool:
        return table in self._shop and len(self._shop[table]) > 0

    def columns(self, table: str) -> list[str]:
        return list(self._shop[table].columns)

    def read(self, table: str, columns=None, dictionary=()) -> pd.DataFrame:
        self.reads.append((table, list(columns), list(dictionary)))
        return encode_columns(self._shop[table][list(columns)].copy(), dictionary)


def test_build_tags_from_reads_only_the_event_columns_it_uses(shop):
    s = {**shop, "events": shop["events"].assign(product_id="p1", device="pc", channel="app")}
    fake = _ShopDataset(s)
    t = hp.build_tags_from(fake, DATE)
    # the ids as dictionary codes: the same tags as from the plain strings
    assert fake.reads == [("events", ["customer_id", "event_ts", "event_type", "session_id"],
                           ["customer_id", "session_id", "event_type"])]
    pd.testing.assert_frame_equal(t, _tags(s, promo_calendar="cn"))
    assert t.loc["A", "visits"] == 2  # s1 and s2 (s9 is after the analysis date)
    # no customers table: browsers without orders (C) are customers too, read the same way
    no_cust = {k: v for k, v in s.items() if k != "customers"}
    t2 = hp.build_tags_from(_ShopDataset(no_cust), DATE)
    assert "C" in t2.index and t2.loc["C", "orders"] == 0 and t2.loc["C", "views"] == 2


def test_a_session_id_shared_by_two_customers_is_a_visit_of_each(shop):
    """Visits are (customer, session) pairs: C's events carry A's session id s1."""
    s = {**shop, "events": shop["events"].assign(session_id=["s1", "s1", "s1", "s2", "s2", "s1",
                                                             "s1", "s9"])}
    t = _tags(s)
    assert t.loc["A", "visits"] == 2 and t.loc["C", "visits"] == 1
    assert t.loc["A", "view_to_purchase"] == pytest.approx(0.5)  # s1 bought, s2 did not
    assert t.loc["C", "view_to_purchase"] == 0.0  # C's s1 has views only


def test_missing_values_of_uses_the_loaders_counts_without_reading_tables():
    tables = {"customers": pd.DataFrame({"customer_id": ["a", "b", "c"],
                                         "age": [20.0, None, None]}),
              "events": pd.DataFrame({"customer_id": ["a"] * 3, "device": ["pc", None, "pc"]})}

    class Untouchable(dict):
        def __getitem__(self, key):
            raise AssertionError("a table was read")

        def items(self):
            raise AssertionError("a table was read")

    class WithCounts:
        # what the loader counted: rows and missing values per table and column
        missing = pd.DataFrame({"table": ["customers", "customers", "events", "events"],
                                "column": ["customer_id", "age", "customer_id", "device"],
                                "rows": [3, 3, 3, 3], "missing": [0, 2, 0, 1]})
        tables = Untouchable()

    got = hp.missing_values_of(WithCounts())
    pd.testing.assert_frame_equal(got, hp.missing_values(tables))
    # 2 of 3 is 0.6667, 1 of 3 is 0.3333
    assert got["missing_share"].tolist() == [0.6667, 0.3333]

    class WithoutCounts:
        pass

    ds = WithoutCounts()
    ds.tables = tables
    pd.testing.assert_frame_equal(hp.missing_values_of(ds), hp.missing_values(tables))
