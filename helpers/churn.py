"""Churn warning for non-contractual e-commerce: labels, features, models, reasons, actions.

A shop without contracts never hears a customer leave, so *churn* is defined from behaviour:

    a customer active at the cutoff day ``c`` has **churned** when they place no order in the
    ``N`` days after it (days ``c+1 .. c+N``).

Cutoffs are calendar days, like the analysis date. Everything is built around them with one
strict rule (no leakage):

* **features** use only records before the end of the cutoff day (``ts < c + 1 day``): an order
  *on* the cutoff day, even at 23:59:59, is history;
* **labels** use only orders with ``c + 1 day <= order_ts < c + 1 day + N days``.

The *active base* at ``c`` are customers with at least one order in the ``lookback`` days up to
and including ``c`` — customers silent for longer are already lost and would only make the task
look easy.

Large tables: the orders and events are turned into integer customer codes once (numbered in
the sorted order of the ids, so sorting codes sorts ids) and every cutoff reuses them; ids are
looked up with :mod:`helpers.ids` (a missing id never matches).

The module is organised as the chapter is:

* windows and labels — :func:`churn_windows`, :func:`split_at`, :func:`churn_labels`,
  :func:`churn_rate_by_window`, :func:`inter_purchase_gaps`;
* features — :func:`build_features` (RFM, trends, own rhythm, returns, discounts, funnel,
  surveys, tenure, loyalty) and :data:`FEATURE_WORDS`; :func:`encode_events` (the events
  table's :data:`EVENT_COLUMNS` as integer codes, built once per chapter) and
  :func:`visit_starts`;
* models and evaluation — :func:`rfm_segments` + :class:`SegmentRule` (baseline),
  :func:`bgnbd_churn`, :func:`make_models`, :func:`fit_churn_models`, :func:`auc`,
  :func:`bootstrap_auc_ci`, :func:`evaluate_scores`, :func:`gains_table`,
  :func:`calibration_table`;
* truth — :func:`oracle_churn_probability` (synthetic data only);
* explanations — :func:`reason_codes`;
* other warning signals — :func:`activity_drop_flags`, :func:`time_to_next_purchase`;
* intervention — :func:`expected_retained_margin`, :func:`select_budget`,
  :func:`recommend_action`, :func:`risk_value_matrix`;
* uplift — :func:`t_learner_uplift`, :func:`qini_curve`, :func:`qini_coefficient`.
"""
from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from helpers.ids import dictionary_codes, isin, positions, sorted_codes

DAY = pd.Timedelta(days=1)
_DAY_NS = DAY.value

#: The columns of the events table this module uses (read only these: ``Dataset.read``).
EVENT_COLUMNS: list[str] = ["customer_id", "event_ts", "event_type", "session_id"]


# --------------------------------------------------------------------------------------------
# integer codes of the big tables (computed once per table, reused at every cutoff)
# --------------------------------------------------------------------------------------------
_MEMO: dict[tuple[str, int], tuple[weakref.ref, Any]] = {}


def _memo(kind: str, table: pd.DataFrame, build: Callable[[pd.DataFrame], Any]) -> Any:
    """``build(table)``, computed once per table object and reused while the table lives.

    The memo is only used for the very same object (and length), so a changed or different
    table is encoded afresh; it is dropped when the table is garbage-collected.
    """
    key = (kind, id(table))
    hit = _MEMO.get(key)
    if hit is not None and hit[0]() is table and hit[1].n_rows == len(table):
        return hit[1]
    enc = build(table)
    _MEMO[key] = (weakref.ref(table), enc)
    weakref.finalize(table, _MEMO.pop, key, None)
    return enc


