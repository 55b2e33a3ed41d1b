"""Customer lifecycle (客户生命周期): monthly KPIs, anomalous months, funnel, cohorts, lifecycle
stages and their transitions, historical value and CLV tiers.

Every function takes contract tables (``orders``, optionally ``returns``, ``events``,
``customers``) and an ``analysis_date``; only data on or before the analysis *day* is used (an
order at 23:59 on the analysis date counts). Results are plain DataFrames indexed by month
(``pd.Period``), cohort, stage or group, ready for small rounded tables and plots.

* :data:`KPI_DEFINITIONS`, :func:`monthly_kpis` — the KPI dashboard (Guide 1.3);
* :func:`flag_anomalous_months` — robust z-score of the month-over-month log change (median and
  MAD instead of mean and standard deviation, so the anomalies themselves do not hide in an
  inflated spread); :func:`flag_anomalous_days` — the same score on each day's ratio to the median of
  the same weekday in the surrounding weeks (finds festival peaks and dips that monthly totals
  smooth away, without flagging the weekly rhythm);
* :func:`funnel` — session funnel view -> add-to-cart -> purchase, overall or by a column;
* :func:`cohort_matrix`, :func:`cohort_sizes`, :func:`retention_curves` — acquisition-month
  cohorts (Growth 5.1-5.2);
* :class:`StageRules`, :func:`lifecycle_stages`, :func:`transition_matrix`,
  :func:`plot_stage_flows` — lifecycle stages with explicit, parameterized rules (Guide 2.2);
* :func:`value_in_first_months` — historical value per customer over a fixed window after the
  first purchase (comparable across cohorts); :func:`clv_tiers` — high / potential / low value
  (Strategy 1.2).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from helpers import ids

# --------------------------------------------------------------------------------------------
# Small utilities
# --------------------------------------------------------------------------------------------
def _end_of_day(analysis_date) -> pd.Timestamp:
    """The first instant after the analysis day (orders strictly before it count)."""
    return pd.Timestamp(analysis_date).normalize() + pd.Timedelta(days=1)


def _upto(df: pd.DataFrame, ts_col: str, analysis_date, columns=None) -> pd.DataFrame:
    """Rows dated before the end of the analysis day; with ``columns``, only those (the ones
    present) are copied, not the whole frame."""
    mask = np.asarray(df[ts_col] < _end_of_day(analysis_date), dtype=bool)
    if columns is None:
        return df[mask]
    return df.loc[mask, [c for c in columns if c in df.columns]]


def last_complete_month(analysis_date) -> pd.Period:
    """The analysis month if the analysis date is its last day, else the month before."""
    d = pd.Timestamp(analysis_date).normalize()
    m = d.to_period("M")
    return m if (d + pd.Timedelta(days=1)).month != d.month else m - 1


def _month_number(ts: pd.Series) -> np.ndarray:
    """Months since year 0 (``year * 12 + month - 1``): integer months for fast grouping."""
    return (ts.dt.year.to_numpy(dtype=np.int64) * 12 + ts.dt.month.to_numpy(dtype=np.int64) - 1)


def _month_period(num) -> pd.PeriodIndex:
    """Inverse of :func:`_month_number`."""
    return pd.PeriodIndex.from_ordinals(np.asarray(num, dtype=np.int64) - 1970 * 12, freq="M")


def first_purchase(orders: pd.DataFrame, analysis_date) -> pd.Series:
    """First order timestamp per customer (orders up to the analysis day)."""
    o = _upto(orders, "order_ts", analysis_date, ("customer_id", "order_ts"))
    return o.groupby("customer_id")["order_ts"].min()


# --------------------------------------------------------------------------------------------
# KPI dashboard
# --------------------------------------------------------------------------------------------
#: KPI name -> (Chinese term, definition). Shown as the chapter's definition table.
KPI_DEFINITIONS: dict[str, tuple[str, str]] = {
    "active_customers": ("活跃客户数", "distinct customers with at least one order in the month"),
    "new_customers": ("新客数", "active customers whose first order ever is in the month"),
    "returning_customers": ("老客数", "active customers who had ordered before the month"),
    "orders": ("订单数", "completed orders placed in the month"),
    "gmv": ("成交额 GMV", "sum of order amounts in the month (before returns)"),
    "aov": ("客单价 AOV", "GMV / orders"),
    "repurchase_rate": ("复购率", "share of the month's active customers with 2+ orders in it"),
    "returning_share": ("老客占比", "returning customers / active customers"),
    "return_rate": ("退货率", "refunds booked in the month / GMV of the month"),
    "conversion": ("转化率", "sessions with a purchase / sessions with a product view"),
}


def monthly_kpis(orders: pd.DataFrame, *, analysis_date, returns: pd.DataFrame | None = None,
                 events: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per calendar month up to the analysis date with the KPIs of
    :data:`KPI_DEFINITIONS` (``return_rate``/``conversion`` are NaN without returns/events) and
    ``complete`` (the month ended on or before the analysis date). ``events`` may be the events
    table or a :func:`session_table`."""
    o = _upto(orders, "order_ts", analysis_date, ("customer_id", "order_ts", "amount"))
    if o.empty:
        raise ValueError("no orders on or before the analysis date")
    # integer customer codes and month numbers: one factorization, then integer grouping
    cust = pd.factorize(o["customer_id"])[0]
    month = _month_number(o["order_ts"])
    first_month = pd.Series(month).groupby(cust).transform("min").to_numpy()
    m0 = int(month.min())
    months = pd.period_range(_month_period([m0])[0], pd.Timestamp(analysis_date).to_period("M"),
                             freq="M")
    n_m = len(months)
    mi = month - m0
    orders_n = np.bincount(mi, minlength=n_m)
    gmv = (pd.Series(o["amount"].to_numpy(dtype=float, na_value=np.nan)).groupby(mi).sum()  # compensated sum
           .reindex(range(n_m), fill_value=0.0).to_numpy())
    # (month, customer) pairs: active customers, and customers with 2+ orders in the month
    pair = mi.astype(np.int64) * (int(cust.max()) + 1) + cust
    upair, pair_n = np.unique(pair, return_counts=True)
    pm = upair // (int(cust.max()) + 1)
    active = np.bincount(pm, minlength=n_m)
    multi = np.bincount(pm[pair_n >= 2], minlength=n_m)
    new = np.bincount(np.unique(pair[month == first_month]) // (int(cust.max()) + 1),
                      minlength=n_m)
    out = pd.DataFrame({"active_customers": active[:n_m], "new_customers": new[:n_m],
                        "orders": orders_n[:n_m], "gmv": gmv[:n_m]},
                       index=pd.Index(months, name="month"))
    out[["active_customers", "new_customers", "orders"]] = (
        out[["active_customers", "new_customers", "orders"]].astype(int))
    out["returning_customers"] = out["active_customers"] - out["new_customers"]
    out["aov"] = out["gmv"] / out["orders"].replace(0, np.nan)
    multi = pd.Series(multi[:n_m], index=months)
    out["repurchase_rate"] = multi / out["active_customers"].replace(0, np.nan)
    out["returning_share"] = out["returning_customers"] / out["active_customers"].replace(0, np.nan)
    out["return_rate"] = np.nan
    if returns is not None and len(returns):
        r = _upto(returns, "return_ts", analysis_date, ("return_ts", "amount"))
        refunds = r.groupby(r["return_ts"].dt.to_period("M"))["amount"].sum()
        out["return_rate"] = refunds.reindex(months, fill_value=0) / out["gmv"].replace(0, np.nan)
    out["conversion"] = np.nan
    if events is not None and len(events):
        f = funnel(events, analysis_date=analysis_date, by="month")
        out["conversion"] = f["view_to_purchase"].reindex(months)
    out["complete"] = out.index <= last_complete_month(analysis_date)
    cols = ["active_customers", "new_customers", "returning_customers", "orders", "gmv", "aov",
            "repurchase_rate", "returning_share", "return_rate", "conversion", "complete"]
    return out[cols]


