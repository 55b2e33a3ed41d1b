"""Tests of helpers.recommend: metrics against hand-computed cases, models on tiny matrices whose
answers can be worked out by hand, association rules, and truth checks on the synthetic data."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import helpers.recommend as rc


def _purch(rows: list[tuple[str, str, str, str]]) -> pd.DataFrame:
    """(customer, order, date, product) tuples -> purchases frame."""
    df = pd.DataFrame(rows, columns=["customer_id", "order_id", "order_ts", "product_id"])
    df["order_ts"] = pd.to_datetime(df["order_ts"], format="ISO8601")
    df["quantity"] = 1
    return df


def _inter(dense: list[list[int]]) -> rc.Interactions:
    m = sp.csr_matrix(np.array(dense, dtype=np.float32))
    users = pd.Index([f"u{i}" for i in range(m.shape[0])])
    items = pd.Index([f"i{j}" for j in range(m.shape[1])])
    return rc.Interactions(m, users, items)


# --------------------------------------------------------------------------------------------
# metrics, by hand


def test_ranking_metrics_hand_computed() -> None:
    recs = np.array([[1, 2, 3], [4, 5, 6], [5, 1, 7]])
    relevant = [np.array([2, 9]), np.array([7]), np.array([5, 7])]
    m = rc.ranking_metrics(recs, relevant, 3)
    # user 0: one hit at rank 2 of 2 relevant
    assert m.loc[0, "precision"] == pytest.approx(1 / 3)
    assert m.loc[0, "recall"] == pytest.approx(1 / 2)
    assert m.loc[0, "ndcg"] == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))
    assert m.loc[0, "map"] == pytest.approx((1 / 2) / 2)
    assert m.loc[0, "hit_rate"] == 1.0
    # user 1: no hit
    assert m.loc[1].tolist() == [0.0, 0.0, 0.0, 0.0, 0.0]
    # user 2: hits at ranks 1 and 3, both relevant items found
    assert m.loc[2, "precision"] == pytest.approx(2 / 3)
    assert m.loc[2, "recall"] == pytest.approx(1.0)
    assert m.loc[2, "ndcg"] == pytest.approx(1.5 / (1 + 1 / math.log2(3)))
    assert m.loc[2, "map"] == pytest.approx((1 + 2 / 3) / 2)


def test_ranking_metrics_cut_at_k_padding_and_empty() -> None:
    recs = np.array([[9, 5, 1], [-1, -1, -1], [3, 4, 5]])
    relevant = [np.array([1, 5]), np.array([1]), np.array([], dtype=np.int64)]
    m = rc.ranking_metrics(recs, relevant, k=2)
    # only the first two slots count: one hit at rank 2; ideal with min(|R|, k) = 2 hits
    assert m.loc[0, "precision"] == pytest.approx(0.5)
    assert m.loc[0, "ndcg"] == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))
    assert m.loc[0, "map"] == pytest.approx(0.5 / 2)
    assert m.loc[1, "hit_rate"] == 0.0  # -1 padding is never a hit
    assert m.loc[2].isna().all()  # no relevant items: not evaluable
    with pytest.raises(ValueError):
        rc.ranking_metrics(recs, relevant, k=4)


def test_ndcg_is_one_for_a_perfect_list_and_map_ideal_denominator() -> None:
    recs = np.array([[4, 2, 8, 0]])
    m = rc.ranking_metrics(recs, [np.array([2, 4])], 4)
    assert m.loc[0, "ndcg"] == pytest.approx(1.0)
    assert m.loc[0, "map"] == pytest.approx(1.0)
    # more relevant items than k: the ideal has k hits, recall is still hits / |R|
    m = rc.ranking_metrics(np.array([[1, 2]]), [np.array([1, 2, 3, 4])], 2)
    assert m.loc[0, "ndcg"] == pytest.approx(1.0)
    assert m.loc[0, "recall"] == pytest.approx(0.5)


def test_coverage_and_novelty() -> None:
    recs = np.array([[0, 1], [1, -1]])
    assert rc.coverage(recs, 4) == pytest.approx(0.5)
    pop = np.array([50, 25, 0, 0])  # buyers out of 100 customers
    # items shown: 0 (p=.5, 1 bit), 1 (p=.25, 2 bits) twice
    assert rc.novelty(recs, pop, 100) == pytest.approx((1 + 2 + 2) / 3)


def test_mean_ci_and_paired_diff() -> None:
    x = np.array([1.0, 2.0, 3.0, 4.0, np.nan])
    m, lo, hi = rc.mean_ci(x)
    half = 1.959964 * np.std([1, 2, 3, 4], ddof=1) / 2
    assert m == pytest.approx(2.5) and lo == pytest.approx(2.5 - half, rel=1e-5)
    assert hi == pytest.approx(2.5 + half, rel=1e-5)
    d, _, _ = rc.paired_diff_ci(np.array([1.0, 2.0]), np.array([0.5, 0.5]))
    assert d == pytest.approx(1.0)


def test_ab_sample_size_matches_textbook_and_statsmodels() -> None:
    # 10% -> 15% (alpha 5%, power 80%, no continuity correction): 686 per arm (Fleiss et al.)
    assert rc.ab_sample_size(0.10, 0.5) == 686
    from statsmodels.stats.power import NormalIndPower
    from statsmodels.stats.proportion import proportion_effectsize

    n_sm = NormalIndPower().solve_power(proportion_effectsize(0.036, 0.03), alpha=0.05, power=0.8)
    assert rc.ab_sample_size(0.03, 0.2) == pytest.approx(n_sm, rel=0.03)
    with pytest.raises(ValueError):
        rc.ab_sample_size(0.5, 0.0)


# --------------------------------------------------------------------------------------------
# protocol


def test_time_split_boundaries_and_relevance() -> None:
    p = _purch([
        ("a", "o1", "2025-01-01", "x"), ("a", "o2", "2025-01-10 00:00", "y"),
        ("a", "o2", "2025-01-10 00:00", "x"), ("b", "o3", "2025-01-11 23:59", "z"),
        ("c", "o4", "2025-01-12", "x"),  # after the analysis date: ignored
        ("b", "o5", "2025-01-02", "y"),
    ])
    s = rc.time_split(p, "2025-01-11", test_days=2)
    assert s.cutoff == pd.Timestamp("2025-01-10") and s.end == pd.Timestamp("2025-01-12")
    assert sorted(s.train["order_id"]) == ["o1", "o5"]
    assert sorted(s.test["order_id"].unique()) == ["o2", "o3"]
    inter = rc.interaction_matrix(s.train)
    assert list(inter.items) == ["x", "y"]
    rel = rc.relevance_lists(s.test, inter, ["a", "b"], exclude_seen=True)
    # a re-bought x (dropped) and bought y (new to a); b bought z, unknown in training -> code 2
    assert rel[0].tolist() == [1] and rel[1].tolist() == [2]
    rel_all = rc.relevance_lists(s.test, inter, ["a"], exclude_seen=False)
    assert rel_all[0].tolist() == [0, 1]
    with pytest.raises(ValueError):
        rc.time_split(p, "2025-01-11", test_days=0)


def test_evaluation_set_warm_cold() -> None:
    p = _purch([
        ("a", "o1", "2025-01-01", "x"), ("a", "o2", "2025-01-10", "y"),
        ("b", "o3", "2025-01-02", "y"), ("b", "o4", "2025-01-10", "y"),  # only a re-buy
        ("c", "o5", "2025-01-11", "x"),  # new customer: cold start
    ])
    ev = rc.evaluation_set(p, "2025-01-11", 2)
    assert list(ev.warm_ids) == ["a"] and list(ev.cold_ids) == ["c"]
    assert ev.n_warm_only_repeats == 1
    assert ev.cold_relevant[0].tolist() == [0]


def _random_shop(seed: int, dtype: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Orders and order lines with ids of the given string dtype: ties in time, ids whose string
    order differs from their number order (p10 < p9), repeated products in an order and lines
    whose order is unknown."""
    rng = np.random.default_rng(seed)
    n_o = 60
    orders = pd.DataFrame({
        "order_id": pd.array([f"o{i}" for i in rng.permutation(n_o)], dtype=dtype),
        "customer_id": pd.array([f"c{i}" for i in rng.integers(0, 15, n_o)], dtype=dtype),
        "order_ts": pd.Timestamp("2025-01-01") + pd.to_timedelta(rng.integers(0, 20, n_o), "D"),
    })
    n_l = 200
    lines = pd.DataFrame({
        "order_id": pd.array([f"o{i}" for i in rng.integers(0, n_o + 5, n_l)], dtype=dtype),
        "product_id": pd.array([f"p{i}" for i in rng.integers(0, 12, n_l)], dtype=dtype),
        "quantity": rng.integers(1, 4, n_l).astype(float),
    })
    return orders, lines