def _sorted_codes(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes of ``values`` numbered in sorted order of the distinct values (-1 =
    missing) and the distinct values as an object array: sorting codes sorts the values (as
    ``pd.factorize(values, sort=True)``; a dictionary-encoded column costs no hashing)."""
    codes, uniques = sorted_codes(values)
    if isinstance(uniques, pa.Array):
        uniques = uniques.to_numpy(zero_copy_only=False)
    return codes, np.asarray(uniques, dtype=object)


@dataclass(frozen=True)
class EventCodes:
    """The behaviour events as integer arrays (see :func:`encode_events`).

    ``customers[cust[i]]`` is the customer of event ``i`` (``cust`` = -1 when missing);
    ``ts`` the event time in int64 nanoseconds; ``etype`` 1 for a view, 2 for an add-to-cart,
    0 for any other or a missing type (``type_code`` names the codes); ``session`` a session
    code (-1 = missing), None without ``session_id``.
    """

    customers: np.ndarray
    cust: np.ndarray
    ts: np.ndarray
    etype: np.ndarray
    type_code: dict[str, int]
    session: np.ndarray | None
    n_sessions: int
    lookup: Any = None  # ``customers`` for helpers.ids.positions

    @property
    def n_rows(self) -> int:
        return int(self.ts.shape[0])

    def __len__(self) -> int:
        return self.n_rows


#: :attr:`EventCodes.etype` of the event types that are counted (any other type: 0)
_EVENT_TYPE_CODE = {"view": 1, "cart": 2}


def encode_events(events: pd.DataFrame) -> EventCodes:
    """The events table (``customer_id``, ``event_ts``, ``event_type``, optional
    ``session_id``) as integer arrays, for :func:`build_features` and :func:`visit_starts`.

    The chapter encodes its (large) events table once and can then drop the frame: the codes
    take a fraction of the memory of the string columns, and every cutoff reuses them.
    """
    missing = [c for c in ("customer_id", "event_ts", "event_type") if c not in events.columns]
    if missing:
        raise ValueError(f"events: missing column(s) {missing}; the table has "
                         f"{list(events.columns)}")
    cust, customers = _sorted_codes(events["customer_id"])
    ts = events["event_ts"].to_numpy(dtype="datetime64[ns]").view(np.int64)
    # only views and add-to-cart are counted (other and missing types: 0), via the type codes
    tcode, tuniq = dictionary_codes(events["event_type"])
    names = tuniq.to_pylist() if isinstance(tuniq, pa.Array) else list(tuniq)
    lut = np.zeros(len(names) + 1, dtype=np.int8)  # the last slot: code -1 (missing)
    for i, t in enumerate(names):
        lut[i] = _EVENT_TYPE_CODE.get(t, 0) if isinstance(t, str) else 0
    etype = lut[tcode]
    del tcode
    session, n_sessions = None, 0
    if "session_id" in events.columns:
        session, sess_uniq = dictionary_codes(events["session_id"])
        n_sessions = len(sess_uniq)
        session = session.astype(np.int32 if n_sessions < 2**31 - 1 else np.int64)
    return EventCodes(customers=customers, cust=cust.astype(np.int32), ts=ts,
                      etype=etype, type_code=dict(_EVENT_TYPE_CODE),
                      session=session, n_sessions=n_sessions,
                      lookup=_lookup_values(customers))


def events_from(ds: Any) -> EventCodes | None:
    """:func:`encode_events` of a loaded dataset's events (``None`` without events): only
    :data:`EVENT_COLUMNS` are read, the ids dictionary-encoded (``ds.read(..., dictionary=)``:
    from a cached dataset, stored codes instead of hashing tens of millions of strings)."""
    if not ds.has("events"):
        return None
    cols = [c for c in EVENT_COLUMNS if c in ds.columns("events")]
    return encode_events(ds.read("events", columns=cols, dictionary=[
        c for c in ("customer_id", "session_id", "event_type") if c in cols]))


def _event_codes(events: pd.DataFrame | EventCodes) -> EventCodes:
    """Codes of an events table: taken as they are, or computed once per table object."""
    if isinstance(events, EventCodes):
        return events
    return _memo("events", events, encode_events)


def visit_starts(events: pd.DataFrame | EventCodes) -> pd.DataFrame:
    """One row per visit: the first event of each (customer, session) pair in table order, as
    ``customer_id`` and ``event_ts`` (the rows ``events.drop_duplicates(["customer_id",
    "session_id"])`` keeps; missing values count as one value). Without ``session_id`` every
    distinct (customer, time) is a visit."""
    enc = _event_codes(events)
    first = _session_starts(enc) if enc.session is not None else None
    if first is None:
        if enc.session is not None:
            width = enc.n_sessions + 1
            key = (enc.cust.astype(np.int64) + 1) * width + (enc.session.astype(np.int64) + 1)
        else:  # (customer, time) pairs: factorize the times first to keep the key small
            tcode, tuniq = pd.factorize(enc.ts)
            key = (enc.cust.astype(np.int64) + 1) * (len(tuniq) + 1) + tcode
        first = np.flatnonzero(~pd.Series(key, copy=False).duplicated().to_numpy())
        del key
    cust = enc.cust[first]
    return pd.DataFrame({"customer_id": _take_ids(enc.customers, cust),
                         "event_ts": enc.ts[first].view("datetime64[ns]")})


def _session_starts(enc: EventCodes) -> np.ndarray | None:
    """Rows of :func:`visit_starts` without hashing, when every session id belongs to one
    customer (the usual case; None otherwise): session codes are numbered in order of first
    appearance, so a row starts a visit when its code exceeds every earlier code; rows without
    a session id start a visit at the first such row of each customer."""
    sess = enc.session
    assert sess is not None
    has = sess >= 0
    seen = np.maximum.accumulate(sess)
    new = np.empty(len(sess), dtype=bool)
    if len(sess):
        new[0] = sess[0] >= 0
        new[1:] = sess[1:] > seen[:-1]
    del seen
    start = np.flatnonzero(new)  # start[code] = first row of session `code`
    del new
    if not np.array_equal(enc.cust[has], enc.cust[start][sess[has]]):
        return None  # a session id shared by customers: pairs need the general path
    no_sess = np.flatnonzero(~has)
    if len(no_sess):
        firsts = ~pd.Series(enc.cust[no_sess], copy=False).duplicated().to_numpy()
        start = np.sort(np.concatenate([start, no_sess[firsts]]))
    return start


def _take_ids(customers: np.ndarray, codes: np.ndarray) -> pd.Series | np.ndarray:
    """``customers[codes]`` with -1 = missing; Arrow strings (no Python string per row) when
    the ids are strings."""
    if len(customers) and pd.api.types.infer_dtype(customers, skipna=True) == "string":
        idx = pa.array(codes, mask=codes < 0)
        return pd.Series(pd.arrays.ArrowStringArray(pa.array(customers, type=pa.large_string())
                                                    .take(idx)))
    out = np.empty(len(codes), dtype=object)
    out[:] = None
    ok = codes >= 0
    out[ok] = customers[codes[ok]]
    return out


@dataclass(frozen=True)
class _OrderCodes:
    """Orders as integer arrays: sorted customer codes (-1 = missing) and int64 times."""

    customers: np.ndarray
    cust: np.ndarray
    ts: np.ndarray
    lookup: Any  # ``customers`` for helpers.ids.positions

    @property
    def n_rows(self) -> int:
        return int(self.ts.shape[0])


def _encode_orders(frame: pd.DataFrame, ts: str = "order_ts") -> _OrderCodes:
    cust, customers = _sorted_codes(frame["customer_id"])
    return _OrderCodes(customers=customers, cust=cust,
                       ts=frame[ts].to_numpy(dtype="datetime64[ns]").view(np.int64),
                       lookup=_lookup_values(customers))


def _order_codes(orders: pd.DataFrame) -> _OrderCodes:
    return _memo("orders", orders, _encode_orders)


def _lookup_values(customers: np.ndarray) -> Any:
    """The distinct ids in the form :func:`helpers.ids.positions` looks up fastest (Arrow
    strings for string ids, converted once per encoded table)."""
    if len(customers) and pd.api.types.infer_dtype(customers, skipna=True) == "string":
        return pa.array(customers, type=pa.large_string())
    return pd.Series(customers, dtype=object)


def _row_positions(codes: np.ndarray, customers: np.ndarray, ids: pd.Index,
                   lookup: Any = None) -> np.ndarray:
    """For each row's customer code, the position of that customer in ``ids`` (-1 = not there
    or missing): one lookup per distinct customer, then an integer take per row."""
    cpos = positions(lookup if lookup is not None else _lookup_values(customers), ids)
    cpos = np.append(cpos, -1)  # code -1 (missing) -> the last entry, -1
    return cpos[codes]


def _spread(values: pd.Series, ids: pd.Index) -> pd.Series:
    """A result indexed by positions ``0..len(ids)-1`` (a subset, e.g. a groupby over
    positions) as a float Series on ``ids``, NaN where absent (like ``reindex``)."""
    out = np.full(len(ids), np.nan)
    out[values.index.to_numpy(dtype=np.int64)] = values.to_numpy(dtype=float)
    return pd.Series(out, index=ids)


# --------------------------------------------------------------------------------------------
# windows and labels
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Windows:
    """The two cutoff days of an out-of-time design.

    The evaluation labels end on the analysis date (fully observed); the training labels end on
    the evaluation cutoff, so the test period is strictly later than anything the model saw.
    """

    train_cutoff: pd.Timestamp
    eval_cutoff: pd.Timestamp
    analysis_date: pd.Timestamp
    window_days: int

    def table(self) -> pd.DataFrame:
        """The design as rows (period, first day, last day) for display."""
        n, f = self.window_days, "%Y-%m-%d"
        rows = [
            ("training features", "data start", self.train_cutoff.strftime(f)),
            ("training labels", (self.train_cutoff + DAY).strftime(f),
             (self.train_cutoff + n * DAY).strftime(f)),
            ("test features", "data start", self.eval_cutoff.strftime(f)),
            ("test labels", (self.eval_cutoff + DAY).strftime(f),
             (self.eval_cutoff + n * DAY).strftime(f)),
            ("scoring today", "data start", self.analysis_date.strftime(f)),
        ]
        return pd.DataFrame(rows, columns=["period", "first day", "last day"])


def churn_windows(analysis_date: str | pd.Timestamp, window_days: int) -> Windows:
    """Out-of-time cutoff days for a label window of ``window_days`` ending on the analysis date.

    ``eval_cutoff = analysis_date - N days`` (its labels are days ``eval_cutoff+1 .. analysis
    date``); ``train_cutoff = eval_cutoff - N days`` (its labels end on the evaluation cutoff).
    """
    if isinstance(window_days, bool) or int(window_days) != window_days or window_days < 1:
        raise ValueError("window_days must be a positive whole number of days; "
                         f"got {window_days!r}")
    n = int(window_days)
    a = pd.Timestamp(analysis_date).normalize()
    ev = a - n * DAY
    return Windows(train_cutoff=ev - n * DAY, eval_cutoff=ev, analysis_date=a, window_days=n)


def _stop(cutoff: str | pd.Timestamp) -> pd.Timestamp:
    """First instant after the cutoff day."""
    return pd.Timestamp(cutoff).normalize() + DAY


def split_at(frame: pd.DataFrame, cutoff: str | pd.Timestamp, window_days: int | None = None,
             ts: str = "order_ts") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split records at a cutoff day: ``(history, label_window)``.

    ``history``: rows with ``ts`` on or before the cutoff day (``ts < cutoff + 1 day``).
    ``label_window``: rows in the ``window_days`` days after it (``cutoff + 1 day <= ts <
    cutoff + 1 day + window_days``), or everything after the cutoff day when ``window_days`` is
    None.
    """
    stop = _stop(cutoff)
    t = frame[ts]
    hist = frame[t < stop]
    after = t >= stop
    if window_days is not None:
        after &= t < stop + int(window_days) * DAY
    return hist, frame[after]


def active_base(orders: pd.DataFrame, cutoff: pd.Timestamp,
                lookback_days: int | None = 365) -> pd.Index:
    """Customers with an order in the ``lookback_days`` days up to and including the cutoff day
    (any order when None), sorted."""
    enc = _order_codes(orders)
    codes = _active_codes(enc, cutoff, lookback_days)
    return pd.Index(enc.customers[codes], dtype=object, name="customer_id")


def _active_codes(enc: _OrderCodes, cutoff: pd.Timestamp, lookback_days: int | None
                  ) -> np.ndarray:
    """Sorted customer codes of the active base (see :func:`active_base`)."""
    stop = _stop(cutoff).value
    keep = enc.ts < stop
    if lookback_days is not None:
        keep &= enc.ts >= stop - int(lookback_days) * _DAY_NS
    seen = np.bincount(enc.cust[keep & (enc.cust >= 0)], minlength=len(enc.customers))
    return np.flatnonzero(seen)  # codes are numbered in sorted order of the ids