def robust_z(values: pd.Series) -> pd.Series:
    """Modified z-score: (value - median) / (1.4826 x MAD).

    When more than half the values equal the median (MAD = 0, common with counts), the mean
    absolute deviation from the median is used instead, scaled by 1.2533 (both scalings make the
    denominator a standard deviation for normal data). NaN when both are zero.
    """
    v = pd.Series(values, dtype=float)
    if v.notna().sum() == 0:
        return pd.Series(np.nan, index=v.index)
    med = v.median()
    dev = (v - med).abs()
    scale = 1.4826 * dev.median()
    if not np.isfinite(scale) or scale == 0:
        scale = 1.2533 * dev.mean()
    if not np.isfinite(scale) or scale == 0:
        return pd.Series(np.nan, index=v.index)
    return (v - med) / scale


def flag_anomalous_months(kpis: pd.DataFrame, columns=("gmv", "orders", "active_customers"),
                          threshold: float = 3.5) -> pd.DataFrame:
    """Months whose month-over-month change is extreme, per KPI.

    Method: ``change = log(x_t / x_{t-1})`` on complete months; its robust z-score (median and
    1.4826 x MAD as centre and scale) flags ``|z| > threshold`` (3.5 is the usual cut-off of
    Iglewicz & Hoaglin). Returns one row per month and KPI with value, change, z and flag.
    A flagged month is a question, not an answer: festival peaks are expected anomalies.
    """
    k = kpis[kpis["complete"]] if "complete" in kpis else kpis
    rows = []
    for c in columns:
        x = k[c].astype(float)
        with np.errstate(divide="ignore", invalid="ignore"):
            ch = np.log(x.where(x > 0)).diff()
        z = robust_z(ch)
        rows.append(pd.DataFrame({"kpi": c, "value": x, "mom_change": np.expm1(ch), "robust_z": z,
                                  "anomalous": z.abs() > threshold}))
    out = pd.concat(rows).reset_index()
    return out.rename(columns={"index": "month"})


