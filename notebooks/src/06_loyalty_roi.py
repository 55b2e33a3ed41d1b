"""Chapter 06 source (percent format).

`python tools/build_notebooks.py 06_loyalty_roi` builds notebooks/06_loyalty_roi.ipynb;
`make notebooks CHAPTERS=06_loyalty_roi` also executes it with the default parameters.
"""

# %% [markdown]
# # 06 · Loyalty program ROI — 会员体系与忠诚度
#
# **Aim.** Do members spend more *because of* the program (会员体系), or did big spenders join
# it? This chapter measures loyalty (净推荐值 NPS, 客户满意度 CSAT, 复购率 repurchase, churn and
# 客户生命周期价值 CLV by member tier), reproduces the naive "members spend 2x" headline, and then
# estimates the program's *incremental* effect — from a randomized holdout (A/B测试) and from
# observational methods — checks every estimate against the planted truth, and turns the
# incremental effect into a return on investment, a tier design (银卡 / 金卡 / 黑卡) and a
# recommendation.
#
# **Guide sections.** Guide 2.5, 4.5 (member days, tiers), 6.1 (loyalty measures: CSAT, churn,
# CLV, NPS), 6.2–6.4 (points, exclusive discounts, "+30 % repurchase", "+25 % retention");
# Strategy 2–4 (A/B tests to verify marketing effects); Stickiness 2(3) ("members spend about 2x").
#
# **What you will learn**
#
# - NPS with its confidence interval, and whether NPS answers predict later retention
# - why a member vs non-member comparison is biased (self-selection), shown with behaviour from
#   *before* the program existed
# - how to read a randomized holdout: sample-ratio check, intervals valid for heavy-tailed spend
#   with many zeros (ratio of means, delta method and bootstrap), CUPED, power for the next test
# - what propensity weighting and difference-in-differences can and cannot fix
# - ROI with the costs that are easy to forget (points liability, discounts on spend that would
#   have happened anyway), payback and sensitivity
#
# **The effect scale used throughout:** *relative change in spend per customer over a window*
# (spend = amount paid, before returns): `mean spend of the treated / mean spend they would have
# had without the program − 1`. For the holdout the window is the experiment window; the
# observational estimates use the 180 days after joining (stated where shown).
#
# Sections the data cannot support (CDNOW and Online Retail II have no membership, experiments or
# surveys) are skipped with a visible note, and the rest still runs. Reusable code lives in
# `helpers.loyalty` and `helpers.stats` (documented, unit-tested).

# %% tags=["parameters"]
dataset = "synthetic"  # name under data/ (synthetic, cdnow_sample, online_retail_ii) or a path
analysis_date = "2025-12-31"  # 'YYYY-MM-DD', or None for the dataset's default analysis date
seed = 42  # integer seed for every random step
export_dir = "reports/exports"  # folder for exported files, relative to the project root
experiment_id = "loyalty_holdout_2025"  # experiment_id of the loyalty holdout in `experiments`
pre_days = 181  # int > 0: days before assignment used as the CUPED / pre-period covariate
horizon_days = 180  # int > 0: follow-up window for churn, NPS -> retention and event studies
gold_threshold = 3000.0  # trailing-year spend for gold (金卡), or None: 80th percentile
black_threshold = 12000.0  # trailing-year spend for black (黑卡), or None: 97th percentile
gross_margin = 0.30  # share of spend kept as gross margin, in (0, 1)
points_per_currency = 1.0  # points earned per unit of currency spent by members (non-negative)
point_value = 0.01  # cost of one redeemed point in currency (non-negative)
redemption_rate = 0.70  # share of points eventually redeemed (1 - breakage), in [0, 1]
member_discount = 0.02  # member-price discount as a share of member spend, in [0, 1)
operating_cost_month = 2.0  # operating cost per member per month in currency (non-negative)
setup_cost = 300000.0  # one-off set-up cost of the program in currency (non-negative)
n_boot = 1000  # integer, at least 100: bootstrap draws for intervals
clv_fit_customers = 20000  # int at least 1000: customers sampled to fit the CLV models, all if fewer
alpha = 0.05  # significance level: intervals are (1 - alpha), in (0, 0.5)

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import display

import helpers as hb
from helpers import loyalty as lo
from helpers import stats as st
from helpers.ids import isin

ctx = hb.setup("06_loyalty_roi", dataset=dataset, analysis_date=analysis_date, seed=seed,
               export_dir=export_dir, experiment_id=experiment_id, pre_days=pre_days,
               horizon_days=horizon_days, gold_threshold=gold_threshold,
               black_threshold=black_threshold, gross_margin=gross_margin,
               points_per_currency=points_per_currency, point_value=point_value,
               redemption_rate=redemption_rate, member_discount=member_discount,
               operating_cost_month=operating_cost_month, setup_cost=setup_cost, n_boot=n_boot,
               alpha=alpha, clv_fit_customers=clv_fit_customers)
ds = ctx.load()

# %%
# Derived settings and parameter checks (kept out of the parameters cell on purpose).
for _name, _v in (("pre_days", pre_days), ("horizon_days", horizon_days)):
    if not (isinstance(_v, int) and _v > 0):
        raise ValueError(f"{_name} must be a positive integer; got {_v!r}")
if not (isinstance(n_boot, int) and n_boot >= 100):
    raise ValueError(f"n_boot must be an integer >= 100; got {n_boot!r}")
if not (isinstance(clv_fit_customers, int) and clv_fit_customers >= 1000):
    raise ValueError(f"clv_fit_customers must be an integer >= 1000; got {clv_fit_customers!r}")
if not 0 < alpha < 0.5:
    raise ValueError(f"alpha must be in (0, 0.5); got {alpha!r}")
if not 0 < gross_margin < 1:
    raise ValueError(f"gross_margin must be in (0, 1); got {gross_margin!r}")
if not 0 <= redemption_rate <= 1 or not 0 <= member_discount < 1:
    raise ValueError("redemption_rate must be in [0, 1] and member_discount in [0, 1)")