def churn_labels(orders: pd.DataFrame, cutoff: pd.Timestamp, window_days: int,
                 lookback_days: int | None = 365) -> pd.Series:
    """1 = churned (no order in the label window), 0 = bought again; indexed by the active base."""
    enc = _order_codes(orders)
    base_codes = _active_codes(enc, cutoff, lookback_days)
    base = pd.Index(enc.customers[base_codes], dtype=object, name="customer_id")
    stop = _stop(cutoff).value
    in_win = (enc.ts >= stop) & (enc.ts < stop + int(window_days) * _DAY_NS) & (enc.cust >= 0)
    bought = np.zeros(len(enc.customers), dtype=bool)
    bought[enc.cust[in_win]] = True
    return pd.Series((~bought[base_codes]).astype(int), index=base, name="churned")


def churn_rate_by_window(orders: pd.DataFrame, analysis_date: str | pd.Timestamp,
                         windows: list[int], lookback_days: int | None = 365) -> pd.DataFrame:
    """Churn rate for several window lengths N, each with its cutoff N days before the analysis
    date (so every label window is fully observed)."""
    rows = []
    for n in windows:
        cut = pd.Timestamp(analysis_date).normalize() - int(n) * DAY
        y = churn_labels(orders, cut, n, lookback_days)
        rows.append({"window_days": int(n), "cutoff": cut, "n_active": len(y),
                     "churn_rate": float(y.mean()) if len(y) else np.nan})
    return pd.DataFrame(rows)


def inter_purchase_gaps(orders: pd.DataFrame, until: pd.Timestamp | None = None) -> pd.Series:
    """Days between consecutive orders of the same customer (orders up to ``until``)."""
    enc = _order_codes(orders)
    keep = enc.cust >= 0
    if until is not None:
        keep &= enc.ts < _stop(until).value
    cust, ts = enc.cust[keep], enc.ts[keep]
    order = np.lexsort((ts, cust))  # by customer (codes sort like the ids), then time
    cust, ts = cust[order], ts[order]
    same = cust[1:] == cust[:-1]
    gap = (ts[1:] - ts[:-1])[same] / _DAY_NS
    return pd.Series(gap, name="gap_days")


# --------------------------------------------------------------------------------------------
# features
# --------------------------------------------------------------------------------------------
#: Plain words for each feature, as (text when the customer's value is above the typical value,
#: text when below). ``{v}`` is replaced by the customer's value. A reason is shown when the
#: feature pushes the customer's risk up, in whichever direction their value deviates.
FEATURE_WORDS: dict[str, tuple[str, str]] = {
    "recency_days": ("no order for {v:.0f} days", "ordered only {v:.0f} days ago"),
    "overdue_ratio": ("silent {v:.1f}x longer than their usual gap between orders",
                      "still within their usual gap between orders"),
    "frequency": ("{v:.0f} orders so far", "only {v:.0f} order(s) so far"),
    "one_time_buyer": ("bought only once", "bought more than once"),
    "tenure_days": ("customer for {v:.0f} days", "new customer ({v:.0f} days)"),
    "log_aov": ("large baskets", "small baskets"),
    "log_spend_365d": ("high spend in the last year", "low spend in the last year"),
    "orders_90d": ("{v:.0f} orders in the last 90 days",
                   "few orders in the last 90 days ({v:.0f})"),
    "order_trend": ("more orders than in the 90 days before",
                    "fewer orders than in the 90 days before"),
    "mean_gap_days": ("usually waits {v:.0f} days between orders",
                      "usually orders every {v:.0f} days"),
    "return_rate": ("returned {v:.0%} of what they bought", "rarely returns"),
    "coupon_share": ("{v:.0%} of orders with a coupon (price-sensitive)", "rarely uses coupons"),
    "discount_share": ("discounts were {v:.0%} of the basket value", "rarely gets discounts"),
    "views_30d": ("{v:.0f} product views in the last 30 days",
                  "few product views in the last 30 days ({v:.0f})"),
    "sessions_30d": ("{v:.0f} visits in the last 30 days",
                     "few visits in the last 30 days ({v:.0f})"),
    "carts_30d": ("{v:.0f} add-to-cart in the last 30 days",
                  "few add-to-cart in the last 30 days ({v:.0f})"),
    "days_since_event": ("no visit for {v:.0f} days", "visited {v:.0f} days ago"),
    "event_trend": ("browsing up to {v:.0%} of its earlier level",
                    "browsing fell to {v:.0%} of its earlier level"),
    "last_nps": ("last NPS answer {v:.0f} of 10", "low NPS answer ({v:.0f} of 10)"),
    "has_survey": ("answered a survey", "never answered a survey"),
    "member": ("loyalty member", "not a loyalty member"),
    "r_score": ("recency score {v:.0f} of 5", "low recency score ({v:.0f} of 5)"),
    "f_score": ("frequency score {v:.0f} of 5", "low frequency score ({v:.0f} of 5)"),
    "m_score": ("value score {v:.0f} of 5", "low value score ({v:.0f} of 5)"),
}


def _quintile_score(x: pd.Series, higher_is_better: bool = True) -> pd.Series:
    """1..5 score by quintile of rank (ties broken by order, so small data still gets 5 bins)."""
    if len(x) == 0:
        return x.astype(float)
    r = x.rank(method="first", ascending=higher_is_better) / len(x)
    return np.ceil(r * 5).clip(1, 5).astype(float)