def flag_anomalous_days(orders: pd.DataFrame, *, analysis_date, column: str = "amount",
                        weeks: int = 7, threshold: float = 3.5) -> pd.DataFrame:
    """Days whose value departs from the local level of the same weekday.

    Baseline: the median of the same weekday over ``weeks`` weeks centred on the day (7: the
    day itself and three weeks either side), so weekly patterns (closed Saturdays, busy Mondays)
    are not anomalies and a spike cannot lift its own baseline. Residual: for order counts the
    Anscombe residual ``2 (sqrt(value + 3/8) - sqrt(baseline + 3/8))``, whose noise is the same
    for 10 and 1,000 orders a day (a log ratio would flag random dips of small counts); for
    amounts ``log((value + 1) / (baseline + 1))``. Score: the robust z of the residual over all
    scored days; flagged when ``|z| > threshold``.
    Days without a full centred window (the first and last ``weeks // 2`` weeks) are not scored.
    ``column="orders"`` counts orders; order counts are less heavy-tailed than GMV, so they are
    the better series for calendar effects. Columns: value, baseline, ratio, robust_z, anomalous.
    """
    if weeks < 3 or weeks % 2 == 0:
        raise ValueError("weeks must be an odd integer >= 3")
    o = _upto(orders, "order_ts", analysis_date, ("order_ts", column))
    day = o["order_ts"].dt.normalize()
    daily = (o.groupby(day).size() if column == "orders" else o.groupby(day)[column].sum())
    days = pd.date_range(daily.index.min(), pd.Timestamp(analysis_date).normalize(), freq="D")
    daily = daily.reindex(days, fill_value=0).astype(float)
    base = daily.groupby(days.dayofweek).transform(
        lambda s: s.rolling(weeks, center=True, min_periods=weeks).median())
    if column == "orders":  # Anscombe residual: equal noise at every level for Poisson counts
        resid = 2 * (np.sqrt(daily + 0.375) - np.sqrt(base + 0.375))
    else:
        resid = np.log((daily + 1) / (base + 1))
    z = robust_z(resid)
    out = pd.DataFrame({"value": daily, "baseline": base, "ratio": (daily + 1) / (base + 1),
                        "robust_z": z,
                        "anomalous": z.abs() > threshold})
    out.index.name = "day"
    return out


# --------------------------------------------------------------------------------------------
# Funnel
# --------------------------------------------------------------------------------------------
FUNNEL_STEPS = ("view", "cart", "purchase")


def _ts_int(ts: pd.Series) -> np.ndarray:
    """Timestamps as int64 in their own unit (naive or tz-aware; order-preserving)."""
    return np.asarray(pd.Series(ts, copy=False).array.asi8, dtype=np.int64)


#: Events columns :func:`session_table` may use (``customer_id`` only for customer-day sessions).
SESSION_COLUMNS = ("event_ts", "event_type", "session_id", "channel", "device", "customer_id")


