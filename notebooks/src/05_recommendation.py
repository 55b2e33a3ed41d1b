"""Chapter 05 source (percent format).

`python tools/build_notebooks.py 05_recommendation` builds notebooks/05_recommendation.ipynb;
`make notebooks CHAPTERS=05_recommendation` also executes it with the default parameters.
"""

# %% [markdown]
# # 05 · Recommendation — 个性化推荐（猜你喜欢）
#
# **Aim.** What should each customer see next in the "guess you like" (猜你喜欢) slot, in a
# recommendation e-mail or next to a product page? This chapter fixes an honest, time-based
# evaluation protocol *first*, then compares popularity, collaborative filtering (协同过滤),
# content-based and latent-factor recommenders, a hybrid and a cold-start fallback chain on the
# same customers and the same metrics; mines association rules ("frequently bought together",
# 关联规则); checks everything against the structure planted in the synthetic data; and exports
# ready-to-use lists.
#
# **Guide sections.** Growth 6.1 (algorithms: user- and item-based CF, content-based), 6.2 (uses:
# home feed, related items, e-mails), 6.3 (evaluation); Guide 3.2 (association rules, Apriori),
# 7.4 case 1, 8.2; Strategy 3.1; Stickiness 2(1) (the "+20% conversion" claim).
#
# **What you will learn**
#
# - a leakage-free protocol: time split, validation window for tuning, cold-start customers kept
#   apart, already-bought products excluded (and why)
# - precision, recall, NDCG, MAP and hit rate at k, catalogue coverage and novelty, with
#   confidence intervals and per-segment results
# - item-CF, user-CF, content-based, latent factors (SVD) and a hybrid, all on sparse matrices
# - support, confidence and lift of "bought together" rules and how they relate to item-CF
# - what an offline metric can and cannot say about conversion, and how big an A/B test must be
#
# Reusable code lives in `helpers.recommend` (documented and unit-tested); this notebook shows
# the reasoning and the results. Sections the data cannot support are skipped with a visible note.

# %% tags=["parameters"]
dataset = "synthetic"  # name under data/ (synthetic, cdnow_sample, online_retail_ii) or a path
analysis_date = "2025-12-31"  # 'YYYY-MM-DD', or None for the dataset's default analysis date
seed = 42  # integer seed for every random step
export_dir = "reports/exports"  # folder for exported files, relative to the project root
k = 10  # int 1..50: length of the recommendation list scored by the metrics @k
test_days = 90  # int at least 14: days in the test window that ends on the analysis date
exclude_seen = True  # True: recommend and score only products not bought before; False: re-buys count
recent_days = 30  # int at least 1: window (days before the cut-off) of the "recent popularity" baseline
validation_customers = 2000  # int at least 100: warm customers sampled from the validation window for tuning
test_customers = 20000  # int at least 100: warm test customers evaluated (a seeded sample if more)
svd_factors_grid = [8, 16, 32]  # ascending ints: latent factors tried on the validation window
item_shrinkage_grid = [0, 20, 100]  # non-negative numbers: item-CF similarity shrinkage tried on validation
user_neighbours_grid = [50, 200]  # ints: neighbours tried for user-CF on the validation window
user_cf_candidates = 20000  # int at least 1000: customers in the user-CF neighbour pool
content_weight_grid = [0.0, 1.0]  # non-negative floats: popularity prior exponents tried for content-based
min_rule_count = 10  # int at least 1: baskets that must contain a pair for an association rule
min_rule_support = 0.0005  # float in [0, 1): share of baskets that must contain a pair
min_rule_confidence = 0.05  # float in [0, 1]: minimum confidence P(B | A) of a rule
top_n_export = 20  # int at least 1: products per customer in the exported lists
related_n = 10  # int at least 1: related products per product in the exported related-items table

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import display

import helpers as hb
from helpers import recommend as rc
from helpers.ids import isin

ctx = hb.setup("05_recommendation", dataset=dataset, analysis_date=analysis_date, seed=seed,
               export_dir=export_dir, k=k, test_days=test_days, exclude_seen=exclude_seen,
               recent_days=recent_days, validation_customers=validation_customers,
               test_customers=test_customers,
               svd_factors_grid=svd_factors_grid, item_shrinkage_grid=item_shrinkage_grid,
               user_neighbours_grid=user_neighbours_grid, user_cf_candidates=user_cf_candidates,
               content_weight_grid=content_weight_grid, min_rule_count=min_rule_count,
               min_rule_support=min_rule_support, min_rule_confidence=min_rule_confidence,
               top_n_export=top_n_export, related_n=related_n)
ds = ctx.load()

# %%
# Derived settings and parameter checks (kept out of the parameters cell on purpose).
if not (isinstance(k, int) and 1 <= k <= 50):
    raise ValueError(f"k must be an integer between 1 and 50; got {k!r}")
if not (isinstance(test_days, int) and test_days >= 14):
    raise ValueError(f"test_days must be an integer >= 14; got {test_days!r}")