def build_features(cutoff: pd.Timestamp, customers: pd.Index, orders: pd.DataFrame, *,
                   returns: pd.DataFrame | None = None,
                   events: pd.DataFrame | EventCodes | None = None,
                   surveys: pd.DataFrame | None = None,
                   loyalty: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row of features per customer, from records with timestamps ``<= cutoff`` only.

    Always: RFM (recency, frequency, spend, average order value), RFM quintile scores, tenure,
    orders in the last 90 days and the trend vs the 90 days before, the customer's own mean gap
    between orders and how overdue they are relative to it. When the tables/columns exist:
    return rate, coupon and discount shares, funnel activity (views, visits, add-to-cart in the
    last 30 days, days since the last visit, browsing trend), last NPS answer and loyalty
    membership. The result has no missing values (fill rules below) so every model can use it.

    Fill rules: a one-time buyer's mean gap is the median gap of repeat buyers (flag
    ``one_time_buyer``); customers without events get "no visit since the first order"; without a
    survey answer NPS is the median answer (flag ``has_survey``). Behaviour events older than a
    year are not used (``days_since_event`` is at most 365 or the tenure).

    Cost: the orders (and an events frame) are turned into integer codes once per table object
    and reused at every later call, so a chapter that builds features at several cutoffs does
    no string work per cutoff; pass ``events`` as :func:`encode_events` codes to drop the frame.
    """
    t = _stop(cutoff)  # first instant after the cutoff day
    ids = pd.Index(customers, name="customer_id")
    if not ids.is_unique:  # compute once per customer, then repeat the rows as asked
        return build_features(cutoff, ids.unique(), orders, returns=returns, events=events,
                              surveys=surveys, loyalty=loyalty).reindex(ids)
    t_ns, k = t.value, len(ids)
    # integer codes of the orders (computed once per table and reused at every cutoff): the
    # rows of these customers up to the cutoff, grouped by their position in ids
    enc = _order_codes(orders)
    opos = _row_positions(enc.cust, enc.customers, ids, enc.lookup)
    rows = np.flatnonzero((opos >= 0) & (enc.ts < t_ns))
    pos, o_ts = opos[rows], enc.ts[rows]
    del opos
    amount = pd.Series(orders["amount"].to_numpy()[rows], copy=False)
    g_ts = pd.Series(o_ts, copy=False).groupby(pos)
    first, last, n = g_ts.min(), g_ts.max(), g_ts.size()
    spend = amount.groupby(pos).sum()
    f = pd.DataFrame(index=ids)
    f["recency_days"] = _spread((t_ns - last) / _DAY_NS, ids)
    f["tenure_days"] = _spread((t_ns - first) / _DAY_NS, ids)
    f["frequency"] = _spread(n, ids).fillna(0).astype(float)
    f["one_time_buyer"] = (f["frequency"] <= 1).astype(float)
    gap = _spread((last - first) / _DAY_NS / (n - 1).where(n > 1), ids)
    fill_gap = gap.median() if gap.notna().any() else f["tenure_days"].median()
    f["mean_gap_days"] = gap.fillna(fill_gap).clip(lower=1.0)
    f["overdue_ratio"] = f["recency_days"] / f["mean_gap_days"]
    f["log_aov"] = np.log1p(_spread(spend / n, ids).fillna(0).clip(lower=0))
    in365 = o_ts >= t_ns - 365 * _DAY_NS
    recent = amount[in365].groupby(pos[in365]).sum()
    f["log_spend_365d"] = np.log1p(_spread(recent, ids).fillna(0).clip(lower=0))
    o90 = np.bincount(pos[o_ts >= t_ns - 90 * _DAY_NS], minlength=k)
    p90 = np.bincount(pos[(o_ts >= t_ns - 180 * _DAY_NS) & (o_ts < t_ns - 90 * _DAY_NS)],
                      minlength=k)
    f["orders_90d"] = o90.astype(float)
    f["order_trend"] = f["orders_90d"] - p90
    f["r_score"] = _quintile_score(-f["recency_days"])
    f["f_score"] = _quintile_score(f["frequency"] + 1e-6 * f["tenure_days"])
    f["m_score"] = _quintile_score(f["log_spend_365d"])

    if returns is not None and len(returns):
        rpos = positions(returns["customer_id"], ids)
        keep = (rpos >= 0) & (returns["return_ts"] < t).to_numpy()
        ra = _spread(pd.Series(returns["amount"].to_numpy()[keep]).groupby(rpos[keep]).sum(),
                     ids).fillna(0)
        f["return_rate"] = (ra / _spread(spend, ids).replace(0, np.nan)).fillna(0).clip(0, 1)
    for col, name in (("coupon_used", "coupon_share"), ("discount_amount", "discount_share")):
        if col not in orders.columns:
            continue
        vals = orders[col].take(rows).reset_index(drop=True)
        if not vals.notna().any():
            continue
        if name == "coupon_share":
            f[name] = _spread(vals.groupby(pos).mean().astype(float), ids).fillna(0)
        else:
            disc = _spread(vals.groupby(pos).sum(), ids).fillna(0)
            f[name] = (disc / (disc + _spread(spend, ids).fillna(0))).fillna(0)
    if events is not None and len(events):
        # integer codes of the events table (computed once per table and reused for every
        # cutoff), then masks and counting on arrays: linear in the events, no string work
        enc = _event_codes(events)
        epos = _row_positions(enc.cust, enc.customers, ids, enc.lookup)
        rows = np.flatnonzero((enc.ts < t_ns) & (enc.ts >= t_ns - 365 * _DAY_NS) & (epos >= 0))
        pos = epos[rows]
        del epos
        e_ts = enc.ts[rows]
        in30 = e_ts >= t_ns - 30 * _DAY_NS
        etype = enc.etype[rows]
        for col, name in (("view", "views_30d"), ("cart", "carts_30d")):
            hit = in30 & (etype == enc.type_code.get(col, -2))
            f[name] = np.bincount(pos[hit], minlength=k).astype(float)
        if enc.session is not None:  # distinct visits in the last 30 days
            sid = enc.session[rows[in30]]
            ok = sid >= 0
            mult = max(enc.n_sessions, 1)
            pairs = np.unique(pos[in30][ok] * mult + sid[ok])
            s = np.bincount(pairs // mult, minlength=k)
        else:
            s = np.bincount(pos[in30], minlength=k)
        f["sessions_30d"] = s.astype(float)
        last_ns = (pd.Series(e_ts).groupby(pos).max()  # latest event per customer
                   .reindex(range(k), fill_value=np.iinfo(np.int64).min).to_numpy())
        seen = last_ns != np.iinfo(np.int64).min
        since = np.where(seen, (t_ns - last_ns) / _DAY_NS, np.nan)
        # no visit in the last year: count the whole year (or the tenure if shorter)
        f["days_since_event"] = pd.Series(since, index=ids).fillna(
            np.minimum(f["tenure_days"], 365.0))
        before = (e_ts >= t_ns - 120 * _DAY_NS) & ~in30
        rate_before = pd.Series(np.bincount(pos[before], minlength=k) / 90, index=ids)
        rate_now = pd.Series(np.bincount(pos[in30], minlength=k) / 30, index=ids)
        f["event_trend"] = ((rate_now + 0.05) / (rate_before + 0.05)).clip(upper=5)
    if surveys is not None and len(surveys):
        sv, _ = split_at(surveys[isin(surveys["customer_id"], ids)], cutoff, ts="survey_ts")
        sv = sv.sort_values("survey_ts")
        last_nps = _spread(sv["nps"].reset_index(drop=True)
                           .groupby(positions(sv["customer_id"], ids)).last(), ids)
        f["has_survey"] = last_nps.notna().astype(float)
        med = float(sv["nps"].median()) if len(sv) else 7.0
        f["last_nps"] = last_nps.astype(float).fillna(med)
    if loyalty is not None and len(loyalty):
        members = loyalty.loc[loyalty["enrolled_at"] < t, "customer_id"]
        f["member"] = isin(ids, members).astype(float)
    return f.astype(float)


def customer_value(orders: pd.DataFrame, cutoff: pd.Timestamp, customers: pd.Index,
                   returns: pd.DataFrame | None = None, margin_rate: float = 0.3,
                   days: int = 365) -> pd.Series:
    """Margin at stake if the customer stays: net spend of the last ``days`` x ``margin_rate``.

    A simple, explainable proxy for next year's margin (net of returns, never negative).
    """
    t = _stop(cutoff)  # first instant after the cutoff day
    ids = pd.Index(customers, name="customer_id")
    if not ids.is_unique:
        return customer_value(orders, cutoff, ids.unique(), returns, margin_rate,
                              days).reindex(ids)
    enc = _order_codes(orders)
    opos = _row_positions(enc.cust, enc.customers, ids, enc.lookup)
    rows = np.flatnonzero((opos >= 0) & (enc.ts < t.value) & (enc.ts >= (t - days * DAY).value))
    amount = pd.Series(orders["amount"].to_numpy()[rows], copy=False)
    spend = _spread(amount.groupby(opos[rows]).sum(), ids).fillna(0)
    if returns is not None and len(returns):
        rts = returns["return_ts"]
        rpos = positions(returns["customer_id"], ids)
        keep = (rpos >= 0) & (rts < t).to_numpy() & (rts >= t - days * DAY).to_numpy()
        refund = pd.Series(returns["amount"].to_numpy()[keep]).groupby(rpos[keep]).sum()
        spend = spend - _spread(refund, ids).fillna(0)
    return (spend.clip(lower=0) * float(margin_rate)).rename("value")


# --------------------------------------------------------------------------------------------
# metrics
# --------------------------------------------------------------------------------------------
def auc(y: np.ndarray | pd.Series, score: np.ndarray | pd.Series) -> float:
    """ROC AUC (Mann–Whitney with average ranks for ties); NaN when only one class is present."""
    from scipy.stats import rankdata

    y = np.asarray(y, dtype=bool)
    s = np.asarray(score, dtype=float)
    n1, n0 = int(y.sum()), int((~y).sum())
    if n1 == 0 or n0 == 0:
        return float("nan")
    r = rankdata(s)
    return float((r[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def bootstrap_auc_ci(y: np.ndarray | pd.Series, score: np.ndarray | pd.Series, n_boot: int = 200,
                     seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the ROC AUC (customers resampled).

    Each resample draws ``n`` customers with replacement; its AUC is the Mann–Whitney statistic
    computed from counts per distinct score (churners above returners, ties counting one half),
    which equals the rank formula of :func:`auc` on the resample. The scores are sorted once, so
    a resample costs one pass over the data instead of a sort (linear in the number of
    customers).
    """
    y = np.asarray(y, dtype=bool)
    s = np.asarray(score, dtype=float)
    rng = np.random.default_rng(seed)
    n = len(y)
    _, group = np.unique(s, return_inverse=True)  # tie groups of the score, in increasing order
    group = group.ravel()
    n_groups = int(group.max()) + 1 if n else 0
    # one cell per (tie group, class): a resample is one gather and one count of its cells
    cell = group.astype(np.int64) * 2 + y
    cell = cell.astype(np.int32) if 2 * n_groups < 2**31 else cell
    out = []
    for _ in range(int(n_boot)):
        i = rng.integers(0, n, n)
        counts = np.bincount(cell[i], minlength=2 * n_groups).reshape(n_groups, 2)
        neg, pos = counts[:, 0].astype(float), counts[:, 1].astype(float)
        n1, n0 = pos.sum(), neg.sum()
        if n1 == 0 or n0 == 0:
            continue
        below = np.cumsum(neg) - neg  # returners with a lower score
        out.append(float((pos * (below + 0.5 * neg)).sum() / (n1 * n0)))
    if not out:
        return float("nan"), float("nan")
    a = (1 - level) / 2
    return float(np.quantile(out, a)), float(np.quantile(out, 1 - a))