def session_table(events: pd.DataFrame, *, analysis_date, start=None) -> pd.DataFrame:
    """One row per session (``session_id``; without it, a customer-day) with its first event's
    time, channel and device and whether it has a view, cart and purchase event.

    Sessions are numbered in order of their first view/cart/purchase event in ``events`` (row
    order); the first event is the earliest (ties: the first row). ``channel`` and ``device``
    are categorical (``"unknown"`` where missing). ``events`` needs ``event_ts`` and
    ``event_type``, plus ``session_id`` or ``customer_id``; other columns are not read, so a
    frame with only :data:`SESSION_COLUMNS` (see :func:`session_table_from`) is enough.

    The work is on integer codes (Arrow dictionary encoding of the ids and types) and one pass
    of ``np.minimum.at``; no copy or sort of the events frame, so it stays linear in the rows.
    """
    ts = events["event_ts"]
    keep = np.asarray(ts < _end_of_day(analysis_date), dtype=bool)
    if start is not None:
        keep &= np.asarray(ts >= pd.Timestamp(start), dtype=bool)
    tcode, tuniq = ids.dictionary_codes(events["event_type"])
    tuniq = tuniq.to_pylist() if isinstance(tuniq, pa.Array) else list(tuniq)
    step_of = np.full(len(tuniq) + 1, -1, dtype=np.int8)  # event-type code -> funnel step
    for i, t in enumerate(tuniq):
        if str(t) in FUNNEL_STEPS:
            step_of[i] = FUNNEL_STEPS.index(str(t))
    step = step_of[tcode]  # code -1 (missing type) lands in the extra last slot
    del tcode
    keep &= step >= 0
    rows = np.flatnonzero(keep)
    del keep
    step = step[rows]
    scode = None
    if "session_id" in events:
        scode = ids.dictionary_codes(events["session_id"])[0][rows]
        if len(scode) and (scode < 0).any():
            scode = None
    if scode is not None:
        codes = ids.first_appearance_codes(scode)
        del scode
    else:  # a customer-day: integer pairs, numbered in order of first appearance
        if "customer_id" not in events:
            raise ValueError("events: session_table needs customer_id when session_id is absent "
                             "or has missing values (sessions are then customer-days)")
        cust, cuniq = ids.dictionary_codes(events["customer_id"])
        cust = cust[rows]
        cust[cust < 0] = len(cuniq)  # missing id: a customer of its own
        tsr = ts.iloc[rows]
        if getattr(tsr.dt, "tz", None) is not None:
            tsr = tsr.dt.tz_localize(None)  # the local calendar day
        day = tsr.to_numpy().astype("datetime64[D]").astype(np.int64)
        codes = (pd.factorize((day - day.min()) * (len(cuniq) + 1) + cust, sort=False)[0]
                 if len(cust) else cust)
    codes = np.asarray(codes, dtype=np.int64)
    n = int(codes.max()) + 1 if len(codes) else 0
    # first event of each session: the earliest time, ties broken by the first row
    t_int = _ts_int(ts)[rows]
    first_t = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first_t, codes, t_int)
    cand = np.flatnonzero(t_int == first_t[codes])
    del t_int, first_t
    first_pos = np.full(n, len(rows), dtype=np.int64)
    np.minimum.at(first_pos, codes[cand], cand)
    first_rows = rows[first_pos]  # row of each session's first event, sessions in code order
    out = pd.DataFrame({"start": ts.array.take(first_rows)})
    for col in ("channel", "device"):
        if col in events:
            first_vals = pd.Series(events[col].array.take(first_rows))
            out[col] = pd.Categorical(first_vals.astype("object").fillna("unknown")
                                      if first_vals.dtype == object
                                      else first_vals.fillna("unknown"))
    for i, name in enumerate(FUNNEL_STEPS):
        flag = np.zeros(n, dtype=bool)
        flag[codes[step == i]] = True
        out[name] = flag
    return out


def session_table_from(ds, *, analysis_date, start=None) -> pd.DataFrame | None:
    """:func:`session_table` of a loaded dataset's events, reading only the columns it uses
    (``ds.read("events", columns=...)``; ``customer_id`` only when sessions must be
    customer-days). ``None`` when the dataset has no events."""
    if not ds.has("events"):
        return None
    have = ds.columns("events")
    cols = [c for c in SESSION_COLUMNS if c in have and c != "customer_id"]
    # ids dictionary-encoded: only their integer codes are used (no string hashing)
    ev = ds.read("events", columns=cols,
                 dictionary=[c for c in ("session_id", "event_type") if c in cols])
    if ("session_id" not in ev or ev["session_id"].isna().any()) and "customer_id" in have:
        ev["customer_id"] = ds.read("events", columns=["customer_id"],
                                    dictionary=["customer_id"])["customer_id"]
    return session_table(ev, analysis_date=analysis_date, start=start)