if not isinstance(exclude_seen, bool):
    raise ValueError(f"exclude_seen must be True or False; got {exclude_seen!r}")
if not (isinstance(recent_days, int) and recent_days >= 1):
    raise ValueError(f"recent_days must be a positive integer; got {recent_days!r}")
if not (isinstance(validation_customers, int) and validation_customers >= 100):
    raise ValueError(f"validation_customers must be an integer >= 100; got {validation_customers!r}")
for _name, _grid in (("svd_factors_grid", svd_factors_grid),
                     ("user_neighbours_grid", user_neighbours_grid)):
    if not (_grid and all(isinstance(v, int) and v >= 1 for v in _grid)):
        raise ValueError(f"{_name} must be a non-empty list of positive integers; got {_grid!r}")
for _name, _grid in (("content_weight_grid", content_weight_grid),
                     ("item_shrinkage_grid", item_shrinkage_grid)):
    if not (_grid and all(isinstance(v, (int, float)) and v >= 0 for v in _grid)):
        raise ValueError(f"{_name} must be a non-empty list of numbers >= 0; got {_grid!r}")
if not (isinstance(test_customers, int) and test_customers >= 100):
    raise ValueError(f"test_customers must be an integer >= 100; got {test_customers!r}")
if not (isinstance(user_cf_candidates, int) and user_cf_candidates >= 1000):
    raise ValueError(f"user_cf_candidates must be an integer >= 1000; got {user_cf_candidates!r}")
if not (0 <= min_rule_support < 1 and 0 <= min_rule_confidence <= 1 and min_rule_count >= 1):
    raise ValueError("rule thresholds: min_rule_count >= 1, 0 <= min_rule_support < 1, "
                     "0 <= min_rule_confidence <= 1")
END = ctx.analysis_date + pd.Timedelta(days=1)  # first moment after the analysis date
MIN_EVAL = 30  # fewest warm test customers for a model comparison worth showing
PERSONALIZED = list(rc.PERSONALIZED)

HAS_PRODUCTS = ds.supports("products") and ds.has("order_lines") and ds.has("products")
if not HAS_PRODUCTS:
    print(f"Dataset {ds.name!r} has no products or order lines: orders only say *that* a customer "
          "bought, not *what*. There is nothing to recommend, so every section below is skipped "
          "and the metrics are recorded as null.")

# %% [markdown]
# ## 1. The data at hand
#
# A recommender learns from *what* each customer bought: order lines joined to their order's
# customer and time. The implicit-feedback matrix (customer x product, 1 = bought at least once)
# is very sparse; most of the chapter is about using that little signal well.

# %%
# NBVAL_CHECK_OUTPUT
if HAS_PRODUCTS:
    purch = rc.purchases(ds.orders, ds.order_lines)
    if (purch["order_ts"] >= END).any():  # purchases after the analysis date are the future
        purch = purch[purch["order_ts"] < END].reset_index(drop=True)
    names = (ds.products.drop_duplicates("product_id").set_index("product_id")["product_name"]
             if "product_name" in ds.products else pd.Series(dtype=str))
    counts = rc.purchase_counts(purch)
    per_product = counts.buyers_per_product  # distinct buyers per product, most bought first
    top1 = max(1, int(np.ceil(0.01 * len(per_product))))
    lines_per_order = counts.lines_per_order
    print(f"order lines:            {counts.lines:,}")
    print(f"orders / customers:     {counts.orders:,} / {counts.customers:,}")
    print(f"products bought:        {len(per_product):,}")
    print(f"products per order:     mean {lines_per_order.mean():.2f}, "
          f"{(lines_per_order > 1).mean():.0%} of orders have 2+")
    print(f"top 1% of products:     {per_product.iloc[:top1].sum() / per_product.sum():.0%} "
          "of customer-product pairs")
    if len(per_product) < 2:
        print(f"Only {len(per_product)} product was bought: a recommender chooses among products, so "
              "there is nothing to recommend beyond it, and there are no pairs of products for "
              "association rules. Sections 2-10 are skipped and their metrics recorded as null.")
        ctx.skip("2-10. Recommendation", "the data holds a single product: nothing to recommend "
                 "beyond it and no product pairs for rules")
else:
    ctx.skip("1. The data at hand", "the dataset has no order lines or products")
# a recommender needs at least two products to choose from (and rules need pairs)
CAN_RECOMMEND = HAS_PRODUCTS and len(per_product) >= 2