def top_share_stats(y: np.ndarray | pd.Series, score: np.ndarray | pd.Series,
                    share: float = 0.1) -> tuple[float, float]:
    """Precision and lift among the ``share`` highest scores (ties broken by position)."""
    y = np.asarray(y, dtype=float)
    s = np.asarray(score, dtype=float)
    k = max(1, int(round(share * len(y))))
    top = np.argsort(-s, kind="stable")[:k]
    prec = float(y[top].mean())
    base = float(y.mean())
    return prec, (prec / base if base > 0 else float("nan"))


def evaluate_scores(y: pd.Series, probs: Mapping[str, np.ndarray], n_boot: int = 200,
                    seed: int = 0) -> pd.DataFrame:
    """One row per model: ROC AUC (+ bootstrap 95% CI), PR AUC, Brier, top-decile precision/lift.

    ``probs`` are predicted churn probabilities (Brier needs probabilities; for a pure ranking
    score pass NaN-free probabilities from a calibration step).
    """
    from sklearn.metrics import average_precision_score, brier_score_loss

    yv = np.asarray(y, dtype=int)
    rows = []
    for name, p in probs.items():
        p = np.asarray(p, dtype=float)
        lo, hi = bootstrap_auc_ci(yv, p, n_boot=n_boot, seed=seed)
        prec, lift = top_share_stats(yv, p, 0.1)
        rows.append({"model": name, "roc_auc": auc(yv, p), "auc_ci_low": lo, "auc_ci_high": hi,
                     "pr_auc": float(average_precision_score(yv, p)),
                     "brier": float(brier_score_loss(yv, np.clip(p, 0, 1))),
                     "top10_precision": prec, "top10_lift": lift})
    return pd.DataFrame(rows).set_index("model")


def gains_table(y: np.ndarray | pd.Series, score: np.ndarray | pd.Series,
                n_bins: int = 10) -> pd.DataFrame:
    """Cumulative gains and lift by score decile (decile 1 = highest risk)."""
    y = np.asarray(y, dtype=float)
    s = np.asarray(score, dtype=float)
    order = np.argsort(-s, kind="stable")
    ys = y[order]
    edges = np.linspace(0, len(y), n_bins + 1).round().astype(int)
    rows, total = [], ys.sum()
    for b in range(n_bins):
        part = ys[edges[b]:edges[b + 1]]
        upto = ys[:edges[b + 1]]
        rows.append({"decile": b + 1, "n": len(part),
                     "churn_rate": part.mean() if len(part) else np.nan,
                     "cum_share_customers": edges[b + 1] / len(y),
                     "cum_share_churners": upto.sum() / total if total else np.nan,
                     "lift": (part.mean() / y.mean()) if len(part) and y.mean() else np.nan})
    return pd.DataFrame(rows)


def calibration_table(y: np.ndarray | pd.Series, prob: np.ndarray | pd.Series,
                      n_bins: int = 10) -> pd.DataFrame:
    """Mean predicted vs observed churn rate in equal-count bins of the prediction."""
    df = pd.DataFrame({"y": np.asarray(y, float), "p": np.asarray(prob, float)})
    df["bin"] = pd.qcut(df["p"].rank(method="first"), q=min(n_bins, len(df)), labels=False)
    out = df.groupby("bin").agg(predicted=("p", "mean"), observed=("y", "mean"), n=("y", "size"))
    return out.reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# models
# --------------------------------------------------------------------------------------------
def rfm_segments(orders: pd.DataFrame, cutoff: str | pd.Timestamp, customers: pd.Index,
                 returns: pd.DataFrame | None = None) -> pd.Series:
    """Chapter 03's named RFM segment of each customer at the cutoff day (:mod:`helpers.rfm`).

    Scores are quintiles among every customer with an order up to the cutoff day, as in the RFM
    chapter; the result is indexed by ``customers`` (the active base).
    """
    from helpers import rfm

    # the same table on integer codes (customers numbered in sorted order, order ids by first
    # appearance): scores depend on values only, so the segments are the same, without string
    # grouping over every order at each cutoff
    enc = _order_codes(orders)
    keep = enc.cust >= 0
    oid = _memo("order_ids", orders, _encode_order_ids).codes
    coded = pd.DataFrame({"order_id": oid[keep], "customer_id": enc.cust[keep],
                          "order_ts": orders["order_ts"].array[keep],
                          "amount": orders["amount"].array[keep]})
    coded_r = None
    if returns is not None and len(returns):
        coded_r = pd.DataFrame({"customer_id": positions(returns["customer_id"], enc.lookup),
                                "return_ts": returns["return_ts"].array,
                                "amount": returns["amount"].array})
    table = rfm.rfm_table(coded, coded_r, analysis_date=pd.Timestamp(cutoff).normalize())
    del coded, coded_r
    seg = rfm.assign_segments(rfm.score_rfm(table))
    ids = pd.Index(customers, name="customer_id")
    return pd.Series(seg.reindex(positions(ids, enc.lookup)).array, index=ids, name=seg.name)


@dataclass(frozen=True)
class _OrderIds:
    codes: np.ndarray  # float: the order id's code, NaN when missing (so nunique skips it)
    n_rows: int


def _encode_order_ids(orders: pd.DataFrame) -> _OrderIds:
    codes = pd.factorize(orders["order_id"])[0].astype(float)
    codes[codes < 0] = np.nan
    return _OrderIds(codes=codes, n_rows=len(codes))


class SegmentRule:
    """Baseline: churn probability = the training churn rate of the customer's RFM segment.

    The rule a CRM team uses without a model ("At risk" and "Hibernating" get the win-back
    campaign), with each segment's rate learnt on the training cutoff and shrunk towards the
    overall rate by 10 pseudo-customers; a segment unseen in training gets the overall rate.
    """

    def fit(self, segment: pd.Series, y: pd.Series) -> SegmentRule:
        yy = pd.Series(np.asarray(y, float), index=segment.index)
        grp = yy.groupby(segment.astype(str).to_numpy())
        self.base_ = float(yy.mean())
        self.rates_ = (grp.sum() + 10 * self.base_) / (grp.size() + 10)
        return self

    def predict(self, segment: pd.Series) -> np.ndarray:
        return segment.astype(str).map(self.rates_).fillna(self.base_).to_numpy(float)


