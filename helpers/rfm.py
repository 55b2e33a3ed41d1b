"""RFM (recency, frequency, monetary) tables, scores, named segments and their economics.

RFM模型: 最近一次消费 (recency), 消费频率 (frequency), 消费金额 (monetary).

Conventions (every one is a choice; the chapter states them):

* **Window.** Everything up to and including the *analysis date* (a calendar date): orders with
  ``order_ts < analysis_date + 1 day`` and returns with ``return_ts`` in the same window.
* **Recency** (``recency_days``): whole calendar days from the day of the last order to the
  analysis date (0 = bought on the analysis date).
* **Frequency**: distinct purchase occasions. ``same_day="merge"`` (default) counts the distinct
  calendar days with an order, so two orders placed on the same day are one purchase occasion (the
  convention of the CLV literature, e.g. Fader, Hardie & Lee 2005 on CDNOW); ``"separate"`` counts
  distinct ``order_id``.
* **Monetary**: net spend = gross order amount − refunds booked in the window, floored at 0 (a
  refund can exceed the spend in the window when the refunded order predates the data).
  ``gross`` and ``returns`` are kept beside it.
* **Customers with only returns** in the window (no order) are *not* customers at the analysis
  date for RFM: they have no recency or frequency. They are left out of the table and counted in
  ``rfm.attrs["n_only_returns"]`` (their ids in ``rfm.attrs["only_returns_ids"]``).

Scores 1–5 (:func:`score_rfm`): higher is better on every axis (R = 5 means the most recent).
The quantile method uses one deterministic tie rule: *equal values always get the same score*, and
a customer's score is ``1 + floor(bins × share of customers with a strictly worse value)``. With
distinct values this gives equal-sized quintiles; with heavy ties (most customers bought once or
twice) whole groups share a score and some scores stay empty — the one-time buyers always get
F = 1, so "New" and "Promising" mean what their names say. The result never depends on row order.

Named segments: :data:`SEGMENT_MAP` is a table of rectangles on the R × F grid (inclusive score
ranges); :func:`check_segment_map` proves that a map covers every (R, F) cell exactly once, and
:func:`assign_segments` accepts any map that passes.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
import pandas as pd

from helpers.ids import isin

__all__ = [
    "AXES", "DEFAULT_THRESHOLDS", "PLAYBOOK", "SEGMENT_MAP", "TIER_BENEFITS", "assign_segments",
    "check_segment_map", "explained_share", "kmeans_rfm", "member_tiers", "migration_matrix",
    "net_spend", "pareto_curve", "plot_segment_grid", "rate_with_ci", "rfm_table", "score_rfm",
    "segment_grid", "segment_summary", "top_share", "value_group_rates",
]

#: The three RFM columns and their score names; ``higher_is_better`` sets the score direction.
AXES: dict[str, dict[str, object]] = {
    "recency_days": {"score": "R", "higher_is_better": False},
    "frequency": {"score": "F", "higher_is_better": True},
    "monetary": {"score": "M", "higher_is_better": True},
}

#: Example fixed business thresholds for ``score_rfm(method="fixed")`` (``bins - 1`` cut points,
#: ascending). Recency: score 5 if bought within 30 days, 4 within 90, 3 within 180, 2 within 365,
#: else 1. Frequency / monetary: score = 1 + number of cut points the value reaches (>=).
DEFAULT_THRESHOLDS: dict[str, list[float]] = {
    "recency_days": [30, 90, 180, 365],
    "frequency": [2, 3, 5, 8],
    "monetary": [300, 1000, 3000, 8000],
}


# --------------------------------------------------------------------------------------------
# the RFM table


def _customer_groups(frame: pd.DataFrame):
    """``frame.groupby("customer_id", sort=True, observed=True)`` and the sorted customer ids.

    Arrow-backed string ids (as the loader returns them) are grouped by integer codes that sort
    like the ids (Arrow ``dictionary_encode`` and a sort of the distinct ids only), which is
    much faster than letting pandas hash and sort millions of strings; the groups, their order
    and every aggregate are the same. Returns ``(groupby, ids)``: ``ids`` is ``None`` when the
    groupby is keyed by the ids themselves, else the sorted distinct ids (in the column's dtype)
    to use as the index of the aggregated result.
    """
    col = frame["customer_id"]
    dtype = col.dtype
    if (isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow" and len(col)
            and not col.isna().any()):
        import pyarrow as pa
        import pyarrow.compute as pc

        from helpers.ids import as_arrow_strings

        enc = pc.dictionary_encode(as_arrow_strings(col))
        order = np.asarray(pc.sort_indices(enc.dictionary), dtype=np.int64)
        rank = np.empty(len(order), dtype=np.int64)
        rank[order] = np.arange(len(order))
        codes = rank[np.asarray(enc.indices, dtype=np.int64)]
        ids = pd.Index(pd.array(enc.dictionary.take(pa.array(order)), dtype=dtype),
                       name="customer_id")
        return frame.groupby(codes, sort=True), ids
    return frame.groupby("customer_id", sort=True, observed=True), None


def _keyed(result, ids: pd.Index | None):
    """An aggregate of :func:`_customer_groups` indexed by the customer ids."""
    if ids is not None:
        result.index = ids
    return result


def _day_end(analysis_date: str | pd.Timestamp) -> tuple[pd.Timestamp, pd.Timestamp]:
    day = pd.Timestamp(analysis_date).normalize()
    return day, day + pd.Timedelta(days=1)


def net_spend(orders: pd.DataFrame, returns: pd.DataFrame | None = None, *,
              start: str | pd.Timestamp | None, end: str | pd.Timestamp) -> pd.Series:
    """Net spend per customer over calendar days ``start`` .. ``end`` (both inclusive).

    Orders (``amount``) placed and refunds (``amount``) booked in the window; customers with no
    order and no refund in the window are absent. ``start=None`` means from the beginning.
    The result is not floored (a customer whose refunds exceed purchases gets a negative value).
    """
    _, stop = _day_end(end)
    lo = pd.Timestamp(start).normalize() if start is not None else pd.Timestamp.min
    o = orders.loc[(orders["order_ts"] >= lo) & (orders["order_ts"] < stop),
                   ["customer_id", "amount"]]
    g, ids = _customer_groups(o)
    spend = _keyed(g["amount"].sum(), ids)
    if returns is not None and len(returns):
        r = returns.loc[(returns["return_ts"] >= lo) & (returns["return_ts"] < stop),
                        ["customer_id", "amount"]]
        g, ids = _customer_groups(r)
        refunds = _keyed(g["amount"].sum(), ids)
        spend = spend.sub(refunds, fill_value=0.0)
    spend.index.name = "customer_id"
    return spend.rename("net_spend").astype(float)


def rfm_table(orders: pd.DataFrame, returns: pd.DataFrame | None = None, *,
              analysis_date: str | pd.Timestamp,
              same_day: Literal["merge", "separate"] = "merge") -> pd.DataFrame:
    """Recency, frequency and monetary value per customer at the analysis date.

    Args:
        orders: contract ``orders`` (``order_id``, ``customer_id``, ``order_ts``, ``amount``).
        returns: contract ``returns`` (``customer_id``, ``return_ts``, ``amount``) or ``None``.
        analysis_date: the last calendar day of data used (inclusive).
        same_day: ``"merge"`` counts purchase days, ``"separate"`` counts orders.

    Returns:
        DataFrame indexed by ``customer_id`` (sorted), one row per customer with at least one
        order in the window: ``recency_days`` (int), ``frequency`` (int), ``monetary`` (net,
        floored at 0), ``gross``, ``returns``, ``n_orders``, ``first_order_ts``,
        ``last_order_ts``, ``tenure_days``. ``attrs`` hold ``analysis_date``, ``same_day``,
        ``n_only_returns`` and ``only_returns_ids``.
    """
    if same_day not in ("merge", "separate"):
        raise ValueError(f"same_day must be 'merge' or 'separate'; got {same_day!r}")
    missing = [c for c in ("order_id", "customer_id", "order_ts", "amount") if c not in orders]
    if missing:
        raise ValueError(f"orders lacks columns {missing} (see helpers.contract.ORDERS)")
    day, stop = _day_end(analysis_date)
    o = orders.loc[orders["order_ts"] < stop, ["order_id", "customer_id", "order_ts", "amount"]]
    cols = ["recency_days", "frequency", "monetary", "gross", "returns", "n_orders",
            "first_order_ts", "last_order_ts", "tenure_days"]
    if o.empty:
        out = pd.DataFrame(columns=cols, index=pd.Index([], name="customer_id", dtype=object))
    else:
        o = o.assign(day=o["order_ts"].dt.normalize())
        g, ids = _customer_groups(o)
        out = _keyed(pd.DataFrame({
            "first_order_ts": g["order_ts"].min(),
            "last_order_ts": g["order_ts"].max(),
            "n_orders": g["order_id"].nunique(),
            "gross": g["amount"].sum().astype(float),
        }), ids)
        if same_day == "merge":
            out["frequency"] = _keyed(g["day"].nunique(), ids)
        else:
            out["frequency"] = out["n_orders"]
        out["recency_days"] = (day - out["last_order_ts"].dt.normalize()).dt.days
        out["tenure_days"] = (day - out["first_order_ts"].dt.normalize()).dt.days
        out["returns"] = 0.0
        out.index.name = "customer_id"
    only_returns: list[str] = []
    if returns is not None and len(returns):
        r = returns.loc[returns["return_ts"] < stop, ["customer_id", "amount"]]
        g_r, ids_r = _customer_groups(r)
        refunds = _keyed(g_r["amount"].sum(), ids_r)
        # customers with refunds but no order (one Arrow look-up, no Python set of all ids)
        only_returns = sorted(refunds.index[~isin(refunds.index, out.index)].tolist())
        out["returns"] = refunds.reindex(out.index).fillna(0.0).astype(float)
    out["monetary"] = (out["gross"] - out["returns"]).clip(lower=0.0).astype(float)
    out = out[cols]
    for c in ("recency_days", "frequency", "n_orders", "tenure_days"):
        out[c] = out[c].astype("int64")
    out.attrs.update({"analysis_date": str(day.date()), "same_day": same_day,
                      "n_only_returns": len(only_returns), "only_returns_ids": only_returns})
    return out


# --------------------------------------------------------------------------------------------
# scores


def _quantile_scores(values: pd.Series, bins: int, higher_is_better: bool) -> np.ndarray:
    """1 + floor(bins * share strictly worse); equal values share a score."""
    x = values.to_numpy(dtype=float)
    if not higher_is_better:
        x = -x
    n = len(x)
    if n == 0:
        return np.zeros(0, dtype=int)
    below = np.searchsorted(np.sort(x), x, side="left")  # number of strictly worse values
    return (1 + np.floor(bins * below / n)).astype(int).clip(1, bins)


def _fixed_scores(values: pd.Series, cuts: Sequence[float], bins: int,
                  higher_is_better: bool, name: str) -> np.ndarray:
    cuts = np.asarray(list(cuts), dtype=float)
    if len(cuts) != bins - 1 or np.any(np.diff(cuts) <= 0):
        raise ValueError(f"thresholds[{name!r}] must be {bins - 1} strictly increasing cut points; "
                         f"got {list(cuts)}")
    x = values.to_numpy(dtype=float)
    if higher_is_better:  # score = 1 + number of cut points reached (value >= cut)
        return 1 + np.searchsorted(cuts, x, side="right")
    # recency: score = bins - number of cut points exceeded (value > cut)
    return bins - np.searchsorted(cuts, x, side="left")


def score_rfm(rfm: pd.DataFrame, *, method: Literal["quantile", "fixed"] = "quantile",
              bins: int = 5, thresholds: Mapping[str, Sequence[float]] | None = None
              ) -> pd.DataFrame:
    """R, F and M scores 1..``bins`` (higher is better on every axis).

    ``method="quantile"``: a customer's score is ``1 + floor(bins * p)`` where ``p`` is the share
    of customers with a strictly worse value (larger recency; smaller frequency or monetary).
    Ties always share a score (deterministic, independent of row order); under heavy ties some
    scores stay unused. ``method="fixed"``: business cut points per axis (``bins - 1``
    ascending values, see :data:`DEFAULT_THRESHOLDS`): recency scores ``bins`` up to the first
    cut (inclusive) and one less past each further cut; frequency and monetary score one more
    for each cut they reach.

    Returns a DataFrame with the index of ``rfm`` and int columns ``R``, ``F``, ``M``, plus
    ``RFM`` (code such as ``"545"``) and ``score`` (R + F + M).
    """
    if not isinstance(bins, (int, np.integer)) or bins < 2:
        raise ValueError(f"bins must be an integer >= 2; got {bins!r}")
    if method not in ("quantile", "fixed"):
        raise ValueError(f"method must be 'quantile' or 'fixed'; got {method!r}")
    if method == "fixed" and thresholds is None:
        if bins != 5:
            raise ValueError("method='fixed' with bins != 5 needs explicit thresholds")
        thresholds = DEFAULT_THRESHOLDS
    out = pd.DataFrame(index=rfm.index)
    for col, spec in AXES.items():
        if col not in rfm:
            raise ValueError(f"rfm lacks column {col!r} (make it with rfm_table)")
        hib = bool(spec["higher_is_better"])
        if method == "quantile":
            s = _quantile_scores(rfm[col], bins, hib)
        else:
            if col not in thresholds:
                raise ValueError(f"thresholds lacks {col!r}; give cut points for "
                                 f"{sorted(AXES)}")
            s = _fixed_scores(rfm[col], thresholds[col], bins, hib, col)
        out[str(spec["score"])] = np.asarray(s, dtype="int64")
    out["RFM"] = out["R"].astype(str) + out["F"].astype(str) + out["M"].astype(str)
    out["score"] = out["R"] + out["F"] + out["M"]
    out.attrs.update({"method": method, "bins": int(bins)})
    return out


# --------------------------------------------------------------------------------------------
# named segments

#: The 11-segment R × F map (inclusive score ranges), adapted from the R×F grid that is common in
#: RFM practice; "Lost" is split from "Hibernating" at R = 1. Every (R, F) cell of the 5 × 5 grid
#: is in exactly one row (see :func:`check_segment_map`). Order = display order, best first.
SEGMENT_MAP = pd.DataFrame(
    [
        ("Champions", "重要价值客户", 5, 5, 4, 5, "bought recently, buy often"),
        ("Loyal", "忠诚客户", 3, 4, 4, 5, "buy often, fairly recently"),
        ("Potential loyalists", "潜力客户", 4, 5, 2, 3, "recent, a few purchases"),
        ("New", "新客户", 5, 5, 1, 1, "first purchase very recently"),
        ("Promising", "有潜力新客", 4, 4, 1, 1, "one recent purchase"),
        ("Need attention", "需关注客户", 3, 3, 3, 3, "average recency and frequency"),
        ("About to sleep", "即将沉睡", 3, 3, 1, 2, "few purchases, getting less recent"),
        ("At risk", "流失风险客户", 1, 2, 3, 4, "bought often, long ago"),
        ("Can't lose them", "重要挽留客户", 1, 2, 5, 5, "best frequency, long ago"),
        ("Hibernating", "沉睡客户", 2, 2, 1, 2, "few purchases, long ago"),
        ("Lost", "已流失客户", 1, 1, 1, 2, "few purchases, longest ago"),
    ],
    columns=["segment", "segment_zh", "r_min", "r_max", "f_min", "f_max", "description"],
)


def check_segment_map(segment_map: pd.DataFrame, bins: int = 5) -> None:
    """Raise ``ValueError`` unless every (R, F) cell in 1..bins is covered by exactly one row.

    The message lists the uncovered cells and the cells claimed by more than one segment.
    """
    need = {"segment", "r_min", "r_max", "f_min", "f_max"}
    if not need <= set(segment_map.columns):
        raise ValueError(f"segment map needs columns {sorted(need)}")
    if segment_map["segment"].duplicated().any():
        dup = sorted(segment_map.loc[segment_map["segment"].duplicated(), "segment"])
        raise ValueError(f"segment names must be unique; repeated: {dup}")
    owners: dict[tuple[int, int], list[str]] = {
        (r, f): [] for r in range(1, bins + 1) for f in range(1, bins + 1)}
    for row in segment_map.itertuples(index=False):
        for r in range(int(row.r_min), int(row.r_max) + 1):
            for f in range(int(row.f_min), int(row.f_max) + 1):
                if (r, f) not in owners:
                    raise ValueError(f"segment {row.segment!r} claims (R={r}, F={f}) outside "
                                     f"1..{bins}")
                owners[(r, f)].append(str(row.segment))
    gaps = [k for k, v in owners.items() if not v]
    overlaps = {k: v for k, v in owners.items() if len(v) > 1}
    if gaps or overlaps:
        msg = []
        if gaps:
            msg.append("uncovered (R, F) cells: " + ", ".join(f"({r},{f})" for r, f in gaps))
        if overlaps:
            msg.append("cells in more than one segment: " + "; ".join(
                f"({r},{f}): {', '.join(v)}" for (r, f), v in overlaps.items()))
        raise ValueError("segment map is not a partition of the R x F grid — " + " | ".join(msg))


def segment_grid(segment_map: pd.DataFrame = SEGMENT_MAP, bins: int = 5) -> pd.DataFrame:
    """The map as a grid: rows F = bins..1 (top = most frequent), columns R = 1..bins."""
    check_segment_map(segment_map, bins)
    grid = pd.DataFrame(index=pd.Index(range(bins, 0, -1), name="F"),
                        columns=pd.Index(range(1, bins + 1), name="R"), dtype=object)
    for row in segment_map.itertuples(index=False):
        for r in range(int(row.r_min), int(row.r_max) + 1):
            for f in range(int(row.f_min), int(row.f_max) + 1):
                grid.loc[f, r] = row.segment
    return grid


def assign_segments(scores: pd.DataFrame, segment_map: pd.DataFrame = SEGMENT_MAP) -> pd.Series:
    """Segment name per customer from the ``R`` and ``F`` scores and a (checked) segment map.

    Returns an ordered categorical Series (categories in the map's row order) with the index of
    ``scores``. The map is validated first with :func:`check_segment_map`.
    """
    bins = int(scores.attrs.get("bins", max(5, int(scores[["R", "F"]].to_numpy().max(initial=1)))))
    check_segment_map(segment_map, bins)
    grid = np.full((bins + 1, bins + 1), -1, dtype=np.int64)  # (R, F) -> row of the map
    for i, row in enumerate(segment_map.itertuples(index=False)):
        grid[int(row.r_min):int(row.r_max) + 1, int(row.f_min):int(row.f_max) + 1] = i
    r, f = scores["R"].to_numpy(dtype=np.int64), scores["F"].to_numpy(dtype=np.int64)
    bad = (r < 1) | (r > bins) | (f < 1) | (f > bins)
    if bad.any():
        raise ValueError(f"{int(bad.sum())} customers have R or F scores outside 1..{bins}, e.g. "
                         f"{list(zip(r[bad][:3].tolist(), f[bad][:3].tolist()))}")
    cats = pd.CategoricalDtype(list(segment_map["segment"]), ordered=True)
    return pd.Series(pd.Categorical.from_codes(grid[r, f], dtype=cats), index=scores.index,
                     name="segment")


# --------------------------------------------------------------------------------------------
# economics


def segment_summary(rfm: pd.DataFrame, segments: pd.Series,
                    scores: pd.DataFrame | None = None) -> pd.DataFrame:
    """Size, shares and average RFM per segment (all map segments, empty ones with zeros).

    Columns: ``customers``, ``customer_share``, ``revenue`` (sum of net ``monetary``),
    ``revenue_share``, ``recency_days``, ``frequency``, ``monetary`` (means), and the mean
    ``R``/``F``/``M`` scores when ``scores`` is given.
    """
    df = rfm[["recency_days", "frequency", "monetary"]].join(segments.rename("segment"))
    if scores is not None:
        df = df.join(scores[["R", "F", "M"]])
    g = df.groupby("segment", observed=False)
    out = pd.DataFrame({"customers": g.size()})
    out["customer_share"] = out["customers"] / max(len(df), 1)
    out["revenue"] = g["monetary"].sum()
    total = float(df["monetary"].sum())
    out["revenue_share"] = out["revenue"] / total if total > 0 else np.nan
    means = g[[c for c in df.columns if c != "segment"]].mean()
    out = out.join(means)
    out.index = out.index.astype(str)
    out.index.name = "segment"
    return out


def pareto_curve(monetary: pd.Series) -> pd.DataFrame:
    """Cumulative revenue share against cumulative customer share (customers by value, desc).

    Starts at (0, 0) and ends at (1, 1); negative values are treated as 0.
    """
    v = np.sort(np.clip(monetary.to_numpy(dtype=float), 0, None))[::-1]
    n = len(v)
    total = v.sum()
    cum = np.concatenate([[0.0], np.cumsum(v) / total]) if total > 0 else np.linspace(0, 1, n + 1)
    return pd.DataFrame({"customer_share": np.arange(n + 1) / max(n, 1), "revenue_share": cum})


def top_share(monetary: pd.Series, top: float = 0.2) -> float:
    """Share of total (non-negative) value held by the top ``top`` fraction of customers.

    The top group is ``ceil(top * n)`` customers (ties at the boundary do not matter: the sum of
    the k largest values is the same whichever tied customers are taken).
    """
    if not 0 < top <= 1:
        raise ValueError(f"top must be in (0, 1]; got {top}")
    v = np.sort(np.clip(monetary.to_numpy(dtype=float), 0, None))[::-1]
    if len(v) == 0 or v.sum() <= 0:
        return float("nan")
    k = int(np.ceil(top * len(v) - 1e-9))
    return float(v[:k].sum() / v.sum())


# --------------------------------------------------------------------------------------------
# migration


def migration_matrix(seg_from: pd.Series, seg_to: pd.Series, weights: pd.Series | None = None,
                     *, new_label: str = "(not yet a customer)") -> pd.DataFrame:
    """Transition matrix between two segmentations (rows: earlier, columns: later).

    Customers present only in ``seg_to`` appear in the row ``new_label``. With ``weights``
    (e.g. net spend between the two dates) cells hold the sum of weights instead of counts
    (customers missing from ``weights`` count 0). Row and column order follow the categories.
    """
    idx = seg_to.index
    rows = seg_from.reindex(idx).astype(object).where(lambda s: s.notna(), new_label)
    row_order = [c for c in _categories(seg_from)] + [new_label]
    col_order = _categories(seg_to)
    df = pd.DataFrame({"from": rows.to_numpy(), "to": seg_to.astype(object).to_numpy()}, index=idx)
    if weights is None:
        m = pd.crosstab(df["from"], df["to"])
    else:
        df["w"] = weights.reindex(idx).fillna(0.0).to_numpy(dtype=float)
        m = df.pivot_table(index="from", columns="to", values="w", aggfunc="sum", fill_value=0.0)
    m = m.reindex(index=row_order, columns=col_order, fill_value=0)
    m.index.name, m.columns.name = "from", "to"
    return m


def _categories(s: pd.Series) -> list[str]:
    if isinstance(s.dtype, pd.CategoricalDtype):
        return [str(c) for c in s.cat.categories]
    return sorted(map(str, s.dropna().unique()))


# --------------------------------------------------------------------------------------------
# clustering


def kmeans_rfm(rfm: pd.DataFrame, k: int, *, seed: int = 0, n_init: int = 10,
               fit_sample: int | None = None) -> tuple[pd.Series, pd.DataFrame]:
    """K-means on transformed RFM: log1p of recency, frequency and monetary, then standardized.

    Clusters are renumbered 1..k by descending mean monetary, so labels are stable across runs.
    Returns ``(labels, centres)`` where ``centres`` holds each cluster's size and mean raw RFM.
    The fit runs single-threaded: on three columns, OpenMP threads cost far more than they save
    on a shared machine (about 10x slower under load) and the result is the same.

    With ``fit_sample`` and more customers than that, the standardization and the centres are
    fitted on a seeded random sample of ``fit_sample`` customers and every customer is assigned
    to its nearest centre; below it (and by default) everything is fitted on all customers.
    """
    from sklearn.cluster import KMeans
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    if len(rfm) < k:
        raise ValueError(f"k-means needs at least k={k} customers; got {len(rfm)}")
    x = np.log1p(rfm[["recency_days", "frequency", "monetary"]].to_numpy(dtype=float))
    if fit_sample is not None and len(x) > fit_sample:
        if fit_sample < k:
            raise ValueError(f"fit_sample ({fit_sample}) must be at least k ({k})")
        rows = np.sort(np.random.default_rng(seed).choice(len(x), int(fit_sample),
                                                          replace=False))
        scaler = StandardScaler().fit(x[rows])
        with threadpool_limits(limits=1):
            km = KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit(
                scaler.transform(x[rows]))
            assigned = km.predict(scaler.transform(x))
    else:
        x = StandardScaler().fit_transform(x)
        with threadpool_limits(limits=1):
            km = KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit(x)
        assigned = km.labels_
    raw = pd.Series(assigned, index=rfm.index)
    order = rfm["monetary"].groupby(raw).mean().sort_values(ascending=False).index
    relabel = {old: new for new, old in enumerate(order, start=1)}
    labels = raw.map(relabel).rename("cluster").astype("int64")
    centres = rfm[["recency_days", "frequency", "monetary"]].groupby(labels).mean()
    centres.insert(0, "customers", labels.value_counts().sort_index())
    return labels, centres


def explained_share(values: pd.Series, groups: pd.Series) -> float:
    """Share of the variance of ``values`` explained by group means (eta squared, 0..1).

    ``1 - within-group sum of squares / total sum of squares``, aligned on the index. Used to
    compare how well two groupings (e.g. rule segments and K-means clusters) separate a later
    outcome. More groups never explain less, so compare groupings of similar size.
    """
    df = pd.DataFrame({"v": values, "g": groups}).dropna()
    v = df["v"].to_numpy(dtype=float)
    total = float(((v - v.mean()) ** 2).sum())
    if total == 0:
        return float("nan")
    within = float(((v - df.groupby("g", observed=True)["v"].transform("mean")) ** 2).sum())
    return 1.0 - within / total


# --------------------------------------------------------------------------------------------
# rates, tiers, playbook


def rate_with_ci(successes: int, n: int, level: float = 0.95) -> tuple[float, float, float]:
    """Proportion with a Wilson score interval: ``(rate, low, high)`` (NaNs when ``n == 0``)."""
    from scipy.stats import norm

    if n <= 0:
        return float("nan"), float("nan"), float("nan")
    z = float(norm.ppf(0.5 + level / 2))
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return float(p), float(centre - half), float(centre + half)


def value_group_rates(value: pd.Series, outcome: pd.Series, share: float = 0.2,
                      level: float = 0.95) -> pd.DataFrame:
    """Outcome rate (e.g. repurchase) of the top and bottom ``share`` of customers by ``value``.

    Groups hold ``floor(share * n)`` customers each (at least 1), ranked by ``value`` with ties
    broken by index order (deterministic). Returns rows ``high`` and ``low`` with ``customers``,
    ``rate``, ``ci_low``, ``ci_high`` (Wilson); ``attrs`` hold the difference high - low and its
    normal-approximation interval (``diff``, ``diff_low``, ``diff_high``) and the ``ratio``.
    """
    from scipy.stats import norm

    if not 0 < share <= 0.5:
        raise ValueError(f"share must be in (0, 0.5]; got {share}")
    df = pd.DataFrame({"value": value, "y": outcome}).dropna()
    if df.empty:
        raise ValueError("no customers with both a value and an outcome")
    rank = df["value"].rank(method="first", ascending=False)
    n_grp = max(int(np.floor(share * len(df) + 1e-9)), 1)
    groups = {"high": df.loc[rank <= n_grp, "y"], "low": df.loc[rank > len(df) - n_grp, "y"]}
    rows = {}
    for name, y in groups.items():
        rate, lo, hi = rate_with_ci(int(y.astype(bool).sum()), len(y), level)
        rows[name] = {"customers": len(y), "rate": rate, "ci_low": lo, "ci_high": hi}
    out = pd.DataFrame.from_dict(rows, orient="index")
    ph, pl = out.loc["high", "rate"], out.loc["low", "rate"]
    se = float(np.sqrt(ph * (1 - ph) / len(groups["high"]) + pl * (1 - pl) / len(groups["low"])))
    z = float(norm.ppf(0.5 + level / 2))
    out.attrs.update({"diff": ph - pl, "diff_low": ph - pl - z * se, "diff_high": ph - pl + z * se,
                      "ratio": ph / pl if pl > 0 else float("inf")})
    return out


def member_tiers(spend: pd.Series, *, gold_min: float, black_min: float) -> pd.Series:
    """Member tier (会员等级) from a spend measure.

    black if spend >= ``black_min``, gold if >= ``gold_min``, else silver. Returns an ordered
    categorical (silver < gold < black)."""
    if not 0 <= gold_min < black_min:
        raise ValueError(f"need 0 <= gold_min < black_min; got {gold_min}, {black_min}")
    v = spend.to_numpy(dtype=float)
    tier = np.where(v >= black_min, "black", np.where(v >= gold_min, "gold", "silver"))
    dtype = pd.CategoricalDtype(["silver", "gold", "black"], ordered=True)
    return pd.Series(pd.Categorical(tier, dtype=dtype), index=spend.index, name="tier")


#: Action playbook per segment (Guide 3.5, 4.5): objective, channel and offer. Teams adapt it.
PLAYBOOK = pd.DataFrame(
    [
        ("Champions", "retain and reward; ask for referrals", "app push, member day",
         "exclusive early access, black-card perks, no discounts needed"),
        ("Loyal", "upsell / cross-sell, move up a tier", "app push, e-mail",
         "tier upgrade path, points multipliers, bundles"),
        ("Potential loyalists", "build the habit (2nd-4th purchase)", "app push, mini-program",
         "points on next order, membership invitation"),
        ("New", "onboard, second purchase within 30 days", "welcome SMS / e-mail",
         "new-customer coupon on a complementary category"),
        ("Promising", "second purchase", "push, personalized recommendation",
         "limited-time coupon, 'guess you like'"),
        ("Need attention", "re-engage before they slip", "e-mail, push",
         "personalized recommendation, modest coupon"),
        ("About to sleep", "wake up", "SMS, e-mail",
         "time-limited coupon on past categories"),
        ("At risk", "win back (召回) the formerly frequent", "SMS, care call for top spenders",
         "win-back coupon, care message, satisfaction check"),
        ("Can't lose them", "win back at almost any cost", "personal outreach (phone, WeCom)",
         "strong personal offer, service recovery"),
        ("Hibernating", "low-cost reactivation", "festival campaigns (618, Double-11)",
         "festival promotion only"),
        ("Lost", "do not spend; test cheap recall", "mass e-mail / SMS",
         "none, or one low-cost recall test"),
    ],
    columns=["segment", "objective", "channel", "offer"],
)


#: Member tiers (会员等级) and what each tier adds on top of the segment's action (Guide 4.5).
TIER_BENEFITS = pd.DataFrame(
    [
        ("silver", "银卡", "below the gold threshold",
         "points on every order, birthday coupon; segment offers by SMS / push"),
        ("gold", "金卡", "trailing net spend >= gold threshold",
         "points x1.5, free shipping, member-day prices; win-back by e-mail + coupon"),
        ("black", "黑卡", "trailing net spend >= black threshold",
         "dedicated service, early access, exclusive events; win-back by personal call"),
    ],
    columns=["tier", "tier_zh", "rule", "benefits and outreach"],
).set_index("tier")


# --------------------------------------------------------------------------------------------
# plot


def plot_segment_grid(ax, segment_map: pd.DataFrame, summary: pd.DataFrame | None = None,
                      bins: int = 5, value: str = "customer_share") -> None:
    """Draw the segment map as rectangles on the R x F grid, labelled with ``summary[value]``.

    Each segment is drawn as the rectangle of its (inclusive) score ranges, coloured by segment;
    the label shows the name and, with ``summary``, the customer and revenue shares.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    check_segment_map(segment_map, bins)
    cmap = plt.get_cmap("tab20")
    for i, row in enumerate(segment_map.itertuples(index=False)):
        x0, y0 = row.r_min - 0.5, row.f_min - 0.5
        w, h = row.r_max - row.r_min + 1, row.f_max - row.f_min + 1
        ax.add_patch(Rectangle((x0, y0), w, h, facecolor=cmap(i % 20), edgecolor="white",
                               linewidth=2, alpha=0.85))
        label = str(row.segment)
        if summary is not None and row.segment in summary.index:
            s = summary.loc[row.segment]
            label += f"\n{s['customer_share']:.0%} cust."
            if "revenue_share" in s and pd.notna(s["revenue_share"]):
                label += f"\n{s['revenue_share']:.0%} rev."
        ax.text(x0 + w / 2, y0 + h / 2, label, ha="center", va="center", fontsize=8)
    ax.set_xlim(0.5, bins + 0.5)
    ax.set_ylim(0.5, bins + 0.5)
    ax.set_xticks(range(1, bins + 1))
    ax.set_yticks(range(1, bins + 1))
    ax.set_xlabel("R score (5 = most recent)")
    ax.set_ylabel("F score (5 = most frequent)")
    ax.grid(False)