END = ctx.analysis_date + pd.Timedelta(days=1)  # exclusive end: the analysis day is included
CUR = ds.currency
# the three order columns this chapter uses (a smaller copy than the whole table)
orders = ds.orders.loc[ds.orders["order_ts"] < END, ["customer_id", "order_ts", "amount"]]
DATA_START = orders["order_ts"].min().normalize()
REF = ctx.analysis_date + pd.Timedelta(days=1) - pd.Timedelta(days=horizon_days)  # look-back date
loyalty = ds.loyalty if ds.has("loyalty") else None
if loyalty is not None:
    loyalty = loyalty[loyalty["enrolled_at"] < END]
experiments = ds.experiments if ds.has("experiments") else None
has_exp = experiments is not None and (experiments["experiment_id"] == experiment_id).any()
surveys = ds.surveys[ds.surveys["survey_ts"] < END] if ds.has("surveys") else None
truth = ds.truth.facts if ds.truth is not None else None
exp_ids = lo.experiment_customers(experiments, experiment_id) if has_exp else None
LAUNCH = loyalty["enrolled_at"].min() if loyalty is not None and len(loyalty) else None
if has_exp:  # the effect window: the experiment window, else the last `horizon_days`
    W_START = pd.Timestamp(experiments.loc[experiments["experiment_id"] == experiment_id,
                                           "assigned_at"].min())
else:
    W_START = END - pd.Timedelta(days=horizon_days)
W_END = END
pct = lambda x: f"{x:+.1%}"  # noqa: E731  (formatting helper for printed effects)

# %% [markdown]
# ## 1. The data at hand
#
# Orders placed up to and including the analysis date, and which loyalty tables this dataset has.

# %%
# NBVAL_CHECK_OUTPUT
print(f"orders:    {len(orders):,}")
print(f"customers: {orders['customer_id'].nunique():,}")
print(f"period:    {orders['order_ts'].min():%Y-%m-%d} to {orders['order_ts'].max():%Y-%m-%d}")
for _t in ("loyalty", "experiments", "surveys"):
    print(f"{_t + ':':12s} {'yes' if ds.has(_t) else 'no'}")
print(f"holdout experiment '{experiment_id}': {'yes' if has_exp else 'no'}")

# %% [markdown]
# ## 2. Loyalty measures (Guide 6.1)
#
# **Tiers.** A member's tier follows trailing-year spend: silver below the gold threshold, gold
# below the black threshold, black above (the synthetic program's rule; parameters). Data without
# a loyalty program still gets *value tiers* from the same rule, so the measures below exist for
# every dataset.
#
# **Measures by segment, measured after a look-back date** (analysis date − `horizon_days`) so
# that nothing leaks from the future: segment at the look-back date; *repurchase rate* (复购率) =
# share with two or more orders in the year before it; *churn rate* = share of those active in
# that year who did not buy in the following `horizon_days` (Wilson 95 % interval); *CLV* =
# expected gross margin over the next `horizon_days` from the BG/NBD + Gamma-Gamma models of
# chapter 02 (`helpers.clv`) fitted on history up to the look-back date, next to the margin those
# customers actually produced (a check of the CLV). With more than `clv_fit_customers` customers
# the models' few parameters are fitted on a seeded random sample of that many customers (a
# sample of that size pins down population-level parameters closely and keeps the fit fast on
# millions of customers); the CLV itself is then computed for every customer.

# %%
trailing_now = lo.spend_between(orders, ctx.analysis_date - pd.Timedelta(days=364), END)
if gold_threshold is None or black_threshold is None:
    GOLD, BLACK = lo.quantile_thresholds(trailing_now)
    tier_rule = "data-driven (80th / 97th percentile of trailing-year spend)"
else:
    GOLD, BLACK = float(gold_threshold), float(black_threshold)
    tier_rule = "fixed (parameters)"
print(f"tier thresholds ({tier_rule}): gold >= {GOLD:,.0f} {CUR}, black >= {BLACK:,.0f} {CUR}")
seg_ref = lo.customer_segments(orders, loyalty, REF, GOLD, BLACK)
clv_ref, clv_method = lo.clv_by_customer(orders, REF, horizon_months=round(horizon_days / 30.44),
                                         margin=gross_margin, max_fit_customers=clv_fit_customers,
                                         seed=seed)
measures = lo.segment_outcomes(orders, seg_ref, REF, horizon_days, gross_margin)
measures["clv_predicted"] = clv_ref.reindex(seg_ref.index).groupby(seg_ref["segment"]).mean()
print(f"look-back date {REF:%Y-%m-%d}; CLV method: {clv_method}")
display(measures.rename(columns={
    "value_hist": "margin last 12 months", "value_next": f"margin next {horizon_days} d (actual)",
    "clv_predicted": f"CLV next {horizon_days} d (predicted)"}).round(3))

# %% [markdown]
# Higher tiers repurchase more, churn less and are worth more — by construction of the tiers
# (they are defined by past spend) as much as by any effect of the program. Where predicted CLV
# and realised margin agree by segment, the CLV model is usable for the ROI below.
#
# **NPS** (净推荐值) = % promoters (9–10) − % detractors (0–6), from −100 to 100. Its interval
# uses the multinomial variance of the +1 / 0 / −1 answer score. The guide's claim "NPS above 50
# marks loyal customers" is a benchmark, not a law — look at the interval before comparing
# segments.

# %%
nps_value = None
if surveys is None or surveys.empty:
    ctx.skip("2 NPS and CSAT", "this dataset has no survey answers (table `surveys`)")
else:
    recent = surveys[surveys["survey_ts"] >= END - pd.Timedelta(days=365)]
    if len(recent) < 30:
        ctx.skip("2 NPS and CSAT", f"only {len(recent)} survey answers in the last year")
    else:
        nps_all = st.nps(recent["nps"], alpha)
        nps_value = nps_all.estimate
        seg_now = lo.customer_segments(orders, loyalty, END, GOLD, BLACK)
        by_seg = lo.survey_scores_by_segment(recent, seg_now, END - pd.Timedelta(days=365), END)