def bgnbd_churn(orders: pd.DataFrame, cutoff: str | pd.Timestamp, customers: pd.Index,
                window_days: int, *, max_fit_rows: int | None = None,
                seed: int = 0) -> tuple[pd.DataFrame, dict[str, float]]:
    """Buy-till-you-die view of churn at the cutoff day (BG/NBD from :mod:`helpers.clv`).

    The model is fitted in weeks on *every* customer with an order up to the cutoff day (it needs
    the silent ones to learn drop-out). For ``customers`` it returns ``p_alive`` and
    ``p_no_purchase``, the model's probability of no purchase in the next ``window_days``:
    ``1 - P(alive) + P(alive) x ((alpha + T) / (alpha + T + t)) ** (r + x)`` — dead customers
    never buy, and an alive customer's rate has the gamma posterior ``(r + x, alpha + T)``, under
    which the chance of zero purchases in ``t`` weeks is that power. (P(alive) alone ranks
    one-time buyers badly: the BG/NBD lets nobody die before a repeat purchase.)

    ``max_fit_rows``: above this many customers the four parameters are fitted on a seeded
    random sample of that size (``seed``; population parameters, so a large sample estimates
    them as well as everyone at a fraction of the time); every customer is still scored. None
    fits on all customers.
    """
    from helpers import clv

    summ = clv.rfm_summary(orders, observation_end=pd.Timestamp(cutoff).normalize(),
                           time_unit="W")
    fit = summ
    if max_fit_rows is not None and len(summ) > int(max_fit_rows):
        rng = np.random.default_rng(seed)
        fit = summ.iloc[np.sort(rng.choice(len(summ), size=int(max_fit_rows), replace=False))]
    bg = clv.BetaGeoModel().fit(fit["frequency"], fit["recency"], fit["T"])
    del fit
    s = summ.reindex(pd.Index(customers, name="customer_id"))
    pa = bg.p_alive(s["frequency"], s["recency"], s["T"])
    r, alpha = bg.params_["r"], bg.params_["alpha"]
    t = int(window_days) / 7.0
    T = s["T"].to_numpy(float)
    p0 = ((alpha + T) / (alpha + T + t)) ** (r + s["frequency"].to_numpy(float))
    out = pd.DataFrame({"p_alive": pa, "p_no_purchase": 1 - pa + pa * p0}, index=s.index)
    return out, dict(bg.params_)


def make_models(seed: int = 0, rf_trees: int = 100) -> dict[str, object]:
    """The machine-learning candidates (unfitted): logistic regression, random forest, HGB."""
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return {
        "logistic regression": make_pipeline(StandardScaler(),
                                             LogisticRegression(C=1.0, max_iter=2000)),
        "random forest": RandomForestClassifier(n_estimators=rf_trees, min_samples_leaf=20,
                                                max_features="sqrt", n_jobs=1,
                                                random_state=seed),
        "gradient boosting": HistGradientBoostingClassifier(
            max_iter=150, learning_rate=0.06, max_leaf_nodes=15, min_samples_leaf=40,
            l2_regularization=1.0, early_stopping=False, random_state=seed),
    }


def logistic_coefficients(model: object, columns: list[str]) -> pd.DataFrame:
    """Standardized coefficients of the logistic-regression pipeline, largest effect first.

    A coefficient is the change in log-odds of churn for one standard deviation of the feature;
    ``odds_ratio`` is its exponential.
    """
    lr = model[-1]  # type: ignore[index]
    coef = pd.Series(lr.coef_[0], index=columns)
    out = pd.DataFrame({"coef_per_sd": coef, "odds_ratio": np.exp(coef)})
    return out.reindex(coef.abs().sort_values(ascending=False).index)


@dataclass
class ChurnModels:
    """Fitted candidates, their isotonic calibrators and the validation AUC that chose the best.

    ``scores`` of the two non-ML candidates (the RFM segment rule and BG/NBD ``1 - P(alive)``)
    are passed in, the ML models are fitted on features. Every candidate's raw score is mapped to
    a probability by an isotonic calibrator fitted on the validation part.
    """

    models: dict[str, object]
    calibrators: dict[str, object]
    val_auc: dict[str, float]
    best: str
    columns: list[str]

    def raw(self, name: str, X: pd.DataFrame, extra: Mapping[str, np.ndarray] | None = None
            ) -> np.ndarray:
        """Raw score of candidate ``name`` (a probability for the ML models and the rule)."""
        if name in self.models:
            from threadpoolctl import threadpool_limits

            with threadpool_limits(1):
                return self.models[name].predict_proba(X[self.columns])[:, 1]
        if extra is None or name not in extra:
            raise KeyError(f"candidate {name!r} needs its score passed in `extra`")
        return np.asarray(extra[name], float)

    def proba(self, name: str, X: pd.DataFrame, extra: Mapping[str, np.ndarray] | None = None
              ) -> np.ndarray:
        """Calibrated churn probability of candidate ``name``."""
        return self.calibrators[name].predict(self.raw(name, X, extra))


def fit_churn_models(X: pd.DataFrame, y: pd.Series, *, extra: Mapping[str, np.ndarray]
                     | None = None, seed: int = 0, val_share: float = 0.25,
                     rf_trees: int = 100, only: list[str] | None = None,
                     max_fit_rows: int | None = None) -> ChurnModels:
    """Fit the ML candidates on a random part of the training cutoff and choose on the rest.

    ``val_share`` of the training customers (stratified by label) are held back: there the
    candidates' AUCs pick the best model and isotonic calibrators are fitted, so the out-of-time
    test set is used for nothing but the final report. ``extra`` holds scores (higher = more
    likely to churn) of non-ML candidates for the same rows as ``X``; ``only`` restricts the ML
    candidates (e.g. to refit the chosen one on newer data). ``max_fit_rows`` caps the rows the
    ML models are fitted on: a larger fitting part is replaced by a random sample of that size,
    stratified by label (the validation part is never sampled), so fitting time stays bounded on
    very large customer bases; None fits on the whole fitting part.
    """
    from sklearn.isotonic import IsotonicRegression
    from sklearn.model_selection import train_test_split
    from threadpoolctl import threadpool_limits

    yv = np.asarray(y, int)
    idx = np.arange(len(X))
    fit_i, val_i = train_test_split(idx, test_size=val_share, random_state=seed, stratify=yv)
    if max_fit_rows is not None and len(fit_i) > max_fit_rows:
        if max_fit_rows < 20:
            raise ValueError(f"max_fit_rows must be at least 20; got {max_fit_rows!r}")
        fit_i = train_test_split(fit_i, train_size=int(max_fit_rows), random_state=seed,
                                 stratify=yv[fit_i])[0]
    models = make_models(seed, rf_trees)
    if only is not None:
        models = {k: v for k, v in models.items() if k in only}
    if len(np.unique(yv)) < 2 or min(np.bincount(yv, minlength=2)) < 10:
        raise ValueError("need at least 10 churners and 10 returning customers to fit models; "
                         f"got {np.bincount(yv, minlength=2).tolist()}")
    cols = list(X.columns)
    with threadpool_limits(1):  # a shared machine: no oversubscription, stable timings
        for m in models.values():
            m.fit(X.iloc[fit_i], yv[fit_i])
    out = ChurnModels(models=models, calibrators={}, val_auc={}, best="", columns=cols)
    names = list(extra or {}) + list(models)
    for name in names:
        raw_val = out.raw(name, X.iloc[val_i],
                          {k: np.asarray(v)[val_i] for k, v in (extra or {}).items()})
        out.val_auc[name] = auc(yv[val_i], raw_val)
        cal = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0)
        out.calibrators[name] = cal.fit(raw_val, yv[val_i])
    out.best = max(names, key=lambda k: (np.nan_to_num(out.val_auc[k], nan=-1.0), k))
    return out