def funnel(events: pd.DataFrame, *, analysis_date, by: str | None = None,
           start=None) -> pd.DataFrame:
    """Session funnel view -> add-to-cart -> purchase.

    ``events`` is the events table or a :func:`session_table`. A session reaches a step if it has
    at least one event of that type and reached the steps before it. ``by`` groups sessions by
    ``"channel"``, ``"device"`` (of the session's first event) or ``"month"`` (its start).
    Returns sessions, sessions at each step and the step conversion rates view->cart,
    cart->purchase and view->purchase.
    """
    st = events if "view" in events.columns else session_table(events, analysis_date=analysis_date,
                                                                start=start)
    if by is None:
        key = np.full(len(st), "all", dtype=object)
    elif by == "month":
        key = st["start"].dt.to_period("M")
    elif by in st:
        key = st[by]
    else:
        raise ValueError(f"cannot group the funnel by {by!r}")
    v, c, p = st["view"], st["cart"], st["purchase"]
    key = key.array if isinstance(key, pd.Series) else key  # keep periods as periods (fast)
    g = pd.DataFrame({"key": key, "sessions": 1, "view": v.to_numpy(), "cart": (v & c).to_numpy(),
                      "purchase_after_cart": (v & c & p).to_numpy(),
                      "purchase": (v & p).to_numpy()}).groupby("key", observed=True)
    s = g.sum()
    if isinstance(s.index, pd.CategoricalIndex):  # categorical channel/device: plain labels
        s.index = pd.Index(s.index.astype(object), name=s.index.name)
    out = pd.DataFrame({
        "sessions": s["sessions"], "view": s["view"], "cart": s["cart"], "purchase": s["purchase"],
        "view_to_cart": s["cart"] / s["view"].replace(0, np.nan),
        "cart_to_purchase": s["purchase_after_cart"] / s["cart"].replace(0, np.nan),
        "view_to_purchase": s["purchase"] / s["view"].replace(0, np.nan),
    })
    out.index.name = by or "funnel"
    return out


# --------------------------------------------------------------------------------------------
# Cohorts
# --------------------------------------------------------------------------------------------
def _customer_codes(ids: pd.Series) -> np.ndarray:
    """Integer code per row for the customer id (a missing id is one customer of its own)."""
    codes = pd.factorize(ids, sort=False)[0].astype(np.int64)
    if len(codes) and (codes < 0).any():
        codes[codes < 0] = codes.max() + 1
    return codes


def _sorted_codes(ids: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """Each row's position among the sorted distinct ids (-1 for a missing id) and those ids:
    one hash pass, then a sort of the distinct ids only (as ``pd.factorize(ids, sort=True)``)."""
    code, uniq = pd.factorize(pd.Series(ids, copy=False), sort=False)
    uniq = pd.Index(uniq)
    order = uniq.argsort()
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order), dtype=np.int64)
    code = np.where(code >= 0, rank[np.maximum(code, 0)], -1)
    return code, uniq.take(order)


def _cohort_frame(orders: pd.DataFrame, analysis_date) -> pd.DataFrame:
    """One row per order: customer code ``cust``, ``cohort`` (first-order month, Period),
    ``cohort_num`` (the same as a month number), ``age`` (months since it) and ``amount``."""
    o = _upto(orders, "order_ts", analysis_date, ("customer_id", "order_ts", "amount"))
    cust = _customer_codes(o["customer_id"])
    month = _month_number(o["order_ts"])
    cohort = pd.Series(month).groupby(cust).transform("min").to_numpy()
    return pd.DataFrame({"customer_id": o["customer_id"].array, "cust": cust,
                         "cohort": _month_period(cohort).array, "cohort_num": cohort,
                         "age": month - cohort, "amount": o["amount"].to_numpy()})


def cohort_sizes(orders: pd.DataFrame, *, analysis_date) -> pd.Series:
    """Number of customers whose first order is in each month."""
    f = first_purchase(orders, analysis_date)
    return f.dt.to_period("M").value_counts().sort_index().rename("customers")


def cohort_matrix(orders: pd.DataFrame, *, analysis_date, measure: str = "customers",
                  max_age: int | None = None) -> pd.DataFrame:
    """Acquisition-month x months-since-first-order matrix.

    ``measure="customers"``: share of the cohort with at least one order in month ``age``
    (age 0 is 1 by definition); ``"revenue"``: revenue in month ``age`` per cohort customer;
    ``"cumulative_revenue"``: revenue up to and including month ``age`` per cohort customer.
    Cells whose calendar month is after the last complete month are NaN (not yet observed).
    """
    if measure not in ("customers", "revenue", "cumulative_revenue"):
        raise ValueError(f"unknown measure {measure!r}")
    cf = _cohort_frame(orders, analysis_date)
    size = cf.groupby("cohort")["cust"].nunique()
    if measure == "customers":
        m = cf.groupby(["cohort", "age"])["cust"].nunique().unstack(fill_value=0)
    else:
        m = cf.groupby(["cohort", "age"])["amount"].sum().unstack(fill_value=0.0)
    last = last_complete_month(analysis_date)
    first = m.index.min()
    span = max((last.year - first.year) * 12 + (last.month - first.month), int(cf["age"].max()))
    ages = range(0, span + 1 if max_age is None else max_age + 1)
    m = m.reindex(columns=list(ages), fill_value=0).div(size, axis=0).astype(float)
    if measure == "cumulative_revenue":
        m = m.cumsum(axis=1)
    for cohort in m.index:
        max_obs = (last.year - cohort.year) * 12 + (last.month - cohort.month)
        m.loc[cohort, [a for a in m.columns if a > max_obs]] = np.nan
    m.index.name = "cohort"
    m.columns.name = "months_since_first_order"
    return m