# %% [markdown]
# ## 2. Evaluation protocol (first, before any model)
#
# The protocol decides what "good" means, so it comes before the models:
#
# - **Time split.** Train on purchases before a cut-off; test on the following `test_days` days up
#   to the analysis date. A random split of purchases would let a model "predict" the past from
#   the future (leakage) and would reward it for knowing tomorrow's bestsellers.
# - **Validation window.** Hyper-parameters (number of latent factors, neighbours, the content
#   model's popularity prior) and the choice of the *best model* are made on an earlier window of
#   the same length, ending at the cut-off — never on the test window.
# - **Warm vs cold customers.** Warm customers bought before the cut-off and in the test window:
#   models score them from their history. Cold-start (冷启动) customers bought for the first time
#   in the test window: no history, so only history-free lists (popularity, popularity in their
#   sign-up segment) can serve them; they are evaluated separately in section 6.
# - **Already-bought products.** With `exclude_seen = True` a customer's earlier purchases are never
#   recommended and a re-buy in the test window is not a hit: the task is "what *new* product
#   will they buy". Warm customers whose test purchases were all re-buys drop out (counted below).
# - **Metrics @k** (binary relevance, `R` = products bought in the test window): precision = hits /
#   k; recall = hits / |R|; hit rate = share of customers with at least one hit; NDCG discounts a
#   hit by log2 of its rank and divides by the best possible; MAP averages precision at each hit
#   (over min(|R|, k)). Catalogue coverage = share of products recommended to anyone; novelty = mean
#   self-information -log2(share of customers who bought the item), in bits.
# - Products first sold in the test window stay in `R` (no model can recommend them, so they
#   lower recall honestly).
# - **How many customers are scored.** Metrics are means over customers, so a large random sample
#   measures them as well as everyone does: at most `test_customers` warm test customers (a seeded
#   random sample when there are more; the bundled data has fewer, so all are used) and
#   `validation_customers` on the validation window. The cost of the evaluation then stays the
#   same however large the shop; the confidence intervals below say how precise the sample is.

# %%
if CAN_RECOMMEND:
    ev = rc.evaluation_set(purch, ctx.analysis_date, test_days, exclude_seen=exclude_seen,
                           max_users=test_customers, seed=seed)
    val = rc.evaluation_set(purch[purch["order_ts"] < ev.split.cutoff],
                            ev.split.cutoff - pd.Timedelta(days=1), test_days,
                            exclude_seen=exclude_seen, max_users=validation_customers, seed=seed)
    protocol = pd.concat({"test": ev.summary()["value"], "validation": val.summary()["value"]},
                         axis=1)
    display(protocol)
    CAN_EVAL = len(ev.warm_ids) >= MIN_EVAL and len(val.warm_ids) >= MIN_EVAL
    if not CAN_EVAL:
        print(f"Too few warm customers to compare models (test {len(ev.warm_ids)}, validation "
              f"{len(val.warm_ids)}; need {MIN_EVAL} each): choose a longer test_days or more data.")
else:
    CAN_EVAL = False
    if not HAS_PRODUCTS:
        ctx.skip("2. Evaluation protocol", "no products to recommend")

# %% [markdown]
# ## 3. The models, tuned on the validation window
#
# | model | idea | scales because |
# |---|---|---|
# | popularity | the same bestseller list for everyone (overall, and over the last `recent_days` days) | one count per product |
# | item-CF (基于物品的协同过滤) | "bought this, also bought": cosine similarity of products' buyer sets (shrunk when few buyers are shared), top 50 neighbours per product | item x item similarity computed in blocks and pruned |
# | user-CF (基于用户的协同过滤) | what the most similar customers bought | similarities for a batch of customers at a time, against at most `user_cf_candidates` possible neighbours |
# | content | products whose category, brand and price band (or description words) match the customer's profile, times a popularity prior | item x feature matrix |
# | latent factors (SVD) | PureSVD: project the purchase history on the top singular vectors of the (popularity-tempered) purchase matrix | sparse truncated SVD, `x V'V` |
# | hybrid | item-CF + SVD + content, each scaled to [0, 1] per customer, equal weights | sum of the above |
#
# Every model breaks ties (and fills lists it cannot fill) by popularity. Everything is a
# `scipy.sparse` matrix; scores exist only for a batch of customers at a time, never for all
# customers x products. A library such as `implicit` (ALS/BPR) would add GPU-scale factor models;
# at this size the sparse SVD is fast enough and easy to read.
#
# User-CF compares every customer with every possible neighbour, so its cost grows with the
# *square* of the number of customers. When there are more than `user_cf_candidates` training
# customers (20,000 by default; the bundled data has fewer, so nothing changes there), neighbours
# are looked for among a seeded random sample of that many customers: each customer still gets
# their most similar neighbours *within the sample*, which is plenty for 100-200 neighbours, and the
# cost per customer stays fixed however large the shop grows.
#
# The grids are small on purpose (each value costs a fit): factors for SVD, the shrinkage of
# item-CF similarities (a pair of products sharing 2 buyers out of 3 is not as "similar" as one
# sharing 200 out of 300), neighbours for user-CF, the exponent of the content model's popularity
# prior (0 = pure content).

