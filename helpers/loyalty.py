"""Loyalty-program analytics (chapter 06): loyalty measures, the naive member comparison, the
randomized holdout, observational estimates, ROI and tier design.

All functions take contract tables (``orders`` with ``amount``; ``loyalty``, ``experiments``,
``surveys`` when present) and explicit dates, never "now". Spend is the amount paid
(``orders.amount``, before returns), the scale on which the synthetic truth is defined.

The common scale for effects is the **relative change in spend per customer over a window**:
``mean spend of the treated / mean spend they would have had without the program − 1``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from helpers import stats as st
from helpers.ids import isin

TIER_ORDER = ("silver", "gold", "black")
DAY = pd.Timedelta(days=1)


# --------------------------------------------------------------------------------------------
# basic per-customer aggregates


def spend_between(orders: pd.DataFrame, start: pd.Timestamp | str, end: pd.Timestamp | str,
                  index: pd.Index | None = None) -> pd.Series:
    """Spend per customer with ``start <= order_ts < end`` (reindexed to ``index`` with 0)."""
    m = (orders["order_ts"] >= pd.Timestamp(start)) & (orders["order_ts"] < pd.Timestamp(end))
    s = orders.loc[m].groupby("customer_id")["amount"].sum()
    return s.reindex(index, fill_value=0.0) if index is not None else s


def orders_between(orders: pd.DataFrame, start: pd.Timestamp | str, end: pd.Timestamp | str,
                   index: pd.Index | None = None) -> pd.Series:
    """Number of orders per customer with ``start <= order_ts < end``."""
    m = (orders["order_ts"] >= pd.Timestamp(start)) & (orders["order_ts"] < pd.Timestamp(end))
    s = orders.loc[m].groupby("customer_id").size().astype(float)
    return s.reindex(index, fill_value=0.0) if index is not None else s


def members_at(loyalty: pd.DataFrame | None, ts: pd.Timestamp | str) -> pd.Index:
    """Customers enrolled strictly before ``ts``."""
    if loyalty is None or loyalty.empty:
        return pd.Index([], name="customer_id")
    return pd.Index(loyalty.loc[loyalty["enrolled_at"] < pd.Timestamp(ts), "customer_id"].unique(),
                    name="customer_id")


def experiment_customers(experiments: pd.DataFrame | None, experiment_id: str,
                         arm: str | None = None) -> pd.Index:
    if experiments is None or experiments.empty:
        return pd.Index([], name="customer_id")
    e = experiments[experiments["experiment_id"] == experiment_id]
    if arm is not None:
        e = e[e["arm"] == arm]
    return pd.Index(e["customer_id"].unique(), name="customer_id")


# --------------------------------------------------------------------------------------------
# tiers


def assign_tiers(spend: pd.Series, gold: float, black: float) -> pd.Series:
    """Tier from trailing spend: silver below ``gold``, gold below ``black``, black above."""
    if not gold < black:
        raise ValueError(f"need gold < black threshold; got {gold}, {black}")
    t = np.where(spend >= black, "black", np.where(spend >= gold, "gold", "silver"))
    return pd.Series(pd.Categorical(t, categories=TIER_ORDER, ordered=True), index=spend.index,
                     name="tier")


def quantile_thresholds(trailing_spend: pd.Series, q_gold: float = 0.80,
                        q_black: float = 0.97) -> tuple[float, float]:
    """Data-driven thresholds: quantiles of trailing-year spend among customers who spent."""
    s = trailing_spend[trailing_spend > 0]
    if s.empty:
        raise ValueError("no customer spent in the trailing year: cannot set tier thresholds")
    g, b = (float(x) for x in np.quantile(s, [q_gold, q_black]))
    return round(g, 2), round(max(b, g * 1.01), 2)


def trailing_tiers(orders: pd.DataFrame, at: pd.Timestamp, gold: float, black: float,
                   days: int = 365, customers: pd.Index | None = None) -> pd.DataFrame:
    """Trailing-``days`` spend and the tier it implies at ``at`` (exclusive), for customers who
    had bought before ``at`` (or for ``customers``)."""
    if customers is None:
        customers = pd.Index(orders.loc[orders["order_ts"] < at, "customer_id"].unique(),
                             name="customer_id").sort_values()
    sp = spend_between(orders, at - pd.Timedelta(days=days), at, customers)
    return pd.DataFrame({"trailing_spend": sp, "tier": assign_tiers(sp, gold, black)})


def tier_migration(orders: pd.DataFrame, at: pd.Timestamp, gold: float, black: float,
                   days: int = 365) -> pd.DataFrame:
    """Row-normalised migration matrix: tier one year before ``at`` (rows) → tier at ``at``
    (columns), plus a ``lapsed`` column for customers with no spend in the later year."""
    before = trailing_tiers(orders, at - pd.Timedelta(days=days), gold, black, days)
    before = before[before["trailing_spend"] > 0]
    after = trailing_tiers(orders, at, gold, black, days, customers=before.index)
    to = after["tier"].astype(str).where(after["trailing_spend"] > 0, "lapsed")
    tab = pd.crosstab(before["tier"].astype(str), to, normalize="index")
    cols = [c for c in (*TIER_ORDER, "lapsed") if c in tab.columns]
    rows = [r for r in TIER_ORDER if r in tab.index]
    return tab.reindex(index=rows, columns=cols, fill_value=0.0)


def threshold_what_if(trailing_spend: pd.Series, thresholds: list[float], black: float,
                      benefit_rate: float = 0.02) -> pd.DataFrame:
    """What-if of moving the gold threshold: share of active customers in gold or above, their
    share of trailing spend, the cost of a gold benefit of ``benefit_rate`` × spend, and the number
    of silver customers within 20 % below the threshold (the "nudgeable" group)."""
    s = trailing_spend[trailing_spend > 0]
    rows = []
    for g in thresholds:
        gold_up = s >= g
        rows.append({
            "gold_threshold": g,
            "share_gold_or_black": float(gold_up.mean()),
            "share_of_spend": float(s[gold_up].sum() / s.sum()),
            "benefit_cost": float(benefit_rate * s[gold_up & (s < black)].sum()),
            "near_threshold": int(((s >= 0.8 * g) & (s < g)).sum()),
        })
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# loyalty measures


def customer_segments(orders: pd.DataFrame, loyalty: pd.DataFrame | None, at: pd.Timestamp,
                      gold: float, black: float) -> pd.DataFrame:
    """Per customer who had bought before ``at``: trailing-year spend, value tier and a
    ``segment`` = ``member-<tier>`` for members at ``at`` and ``non-member`` otherwise (or just
    the value tier when there is no loyalty table)."""
    t = trailing_tiers(orders, at, gold, black)
    mem = members_at(loyalty, at)
    if loyalty is None or loyalty.empty:
        t["segment"] = t["tier"].astype(str)
        t["member"] = False
    else:
        t["member"] = isin(t.index, mem)
        t["segment"] = np.where(t["member"], "member-" + t["tier"].astype(str), "non-member")
    return t


def segment_outcomes(orders: pd.DataFrame, segments: pd.DataFrame, at: pd.Timestamp,
                     horizon_days: int = 180, margin: float = 0.3) -> pd.DataFrame:
    """Loyalty measures by segment, measured *after* ``at`` so nothing leaks:

    * ``repurchase_rate``: share with two or more orders in the trailing year (复购率);
    * ``churn_rate``: share of customers active in the trailing year with no order in the next
      ``horizon_days`` (with a Wilson 95 % interval);
    * ``value_hist``: historical value = trailing-year spend × ``margin`` (gross margin, CNY);
    * ``value_next``: realised gross margin in the next ``horizon_days``.
    """
    idx = segments.index
    n_tr = orders_between(orders, at - pd.Timedelta(days=365), at, idx)
    nxt = orders_between(orders, at, at + pd.Timedelta(days=horizon_days), idx)
    nxt_spend = spend_between(orders, at, at + pd.Timedelta(days=horizon_days), idx)
    df = segments.assign(repeat=n_tr >= 2, active=n_tr >= 1, churned=(n_tr >= 1) & (nxt == 0),
                         value_next=nxt_spend * margin)
    rows = []
    for seg, g in df.groupby("segment", sort=True):
        act = g[g["active"]]
        ci = st.proportion_ci(int(act["churned"].sum()), len(act)) if len(act) else None
        rows.append({
            "segment": seg, "customers": len(g),
            "repurchase_rate": float(g["repeat"].mean()),
            "churn_rate": ci.estimate if ci else np.nan,
            "churn_ci_low": ci.ci_low if ci else np.nan,
            "churn_ci_high": ci.ci_high if ci else np.nan,
            "value_hist": float(g["trailing_spend"].mean() * margin),
            "value_next": float(g["value_next"].mean()),
        })
    return pd.DataFrame(rows).set_index("segment")


def clv_by_customer(orders: pd.DataFrame, at: pd.Timestamp, horizon_months: int = 6,
                    margin: float = 0.3, discount_rate: float = 0.10,
                    max_fit_customers: int | None = 20_000, seed: int = 0
                    ) -> tuple[pd.Series, str]:
    """Expected gross margin of each customer over the next ``horizon_months`` from history
    up to ``at`` (exclusive): BG/NBD + Gamma-Gamma from :mod:`helpers.clv` (chapter 02). When the
    models cannot be fitted (too little repeat data) it falls back to the historical value
    (trailing-year spend × margin × horizon / 12). Returns the series and the method used.

    With more than ``max_fit_customers`` customers the two models' four + three parameters are
    estimated on a seeded random sample of that many customers (``None``: all), and the CLV is
    then computed for *every* customer. The parameters are population averages, so a sample of
    tens of thousands estimates them with a small error while the fit stays bounded in time (the
    likelihood of a million customers is also numerically harder to maximise)."""
    hist = orders[orders["order_ts"] < at]
    try:
        from helpers import clv

        summ = clv.rfm_summary(hist, observation_end=at - DAY, time_unit="W")
        fit = summ
        if max_fit_customers is not None and len(summ) > int(max_fit_customers):
            pick = np.random.default_rng(seed).choice(len(summ), int(max_fit_customers),
                                                      replace=False)
            fit = summ.iloc[np.sort(pick)]
        bg = clv.BetaGeoModel().fit(fit["frequency"], fit["recency"], fit["T"])
        gg = clv.GammaGammaModel().fit(fit["frequency"], fit["monetary_value"])
        if not (bg.converged_ and gg.converged_) or gg.params_["q"] <= 1:
            raise ValueError("CLV models did not converge")
        val = clv.customer_clv(bg, gg, summ, horizon=horizon_months, discount_rate=discount_rate,
                               margin=margin, time_unit="W")
        method = "BG/NBD + Gamma-Gamma (helpers.clv)"
        if len(fit) < len(summ):
            method += f", fitted on a random {len(fit):,} of {len(summ):,} customers"
        return val.rename("clv"), method
    except (ImportError, ValueError, RuntimeError, np.linalg.LinAlgError):
        idx = pd.Index(hist["customer_id"].unique(), name="customer_id").sort_values()
        sp = spend_between(orders, at - pd.Timedelta(days=365), at, idx)
        return (sp * margin * horizon_months / 12).rename("clv"), "historical value (fallback)"


def survey_scores_by_segment(surveys: pd.DataFrame, segments: pd.DataFrame, start: pd.Timestamp,
                             end: pd.Timestamp) -> pd.DataFrame:
    """NPS (with 95 % CI) and mean CSAT by segment for answers with ``start <= survey_ts < end``."""
    s = surveys[(surveys["survey_ts"] >= start) & (surveys["survey_ts"] < end)]
    s = s.join(segments["segment"], on="customer_id", how="inner")
    rows = []
    for seg, g in s.groupby("segment", sort=True):
        r = st.nps(g["nps"])
        rows.append({"segment": seg, "answers": r.n, "nps": r.estimate, "nps_ci_low": r.ci_low,
                     "nps_ci_high": r.ci_high,
                     "csat": float(g["csat"].mean()) if "csat" in g else np.nan})
    return pd.DataFrame(rows).set_index("segment")


def nps_group(score: pd.Series) -> pd.Series:
    """promoter (9-10), passive (7-8), detractor (0-6)."""
    return pd.Series(np.where(score >= 9, "promoter", np.where(score >= 7, "passive", "detractor")),
                     index=score.index)


def nps_retention(surveys: pd.DataFrame, orders: pd.DataFrame, start: pd.Timestamp,
                  end: pd.Timestamp, horizon_days: int = 180) -> tuple[pd.DataFrame, float]:
    """Does the NPS answer predict later retention?

    For each customer's *last* answer with ``start <= survey_ts < end`` (``end`` must leave
    ``horizon_days`` of data after it), the outcome is "bought again within ``horizon_days`` after
    answering". Returns the retention rate by NPS group with Wilson intervals, and the AUC of the
    raw 0–10 score for predicting retention (0.5 = no information).
    """
    from sklearn.metrics import roc_auc_score

    s = surveys[(surveys["survey_ts"] >= start) & (surveys["survey_ts"] < end)]
    s = s.sort_values(["customer_id", "survey_ts"]).groupby("customer_id").tail(1)
    o = orders[["customer_id", "order_ts"]].merge(s[["customer_id", "survey_ts"]], on="customer_id")
    after = o[(o["order_ts"] > o["survey_ts"])
              & (o["order_ts"] <= o["survey_ts"] + pd.Timedelta(days=horizon_days))]
    s = s.assign(retained=isin(s["customer_id"], after["customer_id"]), group=nps_group(s["nps"]))
    rows = []
    for grp in ("detractor", "passive", "promoter"):
        g = s[s["group"] == grp]
        if len(g) == 0:
            continue
        ci = st.proportion_ci(int(g["retained"].sum()), len(g))
        rows.append({"group": grp, "customers": len(g), "retention": ci.estimate,
                     "ci_low": ci.ci_low, "ci_high": ci.ci_high})
    auc = (float(roc_auc_score(s["retained"], s["nps"])) if s["retained"].nunique() == 2
           else float("nan"))
    return pd.DataFrame(rows).set_index("group"), auc


# --------------------------------------------------------------------------------------------
# naive comparison and self-selection


def naive_comparison(orders: pd.DataFrame, loyalty: pd.DataFrame, start: pd.Timestamp,
                     end: pd.Timestamp, exclude: pd.Index | None = None) -> pd.DataFrame:
    """Members (enrolled before ``start``) vs non-members (bought before ``start``, not members):
    spend per customer and share buying in ``[start, end)``. ``exclude``: customers to leave out
    (e.g. the experiment's participants, whose membership was randomized)."""
    base = pd.Index(orders.loc[orders["order_ts"] < start, "customer_id"].unique())
    if exclude is not None:
        base = base.difference(exclude)
    mem = base.intersection(members_at(loyalty, start))
    y = spend_between(orders, start, end, base)
    n = orders_between(orders, start, end, base)
    grp = pd.Series(np.where(isin(base, mem), "member", "non-member"), index=base)
    df = pd.DataFrame({"group": grp, "spend": y, "buyer": n > 0})
    out = df.groupby("group").agg(customers=("spend", "size"), spend_per_customer=("spend", "mean"),
                                  buyer_rate=("buyer", "mean"))
    return out


def naive_effect(table: pd.DataFrame) -> float:
    """The naive "members spend x times more" as a relative difference (member / non-member − 1)."""
    return float(table.loc["member", "spend_per_customer"]
                 / table.loc["non-member", "spend_per_customer"] - 1)


def pre_program_comparison(orders: pd.DataFrame, loyalty: pd.DataFrame, launch: pd.Timestamp,
                           joined_by: pd.Timestamp, days: int = 90,
                           exclude: pd.Index | None = None) -> pd.DataFrame:
    """Self-selection check: customers who bought in the ``days`` before the launch, split by
    whether they later joined (before ``joined_by``). Their spend *before the program existed*
    cannot be an effect of the program."""
    start = launch - pd.Timedelta(days=days)
    base = pd.Index(orders.loc[(orders["order_ts"] >= start) & (orders["order_ts"] < launch),
                               "customer_id"].unique())
    if exclude is not None:
        base = base.difference(exclude)
    later = isin(base, members_at(loyalty, joined_by))
    y = spend_between(orders, start, launch, base)
    n = orders_between(orders, start, launch, base)
    df = pd.DataFrame({"group": np.where(later, "future member", "never member (by then)"),
                       "spend": y.to_numpy(), "orders": n.to_numpy()})
    return df.groupby("group").agg(customers=("spend", "size"),
                                   spend_per_customer=("spend", "mean"),
                                   orders_per_customer=("orders", "mean"))


# --------------------------------------------------------------------------------------------
# randomized holdout


def experiment_frame(orders: pd.DataFrame, experiments: pd.DataFrame, experiment_id: str,
                     end: pd.Timestamp, pre_days: int = 181) -> pd.DataFrame:
    """One row per assigned customer: arm, outcome spend/orders in ``[assigned_at, end)`` and
    pre-period covariates over ``[assigned_at − pre_days, assigned_at)`` (measured before
    assignment, so the treatment cannot affect them)."""
    e = experiments[experiments["experiment_id"] == experiment_id]
    if e.empty:
        raise ValueError(f"experiment {experiment_id!r} not found")
    start = pd.Timestamp(e["assigned_at"].min())
    if e["assigned_at"].nunique() > 1:
        raise ValueError("experiment_frame expects a single assignment date")
    e = e.drop_duplicates("customer_id").set_index("customer_id").sort_index()
    idx = e.index
    pre0 = start - pd.Timedelta(days=pre_days)
    last = orders.loc[orders["order_ts"] < start].groupby("customer_id")["order_ts"].max()
    first = orders.groupby("customer_id")["order_ts"].min()
    return pd.DataFrame({
        "arm": e["arm"],
        "treated": (e["arm"] == "treatment").astype(int),
        "spend": spend_between(orders, start, end, idx),
        "n_orders": orders_between(orders, start, end, idx),
        "pre_spend": spend_between(orders, pre0, start, idx),
        "pre_orders": orders_between(orders, pre0, start, idx),
        "pre_spend_all": spend_between(orders, orders["order_ts"].min(), start, idx),
        "days_since_last": ((start - last.reindex(idx)).dt.days).fillna(9999).clip(upper=9999)
                            .astype(float),
        "tenure_days": ((start - first.reindex(idx)).dt.days).fillna(0).clip(lower=0).astype(float),
    }, index=idx)


def arm_problem(frame: pd.DataFrame, min_per_arm: int = 2) -> str | None:
    """Why an experiment frame (from :func:`experiment_frame`) cannot be analysed as a two-arm
    test, in words for the reader, or ``None`` when both arms have at least ``min_per_arm``
    customers. Catches an experiment that has only a treatment or only a holdout group."""
    counts = frame["arm"].astype(str).value_counts().sort_index()
    listed = ", ".join(f"{arm} {n:,}" for arm, n in counts.items()) or "no customers"
    n_t = int((frame["treated"] == 1).sum())
    n_h = int(len(frame) - n_t)
    if n_t == 0 or n_h == 0:
        missing = "treatment" if n_t == 0 else "holdout (control)"
        return (f"the experiment has only one arm ({listed}); with no {missing} group there is "
                "nothing to compare, so the program's effect cannot be measured from it")
    if min(n_t, n_h) < min_per_arm:
        return (f"an arm is too small to analyse ({listed}); each arm needs at least "
                f"{min_per_arm} customers")
    return None


@dataclass(frozen=True)
class ExperimentResult:
    srm: st.SRMResult
    n_treatment: int
    n_holdout: int
    mean_treatment: float
    mean_holdout: float
    lift: st.Estimate  # relative change in spend per customer, delta method
    lift_bootstrap: st.Estimate
    lift_cuped: st.Estimate  # CUPED-adjusted ratio of means (delta method)
    cuped_theta: float
    variance_reduction: float
    abs_effect: st.Estimate  # Welch difference of mean spend
    abs_effect_regression: st.Estimate  # Lin regression adjustment, HC2
    buyer_rate_diff: st.Estimate  # share buying at least once, treatment − holdout
    buyer_rate_treatment: float
    buyer_rate_holdout: float
    sd_spend: float  # pooled within-arm sd of spend (for power)
    sd_spend_cuped: float


def analyze_experiment(frame: pd.DataFrame, alpha: float = 0.05, n_boot: int = 1000,
                       seed: int = 0) -> ExperimentResult:
    """Everything a holdout readout needs: SRM, relative and absolute effects on spend with delta,
    bootstrap, CUPED and regression-adjusted intervals, and the effect on the buyer rate."""
    problem = arm_problem(frame)
    if problem is not None:
        raise ValueError(problem)
    t = frame["treated"].to_numpy() == 1
    y = frame["spend"].to_numpy(float)
    srm = st.srm_test([int(t.sum()), int((~t).sum())])
    lift = st.ratio_of_means_ci(y[t], y[~t], alpha)
    boot = st.ratio_of_means_ci(y[t], y[~t], alpha, method="bootstrap", n_boot=n_boot, seed=seed)
    cu = st.cuped(y, frame["pre_spend"].to_numpy(float), t)
    lift_c = st.ratio_of_means_ci(cu.y_adjusted[t], cu.y_adjusted[~t], alpha)
    covs = frame[["pre_spend", "pre_orders", "pre_spend_all", "days_since_last"]].to_numpy(float)
    reg = st.regression_adjusted_effect(y, t.astype(float), covs, alpha)
    b = frame["n_orders"].to_numpy() > 0
    bdiff = st.diff_proportions_ci(int(b[t].sum()), int(t.sum()), int(b[~t].sum()),
                                   int((~t).sum()), alpha)
    resid = y - np.where(t, y[t].mean(), y[~t].mean())
    resid_c = cu.y_adjusted - np.where(t, cu.y_adjusted[t].mean(), cu.y_adjusted[~t].mean())
    return ExperimentResult(
        srm=srm, n_treatment=int(t.sum()), n_holdout=int((~t).sum()),
        mean_treatment=float(y[t].mean()), mean_holdout=float(y[~t].mean()),
        lift=lift, lift_bootstrap=boot, lift_cuped=lift_c, cuped_theta=cu.theta,
        variance_reduction=cu.variance_reduction,
        abs_effect=st.mean_diff_ci(y[t], y[~t], alpha), abs_effect_regression=reg,
        buyer_rate_diff=bdiff, buyer_rate_treatment=float(b[t].mean()),
        buyer_rate_holdout=float(b[~t].mean()),
        sd_spend=float(resid.std(ddof=2)), sd_spend_cuped=float(resid_c.std(ddof=2)),
    )


# --------------------------------------------------------------------------------------------
# observational: enrolment event study with propensity weights and difference-in-differences


def enrolment_event_frame(orders: pd.DataFrame, loyalty: pd.DataFrame,
                          exclude: pd.Index | None, first_event: pd.Timestamp,
                          last_event: pd.Timestamp, pre_days: int = 180, post_days: int = 180,
                          seed: int = 0, controls: str = "not_yet") -> pd.DataFrame:
    """Units for an observational estimate of joining the program at checkout.

    *Treated*: members who enrolled with ``first_event <= enrolled_at < last_event`` (members join
    at a checkout, so the event is a purchase). *Controls*: for each customer with purchases in the
    same date range made while *not (yet) a member*, one such purchase drawn at random (seeded) as
    a pseudo-enrolment — the same "was buying at that moment" condition as the treated.

    ``controls="not_yet"`` (default) allows customers who join later (including this design's
    treated, at purchases before they joined) as controls: eligibility depends only on the past.
    ``controls="never"`` keeps only customers who are still non-members ``post_days`` after their
    pseudo-event — a common mistake: it conditions on the future (every purchase is a chance to
    join, so staying a non-member selects customers who bought little afterwards) and inflates the
    estimated effect. ``exclude`` removes customers whose membership was randomized.

    One row per unit, indexed by ``unit`` (``<customer_id>:m`` treated, ``<customer_id>:c``
    control), with ``customer_id``; spend in ``[event − pre_days, event)`` (``pre`` and its halves
    ``pre1``/``pre2``), spend in ``(event, event + post_days]`` (``post``), both excluding the
    event's own order, and pre-event covariates for the propensity model. ``last_event +
    post_days`` must lie within the data and before any later intervention (the experiment).
    """
    if controls not in ("not_yet", "never"):
        raise ValueError(f"controls must be 'not_yet' or 'never'; got {controls!r}")
    o = orders[["customer_id", "order_ts", "amount"]]
    if exclude is not None:
        o = o[~isin(o["customer_id"], exclude)]
    enrol = loyalty.drop_duplicates("customer_id").set_index("customer_id")["enrolled_at"]
    in_range = (o["order_ts"] >= first_event) & (o["order_ts"] < last_event)
    tr = enrol[(enrol >= first_event) & (enrol < last_event)]
    tr = tr[isin(tr.index, o["customer_id"])]
    cand = o[in_range].copy()
    enr = cand["customer_id"].map(enrol)
    if controls == "not_yet":  # a purchase made while not a member (the enrolling order excluded)
        ok = enr.isna() | (cand["order_ts"] < enr - DAY)
    else:
        ok = enr.isna() | (enr > cand["order_ts"] + pd.Timedelta(days=post_days))
        ok &= ~isin(cand["customer_id"], tr.index)
    cand = cand[ok]
    rng = np.random.default_rng(seed)
    cand = cand.assign(_u=rng.random(len(cand))).sort_values(["customer_id", "_u"])
    ctl = cand.groupby("customer_id")["order_ts"].first()
    ev = pd.concat([
        pd.DataFrame({"customer_id": tr.index, "event_ts": tr.to_numpy(), "treated": 1},
                     index=tr.index + ":m"),
        pd.DataFrame({"customer_id": ctl.index, "event_ts": ctl.to_numpy(), "treated": 0},
                     index=ctl.index + ":c"),
    ])
    ev.index.name = "unit"
    m = o.merge(ev.reset_index(), on="customer_id")
    dt = (m["order_ts"] - m["event_ts"]) / DAY
    # the enrolling (event) order: the unit's order closest to the event, within one day (an
    # export may stamp enrolment and order a few hours apart); the event time becomes that
    # order's time, and the order itself belongs to neither the pre nor the post window
    near = m.assign(_a=dt.abs())[dt.abs() <= 1]
    ev_ord = near.sort_values(["unit", "_a", "order_ts"]).groupby("unit").head(1)
    ev.loc[ev_ord["unit"].to_numpy(), "event_ts"] = ev_ord["order_ts"].to_numpy()
    m = m.drop(index=ev_ord.index).drop(columns="event_ts").merge(
        ev[["event_ts"]], left_on="unit", right_index=True)
    dt = (m["order_ts"] - m["event_ts"]) / DAY

    def agg(mask: pd.Series, how: str = "sum") -> pd.Series:
        g = m.loc[mask].groupby("unit")["amount"]
        return (g.sum() if how == "sum" else g.size()).reindex(ev.index, fill_value=0).astype(float)

    pre = (dt < 0) & (dt >= -pre_days)
    first = ev["customer_id"].map(o.groupby("customer_id")["order_ts"].min())
    last_before = m.loc[dt < 0].groupby("unit")["order_ts"].max().reindex(ev.index)
    out = pd.DataFrame({
        "customer_id": ev["customer_id"],
        "treated": ev["treated"],
        "event_ts": ev["event_ts"],
        "pre": agg(pre),
        "pre1": agg(pre & (dt < -pre_days / 2)),
        "pre2": agg(pre & (dt >= -pre_days / 2)),
        "post": agg((dt > 0) & (dt <= post_days)),
        "pre_orders": agg(pre, how="size"),
        "all_before": agg(dt < 0),
        "event_amount": ev_ord.set_index("unit")["amount"].reindex(ev.index).fillna(0.0),
        "tenure_days": ((ev["event_ts"] - first) / DAY).clip(lower=0),
        "days_since_prev": ((ev["event_ts"] - last_before) / DAY).fillna(9999.0),
        "event_month": (ev["event_ts"].dt.year * 12 + ev["event_ts"].dt.month).astype(float),
    })
    return out.sort_index()


PS_COVARIATES = ("pre", "pre1", "pre2", "pre_orders", "all_before", "event_amount",
                 "tenure_days", "days_since_prev")


def propensity_design(frame: pd.DataFrame) -> pd.DataFrame:
    """Covariates for the propensity model, all measured before the event: log(1 + x) of the
    pre-event spend and order measures (spend is heavy-tailed; on the log scale a linear logit
    fits it and a few big spenders do not dominate), a first-purchase flag and the calendar month
    of the event. Balance is checked on the same columns."""
    X = pd.DataFrame({f"log_{c}": np.log1p(frame[c].clip(lower=0).astype(float))
                      for c in PS_COVARIATES if c != "days_since_prev"}, index=frame.index)
    X["log_days_since_prev"] = np.log1p(frame["days_since_prev"].clip(0, 400).astype(float))
    X["first_purchase_event"] = (frame["all_before"] == 0).astype(float)
    X["event_month"] = frame["event_month"].astype(float)
    return X


@dataclass(frozen=True)
class ObservationalResult:
    naive: float  # post-window ratio of means, unweighted
    ipw: st.Estimate  # ATT-weighted ratio of post-window means
    did: st.Estimate  # unweighted ratio DiD
    ipw_did: st.Estimate  # ATT-weighted ratio DiD
    pretrend: st.Estimate  # placebo: ratio DiD of pre2 vs pre1 (weighted); ~0 if trends parallel
    smd: pd.DataFrame  # before/after weighting
    n_treated: int
    n_control: int
    max_weight_share: float  # largest control weight / sum of control weights
    weights: np.ndarray  # ATT weights of the frame's rows (1 for treated)


def observational_estimates(frame: pd.DataFrame, alpha: float = 0.05, n_boot: int = 300,
                            seed: int = 0, clip: float = 0.01) -> ObservationalResult:
    """Propensity-score (ATT) weighting and difference-in-differences on an event frame."""
    t = frame["treated"].to_numpy() == 1
    if t.sum() < 10 or (~t).sum() < 10:
        raise ValueError("need at least 10 treated and 10 control units for observational "
                         "estimates")
    X = propensity_design(frame)
    ps = st.propensity_scores(X, t, seed=seed)
    w = st.att_weights(ps, t, clip=clip)
    smd = pd.DataFrame({
        "unweighted": st.standardized_mean_differences(X, t),
        "weighted": st.standardized_mean_differences(X, t, w),
    })
    post = frame["post"].to_numpy(float)
    pre = frame["pre"].to_numpy(float)
    naive = float(post[t].mean() / post[~t].mean() - 1)
    ipw = st.ratio_of_means_ci(post[t], post[~t], alpha, w_t=w[t], w_c=w[~t])
    did = st.did_ratio(pre[t], post[t], pre[~t], post[~t], alpha=alpha, n_boot=n_boot, seed=seed)
    ipw_did = st.did_ratio(pre[t], post[t], pre[~t], post[~t], w[t], w[~t], alpha=alpha,
                           n_boot=n_boot, seed=seed)
    p1, p2 = frame["pre1"].to_numpy(float), frame["pre2"].to_numpy(float)
    pretrend = st.did_ratio(p1[t], p2[t], p1[~t], p2[~t], w[t], w[~t], alpha=alpha,
                            n_boot=n_boot, seed=seed)
    return ObservationalResult(naive, ipw, did, ipw_did, pretrend, smd, int(t.sum()),
                               int((~t).sum()), float(w[~t].max() / w[~t].sum()), w)


def event_time_profile(orders: pd.DataFrame, frame: pd.DataFrame, weights: np.ndarray | None,
                       pre_days: int = 180, post_days: int = 180,
                       bin_days: int = 30) -> pd.DataFrame:
    """Mean spend per unit in ``bin_days`` bins of event time, treated vs (weighted) controls —
    the picture behind the parallel-trends check (event orders excluded)."""
    m = orders[["customer_id", "order_ts", "amount"]].merge(
        frame[["customer_id", "event_ts", "treated"]].rename_axis("unit").reset_index(),
        on="customer_id")
    dt = (m["order_ts"] - m["event_ts"]) / DAY
    m = m[((dt < -1) | (dt > 0)) & (dt >= -pre_days) & (dt <= post_days)]
    dt = dt.loc[m.index]
    m = m.assign(bin=np.floor(dt / bin_days).astype(int) * bin_days)
    w = pd.Series(np.ones(len(frame)) if weights is None else weights, index=frame.index)
    m = m.assign(w=m["unit"].map(w))
    tot_w = w.groupby(frame["treated"]).sum()
    s = (m["amount"] * m["w"]).groupby([m["treated"], m["bin"]]).sum()
    s = s / s.index.get_level_values(0).map(tot_w).to_numpy()
    return s.unstack(0).rename(columns={0: "control", 1: "treated"}).fillna(0.0)


# --------------------------------------------------------------------------------------------
# ROI


@dataclass(frozen=True)
class ROIInputs:
    """Program economics for one member over one window (all money in the dataset's currency)."""

    incremental_spend: float  # per member over the window (from the experiment)
    member_spend: float  # total spend per member over the window (all of it earns points)
    gross_margin: float  # share of spend kept as gross margin
    points_per_currency: float  # points earned per unit spent
    point_value: float  # cost of one redeemed point
    redemption_rate: float  # share of points eventually redeemed (1 − breakage)
    member_discount: float  # member price discount, share of member spend
    operating_cost: float  # per member over the window (CRM, service, benefits)


def roi_breakdown(inp: ROIInputs) -> dict[str, float]:
    """Incremental gross margin minus program costs per member over the window.

    Points are a liability on *all* member spend (redeemed plus expected future redemption of
    outstanding points), not only on the incremental part; so is the member discount. ROI is net
    benefit / program cost (−1 = all cost lost, 0 = break-even).
    """
    margin = inp.incremental_spend * inp.gross_margin
    points = inp.member_spend * inp.points_per_currency * inp.point_value * inp.redemption_rate
    discount = inp.member_spend * inp.member_discount
    cost = points + discount + inp.operating_cost
    net = margin - cost
    return {"incremental_margin": margin, "points_cost": points, "discount_cost": discount,
            "operating_cost": inp.operating_cost, "program_cost": cost, "net_benefit": net,
            "roi": net / cost if cost > 0 else float("nan")}


def payback_months(setup_cost: float, net_benefit_per_month: float) -> float:
    """Months until a one-off set-up cost is recovered (inf if the program loses money)."""
    if net_benefit_per_month <= 0:
        return float("inf")
    return float(setup_cost / net_benefit_per_month)


def roi_sensitivity(base: ROIInputs, effects: dict[str, float], margins: list[float],
                    redemption_rates: list[float]) -> pd.DataFrame:
    """ROI over a grid of the uncertain inputs (incremental spend × gross margin × redemption)."""
    rows = []
    for label, eff in effects.items():
        for gm in margins:
            for rr in redemption_rates:
                inp = ROIInputs(**{**base.__dict__, "incremental_spend": eff, "gross_margin": gm,
                                   "redemption_rate": rr})
                r = roi_breakdown(inp)
                rows.append({"effect": label, "incremental_spend": eff, "gross_margin": gm,
                             "redemption_rate": rr, "net_benefit": r["net_benefit"],
                             "roi": r["roi"]})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# recommendation text


def recommendation_text(*, naive: float, effect: st.Estimate | None, observational: float | None,
                        roi: float | None, net_per_member: float | None, payback: float | None,
                        breakeven_margin: float | None, mde_next: float | None,
                        currency: str, roi_forward: float | None = None) -> str:
    """One paragraph for decision makers, written from the computed numbers."""
    parts = [f"Members look {naive + 1:.1f}x as valuable as non-members, but most of that gap is "
             f"who joins, not what the program does."]
    if effect is None:
        parts.append("Without a randomized holdout this data cannot measure the program's "
                     "incremental effect; run one before scaling the program.")
        return " ".join(parts)
    sig = effect.ci_low > 0
    parts.append(
        f"The randomized holdout shows the program adds {effect.estimate:+.0%} to spend per "
        f"customer (95% CI {effect.ci_low:+.0%} to {effect.ci_high:+.0%})"
        + ("" if sig else ", an interval that includes zero") + ".")
    if observational is not None:
        if effect.ci_low <= observational <= effect.ci_high:
            parts.append(f"A propensity-weighted observational estimate ({observational:+.0%}) "
                         f"agrees with the experiment, unlike the naive comparison "
                         f"({naive:+.0%}).")
        else:
            parts.append(f"A statistically corrected member comparison (propensity weighting: "
                         f"{observational:+.0%}) is still far from it: only the holdout is a "
                         f"trustworthy basis for decisions.")
    if roi is not None and net_per_member is not None:
        verdict = "pays for itself" if roi > 0 else "does not yet pay for itself"
        txt = (f"At the assumed margin and costs the program {verdict}: net "
               f"{net_per_member:+,.1f} {currency} per member over the window (ROI {roi:+.0%})")
        if payback is not None and np.isfinite(payback):
            txt += f", paying back its set-up cost in about {payback:.0f} months"
        if roi_forward is not None and np.isfinite(roi_forward):
            txt += (f"; over the next 12 months, with the effect applied to predicted CLV, the ROI "
                    f"would be {roi_forward:+.0%}")
        parts.append(txt + ".")
        if breakeven_margin is not None and np.isfinite(breakeven_margin):
            parts.append(f"It breaks even at a gross margin of {breakeven_margin:.0%}; "
                         "points and member discounts on spend that would have happened anyway "
                         "are the main cost to cut.")
    if mde_next is not None:
        parts.append(f"Keep a permanent holdout: at the current size a follow-up test detects "
                     f"changes of about {mde_next:.0%} in spend.")
    return " ".join(parts)
