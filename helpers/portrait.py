"""User portrait (用户画像): customer tags, segmentation, stability and persona cards.

Chapter 01 builds, for every customer known at the analysis date, a *tag table* along the guide's
portrait dimensions (Guide 3.3): basic information, behaviour, consumption, preference and
lifecycle stage. It then segments the buying customers on a transformed, standardized subset of
those tags, checks the choice of the number of segments, compares K-means with a Gaussian mixture,
measures stability under resampling, and turns each segment into a readable persona card with a
targeting idea in the guide's terms (Growth 2.2).

Everything is computed from rows dated *on or before* the analysis date (no look-ahead), and
every function works with whichever optional tables a dataset has: a tag whose source table is
missing is simply not produced, and :func:`missing_dimensions` says which ones are absent.

Main entry points::

    tags = build_tags(ds.orders, analysis_date, customers=ds.customers, order_lines=...,
                      products=..., returns=..., events=...)
    X, used = segment_features(tags[tags.orders > 0])
    scan = scan_k(X, range(2, 11), seed=42)          # silhouette, Davies-Bouldin, CH, GMM BIC
    k = pick_k(scan)
    labels = fit_kmeans(X, k, seed=42)
    stab = bootstrap_stability(X, k, n_boot=20, seed=42)
    cards = persona_cards(tags, labels)
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.metrics import (adjusted_rand_score, calinski_harabasz_score, davies_bouldin_score,
                             silhouette_score)
from sklearn.mixture import GaussianMixture

from helpers.ids import positions
from helpers.ids import dictionary_codes as _dictionary_codes

# --------------------------------------------------------------------------------------------
# Tag dictionary
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tag:
    """One tag of the portrait: its column name, dimension, meaning and formula."""

    name: str
    dimension: str  # basic | behaviour | consumption | preference | lifecycle
    meaning: str
    formula: str
    needs: tuple[str, ...] = ()  # tables beyond orders that the tag needs


#: Every tag :func:`build_tags` can produce (category shares ``share_<category>`` are expanded
#: per category at run time). Windows: all rows dated on or before the analysis date.
TAGS: tuple[Tag, ...] = (
    # basic information
    Tag("age", "basic", "Age in years (at sign-up).", "customers.age", ("customers.age",)),
    Tag("age_band", "basic", "Age band.", "age cut at 25, 35, 45, 55", ("customers.age",)),
    Tag("gender", "basic", "Self-reported gender.", "customers.gender", ("customers.gender",)),
    Tag("region", "basic", "Home region.", "customers.region", ("customers.region",)),
    Tag("device", "basic", "Main device.", "customers.device", ("customers.device",)),
    Tag("acquisition_channel", "basic", "Channel that brought the customer.",
        "customers.acquisition_channel", ("customers.acquisition_channel",)),
    Tag("tenure_days", "basic", "Days since the customer became known.",
        "analysis date - min(signup date, first order)"),
    # behaviour
    Tag("visits", "behaviour", "Browsing sessions (visits).", "distinct events.session_id",
        ("events",)),
    Tag("views", "behaviour", "Product views.", "count of events with type 'view'", ("events",)),
    Tag("view_to_purchase", "behaviour", "Share of visits with a view that ended in a purchase.",
        "visits with a purchase event / visits with a view event", ("events",)),
    Tag("favourites", "behaviour", "Products added to favourites.",
        "count of events with type 'favourite'", ("events",)),
    Tag("days_active", "behaviour", "Distinct days with an order or a browsing event.",
        "distinct calendar days of orders (and events)"),
    Tag("favourite_category", "behaviour", "Category with the largest spend.",
        "argmax over categories of spend", ("order_lines", "products.category")),
    # consumption
    Tag("orders", "consumption", "Orders placed (purchase frequency).", "count of orders"),
    Tag("spend", "consumption", "Gross spend (GMV of the customer).", "sum of orders.amount"),
    Tag("net_spend", "consumption", "Spend after returns.", "spend - sum of returns.amount",
        ("returns",)),
    Tag("aov", "consumption", "Average order value (客单价).", "spend / orders"),
    Tag("repurchase", "consumption", "Bought more than once (复购).", "orders >= 2"),
    Tag("orders_per_year", "consumption", "Purchase rate since the first order.",
        "orders / max(years since first order, 0.25)"),
    Tag("recency_days", "consumption", "Days since the last order.",
        "analysis date - last order date"),
    Tag("coupon_share", "consumption", "Share of orders paid with a coupon.",
        "orders with coupon_used / orders", ("orders.coupon_used",)),
    Tag("discount_share", "consumption", "Discount as a share of list value.",
        "sum discount_amount / (spend + sum discount_amount)", ("orders.discount_amount",)),
    Tag("return_rate", "consumption", "Share of spend returned.",
        "sum returns.amount / spend (capped at 1)", ("returns",)),
    # preference
    Tag("share_<category>", "preference", "Share of spend in each category.",
        "spend in category / spend", ("order_lines", "products.category")),
    Tag("price_level", "preference",
        "Price paid relative to the typical price of the same category (1 = typical).",
        "exp(spend-weighted mean of log(unit_price / category median unit_price))",
        ("order_lines",)),
    Tag("promo_share", "preference", "Share of spend on promotion days (618, 11.11, 12.12).",
        "spend on 06-01..06-18, 11-01..11-11, 12-12 / spend", ("Chinese festival calendar",)),
    Tag("price_sensitivity", "preference",
        "Price-sensitivity index in [0, 1] (higher = more driven by price).",
        "mean percentile rank of coupon_share, discount_share, promo_share and 1/price_level "
        "(those available; needs at least two)", ("two of its four inputs",)),
    Tag("brand_concentration", "preference",
        "How concentrated spend is on few brands (Herfindahl index; 1 = one brand).",
        "sum over brands of (brand spend share)^2", ("order_lines", "products.brand")),
    # lifecycle
    Tag("lifecycle_stage", "lifecycle", "Lifecycle stage at the analysis date.",
        "potential: no order; new: first order <= new_days ago; active: last order <= "
        "active_days ago; at_risk: <= churn_days; churned: longer"),
)

STAGES = ("potential", "new", "active", "at_risk", "churned")

#: The guide's portrait dimensions and the tags that make them up (for "missing dimensions").
DIMENSIONS = ("basic", "behaviour", "consumption", "preference", "lifecycle")


def tag_dictionary(columns: Iterable[str] | None = None) -> pd.DataFrame:
    """The tag dictionary as a table (dimension, tag, meaning, formula).

    With ``columns`` (e.g. ``tags.columns``), only tags present in the tag table are listed;
    ``share_<category>`` is listed once if any share column is present.
    """
    cols = None if columns is None else set(columns)
    rows = []
    for t in TAGS:
        if cols is not None:
            present = (any(c.startswith("share_") for c in cols) if t.name == "share_<category>"
                       else t.name in cols)
            if not present:
                continue
        rows.append({"dimension": t.dimension, "tag": t.name, "meaning": t.meaning,
                     "formula": t.formula})
    return pd.DataFrame(rows, columns=["dimension", "tag", "meaning", "formula"])


def missing_dimensions(columns: Iterable[str]) -> pd.DataFrame:
    """Tags of the dictionary that a tag table lacks, with the tables they would need."""
    cols = set(columns)
    rows = []
    for t in TAGS:
        present = (any(c.startswith("share_") for c in cols) if t.name == "share_<category>"
                   else t.name in cols)
        if not present:
            rows.append({"dimension": t.dimension, "tag": t.name,
                         "needs": ", ".join(t.needs) if t.needs else "-"})
    return pd.DataFrame(rows, columns=["dimension", "tag", "needs"])


# --------------------------------------------------------------------------------------------
# Building the tag table
# --------------------------------------------------------------------------------------------


def _usable(df: pd.DataFrame | None, cols: Sequence[str]) -> bool:
    return df is not None and len(df) > 0 and all(c in df.columns for c in cols)


def _promo_mask(ts: pd.Series) -> pd.Series:
    md = ts.dt.month * 100 + ts.dt.day
    return ((md >= 601) & (md <= 618)) | ((md >= 1101) & (md <= 1111)) | (md == 1212)


def _pct_rank(s: pd.Series) -> pd.Series:
    return s.rank(pct=True, method="average")


def order_amounts(orders: pd.DataFrame, order_lines: pd.DataFrame | None = None) -> pd.Series:
    """Order amounts by row: ``orders.amount`` if present, else the sum of its lines."""
    if "amount" in orders.columns and orders["amount"].notna().any():
        return orders["amount"].astype(float)
    if not _usable(order_lines, ["order_id", "quantity", "unit_price"]):
        raise ValueError("orders have no 'amount' and there are no order_lines to derive it from")
    v = (order_lines["quantity"] * order_lines["unit_price"]).groupby(order_lines["order_id"]).sum()
    return orders["order_id"].map(v).astype(float)


def _arrow_strings(values: pd.Series | np.ndarray | pd.Index):
    """Values of an id or label column as an Arrow ``large_string`` array.

    Arrow-backed strings are taken without copying; anything else is converted with ``str``
    (as ``astype(str)`` would). Missing values stay missing.
    """
    import pyarrow as pa

    if isinstance(values, (pa.Array, pa.ChunkedArray)) and (
            pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
        arr = values
    elif isinstance(values, (pd.Series, pd.Index)) and isinstance(values.dtype, pd.StringDtype) \
            and values.dtype.storage == "pyarrow":
        arr = pa.array(values.array)
    else:
        s = pd.Series(np.asarray(values, dtype=object))
        arr = pa.array(s.where(s.isna(), s.astype(str)).to_numpy(dtype=object),
                       type=pa.large_string(), from_pandas=True)
    return arr.cast(pa.large_string())


def _rows(arr, mask: np.ndarray):
    """``arr.filter(mask)`` for an Arrow array, without a copy when every row is kept."""
    import pyarrow as pa

    return arr if bool(mask.all()) else arr.filter(pa.array(mask))


def _by_code(values: np.ndarray | pd.Series, codes: np.ndarray, n: int, how: str,
             fill: object = None) -> np.ndarray:
    """Aggregate ``values`` by integer ``codes`` (0..n-1) with pandas' ``how``; length ``n``.

    pandas' grouped sums and means visit the rows in order with compensated summation, so the
    result equals the same aggregation grouped by the original string ids.
    """
    s = pd.Series(np.asarray(values) if not isinstance(values, pd.Series) else values.to_numpy())
    agg = getattr(s.groupby(codes, sort=True), how)()
    out = agg.reindex(pd.RangeIndex(n))
    if fill is not None:
        out = out.fillna(fill)
    return out.to_numpy()


def _labels_by_code(labels: pd.Series, missing: str) -> tuple[np.ndarray, np.ndarray]:
    """Sorted vocabulary (with ``missing`` added) and each row's code in it.

    Missing labels get the code of ``missing``; codes follow the sorted order of the names, so a
    grouping by code orders groups exactly as a grouping by the names would.
    """
    names = labels.astype(object).where(labels.notna(), missing).astype(str)
    vocab = np.array(sorted(set(names) | {missing}), dtype=object)
    return vocab, np.searchsorted(vocab, names.to_numpy(dtype=object))


def build_tags(orders: pd.DataFrame, analysis_date: str | pd.Timestamp, *,
               customers: pd.DataFrame | None = None,
               order_lines: pd.DataFrame | None = None,
               products: pd.DataFrame | None = None,
               returns: pd.DataFrame | None = None,
               events: pd.DataFrame | None = None,
               new_days: int = 90, active_days: int = 180, churn_days: int = 365,
               promo_calendar: str | None = "cn",
               ) -> pd.DataFrame:
    """One row per customer known at the analysis date, with the portrait tags.

    Only rows dated on or before ``analysis_date`` (the whole day) are used. Customers are those
    of ``customers`` who signed up by then (or with unknown sign-up date) plus everyone with an
    order; customers without an order get ``orders = 0`` and stage ``potential``.

    Tags whose source table is absent are not produced (see :func:`missing_dimensions`).

    Every table is joined to the customers through integer positions (an Arrow hash lookup of
    the ids, never Python string objects) and aggregated with ``bincount`` or integer-keyed
    groupbys, so the cost grows linearly with the rows (about 10 s for 50 million events).

    Args:
        orders: contract ``orders`` (``amount`` present, or derived from ``order_lines``).
        analysis_date: the portrait's date.
        customers, order_lines, products, returns, events: optional contract tables.
        new_days, active_days, churn_days: lifecycle-stage thresholds in days.
        promo_calendar: ``"cn"`` for the guide's festival days (618, Double-11, 12.12) behind
            ``promo_share``; ``None`` where that calendar does not apply (no ``promo_share``).

    Returns:
        DataFrame indexed by ``customer_id`` (sorted), columns in dictionary order.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if promo_calendar not in ("cn", None):
        raise ValueError(f"promo_calendar must be 'cn' or None; got {promo_calendar!r}")
    if not (0 < new_days <= active_days <= churn_days):
        raise ValueError("stage thresholds must satisfy 0 < new_days <= active_days <= churn_days")
    date = pd.Timestamp(analysis_date).normalize()
    cutoff = date + pd.Timedelta(days=1)  # rows strictly before the next day

    o = orders.loc[(orders["order_ts"] < cutoff).to_numpy()]
    amount = order_amounts(o, order_lines).to_numpy(dtype=float)
    o_ids = _arrow_strings(o["customer_id"])

    ev_mask = None
    if _usable(events, ["customer_id", "event_ts", "event_type"]):
        # events as integer codes: one dictionary encoding of the ids (no filtered copies of
        # the string columns); each distinct id is converted and looked up once
        ev_mask = np.asarray(events["event_ts"] < cutoff, dtype=bool)
        ev_code, ev_dict = _dictionary_codes(events["customer_id"])
        ev_dict = _arrow_strings(ev_dict)

    # ---- who is a customer at the analysis date (sorted ids; Arrow sorts by code point)
    known_ids = [pc.unique(o_ids)]
    cust = None
    if _usable(customers, ["customer_id"]):
        cust = customers
        c_ids = _arrow_strings(cust["customer_id"])
        if "signup_date" in cust.columns:
            sd_all = cust["signup_date"]
            ok = (sd_all.isna() | (sd_all < cutoff)).to_numpy() | np.asarray(
                pc.is_in(c_ids, value_set=known_ids[0]).to_numpy(zero_copy_only=False), bool)
            cust = cust.loc[ok]
            c_ids = _rows(c_ids, ok)
        known_ids.append(pc.unique(c_ids))
    elif ev_mask is not None:  # no customers table: browsers without orders are customers too
        seen = np.bincount(ev_code[ev_mask & (ev_code >= 0)], minlength=len(ev_dict)) > 0
        known_ids.append(ev_dict.filter(pa.array(seen)))
    ids = pc.unique(pa.concat_arrays(known_ids))
    ids = ids.take(pc.sort_indices(ids))
    if len(ids) == 0:
        raise ValueError(f"no customers with data on or before {date.date()}")
    out = pd.DataFrame(index=pd.Index(ids.to_numpy(zero_copy_only=False).astype(object),
                                      name="customer_id"))
    N = len(out)
    oc = positions(o_ids, ids)  # every order's customer position (all >= 0)

    # ---- basic
    first_row = None
    if cust is not None:
        cpos = positions(c_ids, ids)
        uniq, first = np.unique(cpos, return_index=True)  # first row per customer
        first_row = np.full(N, -1, dtype=np.int64)
        first_row[uniq] = first

        def basic(col: str) -> pd.Series:
            return pd.Series(cust[col].array.take(first_row, allow_fill=True), index=out.index)

        if "age" in cust.columns and cust["age"].notna().any():
            out["age"] = basic("age").astype(float)
            out["age_band"] = pd.cut(out["age"], [0, 25, 35, 45, 55, 200], right=False,
                                     labels=["<25", "25-34", "35-44", "45-54", "55+"]
                                     ).astype(object)
        for col in ("gender", "region", "device", "acquisition_channel"):
            if col in cust.columns and cust[col].notna().any():
                out[col] = basic(col).astype(object)

    ots = o["order_ts"]
    first_ts = pd.Series(_by_code(ots, oc, N, "min"), index=out.index)
    last_ts = pd.Series(_by_code(ots, oc, N, "max"), index=out.index)
    known = first_ts
    if cust is not None and "signup_date" in cust.columns:
        known = pd.concat([known, basic("signup_date")], axis=1).min(axis=1)
    out["tenure_days"] = ((cutoff - known).dt.total_seconds() / 86400.0).clip(lower=0).round(1)

    # ---- behaviour (events), on integer codes
    day_pairs = [(oc, ots.to_numpy().astype("datetime64[D]").astype(np.int64))]
    if ev_mask is not None:
        dict_pos = np.append(positions(ev_dict, ids), -1)  # code -1 (missing id): slot -1
        pos = dict_pos[ev_code]
        del ev_code
        sel = np.flatnonzero(ev_mask & (pos >= 0))  # events of known customers up to the date
        pos = pos[sel]
        tcode, tdict = _dictionary_codes(events["event_type"])
        tnames = [str(t) for t in (tdict.to_pylist() if isinstance(tdict, pa.Array)
                                   else list(tdict))]
        tcode = tcode[sel]

        def is_type(name: str) -> np.ndarray:
            return np.isin(tcode, [i for i, t in enumerate(tnames) if t == name])

        is_view, is_buy = is_type("view"), is_type("purchase")
        ev_day = events["event_ts"].to_numpy()[sel].astype("datetime64[D]").astype(np.int64)
        if "session_id" in events.columns:
            sess_code, sdict = _dictionary_codes(events["session_id"])
            sess_code = sess_code[sel]
            n_sess = len(sdict)
        else:
            sess_code, n_sess = np.full(len(pos), -1, dtype=np.int64), 0
        na = sess_code < 0
        if na.any():  # a missing session id: one visit per customer and day
            span = int(ev_day.max() - ev_day.min()) + 1
            sess_code[na] = n_sess + pd.factorize(pos[na] * span + (ev_day[na] - ev_day.min()))[0]
        base = int(sess_code.max()) + 1 if len(sess_code) else 1
        # a visit is a (customer, session) pair; when every session belongs to one customer
        # (the normal case) the sessions themselves are the visits, found without hashing pairs
        lo = np.full(base, N, dtype=np.int64)
        hi = np.full(base, -1, dtype=np.int64)
        np.minimum.at(lo, sess_code, pos)
        np.maximum.at(hi, sess_code, pos)
        present = hi >= 0
        if bool((lo[present] == hi[present]).all()):
            inv = (np.cumsum(present) - 1)[sess_code]
            pair_cust = hi[present]
        else:
            inv, uniq = pd.factorize(pos * base + sess_code)
            pair_cust = uniq // base
        del sess_code, lo, hi, present
        viewed = np.zeros(len(pair_cust), dtype=bool)
        viewed[inv[is_view]] = True
        bought = np.zeros(len(pair_cust), dtype=bool)
        bought[inv[is_buy]] = True
        del inv
        out["visits"] = np.bincount(pair_cust, minlength=N).astype(int)
        out["views"] = np.bincount(pos[is_view], minlength=N).astype(int)
        den = np.bincount(pair_cust[viewed], minlength=N)
        num = np.bincount(pair_cust[viewed], weights=bought[viewed].astype(float), minlength=N)
        with np.errstate(invalid="ignore", divide="ignore"):
            out["view_to_purchase"] = np.where(den > 0, num / np.maximum(den, 1), np.nan)
        out["favourites"] = np.bincount(pos[is_type("favourite")], minlength=N).astype(int)
        del tcode, is_view, is_buy
        day_pairs.append((pos, ev_day))
    cp = np.concatenate([p for p, _ in day_pairs]).astype(np.int64)
    dd = np.concatenate([d for _, d in day_pairs])
    ok = cp >= 0
    key = cp[ok] * 1_000_000 + (dd[ok] - dd[ok].min() if ok.any() else 0)
    del cp, dd, ok
    if len(key) > 1:  # events of one visit share a key: drop repeats of the previous row first
        keep = np.empty(len(key), dtype=bool)
        keep[0] = True
        np.not_equal(key[1:], key[:-1], out=keep[1:])
        key = key[keep]
        del keep
    key.sort()  # distinct pairs by sorting: faster than a hash table at tens of millions
    cust_day = key[np.concatenate([[True], key[1:] != key[:-1]])] if len(key) else key
    out["days_active"] = np.bincount(cust_day // 1_000_000, minlength=N).astype(int)

    # ---- consumption
    n = pd.Series(np.bincount(oc, minlength=N).astype(int), index=out.index)
    spend = pd.Series(_by_code(amount, oc, N, "sum", 0.0), index=out.index)
    out["orders"] = n
    out["spend"] = spend.round(2)
    ret = None
    if _usable(returns, ["customer_id", "return_ts", "amount"]):
        r = returns.loc[(returns["return_ts"] < cutoff).to_numpy()]
        rc = positions(_arrow_strings(r["customer_id"]), ids)
        mine = rc >= 0
        ret = pd.Series(_by_code(r["amount"].to_numpy(dtype=float)[mine], rc[mine], N, "sum",
                                 0.0), index=out.index)
        out["net_spend"] = (spend - ret).round(2)
    buyers = n > 0
    out["aov"] = (spend / n.where(buyers)).round(2)
    out["repurchase"] = n >= 2
    years = ((cutoff - first_ts).dt.total_seconds() / (365.25 * 86400)).clip(lower=0.25)
    out["orders_per_year"] = (n / years).where(buyers).round(3)
    out["recency_days"] = ((cutoff - last_ts).dt.total_seconds() / 86400.0).round(1)
    if "coupon_used" in o.columns and o["coupon_used"].notna().any():
        out["coupon_share"] = _by_code(o["coupon_used"].astype(float), oc, N, "mean")
    if "discount_amount" in o.columns and o["discount_amount"].notna().any():
        disc = pd.Series(_by_code(o["discount_amount"].astype(float), oc, N, "sum"),
                         index=out.index)
        out["discount_share"] = (disc / (spend + disc).where(buyers & (spend + disc > 0)))
    if ret is not None:
        out["return_rate"] = (ret / spend.where(spend > 0)).clip(upper=1.0)

    # ---- preference
    line_level = _usable(order_lines, ["order_id", "product_id", "quantity", "unit_price"])
    if line_level:
        # each line's order among the orders in the window (lines of other orders are dropped)
        lpos = positions(_arrow_strings(order_lines["order_id"]),
                          _arrow_strings(o["order_id"]))
        inw = lpos >= 0
        lc = oc[lpos[inw]]
        up = order_lines["unit_price"].to_numpy(dtype=float)[inw]
        value = order_lines["quantity"].to_numpy(dtype=float)[inw] * up
        pos_v = value > 0
        lc, up, value = lc[pos_v], up[pos_v], value[pos_v]
        line_pid = _rows(_rows(_arrow_strings(order_lines["product_id"]), inw), pos_v)
        cat_ok = _usable(products, ["product_id", "category"]) and \
            products["category"].notna().any()
        prod = products.drop_duplicates("product_id") if _usable(products, ["product_id"]) \
            else None
        ppos = positions(line_pid, _arrow_strings(prod["product_id"])) if prod is not None \
            else np.full(len(lc), -1, dtype=np.int64)

        def line_labels(col: str) -> tuple[np.ndarray, np.ndarray]:
            vocab, code = _labels_by_code(prod[col], "unknown")
            unknown = int(np.searchsorted(vocab, "unknown"))
            return vocab, np.where(ppos >= 0, code[np.maximum(ppos, 0)], unknown)

        if cat_ok:
            cat_names, cat = line_labels("category")
        else:
            cat_names, cat = np.array(["all"], dtype=object), np.zeros(len(lc), dtype=np.int64)
        med = pd.Series(up).groupby(cat).transform("median").to_numpy()
        lrel = np.log(up / med)
        wsum = _by_code(lrel * value, lc, N, "sum")
        vsum = _by_code(value, lc, N, "sum")
        out["price_level"] = np.exp(wsum / vsum)
        if cat_ok:
            cs = pd.Series(value).groupby([lc, cat]).sum().unstack(fill_value=0.0)
            # column-major, as pivot_table returns it: row sums then add up in the same order
            cs = pd.DataFrame(np.asfortranarray(cs.to_numpy()), index=cs.index,
                              columns=cat_names[cs.columns.to_numpy()])
            shares = cs.div(cs.sum(axis=1), axis=0)
            fav = shares.idxmax(axis=1)
            out["favourite_category"] = fav.reindex(pd.RangeIndex(N)).to_numpy()
            for c in shares.columns:
                out[f"share_{c}"] = shares[c].reindex(pd.RangeIndex(N)).to_numpy()
        if _usable(products, ["product_id", "brand"]) and products["brand"].notna().any():
            _, brand = line_labels("brand")
            bs = pd.Series(value).groupby([lc, brand]).sum()
            bsh = bs / bs.groupby(level=0).transform("sum")
            out["brand_concentration"] = (bsh ** 2).groupby(level=0).sum() \
                .reindex(pd.RangeIndex(N)).to_numpy()
    if promo_calendar == "cn":
        promo = _by_code(np.where(_promo_mask(ots).to_numpy(), amount, 0.0), oc, N, "sum")
        out["promo_share"] = (pd.Series(promo, index=out.index) / spend.where(spend > 0))
    comps = []
    for col, sign in (("coupon_share", 1), ("discount_share", 1), ("promo_share", 1),
                      ("price_level", -1)):
        if col in out.columns:
            comps.append(_pct_rank(sign * out.loc[buyers, col]))
    if len(comps) >= 2:  # one component alone would only repeat that tag
        out["price_sensitivity"] = pd.concat(comps, axis=1).mean(axis=1).reindex(out.index)

    # ---- lifecycle
    since_first = (cutoff - first_ts).dt.days
    rec = out["recency_days"]
    stage = np.select(
        [~buyers, since_first <= new_days, rec <= active_days, rec <= churn_days],
        ["potential", "new", "active", "at_risk"], default="churned")
    out["lifecycle_stage"] = pd.Categorical(stage, categories=STAGES)

    order = [t.name for t in TAGS]
    share_cols = [c for c in out.columns if c.startswith("share_")]
    cols = []
    for name in order:
        if name == "share_<category>":
            cols += share_cols
        elif name in out.columns:
            cols.append(name)
    return out[cols]


def build_tags_from(ds: object, analysis_date: str | pd.Timestamp,
                    promo_calendar: str | None = "auto", **kw: int) -> pd.DataFrame:
    """:func:`build_tags` with the tables of a loaded ``helpers.data.Dataset``.

    ``promo_calendar="auto"`` uses the Chinese festival calendar (``"cn"``) for shops in the
    ``Asia/Shanghai`` time zone and none elsewhere.
    """
    if promo_calendar == "auto":
        promo_calendar = "cn" if getattr(ds, "timezone", None) == "Asia/Shanghai" else None
    def tab(name: str) -> pd.DataFrame | None:
        t = getattr(ds, name, None)
        return t if isinstance(t, pd.DataFrame) and len(t) else None

    return build_tags(ds.orders, analysis_date, customers=tab("customers"),
                      order_lines=tab("order_lines"), products=tab("products"),
                      returns=tab("returns"), events=_events_for_tags(ds),
                      promo_calendar=promo_calendar, **kw)


#: The events columns :func:`build_tags` uses.
EVENT_COLUMNS = ("customer_id", "event_ts", "event_type", "session_id")


def _events_for_tags(ds: object) -> pd.DataFrame | None:
    """The dataset's events with only :data:`EVENT_COLUMNS` (read column by column from the
    dataset cache when the dataset can, ``ds.read``; the customer and session ids
    dictionary-encoded), or ``None`` without events."""
    read, columns = getattr(ds, "read", None), getattr(ds, "columns", None)
    if read is None or columns is None:  # a plain object holding tables
        ev = getattr(ds, "events", None)
        return ev if isinstance(ev, pd.DataFrame) and len(ev) else None
    if not ds.has("events"):
        return None
    cols = [c for c in EVENT_COLUMNS if c in columns("events")]
    # the ids dictionary-encoded: build_tags only needs their codes (no string hashing)
    return read("events", columns=cols,
                dictionary=[c for c in ("customer_id", "session_id", "event_type") if c in cols])


# --------------------------------------------------------------------------------------------
# Data-quality helpers (the loader does the validation; these only summarise its accounting)
# --------------------------------------------------------------------------------------------


def set_aside_reasons(set_aside: dict[str, pd.DataFrame] | None) -> pd.DataFrame:
    """Rows set aside by the loader, counted per table and reason (largest first)."""
    rows = []
    for table, df in sorted((set_aside or {}).items()):
        if df is None or len(df) == 0:
            continue
        reason = df["reason"] if "reason" in df.columns else pd.Series("unspecified", df.index)
        for r, n in reason.astype(str).value_counts().items():
            rows.append({"table": table, "reason": r, "rows": int(n)})
    out = pd.DataFrame(rows, columns=["table", "reason", "rows"])
    return out.sort_values(["rows", "table", "reason"], ascending=[False, True, True],
                           ignore_index=True)


def missing_values(tables: dict[str, pd.DataFrame | None]) -> pd.DataFrame:
    """Share of missing values per table and column (only columns with missing values)."""
    rows = []
    for name, df in tables.items():
        if df is None or len(df) == 0:
            continue
        na = df.isna().sum()
        for col, n in na[na > 0].items():
            rows.append({"table": name, "column": col, "missing": int(n),
                         "missing_share": round(n / len(df), 4)})
    return pd.DataFrame(rows, columns=["table", "column", "missing", "missing_share"])


def missing_values_of(ds: object) -> pd.DataFrame:
    """:func:`missing_values` of a loaded dataset from the counts the loader took at load time
    (``ds.missing``: no table is read, so a big events table stays on disk); datasets without
    those counts are counted from ``ds.tables``. Same table either way."""
    m = getattr(ds, "missing", None)
    if not isinstance(m, pd.DataFrame) or not {"table", "column", "rows", "missing"} <= set(m):
        return missing_values(ds.tables)
    m = m[(m["missing"] > 0) & (m["rows"] > 0)]
    if m.empty:
        return pd.DataFrame(columns=["table", "column", "missing", "missing_share"])
    return pd.DataFrame({"table": m["table"].to_numpy(), "column": m["column"].to_numpy(),
                         "missing": m["missing"].astype(int).to_numpy(),
                         # Python's round, as missing_values (correctly rounded decimals)
                         "missing_share": [round(float(n) / int(r), 4) for n, r in
                                           zip(m["missing"], m["rows"])]},
                        columns=["table", "column", "missing", "missing_share"])


def amount_outliers(amounts: pd.Series, z: float = 3.5) -> pd.DataFrame:
    """Robust outlier screen of order amounts on the log scale (median +- z * 1.4826 * MAD).

    Outliers are *reported*, not removed: a very large basket is usually real (a wholesale
    buyer, a laptop) and dropping it would bias spend tags downwards.
    """
    a = amounts[(amounts > 0) & amounts.notna()].astype(float)
    la = np.log(a)
    med = float(la.median())
    mad = float(1.4826 * (la - med).abs().median())
    if mad == 0:  # more than half the amounts identical: fall back to the mean deviation
        mad = float(1.2533 * (la - med).abs().mean())
    lo, hi = (np.exp(med - z * mad), np.exp(med + z * mad)) if mad > 0 else (a.min(), a.max())
    return pd.DataFrame({
        "side": ["low", "high"],
        "threshold": [round(float(lo), 2), round(float(hi), 2)],
        "orders": [int((a < lo).sum()), int((a > hi).sum())],
        "orders_pct": [round(100 * float((a < lo).mean()), 2),
                       round(100 * float((a > hi).mean()), 2)],
        "spend_pct": [round(100 * float(a[a < lo].sum() / a.sum()), 2),
                      round(100 * float(a[a > hi].sum() / a.sum()), 2)],
    })


# --------------------------------------------------------------------------------------------
# Segmentation features
# --------------------------------------------------------------------------------------------


def segment_features(tags: pd.DataFrame, shrink_orders: float = 2.0
                     ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Transformed, standardized features for clustering, and a table saying how and why.

    Transforms:

    * counts, rates and money (orders per year, orders, average order value, visits per year) are
      right-skewed over orders of magnitude: ``log1p`` so a few heavy buyers do not dominate the
      Euclidean distance;
    * the relative price level is a ratio: ``log`` (symmetric around "typical price" = 0);
    * shares (coupon, discount, promotion, returns, conversion) are already on [0, 1]: kept;
    * category shares of a customer with one or two orders are mostly noise: they are shrunk
      towards the population's shares with ``shrink_orders`` pseudo-orders,
      ``(orders * share + m * population share) / (orders + m)``;
    * age as is; gender and main device as 0/1 indicators (demographics exist only on some data);
    * missing values get the column median (e.g. conversion of a customer without visits), then
      every column is standardized (z-score) so that each feature has the same weight.

    Acquisition channel and region are *not* clustered on (many levels, weak signal); they are
    used to describe segments (channel choice on the persona cards).

    Args:
        tags: tag table of the customers to segment (buyers).
        shrink_orders: pseudo-orders of the category-share shrinkage (0 = none).

    Returns:
        ``(X, spec)``: ``X`` indexed like ``tags`` with zero-mean unit-variance columns;
        ``spec`` lists feature, source tag, transform and reason.
    """
    if len(tags) == 0:
        raise ValueError("no customers to segment")
    t = tags
    F: dict[str, pd.Series] = {}
    spec: list[dict[str, str]] = []

    def add(name: str, values: pd.Series, tag: str, transform: str, why: str) -> None:
        v = pd.to_numeric(values, errors="coerce").astype(float)
        v = v.replace([np.inf, -np.inf], np.nan)
        if v.notna().sum() < 2 or v.nunique(dropna=True) < 2:
            return
        F[name] = v.fillna(v.median())
        spec.append({"feature": name, "tag": tag, "transform": transform, "why": why})

    skew = "right-skewed count/money"
    if "orders_per_year" in t:
        add("log_orders_per_year", np.log1p(t["orders_per_year"]), "orders_per_year", "log1p",
            skew)
    if "orders" in t:
        add("log_orders", np.log1p(t["orders"]), "orders", "log1p", skew)
    if "aov" in t:
        add("log_aov", np.log1p(t["aov"]), "aov", "log1p", skew)
    if "price_level" in t:
        add("log_price_level", np.log(t["price_level"]), "price_level", "log",
            "ratio to typical price")
    for c in ("coupon_share", "discount_share", "promo_share", "return_rate"):
        if c in t:
            add(c, t[c], c, "none", "share in [0, 1]")
    if "visits" in t and "tenure_days" in t:
        years = np.maximum(t["tenure_days"] / 365.25, 0.25)
        add("log_visits_per_year", np.log1p(t["visits"] / years), "visits", "log1p(visits/year)",
            skew)
    if "view_to_purchase" in t:
        add("view_to_purchase", t["view_to_purchase"], "view_to_purchase", "none",
            "share in [0, 1]")
    shares = [c for c in t.columns if c.startswith("share_")]
    if shares:
        S = t[shares].astype(float)
        pop = S.mean()
        n = t["orders"].astype(float) if "orders" in t else pd.Series(1.0, t.index)
        m = float(shrink_orders)
        for c in shares:
            shr = (n * S[c].fillna(pop[c]) + m * pop[c]) / (n + m)
            add(c, shr, c, f"shrunk ({m:g} pseudo-orders)", "noisy share in [0, 1]")
    if "age" in t:
        add("age", t["age"], "age", "none", "demographic")
    if "gender" in t:
        add("is_female", (t["gender"] == "f").astype(float).where(t["gender"].notna()),
            "gender", "indicator", "demographic")
    if "device" in t:
        add("is_mobile", (t["device"] == "mobile").astype(float).where(t["device"].notna()),
            "device", "indicator", "demographic")
    if not F:
        raise ValueError("no usable features to segment on")
    X = pd.DataFrame(F, index=t.index)
    X = (X - X.mean()) / X.std(ddof=0)
    return X, pd.DataFrame(spec, columns=["feature", "tag", "transform", "why"])


# --------------------------------------------------------------------------------------------
# Clustering
# --------------------------------------------------------------------------------------------


def _limits():
    """One BLAS/OpenMP thread: deterministic results and no oversubscription on shared CPUs."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1)


def _order_by_size(labels: np.ndarray) -> np.ndarray:
    """Relabel clusters 1..k by decreasing size (ties by smallest original label)."""
    uniq, inv, counts = np.unique(np.asarray(labels), return_inverse=True, return_counts=True)
    new = np.empty(len(uniq), dtype=int)
    new[np.lexsort((uniq, -counts))] = np.arange(1, len(uniq) + 1)
    return new[inv.reshape(-1)]


def _fit_rows(n: int, fit_sample: int | None, seed: int) -> np.ndarray | None:
    """Sorted seeded sample of ``fit_sample`` row numbers out of ``n``; ``None`` = all rows."""
    if fit_sample is None or n <= fit_sample:
        return None
    if fit_sample < 2:
        raise ValueError(f"fit_sample must be at least 2; got {fit_sample}")
    return np.sort(np.random.default_rng(seed).choice(n, int(fit_sample), replace=False))


def fit_kmeans(X: pd.DataFrame | np.ndarray, k: int, seed: int, n_init: int = 10,
               fit_sample: int | None = None) -> tuple[np.ndarray, KMeans]:
    """K-means labels (1..k, largest segment first) and the fitted model.

    With ``fit_sample`` and more customers than that, the centres are fitted on a seeded random
    sample of ``fit_sample`` customers and *every* customer is then assigned to its nearest
    centre (K-means' own assignment step). A random sample of a few hundred thousand customers
    places k centres as well as the whole base does; the cost no longer grows with the base.
    """
    A = np.asarray(X, dtype=float)
    if not 1 < k < len(A):
        raise ValueError(f"k must be between 2 and the number of customers - 1; got k={k}, "
                         f"n={len(A)}")
    rows = _fit_rows(len(A), fit_sample, seed)
    with _limits():
        km = KMeans(n_clusters=k, n_init=n_init, random_state=seed)
        if rows is None:
            return _order_by_size(km.fit(A).labels_), km
        lab = km.fit(A[rows]).predict(A)
    return _order_by_size(lab), km


def fit_gmm(X: pd.DataFrame | np.ndarray, k: int, seed: int, covariance_type: str = "diag",
            sample_size: int = 5000) -> tuple[np.ndarray, GaussianMixture]:
    """Gaussian-mixture labels (1..k, largest first); fitted on a seeded sample if large."""
    A = np.asarray(X, dtype=float)
    rng = np.random.default_rng(seed)
    fit_on = A if len(A) <= sample_size else A[rng.choice(len(A), sample_size, replace=False)]
    with _limits():
        gm = GaussianMixture(n_components=k, covariance_type=covariance_type, n_init=2,
                             reg_covar=1e-4, random_state=seed).fit(fit_on)
        lab = gm.predict(A)
    return _order_by_size(lab), gm


def scan_k(X: pd.DataFrame | np.ndarray, ks: Iterable[int], seed: int,
           sample_size: int = 4000, n_boot: int = 6) -> pd.DataFrame:
    """Criteria for the number of segments k, computed on a seeded sample of customers.

    Columns: ``silhouette`` (higher is better; > 0.25 would be clear structure),
    ``davies_bouldin`` (lower is better), ``calinski_harabasz`` (higher is better),
    ``gmm_bic`` (BIC of a diagonal Gaussian mixture with k components; lower is better) and
    ``stability`` (mean adjusted Rand index between K-means on the sample and K-means refitted on
    bootstrap resamples, both labelling the same sample; 1 = perfectly reproducible).
    """
    A = np.asarray(X, dtype=float)
    rng = np.random.default_rng(seed)
    S = A if len(A) <= sample_size else A[rng.choice(len(A), sample_size, replace=False)]
    rows = []
    with _limits():
        for k in ks:
            if not 1 < k < len(S):
                continue
            km = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(S)
            lab = km.labels_
            gm = GaussianMixture(n_components=k, covariance_type="diag", reg_covar=1e-4,
                                 random_state=seed).fit(S)
            aris = []
            for b in range(n_boot):
                idx = rng.choice(len(S), len(S), replace=True)
                kb = KMeans(n_clusters=k, n_init=3, random_state=seed + 1 + b).fit(S[idx])
                aris.append(adjusted_rand(lab, kb.predict(S)))
            rows.append({"k": int(k),
                         "silhouette": float(silhouette_score(S, lab)),
                         "davies_bouldin": float(davies_bouldin_score(S, lab)),
                         "calinski_harabasz": float(calinski_harabasz_score(S, lab)),
                         "gmm_bic": float(gm.bic(S)),
                         "stability": float(np.mean(aris)) if aris else np.nan})
    return pd.DataFrame(rows, columns=["k", "silhouette", "davies_bouldin", "calinski_harabasz",
                                       "gmm_bic", "stability"])


#: Bootstrap ARI above which a clustering counts as reproducible (Hennig's rule of thumb for
#: cluster-wise Jaccard stability, 0.75, applied to the whole partition).
MIN_STABILITY = 0.75


def pick_k(scan: pd.DataFrame, min_stability: float = MIN_STABILITY) -> int:
    """Choose k: the best silhouette among the k whose segments are reproducible.

    Rule: keep the k with bootstrap ``stability >= min_stability``; among them take the highest
    silhouette (ties: the smaller k; Davies-Bouldin breaks exact silhouette ties). If no k is
    stable enough, take the most stable k. Why not the silhouette alone: on overlapping customer
    data silhouette and Davies-Bouldin keep improving as k grows (each category lover becomes its
    own cluster), while a segmentation that changes when the customer base is resampled cannot
    be used for campaigns. Calinski-Harabasz and GMM BIC are shown for reference only: on such
    data CH favours the smallest and BIC the largest k.
    """
    if scan.empty:
        raise ValueError("empty k scan")
    ok = scan[scan["stability"] >= min_stability]
    if ok.empty:
        best = scan.sort_values(["stability", "k"], ascending=[False, True]).iloc[0]
    else:
        best = ok.sort_values(["silhouette", "davies_bouldin", "k"],
                              ascending=[False, True, True]).iloc[0]
    return int(best["k"])


def bootstrap_stability(X: pd.DataFrame | np.ndarray, labels: np.ndarray, k: int, seed: int,
                        n_boot: int = 20, sample_size: int = 5000) -> np.ndarray:
    """ARI between the final K-means labels and K-means refitted on bootstrap resamples.

    Each bootstrap draws ``sample_size`` customers with replacement, refits K-means and labels
    *all* customers with it; the ARI against ``labels`` measures how reproducible the segments
    are when the customer base is resampled.
    """
    A = np.asarray(X, dtype=float)
    rng = np.random.default_rng(seed)
    m = min(sample_size, len(A))
    out = []
    with _limits():
        for b in range(n_boot):
            idx = rng.choice(len(A), m, replace=True)
            kb = KMeans(n_clusters=k, n_init=3, random_state=seed + 101 + b).fit(A[idx])
            out.append(adjusted_rand(labels, kb.predict(A)))
    return np.array(out)


# --------------------------------------------------------------------------------------------
# Truth checks and baselines
# --------------------------------------------------------------------------------------------


def _label_codes(x: pd.Series | np.ndarray) -> np.ndarray:
    """Integer codes 0..m-1 of any labels (strings, ints, categoricals)."""
    values = x if isinstance(x, (pd.Series, np.ndarray)) else np.asarray(x, dtype=object)
    return pd.factorize(values, use_na_sentinel=False)[0].astype(np.int64)


def _ari_from_table(table: np.ndarray) -> float:
    """Adjusted Rand index from a contingency table of counts (sklearn's pair-count formula)."""
    t = np.asarray(table, dtype=np.int64)
    n = np.int64(t.sum())
    n_c, n_k = t.sum(axis=1), t.sum(axis=0)
    sum_squares = (t ** 2).sum()
    tp = int(sum_squares - n)
    fp = int((t @ n_k).sum() - sum_squares)
    fn = int((t.T @ n_c).sum() - sum_squares)
    tn = int(n * n - fp - fn - sum_squares)
    if fn == 0 and fp == 0:
        return 1.0
    return 2.0 * (tp * tn - fn * fp) / ((tp + fn) * (fn + tn) + (tp + fp) * (fp + tn))


def adjusted_rand(a: pd.Series | np.ndarray, b: pd.Series | np.ndarray) -> float:
    """Adjusted Rand index of two labellings of the same customers.

    The same number as ``sklearn.metrics.adjusted_rand_score``, computed from a dense
    contingency table counted with ``bincount``: linear in the number of customers (sklearn
    sorts both label arrays on every call), which matters for bootstraps over a million
    customers. Labellings with very many distinct labels fall back to sklearn.
    """
    ca, cb = _label_codes(a), _label_codes(b)
    if len(ca) != len(cb):
        raise ValueError(f"labellings differ in length: {len(ca)} vs {len(cb)}")
    if len(ca) == 0:
        return 1.0
    ka, kb = int(ca.max()) + 1, int(cb.max()) + 1
    if ka * kb > 10_000_000:
        return float(adjusted_rand_score(ca, cb))
    return _ari_from_table(np.bincount(ca * kb + cb, minlength=ka * kb).reshape(ka, kb))


def persona_recovery(labels: pd.Series, persona: pd.Series) -> tuple[float, pd.DataFrame]:
    """ARI between segments and planted personas, and the confusion table (row % by segment).

    Both series are indexed by customer id; only customers present in both are compared.
    """
    common = labels.index.intersection(persona.index)
    if len(common) == 0:
        raise ValueError("no customer in common between segments and personas")
    lab, per = labels.loc[common], persona.loc[common].astype(str)
    ari = adjusted_rand(per, lab)
    tab = pd.crosstab(lab.rename("segment"), per.rename("persona"), normalize="index")
    return ari, (100 * tab).round(1)


def ari_interval(labels: pd.Series, persona: pd.Series, seed: int, n_boot: int = 200,
                 level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the ARI over resampled customers (segments held fixed).

    It reflects which customers happen to be in the data, not the refitting of the clusters
    (that is what :func:`bootstrap_stability` measures).
    """
    common = labels.index.intersection(persona.index)
    lab = _label_codes(labels.loc[common])
    per = _label_codes(persona.loc[common].astype(str))
    kl = int(lab.max()) + 1
    cell = per * kl + lab  # each customer's cell of the persona x segment table
    size = (int(per.max()) + 1) * kl
    rng = np.random.default_rng(seed)
    vals = np.empty(n_boot)
    for b in range(n_boot):
        idx = rng.integers(0, len(lab), len(lab))
        vals[b] = _ari_from_table(np.bincount(cell[idx], minlength=size).reshape(-1, kl))
    a = (1 - level) / 2
    lo, hi = np.quantile(vals, [a, 1 - a])
    return float(lo), float(hi)


def random_ari(persona: pd.Series, k: int, seed: int, n: int = 50) -> np.ndarray:
    """ARIs of random segmentations with k equally likely segments (the chance level, ~0)."""
    rng = np.random.default_rng(seed)
    y = _label_codes(persona.astype(str))
    return np.array([adjusted_rand(y, rng.integers(0, k, len(y))) for _ in range(n)])


def single_feature_ari(X: pd.DataFrame, persona: pd.Series, k: int) -> pd.DataFrame:
    """ARI of splitting customers into k quantile groups of one feature, for every feature.

    The baseline a segmentation must beat: if one tag cut into k bands recovered the personas as
    well, the multivariate clustering would add nothing.
    """
    y = _label_codes(persona.reindex(X.index).astype(str))
    rows = []
    for c in X.columns:
        q = pd.qcut(X[c].rank(method="first"), k, labels=False)
        rows.append({"feature": c, "ari": adjusted_rand(y, q)})
    return pd.DataFrame(rows).sort_values("ari", ascending=False, ignore_index=True)


def supervised_ceiling(X: pd.DataFrame, persona: pd.Series, seed: int, folds: int = 3,
                       fit_sample: int | None = None) -> float:
    """ARI of a cross-validated multinomial logistic regression predicting the persona from X.

    Not a segmentation (it sees the truth); it shows how separable the personas are from these
    tags at all, i.e. a realistic ceiling for what an unsupervised method can recover. With
    ``fit_sample`` and more customers than that, the cross-validation runs on a seeded random
    sample of ``fit_sample`` customers (an estimate of the same separability).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    y = persona.reindex(X.index).astype(str)
    A = X.to_numpy()
    rows = _fit_rows(len(A), fit_sample, seed)
    if rows is not None:
        A, y = A[rows], y.iloc[rows]
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    with _limits():
        pred = cross_val_predict(LogisticRegression(max_iter=300), A, y, cv=cv)
    return adjusted_rand(y, pred)


# --------------------------------------------------------------------------------------------
# Profiles and persona cards
# --------------------------------------------------------------------------------------------

#: Tags used to describe segments (numeric), in display order, when present.
PROFILE_TAGS = ("orders", "orders_per_year", "spend", "aov", "recency_days", "price_level",
                "price_sensitivity", "coupon_share", "discount_share", "promo_share",
                "return_rate", "visits", "view_to_purchase", "days_active",
                "brand_concentration", "age")

#: Right-skewed tags profiled on the log1p scale.
LOG_PROFILE = frozenset({"orders", "orders_per_year", "spend", "net_spend", "aov",
                         "recency_days", "visits", "views", "days_active", "favourites"})

#: Phrases naming a segment by a tag that sets it apart: (tag, sign) -> phrase.
_PHRASES: dict[tuple[str, int], str] = {
    ("spend", 1): "high-value", ("spend", -1): "low-spend",
    ("orders_per_year", 1): "frequent", ("orders_per_year", -1): "infrequent",
    ("orders", 1): "repeat", ("orders", -1): "one-off",
    ("aov", 1): "big-basket", ("aov", -1): "small-basket",
    ("price_level", 1): "premium", ("price_level", -1): "budget",
    ("price_sensitivity", 1): "deal-seeking", ("price_sensitivity", -1): "full-price",
    ("coupon_share", 1): "coupon-driven", ("promo_share", 1): "festival",
    ("return_rate", 1): "high-return",
    ("visits", 1): "heavy-browsing", ("view_to_purchase", 1): "decisive",
    ("view_to_purchase", -1): "window-shopping",
    ("recency_days", 1): "lapsing", ("recency_days", -1): "recently active",
    ("age", 1): "older", ("age", -1): "young",
    ("brand_concentration", 1): "brand-loyal",
}


def profile_numeric(tags: pd.DataFrame, labels: pd.Series,
                    columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Standardized segment means: (segment mean - overall mean) / overall std, per tag.

    Rows are segments (sorted), columns the numeric tags (``PROFILE_TAGS`` present, then
    category shares). Values are in standard deviations of the whole customer base. Skewed counts
    and money (:data:`LOG_PROFILE`) are compared on the ``log1p`` scale and the price level on
    the ``log`` scale, so that a handful of extreme customers does not decide a segment's profile.
    """
    t = tags.loc[labels.index]
    if columns is None:
        columns = [c for c in PROFILE_TAGS if c in t.columns] + \
                  [c for c in t.columns if c.startswith("share_")]
    num = t[list(columns)].apply(pd.to_numeric, errors="coerce").astype(float)
    for c in num.columns:
        if c in LOG_PROFILE:
            num[c] = np.log1p(num[c].clip(lower=0))
        elif c == "price_level":
            num[c] = np.log(num[c].where(num[c] > 0))
    mu, sd = num.mean(), num.std(ddof=0).replace(0, np.nan)
    seg_means = num.groupby(labels.values).mean()
    z = (seg_means - mu) / sd
    z.index.name = "segment"
    return z


def _over_represented(tags: pd.DataFrame, labels: pd.Series, col: str) -> dict:
    """Per segment, the level of ``col`` with the largest lift (share in segment / overall)."""
    s = tags.loc[labels.index, col].astype(object)
    ok = s.notna()
    if ok.sum() == 0:
        return {}
    overall = s[ok].value_counts(normalize=True)
    out = {}
    for seg, grp in s[ok].groupby(labels[ok].values):
        share = grp.value_counts(normalize=True)
        lift = (share / overall.reindex(share.index)).where(share >= 0.15)
        lvl = lift.idxmax() if lift.notna().any() and lift.max() >= 1.2 else share.idxmax()
        out[seg] = (str(lvl), float(share[lvl]), float(share[lvl] / overall[lvl]))
    return out


def _segment_name(z: pd.Series, used: set[str]) -> str:
    cands = []
    for tag, val in z.dropna().items():
        if abs(val) < 0.3:
            continue
        if tag.startswith("share_") and val > 0:
            cands.append((abs(val), f"{tag[6:].replace('_', ' ')} lovers"))
        elif (tag, int(np.sign(val))) in _PHRASES:
            cands.append((abs(val), _PHRASES[(tag, int(np.sign(val)))]))
    cands.sort(key=lambda x: (-x[0], x[1]))
    words: list[str] = []
    for _, w in cands:
        if w not in words:
            words.append(w)
        if len(words) == 2:
            break
    name = (" · ".join(words) if words else "mainstream").capitalize()
    base, i = name, 2
    while name in used:
        name = f"{base} ({i})"
        i += 1
    used.add(name)
    return name


def _targeting(z: pd.Series, stage_share: pd.Series, overall_stage: pd.Series,
               channel: tuple | None, device: tuple | None) -> str:
    """Targeting ideas in the guide's terms (Growth 2.2), from what sets the segment apart."""
    ideas = []
    g = z.get
    if (g("spend", 0) or 0) >= 0.5 or (g("orders_per_year", 0) or 0) >= 0.5:
        ideas.append("points for old users and member privileges (积分/会员权益) to keep value")
    if (g("price_sensitivity", 0) or 0) >= 0.3 or (g("coupon_share", 0) or 0) >= 0.3:
        ideas.append("targeted promotion (精准促销): coupons timed for 618 / Double-11, "
                     "not blanket discounts")
    lapsed = stage_share.get("at_risk", 0) + stage_share.get("churned", 0)
    lapsed_all = overall_stage.get("at_risk", 0) + overall_stage.get("churned", 0)
    if (g("return_rate", 0) or 0) >= 1.0:
        ideas.append("review returns (product fit, quality) before any promotion; keep out of "
                     "discount pushes")
    if lapsed >= lapsed_all + 0.10:
        ideas.append("win-back (召回) message with a time-limited offer")
    if stage_share.get("new", 0) >= overall_stage.get("new", 0) + 0.10 or \
            (g("orders", 0) or 0) <= -0.4:
        ideas.append("new-user coupon (新人券) for the second order")
    shares = {k: v for k, v in z.items() if k.startswith("share_") and pd.notna(v)}
    if shares:
        top = max(shares, key=shares.get)
        if shares[top] >= 0.4:
            ideas.append(f"personalized recommendation (个性化推荐) of {top[6:].replace('_', ' ')} "
                         "and complementary items")
    if not ideas:
        ideas.append("personalized recommendation (个性化推荐) from browsing history")
    reach = []
    if channel:
        reach.append(f"{channel[0]} ({100 * channel[1]:.0f}% of segment)")
    if device:
        reach.append(f"{device[0]} ({100 * device[1]:.0f}%)")
    if reach:
        ideas.append("channel choice: reach via " + ", ".join(reach))
    return "; ".join(ideas)


def persona_cards(tags: pd.DataFrame, labels: pd.Series, n_traits: int = 4) -> pd.DataFrame:
    """One card per segment: size, revenue share, distinguishing traits, name and targeting.

    Args:
        tags: tag table (index ``customer_id``).
        labels: segment per customer (index ``customer_id``), e.g. 1..k.
        n_traits: how many of the largest standardized differences to list.

    Returns:
        DataFrame indexed by segment with ``name, customers, customer_share, revenue_share,
        avg_spend, median_spend, traits, stage_mix, targeting``.
    """
    labels = labels.loc[labels.index.intersection(tags.index)]
    t = tags.loc[labels.index]
    z = profile_numeric(t, labels)
    spend = t["spend"].astype(float) if "spend" in t else pd.Series(0.0, t.index)
    rev = spend.groupby(labels.values).sum()
    size = labels.value_counts().sort_index()
    stage = None
    if "lifecycle_stage" in t:
        stage = pd.crosstab(labels.values, t["lifecycle_stage"].astype(str), normalize="index")
        overall_stage = t["lifecycle_stage"].astype(str).value_counts(normalize=True)
    chan = _over_represented(t, labels, "acquisition_channel") if "acquisition_channel" in t \
        else {}
    dev = _over_represented(t, labels, "device") if "device" in t else {}
    fav = _over_represented(t, labels, "favourite_category") if "favourite_category" in t else {}
    used: set[str] = set()
    rows = []
    for seg in size.index:
        zs = z.loc[seg]
        top = zs.dropna().reindex(zs.dropna().abs().sort_values(ascending=False).index)
        traits = ", ".join(f"{c} {v:+.1f}σ" for c, v in top.head(n_traits).items())
        if seg in fav and fav[seg][2] >= 1.3:
            traits += f"; favourite category {fav[seg][0]} ({100 * fav[seg][1]:.0f}%)"
        st = stage.loc[seg] if stage is not None else pd.Series(dtype=float)
        mix = ", ".join(f"{k} {100 * v:.0f}%" for k, v in st.sort_values(ascending=False).items()
                        if v >= 0.1)
        rows.append({
            "segment": seg,
            "name": _segment_name(zs, used),
            "customers": int(size[seg]),
            "customer_share": round(float(size[seg] / size.sum()), 3),
            "revenue_share": round(float(rev.get(seg, 0.0) / rev.sum()), 3) if rev.sum() > 0
            else np.nan,
            "avg_spend": round(float(rev.get(seg, 0.0) / size[seg]), 1),
            "median_spend": round(float(spend[labels == seg].median()), 1),
            "traits": traits,
            "stage_mix": mix,
            "targeting": _targeting(zs, st, overall_stage if stage is not None else
                                    pd.Series(dtype=float), chan.get(seg), dev.get(seg)),
        })
    return pd.DataFrame(rows).set_index("segment")


def card_text(card: pd.Series, segment: object) -> str:
    """A persona card as a few lines of plain text."""
    return (f"Segment {segment} — {card['name']}\n"
            f"  size: {card['customers']:,} customers ({100 * card['customer_share']:.1f}%), "
            f"revenue share {100 * card['revenue_share']:.1f}%, spend per customer: mean "
            f"{card['avg_spend']:,.0f}, median {card['median_spend']:,.0f}\n"
            f"  sets it apart: {card['traits']}\n"
            f"  lifecycle: {card['stage_mix']}\n"
            f"  targeting: {card['targeting']}")


#: Basic tags not exported: exact age, gender and region are quasi-identifiers, and campaign
#: tools target by segment and tags, not by person.
EXPORT_EXCLUDE = ("age", "gender", "region")


def export_table(tags: pd.DataFrame, labels: pd.Series, names: dict | None = None
                 ) -> pd.DataFrame:
    """Customer -> segment (+ name) and tags for campaign tools; no personal data.

    Customers not segmented (no order yet) get segment 0 named "no purchase yet".
    """
    out = tags.drop(columns=[c for c in EXPORT_EXCLUDE if c in tags.columns]).copy()
    seg = labels.reindex(out.index).fillna(0).astype(int)
    out.insert(0, "segment", seg)
    if names is not None:
        nm = {**{0: "no purchase yet"}, **names}
        out.insert(1, "segment_name", seg.map(nm).fillna("no purchase yet"))
    if "lifecycle_stage" in out:
        out["lifecycle_stage"] = out["lifecycle_stage"].astype(str)
    floats = out.select_dtypes("float").columns
    out[floats] = out[floats].round(4)
    return out.reset_index()