def retention_curves(orders: pd.DataFrame, groups: pd.Series, *, analysis_date,
                     max_age: int = 12) -> pd.DataFrame:
    """Share of customers ordering in month ``age`` after their first, by group.

    ``groups`` maps customer_id to a group (e.g. acquisition channel). For each age, only
    cohorts that have been observed that long enter (no survivorship from the newest cohorts).
    """
    cf = _cohort_frame(orders, analysis_date)
    cf = cf[cf["age"] <= max_age]
    last = last_complete_month(analysis_date)
    last_num = last.year * 12 + last.month - 1
    cust, first_row = np.unique(cf["cust"].to_numpy(), return_index=True)  # one row per customer
    ids = pd.Index(cf["customer_id"].array.take(first_row))
    grp = groups.astype("object")
    grp = grp[~grp.index.duplicated(keep="first")].reindex(ids).fillna("unknown")
    gcode, guniq = pd.factorize(grp.to_numpy(), sort=True)  # groups sorted, as by groupby
    n_g, n_a = len(guniq), max_age + 1
    observed = last_num - cf["cohort_num"].to_numpy()[first_row]  # months observed, per customer
    # denominators: customers observed at least `age` months, per group (reverse cumulative)
    ok = observed >= 0
    cnt = np.bincount(np.minimum(observed[ok], max_age) * n_g + gcode[ok],
                      minlength=n_a * n_g).reshape(n_a, n_g)
    den = cnt[::-1].cumsum(axis=0)[::-1].astype(float)
    # numerators: distinct (customer, age) pairs with an order, from eligible customers only
    pos = np.searchsorted(cust, cf["cust"].to_numpy())  # customer position of each order
    pair = np.unique(pos.astype(np.int64) * n_a + cf["age"].to_numpy())
    pc, pa = pair // n_a, pair % n_a
    elig = observed[pc] >= pa
    num = np.bincount(pa[elig] * n_g + gcode[pc[elig]], minlength=n_a * n_g).reshape(n_a, n_g)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)
    rows = den.sum(axis=1) > 0  # ages no cohort has been observed for are left out
    out = pd.DataFrame(share[rows], index=np.arange(n_a)[rows],
                       columns=pd.Index(guniq, name="group"))
    out.index.name = "months_since_first_order"
    return out


def value_in_first_months(orders: pd.DataFrame, *, analysis_date, months: int = 12,
                          returns: pd.DataFrame | None = None) -> pd.DataFrame:
    """Revenue per customer in the first ``months`` months (x 365.25/12 days) after the first
    order, for customers observed that long; net of refunds booked in the window when
    ``returns`` is given. Columns: first_order, value (indexed by customer_id)."""
    o = _upto(orders, "order_ts", analysis_date, ("customer_id", "order_ts", "amount"))
    first = o.groupby("customer_id")["order_ts"].min()
    window = pd.Timedelta(days=months * 365.25 / 12)
    end = _end_of_day(analysis_date)
    eligible = first[first + window <= end]
    oo = o[ids.isin(o["customer_id"], eligible.index)]
    in_win = oo["order_ts"].to_numpy() < eligible.reindex(oo["customer_id"]).to_numpy() + window
    value = oo[in_win].groupby("customer_id")["amount"].sum()
    if returns is not None and len(returns):
        r = returns[ids.isin(returns["customer_id"], eligible.index)]
        r_in = r["return_ts"].to_numpy() < eligible.reindex(r["customer_id"]).to_numpy() + window
        value = value.sub(r[r_in].groupby("customer_id")["amount"].sum(), fill_value=0)
    return pd.DataFrame({"first_order": eligible, "value": value.reindex(eligible.index).fillna(0)})


# --------------------------------------------------------------------------------------------
# Lifecycle stages
# --------------------------------------------------------------------------------------------
STAGES = ("potential", "new", "active", "loyal", "at_risk", "churned")
STAGE_LABELS = {
    "potential": "potential 潜在客户", "new": "new 新客", "active": "active/growing 活跃成长",
    "loyal": "loyal 忠诚客户", "at_risk": "at risk 流失预警", "churned": "churned 已流失",
    "not_yet": "not yet known 尚未注册",
}


