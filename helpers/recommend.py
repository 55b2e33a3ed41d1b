"""Recommendation: an honest offline evaluation and a family of sparse recommenders (chapter 05).

Everything works on the implicit customer x product purchase matrix held as a
:class:`scipy.sparse.csr_matrix`; nothing ever densifies customers x products. Scores are computed
for a batch of customers at a time (batch x products), so memory stays bounded at 100k+ customers
x 10k+ products.

The pieces:

* **Protocol** — :func:`purchases` (order lines with their customer and time),
  :func:`time_split` (train before a cut-off, test on the following window),
  :func:`interaction_matrix`, :func:`relevance_lists` (what each test customer bought in the test
  window, optionally without the products they had already bought).
* **Metrics @k** — :func:`ranking_metrics` (precision, recall, NDCG, average precision, hit rate
  per customer), :func:`coverage`, :func:`novelty`, :func:`mean_ci`, :func:`paired_diff_ci`.
* **Models** — :class:`Popularity` (overall or a recent window), :class:`SegmentPopularity`
  (cold start by sign-up attributes), :class:`ItemKNN`, :class:`UserKNN`, :class:`ContentBased`,
  :class:`PureSVD` (latent factors), :class:`Hybrid` (score blend), all scored with
  :func:`recommend`.
* **Association rules** — :func:`basket_matrix`, :func:`pair_rules` (support, confidence, lift of
  item pairs, Apriori pruning), :func:`related_items`.
* **Truth and decisions** — :func:`planted_bundles` (the synthetic generator's complementary
  pairs), :func:`ab_sample_size` (customers per arm for an online test of a conversion lift).

Conventions: ``users``/``items`` are :class:`pandas.Index` objects mapping row/column positions to
customer and product ids; recommendations are integer arrays of item positions, ``-1`` padding.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp
from scipy import stats

from helpers import ids

# --------------------------------------------------------------------------------------------
# integer codes for ids
#
# Customer, order and product ids are strings (Arrow-backed after loading). Hashing them with
# pandas (``Index.get_indexer``, ``merge``, ``np.sort(Series.unique())``) turns every value into
# a Python object first, which costs seconds per call at a million customers. The helpers below
# encode ids once with Arrow (one hash pass in C) and work on integer codes; the results are the
# same as the pandas operations they replace (ids sort in the same order: Arrow compares UTF-8
# bytes, Python compares code points, which is the same order).


def _arrow_ids(values) -> pa.Array | None:
    """``values`` as an Arrow string array when they are strings without missing values (the
    case of validated ids), else ``None`` (the caller then uses the plain pandas operation)."""
    dtype = getattr(values, "dtype", None)
    if isinstance(dtype, pd.StringDtype) or (isinstance(dtype, pd.ArrowDtype)
                                             and pa.types.is_string(dtype.pyarrow_dtype)):
        arr = ids.as_arrow_strings(values)
    elif dtype == object and pd.api.types.infer_dtype(values, skipna=False) == "string":
        arr = ids.as_arrow_strings(values)
    else:
        return None
    return arr if arr.null_count == 0 else None


def _sorted_codes(values, name: str | None = None, uniques: bool = True
                  ) -> tuple[np.ndarray, pd.Index | None]:
    """``(codes, uniques)``: the distinct values in ascending order (an object ``Index``, as
    ``pd.Index(np.sort(series.unique()))`` gives) and each value's position in them. With
    ``uniques=False`` only the codes are needed and the distinct values are not built
    (``None``; for strings this skips making millions of Python strings)."""
    arr = _arrow_ids(values)
    if arr is None:
        uniq = pd.Index(np.sort(pd.Series(values).unique()), name=name)
        return np.asarray(uniq.get_indexer(pd.Index(values)), dtype=np.int64), uniq
    codes, uniq = ids.sorted_codes(arr)
    if not uniques:
        return codes, None
    return codes, pd.Index(uniq.to_numpy(zero_copy_only=False), name=name, dtype=object)


def _sorted_unique(values, name: str | None = None) -> pd.Index:
    """Distinct values in ascending order (same as ``pd.Index(np.sort(series.unique()))``)."""
    arr = _arrow_ids(values)
    if arr is None:
        return pd.Index(np.sort(pd.Series(values).unique()), name=name)
    u = pc.unique(arr)
    u = u.take(pc.sort_indices(u)).to_numpy(zero_copy_only=False)
    return pd.Index(u, name=name, dtype=object)


def _unique_sorted(keys: np.ndarray) -> np.ndarray:
    """``np.unique(keys)`` for integer keys by one sort (faster than its hash path here)."""
    k = np.sort(np.asarray(keys, dtype=np.int64))
    return k[np.concatenate([[True], k[1:] != k[:-1]])] if len(k) else k


# --------------------------------------------------------------------------------------------
# protocol


def purchases(orders: pd.DataFrame, order_lines: pd.DataFrame) -> pd.DataFrame:
    """Order lines with the customer and time of their order.

    Returns columns ``customer_id, order_id, order_ts, product_id, quantity`` (one row per
    order line whose order is known), sorted by time then order id.
    """
    lines = order_lines[["order_id", "product_id", "quantity"]]
    ts = orders["order_ts"]
    if (_arrow_ids(lines["order_id"]) is None or _arrow_ids(orders["order_id"]) is None
            or _arrow_ids(lines["product_id"]) is None
            or not pd.api.types.is_datetime64_any_dtype(ts) or ts.isna().any()
            or orders["order_id"].duplicated().any()):
        # the plain pandas join (ids that are not strings, missing times, repeated orders)
        cols = ["order_id", "customer_id", "order_ts"]
        out = lines.merge(orders[cols], on="order_id", how="inner")
        out = out[["customer_id", "order_id", "order_ts", "product_id", "quantity"]]
        return out.sort_values(["order_ts", "order_id", "product_id"],
                               kind="stable").reset_index(drop=True)
    # the same inner join and stable sort on integer codes: each line's order position, then
    # lines ordered by (time, order id, product id), ties in line order
    pos = ids.positions(lines["order_id"], orders["order_id"])
    keep = np.flatnonzero(pos >= 0)
    opos = pos[keep]
    order_rank, _ = _sorted_codes(orders["order_id"], uniques=False)
    prod_rank, _ = _sorted_codes(lines["product_id"], uniques=False)
    t = np.asarray(pd.DatetimeIndex(ts).asi8)[opos]
    perm = np.lexsort((prod_rank[keep], order_rank[opos], t))
    src_line, src_order = keep[perm], opos[perm]
    out = pd.DataFrame({
        "customer_id": orders["customer_id"].take(src_order).reset_index(drop=True),
        "order_id": lines["order_id"].take(src_line).reset_index(drop=True),
        "order_ts": ts.take(src_order).reset_index(drop=True),
        "product_id": lines["product_id"].take(src_line).reset_index(drop=True),
        "quantity": lines["quantity"].take(src_line).reset_index(drop=True),
    })
    return out


@dataclass(frozen=True)
class PurchaseCounts:
    """Sizes of a purchases table (see :func:`purchase_counts`)."""

    lines: int
    orders: int
    customers: int
    buyers_per_product: pd.Series  # distinct customers per product, most bought first
    lines_per_order: np.ndarray  # order lines of each order


def purchase_counts(purch: pd.DataFrame) -> PurchaseCounts:
    """Order lines, orders, customers, distinct buyers per product and lines per order of a
    :func:`purchases` table, counted on integer codes (the same numbers as ``nunique`` and
    ``groupby(...).size()`` on the id columns, without hashing millions of strings in pandas)."""
    cust, _ = _sorted_codes(purch["customer_id"], uniques=False)
    prod, items = _sorted_codes(purch["product_id"], "product_id")
    order, _ = _sorted_codes(purch["order_id"], uniques=False)
    n_cust = int(cust.max()) + 1 if len(cust) else 0
    n_orders = int(order.max()) + 1 if len(order) else 0
    pairs = _unique_sorted(prod * np.int64(max(n_cust, 1)) + cust)
    buyers = np.bincount(pairs // max(n_cust, 1), minlength=len(items)).astype(np.int64)
    per_product = pd.Series(buyers, index=items, name="customer_id").sort_values(
        ascending=False, kind="stable")
    return PurchaseCounts(len(purch), n_orders, n_cust, per_product,
                          np.bincount(order, minlength=n_orders).astype(np.int64))


@dataclass(frozen=True)
class Split:
    """A time-based train/test split of purchases."""

    train: pd.DataFrame  # purchases with order_ts < cutoff
    test: pd.DataFrame  # purchases with cutoff <= order_ts < end
    cutoff: pd.Timestamp  # first moment of the test window
    end: pd.Timestamp  # first moment after the test window (analysis date + 1 day)


def time_split(purch: pd.DataFrame, analysis_date: str | pd.Timestamp, test_days: int) -> Split:
    """Train on purchases before ``analysis_date + 1 day - test_days``, test on the rest.

    The test window is the last ``test_days`` whole days up to and including ``analysis_date``;
    purchases after the analysis date are ignored (they are the future).
    """
    if int(test_days) < 1:
        raise ValueError(f"test_days must be a positive number of days; got {test_days!r}")
    end = pd.Timestamp(analysis_date).normalize() + pd.Timedelta(days=1)
    cutoff = end - pd.Timedelta(days=int(test_days))
    ts = purch["order_ts"]
    train = purch[ts < cutoff].reset_index(drop=True)
    test = purch[(ts >= cutoff) & (ts < end)].reset_index(drop=True)
    return Split(train, test, cutoff, end)


@dataclass(frozen=True)
class Interactions:
    """The implicit customer x product matrix with its id indexes."""

    matrix: sp.csr_matrix  # users x items, float32; binary (bought at least once) by default
    users: pd.Index
    items: pd.Index

    @property
    def shape(self) -> tuple[int, int]:
        return self.matrix.shape

    def rows(self, customer_ids: Sequence[str] | pd.Index) -> np.ndarray:
        """Row positions of customers (``-1`` for customers without history)."""
        return ids.positions(pd.Index(customer_ids), self.users)


def interaction_matrix(purch: pd.DataFrame, users: pd.Index | None = None,
                       items: pd.Index | None = None, binary: bool = True) -> Interactions:
    """Customer x product matrix from purchases (rows/columns in sorted id order by default).

    Purchases of customers or products outside ``users``/``items`` are dropped. With
    ``binary=True`` a cell is 1 if the customer bought the product at least once, else the number
    of order lines.
    """
    if users is None:
        r, users = _sorted_codes(purch["customer_id"], "customer_id")
    else:
        r = ids.positions(purch["customer_id"], users)
    if items is None:
        c, items = _sorted_codes(purch["product_id"], "product_id")
    else:
        c = ids.positions(purch["product_id"], items)
    keep = (r >= 0) & (c >= 0)
    m = sp.csr_matrix((np.ones(int(keep.sum()), dtype=np.float32), (r[keep], c[keep])),
                      shape=(len(users), len(items)))
    m.sum_duplicates()
    if binary:
        m.data[:] = 1.0
    return Interactions(m, users, items)


def relevance_lists(test: pd.DataFrame, inter: Interactions, customer_ids: Sequence[str],
                    exclude_seen: bool = True) -> list[np.ndarray]:
    """What each customer bought in the test window, as item positions.

    Products that are not in ``inter.items`` (new in the test window, so no model can recommend
    them) still count: they get distinct positions ``>= len(inter.items)`` so that they lower
    recall honestly. With ``exclude_seen`` the products a customer bought before the cut-off are
    removed (the task is then "what will they buy that they have not bought yet").
    """
    n_items = len(inter.items)
    pos = ids.positions(test["product_id"], inter.items)
    unknown = np.flatnonzero(pos < 0)
    if len(unknown):  # products new in the test window: positions after the known ones
        new_prod = test["product_id"].take(unknown)
        pos[unknown] = n_items + ids.positions(new_prod, _sorted_unique(new_prod))
    want = pd.Index(customer_ids)
    code = ids.positions(test["customer_id"], want)  # which output list each test purchase joins
    ok = np.flatnonzero(code >= 0)
    code, pos = code[ok], pos[ok]
    if exclude_seen:
        r = ids.positions(test["customer_id"].take(ok), inter.users)
        seen = (r >= 0) & (pos < n_items)
        if seen.any():
            seen[seen] = _stored(inter.matrix, r[seen], pos[seen])
        code, pos = code[~seen], pos[~seen]
    # one entry per (customer, product), grouped by customer without a Python-level groupby
    base = np.int64(pos.max() + 1 if len(pos) else 1)
    key = _unique_sorted(code * base + pos)
    code, pos = key // base, key % base
    bounds = np.searchsorted(code, np.arange(len(want) + 1))
    return [pos[bounds[i]:bounds[i + 1]] for i in range(len(want))]


def _stored(m: sp.csr_matrix, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Is there a stored entry at each ``(rows[i], cols[i])`` of ``m``? (a vectorized lookup)"""
    m = sp.csr_matrix(m)
    if not m.has_sorted_indices:
        m = m.sorted_indices()
    n_cols = m.shape[1] + 1
    keys = np.repeat(np.arange(m.shape[0], dtype=np.int64), np.diff(m.indptr)) * n_cols \
        + m.indices
    want = rows.astype(np.int64) * n_cols + cols
    at = np.searchsorted(keys, want)
    return (at < len(keys)) & (keys[np.minimum(at, len(keys) - 1)] == want) if len(keys) else \
        np.zeros(len(want), dtype=bool)