# --------------------------------------------------------------------------------------------
# truth (synthetic data only)
# --------------------------------------------------------------------------------------------
def oracle_churn_probability(truth: pd.DataFrame, facts: Mapping, customers: pd.Index,
                             cutoff: pd.Timestamp, window_days: int, *,
                             loyalty: pd.DataFrame | None = None,
                             experiments: pd.DataFrame | None = None) -> pd.Series:
    """True probability of no order in ``(cutoff, cutoff + N]`` given the latent state.

    ``1`` for a customer who truly became inactive at or before the cutoff; otherwise
    ``exp(-rate x multipliers x seasonal exposure)`` — the Poisson probability of zero purchases,
    with the persona's seasonal calendar of :mod:`helpers.synth`, the loyalty multiplier for
    members enrolled by the cutoff and the retention-offer uplift for the offered arm during the
    overlap of its 60-day window. This is the best any model could know.
    """
    from helpers import synth

    t = _stop(cutoff)  # first instant after the cutoff day
    tr = truth.set_index("customer_id").reindex(pd.Index(customers))
    cfg = synth.Config(start=str(facts["data_start"]), end=str(facts["data_end"]))
    clock = synth._Clock(cfg)  # the generator's own seasonal clock (truth side only)
    pidx = tr["persona"].map({p: i for i, p in enumerate(synth.PERSONA_NAMES)}).to_numpy()
    day0 = (t - cfg.t0) / DAY
    day1 = day0 + int(window_days)
    n = len(tr)
    exposure = clock.op(pidx, np.full(n, day1)) - clock.op(pidx, np.full(n, day0))
    base_rate = tr["purchase_rate"].to_numpy(float)
    member = np.zeros(n, bool)
    if loyalty is not None and len(loyalty):
        member = isin(tr.index, loyalty.loc[loyalty["enrolled_at"] < t, "customer_id"])
    rate = base_rate * np.where(member, float(facts.get("loyalty_rate_multiplier", 1.0)), 1.0)
    hazard = rate * exposure
    ro = facts.get("retention_offer")
    if ro and experiments is not None and len(experiments):
        ex = experiments[(experiments["experiment_id"] == ro["experiment_id"])
                         & (experiments["arm"] == "treatment")]
        o0 = (pd.Timestamp(ro["start"]) - cfg.t0) / DAY
        a, b = max(day0, o0), min(day1, o0 + int(ro["days"]))
        if b > a:  # the offer multiplies the rate by (1 + uplift) during the overlap
            offered = isin(tr.index, ex["customer_id"])
            extra = clock.op(pidx, np.full(n, b)) - clock.op(pidx, np.full(n, a))
            hazard = hazard + np.where(offered, tr["offer_uplift"].to_numpy(float), 0.0) \
                * rate * extra
    dead = tr["dropout_ts"].notna().to_numpy() & (tr["dropout_ts"] < t).to_numpy()
    p = np.where(dead, 1.0, np.exp(-hazard))
    return pd.Series(p, index=tr.index, name="oracle_p_churn")


# --------------------------------------------------------------------------------------------
# explanations
# --------------------------------------------------------------------------------------------
def reason_codes(predict: Callable[[pd.DataFrame], np.ndarray], X: pd.DataFrame,
                 reference: pd.Series, top: int = 2,
                 words: Mapping[str, tuple[str, str]] = FEATURE_WORDS,
                 min_effect: float = 0.01) -> pd.DataFrame:
    """Per-customer reasons: the features whose typical value would lower the risk most.

    For every feature, the customer's value is replaced by the reference (typical, e.g. the
    median of the active base) and the model is asked again; the drop in predicted churn
    probability is that feature's contribution. The ``top`` largest contributions above
    ``min_effect`` become plain-language reasons from ``words`` (the first text when the
    customer's value is above the reference, the second when below). Model-agnostic (works for any
    ``predict`` returning probabilities); costs one prediction per feature.
    """
    base = np.asarray(predict(X), float)
    contrib = pd.DataFrame(index=X.index, columns=X.columns, dtype=float)
    for col in X.columns:
        Xc = X.copy()
        Xc[col] = reference[col]
        contrib[col] = base - np.asarray(predict(Xc), float)
    reasons = []
    vals = X.to_numpy()
    cols = list(X.columns)
    c = contrib.to_numpy()
    for i in range(len(X)):
        order = np.argsort(-c[i], kind="stable")[:top]
        parts = []
        for j in order:
            if c[i, j] < min_effect:
                break
            above, below = words.get(cols[j], (cols[j] + " = {v:.2f}",) * 2)
            tmpl = above if vals[i, j] >= float(reference[cols[j]]) else below
            parts.append(tmpl.format(v=vals[i, j]))
        reasons.append("; ".join(parts) if parts else "no single strong reason")
    return pd.DataFrame({"risk": base, "reasons": reasons}, index=X.index)


# --------------------------------------------------------------------------------------------
# other warning signals
# --------------------------------------------------------------------------------------------
def activity_drop_flags(activity: pd.DataFrame, cutoff: pd.Timestamp, customers: pd.Index, *,
                        ts: str, recent_days: int = 30, baseline_days: int = 180,
                        alpha: float = 0.01, min_baseline: float = 3.0) -> pd.DataFrame:
    """Anomaly rule for a sudden drop in a customer's own activity.

    Baseline = the customer's activity in the ``baseline_days`` before the last ``recent_days``
    days (all windows end with the cutoff day); if the
    rhythm held, the recent ``recent_days`` would see ``expected = baseline x recent/baseline``
    events. The drop is flagged when the Poisson probability of seeing at most the observed count
    is below ``alpha`` and ``expected >= min_baseline`` (enough history to judge).
    """
    from scipy.stats import poisson

    t = _stop(cutoff)  # first instant after the cutoff day
    ids = pd.Index(customers, name="customer_id")
    if not ids.is_unique:
        return activity_drop_flags(activity, cutoff, ids.unique(), ts=ts,
                                   recent_days=recent_days, baseline_days=baseline_days,
                                   alpha=alpha, min_baseline=min_baseline).reindex(ids)
    apos = positions(activity["customer_id"], ids)  # position in ids, -1 = someone else
    a_ts = activity[ts].to_numpy(dtype="datetime64[ns]").view(np.int64)
    t_ns, mid = t.value, (t - recent_days * DAY).value
    lo = (t - (recent_days + baseline_days) * DAY).value
    ok = apos >= 0
    rec = np.bincount(apos[ok & (a_ts < t_ns) & (a_ts >= mid)], minlength=len(ids))
    base = np.bincount(apos[ok & (a_ts >= lo) & (a_ts < mid)], minlength=len(ids))
    out = pd.DataFrame(index=ids)
    out["observed"] = rec.astype(int)
    out["expected"] = pd.Series(base.astype(float), index=ids) * recent_days / baseline_days
    out["p_value"] = poisson.cdf(out["observed"], out["expected"].clip(lower=1e-9))
    out["flag"] = (out["p_value"] < alpha) & (out["expected"] >= min_baseline)
    return out


def time_to_next_purchase(orders: pd.DataFrame, cutoff: pd.Timestamp, until: pd.Timestamp,
                          customers: pd.Index) -> pd.DataFrame:
    """Days from each customer's last order on or before the cutoff day to their next order.

    ``observed = 1`` when a next order happened by the end of day ``until``, else the duration
    is censored there (the customer may still come back: Kaplan–Meier handles it).
    """
    t = _stop(cutoff)  # first instant after the cutoff day
    ids = pd.Index(customers, name="customer_id")
    if not ids.is_unique:
        return time_to_next_purchase(orders, cutoff, until, ids.unique()).reindex(ids)
    enc = _order_codes(orders)
    opos = _row_positions(enc.cust, enc.customers, ids, enc.lookup)
    end = _stop(until).value
    hist = (opos >= 0) & (enc.ts < t.value)
    after = (opos >= 0) & (enc.ts >= t.value) & (enc.ts < end)
    last = pd.Series(enc.ts[hist], copy=False).groupby(opos[hist]).max()
    nxt = pd.Series(enc.ts[after], copy=False).groupby(opos[after]).min()
    last_ns = np.full(len(ids), np.iinfo(np.int64).min)
    last_ns[last.index.to_numpy()] = last.to_numpy()
    nxt_ns = np.full(len(ids), end)
    nxt_ns[nxt.index.to_numpy()] = nxt.to_numpy()
    observed = np.zeros(len(ids), dtype=int)
    observed[nxt.index.to_numpy()] = 1
    duration = np.where(last_ns == np.iinfo(np.int64).min, np.nan, (nxt_ns - last_ns) / _DAY_NS)
    return pd.DataFrame({"duration_days": duration, "observed": observed}, index=ids)


# --------------------------------------------------------------------------------------------
# intervention
# --------------------------------------------------------------------------------------------
def expected_retained_margin(p_churn: np.ndarray | pd.Series, value: np.ndarray | pd.Series,
                             save_rate: float, contact_cost: float) -> np.ndarray | pd.Series:
    """Expected retained margin of contacting a customer: ``P(churn) x value x save_rate - cost``.

    ``save_rate`` is the share of would-be churners the action keeps; ``value`` the margin kept
    when a customer stays; ``contact_cost`` the cost of one contact (offer included).
    """
    return p_churn * value * float(save_rate) - float(contact_cost)