@pytest.mark.parametrize("dtype", ["string[pyarrow]", "object"])
def test_purchases_equal_the_pandas_join_and_stable_sort(dtype) -> None:
    orders, lines = _random_shop(1, dtype)
    got = rc.purchases(orders, lines)
    want = (lines.merge(orders, on="order_id", how="inner")
            [["customer_id", "order_id", "order_ts", "product_id", "quantity"]]
            .sort_values(["order_ts", "order_id", "product_id"], kind="stable")
            .reset_index(drop=True))
    assert len(got) < len(lines)  # lines of unknown orders are dropped
    pd.testing.assert_frame_equal(got, want)


@pytest.mark.parametrize("dtype", ["string[pyarrow]", "object"])
def test_purchase_counts_equal_pandas_counts(dtype) -> None:
    orders, lines = _random_shop(4, dtype)
    p = rc.purchases(orders, lines)
    c = rc.purchase_counts(p)
    assert (c.lines, c.orders, c.customers) == (len(p), p["order_id"].nunique(),
                                                p["customer_id"].nunique())
    want = p.groupby("product_id")["customer_id"].nunique()
    got = c.buyers_per_product
    assert got.is_monotonic_decreasing
    assert got.sort_index().to_dict() == want.sort_index().to_dict()
    assert sorted(c.lines_per_order.tolist()) == sorted(p.groupby("order_id").size().tolist())
    assert c.lines_per_order.sum() == len(p)