@dataclass(frozen=True)
class StageRules:
    """Rules assigning one stage per customer at a date (applied in this order):

    1. ``potential`` — registered (``customers.signup_date`` on or before the date; a customer
       listed without a signup date counts as registered only if they never order in the data
       given, since otherwise the first order is the first sign of them) but no order yet;
    2. ``churned`` — last order more than ``churn_days`` days before the date;
    3. ``at_risk`` — last order more than ``at_risk_days`` (and at most ``churn_days``) ago;
    4. ``new`` — first order within the last ``new_days`` days;
    5. ``loyal`` — at least ``loyal_orders`` orders in the last ``loyal_window_days`` days;
    6. ``active`` (active/growing) — everyone else: a recent, repeat-capable customer.

    Days count calendar days between order day and the date. Choose them from the purchase cycle
    of the business (e.g. ``at_risk_days`` about two to three typical inter-purchase gaps).
    """

    new_days: int = 90
    at_risk_days: int = 180
    churn_days: int = 365
    loyal_orders: int = 4
    loyal_window_days: int = 365

    def __post_init__(self) -> None:
        if not (0 < self.at_risk_days < self.churn_days):
            raise ValueError("need 0 < at_risk_days < churn_days")
        if self.new_days <= 0 or self.loyal_orders < 2 or self.loyal_window_days <= 0:
            raise ValueError("need new_days > 0, loyal_orders >= 2, loyal_window_days > 0")

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def lifecycle_stages(orders: pd.DataFrame, *, as_of, rules: StageRules = StageRules(),
                     customers: pd.DataFrame | None = None) -> pd.DataFrame:
    """Stage of every known customer at ``as_of`` (end of that day) with the facts behind it:
    first_order, last_order, orders_in_window, days_since_last, stage (categorical, STAGES order).
    Customers from ``customers`` registered by then without orders are ``potential``."""
    day = pd.Timestamp(as_of).normalize()
    o = _upto(orders, "order_ts", day, ("customer_id", "order_ts"))
    # customers as sorted integer codes (the order a groupby on the ids gives; missing ids are
    # left out as a groupby leaves them out), then integer groupings
    code, uniq = _sorted_codes(o["customer_id"])
    ok = code >= 0
    ts = o["order_ts"][ok]
    code = code[ok]
    g = ts.groupby(code)
    idx = pd.Index(uniq, name="customer_id")
    df = pd.DataFrame({"first_order": g.min().array, "last_order": g.max().array}, index=idx)
    recent = np.asarray(ts >= day + pd.Timedelta(days=1 - rules.loyal_window_days), dtype=bool)
    df["orders_in_window"] = np.bincount(code[recent], minlength=len(idx)).astype(np.int64)
    if customers is not None and len(customers):
        c = customers
        never = ~ids.isin(c["customer_id"], orders["customer_id"])
        if "signup_date" in c:
            c = c[(c["signup_date"].isna() & never)
                  | (c["signup_date"] < day + pd.Timedelta(days=1))]
        else:
            c = c[never]
        extra = pd.Index(c["customer_id"].unique()).difference(df.index)
        df = pd.concat([df, pd.DataFrame(index=extra)])
        df["orders_in_window"] = df["orders_in_window"].fillna(0).astype(int)
    df.index.name = "customer_id"
    dsl = (day - df["last_order"].dt.normalize()).dt.days
    dsf = (day - df["first_order"].dt.normalize()).dt.days
    df["days_since_last"] = dsl
    conds = [df["first_order"].isna(), dsl > rules.churn_days, dsl > rules.at_risk_days,
             dsf < rules.new_days, df["orders_in_window"] >= rules.loyal_orders]
    stage = np.select(conds, ["potential", "churned", "at_risk", "new", "loyal"], "active")
    df["stage"] = pd.Categorical(stage, categories=list(STAGES))
    return df.sort_index()


def transition_matrix(orders: pd.DataFrame, *, from_date, to_date,
                      rules: StageRules = StageRules(),
                      customers: pd.DataFrame | None = None) -> pd.DataFrame:
    """Counts of customers by stage at ``from_date`` (rows) and at ``to_date`` (columns).

    Customers unknown at ``from_date`` (registered or first ordering later) are in the row
    ``not_yet``. Row shares: ``m.div(m.sum(axis=1), axis=0)``.
    """
    if pd.Timestamp(to_date) <= pd.Timestamp(from_date):
        raise ValueError("to_date must be after from_date")
    a = lifecycle_stages(orders, as_of=from_date, rules=rules, customers=customers)["stage"]
    b = lifecycle_stages(orders, as_of=to_date, rules=rules, customers=customers)["stage"]
    # counts of (earlier stage, later stage) codes; customers unknown earlier are "not_yet" (0)
    at = a.index.get_indexer(b.index)
    a_codes = np.asarray(a.cat.codes, dtype=np.int64)
    frm = np.where(at >= 0, a_codes[np.maximum(at, 0)] + 1, 0)  # a missing stage (-1): not_yet
    to = np.asarray(b.cat.codes, dtype=np.int64)
    n_s = len(STAGES)
    counts = np.bincount(frm * n_s + to, minlength=(n_s + 1) * n_s).reshape(n_s + 1, n_s)
    return pd.DataFrame(counts.astype(np.int64),
                        index=pd.Index(["not_yet", *STAGES], dtype=object, name="from"),
                        columns=pd.Index(list(STAGES), dtype=object, name="to"))


