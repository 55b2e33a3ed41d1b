"""Chapter 05 source (percent format).

`python tools/build_notebooks.py 05_recommendation` builds notebooks/05_recommendation.ipynb;
`make notebooks CHAPTERS=05_recommendation` also executes it with the default parameters.
"""

# %% [markdown]
# # 05 · Recommendation — 个性化推荐（猜你喜欢）
#
# **Aim.** What should each customer see next? This chapter sets up an honest, time-based
# evaluation first, then compares popularity, collaborative filtering, content-based and
# latent-factor recommenders and association rules on the same metrics.
#
# **Guide sections.** Growth 6.1–6.3; Guide 3.2, 7.4 (case 1), 8.2; Strategy 3.1; Stickiness 2(1).
#
# **What you will learn**
#
# - a time-based evaluation protocol and ranking metrics at k
# - item- and user-based collaborative filtering, content-based and latent-factor models
# - association rules ("frequently bought together") and how they relate to item-CF
#
# Sections the data cannot support (for example a dataset without behaviour events) are skipped
# with a visible note, and the run continues.

# %% tags=["parameters"]
dataset = "synthetic"  # name under data/ (synthetic, cdnow_sample, online_retail_ii) or a path
analysis_date = "2025-12-31"  # 'YYYY-MM-DD', or None for the dataset's default analysis date
seed = 42  # integer seed for every random step
export_dir = "reports/exports"  # folder for exported files, relative to the project root

# %%
import pandas as pd

import helpers as hb

ctx = hb.setup("05_recommendation", dataset=dataset, analysis_date=analysis_date, seed=seed,
               export_dir=export_dir)
ds = ctx.load()

# %% [markdown]
# ## 1. The data at hand
#
# Orders placed up to and including the analysis date: how many, by how many customers, over
# which period.

# %%
# NBVAL_CHECK_OUTPUT
orders = ds.orders[ds.orders["order_ts"] < ctx.analysis_date + pd.Timedelta(days=1)]
print(f"orders:    {len(orders):,}")
print(f"customers: {orders['customer_id'].nunique():,}")
print(f"period:    {orders['order_ts'].min():%Y-%m-%d} to {orders['order_ts'].max():%Y-%m-%d}")

# %% [markdown]
# ## Key ideas
#
# - Decide the evaluation protocol before the models: a time split, cold-start users, metrics at
#   k.
# - Popularity is a strong baseline; a personalized model must beat it to earn its complexity.
#
# ## Exercises
#
# 1. How many distinct products were bought, and how concentrated are purchases on the top 1%?
# 2. Why is a random train/test split of purchases unfair to a recommender?

# %% [markdown]
# ## Headline metrics
#
# Recorded for the runner's `metrics.json` (names fixed by the chapter's issue; `None` where not
# computed).

# %%
ctx.record_metrics({
    "k": None,
    "best_model": None,
    "ndcg_at_k_best": None,
    "ndcg_at_k_popularity": None,
    "precision_at_k_best": None,
    "recall_at_k_best": None,
    "coverage_best": None,
    "n_rules": None,
})