# %%
# NBVAL_CHECK_OUTPUT
if nps_value is not None:
    print(f"NPS over the last year: {nps_all.estimate:.1f} "
          f"({1 - alpha:.0%} CI {nps_all.ci_low:.1f} to {nps_all.ci_high:.1f}; "
          f"n = {nps_all.n:,} answers)")
    print(f"promoters {nps_all.promoters:.1%}, passives {nps_all.passives:.1%}, "
          f"detractors {nps_all.detractors:.1%}")
    if "csat" in recent:
        print(f"CSAT (1-5) mean: {recent['csat'].mean():.2f}")

# %%
if nps_value is not None:
    display(by_seg.round(2))

# %% [markdown]
# **Does NPS predict retention?** Each customer's last answer in the year before the look-back
# date, and whether they bought again within `horizon_days` after answering. If the score carries
# information, retention rises from detractors to promoters and the AUC (probability that a
# retained customer gave a higher score than a lost one) is above 0.5.

# %%
nps_ret = None
if nps_value is not None:
    nps_ret, nps_auc = lo.nps_retention(surveys, orders, REF - pd.Timedelta(days=365), REF,
                                        horizon_days)
    if len(nps_ret) < 2:
        ctx.skip("2 NPS -> retention", "too few survey answers before the look-back date")
        nps_ret = None

# %%
# NBVAL_CHECK_OUTPUT
if nps_ret is not None:
    print(nps_ret.round(3).to_string())
    print(f"AUC of the 0-10 score for retention: {nps_auc:.3f}")

# %%
if nps_ret is not None:
    fig, ax = plt.subplots(figsize=(6, 3.5))
    yerr = np.vstack([nps_ret["retention"] - nps_ret["ci_low"],
                      nps_ret["ci_high"] - nps_ret["retention"]])
    ax.bar(nps_ret.index, nps_ret["retention"], yerr=yerr, capsize=4, color="#4c72b0")
    ax.set_title(f"Retention within {horizon_days} days by NPS group (95% CI)")
    ax.set_xlabel("NPS group of the customer's last answer")
    ax.set_ylabel("share who bought again")
    ax.set_ylim(0, 1)
    plt.show()

# %% [markdown]
# ## 3. The naive comparison — and why it misleads
#
# The headline every loyalty deck shows: members spend *x* times as much as non-members. Here:
# spend per customer over the experiment window (or the last `horizon_days` without an
# experiment) for members at its start vs other customers who had bought before; experiment
# participants are left out (their membership was decided by a coin, not by themselves).

# %%
naive_value = None
if loyalty is None or loyalty.empty:
    ctx.skip("3 Naive comparison", "this dataset has no loyalty membership (table `loyalty`)")
else:
    naive_tab = lo.naive_comparison(orders, loyalty, W_START, W_END, exclude=exp_ids)
    if set(naive_tab.index) != {"member", "non-member"}:
        ctx.skip("3 Naive comparison", "members or non-members missing in the window")
    else:
        naive_value = lo.naive_effect(naive_tab)

# %%
# NBVAL_CHECK_OUTPUT
if naive_value is not None:
    print(f"window {W_START:%Y-%m-%d} to {W_END - pd.Timedelta(days=1):%Y-%m-%d}")
    print(naive_tab.round(2).to_string())
    print(f"Headline: members spend {naive_value + 1:.1f}x as much as non-members "
          f"({pct(naive_value)})")

# %% [markdown]
# **Self-selection.** Members join at checkout, and some customers are far more likely to join
# than others. The cleanest check uses behaviour from *before the program existed*: customers who
# bought in the months before the launch, split by whether they later became members. Their
# pre-launch spend cannot be an effect of the program.

# %%
pre_tab = None
if naive_value is not None:
    pre_window = int(min(90, (LAUNCH.normalize() - DATA_START).days))
    if pre_window < 30:
        ctx.skip("3 Pre-launch behaviour",
                 f"only {pre_window} days of data before the program launch ({LAUNCH:%Y-%m-%d})")
    else:
        pre_tab = lo.pre_program_comparison(orders, loyalty, LAUNCH.normalize(), W_START,
                                            pre_window, exclude=exp_ids)

# %%
# NBVAL_CHECK_OUTPUT
if pre_tab is not None and len(pre_tab) == 2:
    print(f"program launch {LAUNCH:%Y-%m-%d}; spend in the {pre_window} days before it:")
    print(pre_tab.round(2).to_string())
    _r = pre_tab["spend_per_customer"].iloc[0] / pre_tab["spend_per_customer"].iloc[1]
    print(f"future members already spent {_r:.2f}x as much - before any member benefit existed")

# %% [markdown]
# On synthetic data the generator's personas show *who* joined (truth a real dataset does not
# have): high-value personas are over-represented among members.

# %%
if naive_value is not None and ds.truth is not None:
    _pers = ds.truth.persona()
    _base = pd.Index(
        orders.loc[orders["order_ts"] < W_START, "customer_id"].unique()).difference(
        exp_ids if exp_ids is not None else pd.Index([]))
    _mem = isin(_base, lo.members_at(loyalty, W_START))
    mix = pd.crosstab(_pers.reindex(_base).to_numpy(),
                      np.where(_mem, "members", "non-members"), normalize="columns")
    mix.index.name = "persona (truth)"
    mix.columns.name = "share within"
    display(mix.round(3))