# %%
if CAN_EVAL:
    svd_base = rc.PureSVD(name="latent factors (SVD)", factors=max(svd_factors_grid),
                          seed=seed).fit(val.inter)
    val_feats = rc.item_features(ds.products, val.inter.items)[0]
    tuning = {
        "SVD factors": rc.tune(val, svd_base.truncated, svd_factors_grid, k),
        "item-CF shrinkage": rc.tune(val, lambda s: rc.ItemKNN(shrinkage=float(s)),
                                     item_shrinkage_grid, k),
        "user-CF neighbours": rc.tune(val, lambda n: rc.UserKNN(neighbours=n, seed=seed,
                                                                max_candidates=user_cf_candidates),
                                      user_neighbours_grid, k),
        "content popularity weight": rc.tune(
            val, lambda w: rc.ContentBased(features=val_feats, popularity_weight=float(w)),
            content_weight_grid, k),
    }
    tuned = rc.ModelSettings(
        recent_days=recent_days, seed=seed,
        svd_factors=int(tuning["SVD factors"].best_value),
        item_shrinkage=float(tuning["item-CF shrinkage"].best_value),
        user_neighbours=int(tuning["user-CF neighbours"].best_value),
        user_candidates=user_cf_candidates,
        content_popularity_weight=float(tuning["content popularity weight"].best_value))
    prefit = {"latent factors (SVD)": tuning["SVD factors"].best_model,
              "item-CF": tuning["item-CF shrinkage"].best_model,
              "user-CF": tuning["user-CF neighbours"].best_model,
              "content": tuning["content popularity weight"].best_model}
    tune_tab = pd.concat({key: t.table.assign(value=t.table["value"].astype(str))
                          .set_index("value")["ndcg"] for key, t in tuning.items()}
                         ).rename(f"validation NDCG@{k}").to_frame()
    display(tune_tab.round(4))
    print(f"chosen: SVD {tuned.svd_factors} factors, item-CF shrinkage {tuned.item_shrinkage:g}, "
          f"user-CF {tuned.user_neighbours} neighbours, content popularity weight "
          f"{tuned.content_popularity_weight:g}")
else:
    ctx.skip("3. Models and tuning", "no products or too few customers to evaluate")

# %% [markdown]
# With the settings fixed, every model is fitted on the validation window's training data and
# scored on its warm customers; the **best model is the one with the highest validation NDCG**.
# Picking the winner on the test window instead would flatter it (with seven models, the luckiest
# one wins).

# %%
if CAN_EVAL:
    val_models = rc.build_models(val.inter, ds.products, tuned,
                                 recent=rc.recent_matrix(val, recent_days), prefit=prefit)
    val_comp = rc.compare(val_models, val, k)
    best_model = str(val_comp.table["ndcg"].idxmax())
    best_personal = str(val_comp.table.loc[PERSONALIZED, "ndcg"].idxmax())
    display(val_comp.table[["ndcg", "precision", "recall"]].round(4))
    print(f"best model on validation: {best_model}")

# %% [markdown]
# ## 4. All models on the test window
#
# The same models, refitted on everything before the cut-off with the tuned settings, scored on
# the warm test customers. NDCG carries a 95% confidence interval (normal approximation over
# customers); differences between models are judged on the *paired* per-customer differences in
# section 5, which are much tighter than two overlapping intervals suggest.

# %%
if CAN_EVAL:
    models = rc.build_models(ev.inter, ds.products, tuned, recent=rc.recent_matrix(ev, recent_days))
    comp = rc.compare(models, ev, k)
    cols = ["precision", "recall", "ndcg", "ndcg_ci_low", "ndcg_ci_high", "map", "hit_rate",
            "coverage", "novelty"]
    results = comp.table[cols].rename(columns=lambda c: c if c in ("coverage", "novelty")
                                      else f"{c}@{k}")
    display(results.round(4))
else:
    ctx.skip("4. Model comparison", "no products or too few customers to evaluate")

# %%
if CAN_EVAL:
    tab = comp.table
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    ypos = np.arange(len(tab))
    colours = ["#999999" if n.startswith("popularity") else
               ("#c44e52" if n == best_model else "#4c72b0") for n in tab.index]
    ax1.barh(ypos, tab["ndcg"], color=colours,
             xerr=[tab["ndcg"] - tab["ndcg_ci_low"], tab["ndcg_ci_high"] - tab["ndcg"]])
    ax1.set_yticks(ypos, tab.index)
    ax1.invert_yaxis()
    ax1.set_xlabel(f"NDCG@{k} on the test window (mean over customers, 95% CI)")
    ax1.set_title("Ranking quality (red: best on validation)")
    ax2.scatter(tab["coverage"] * 100, tab["ndcg"], c=colours, s=60)
    for n, row in tab.iterrows():
        ax2.annotate(n, (row["coverage"] * 100, row["ndcg"]), fontsize=8,
                     xytext=(4, 3), textcoords="offset points")
    ax2.set_xlabel("catalogue coverage (% of products recommended to anyone)")
    ax2.set_ylabel(f"NDCG@{k}")
    ax2.set_title("Accuracy vs. breadth")
    fig.tight_layout()
    plt.show()

# %% [markdown]
# Reading the comparison: popularity is the baseline every personalized model must beat; it
# recommends a handful of products to everyone (coverage of a few percent, lowest novelty).
# Collaborative and factor models reach deeper into the catalogue. High coverage alone is not a
# virtue (a random list has full coverage): it matters together with accuracy.

