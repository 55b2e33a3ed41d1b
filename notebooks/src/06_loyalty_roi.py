"""Chapter 06 source (percent format).

`python tools/build_notebooks.py 06_loyalty_roi` builds notebooks/06_loyalty_roi.ipynb;
`make notebooks CHAPTERS=06_loyalty_roi` also executes it with the default parameters.
"""

# %% [markdown]
# # 06 · Loyalty program ROI — 会员体系与忠诚度
#
# **Aim.** Do members spend more because of the program, or did big spenders join it? This chapter
# measures loyalty (NPS, repurchase, churn by tier), reproduces the naive "members spend 2x"
# headline, and then estimates the program's incremental effect and its return on investment.
#
# **Guide sections.** Guide 2.5, 4.5, 6.1–6.4; Strategy 2–4; Stickiness 2(3).
#
# **What you will learn**
#
# - NPS and other loyalty measures with their uncertainty
# - why a naive member vs non-member comparison is biased (self-selection)
# - incremental effects from a randomized holdout and from observational methods, and ROI
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

ctx = hb.setup("06_loyalty_roi", dataset=dataset, analysis_date=analysis_date, seed=seed,
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
# - A correlation between membership and spend is not the program's effect.
# - A randomized holdout answers the decision maker's question: what does the program add?
#
# ## Exercises
#
# 1. Before any modelling: how would you check whether members were already big spenders before
#    joining?
# 2. What would a holdout experiment need to run for to detect a 5% change in spend?

# %% [markdown]
# ## Headline metrics
#
# Recorded for the runner's `metrics.json` (names fixed by the chapter's issue; `None` where not
# computed).

# %%
ctx.record_metrics({
    "nps": None,
    "naive_effect": None,
    "experiment_effect": None,
    "experiment_ci_low": None,
    "experiment_ci_high": None,
    "observational_effect": None,
    "true_effect": None,
    "roi": None,
})