# %% [markdown]
# ## 4. The randomized holdout (A/B测试)
#
# On the assignment date eligible non-members were split at random: *treatment* enrolled
# automatically, *holdout* kept out of the program. Random assignment makes the arms comparable
# in everything — including who would have joined anyway — so the difference in spend over the
# window is the program's effect on this population.
#
# Checks and choices:
#
# 1. **Sample-ratio mismatch (SRM).** A chi-square test of the arm sizes against the planned
#    50/50; a tiny p-value means the assignment or the logging is broken and nothing else can be
#    trusted.
# 2. **Intervals valid for spend.** About half the customers spend nothing in the window and the
#    rest are heavy-tailed; the effect is a *ratio of means*, with a delta-method interval (built
#    on the log scale) and a bootstrap interval as a cross-check. Both rely only on the sample
#    means being approximately normal, which holds at thousands of customers per arm.
# 3. **CUPED.** Spend in the `pre_days` before assignment predicts spend in the window; removing
#    the predictable part (θ · (pre − mean pre)) shrinks the variance without bias, because the
#    pre-period cannot be affected by the treatment. A Lin (2013) regression adjustment with
#    several pre-period covariates and robust (HC2) errors gives the absolute effect.
#
# The **primary estimate** (fixed in advance) is the CUPED-adjusted ratio of means.

# %%
exp_res = None
if not has_exp:
    ctx.skip("4 Holdout experiment",
             f"no randomized experiment '{experiment_id}' in this dataset (table `experiments`)")
else:
    exp_frame = lo.experiment_frame(orders, experiments, experiment_id, END, pre_days)
    _problem = lo.arm_problem(exp_frame)
    if _problem is not None:
        print(f"Experiment '{experiment_id}': {_problem}. The sections that need its effect "
              "(the readout, power, ROI) are skipped; the rest of the chapter still runs.")
        ctx.skip("4 Holdout experiment", _problem)
    else:
        try:
            exp_res = lo.analyze_experiment(exp_frame, alpha, n_boot, seed)
        except ValueError as err:
            ctx.skip("4 Holdout experiment", f"cannot analyse the experiment: {err}")

# %%
# NBVAL_CHECK_OUTPUT
if exp_res is not None:
    r = exp_res
    print(f"arms: treatment {r.n_treatment:,}, holdout {r.n_holdout:,}; "
          f"SRM chi2 = {r.srm.chi2:.2f}, p = {r.srm.p_value:.3f} "
          f"({'MISMATCH - stop and investigate' if r.srm.mismatch else 'no mismatch'})")
    print(f"mean spend: treatment {r.mean_treatment:,.1f}, holdout {r.mean_holdout:,.1f} {CUR}")
    print(f"share with zero spend: {(exp_frame['spend'] == 0).mean():.1%}")

# %%
if exp_res is not None:
    r = exp_res
    lvl = f"{1 - alpha:.0%}"
    eff_tab = pd.DataFrame([
        ("relative spend, delta method", r.lift),
        ("relative spend, bootstrap", r.lift_bootstrap),
        ("relative spend, CUPED (primary)", r.lift_cuped),
        (f"absolute spend per customer ({CUR}), Welch", r.abs_effect),
        (f"absolute spend per customer ({CUR}), regression-adjusted", r.abs_effect_regression),
        ("repurchase: share buying again in the window (diff.)", r.buyer_rate_diff),
    ], columns=["estimate", "e"])
    eff_tab = pd.DataFrame({"estimate": [e.estimate for e in eff_tab["e"]],
                            f"{lvl} CI low": [e.ci_low for e in eff_tab["e"]],
                            f"{lvl} CI high": [e.ci_high for e in eff_tab["e"]],
                            "se": [e.se for e in eff_tab["e"]]},
                           index=[n for n in eff_tab["estimate"]])
    display(eff_tab.round(3))

# %%
# NBVAL_CHECK_OUTPUT
if exp_res is not None:
    r = exp_res
    print(f"effect on spend per customer: {pct(r.lift.estimate)} "
          f"(CI {pct(r.lift.ci_low)} to {pct(r.lift.ci_high)})")
    print(f"CUPED (primary): {pct(r.lift_cuped.estimate)} "
          f"(CI {pct(r.lift_cuped.ci_low)} to {pct(r.lift_cuped.ci_high)})")
    print(f"CUPED theta = {r.cuped_theta:.3f}; variance reduction {r.variance_reduction:.1%}; "
          f"CI width {r.lift.ci_high - r.lift.ci_low:.3f} -> "
          f"{r.lift_cuped.ci_high - r.lift_cuped.ci_low:.3f}")
    print(f"buyers in the window: treatment {r.buyer_rate_treatment:.1%}, "
          f"holdout {r.buyer_rate_holdout:.1%}")

# %% [markdown]
# **Power for the next test.** The minimum detectable effect (MDE) at 80 % power and the chosen
# alpha, for a range of arm sizes, with and without CUPED (the residual standard deviation after
# CUPED is smaller, so the same test detects smaller effects). Relative MDEs are against the
# holdout's mean spend.

# %%
if exp_res is not None:
    r = exp_res
    sizes = [1000, 2000, r.n_holdout, 5000, 10000, 20000]
    power_tab = pd.DataFrame({
        "customers per arm": sizes,
        "MDE raw": [st.mde(r.sd_spend, n, alpha, 0.8, r.mean_holdout) for n in sizes],
        "MDE with CUPED": [st.mde(r.sd_spend_cuped, n, alpha, 0.8, r.mean_holdout) for n in sizes],
    }).drop_duplicates("customers per arm").set_index("customers per arm")
    n_for_5 = st.sample_size_per_arm(r.sd_spend_cuped, 0.05 * r.mean_holdout, alpha, 0.8)
    mde_now = st.mde(r.sd_spend_cuped, r.n_holdout, alpha, 0.8, r.mean_holdout)
    display(power_tab.round(3))
    print(f"customers per arm to detect a 5% change with CUPED: {n_for_5:,}")