# %% [markdown]
# ## 5. Does personalization beat popularity? (truth check and segments)
#
# The paired difference in NDCG between each personalized model and overall popularity, over the
# same customers, with its 95% confidence interval. On the synthetic data the answer is known in
# advance: customers choose products from their own persona-shaped category and brand-tier
# preferences and complete planted bundles, none of which popularity can see, so a personalized
# model must win clearly. The chapter's test (`tests/test_recommend.py`) asserts a lift of at least
# 25% in NDCG@10 with the paired interval above zero.

# %%
# NBVAL_CHECK_OUTPUT
if CAN_EVAL:
    pop_ndcg = comp.per_user["popularity"]["ndcg"].to_numpy()
    rows = []
    for name in PERSONALIZED:
        d, lo, hi = rc.paired_diff_ci(comp.per_user[name]["ndcg"].to_numpy(), pop_ndcg)
        rows.append({"model": name, "lift_vs_popularity": d / pop_ndcg.mean(),
                     "diff_ci_low": lo, "diff_ci_high": hi})
    lift = pd.DataFrame(rows).set_index("model")
    print(f"NDCG@{k}: popularity {pop_ndcg.mean():.3f}; best model ({best_model}) "
          f"{comp.table.loc[best_model, 'ndcg']:.3f}")
    for name, r in lift.iterrows():
        print(f"  {name:22s} {r['lift_vs_popularity']:+.0%} vs popularity "
              f"(paired diff 95% CI {r['diff_ci_low']:+.3f} .. {r['diff_ci_high']:+.3f})")
    if "popularity (recent)" in comp.per_user and best_model in lift.index:
        rec = comp.per_user["popularity (recent)"]["ndcg"].to_numpy()
        d, lo, hi = rc.paired_diff_ci(comp.per_user[best_model]["ndcg"].to_numpy(), rec)
        print(f"  {best_model} vs recent popularity (the stronger baseline on seasonal data): "
              f"{d / rec.mean():+.0%} (paired diff 95% CI {lo:+.3f} .. {hi:+.3f})")
    if ds.truth is not None and best_model in lift.index:
        passed = lift.loc[best_model, "lift_vs_popularity"] >= 0.25 and \
            lift.loc[best_model, "diff_ci_low"] > 0
        print(f"truth check (best model >= +25% with the paired CI above 0): "
              f"{'passed' if passed else 'NOT passed'}")

# %% [markdown]
# Results by customer segment: on synthetic data by the *true* persona (used only to slice the
# evaluation, never by a model), otherwise by the number of orders before the cut-off. Popularity
# is nearly as good as anything for customers whose taste is the crowd's taste and poor for
# customers with distinctive taste — that is where personalization earns its keep.

# %%
if CAN_EVAL:
    if ds.truth is not None:
        seg = ds.truth.persona().rename("segment")
        seg_label = "true persona"
    else:
        seg = rc.order_count_band(ev.split.train, ev.warm_ids)
        seg_label = "orders before the cut-off"
    shown = ["popularity", "item-CF", best_personal] if best_personal != "item-CF" else \
        ["popularity", "item-CF", "latent factors (SVD)"]
    by_seg = rc.segment_table(comp, seg, ev, list(dict.fromkeys(shown)))
    by_seg.index.name = seg_label
    display(by_seg.round(3))
    ax = by_seg.drop(columns="customers").plot.bar(figsize=(9, 4), rot=0)
    ax.set_xlabel(seg_label)
    ax.set_ylabel(f"NDCG@{k} (mean over test customers)")
    ax.set_title("Who gains from personalization")
    ax.tick_params(axis="x", labelsize=8)
    plt.show()
else:
    ctx.skip("5. Personalization vs popularity", "no products or too few customers to evaluate")

# %% [markdown]
# ## 6. Cold start and the fallback chain
#
# Customers without history cannot be scored by a history-based model. The fallback chain serves
# each customer with the best thing available:
#
# 1. history before the cut-off → the best personalized model;
# 2. no history, but sign-up attributes (acquisition channel, age band, gender; or region) →
#    popularity within their sign-up segment;
# 3. nothing known → recent popularity ("what is selling now").
#
# The table scores the history-free options on the cold-start test customers (their whole test
# basket is relevant; they have nothing to exclude). As for warm customers, the list the chain
# uses for them is chosen on the validation window.