@dataclass(frozen=True)
class EvalSet:
    """Everything an offline evaluation needs, built once by :func:`evaluation_set`.

    *Warm* customers bought before the cut-off and in the test window (scored from their history);
    *cold* customers bought only in the test window (no history: cold start).
    """

    split: Split
    inter: Interactions  # training matrix (customers and products seen before the cut-off)
    warm_ids: pd.Index
    warm_rows: np.ndarray
    warm_relevant: list[np.ndarray]
    cold_ids: pd.Index
    cold_relevant: list[np.ndarray]
    n_warm_only_repeats: int  # warm test customers dropped: every test purchase was a re-buy
    exclude_seen: bool

    def summary(self) -> pd.DataFrame:
        """One-row-per-fact description of the protocol (for display)."""
        s = self.split
        first = s.train["order_ts"].min()
        start = f"{first:%Y-%m-%d}" if pd.notna(first) else "(no purchases)"
        return pd.DataFrame({"value": [
            f"{start} .. {s.cutoff - pd.Timedelta(days=1):%Y-%m-%d}",
            f"{s.cutoff:%Y-%m-%d} .. {s.end - pd.Timedelta(days=1):%Y-%m-%d}",
            f"{self.inter.shape[0]:,}", f"{self.inter.shape[1]:,}",
            f"{self.inter.matrix.nnz / max(np.prod(self.inter.shape), 1):.3%}",
            f"{len(self.warm_ids):,}", f"{len(self.cold_ids):,}", f"{self.n_warm_only_repeats:,}",
            "yes" if self.exclude_seen else "no",
        ]}, index=pd.Index(["train period", "test window", "training customers",
                            "products in training", "matrix density",
                            "warm test customers (evaluated)", "cold-start test customers",
                            "warm customers with only re-buys (dropped)",
                            "already-bought products excluded"], name="protocol"))