def test_interaction_matrix_and_relevance_do_not_depend_on_the_id_dtype() -> None:
    orders, lines = _random_shop(2, "string[pyarrow]")
    p_arrow = rc.purchases(orders, lines)
    p_obj = p_arrow.astype({c: object for c in ("customer_id", "order_id", "product_id")})
    res = []
    for p in (p_arrow, p_obj):
        s = rc.time_split(p, "2025-01-20", test_days=6)
        inter = rc.interaction_matrix(s.train)
        want = ["c3", "zz"] + list(inter.users[:5])  # one customer without test purchases
        rel = rc.relevance_lists(s.test, inter, want, exclude_seen=True)
        res.append((inter, rel, s))
    (a, rel_a, s), (b, rel_b, _) = res
    assert a.users.dtype == object and list(a.users) == sorted(set(s.train["customer_id"]))
    assert list(a.users) == list(b.users) and list(a.items) == list(b.items)
    assert (a.matrix != b.matrix).nnz == 0
    assert [r.tolist() for r in rel_a] == [r.tolist() for r in rel_b]
    # reference: products bought in the test window and not before, by plain Python sets
    items = list(a.items)
    new = sorted(set(s.test["product_id"]) - set(items))
    for cid, r in zip(["c3", "zz"] + list(a.users[:5]), rel_a):
        seen = set(s.train.loc[s.train["customer_id"] == cid, "product_id"])
        bought = set(s.test.loc[s.test["customer_id"] == cid, "product_id"]) - seen
        assert r.tolist() == sorted(items.index(x) if x in items else len(items) + new.index(x)
                                    for x in bought)


def test_stored_lookup_and_hit_matrix_against_dense_references() -> None:
    rng = np.random.default_rng(3)
    dense = (rng.random((9, 7)) < 0.3).astype(np.float32)
    rows, cols = rng.integers(0, 9, 50), rng.integers(0, 7, 50)
    got = rc._stored(sp.csr_matrix(dense), rows, cols)
    assert got.tolist() == (dense[rows, cols] > 0).tolist()
    recs = rng.integers(-1, 12, (20, 5))
    relevant = [np.unique(rng.integers(0, 15, rng.integers(0, 4))) for _ in range(20)]
    want = [[int(j) in set(r.tolist()) and j >= 0 for j in row] for row, r in zip(recs, relevant)]
    assert rc.hit_matrix(recs, relevant).tolist() == want
    assert not rc.hit_matrix(recs, [np.array([], dtype=np.int64)] * 20).any()