STAGE_COLORS = {"not_yet": "#bdbdbd", "potential": "#9ecae1", "new": "#6baed6",
                "active": "#31a354", "loyal": "#006d2c", "at_risk": "#fd8d3c",
                "churned": "#de2d26"}


def plot_stage_flows(matrix: pd.DataFrame, ax, *, from_label: str = "from",
                     to_label: str = "to", min_share: float = 0.002) -> None:
    """Two-column flow (Sankey-style) picture of a transition matrix on a matplotlib axis."""
    total = float(matrix.to_numpy().sum())
    if total == 0:
        raise ValueError("empty transition matrix")
    gap = 0.02
    left = matrix.sum(axis=1) / total
    right = matrix.sum(axis=0) / total

    def stack(sizes):
        pos, y = {}, 0.0
        for k, v in sizes.items():
            pos[k] = [y, y + v]
            y += v + (gap if v > 0 else 0)
        return pos

    lp, rp = stack(left), stack(right)
    lcur = {k: v[0] for k, v in lp.items()}
    rcur = {k: v[0] for k, v in rp.items()}
    xs = np.linspace(0, 1, 50)
    smooth = 3 * xs**2 - 2 * xs**3
    for src in matrix.index:
        for dst in matrix.columns:
            w = matrix.loc[src, dst] / total
            if w <= 0:
                continue
            y0, y1 = lcur[src], rcur[dst]
            lcur[src] += w
            rcur[dst] += w
            if w < min_share:
                continue
            lo = y0 + (y1 - y0) * smooth
            ax.fill_between(0.1 + 0.8 * xs, lo, lo + w, color=STAGE_COLORS.get(src, "grey"),
                            alpha=0.45, linewidth=0)
    for pos, x, labels_right in ((lp, 0.0, False), (rp, 0.9, True)):
        for k, (y0, y1) in pos.items():
            if y1 - y0 <= 0:
                continue
            ax.bar(x + 0.05, y1 - y0, bottom=y0, width=0.1, color=STAGE_COLORS.get(k, "grey"))
            share = (y1 - y0)
            ax.text(1.02 if labels_right else -0.02, (y0 + y1) / 2,
                    f"{k.replace('_', ' ')} {share:.0%}",
                    ha="left" if labels_right else "right", va="center", fontsize=8)
    ax.set_xlim(-0.35, 1.35)
    ax.invert_yaxis()
    ax.set_xticks([0.05, 0.95], [from_label, to_label])
    ax.set_yticks([])
    ax.set_ylabel("share of customers (stacked)")
    for s in ("top", "right", "left"):
        ax.spines[s].set_visible(False)


# --------------------------------------------------------------------------------------------
# Value tiers
# --------------------------------------------------------------------------------------------
TIERS = ("high_value", "potential", "low_value")
TIER_ACTIONS = {
    "high_value": "高价值: protect — service priority, early access, loyalty perks; no blanket discounts",
    "potential": "潜力: develop — cross-sell, second/third-purchase incentives, membership invitation",
    "low_value": "低价值: serve at low cost — automated, low-frequency campaigns; no paid retention",
}


def clv_tiers(clv: pd.Series, *, high_share: float = 0.2, potential_share: float = 0.3) -> pd.Series:
    """Tier customers by predicted CLV: the top ``high_share`` are high-value, the next
    ``potential_share`` potential, the rest low-value (ties broken by customer order)."""
    if not (0 < high_share < 1 and 0 <= potential_share < 1 and high_share + potential_share <= 1):
        raise ValueError("need 0 < high_share, 0 <= potential_share, sum <= 1")
    rank = clv.rank(ascending=False, method="first") / len(clv)
    tier = np.where(rank <= high_share, "high_value",
                    np.where(rank <= high_share + potential_share, "potential", "low_value"))
    return pd.Series(pd.Categorical(tier, categories=list(TIERS)), index=clv.index, name="tier")