# %%
if CAN_EVAL and len(ev.cold_ids) >= MIN_EVAL and len(val.cold_ids) >= MIN_EVAL:
    segments = rc.signup_segments(ds.customers)

    def cold_lists(e, fitted):
        """History-free lists scored on the cold-start customers of an evaluation set."""
        seg_model = (rc.SegmentPopularity(name="segment popularity", segment_of=segments).fit(e.inter)
                     if segments is not None else None)
        base = {n: fitted[n] for n in ("popularity", "popularity (recent)") if n in fitted}
        return rc.compare_cold(e, base, k, seg_model)

    cold_choice = str(cold_lists(val, val_models).table["ndcg"].idxmax())  # chosen on validation
    cold = cold_lists(ev, models)
    display(cold.table[["precision", "recall", "ndcg", "ndcg_ci_low", "ndcg_ci_high", "hit_rate",
                        "coverage", "n_users"]].round(4))
    # the chain over all test customers: warm -> the best model, cold -> the chosen history-free list
    chain_ndcg = np.concatenate([comp.per_user[best_model]["ndcg"].to_numpy(),
                                 cold.per_user[cold_choice]["ndcg"].to_numpy()])
    pop_all = np.concatenate([comp.per_user["popularity"]["ndcg"].to_numpy(),
                              cold.per_user["popularity"]["ndcg"].to_numpy()])
    print(f"cold-start list used by the chain (best on the validation window): {cold_choice}")
    print(f"all {len(chain_ndcg):,} test customers: NDCG@{k} chain {chain_ndcg.mean():.3f} vs "
          f"popularity for everyone {pop_all.mean():.3f}")
else:
    ctx.skip("6. Cold start", "too few cold-start test customers (or no model comparison)")

# %% [markdown]
# Sign-up attributes say little about *which products* a new customer will buy, so segment
# popularity only edges out overall popularity; the first purchase is the best signal. That is
# why shops ask new users for a few interests at sign-up, or show the first-session behaviour
# (views, carts) to the recommender as quickly as possible.

# %% [markdown]
# ## 7. Association rules: "frequently bought together" (关联规则)
#
# For a pair of products A, B over N baskets (orders): support = share of baskets with both;
# confidence(A→B) = P(B | A); lift = confidence / P(B) (1 = independence, > 1 = bought together
# more than chance). As in Apriori, only products that are frequent on their own can form a
# frequent pair; for pairs the counts are exact from the sparse co-occurrence matrix B'B, so no
# candidate generation is needed (rules with 3+ products — FP-growth's territory — add little
# for a "bought together" widget and are left as an exercise).

# %%
if CAN_RECOMMEND:
    baskets, _, basket_items = rc.basket_matrix(purch)
    rules = rc.pair_rules(baskets, basket_items, min_support=min_rule_support,
                          min_count=min_rule_count, min_confidence=min_rule_confidence)
    n_rules = int(len(rules))
    print(f"{baskets.shape[0]:,} baskets, {n_rules:,} rules A -> B with support >= "
          f"{min_rule_support:g} (and >= {min_rule_count} baskets), confidence >= {min_rule_confidence:g}")
    if n_rules:
        show = rules.head(12).assign(antecedent_name=lambda d: d["antecedent"].map(names),
                                     consequent_name=lambda d: d["consequent"].map(names))
        show["support_%"] = 100 * show["support"]
        display(show[["antecedent", "antecedent_name", "consequent", "consequent_name", "n_both",
                      "support_%", "confidence", "lift"]].round({"support_%": 3, "confidence": 3,
                                                                 "lift": 1}))
else:
    n_rules = None
    if not HAS_PRODUCTS:
        ctx.skip("7. Association rules", "no baskets of products")

# %% [markdown]
# **Truth check (synthetic).** The generator planted 60 complementary pairs (a product and the
# complement added to 45% of its baskets). The rules should rank them at the top, and item-CF —
# which uses *customers* who bought both, in any order — should find them as nearest neighbours.
# Rules and item-CF agree on strong complements; they differ on products that the same customers
# buy *separately* (item-CF also sees those, rules only see the same basket).

# %%
# NBVAL_CHECK_OUTPUT
if CAN_RECOMMEND and CAN_EVAL and n_rules:
    top_rules = rules.groupby("antecedent", sort=False).head(5)
    rule_cands = top_rules.groupby("antecedent")["consequent"].apply(list).to_dict()
    item_cf = models["item-CF"]
    rel_tab = rc.related_items(item_cf, 5)
    cf_cands = rel_tab.groupby("product_id")["related_product_id"].apply(list).to_dict()
    both = sorted(set(rule_cands) & set(cf_cands))
    overlap = np.mean([len(set(rule_cands[p]) & set(cf_cands[p])) / len(set(rule_cands[p]))
                       for p in both]) if both else float("nan")
    print(f"products with rules: {len(rule_cands):,}; mean share of their top-5 rule consequents "
          f"that are also top-5 item-CF neighbours: {overlap:.0%}")
    if ds.truth is not None:
        planted = rc.planted_bundles(ds.truth.facts)
        pairs = {frozenset(p) for p in zip(planted["product_id"], planted["complement_id"])}
        top_pairs = list(dict.fromkeys(frozenset(p) for p in zip(rules["antecedent"],
                                                                  rules["consequent"])))[:20]
        print(f"planted bundles: {len(planted)}; complement among top-5 rules of its product: "
              f"{rc.bundle_recovery(planted, rule_cands):.0%}; among top-5 item-CF neighbours "
              f"(training period): {rc.bundle_recovery(planted, cf_cands):.0%}")
        print(f"of the 20 strongest pairs by lift, planted: {sum(p in pairs for p in top_pairs)}")