def evaluation_set(purch: pd.DataFrame, analysis_date: str | pd.Timestamp, test_days: int,
                   exclude_seen: bool = True, max_users: int | None = None,
                   seed: int = 0) -> EvalSet:
    """Time split, training matrix and the relevant products of warm and cold test customers.

    With ``max_users`` at most that many warm customers are kept (a seeded random sample; used for
    the cheaper validation runs). Customer order is sorted by id.
    """
    split = time_split(purch, analysis_date, test_days)
    inter = interaction_matrix(split.train)
    test_ids = _sorted_unique(split.test["customer_id"], "customer_id")
    rows = inter.rows(test_ids)
    warm, cold = test_ids[rows >= 0], test_ids[rows < 0]
    rel = relevance_lists(split.test, inter, warm, exclude_seen=exclude_seen)
    has = np.array([len(r) > 0 for r in rel], dtype=bool)
    n_drop = int((~has).sum())
    warm = warm[has]
    rel = [r for r, h in zip(rel, has) if h]
    if max_users is not None and len(warm) > max_users:
        pick = np.sort(np.random.default_rng(seed).choice(len(warm), max_users, replace=False))
        warm, rel = warm[pick], [rel[i] for i in pick]
    cold_rel = relevance_lists(split.test, inter, cold, exclude_seen=False)
    return EvalSet(split, inter, warm, inter.rows(warm), rel, cold, cold_rel, n_drop, exclude_seen)


# --------------------------------------------------------------------------------------------
# metrics


def hit_matrix(recs: np.ndarray, relevant: Sequence[np.ndarray]) -> np.ndarray:
    """Boolean (users x k): is the j-th recommendation of user i in their relevant set?

    ``recs`` holds item positions with ``-1`` for empty slots (never a hit).
    """
    recs = np.asarray(recs, dtype=np.int64)
    n, k = recs.shape
    if len(relevant) != n:
        raise ValueError(f"{n} recommendation rows but {len(relevant)} relevance lists")
    lens = np.fromiter((len(r) for r in relevant), dtype=np.int64, count=n)
    flat = (np.concatenate(relevant).astype(np.int64) if lens.sum()
            else np.array([], dtype=np.int64))
    big = np.int64(max(int(recs.max(initial=0)), int(flat.max(initial=0))) + 2)
    rel_keys = np.sort(np.repeat(np.arange(n, dtype=np.int64), lens) * big + flat)
    rec_keys = np.arange(n, dtype=np.int64)[:, None] * big + recs
    if len(rel_keys) == 0:
        return np.zeros(recs.shape, dtype=bool)
    at = np.minimum(np.searchsorted(rel_keys, rec_keys), len(rel_keys) - 1)
    return (rel_keys[at] == rec_keys) & (recs >= 0)


def ranking_metrics(recs: np.ndarray, relevant: Sequence[np.ndarray], k: int | None = None
                    ) -> pd.DataFrame:
    """Per-user precision, recall, NDCG, average precision and hit rate at ``k``.

    Definitions (binary relevance, ``R`` = relevant set, ``hit_i`` = the item at rank ``i`` is in
    ``R``):

    * precision@k = hits / k;  recall@k = hits / |R|;  hit@k = 1 if any hit;
    * NDCG@k = sum_i hit_i / log2(i + 1) divided by its best value sum_{i <= min(|R|, k)} 1/log2(i+1);
    * AP@k = sum_i hit_i * precision@i / min(|R|, k)  (MAP@k is its mean over users).

    Users with an empty ``R`` get NaN (drop them from the evaluation beforehand).
    """
    recs = np.asarray(recs)
    k = recs.shape[1] if k is None else int(k)
    if k < 1 or k > recs.shape[1]:
        raise ValueError(f"k must be between 1 and {recs.shape[1]}; got {k}")
    recs = recs[:, :k]
    hits = hit_matrix(recs, relevant).astype(float)
    n_rel = np.array([len(r) for r in relevant], dtype=float)
    n_hit = hits.sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        disc = 1.0 / np.log2(np.arange(2, k + 2))
        dcg = hits @ disc
        ideal_n = np.minimum(n_rel, k).astype(int)
        idcg = np.concatenate([[0.0], np.cumsum(disc)])[ideal_n]
        prec_at_i = np.cumsum(hits, 1) / np.arange(1, k + 1)
        ap = (prec_at_i * hits).sum(1) / np.minimum(n_rel, k)
        out = pd.DataFrame({
            "precision": n_hit / k,
            "recall": n_hit / n_rel,
            "ndcg": dcg / idcg,
            "map": ap,
            "hit_rate": (n_hit > 0).astype(float),
        })
    out.loc[n_rel == 0, :] = np.nan
    return out


def coverage(recs: np.ndarray, n_items: int) -> float:
    """Catalogue coverage: share of the ``n_items`` catalogue recommended to at least one user."""
    r = np.asarray(recs).ravel()
    return float(len(np.unique(r[r >= 0])) / n_items) if n_items else float("nan")


def novelty(recs: np.ndarray, item_popularity: np.ndarray, n_users: int) -> float:
    """Mean self-information ``-log2(p_i)`` of recommended items (bits; higher = less obvious).

    ``p_i`` is the share of the ``n_users`` training customers who bought item ``i`` (floored at
    ``1/n_users`` so items nobody bought count as the rarest).
    """
    r = np.asarray(recs).ravel()
    r = r[r >= 0]
    if len(r) == 0:
        return float("nan")
    p = np.maximum(np.asarray(item_popularity, dtype=float)[r], 1.0) / n_users
    return float(np.mean(-np.log2(p)))