# --------------------------------------------------------------------------------------------
# models on hand-checkable matrices


def test_top_n_per_row_ties_lower_column_first() -> None:
    m = sp.csr_matrix(np.array([[0.5, 0.9, 0.5, 0.5], [0.0, 0.0, 1.0, 0.0]]))
    t = rc.top_n_per_row(m, 2).toarray()
    assert t.tolist() == [[0.5, 0.9, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]]
    assert rc.top_k(np.array([[1.0, 3.0, 3.0, -np.inf]]), 4).tolist() == [[1, 2, 0, -1]]


def test_item_knn_cosine_and_scores() -> None:
    inter = _inter([[1, 1, 0], [1, 1, 1], [0, 0, 1], [1, 0, 0]])
    m = rc.ItemKNN(neighbours=5, max_cells=6).fit(inter)  # blocks of 2 items: exercises the loop
    sim = m.sim.toarray()
    # |U0|=3, |U1|=2, |U2|=2; |U0&U1|=2, |U0&U2|=1, |U1&U2|=1
    assert sim[0, 1] == pytest.approx(2 / math.sqrt(6))
    assert sim[0, 2] == pytest.approx(1 / math.sqrt(6))
    assert sim[1, 2] == pytest.approx(1 / 2)
    assert np.allclose(np.diag(sim), 0)
    shrunk = rc.ItemKNN(neighbours=5, shrinkage=2.0).fit(inter).sim.toarray()
    assert shrunk[0, 1] == pytest.approx(2 / (math.sqrt(6) + 2))
    # customer 3 bought item 0: score(j) = sim(0, j); item 1 before item 2; item 0 excluded
    recs = rc.recommend(m, np.array([3]), 2)
    assert recs.tolist() == [[1, 2]]


def test_user_knn_uses_neighbours_not_self() -> None:
    inter = _inter([[1, 1, 0, 0], [1, 1, 1, 0], [0, 0, 0, 1]])
    m = rc.UserKNN(neighbours=1).fit(inter)
    sc = m._score(np.array([0]))
    # user 0's nearest other customer is user 1 (cosine 2/sqrt(6)); user 2 shares nothing
    assert sc[0, 2] == pytest.approx(2 / math.sqrt(2 * 3))
    assert sc[0, 3] == 0.0
    assert rc.recommend(m, np.array([0]), 1).tolist() == [[2]]


def test_popularity_segment_and_cold_rows() -> None:
    inter = _inter([[1, 0, 0], [1, 1, 0], [0, 1, 1], [0, 1, 0]])
    pop = rc.Popularity().fit(inter)
    assert rc.recommend(pop, np.array([-1, 0]), 2).tolist() == [[1, 0], [1, 2]]
    seg = pd.Series(["s1", "s1", "s2", "s2"], index=inter.users)
    sm = rc.SegmentPopularity(segment_of=seg, min_customers=2).fit(inter)
    s = sm.score_customers(["new1"])  # unknown segment: overall popularity shares
    assert np.argmax(s[0]) == 1
    seg2 = pd.concat([seg, pd.Series(["s1"], index=["new2"])])
    sm2 = rc.SegmentPopularity(segment_of=seg2, min_customers=2).fit(inter)
    assert np.argmax(sm2.score_customers(["new2"])[0]) == 0  # segment s1 buys item 0
    lists = rc.segment_top_n(sm2, 2)
    # s1 = customers 0, 1: item 0 bought by both, item 1 by one; s2 = customers 2, 3: item 1 by both
    assert lists[lists["segment"] == "s1"]["product_id"].tolist() == ["i0", "i1"]
    assert lists[lists["segment"] == "s2"]["product_id"].tolist() == ["i1", "i2"]


def test_segment_lookup_equals_reindex_for_unknown_and_missing_segments() -> None:
    inter = _inter([[1, 0, 0], [1, 1, 0], [0, 1, 1], [0, 1, 0]])
    seg = pd.Series(["s1", None, "s2", "s2", "s1"],
                    index=pd.Index(["u0", "u1", "u2", "u3", "x9"], dtype="string[pyarrow]"))
    sm = rc.SegmentPopularity(segment_of=seg, min_customers=1).fit(inter)
    assert list(sm.labels) == ["(unknown)", "s1", "s2"]  # u1's missing segment is "(unknown)"
    ask = ["x9", "nobody", "u1", "u3"]
    want = sm.labels.get_indexer(seg.reindex(pd.Index(ask)).fillna("(unknown)").astype(str))
    assert sm.segment_codes(ask).tolist() == want.tolist() == [1, 0, 0, 2]
    dup = pd.Series(["s1", "s2"], index=["u0", "u0"])
    with pytest.raises(ValueError, match="repeated customer ids"):
        rc.SegmentPopularity(segment_of=dup).fit(inter)