# %% [markdown]
# ## 5. Observational estimates — when there is no experiment
#
# Most programs never ran a holdout. The best one can do is compare members with similar
# non-members. Design (an *event study around enrolment*): members who joined at checkout between
# the launch (+ `horizon_days` of history) and `horizon_days` before the experiment; as comparison
# units, for every customer with a purchase in the same period made while *not yet* a member, one
# such purchase drawn at random as a pseudo-enrolment (the "was buying at that moment" condition
# members also meet). Customers who join later are valid comparisons before they join:
# eligibility must depend on the past only. Outcome: spend in the `horizon_days` after the event,
# excluding the event's own order; covariates: behaviour before it.
#
# - **Propensity-score weighting (ATT).** A logistic model of joining on the pre-event covariates
#   (log scale), weights e/(1 − e) for comparison customers; balance is checked with standardized
#   mean differences (|SMD| < 0.1 is the usual bar).
# - **Difference-in-differences.** Growth of spend from the pre to the post window for members
#   relative to the (weighted) comparison group, on the ratio scale. Its assumption — parallel
#   trends — is checked with a placebo on the two halves of the pre-period.
#
# Target: the effect of joining on members' spend in the 180 days after joining (truth:
# `members_att`), a relative change in spend per customer like the experiment's. Intervals
# bootstrap customers with the weights held fixed, so they leave out the uncertainty of the
# propensity model itself.

# %%
obs_res = None
if loyalty is None or LAUNCH is None:
    ctx.skip("5 Observational estimates", "this dataset has no loyalty membership")