def mean_ci(x: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and normal-approximation confidence interval of the mean (NaNs ignored)."""
    x = np.asarray(x, dtype=float)
    x = x[~np.isnan(x)]
    if len(x) == 0:
        return (float("nan"),) * 3
    m = float(x.mean())
    if len(x) < 2:
        return m, float("nan"), float("nan")
    half = float(stats.norm.ppf(0.5 + level / 2) * x.std(ddof=1) / np.sqrt(len(x)))
    return m, m - half, m + half


def paired_diff_ci(a: np.ndarray, b: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """Mean of ``a - b`` over the same users with its confidence interval (paired comparison)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError("paired_diff_ci needs per-user values of the same users")
    return mean_ci(a - b, level)


# --------------------------------------------------------------------------------------------
# models


def _l2_rows(m: sp.csr_matrix) -> sp.csr_matrix:
    norms = np.sqrt(np.asarray(m.multiply(m).sum(1)).ravel())
    norms[norms == 0] = 1.0
    return sp.diags(1.0 / norms).dot(m).tocsr()


def _top_n_dense(d: np.ndarray, n: int) -> sp.csr_matrix:
    """Sparse matrix with the ``n`` largest positive entries of each row of a dense block."""
    rows, cols = d.shape
    if n >= cols:
        keep = np.where(d > 0, d, 0.0)
        return sp.csr_matrix(keep)
    # ties broken towards the lower column: a shift far below any real difference of scores
    jitter = d - np.arange(cols) * (1e-12 * max(float(np.abs(d).max(initial=0.0)), 1e-300))
    idx = np.argpartition(-jitter, n - 1, axis=1)[:, :n]
    vals = np.take_along_axis(d, idx, 1)
    r = np.repeat(np.arange(rows), n)
    ok = vals.ravel() > 0
    return sp.csr_matrix((vals.ravel()[ok], (r[ok], idx.ravel()[ok])), shape=(rows, cols))


def _dense_if_small(m: sp.spmatrix, max_cells: int = 4_000_000) -> np.ndarray | None:
    """``m`` as a dense array when it has at most ``max_cells`` cells (e.g. a 600 x 600 item
    similarity), else ``None``."""
    return m.toarray() if m.shape[0] * m.shape[1] <= max_cells else None


def _sparse_times(a: sp.csr_matrix, b: sp.csr_matrix, b_dense: np.ndarray | None) -> np.ndarray:
    """``(a @ b).toarray()``, computed as sparse x dense when ``b_dense`` (``b`` as an array) is
    given. Both accumulate each output cell over the non-zeros of ``a``'s row in the same order,
    so the values are the same; sparse x dense skips building a nearly dense sparse result."""
    if b_dense is None:
        return (a @ b).toarray()
    return np.asarray(a @ b_dense)


def top_n_per_row(m: sp.csr_matrix, n: int, max_cells: int = 4_000_000) -> sp.csr_matrix:
    """Keep the ``n`` largest positive entries of every row (ties: lower column first).

    Rows are processed in chunks of at most ``max_cells`` dense cells, so memory stays bounded.
    """
    m = sp.csr_matrix(m)
    m.sum_duplicates()
    m.data[m.data < 0] = 0
    m.eliminate_zeros()
    n_rows, n_cols = m.shape
    if n < 1 or m.nnz == 0:
        return sp.csr_matrix(m.shape, dtype=m.dtype)
    if np.diff(m.indptr).max() <= n:
        return m
    step = max(1, max_cells // max(n_cols, 1))
    parts = [_top_n_dense(m[s:s + step].toarray(), n) for s in range(0, n_rows, step)]
    return sp.vstack(parts).tocsr()


@dataclass
class Recommender:
    """Base class: ``fit`` on a training :class:`Interactions`, ``score`` rows of its users.

    ``score(rows)`` returns a dense (len(rows) x n_items) array for customers given by their row
    positions in the training matrix (``-1`` = no history). Every model adds a tiny multiple of
    item popularity, so that items it cannot tell apart are ordered by popularity, the usual
    back-fill.
    """

    name: str = "model"
    inter: Interactions | None = field(default=None, repr=False)
    pop: np.ndarray | None = field(default=None, repr=False)

    def fit(self, inter: Interactions) -> "Recommender":
        self.inter = inter
        self.pop = np.asarray((inter.matrix > 0).sum(0)).ravel().astype(float)
        self._fit(inter)
        return self

    def _fit(self, inter: Interactions) -> None:  # pragma: no cover - overridden
        pass

    def _tiebreak(self) -> np.ndarray:
        return 1e-6 * self.pop / max(self.pop.max(), 1.0)

    def history(self, rows: np.ndarray) -> sp.csr_matrix:
        """Training rows of the given users (an empty row for ``-1``)."""
        rows = np.asarray(rows)
        x = self.inter.matrix
        safe = np.where(rows >= 0, rows, 0)
        h = x[safe]
        if (rows < 0).any():
            h = sp.diags((rows >= 0).astype(np.float32)).dot(h).tocsr()
        return h

    def score(self, rows: np.ndarray) -> np.ndarray:
        return self._score(np.asarray(rows)) + self._tiebreak()[None, :]

    def _score(self, rows: np.ndarray) -> np.ndarray:  # pragma: no cover - overridden
        raise NotImplementedError


@dataclass
class Popularity(Recommender):
    """The same list for everyone: products bought by the most customers.

    With ``recent`` (a customer x product matrix of a recent window, same indexes) the ranking
    uses recent buyers instead: "what is selling now".
    """

    name: str = "popularity"
    recent: sp.csr_matrix | None = field(default=None, repr=False)

    def _fit(self, inter: Interactions) -> None:
        src = inter.matrix if self.recent is None else self.recent
        self.weights = np.asarray((src > 0).sum(0)).ravel().astype(float)

    def _score(self, rows: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.weights, (len(rows), len(self.weights))).copy()


@dataclass
class SegmentPopularity(Recommender):
    """Popularity within a customer segment (e.g. sign-up channel x age band): cold-start lists.

    ``segment_of`` maps customer ids to a segment label; it must cover the training customers and
    the customers to be scored (pass ``customer_ids`` to :meth:`score_customers`). Segments with
    fewer than ``min_customers`` training customers use overall popularity.
    """

    name: str = "segment popularity"
    segment_of: pd.Series | None = field(default=None, repr=False)
    min_customers: int = 30

    def _fit(self, inter: Interactions) -> None:
        seg = self._segments(inter.users)
        self.labels = pd.Index(np.sort(seg.unique()))
        code = self.labels.get_indexer(seg)
        onehot = sp.csr_matrix((np.ones(len(code)), (code, np.arange(len(code)))),
                               shape=(len(self.labels), len(code)))
        counts = (onehot @ (inter.matrix > 0).astype(np.float32)).toarray()
        size = np.asarray(onehot.sum(1)).ravel()
        overall = self.pop / max(len(code), 1)
        share = counts / np.maximum(size, 1)[:, None]
        small = size < self.min_customers
        share[small] = overall
        self.table = share
        self.overall = overall

    def segment_codes(self, customer_ids: Sequence[str]) -> np.ndarray:
        """Row of :attr:`table` for each customer (``-1``: a segment unseen in training). Look
        customers up once and score them with :meth:`score_codes` in batches."""
        return self.labels.get_indexer(self._segments(pd.Index(customer_ids)))

    def _segments(self, customer_ids: pd.Index) -> pd.Series:
        """Segment label of each customer (``"(unknown)"`` when ``segment_of`` lacks them);
        the same as ``segment_of.reindex(customer_ids).fillna("(unknown)").astype(str)``."""
        if not self.segment_of.index.is_unique:
            raise ValueError("segment_of has repeated customer ids: "
                             f"{list(self.segment_of.index[self.segment_of.index.duplicated()][:3])}")
        pos = ids.positions(customer_ids, self.segment_of.index)
        vals = self.segment_of.to_numpy(dtype=object)
        seg = pd.Series(np.where(pos >= 0, vals[np.maximum(pos, 0)] if len(vals) else None, None),
                        index=customer_ids, dtype=object)
        return seg.fillna("(unknown)").astype(str)

    def score_codes(self, code: np.ndarray) -> np.ndarray:
        """Scores of customers given by their :meth:`segment_codes`."""
        code = np.asarray(code)
        out = np.where(code[:, None] >= 0, self.table[np.maximum(code, 0)], self.overall[None, :])
        return out + self._tiebreak()[None, :]

    def score_customers(self, customer_ids: Sequence[str]) -> np.ndarray:
        return self.score_codes(self.segment_codes(customer_ids))

    def _score(self, rows: np.ndarray) -> np.ndarray:
        ids = self.inter.users[np.maximum(rows, 0)]
        return self.score_customers(ids) - self._tiebreak()[None, :]


@dataclass
class ItemKNN(Recommender):
    """Item-based collaborative filtering ("customers who bought this also bought").

    Item-item cosine similarity of the binary purchase matrix, ``sim(i, j) = |U_i & U_j| /
    (sqrt(|U_i| |U_j|) + shrinkage)`` (shrinkage > 0 discounts similarities resting on a handful
    of shared buyers), keeping the ``neighbours`` most similar items of each item; computed in
    blocks of items so only the pruned similarity matrix is ever held. A customer's score for an
    item is the sum of its similarities to the items they bought.
    """

    name: str = "item-CF"
    neighbours: int = 50
    shrinkage: float = 0.0  # added to the cosine denominator: damps pairs of rarely bought items
    max_cells: int = 4_000_000  # dense item-block x items cells held at once

    def _fit(self, inter: Interactions) -> None:
        xb = (inter.matrix > 0).astype(np.float32).tocsr()
        xt = xb.T.tocsr()  # items x customers
        norm = np.sqrt(np.maximum(self.pop, 1.0))
        n = xb.shape[1]
        step = max(1, self.max_cells // max(n, 1))
        parts = []
        for s in range(0, n, step):
            e = min(s + step, n)
            c = (xt[s:e] @ xb).toarray()  # co-buyer counts of the block's items with every item
            c /= norm[s:e, None] * norm[None, :] + self.shrinkage
            c[np.arange(e - s), np.arange(s, e)] = 0.0  # an item is not its own neighbour
            parts.append(_top_n_dense(c, self.neighbours))
        # sim[i, j]: similarity of item j to item i (row i holds i's neighbours)
        self.sim = sp.vstack(parts).tocsr() if parts else sp.csr_matrix((n, n))
        self._sim_dense = _dense_if_small(self.sim, self.max_cells)

    def _score(self, rows: np.ndarray) -> np.ndarray:
        # score(u, j) = sum over bought items i of sim(i, j)
        return _sparse_times(self.history(rows), self.sim, self._sim_dense)


@dataclass
class UserKNN(Recommender):
    """User-based collaborative filtering: what the ``neighbours`` most similar customers bought.

    Cosine similarity between customers' binary purchase vectors, computed per batch of customers
    (batch x candidates, dense), pruned to the top neighbours; the score of an item is the summed
    similarity of the neighbours who bought it.

    Neighbours are looked for among at most ``max_candidates`` customers: all training customers
    when there are no more than that, otherwise a seeded random sample of them (``None``: always
    all). Without the cap the cost of scoring every customer grows with the square of the number
    of customers; with it, scoring costs at most ``max_candidates`` similarities per customer.
    """

    name: str = "user-CF"
    neighbours: int = 50
    max_candidates: int | None = 20_000  # neighbour pool; None = every training customer
    seed: int = 0
    max_cells: int = 10_000_000  # dense batch x candidates cells held at once

    def _fit(self, inter: Interactions) -> None:
        xb = (inter.matrix > 0).astype(np.float32).tocsr()
        n = xb.shape[0]
        if self.max_candidates is not None and n > int(self.max_candidates):
            cand = np.sort(np.random.default_rng(self.seed).choice(n, int(self.max_candidates),
                                                                   replace=False))
        else:
            cand = np.arange(n)
        self.candidates = cand  # training rows that can serve as neighbours
        self._cand_pos = np.full(n, -1, dtype=np.int64)
        self._cand_pos[cand] = np.arange(len(cand))
        self.xb = xb[cand] if len(cand) < n else xb
        self.xnt = _l2_rows(self.xb).T.tocsr()

    def _score(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows)
        step = max(1, self.max_cells // max(self.xb.shape[0], 1))
        out = []
        for s0 in range(0, len(rows), step):
            r = rows[s0:s0 + step]
            h = _l2_rows(self.history(r))
            s = (h @ self.xnt).toarray()  # chunk x candidates
            pos = np.where(r >= 0, self._cand_pos[np.maximum(r, 0)], -1)
            own = np.flatnonzero(pos >= 0)
            s[own, pos[own]] = 0.0  # a customer is not their own neighbour
            out.append((_top_n_dense(s, self.neighbours) @ self.xb).toarray())
        return np.vstack(out) if out else np.zeros((0, self.xb.shape[1]))


def item_features(products: pd.DataFrame | None, items: pd.Index, price_bands: int = 5,
                  text_min_df: int = 3) -> tuple[sp.csr_matrix, list[str]]:
    """Sparse item x feature matrix for content-based recommendation.

    One-hot ``category`` and ``brand`` (when present), a price band (quantiles of ``price``), and,
    when the products have no category, TF-IDF words of ``product_name`` (real catalogues often
    only have descriptions). Each feature group is L2-normalized so that groups weigh equally.
    Returns the matrix (rows in ``items`` order) and the feature names.
    """
    p = (products.drop_duplicates("product_id").set_index("product_id").reindex(items)
         if products is not None else pd.DataFrame(index=items))
    blocks: list[sp.csr_matrix] = []
    names: list[str] = []

    def onehot(values: pd.Series, prefix: str) -> None:
        v = values.astype("string")
        if v.notna().sum() == 0:
            return
        labels = pd.Index(np.sort(v.dropna().unique()))
        code = labels.get_indexer(v.fillna("\0"))
        ok = code >= 0
        m = sp.csr_matrix((np.ones(int(ok.sum())), (np.flatnonzero(ok), code[ok])),
                          shape=(len(items), len(labels)))
        blocks.append(m)
        names.extend(f"{prefix}={x}" for x in labels)

    for col in ("category", "brand"):
        if col in p.columns:
            onehot(p[col], col)
    if "price" in p.columns and p["price"].notna().sum() >= price_bands:
        ranks = p["price"].rank(pct=True)
        band = np.ceil(ranks * price_bands).clip(1, price_bands)
        onehot(band.map(lambda b: f"{int(b)}/{price_bands}" if pd.notna(b) else None), "price_band")
    has_cat = "category" in p.columns and p["category"].notna().any()
    if not has_cat and "product_name" in p.columns and p["product_name"].notna().sum() > 0:
        from sklearn.feature_extraction.text import TfidfVectorizer

        text = p["product_name"].fillna("").astype(str).str.lower()
        vec = TfidfVectorizer(min_df=text_min_df, token_pattern=r"(?u)\b[a-z][a-z]+\b")
        try:
            m = vec.fit_transform(text)
            blocks.append(sp.csr_matrix(m))
            names.extend(f"word={w}" for w in vec.get_feature_names_out())
        except ValueError:  # empty vocabulary
            pass
    if not blocks:
        return sp.csr_matrix((len(items), 0)), []
    return sp.hstack([_l2_rows(sp.csr_matrix(b)) for b in blocks]).tocsr(), names


@dataclass
class ContentBased(Recommender):
    """Content-based: items whose attributes match the customer's purchase profile.

    The profile is the average feature vector of the items a customer bought (category, brand,
    price band or description words, see :func:`item_features`); an item's score is the cosine
    between its features and the profile, optionally multiplied by a popularity prior
    ``(share of buyers) ** popularity_weight`` (pure content ignores how good an item is).
    """

    name: str = "content"
    features: sp.csr_matrix | None = field(default=None, repr=False)
    popularity_weight: float = 0.0  # score x (share of buyers) ** weight; 0 = pure content

    def _fit(self, inter: Interactions) -> None:
        if self.features is None or self.features.shape[0] != inter.shape[1]:
            raise ValueError("ContentBased needs an item x feature matrix with one row per item")
        self.f = _l2_rows(self.features.tocsr())
        self.ft = self.f.T.tocsr()
        self._ft_dense = _dense_if_small(self.ft)

    def _score(self, rows: np.ndarray) -> np.ndarray:
        prof = _l2_rows(self.history(rows) @ self.f)
        sc = _sparse_times(prof, self.ft, self._ft_dense)
        if self.popularity_weight:
            sc *= ((self.pop + 1.0) / (self.pop.max() + 1.0)) ** self.popularity_weight
        return sc


@dataclass
class PureSVD(Recommender):
    """Latent factors: truncated SVD of the purchase matrix (PureSVD, Cremonesi et al. 2010).

    ``X ~ U S V'`` with ``factors`` components (``scipy.sparse.linalg.svds``, the same truncated
    SVD as scikit-learn's ``TruncatedSVD`` with ARPACK, from a seeded start vector);
    a customer's scores are their history projected on the factor space and back, ``x V' V``, so
    customers need not be refitted to be scored ("folding in"). Columns are scaled by
    ``popularity ** -alpha`` before the fit to temper the pull towards bestsellers.
    """

    name: str = "latent factors (SVD)"
    factors: int = 32
    alpha: float = 0.3
    seed: int = 0

    def _fit(self, inter: Interactions) -> None:
        from scipy.sparse.linalg import svds

        xb = (inter.matrix > 0).astype(np.float64)
        self.colw = np.maximum(self.pop, 1.0) ** (-self.alpha)
        xw = (xb @ sp.diags(self.colw)).tocsr()
        nf = int(min(self.factors, min(xw.shape) - 1))
        if nf < 1 or xw.nnz == 0:
            self.v, self.singular_values = np.zeros((0, xw.shape[1])), np.zeros(0)
            return
        # ARPACK from a fixed start vector: deterministic, and faster than randomized SVD here
        v0 = np.random.default_rng(self.seed).random(min(xw.shape)) + 0.5
        _, sv, vt = svds(xw, k=nf, v0=v0)
        order = np.argsort(-sv, kind="stable")
        self.singular_values = sv[order]
        self.v = vt[order]  # factors x items, strongest first (row signs do not matter for V'V)

    def truncated(self, factors: int) -> "PureSVD":
        """The same fitted model keeping only its ``factors`` strongest factors (no refit: the
        leading singular vectors of a truncated SVD are those of a longer one)."""
        import copy

        m = copy.copy(self)
        m.factors = int(factors)
        m.v = self.v[: int(factors)]
        m.singular_values = self.singular_values[: int(factors)]
        return m
    def _score(self, rows: np.ndarray) -> np.ndarray:
        h = self.history(rows) @ sp.diags(self.colw)
        return np.asarray(h @ self.v.T) @ self.v


@dataclass
class Hybrid(Recommender):
    """A weighted blend of other (fitted) models' scores, each scaled to [0, 1] per customer."""

    name: str = "hybrid"
    parts: tuple[Recommender, ...] = ()
    weights: tuple[float, ...] = ()

    def _fit(self, inter: Interactions) -> None:
        if not self.parts or len(self.parts) != len(self.weights):
            raise ValueError("Hybrid needs fitted parts and one weight per part")

    def _score(self, rows: np.ndarray) -> np.ndarray:
        total = np.zeros((len(rows), self.inter.shape[1]))
        for m, w in zip(self.parts, self.weights):
            # total += w * (s - lo) / span, in place (the same operations in the same order)
            s = m._score(rows)
            lo = s.min(1, keepdims=True)
            span = s.max(1, keepdims=True) - lo
            scaled = np.subtract(s, lo)
            np.multiply(w, scaled, out=scaled)
            np.divide(scaled, np.where(span > 0, span, 1.0), out=scaled)
            total += scaled
        return total


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` highest scores per row, best first (ties: lower position first);
    ``-inf`` scores are never returned (``-1`` padding instead)."""
    n, m = scores.shape
    kk = min(k, m)
    if kk == 0:
        return np.full((n, k), -1, dtype=np.int64)
    part = np.argpartition(-scores, kk - 1, axis=1)[:, :kk] if kk < m else \
        np.tile(np.arange(m), (n, 1))
    vals = np.take_along_axis(scores, part, 1)
    order = np.lexsort((part, -vals), axis=1)
    best = np.take_along_axis(part, order, 1)
    best = np.where(np.isneginf(np.take_along_axis(scores, best, 1)), -1, best)
    if kk < k:
        best = np.hstack([best, np.full((n, k - kk), -1)])
    return best.astype(np.int64)


def recommend(model: Recommender, rows: np.ndarray, k: int, exclude_seen: bool = True,
              batch: int = 1000, scores_fn=None) -> np.ndarray:
    """Top-``k`` item positions for customers at training rows ``rows`` (``-1`` = no history).

    Scores are computed ``batch`` customers at a time. With ``exclude_seen`` the products a
    customer bought in the training period are never recommended. ``scores_fn(batch_positions)``
    overrides ``model.score`` (used for cold-start customers scored by attributes).
    """
    rows = np.asarray(rows)
    out = np.full((len(rows), k), -1, dtype=np.int64)
    for s in range(0, len(rows), batch):
        r = rows[s:s + batch]
        sc = scores_fn(np.arange(s, s + len(r))) if scores_fn is not None else model.score(r)
        # model.score returns a fresh array; a scores_fn may not, so its scores are copied
        sc = np.array(sc, dtype=float, copy=scores_fn is not None)
        if exclude_seen and (r >= 0).any():
            h = model.history(r).tocoo()
            sc[h.row, h.col] = -np.inf
        out[s:s + len(r)] = top_k(sc, k)
    return out


# --------------------------------------------------------------------------------------------
# evaluation table


def evaluate(recs: np.ndarray, relevant: Sequence[np.ndarray], k: int, n_items: int,
             item_popularity: np.ndarray, n_train_users: int) -> dict[str, float]:
    """Mean metrics @k (with 95% CI of NDCG), coverage and novelty of one model's lists."""
    per = ranking_metrics(recs, relevant, k)
    m, lo, hi = mean_ci(per["ndcg"].to_numpy())
    return {
        "precision": float(per["precision"].mean()), "recall": float(per["recall"].mean()),
        "ndcg": m, "ndcg_ci_low": lo, "ndcg_ci_high": hi, "map": float(per["map"].mean()),
        "hit_rate": float(per["hit_rate"].mean()), "coverage": coverage(recs[:, :k], n_items),
        "novelty": novelty(recs[:, :k], item_popularity, n_train_users), "n_users": int(len(per)),
    }


def recent_matrix(ev: EvalSet, days: int) -> sp.csr_matrix:
    """Customer x product matrix of the last ``days`` days before the cut-off (training indexes)."""
    tr = ev.split.train
    recent = tr[tr["order_ts"] >= ev.split.cutoff - pd.Timedelta(days=int(days))]
    return interaction_matrix(recent, ev.inter.users, ev.inter.items).matrix


def signup_segments(customers: pd.DataFrame | None) -> pd.Series | None:
    """Cold-start segment of each customer from attributes known at sign-up.

    Uses ``acquisition_channel``, an age band (<25, 25-34, 35-44, 45+) and ``gender`` when present
    (``region`` only when none of them is); ``None`` when the customers table has none of these.
    """
    if customers is None or len(customers) == 0:
        return None
    c = customers.drop_duplicates("customer_id").set_index("customer_id")
    parts: list[pd.Series] = []
    if "acquisition_channel" in c and c["acquisition_channel"].notna().any():
        parts.append(c["acquisition_channel"].astype("string").fillna("?"))
    if "age" in c and c["age"].notna().any():
        band = pd.cut(c["age"], [0, 25, 35, 45, 200], right=False,
                      labels=["<25", "25-34", "35-44", "45+"])
        parts.append(band.astype("string").fillna("?"))
    if "gender" in c and c["gender"].notna().any():
        parts.append(c["gender"].astype("string").fillna("?"))
    if not parts and "region" in c and c["region"].notna().any():
        parts.append(c["region"].astype("string").fillna("?"))
    if not parts:
        return None
    lab = parts[0]
    for p in parts[1:]:
        lab = lab + " | " + p
    return lab.astype(str).rename("segment")


@dataclass
class Tuned:
    """Result of :func:`tune`: NDCG per value, the best value and its fitted model."""

    table: pd.DataFrame  # columns value, ndcg
    best_value: object
    best_model: Recommender


def tune(ev: EvalSet, make, values: Sequence[object], k: int) -> Tuned:
    """NDCG@k on a (validation) :class:`EvalSet` of ``make(value)`` for each value.

    ``make`` may return a model already fitted on ``ev.inter`` (e.g. :meth:`PureSVD.truncated`).
    The best value is the one with the highest NDCG (the first listed among equals).
    """
    out, fitted = [], []
    for v in values:
        m = make(v)
        if m.inter is not ev.inter:  # not fitted on this evaluation set yet
            m.fit(ev.inter)
        recs = recommend(m, ev.warm_rows, k, ev.exclude_seen)
        out.append({"value": v, "ndcg": float(ranking_metrics(recs, ev.warm_relevant, k)["ndcg"].mean())})
        fitted.append(m)
    table = pd.DataFrame(out)
    i = int(table["ndcg"].to_numpy().argmax())
    return Tuned(table, values[i], fitted[i])


MODEL_NAMES = ("popularity", "popularity (recent)", "item-CF", "user-CF", "content",
               "latent factors (SVD)", "hybrid")
PERSONALIZED = MODEL_NAMES[2:]


@dataclass(frozen=True)
class ModelSettings:
    """Hyper-parameters of the chapter's model family (see :func:`build_models`)."""

    recent_days: int = 30
    item_neighbours: int = 50
    item_shrinkage: float = 20.0
    user_neighbours: int = 100
    user_candidates: int | None = 20_000  # user-CF neighbour pool (see UserKNN.max_candidates)
    content_popularity_weight: float = 1.0
    svd_factors: int = 16
    svd_alpha: float = 0.3
    hybrid_weights: tuple[float, float, float] = (1.0, 1.0, 1.0)  # item-CF, SVD, content
    seed: int = 0


def build_models(inter: Interactions, products: pd.DataFrame | None, settings: ModelSettings,
                 recent: sp.csr_matrix | None = None, names: Sequence[str] = MODEL_NAMES,
                 prefit: Mapping[str, Recommender] | None = None) -> dict[str, Recommender]:
    """Fit the named models of :data:`MODEL_NAMES` (and what they depend on) on ``inter``.

    ``recent`` is the customer x product matrix of the recent window for "popularity (recent)"
    (without it that model is left out). The hybrid blends item-CF, SVD and content with
    ``settings.hybrid_weights`` (each model's scores scaled to [0, 1] per customer). ``prefit``
    supplies models already fitted on ``inter`` with these settings (e.g. from :func:`tune`).
    """
    want = set(names)
    if "hybrid" in want:
        want |= {"item-CF", "latent factors (SVD)", "content"}
    out: dict[str, Recommender] = {}
    feats = None
    for name in MODEL_NAMES:
        if name not in want:
            continue
        if prefit and name in prefit:
            if prefit[name].inter is not inter:
                raise ValueError(f"prefit model {name!r} was not fitted on this matrix")
            out[name] = prefit[name]
            out[name].name = name
            continue
        if name == "popularity":
            m: Recommender = Popularity(name=name)
        elif name == "popularity (recent)":
            if recent is None:
                continue
            m = Popularity(name=name, recent=recent)
        elif name == "item-CF":
            m = ItemKNN(name=name, neighbours=settings.item_neighbours,
                        shrinkage=settings.item_shrinkage)
        elif name == "user-CF":
            m = UserKNN(name=name, neighbours=settings.user_neighbours,
                        max_candidates=settings.user_candidates, seed=settings.seed)
        elif name == "content":
            feats = item_features(products, inter.items)[0] if feats is None else feats
            m = ContentBased(name=name, features=feats,
                             popularity_weight=settings.content_popularity_weight)
        elif name == "latent factors (SVD)":
            m = PureSVD(name=name, factors=settings.svd_factors, alpha=settings.svd_alpha,
                        seed=settings.seed)
        else:
            m = Hybrid(name=name, parts=(out["item-CF"], out["latent factors (SVD)"],
                                         out["content"]), weights=settings.hybrid_weights)
        out[name] = m.fit(inter)
    return {n: out[n] for n in MODEL_NAMES if n in out and n in set(names)}


@dataclass
class Comparison:
    """Models evaluated on the same customers: summary table, per-customer metrics and lists."""

    table: pd.DataFrame  # one row per model
    per_user: dict[str, pd.DataFrame]
    recs: dict[str, np.ndarray]


def compare(models: Mapping[str, Recommender], ev: EvalSet, k: int) -> Comparison:
    """Evaluate fitted models on the warm test customers of ``ev`` (one row per model)."""
    rows, per, recs = [], {}, {}
    inter = ev.inter
    pop = np.asarray((inter.matrix > 0).sum(0)).ravel()
    for name, m in models.items():
        r = recommend(m, ev.warm_rows, k, ev.exclude_seen)
        recs[name] = r
        per[name] = ranking_metrics(r, ev.warm_relevant, k)
        rows.append({"model": name, **evaluate(r, ev.warm_relevant, k, inter.shape[1], pop,
                                               inter.shape[0])})
    return Comparison(pd.DataFrame(rows).set_index("model"), per, recs)


def compare_cold(ev: EvalSet, models: Mapping[str, Recommender], k: int,
                 segment_model: SegmentPopularity | None = None) -> Comparison:
    """Metrics @k on cold-start test customers (no history) for history-free models.

    ``models`` are scored with an empty history (popularity-type models); ``segment_model`` is
    scored from the customers' sign-up segments. Nothing is excluded (they bought nothing yet).
    """
    inter = ev.inter
    pop = np.asarray((inter.matrix > 0).sum(0)).ravel()
    none = np.full(len(ev.cold_ids), -1)
    rows, per, recs = [], {}, {}
    todo: list[tuple[str, Recommender, object]] = [(n, m, None) for n, m in models.items()]
    if segment_model is not None:
        codes = segment_model.segment_codes(ev.cold_ids)  # one look-up, then batches
        todo.append((segment_model.name, segment_model,
                     lambda pos: segment_model.score_codes(codes[pos])))
    for name, m, fn in todo:
        r = recommend(m, none, k, exclude_seen=False, scores_fn=fn)
        recs[name] = r
        per[name] = ranking_metrics(r, ev.cold_relevant, k)
        rows.append({"model": name, **evaluate(r, ev.cold_relevant, k, inter.shape[1], pop,
                                               inter.shape[0])})
    table = pd.DataFrame(rows).set_index("model") if rows else pd.DataFrame()
    return Comparison(table, per, recs)


def segment_table(comp: Comparison, segments: pd.Series, ev: EvalSet, models: Sequence[str],
                  metric: str = "ndcg") -> pd.DataFrame:
    """Mean ``metric`` per customer segment (rows) and model (columns), with segment sizes."""
    seg = segments.reindex(ev.warm_ids).fillna("(unknown)").astype(str).to_numpy()
    df = pd.DataFrame({name: comp.per_user[name][metric].to_numpy() for name in models})
    df["segment"] = seg
    out = df.groupby("segment", sort=True).mean()
    out.insert(0, "customers", df.groupby("segment", sort=True).size())
    return out


def _long_top_n(key: str, keys: np.ndarray, r: np.ndarray, items: np.ndarray,
                names: Mapping[str, str] | None) -> pd.DataFrame:
    """Long table ``key, rank, product_id[, product_name]`` from a (len(keys), n) array of item
    positions (``-1`` = no recommendation)."""
    n = r.shape[1]
    out = pd.DataFrame({key: np.repeat(keys, n), "rank": np.tile(np.arange(1, n + 1), len(keys)),
                        "_pos": r.ravel()})
    out = out[out["_pos"] >= 0]
    out["product_id"] = items[out["_pos"].to_numpy()]
    out = out.drop(columns="_pos")
    if names is not None:
        out["product_name"] = out["product_id"].map(names)
    return out.reset_index(drop=True)


def top_n_table(model: Recommender, customer_ids: Sequence[str], n: int,
                names: Mapping[str, str] | None = None, exclude_seen: bool = True) -> pd.DataFrame:
    """Long table ``customer_id, rank, product_id[, product_name]`` of each customer's top ``n``."""
    ids = pd.Index(customer_ids)
    rows = model.inter.rows(ids)
    r = recommend(model, rows, n, exclude_seen)
    return _long_top_n("customer_id", ids.to_numpy(), r, model.inter.items, names)


def write_top_n_csv(model: Recommender, customer_ids: Sequence[str], n: int, path,
                    names: Mapping[str, str] | None = None, exclude_seen: bool = True,
                    chunk: int = 50_000, extra: Mapping[str, str] | None = None) -> int:
    """Write :func:`top_n_table` of every customer to a CSV file, ``chunk`` customers at a time.

    Same rows and columns as ``top_n_table(...)`` (plus constant ``extra`` columns, e.g. the
    model name), written with Arrow's CSV writer: memory stays bounded by one chunk however many
    customers there are. Each chunk is assembled as an Arrow table straight from the item
    positions (ids, product ids and names are converted to Arrow once and then taken by
    position), which is several times faster than building a DataFrame per chunk and writing it
    with ``DataFrame.to_csv``. Returns the number of rows written.
    """
    import pyarrow.csv as pacsv

    ids_ = pd.Index(customer_ids)
    rows = model.inter.rows(ids_)  # one look-up for every customer
    keys = pa.array(np.asarray(ids_, dtype=object), from_pandas=True)
    items = model.inter.items
    prod = pa.array(np.asarray(items, dtype=object), from_pandas=True)
    prod_names = None
    if names is not None:
        prod_names = pa.array(pd.Series(np.asarray(items, dtype=object)).map(names)
                              .to_numpy(dtype=object), from_pandas=True)
    written = 0
    writer = None
    try:
        for s in range(0, max(len(ids_), 1), chunk):
            r = recommend(model, rows[s:s + chunk], n, exclude_seen)
            flat = r.ravel()
            ok = np.flatnonzero(flat >= 0)
            at = pa.array(flat[ok])
            cols = {"customer_id": keys.slice(s, len(r)).take(pa.array(ok // max(n, 1))),
                    "rank": pa.array(ok % max(n, 1) + 1, type=pa.int64()),
                    "product_id": prod.take(at)}
            if prod_names is not None:
                cols["product_name"] = prod_names.take(at)
            for col, value in (extra or {}).items():
                cols[col] = pa.array([value] * len(ok))
            table = pa.table(cols)
            if writer is None:
                writer = pacsv.CSVWriter(str(path), table.schema)
            writer.write_table(table)
            written += len(ok)
    finally:
        if writer is not None:
            writer.close()
    return written


def fallback_top_n(model: Recommender, n: int, names: Mapping[str, str] | None = None
                   ) -> pd.DataFrame:
    """The history-free list (e.g. recent popularity) for customers nothing is known about: a
    long table ``rank, product_id[, product_name], model`` with no customer column, so that an
    export of per-customer lists never mixes a label with customer ids."""
    r = recommend(model, np.array([-1]), n, exclude_seen=False)
    out = _long_top_n("_list", np.array([0]), r, model.inter.items, names).drop(columns="_list")
    return out.assign(model=model.name)


def order_count_band(purch: pd.DataFrame, customer_ids: Sequence[str]) -> pd.Series:
    """Order-count band (``0``, ``1``, ``2-3``, ``4-9``, ``10+`` orders) of customers in ``purch``."""
    n = purch.groupby("customer_id")["order_id"].nunique().reindex(pd.Index(customer_ids)).fillna(0)
    bands = pd.cut(n, [-0.5, 0.5, 1.5, 3.5, 9.5, np.inf], labels=["0", "1", "2-3", "4-9", "10+"])
    return pd.Series(bands.astype(str).to_numpy(), index=pd.Index(customer_ids), name="orders_band")


def segment_top_n(model: SegmentPopularity, n: int, names: Mapping[str, str] | None = None
                  ) -> pd.DataFrame:
    """Long table ``segment, rank, product_id[, product_name]``: each sign-up segment's top ``n``
    (segments too small for their own list get the overall list)."""
    scores = model.table + model._tiebreak()[None, :]
    r = top_k(scores, n)
    return _long_top_n("segment", model.labels.to_numpy(), r, model.inter.items, names)


# --------------------------------------------------------------------------------------------
# association rules


def basket_matrix(purch: pd.DataFrame, items: pd.Index | None = None
                  ) -> tuple[sp.csr_matrix, pd.Index, pd.Index]:
    """Binary order x product matrix (one basket per order) with its order and product indexes."""
    r, orders = _sorted_codes(purch["order_id"], "order_id")
    if items is None:
        c, items = _sorted_codes(purch["product_id"], "product_id")
    else:
        c = ids.positions(purch["product_id"], items)
    ok = c >= 0
    b = sp.csr_matrix((np.ones(int(ok.sum()), dtype=np.float32), (r[ok], c[ok])),
                      shape=(len(orders), len(items)))
    b.sum_duplicates()
    b.data[:] = 1.0
    return b, orders, items


def pair_rules(baskets: sp.csr_matrix, items: pd.Index, min_support: float = 0.001,
               min_count: int = 10, min_confidence: float = 0.05) -> pd.DataFrame:
    """All rules ``A -> B`` between single products with their support, confidence and lift.

    Exact counts from sparse co-occurrence ``B'B`` (``B`` = order x product, binary): for ``N``
    baskets, ``support(A->B) = n(A and B) / N``, ``confidence = n(A and B) / n(A)``,
    ``lift = confidence / (n(B) / N)`` (1 = independence). As in Apriori, only products whose own
    support passes both thresholds are paired (a pair cannot be more frequent than its members),
    and pairs need ``n(A and B) >= max(min_count, min_support * N)``. Sorted by lift, then
    support.
    """
    n = baskets.shape[0]
    cols = ["antecedent", "consequent", "n_both", "support", "confidence", "lift"]
    if n == 0:
        return pd.DataFrame(columns=cols)
    need = max(int(min_count), int(np.ceil(min_support * n)))
    b = (baskets > 0).astype(np.float32).tocsc()
    cnt = np.asarray(b.sum(0)).ravel().astype(np.float64)
    freq = np.flatnonzero(cnt >= need)
    if len(freq) < 2:
        return pd.DataFrame(columns=cols)
    bf = b[:, freq].tocsr()
    co = (bf.T @ bf).tocoo()
    keep = (co.row != co.col) & (co.data >= need)
    a, c, nab = freq[co.row[keep]], freq[co.col[keep]], np.rint(co.data[keep]).astype(float)
    conf = nab / cnt[a]
    lift = conf / (cnt[c] / n)
    out = pd.DataFrame({"antecedent": items[a], "consequent": items[c], "n_both": nab.astype(int),
                        "support": nab / n, "confidence": conf, "lift": lift})
    out = out[out["confidence"] >= min_confidence]
    return out.sort_values(["lift", "support", "antecedent", "consequent"],
                           ascending=[False, False, True, True]).reset_index(drop=True)


def related_items(model: ItemKNN, n: int = 5, names: Mapping[str, str] | None = None
                  ) -> pd.DataFrame:
    """Top-``n`` related products of every product from an item-CF model's similarity matrix."""
    sim = top_n_per_row(model.sim, n).tocoo()
    items = model.inter.items
    out = pd.DataFrame({"product_id": items[sim.row], "related_product_id": items[sim.col],
                        "similarity": np.round(sim.data.astype(float), 6)})
    out = out.sort_values(["product_id", "similarity", "related_product_id"],
                          ascending=[True, False, True], kind="stable")
    out["rank"] = out.groupby("product_id").cumcount() + 1
    if names is not None:
        out["related_product_name"] = out["related_product_id"].map(names)
    return out.reset_index(drop=True)


def bundle_recovery(pairs: pd.DataFrame, candidates: Mapping[str, Sequence[str]]) -> float:
    """Share of planted ``(product_id, complement_id)`` pairs whose complement is among the
    candidates listed for the product (e.g. its top rules or its item-CF neighbours)."""
    if len(pairs) == 0:
        return float("nan")
    found = [c in set(candidates.get(p, ())) for p, c in zip(pairs["product_id"],
                                                              pairs["complement_id"])]
    return float(np.mean(found))


def planted_bundles(facts: Mapping[str, object]) -> pd.DataFrame:
    """The complementary product pairs planted by :mod:`helpers.synth` (synthetic truth).

    Uses ``facts['bundles']`` when the truth carries them; otherwise replays the generator's first
    random steps (customers, products, bundles) with the recorded ``seed`` and ``n_customers``,
    which reproduces its product table exactly. Columns ``product_id, complement_id``.
    """
    if "bundles" in facts:
        return pd.DataFrame(facts["bundles"], columns=["product_id", "complement_id"])
    from helpers import synth

    cfg = synth.Config(n_customers=int(facts["n_customers"]), seed=int(facts["seed"]))
    rng = np.random.default_rng(cfg.seed)
    synth._customers(cfg, rng)
    prod = synth._products(cfg, rng)
    comp = synth._bundles(cfg, prod, rng)
    ids = prod["product_id"].to_numpy()
    a = np.flatnonzero(comp >= 0)
    return pd.DataFrame({"product_id": ids[a], "complement_id": ids[comp[a]]})


# --------------------------------------------------------------------------------------------
# online test


def ab_sample_size(p_control: float, relative_lift: float, alpha: float = 0.05,
                   power: float = 0.8) -> int:
    """Customers per arm for a two-sided two-proportion z-test to detect a relative lift.

    ``n = (z_{1-alpha/2} sqrt(2 p_bar (1-p_bar)) + z_{power} sqrt(p1(1-p1) + p2(1-p2)))^2 /
    (p2 - p1)^2`` with ``p2 = p1 (1 + relative_lift)``.
    """
    p1 = float(p_control)
    p2 = p1 * (1 + float(relative_lift))
    if not (0 < p1 < 1 and 0 < p2 < 1) or p1 == p2:
        raise ValueError("need 0 < p_control, p_control*(1+lift) < 1 and a non-zero lift")
    pbar = (p1 + p2) / 2
    za, zb = stats.norm.ppf(1 - alpha / 2), stats.norm.ppf(power)
    n = (za * np.sqrt(2 * pbar * (1 - pbar)) + zb * np.sqrt(p1 * (1 - p1) + p2 * (1 - p2))) ** 2 \
        / (p2 - p1) ** 2
    return int(np.ceil(n))
