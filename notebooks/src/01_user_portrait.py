"""Chapter 01 source (percent format).

`python tools/build_notebooks.py 01_user_portrait` builds notebooks/01_user_portrait.ipynb;
`make notebooks CHAPTERS=01_user_portrait` also executes it with the default parameters.
"""

# %% [markdown]
# # 01 · User portrait — 用户画像
#
# **Aim.** Who are our customers, in groups we can act on, from data we can trust? This chapter
# walks the steps the guide names — collect, clean, integrate, tag, segment, describe, target —
# and ends with persona cards an operator can use.
#
# **Guide sections.** Guide 2.3, 3.1–3.3; Growth 2.1–2.2; Strategy 1.1.
#
# **What you will learn**
#
# - how to account for every input row before analysing (data-quality report)
# - how to build a customer tag table along the guide's portrait dimensions
# - how to segment customers, choose the number of segments and check stability
# - how to turn segments into persona cards with targeting ideas
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

ctx = hb.setup("01_user_portrait", dataset=dataset, analysis_date=analysis_date, seed=seed,
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
n_customers = int(orders["customer_id"].nunique())
print(f"orders:    {len(orders):,}")
print(f"customers: {n_customers:,}")
print(f"period:    {orders['order_ts'].min():%Y-%m-%d} to {orders['order_ts'].max():%Y-%m-%d}")

# %% [markdown]
# ## Key ideas
#
# - Clean and account for the data first: every input row is kept, repaired or set aside with a
#   reason.
# - A portrait is a table of tags per customer; segments are summaries of that table, not the
#   other way round.
#
# ## Exercises
#
# 1. Which tables does this dataset provide, and which portrait dimensions does that rule out?
# 2. Change `analysis_date` to half a year earlier: how do the counts in section 1 change, and
#    why?

# %% [markdown]
# ## Headline metrics
#
# Recorded for the runner's `metrics.json` (names fixed by the chapter's issue; `None` where not
# computed).

# %%
ctx.record_metrics({
    "rows_in": int(ds.quality["rows_in"].sum()),
    "rows_kept": int(ds.quality["rows_kept"].sum()),
    "rows_set_aside": int(ds.quality["rows_set_aside"].sum()),
    "n_customers": n_customers,
    "k": None,
    "silhouette": None,
    "persona_ari": None,
})