elif CAN_RECOMMEND or not HAS_PRODUCTS:
    ctx.skip("7b. Rules vs item-CF", "no rules or no item-CF model")

# %% [markdown]
# ## 8. Readable examples
#
# History next to recommendations for three warm test customers (ids only; product names are not
# personal data). A ✓ marks a product the customer went on to buy in the test window.

# %%
if CAN_EVAL:
    rng = np.random.default_rng(seed)
    many = np.flatnonzero(np.diff(ev.inter.matrix[ev.warm_rows].indptr) >= 3)
    pick = np.sort(rng.choice(many if len(many) >= 3 else np.arange(len(ev.warm_ids)),
                              size=min(3, len(ev.warm_ids)), replace=False))
    shown_models = list(dict.fromkeys(["popularity", "item-CF", best_model]))
    for i in pick:
        cid = ev.warm_ids[i]
        hist = ev.inter.items[ev.inter.matrix[ev.warm_rows[i]].indices]
        bought = set(ev.warm_relevant[i].tolist())
        table = {"history (before cut-off)": [names.get(p, p) for p in hist[:8]]}
        for name in shown_models:
            r = comp.recs[name][i, :min(k, 8)]
            table[name] = [f"{'✓ ' if j in bought else ''}{names.get(ev.inter.items[j], ev.inter.items[j])}"
                           for j in r if j >= 0]
        width = max(len(v) for v in table.values())
        frame = pd.DataFrame({c: v + [""] * (width - len(v)) for c, v in table.items()})
        print(f"customer {cid}: {len(hist)} products before the cut-off, "
              f"{len(bought)} new product(s) bought in the test window")
        display(frame)
else:
    ctx.skip("8. Readable examples", "no model comparison")

# %% [markdown]
# ## 9. "Personalization lifts conversion by 20%+": what offline numbers can and cannot say
#
# The guide (Stickiness 2(1)) quotes a conversion lift of over 20% from personalized
# recommendation. The offline comparison above says something narrower: *on purchases that
# happened anyway*, a personalized list contains more of what the customer bought next than a
# bestseller list. It cannot say
#
# - whether showing the list **causes** extra purchases — customers may have bought the same
#   products without being shown anything (offline hits are not incremental sales);
# - how customers react to the slot itself (position, design, trust), or how the list changes
#   what they *would* have bought (the feedback loop: today's recommendations become tomorrow's
#   training data);
# - the margin: a recommender that pushes cheaper items can raise conversion and lower revenue.
#
# Only a randomized online test settles it: split customers (not sessions) at random between
# the current list (control, e.g. popularity) and the personalized one, fix the metric in advance
# (conversion within N days, revenue per customer), and run until the pre-computed sample size.
# With the repeat-purchase rate of this data as the control conversion, the customers needed per
# arm (two-sided 5% test, 80% power):

# %%
# NBVAL_CHECK_OUTPUT
if CAN_RECOMMEND:
    trained = ev.inter.users  # customers with purchases before the cut-off
    p0 = (float(np.mean(isin(trained, ev.split.test["customer_id"]))) if len(trained)
          else float("nan"))
    print(f"control conversion: {p0:.1%} of customers with history bought within "
          f"{test_days} days")
    for base, label in ((p0, "repeat purchase"), (0.03, "a 3% visit conversion")):
        if 0 < base < 0.8:
            sizes = ", ".join(f"{lift_:.0%}: {rc.ab_sample_size(base, lift_):,}"
                              for lift_ in (0.20, 0.10, 0.05))
            print(f"  control {base:.1%} ({label}) -> customers per arm to detect a lift of {sizes}")
elif not HAS_PRODUCTS:
    ctx.skip("9. Conversion claim", "no products")

# %% [markdown]
# A 20% lift on a frequent outcome is cheap to detect; on a rare outcome (a visit that ends in a
# purchase, a click on the widget) and for the lifts that matter in practice (a few percent over a
# good baseline) the test needs tens or hundreds of thousands of customers. Judge a claimed "+20%" by its control: against no
# recommendations at all it is plausible, against a popularity list it would be remarkable.

# %% [markdown]
# ## 10. Exports for e-mail and on-site widgets
#
# The production lists use *all* purchases up to the analysis date (the split was only for
# evaluation): the best model with its tuned settings for customers with history, one list per
# sign-up segment for new customers, and the recent bestsellers when nothing is known (the
# fallback chain of section 6). Files go to `export_dir/05_recommendation/`:
# `top_n_per_customer.csv` (one list per customer with history, keyed by the real customer id),
# `top_n_per_signup_segment.csv` (new customers, by sign-up segment), `top_n_no_history.csv` (the
# list for anyone else: rank, product, model — no customer column) and `related_items.csv`.
# The related-items table feeds the "bought together / you may also like" widget on product
# pages: item-CF neighbours, with the basket lift where a rule exists.