def test_content_based_prefers_same_category() -> None:
    inter = _inter([[1, 0, 0, 0], [0, 0, 1, 1], [0, 1, 1, 1]])
    products = pd.DataFrame({"product_id": ["i0", "i1", "i2", "i3"],
                             "category": ["a", "a", "b", "b"], "brand": [None] * 4,
                             "price": [1.0, 2.0, 3.0, 4.0]})
    f, names = rc.item_features(products, inter.items, price_bands=2)
    assert "category=a" in names and "price_band=1/2" in names
    m = rc.ContentBased(features=f).fit(inter)
    assert rc.recommend(m, np.array([0]), 1).tolist() == [[1]]  # same category as item 0


def test_pure_svd_recovers_block_structure() -> None:
    # two disjoint groups of customers and items: the rank-2 factor space keeps them apart
    block = np.kron(np.eye(2), np.ones((6, 4)))
    block[0, 3] = 0  # customer 0 has not bought item 3 of their own group
    inter = _inter(block.astype(int).tolist())
    m = rc.PureSVD(factors=2, alpha=0.0).fit(inter)
    assert rc.recommend(m, np.array([0]), 1).tolist() == [[3]]


def test_tune_picks_the_best_value_and_keeps_its_model() -> None:
    p = _purch([(c, f"o{c}{d}", d, prod) for c, d, prod in [
        ("a", "2025-01-01", "x"), ("a", "2025-01-01", "y"), ("b", "2025-01-02", "x"),
        ("b", "2025-01-02", "y"), ("c", "2025-01-03", "x"), ("c", "2025-01-03", "z"),
        ("e", "2025-01-03", "z"), ("f", "2025-01-03", "z"),
        ("d", "2025-01-02", "x"), ("d", "2025-01-10", "y")]])
    ev = rc.evaluation_set(p, "2025-01-11", 2)  # d bought x before, y in the test window
    assert list(ev.warm_ids) == ["d"]
    # popularity (x 4, z 3, y 2 buyers) shows z; item-CF: sim(x,y) = 2/sqrt(8) > sim(x,z) = 1/sqrt(12)
    res = rc.tune(ev, lambda v: rc.Popularity() if v == "pop" else rc.ItemKNN(), ["pop", "icf"],
                  k=1)
    assert res.table["ndcg"].tolist() == [0.0, 1.0]
    assert res.best_value == "icf"
    assert isinstance(res.best_model, rc.ItemKNN) and res.best_model.inter is ev.inter


def test_pure_svd_truncation_equals_a_smaller_fit() -> None:
    rng = np.random.default_rng(1)
    dense = (rng.random((40, 12)) < 0.3).astype(int)
    inter = _inter(dense.tolist())
    big = rc.PureSVD(factors=6, seed=3).fit(inter)
    small = rc.PureSVD(factors=3, seed=3).fit(inter)
    assert np.allclose(big.truncated(3)._score(np.arange(5)), small._score(np.arange(5)), atol=1e-8)
    assert np.all(np.diff(big.singular_values) <= 0)


def test_hybrid_blends_scaled_scores() -> None:
    inter = _inter([[1, 1, 0], [1, 0, 1], [0, 1, 1]])
    a, b = rc.Popularity().fit(inter), rc.ItemKNN().fit(inter)
    h = rc.Hybrid(parts=(a, b), weights=(1.0, 0.0)).fit(inter)
    assert np.allclose(h._score(np.array([0])), [[0.0, 0.0, 0.0]])  # equal popularity: flat
    with pytest.raises(ValueError):
        rc.Hybrid(parts=(a,), weights=()).fit(inter)


# --------------------------------------------------------------------------------------------
# association rules