else:
    ev_first = max(LAUNCH.normalize(), DATA_START + pd.Timedelta(days=horizon_days))
    ev_stop = (W_START if has_exp else END) - pd.Timedelta(days=horizon_days)
    if ev_stop <= ev_first + pd.Timedelta(days=30):
        ctx.skip("5 Observational estimates",
                 f"the data leave no enrolment period with {horizon_days} days before and after")
    else:
        ev = lo.enrolment_event_frame(orders, loyalty, exp_ids, ev_first, ev_stop, horizon_days,
                                      horizon_days, seed)
        try:
            obs_res = lo.observational_estimates(ev, alpha, max(100, n_boot // 3), seed)
            # the pitfall for comparison: controls who "never" joined in the following window
            ev_bad = lo.enrolment_event_frame(orders, loyalty, exp_ids, ev_first, ev_stop,
                                              horizon_days, horizon_days, seed, controls="never")
            obs_bad = lo.observational_estimates(ev_bad, alpha, 100, seed)
        except ValueError as err:
            obs_res = None
            ctx.skip("5 Observational estimates", f"cannot estimate: {err}")

# %%
# NBVAL_CHECK_OUTPUT
if obs_res is not None:
    print(f"events {ev_first:%Y-%m-%d} to {ev_stop - pd.Timedelta(days=1):%Y-%m-%d}: "
          f"{obs_res.n_treated:,} members, {obs_res.n_control:,} comparison units "
          f"(pseudo-enrolments)")
    print(f"largest |SMD|: unweighted {obs_res.smd['unweighted'].abs().max():.2f}, "
          f"weighted {obs_res.smd['weighted'].abs().max():.2f}")

# %%
if obs_res is not None:
    fig, ax = plt.subplots(figsize=(6.5, 4))
    smd = obs_res.smd.sort_values("unweighted")
    ax.scatter(smd["unweighted"], smd.index, label="unweighted", color="#c44e52")
    ax.scatter(smd["weighted"], smd.index, label="propensity-weighted", color="#4c72b0")
    for x in (-0.1, 0.1):
        ax.axvline(x, color="grey", ls="--", lw=1)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_title("Covariate balance before and after weighting")
    ax.set_xlabel("standardized mean difference (members − comparison)")
    ax.set_ylabel("pre-event covariate")
    ax.legend(loc="lower right")
    plt.show()

# %%
if obs_res is not None:
    o = obs_res
    obs_tab = pd.DataFrame({
        "estimate": [o.naive, o.ipw.estimate, o.did.estimate, o.ipw_did.estimate,
                     o.pretrend.estimate, obs_bad.ipw.estimate],
        "CI low": [np.nan, o.ipw.ci_low, o.did.ci_low, o.ipw_did.ci_low, o.pretrend.ci_low,
                   obs_bad.ipw.ci_low],
        "CI high": [np.nan, o.ipw.ci_high, o.did.ci_high, o.ipw_did.ci_high, o.pretrend.ci_high,
                    obs_bad.ipw.ci_high],
    }, index=["members vs comparison (unweighted)", "propensity-weighted (primary)",
              "difference-in-differences (unweighted)", "weighted difference-in-differences",
              "placebo: pre-trend (should be ~0)",
              "pitfall: propensity-weighted, 'never joined' controls"])
    display(obs_tab.round(3))
    print(f"largest single comparison weight: {o.max_weight_share:.1%} of the total")

# %% [markdown]
# The event-time profile: mean spend per customer in 30-day bins around the event, members vs the
# weighted comparison group (event orders excluded). Parallel lines before the event are what
# difference-in-differences needs.

# %%
if obs_res is not None:
    prof = lo.event_time_profile(orders, ev, obs_res.weights, horizon_days, horizon_days, 30)
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(prof.index + 15, prof["treated"], marker="o", label="members")
    ax.plot(prof.index + 15, prof["control"], marker="o", label="weighted comparison")
    ax.axvline(0, color="grey", ls="--", lw=1)
    ax.set_title("Spend around enrolment (event orders excluded)")
    ax.set_xlabel("days from enrolment / pseudo-enrolment (bin centre)")
    ax.set_ylabel(f"mean spend per customer per 30 days ({CUR})")
    ax.legend()
    plt.show()

# %% [markdown]
# How to read this. Members bought more than the comparison group already before the event, so
# the unweighted comparison mixes selection with effect; weighting on pre-event behaviour removes
# most of that gap. Unweighted difference-in-differences assumes both groups would have *grown*
# alike, which fails when the groups differ in level and in how fast customers drop out; weighting
# first and then differencing is more credible, and the placebo on the pre-period tests the
# parallel-trends assumption. The last row shows a design error that is easy to make: choosing as
# controls customers who *never* joined afterwards conditions on the future — every purchase is a
# chance to join, so staying a non-member selects customers who bought little afterwards — and
# inflates the estimate. Weighting can only balance what it sees: unmeasured differences between
# joiners and others remain, which is why the experiment stays the reference.

# %%
if obs_res is not None:
    o = obs_res
    _ests = [o.ipw.estimate, o.ipw_did.estimate]
    print(f"unweighted -> weighted: {o.naive:+.0%} -> {o.ipw.estimate:+.0%} "
          f"(weighted DiD {o.ipw_did.estimate:+.0%})")
    _agree = "agree within" if abs(_ests[0] - _ests[1]) < 0.15 else "differ by more than"
    print(f"weighted estimates {_agree} 15 points: {min(_ests):+.0%} to {max(_ests):+.0%}")
    print(f"placebo pre-trend: {o.pretrend.estimate:+.0%} (CI {o.pretrend.ci_low:+.0%} to "
          f"{o.pretrend.ci_high:+.0%}) - "
          + ("members' spend was already diverging before they joined"
             if o.pretrend.ci_low > 0 or o.pretrend.ci_high < 0 else
             "no detectable pre-trend (wide interval: a weak test)"
             if o.pretrend.ci_high - o.pretrend.ci_low > 0.3 else
             "consistent with parallel trends"))
    print(f"pitfall ('never joined' controls): {obs_bad.ipw.estimate:+.0%}")

# %% [markdown]
# ## 6. Truth check
#
# All estimates on one scale next to the planted truth (synthetic data only). The experiment's
# truth is the relative change in spend of the treatment arm over the window (actual vs the same
# customers simulated without the program); the observational target is `members_att` (members
# who joined at checkout, 180 days after joining).

# %%
true_effect = truth["experiment"]["true_effect"] if truth is not None and has_exp else None
if truth is None:
    ctx.skip("6 Truth check", "no planted truth (only synthetic data has one)")
else:
    rows = []
    if naive_value is not None:
        rows.append(("naive member vs non-member", naive_value, np.nan, np.nan))
    if exp_res is not None:
        rows.append(("experiment (delta)", exp_res.lift.estimate, exp_res.lift.ci_low,
                     exp_res.lift.ci_high))
        rows.append(("experiment (CUPED, primary)", exp_res.lift_cuped.estimate,
                     exp_res.lift_cuped.ci_low, exp_res.lift_cuped.ci_high))
    if obs_res is not None:
        rows.append(("observational: propensity-weighted", obs_res.ipw.estimate,
                     obs_res.ipw.ci_low, obs_res.ipw.ci_high))
        rows.append(("observational: weighted DiD", obs_res.ipw_did.estimate,
                     obs_res.ipw_did.ci_low, obs_res.ipw_did.ci_high))
        rows.append(("observational: pitfall, 'never joined' controls", obs_bad.ipw.estimate,
                     obs_bad.ipw.ci_low, obs_bad.ipw.ci_high))
    truth_tab = pd.DataFrame(rows, columns=["method", "estimate", "ci_low", "ci_high"])
    truth_tab = truth_tab.set_index("method")
    truth_tab["truth"] = [truth["members_att"]["true_effect"] if m.startswith("observational")
                          else truth["experiment"]["true_effect"] for m in truth_tab.index]
    _cols = [truth_tab[c] for c in ("estimate", "ci_low", "ci_high", "truth")]
    truth_tab["covers truth"] = [(lo_ <= t <= hi) if np.isfinite(lo_) else (e == t)
                                 for e, lo_, hi, t in zip(*_cols)]

# %%
# NBVAL_CHECK_OUTPUT
if truth is not None:
    print(truth_tab.round(2).to_string())
    if has_exp and END < pd.Timestamp(truth["experiment"]["end"]) + pd.Timedelta(days=1):
        print(f"note: the planted truth covers the window to {truth['experiment']['end']}; this "
              f"run stops at {ctx.analysis_date:%Y-%m-%d}, so the comparison is approximate")

# %%
if truth is not None and len(truth_tab):
    fig, ax = plt.subplots(figsize=(7.5, 4))
    y = np.arange(len(truth_tab))[::-1]
    err = np.vstack([truth_tab["estimate"] - truth_tab["ci_low"],
                     truth_tab["ci_high"] - truth_tab["estimate"]])
    ax.errorbar(truth_tab["estimate"], y, xerr=np.nan_to_num(err), fmt="o", capsize=4,
                color="#4c72b0", label=f"estimate ({1 - alpha:.0%} CI)")
    ax.scatter(truth_tab["truth"], y, marker="|", s=300, color="#c44e52", label="planted truth",
               zorder=3)
    ax.set_yticks(y, truth_tab.index)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_title("Program effect by method vs the planted truth")
    ax.set_xlabel("relative change in spend per customer (0.1 = +10%)")
    ax.set_ylabel("method")
    ax.legend(loc="lower right")
    plt.show()

# %% [markdown]
# ## 7. ROI — what the program returns
#
# Per member over the experiment window: **incremental gross margin** (the experiment's
# incremental spend × gross margin) minus **program costs** — points earned on *all* member spend
# (× point value × the share eventually redeemed; unredeemed-but-expected points are a liability
# on the balance sheet), the member discount on all member spend, and operating cost. The costs
# apply to spend that would have happened anyway; the margin only to the increment. ROI = net
# benefit / program cost. Payback = set-up cost / monthly net benefit of all current members
# (assuming the experiment's effect holds for them — the self-selected members' effect may differ).

# %%
roi_value = None
if exp_res is None:
    ctx.skip("7 ROI", "needs an incremental effect from a randomized holdout; a naive or "
             "observational effect would overstate the return")
else:
    r = exp_res
    months = (END - W_START).days / 30.44
    incr = r.mean_treatment * r.lift_cuped.estimate / (1 + r.lift_cuped.estimate)
    base_inp = lo.ROIInputs(incremental_spend=incr, member_spend=r.mean_treatment,
                            gross_margin=gross_margin, points_per_currency=points_per_currency,
                            point_value=point_value, redemption_rate=redemption_rate,
                            member_discount=member_discount,
                            operating_cost=operating_cost_month * months)
    roi_b = lo.roi_breakdown(base_inp)
    roi_value = roi_b["roi"]
    n_members_now = len(lo.members_at(loyalty, END)) if loyalty is not None else 0
    payback = lo.payback_months(setup_cost, roi_b["net_benefit"] / months * n_members_now)
    breakeven_margin = roi_b["program_cost"] / incr if incr > 0 else float("inf")
    pts = (loyalty[["points_earned", "points_redeemed"]].sum()
           if loyalty is not None and "points_earned" in loyalty else None)

# %%
# NBVAL_CHECK_OUTPUT
if roi_value is not None:
    print(f"per member over {months:.1f} months ({CUR}):")
    for k_, v_ in roi_b.items():
        print(f"  {k_:20s} {v_:10.2f}" if k_ != "roi" else f"  {k_:20s} {v_:+10.1%}")
    print(f"members now: {n_members_now:,}; payback of the set-up cost: "
          + (f"{payback:.1f} months" if np.isfinite(payback) else "never (net benefit <= 0)"))
    print(f"break-even gross margin: {breakeven_margin:.1%}")

# %%
if roi_value is not None and pts is not None:
    _red = pts["points_redeemed"] / pts["points_earned"] if pts["points_earned"] > 0 else np.nan
    _out = (pts["points_earned"] - pts["points_redeemed"]) * point_value * redemption_rate
    print(f"points to date: earned {pts['points_earned']:,.0f}, redeemed {_red:.1%}; expected cost "
          f"of outstanding points (liability) {_out:,.0f} {CUR} at the assumed redemption rate")

# %% [markdown]
# **Looking forward with CLV.** The window above is what the experiment measured. For the next
# 12 months, the treatment arm's predicted CLV (BG/NBD + Gamma-Gamma at the analysis date, as
# discounted gross margin) gives expected member spend; assuming the measured relative effect
# persists, the incremental part is spend × effect / (1 + effect), and the costs scale with
# 12 months of spend and operation.

# %%
roi_12 = None
if roi_value is not None:
    _treated_ids = exp_frame.index[exp_frame["treated"] == 1]
    _clv12, _clv12_method = lo.clv_by_customer(orders, END, 12, gross_margin,
                                               max_fit_customers=clv_fit_customers, seed=seed)
    _spend12 = float(_clv12.reindex(_treated_ids).fillna(0).mean() / gross_margin)
    _eff = r.lift_cuped.estimate
    roi_12 = lo.roi_breakdown(lo.ROIInputs(
        incremental_spend=_spend12 * _eff / (1 + _eff), member_spend=_spend12,
        gross_margin=gross_margin, points_per_currency=points_per_currency,
        point_value=point_value, redemption_rate=redemption_rate,
        member_discount=member_discount, operating_cost=operating_cost_month * 12))
    print(f"next 12 months per member ({_clv12_method}): expected spend {_spend12:,.0f} {CUR}, "
          f"incremental margin {roi_12['incremental_margin']:,.1f}, program cost "
          f"{roi_12['program_cost']:,.1f}, net {roi_12['net_benefit']:+,.1f} {CUR}, "
          f"ROI {roi_12['roi']:+.0%}")

# %% [markdown]
# **Sensitivity.** The inputs that matter most are uncertain: the effect (its interval), the
# gross margin and the redemption rate. The table and the plot show ROI over that grid.

# %%
if roi_value is not None:
    _eff = {"CI low": r.lift_cuped.ci_low, "estimate": r.lift_cuped.estimate,
            "CI high": r.lift_cuped.ci_high}
    _eff_abs = {k_: r.mean_treatment * v_ / (1 + v_) for k_, v_ in _eff.items()}
    margins = [round(gross_margin - 0.1, 2), gross_margin, round(gross_margin + 0.1, 2)]
    sens = lo.roi_sensitivity(base_inp, _eff_abs, margins, [0.5, redemption_rate, 0.9])
    sens_tab = sens.pivot_table(index=["effect", "gross_margin"], columns="redemption_rate",
                                values="roi", sort=False)
    display(sens_tab.round(2))
    fig, ax = plt.subplots(figsize=(7, 4))
    for lab in _eff_abs:
        s_ = sens[(sens["effect"] == lab) & (sens["redemption_rate"] == redemption_rate)]
        ax.plot(s_["gross_margin"], s_["roi"], marker="o", label=f"effect at {lab}")
    ax.axhline(0, color="black", lw=0.8)
    ax.set_title(f"ROI by gross margin and effect (redemption rate {redemption_rate:.0%})")
    ax.set_xlabel("gross margin (share of spend)")
    ax.set_ylabel("ROI (net benefit / program cost)")
    ax.legend()
    plt.show()

# %% [markdown]
# ## 8. Tier design (Guide 4.5)
#
# Tier distribution at the analysis date (customers who bought in the last year), migration
# between tiers from one year to the next, and a what-if for the gold threshold: how many
# customers and how much spend a threshold covers, what a gold benefit of 2 % of spend would cost,
# and how many silver customers sit just below it (within 20 %, the group a "spend X more to reach
# gold" nudge targets).

# %%
tiers_now = lo.trailing_tiers(orders, END, GOLD, BLACK)
tiers_now = tiers_now[tiers_now["trailing_spend"] > 0]
dist = tiers_now.groupby("tier", observed=False).agg(
    customers=("trailing_spend", "size"), spend=("trailing_spend", "sum"))
dist["share_customers"] = dist["customers"] / dist["customers"].sum()
dist["share_spend"] = dist["spend"] / dist["spend"].sum()

# %%
# NBVAL_CHECK_OUTPUT
print(dist[["customers", "share_customers", "share_spend"]].round(3).to_string())
if loyalty is not None and "tier" in loyalty:
    _m = loyalty.set_index("customer_id")["tier"]
    _calc = lo.trailing_tiers(orders, END, GOLD, BLACK, customers=_m.index)["tier"].astype(str)
    _agree = (_calc == _m.reindex(_calc.index)).mean()
    print(f"agreement with the loyalty table's tier: {_agree:.1%}")

# %%
if (END - DATA_START).days >= 700:  # about two years (the first order may come a few days in)
    mig = lo.tier_migration(orders, END, GOLD, BLACK)
    print("tier one year earlier (rows) -> tier now (columns), share of row:")
    display(mig.round(3))
else:
    ctx.skip("8 Tier migration", "needs about two years of orders (two trailing years)")

# %%
grid = sorted({round(GOLD * f, 2) for f in (0.5, 0.75, 1.0, 1.25, 1.5, 2.0)})
grid = [g for g in grid if g < BLACK]
what_if = lo.threshold_what_if(tiers_now["trailing_spend"], grid, BLACK, benefit_rate=0.02)
display(what_if.round(3))
fig, ax = plt.subplots(figsize=(7, 4))
ax.plot(what_if["gold_threshold"], what_if["share_gold_or_black"], marker="o",
        label="share of customers gold or black")
ax.plot(what_if["gold_threshold"], what_if["share_of_spend"], marker="o",
        label="their share of spend")
ax.axvline(GOLD, color="grey", ls="--", lw=1, label="current gold threshold")
ax.set_title("What-if: moving the gold threshold")
ax.set_xlabel(f"gold threshold (trailing-year spend, {CUR})")
ax.set_ylabel("share")
ax.set_ylim(0, 1)
ax.legend()
plt.show()

# %% [markdown]
# **Export for the CRM.** Each customer who bought in the last year with their trailing spend,
# tier, and the spend still needed to reach the next tier (the basis of a "spend X more to reach
# gold" message). Customer ids only — no personal data.

# %%
tier_export = tiers_now.assign(
    tier=tiers_now["tier"].astype(str),
    gap_to_next_tier=np.select([tiers_now["tier"].astype(str) == "silver",
                                tiers_now["tier"].astype(str) == "gold"],
                               [GOLD - tiers_now["trailing_spend"],
                                BLACK - tiers_now["trailing_spend"]], 0.0),
).round(2).sort_index()
tier_path = ctx.export_path("member_tiers.csv")
tier_export.to_csv(tier_path, index=True)

# %%
# NBVAL_CHECK_OUTPUT
print(f"wrote {len(tier_export):,} customers to {ctx.chapter}/{tier_path.name} with columns: "
      f"{', '.join(['customer_id'] + list(tier_export.columns))}")

# %% [markdown]
# ## 9. Recommendation for decision makers
#
# Written from the numbers above (it changes when the data or the assumptions change).

# %%
rec = lo.recommendation_text(
    naive=naive_value if naive_value is not None else float("nan"),
    effect=exp_res.lift_cuped if exp_res is not None else None,
    observational=obs_res.ipw.estimate if obs_res is not None else None,
    roi=roi_value, net_per_member=roi_b["net_benefit"] if roi_value is not None else None,
    payback=payback if roi_value is not None else None,
    breakeven_margin=breakeven_margin if roi_value is not None else None,
    mde_next=mde_now if exp_res is not None else None, currency=CUR,
    roi_forward=roi_12["roi"] if roi_12 is not None else None)
if naive_value is None:
    rec = ("This dataset has no loyalty program, so its incremental effect cannot be measured "
           "here. Value tiers show where spend concentrates (section 8); before launching a "
           "program, plan a randomized holdout so that its return can be measured rather than "
           "read off a member vs non-member comparison.")
print(rec)

# %% [markdown]
# ## Key ideas
#
# - "Members spend 2x" is a correlation: big spenders join programs. Behaviour from before the
#   program existed shows the gap without any program effect.
# - A randomized holdout measures what the program *adds*. Check the sample ratio first; use
#   intervals that are valid for spend with many zeros (ratio of means with the delta method or
#   the bootstrap); CUPED with pre-period spend narrows them for free.
# - Propensity weighting and difference-in-differences reduce self-selection bias but cannot
#   remove what the covariates do not measure; balance and pre-trend checks tell you when to
#   distrust them. Keep a permanent holdout instead.
# - Pick comparison customers by what was known *at the time* (not yet members); choosing those
#   who "never joined" afterwards conditions on the future and inflates the effect.
# - ROI counts the program's costs on *all* member spend (points liability, discounts) against the
#   margin on the *incremental* spend only.
# - NPS is an estimate with an interval, and it is worth tracking because low scores predict
#   churn — not because a single number crosses 50.
#
# ## Exercises
#
# 1. Change `gross_margin` and `redemption_rate`: at which combination does the program break
#    even? Which lever would you pull first?
# 2. Re-run the experiment analysis with `pre_days = 90`. How do θ, the variance reduction and the
#    interval change, and why?
# 3. Extend the propensity model: join `device` and `acquisition_channel` from `ds.customers` to
#    `lo.propensity_design(ev)` (one-hot), refit with `st.propensity_scores` and
#    `st.att_weights`. Does balance improve, and does the estimate move towards the experiment?
# 4. Use the power table: how long (at the current inflow of eligible customers) would a test
#    need to run to detect a 5 % change in spend?
# 5. Move the gold threshold so that about 10 % of active customers are gold or black. What does
#    the benefit cost, and how many customers are within reach of the threshold?
# 6. Is the NPS gap between gold and silver members larger than its uncertainty? Compute the
#    difference of the two NPS values with a standard error from their two intervals
#    (independent samples), and compare with the guide's "NPS above 50" benchmark.

# %% [markdown]
# ## Headline metrics
#
# Recorded for the runner's `metrics.json` (names fixed by the chapter's issue; `None` where not
# computed). Effects are relative changes in spend per customer: `naive_effect` and the experiment
# over the experiment window, `observational_effect` over the 180 days after joining; `roi` is net
# benefit / program cost per member over the experiment window.

# %%
ctx.record_metrics({
    "nps": nps_value,
    "naive_effect": naive_value,
    "experiment_effect": exp_res.lift_cuped.estimate if exp_res is not None else None,
    "experiment_ci_low": exp_res.lift_cuped.ci_low if exp_res is not None else None,
    "experiment_ci_high": exp_res.lift_cuped.ci_high if exp_res is not None else None,
    "observational_effect": obs_res.ipw.estimate if obs_res is not None else None,
    "true_effect": true_effect,
    "roi": roi_value,
})