# %%
# NBVAL_CHECK_OUTPUT
if CAN_RECOMMEND and CAN_EVAL:
    full = rc.interaction_matrix(purch)
    recent_full = rc.interaction_matrix(
        purch[purch["order_ts"] >= END - pd.Timedelta(days=recent_days)], full.users, full.items)
    prod_models = rc.build_models(full, ds.products, tuned, recent=recent_full.matrix,
                                  names=[best_model, "item-CF", "popularity (recent)"])
    n_rows = rc.write_top_n_csv(prod_models[best_model], full.users, top_n_export,
                                ctx.export_path("top_n_per_customer.csv"), names,
                                exclude_seen=exclude_seen, extra={"model": best_model})
    fallback = rc.fallback_top_n(prod_models["popularity (recent)"], top_n_export, names)
    related = rc.related_items(prod_models["item-CF"], related_n, names)
    related = related.merge(
        rules[["antecedent", "consequent", "lift"]].rename(columns={
            "antecedent": "product_id", "consequent": "related_product_id", "lift": "basket_lift"}),
        on=["product_id", "related_product_id"], how="left")
    fallback.to_csv(ctx.export_path("top_n_no_history.csv"), index=False)
    related.to_csv(ctx.export_path("related_items.csv"), index=False)
    print(f"top_n_per_customer.csv: {full.shape[0]:,} customers x {top_n_export} products "
          f"({best_model}); every customer_id is a real customer")
    print(f"top_n_no_history.csv: the recent-bestseller list ({len(fallback)} products) for "
          "customers nothing is known about")
    segs = rc.signup_segments(ds.customers)
    if segs is not None:
        seg_lists = rc.segment_top_n(rc.SegmentPopularity(name="segment popularity",
                                                          segment_of=segs).fit(full),
                                     top_n_export, names)
        seg_lists.to_csv(ctx.export_path("top_n_per_signup_segment.csv"), index=False)
        print(f"top_n_per_signup_segment.csv: {seg_lists['segment'].nunique():,} sign-up segments "
              f"x {top_n_export} products (new customers)")
    print(f"related_items.csv: {related['product_id'].nunique():,} products, up to {related_n} "
          f"related each; {int(related['basket_lift'].notna().sum()):,} pairs also a rule")
elif CAN_RECOMMEND or not HAS_PRODUCTS:
    ctx.skip("10. Exports", "no products or no model comparison")

# %% [markdown]
# ## Key ideas
#
# - **Protocol before models.** A time split, a separate validation window for every choice
#   (hyper-parameters and the winner), cold-start customers kept apart, and a stated rule for
#   already-bought products. Change any of these and the ranking of models can change.
# - **Popularity is the baseline to beat**, and it is strong where tastes are shared. On the
#   synthetic shop, personalized models beat it by a wide margin because preferences are planted
#   by persona; per-segment results show where the gain comes from.
# - **Collaborative filtering needs only the purchase matrix**; item-CF is simple, fast, explains
#   itself ("because you bought …") and doubles as the related-items table. Latent factors
#   generalize across sparse histories; a simple blend is usually at least as good as its parts.
# - **Association rules** find products bought in the *same basket* (lift ≫ 1 for true
#   complements); item-CF finds products bought by the *same customers*. Use rules for "bought
#   together" and item-CF for "you may also like".
# - **Offline accuracy is not conversion.** Only a randomized online test measures the
#   incremental effect; size it before starting.
#
# ## Exercises
#
# 1. Set `exclude_seen = False`. Which model wins now, and why does popularity improve? Which
#    setting fits a grocery shop, which an electronics shop?
# 2. Change `test_days` to 30 and 180. How stable are the metrics and the choice of the best model?
# 3. Add the planted bundles' complements to the item-CF lists only (a "rules first" hybrid). Does
#    NDCG improve? Why is the gain small even though the rules are right?
# 4. Re-run on `online_retail_ii` (analysis date 2011-12-09). Why does *recent* popularity do so
#    well there in the autumn? Which segment benefits least from personalization?
# 5. Using the recorded control conversion, how long would an A/B test of a 5% lift run in a shop
#    with 20,000 active customers a month?
# 6. Extend `pair_rules` to rules with two products on the left (A, B → C). How many more baskets
#    do you need for the same support threshold?

# %% [markdown]
# ## Headline metrics
#
# Recorded for the runner's `metrics.json` (names fixed by the chapter's issue; `None` where not
# computed).

# %%
ctx.record_metrics({
    "k": k if HAS_PRODUCTS else None,
    "best_model": best_model if CAN_EVAL else None,
    "ndcg_at_k_best": comp.table.loc[best_model, "ndcg"] if CAN_EVAL else None,
    "ndcg_at_k_popularity": comp.table.loc["popularity", "ndcg"] if CAN_EVAL else None,
    "precision_at_k_best": comp.table.loc[best_model, "precision"] if CAN_EVAL else None,
    "recall_at_k_best": comp.table.loc[best_model, "recall"] if CAN_EVAL else None,
    "coverage_best": comp.table.loc[best_model, "coverage"] if CAN_EVAL else None,
    "n_rules": n_rules,
})