def test_pair_rules_hand_computed() -> None:
    p = _purch([("c", "o1", "2025-01-01", "A"), ("c", "o1", "2025-01-01", "B"),
                ("c", "o2", "2025-01-02", "A"), ("c", "o2", "2025-01-02", "B"),
                ("c", "o3", "2025-01-03", "A"), ("c", "o3", "2025-01-03", "C"),
                ("c", "o4", "2025-01-04", "B"), ("c", "o5", "2025-01-05", "C")])
    b, orders, items = rc.basket_matrix(p)
    assert b.shape == (5, 3)
    r = rc.pair_rules(b, items, min_support=0.0, min_count=2, min_confidence=0.0)
    # only A&B co-occur twice; n(A)=3, n(B)=3, N=5
    assert len(r) == 2
    ab = r[(r["antecedent"] == "A") & (r["consequent"] == "B")].iloc[0]
    assert ab["support"] == pytest.approx(2 / 5)
    assert ab["confidence"] == pytest.approx(2 / 3)
    assert ab["lift"] == pytest.approx((2 / 3) / (3 / 5))
    # Apriori pruning: with min_count 3 no pair survives
    assert rc.pair_rules(b, items, min_support=0.0, min_count=3).empty


def test_bundle_recovery() -> None:
    pairs = pd.DataFrame({"product_id": ["a", "b"], "complement_id": ["x", "y"]})
    assert rc.bundle_recovery(pairs, {"a": ["x", "z"], "b": ["z"]}) == 0.5


# --------------------------------------------------------------------------------------------
# truth checks on the committed synthetic data


@pytest.fixture(scope="module")
def synthetic():
    try:
        from helpers.data import load_dataset
    except ImportError:  # the loader is not there yet: read the committed tables directly
        load_dataset = None
    if load_dataset is not None:
        ds = load_dataset("synthetic")
        return ds.orders, ds.order_lines, ds.products, ds.truth.facts
    import json

    from helpers.paths import resolve

    root = resolve("data/synthetic")
    return (pd.read_parquet(root / "orders.parquet"),
            pd.read_parquet(root / "order_lines.parquet").drop_duplicates(),
            pd.read_parquet(root / "products.parquet"),
            json.loads((root / "truth" / "facts.json").read_text()))


def test_personalized_models_beat_popularity_on_synthetic(synthetic) -> None:
    orders, lines, products, _ = synthetic
    purch = rc.purchases(orders, lines)
    ev = rc.evaluation_set(purch, "2025-12-31", 90)
    settings = rc.ModelSettings(svd_factors=8, item_shrinkage=20.0, content_popularity_weight=1.0,
                                seed=42)  # the chapter's defaults / tuned values on validation
    models = rc.build_models(ev.inter, products, settings,
                             names=["popularity", "item-CF", "content", "latent factors (SVD)",
                                    "hybrid"])
    comp = rc.compare(models, ev, 10)
    pop = comp.per_user["popularity"]["ndcg"].to_numpy()
    # Bar: +25% NDCG@10 over popularity, with the paired 95% CI above zero. Why 25%: customers
    # choose products from their own (persona-shaped) category and brand-tier preferences, which
    # popularity ignores entirely; 25% is above the guide's +20% headline (an offline lift
    # smaller than that could not support it) and about 10 standard errors of the popularity
    # NDCG mean on ~5,500 test customers (relative s.e. ~2.7%), so it is not a noise-level bar.
    for name in ("item-CF", "hybrid", "latent factors (SVD)"):
        ndcg = comp.per_user[name]["ndcg"].to_numpy()
        assert ndcg.mean() >= 1.25 * pop.mean(), name
        _, lo, _ = rc.paired_diff_ci(ndcg, pop)
        assert lo > 0, name