def select_budget(score: pd.Series, budget: float, contact_cost: float,
                  require_positive: pd.Series | None = None) -> pd.Index:
    """Customers to contact: highest ``score`` first, as many as the budget pays for.

    ``budget // contact_cost`` contacts at most (all when the cost is 0); when
    ``require_positive`` is given (e.g. the expected retained margin), customers whose value there
    is not strictly positive are never selected — a contact that loses money is not made just
    because budget is left. Ties keep the input order.
    """
    if budget < 0 or contact_cost < 0:
        raise ValueError("budget and contact_cost must be >= 0")
    k = len(score) if contact_cost == 0 else int(np.floor(budget / contact_cost + 1e-9))
    s = score
    if require_positive is not None:
        s = s[require_positive.reindex(s.index) > 0]
    order = np.argsort(-s.to_numpy(), kind="stable")[:k]
    return s.index[order]


def risk_value_matrix(p_churn: pd.Series, value: pd.Series,
                      risk_cuts: tuple[float, float] = (0.3, 0.6)) -> pd.DataFrame:
    """Customers by risk band x value band (value tertiles: low / mid / high).

    Always a 3 x 3 table (rows low / medium / high risk, columns low / mid / high value) with
    0 for empty cells, also when the customers fall into fewer bands or there are none.
    """
    risk_labels = ["low risk", "medium risk", "high risk"]
    value_labels = ["low value", "mid value", "high value"]
    risk = pd.cut(p_churn, [-np.inf, risk_cuts[0], risk_cuts[1], np.inf], labels=risk_labels)
    vb = value_band(value.reindex(p_churn.index))
    counts = pd.crosstab(risk, vb, dropna=False) if len(p_churn) else pd.DataFrame()
    out = counts.reindex(index=risk_labels, columns=value_labels, fill_value=0).astype(int)
    out.index.name, out.columns.name = "risk band", "value band"
    return out


#: Fewest churners and fewest returning customers per cutoff for the model comparison.
MIN_CLASS_SIZE = 20


def too_few_to_model(labels: Mapping[str, pd.Series],
                     min_class: int = MIN_CLASS_SIZE) -> str | None:
    """Why churn labels cannot support model fitting and evaluation, or ``None`` if they can.

    ``labels`` maps a name (e.g. "training cutoff 2025-06-03") to the 0/1 churn labels at that
    cutoff; each needs at least ``min_class`` churners (1) and ``min_class`` returning
    customers (0). The reason is a readable sentence for ``ctx.skip``.
    """
    problems = []
    for name, y in labels.items():
        y = pd.Series(y)
        n1, n0 = int((y == 1).sum()), int((y == 0).sum())
        if min(n0, n1) < min_class:
            problems.append(f"{name}: {n1:,} churners and {n0:,} returning customers")
    if not problems:
        return None
    return (f"too few churners or returning customers to fit and compare models (need at "
            f"least {min_class} of each; {'; '.join(problems)}); use more data, another "
            "window_days or a later analysis_date")


def value_band(value: pd.Series) -> pd.Series:
    """Low / mid / high value by tertiles of value (ties broken by order)."""
    r = value.rank(method="first") / max(len(value), 1)
    return pd.cut(r, [0, 1 / 3, 2 / 3, 1.0], labels=["low value", "mid value", "high value"],
                  include_lowest=True)


#: The action for a contacted customer, in order (first matching rule wins). *Whether* to
#: contact is decided by the budget and the expected retained margin, not here.
ACTION_RULES: tuple[tuple[str, str], ...] = (
    ("compensation", "high risk and high value: personal care call plus points/coupon"),
    ("win-back coupon", "high or medium risk and price-sensitive (coupon share >= 50%)"),
    ("recommendation", "high or medium risk otherwise: personalised recommendation e-mail/push"),
    ("care message", "low risk: relationship care (festival greetings, service message)"),
)


def recommend_action(p_churn: pd.Series, value: pd.Series, coupon_share: pd.Series | None = None,
                     risk_cuts: tuple[float, float] = (0.3, 0.6)) -> pd.Series:
    """Recommended action per customer following :data:`ACTION_RULES`.

    Value bands are tertiles of ``value`` among the customers passed in.
    """
    vb = value_band(value).astype(str)
    high = p_churn >= risk_cuts[1]
    med = (p_churn >= risk_cuts[0]) & ~high
    price = (coupon_share.reindex(p_churn.index).fillna(0) >= 0.5) if coupon_share is not None \
        else pd.Series(False, index=p_churn.index)
    act = pd.Series("care message", index=p_churn.index)
    act[high | med] = "recommendation"
    act[(high | med) & price] = "win-back coupon"
    act[high & (vb == "high value")] = "compensation"
    return act.rename("action")


# --------------------------------------------------------------------------------------------
# uplift
# --------------------------------------------------------------------------------------------
def t_learner_uplift(X: pd.DataFrame, treated: pd.Series, y: pd.Series, seed: int = 0,
                     folds: int = 5, make_model: Callable[[], object] | None = None) -> pd.Series:
    """Cross-fitted two-model (T-learner) uplift: ``P(buy | offer, x) - P(buy | no offer, x)``.

    Each fold's customers are scored by models fitted on the other folds (one model per arm),
    so the uplift of every customer is out-of-sample and can be evaluated on the randomized arms.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    if make_model is None:
        def make_model() -> object:
            return make_pipeline(StandardScaler(), LogisticRegression(C=0.3, max_iter=2000))
    tr = np.asarray(treated, bool)
    yv = np.asarray(y, int)
    strata = tr * 2 + yv
    out = np.full(len(X), np.nan)
    skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    with threadpool_limits(1):
        for fit_idx, pred_idx in skf.split(X, strata):
            preds = []
            for arm in (True, False):
                m = fit_idx[tr[fit_idx] == arm]
                model = make_model()
                model.fit(X.iloc[m], yv[m])
                preds.append(model.predict_proba(X.iloc[pred_idx])[:, 1])
            out[pred_idx] = preds[0] - preds[1]
    return pd.Series(out, index=X.index, name="uplift")


def qini_curve(y: np.ndarray | pd.Series, treated: np.ndarray | pd.Series,
               score: np.ndarray | pd.Series) -> pd.DataFrame:
    """Qini curve: incremental buyers when targeting the top share by ``score``.

    At each cut, ``qini = Y_T - Y_C x N_T / N_C`` (treated buyers minus control buyers scaled to
    the treated count), both among the targeted customers. Ties keep the input order.
    """
    y = np.asarray(y, float)
    tr = np.asarray(treated, bool)
    order = np.argsort(-np.asarray(score, float), kind="stable")
    y, tr = y[order], tr[order]
    nt, nc = np.cumsum(tr), np.cumsum(~tr)
    yt, yc = np.cumsum(y * tr), np.cumsum(y * ~tr)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = yt - np.where(nc > 0, yc * nt / np.maximum(nc, 1), 0.0)
    share = np.arange(1, len(y) + 1) / len(y)
    return pd.DataFrame({"share": np.concatenate([[0.0], share]),
                         "qini": np.concatenate([[0.0], q])})


def qini_coefficient(curve: pd.DataFrame) -> float:
    """Area between the Qini curve and the random-targeting line, in incremental buyers x share."""
    x = curve["share"].to_numpy()
    q = curve["qini"].to_numpy()
    random_line = x * q[-1]
    return float(np.trapezoid(q - random_line, x))


__all__ = [
    "ACTION_RULES", "ChurnModels", "EVENT_COLUMNS", "EventCodes", "FEATURE_WORDS",
    "SegmentRule", "Windows", "active_base",
    "activity_drop_flags", "auc", "bgnbd_churn", "bootstrap_auc_ci", "build_features",
    "calibration_table", "churn_labels", "churn_rate_by_window", "churn_windows",
    "customer_value", "evaluate_scores", "expected_retained_margin", "fit_churn_models",
    "gains_table", "inter_purchase_gaps", "logistic_coefficients", "make_models",
    "oracle_churn_probability", "qini_coefficient", "qini_curve", "reason_codes",
    "recommend_action", "rfm_segments", "risk_value_matrix", "select_budget", "split_at",
    "t_learner_uplift", "time_to_next_purchase", "top_share_stats", "value_band",
    "encode_events", "events_from", "visit_starts",
]