def test_rules_find_planted_bundles(synthetic) -> None:
    orders, lines, _, facts = synthetic
    purch = rc.purchases(orders, lines)
    b, _, items = rc.basket_matrix(purch)
    rules = rc.pair_rules(b, items, min_support=0.0, min_count=10, min_confidence=0.05)
    planted = rc.planted_bundles(facts)
    assert len(planted) == 60  # helpers.synth.Config.n_bundles
    key = set(zip(rules["antecedent"], rules["consequent"]))
    # Every planted pair that co-occurs in >= 10 baskets must be found as a rule with lift > 5:
    # the generator adds the complement to 45% of baskets holding the product, so confidence is
    # >= 0.45 while the complement's own basket share is a few percent at most.
    co = b.T @ b
    for p, c in zip(planted["product_id"], planted["complement_id"]):
        i, j = items.get_loc(p), items.get_loc(c)
        if co[i, j] >= 10:
            assert (p, c) in key
            assert rules[(rules["antecedent"] == p) & (rules["consequent"] == c)]["lift"].iloc[0] > 5
    # and the strongest rules are planted ones: of the top 20 pairs by lift (both directions of a
    # pair count once), at least 15 are planted, the rest are pairs inside strong personas
    pairs = {frozenset(x) for x in zip(planted["product_id"], planted["complement_id"])}
    top = []
    for a, c in zip(rules["antecedent"], rules["consequent"]):
        if frozenset((a, c)) not in top:
            top.append(frozenset((a, c)))
        if len(top) == 20:
            break
    assert sum(t in pairs for t in top) >= 15


def _user_cf_reference(dense: np.ndarray, candidates: np.ndarray, user: int, n: int) -> np.ndarray:
    """Brute-force user-CF scores of one user: cosine to every candidate except the user, keep
    the n most similar (positive), sum their purchase rows weighted by similarity."""
    unit = dense / np.maximum(np.linalg.norm(dense, axis=1, keepdims=True), 1e-300)
    sims = np.array([unit[user] @ unit[c] if c != user else 0.0 for c in candidates])
    keep = np.argsort(-sims, kind="stable")[:n]
    keep = keep[sims[keep] > 0]
    return sims[keep] @ dense[candidates[keep]]


def test_user_knn_neighbour_pool_is_capped_and_seeded() -> None:
    rng = np.random.default_rng(3)
    dense = (rng.random((40, 12)) < 0.3).astype(np.float32)
    inter = _inter(dense.tolist())
    full = rc.UserKNN(neighbours=5, max_candidates=None).fit(inter)
    same = rc.UserKNN(neighbours=5, max_candidates=40).fit(inter)  # cap not binding
    assert np.allclose(full._score(np.arange(40)), same._score(np.arange(40)))
    capped = rc.UserKNN(neighbours=5, max_candidates=15, seed=7).fit(inter)
    cand = capped.candidates
    assert len(cand) == 15 and len(np.unique(cand)) == 15 and cand.max() < 40
    again = rc.UserKNN(neighbours=5, max_candidates=15, seed=7).fit(inter)
    assert np.array_equal(again.candidates, cand)  # seeded: the same pool every run
    sc = capped._score(np.arange(40))
    for u in (0, int(cand[0]), 39):  # a user in or out of the pool: never their own neighbour
        assert np.allclose(sc[u], _user_cf_reference(dense, cand, u, 5), atol=1e-5)


def test_fallback_list_has_no_customer_column() -> None:
    inter = _inter([[1, 0, 0], [1, 1, 0], [0, 1, 1], [0, 1, 0]])
    pop = rc.Popularity(name="popularity (recent)").fit(inter)
    out = rc.fallback_top_n(pop, 2, {"i0": "zero", "i1": "one"})
    assert list(out.columns) == ["rank", "product_id", "product_name", "model"]
    assert out["rank"].tolist() == [1, 2]
    assert out["product_id"].tolist() == ["i1", "i0"]  # bought by 3 and 2 customers
    assert out["product_name"].tolist() == ["one", "zero"]
    assert set(out["model"]) == {"popularity (recent)"}
    # the per-customer table keys every row by a real customer id
    lists = rc.top_n_table(pop, inter.users, 2, exclude_seen=False)
    assert set(lists["customer_id"]) == set(inter.users)


def test_streamed_csv_export_equals_the_table(tmp_path) -> None:
    rng = np.random.default_rng(5)
    inter = _inter((rng.random((30, 8)) < 0.3).astype(int).tolist())
    m = rc.ItemKNN(neighbours=3).fit(inter)
    names = {f"i{j}": f"name, {j}" for j in range(8)}
    path = tmp_path / "top.csv"
    n = rc.write_top_n_csv(m, inter.users, 4, path, names, chunk=7, extra={"model": "item-CF"})
    want = rc.top_n_table(m, inter.users, 4, names).assign(model="item-CF")
    got = pd.read_csv(path, dtype={"customer_id": str, "product_id": str})
    assert n == len(want) == len(got)
    pd.testing.assert_frame_equal(got, want, check_dtype=False)
