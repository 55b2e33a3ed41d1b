"""Buy-till-you-die customer lifetime value: BG/NBD + Gamma-Gamma, implemented with scipy.

What is here
------------
* :func:`rfm_summary` — per-customer ``frequency`` (repeat purchase periods), ``recency`` (first to
  last purchase), ``T`` (first purchase to the observation end) and ``monetary_value`` (mean value
  of the repeat transactions, 0 if none), in days or weeks;
* :func:`calibration_holdout` — the same summary on a calibration period plus what each
  calibration customer did in the holdout period that follows;
* :class:`BetaGeoModel` — the BG/NBD model of Fader, Hardie & Lee (2005, *Marketing Science*
  24(2)) fitted by maximum likelihood: parameters, log-likelihood on the papers' scale,
  observed-information (Hessian) and bootstrap intervals, conditional expected purchases,
  P(alive) and expected purchases of a new customer;
* :class:`GammaGammaModel` — the Gamma-Gamma spend model (Fader, Hardie & Lee 2005, "RFM and CLV:
  Using Iso-Value Curves"; Fader & Hardie 2013 note) fitted on repeat customers, with the
  conditional expected average transaction value;
* :func:`customer_clv` — discounted CLV over a horizon from the two models (with optional
  parameter-uncertainty intervals), and the holdout checks of the literature:
  :func:`holdout_by_frequency` (conditional expectations by calibration frequency) and
  :func:`tracking_cumulative` (cumulative repeat transactions over time).

Conventions (the ones of the literature and of the ``lifetimes`` package, but exact at the
boundaries): transactions are counted by calendar day when ``merge_same_day`` is true (several
purchases on the same day are one transaction whose value is their sum); a purchase *on* the
observation-end (or calibration-end) day counts in that period; times are day differences divided
by the unit (7 for weeks), so a customer whose first purchase is 1997-01-01 has ``T = 272/7 =
38.86`` weeks at 1997-09-30, as in Fader and Hardie's CDNOW data. Dates may be strings or
timestamps; they are converted to ``pd.Timestamp`` and the time of day is ignored.

Why scipy and not a library
---------------------------
``lifetimes`` (the reference Python implementation) is archived since 2020 and several of its
functions break on current pandas and matplotlib; its calibration/holdout helper is also slow (a
Python call per holdout row and per customer-day: about 80x slower than
:func:`calibration_holdout` on 330k orders, see ``bench/reference/SUMMARY.md``) and it has
boundary problems (a plain calibration-end date moves purchases made later that day into the
holdout; the holdout monetary value is a mean over rows, not over the customer-days it counts).
Here the preparation is vectorized: one factorization of the customer ids, integer days, one
stable sort, grouped sums on integer keys. ``pymc-marketing`` is the maintained successor but pulls in PyMC/PyTensor (a heavy
install with a compiler tool chain) for what are four- and three-parameter likelihoods. The models
are short closed-form likelihoods, so the handbook implements them directly with scipy: the code
is readable in one sitting, fast (the likelihood is evaluated on unique (x, t_x, T) patterns with
counts), and checked against the published CDNOW estimates in ``tests/test_clv.py``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import optimize, special

UNIT_DAYS: dict[str, float] = {"D": 1.0, "W": 7.0}
DAYS_PER_MONTH = 365.25 / 12


def _unit_days(time_unit: str) -> float:
    try:
        return UNIT_DAYS[time_unit]
    except KeyError:
        raise ValueError(f"time_unit must be one of {sorted(UNIT_DAYS)}, got {time_unit!r}") from None


def _day(ts) -> pd.Timestamp:
    return pd.Timestamp(ts).normalize()


# --------------------------------------------------------------------------------------------
# Data preparation
# --------------------------------------------------------------------------------------------
NS_PER_DAY = 86_400 * 10**9


@dataclass(frozen=True)
class _CustomerDays:
    """Transactions as integer arrays sorted by customer, then time (merged by day if asked).

    ``ids`` are the customer ids in sorted order; ``code`` indexes ``ids``; ``day`` is days since
    1970-01-01 (local calendar day: the time of day and any time zone are dropped); ``amount``
    the transaction value (a day's sum when merged; NaN when unknown).
    """

    ids: pd.Index
    code: np.ndarray
    day: np.ndarray
    amount: np.ndarray

    def subset(self, mask: np.ndarray) -> "_CustomerDays":
        return _CustomerDays(self.ids, self.code[mask], self.day[mask], self.amount[mask])


def _customer_days(transactions: pd.DataFrame, customer_col: str, ts_col: str,
                   amount_col: str | None, merge_same_day: bool,
                   end: pd.Timestamp | None = None) -> _CustomerDays:
    """Vectorized core of the data preparation: one factorization of the customer ids, integer
    days, one stable sort; rows without a customer or a time, or after the ``end`` day, are
    left out (they are not transactions of the period)."""
    code, ids = _factorize_sorted(transactions[customer_col])
    ts = transactions[ts_col]
    if not pd.api.types.is_datetime64_any_dtype(ts):
        ts = pd.to_datetime(ts, format="mixed")  # strings: each parsed on its own
    ts = pd.DatetimeIndex(ts)
    if ts.tz is not None:
        ts = ts.tz_localize(None)  # local wall time, as .dt.normalize() keeps it
    ns = ts.as_unit("ns").asi8
    ok = (code >= 0) & ~ts.isna()
    day = np.floor_divide(ns, NS_PER_DAY)
    if end is not None:
        ok &= day <= _day_number(end)
    if amount_col:
        amount = pd.to_numeric(transactions[amount_col]).to_numpy(dtype=float, na_value=np.nan)
    else:
        amount = np.full(len(code), np.nan)
    code, day, ns, amount = code[ok], day[ok], ns[ok], amount[ok]
    # stable sort: rows of one customer-day keep their input order (as in a pandas groupby)
    order = np.lexsort((day if merge_same_day else ns, code))
    code, day, amount = code[order], day[order], amount[order]
    if merge_same_day and len(code):
        new = np.empty(len(code), dtype=bool)
        new[0] = True
        new[1:] = (code[1:] != code[:-1]) | (day[1:] != day[:-1])
        group = np.cumsum(new) - 1
        # pandas' grouped sum (compensated, NaN when a day has no known amount) on integer keys
        amount = (pd.Series(amount).groupby(group, sort=False).sum(min_count=1)
                  .to_numpy(dtype=float))
        code, day = code[new], day[new]
    return _CustomerDays(ids, code, day, amount)


def _factorize_sorted(values: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """``pd.factorize(values, sort=True)``, faster for string ids: hash first, then sort only
    the unique ids, as fixed-width numpy strings when they all are ``str`` (same order)."""
    code, ids = pd.factorize(values)
    ids = pd.Index(ids)
    if len(ids) and ids.inferred_type == "string":
        order = np.argsort(np.asarray(ids, dtype=str), kind="stable")
    else:
        order = np.argsort(ids.to_numpy(), kind="stable") if len(ids) else np.arange(0)
    rank = np.empty(len(order), dtype=np.intp)
    rank[order] = np.arange(len(order))
    code = np.where(code >= 0, rank[np.maximum(code, 0)], -1)
    return code, ids.take(order)


def _day_number(ts: pd.Timestamp) -> int:
    return int(pd.Timestamp(ts).as_unit("ns").value // NS_PER_DAY)


def _transactions(transactions: pd.DataFrame, customer_col: str, ts_col: str,
                  amount_col: str | None, merge_same_day: bool,
                  end: pd.Timestamp | None = None) -> pd.DataFrame:
    """Columns customer_id, day, amount (merged by day if asked), sorted, up to ``end`` inclusive."""
    cd = _customer_days(transactions, customer_col, ts_col, amount_col, merge_same_day, end)
    return pd.DataFrame({"customer_id": cd.ids.take(cd.code),
                         "day": pd.to_datetime(cd.day * NS_PER_DAY),
                         "amount": cd.amount})


def _summary_arrays(cd: _CustomerDays, end: pd.Timestamp, unit_days: float) -> pd.DataFrame:
    """Per-customer frequency / recency / T / monetary_value from sorted customer-days."""
    n_rows = len(cd.code)
    first = np.empty(n_rows, dtype=bool)
    if n_rows:
        first[0] = True
        first[1:] = cd.code[1:] != cd.code[:-1]
    starts = np.flatnonzero(first)
    stops = np.append(starts[1:], n_rows)
    codes = cd.code[starts]
    first_day = cd.day[starts]
    last_day = cd.day[stops - 1] if n_rows else first_day
    repeat = ~first
    # mean of the repeat transactions (NaN amounts skipped; 0 without a known repeat amount)
    rep_mean = pd.Series(cd.amount[repeat]).groupby(cd.code[repeat], sort=True).mean()
    monetary = rep_mean.reindex(codes).fillna(0.0).to_numpy(dtype=float)
    out = pd.DataFrame({
        "frequency": (stops - starts - 1).astype(float),
        "recency": (last_day - first_day) / unit_days,
        "T": (_day_number(end) - first_day) / unit_days,
        "monetary_value": monetary,
    }, index=cd.ids.take(codes).rename("customer_id"))
    return out


def rfm_summary(transactions: pd.DataFrame, *, customer_col: str = "customer_id",
                ts_col: str = "order_ts", amount_col: str | None = "amount",
                observation_end, time_unit: str = "D",
                merge_same_day: bool = True) -> pd.DataFrame:
    """Per-customer frequency / recency / T / monetary_value at ``observation_end`` (inclusive day).

    ``frequency`` is the number of repeat transactions (transactions minus one; with
    ``merge_same_day`` a transaction is a customer-day); ``recency`` the time from the first to
    the last transaction and ``T`` from the first transaction to the end of the observation day,
    both in ``time_unit`` ("D" days, "W" weeks = days / 7); ``monetary_value`` the mean value of
    the repeat transactions (0 for customers without repeats; NaN if ``amount_col`` is None).
    Transactions after the observation-end day are ignored. Indexed by customer id, sorted.
    """
    unit = _unit_days(time_unit)
    end = _day(observation_end)
    cd = _customer_days(transactions, customer_col, ts_col, amount_col, merge_same_day, end)
    out = _summary_arrays(cd, end, unit)
    if amount_col is None:
        out["monetary_value"] = np.nan
    return out


def calibration_holdout(transactions: pd.DataFrame, *, calibration_end, observation_end,
                        customer_col: str = "customer_id", ts_col: str = "order_ts",
                        amount_col: str | None = "amount", time_unit: str = "D",
                        merge_same_day: bool = True) -> pd.DataFrame:
    """Calibration summary (``*_cal``) and holdout outcome (``*_holdout``) per calibration customer.

    Customers are those with a transaction on or before ``calibration_end``; the holdout period is
    the days after ``calibration_end`` up to and including ``observation_end``.
    ``frequency_holdout`` counts their (merged) transactions in the holdout period,
    ``monetary_value_holdout`` is their mean value (0 if none) and ``duration_holdout`` the length
    of the holdout period in ``time_unit``.
    """
    unit = _unit_days(time_unit)
    cal_end, obs_end = _day(calibration_end), _day(observation_end)
    if obs_end <= cal_end:
        raise ValueError(f"observation_end {obs_end:%Y-%m-%d} must be after calibration_end "
                         f"{cal_end:%Y-%m-%d}")
    cd = _customer_days(transactions, customer_col, ts_col, amount_col, merge_same_day, obs_end)
    in_cal = cd.day <= _day_number(cal_end)
    cal_cd = cd.subset(in_cal)
    cal = _summary_arrays(cal_cd, cal_end, unit)
    cal.columns = [f"{c}_cal" for c in cal.columns]
    cal_codes = np.unique(cal_cd.code)  # sorted, in the order of cal's rows
    is_cal = np.zeros(len(cd.ids), dtype=bool)
    is_cal[cal_codes] = True
    hold = ~in_cal & is_cal[cd.code]
    hcode = cd.code[hold]
    cal["frequency_holdout"] = np.bincount(hcode, minlength=len(cd.ids))[cal_codes].astype(float)
    hmean = pd.Series(cd.amount[hold]).groupby(hcode, sort=True).mean()
    cal["monetary_value_holdout"] = hmean.reindex(cal_codes).fillna(0.0).to_numpy(dtype=float)
    if amount_col is None:
        cal["monetary_value_cal"] = np.nan
        cal["monetary_value_holdout"] = np.nan
    cal["duration_holdout"] = (obs_end - cal_end).days / unit
    return cal


# --------------------------------------------------------------------------------------------
# Fitting machinery
# --------------------------------------------------------------------------------------------
def _hessian(f, x: np.ndarray, rel_step: float = 1e-4) -> np.ndarray:
    """Central finite-difference Hessian of a scalar function."""
    x = np.asarray(x, dtype=float)
    k = len(x)
    h = rel_step * np.maximum(np.abs(x), 1e-2)
    H = np.empty((k, k))
    for i in range(k):
        for j in range(i, k):
            ei = np.zeros(k)
            ej = np.zeros(k)
            ei[i] = h[i]
            ej[j] = h[j]
            v = (f(x + ei + ej) - f(x + ei - ej) - f(x - ei + ej) + f(x - ei - ej)) / (4 * h[i] * h[j])
            H[i, j] = H[j, i] = v
    return H


def _unique_patterns(*cols: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Unique rows of the stacked columns and their counts (the likelihood is a sum over rows)."""
    arr = np.column_stack([np.asarray(c, dtype=float) for c in cols])
    uniq, counts = np.unique(arr, axis=0, return_counts=True)
    return [uniq[:, i] for i in range(uniq.shape[1])], counts.astype(float)


def _pattern_inverse(*cols: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Distinct rows of the stacked columns and, for each input row, the index of its pattern
    (``values[inv]`` rebuilds the input columns exactly)."""
    arr = np.column_stack([np.asarray(c, dtype=float) for c in cols])
    if len(arr) == 0:
        return [arr[:, i] for i in range(arr.shape[1])], np.zeros(0, dtype=np.intp)
    uniq, inv = np.unique(arr, axis=0, return_inverse=True)
    return [uniq[:, i] for i in range(uniq.shape[1])], inv.reshape(-1)


def _converged_relative(res: optimize.OptimizeResult, rel_tol: float = 1e-6) -> bool:
    """BFGS stopped on "precision loss" (status 2) at a point whose gradient is negligible
    relative to the objective.

    The absolute ``gtol`` cannot be reached when the log-likelihood is a sum over hundreds of
    thousands of customers (rounding noise in the objective exceeds it); such a stop is a
    converged fit, and falling back to Nelder-Mead would cost minutes for nothing.
    """
    jac = getattr(res, "jac", None)
    if res.status != 2 or jac is None or not np.all(np.isfinite(jac)):
        return False
    return float(np.max(np.abs(jac))) <= rel_tol * max(1.0, abs(float(res.fun)))


def _fit_loglik(neg_ll, x0: np.ndarray) -> optimize.OptimizeResult:
    """Minimize a negative log-likelihood in log-parameter space: BFGS first (fast on these
    smooth likelihoods); if it fails, Nelder-Mead from the start and a BFGS polish."""
    res = optimize.minimize(neg_ll, x0, method="BFGS", options={"gtol": 1e-7})
    if np.isfinite(res.fun) and res.fun < 1e299 and (res.success or _converged_relative(res)):
        return res
    nm = optimize.minimize(neg_ll, x0, method="Nelder-Mead",
                           options={"xatol": 1e-8, "fatol": 1e-10, "maxiter": 20000,
                                    "maxfev": 40000})
    res2 = optimize.minimize(neg_ll, nm.x, method="BFGS", options={"gtol": 1e-7})
    best = min((r for r in (res, nm, res2) if np.isfinite(r.fun)), key=lambda r: r.fun)
    return best


def _param_table(names: list[str], theta: np.ndarray, cov_log: np.ndarray | None,
                 level: float = 0.95) -> pd.DataFrame:
    """Estimates with standard errors (delta method) and intervals built on the log scale."""
    z = special.ndtri(0.5 + level / 2)
    est = np.exp(theta)
    if cov_log is None or not np.all(np.isfinite(cov_log)):
        se_log = np.full(len(theta), np.nan)
    else:
        se_log = np.sqrt(np.clip(np.diag(cov_log), 0, None))
    return pd.DataFrame({"estimate": est, "se": est * se_log,
                         "lower": np.exp(theta - z * se_log), "upper": np.exp(theta + z * se_log)},
                        index=pd.Index(names, name="parameter"))


# --------------------------------------------------------------------------------------------
# BG/NBD
# --------------------------------------------------------------------------------------------
def _bgnbd_ll(params: np.ndarray, x: np.ndarray, tx: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Per-customer BG/NBD log-likelihood (Fader, Hardie & Lee 2005, eq. 6)."""
    r, alpha, a, b = params
    a1 = special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha)
    a2 = (special.gammaln(a + b) + special.gammaln(b + x) - special.gammaln(b)
          - special.gammaln(a + b + x))
    a3 = -(r + x) * np.log(alpha + T)
    with np.errstate(divide="ignore", invalid="ignore"):
        a4 = np.where(x > 0, np.log(a) - np.log(np.maximum(b + x - 1, 1e-300))
                      - (r + x) * np.log(alpha + tx), -np.inf)
    return a1 + a2 + np.logaddexp(a3, a4)




def _finish_fit(model, nll, x0: np.ndarray, n_customers: int):
    """Maximise the likelihood of ``model`` (parameters on the log scale) and store the results.

    Sets ``params_``, ``log_likelihood_``, ``n_customers_``, ``cov_log_`` (inverse Hessian of the
    negative log-likelihood on the log scale, None if singular), ``converged_`` and ``summary_``.
    """
    res = _fit_loglik(nll, x0)
    theta = res.x
    model._theta = theta
    model.params_ = dict(zip(model.names, np.exp(theta).tolist()))
    model.log_likelihood_ = float(-res.fun)
    model.n_customers_ = n_customers
    try:
        H = _hessian(nll, theta)
        model.cov_log_ = np.linalg.inv(H)
        model.converged_ = bool(np.all(np.linalg.eigvalsh(H) > 0))
    except np.linalg.LinAlgError:
        model.cov_log_ = None
        model.converged_ = False
    model.summary_ = _param_table(model.names, theta, model.cov_log_)
    return model


class _LogScaleModel:
    """Shared by the models fitted by :func:`_finish_fit` (parameters estimated on the log scale)."""

    names: list[str]
    cov_log_: np.ndarray | None
    _theta: np.ndarray

    def sample_params(self, n: int, seed: int = 0) -> list[dict[str, float]]:
        """Parameter draws from the asymptotic normal distribution of the log-parameters."""
        if self.cov_log_ is None:
            raise RuntimeError("no covariance: the Hessian was not invertible")
        rng = np.random.default_rng(seed)
        draws = rng.multivariate_normal(self._theta, self.cov_log_, size=n)
        return [dict(zip(self.names, np.exp(d).tolist())) for d in draws]


@dataclass
class BetaGeoModel(_LogScaleModel):
    """BG/NBD model: Poisson purchasing while alive (gamma(r, alpha) rates), drop-out after each
    repeat purchase with probability p ~ beta(a, b).

    Fit with ``fit(frequency, recency, T)`` on a calibration summary (any time unit, used
    consistently). After fitting: ``params_`` (dict r, alpha, a, b), ``log_likelihood_`` (sum
    over customers, the papers' scale), ``summary_`` (estimate, se, 95% interval from the observed
    information, computed on the log scale so bounds stay positive), ``cov_log_`` (covariance of
    the log-parameters) and ``n_customers_``.
    """

    params_: dict[str, float] = field(default_factory=dict)
    log_likelihood_: float = float("nan")
    summary_: pd.DataFrame | None = None
    cov_log_: np.ndarray | None = None
    n_customers_: int = 0
    converged_: bool = False

    names = ["r", "alpha", "a", "b"]

    def fit(self, frequency, recency, T, *, weights=None,
            initial: tuple[float, float, float, float] = (0.5, 5.0, 0.8, 2.5)) -> "BetaGeoModel":
        x = np.asarray(frequency, dtype=float)
        t_x = np.asarray(recency, dtype=float)
        TT = np.asarray(T, dtype=float)
        self._check(x, t_x, TT)
        if weights is None:
            (x, t_x, TT), w = _unique_patterns(x, t_x, TT)
        else:
            w = np.asarray(weights, dtype=float)
        alpha0 = float(initial[1])
        if initial == (0.5, 5.0, 0.8, 2.5):  # scale-free start: alpha ~ mean T / 8
            alpha0 = max(float(np.average(TT, weights=w)) / 8.0, 1e-3)
        x0 = np.log([initial[0], alpha0, initial[2], initial[3]])

        def nll(theta):
            if np.any(np.abs(theta) > 30):
                return 1e300
            v = -np.sum(w * _bgnbd_ll(np.exp(theta), x, t_x, TT))
            return v if np.isfinite(v) else 1e300

        return _finish_fit(self, nll, x0, int(round(w.sum())))

    @staticmethod
    def _check(x, t_x, T) -> None:
        if len(x) == 0:
            raise ValueError("no customers to fit")
        if np.any(x < 0) or np.any(t_x < 0) or np.any(T < t_x - 1e-9):
            raise ValueError("need frequency >= 0 and 0 <= recency <= T")

    def _p(self, params=None) -> tuple[float, float, float, float]:
        if params is None:
            if not self.params_:
                raise RuntimeError("fit the model first")
            params = self.params_
        return params["r"], params["alpha"], params["a"], params["b"]

    def log_likelihood(self, frequency, recency, T, params: dict | None = None) -> np.ndarray:
        """Per-customer log-likelihood at the fitted (or given) parameters."""
        return _bgnbd_ll(np.array(self._p(params)), np.asarray(frequency, float),
                         np.asarray(recency, float), np.asarray(T, float))

    def p_alive(self, frequency, recency, T, params: dict | None = None) -> np.ndarray:
        """P(still alive at T | x, t_x, T) (FHL 2005 appendix; 1 for customers without repeats)."""
        r, alpha, a, b = self._p(params)
        x = np.asarray(frequency, float)
        t_x = np.asarray(recency, float)
        TT = np.asarray(T, float)
        with np.errstate(divide="ignore", invalid="ignore"):
            log_ratio = (np.log(a) - np.log(np.maximum(b + x - 1, 1e-300))
                         + (r + x) * (np.log(alpha + TT) - np.log(alpha + t_x)))
        return np.where(x > 0, special.expit(-log_ratio), 1.0)

    def expected_purchases(self, t, frequency, recency, T, params: dict | None = None) -> np.ndarray:
        """E[purchases in (T, T + t] | x, t_x, T] (FHL 2005 eq. 10)."""
        r, alpha, a, b = self._p(params)
        x = np.asarray(frequency, float)
        t_x = np.asarray(recency, float)
        TT = np.asarray(T, float)
        t = np.asarray(t, float)
        hyp = special.hyp2f1(r + x, b + x, a + b + x - 1, t / (alpha + TT + t))
        first = (a + b + x - 1) / (a - 1)
        second = 1 - ((alpha + TT) / (alpha + TT + t)) ** (r + x) * hyp
        with np.errstate(divide="ignore", invalid="ignore"):
            odds = np.where(x > 0, a / np.maximum(b + x - 1, 1e-300)
                            * ((alpha + TT) / (alpha + t_x)) ** (r + x), 0.0)
        return first * second / (1 + odds)

    def expected_purchases_new(self, t, params: dict | None = None) -> np.ndarray:
        """E[X(t)]: expected repeat purchases in the first ``t`` units after a first purchase."""
        r, alpha, a, b = self._p(params)
        t = np.asarray(t, float)
        hyp = special.hyp2f1(r, b, a + b - 1, t / (alpha + t))
        return (a + b - 1) / (a - 1) * (1 - (alpha / (alpha + t)) ** r * hyp)

    def bootstrap(self, frequency, recency, T, n_boot: int = 200, seed: int = 0) -> pd.DataFrame:
        """Customer-level nonparametric bootstrap of the parameters (one row per replicate).

        Resampling customers with replacement is a multinomial draw of counts over the unique
        (x, t_x, T) patterns, so each replicate refits on a few hundred rows.
        """
        (x, t_x, TT), w = _unique_patterns(frequency, recency, T)
        rng = np.random.default_rng(seed)
        n = int(w.sum())
        rows = []
        start = tuple(self._p())
        for _ in range(n_boot):
            wb = rng.multinomial(n, w / n).astype(float)
            keep = wb > 0
            m = BetaGeoModel().fit(x[keep], t_x[keep], TT[keep], weights=wb[keep], initial=start)
            rows.append(m.params_ | {"log_likelihood": m.log_likelihood_})
        return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# Gamma-Gamma
# --------------------------------------------------------------------------------------------
def _gg_ll(params: np.ndarray, x: np.ndarray, m: np.ndarray) -> np.ndarray:
    p, q, g = params
    px = p * x
    return (special.gammaln(px + q) - special.gammaln(px) - special.gammaln(q) + q * np.log(g)
            + (px - 1) * np.log(m) + px * np.log(x) - (px + q) * np.log(g + m * x))


@dataclass
class GammaGammaModel(_LogScaleModel):
    """Gamma-Gamma model of the average transaction value (Fader & Hardie).

    A customer's transaction values are gamma(p, nu) with nu ~ gamma(q, gamma) across customers.
    Fit on customers with at least one repeat transaction: ``fit(frequency, monetary_value)``
    where ``monetary_value`` is the mean of their ``frequency`` repeat transactions. After
    fitting: ``params_`` (p, q, gamma), ``log_likelihood_``, ``summary_`` (intervals as for
    :class:`BetaGeoModel`), ``cov_log_``.
    """

    params_: dict[str, float] = field(default_factory=dict)
    log_likelihood_: float = float("nan")
    summary_: pd.DataFrame | None = None
    cov_log_: np.ndarray | None = None
    n_customers_: int = 0
    converged_: bool = False

    names = ["p", "q", "gamma"]

    def fit(self, frequency, monetary_value) -> "GammaGammaModel":
        x = np.asarray(frequency, float)
        m = np.asarray(monetary_value, float)
        keep = (x > 0) & (m > 0) & np.isfinite(m)
        x, m = x[keep], m[keep]
        if len(x) < 3:
            raise ValueError("Gamma-Gamma needs at least 3 customers with repeat transactions")
        x0 = np.log([1.0, 2.0, float(np.mean(m))])

        def nll(theta):
            if np.any(np.abs(theta) > 30):
                return 1e300
            v = -np.sum(_gg_ll(np.exp(theta), x, m))
            return v if np.isfinite(v) else 1e300

        return _finish_fit(self, nll, x0, int(len(x)))

    def _p(self, params=None):
        if params is None:
            if not self.params_:
                raise RuntimeError("fit the model first")
            params = self.params_
        return params["p"], params["q"], params["gamma"]

    def population_mean(self, params: dict | None = None) -> float:
        """Mean average transaction value across customers, p * gamma / (q - 1) (needs q > 1)."""
        p, q, g = self._p(params)
        return p * g / (q - 1) if q > 1 else float("inf")

    def conditional_expected_value(self, frequency, monetary_value,
                                   params: dict | None = None) -> np.ndarray:
        """E[average transaction value | x, m_x]: a weighted mean of the population mean and the
        customer's own mean; customers without repeats get the population mean."""
        p, q, g = self._p(params)
        x = np.asarray(frequency, float)
        m = np.nan_to_num(np.asarray(monetary_value, float))
        return (g + m * x) * p / (p * x + q - 1)


# --------------------------------------------------------------------------------------------
# CLV and holdout checks
# --------------------------------------------------------------------------------------------
def _discounted_purchases(bg: BetaGeoModel, x, t_x, T, horizon: int, discount_rate: float,
                          unit: float, params: dict | None = None) -> np.ndarray:
    """Sum over months k = 1..horizon of expected purchases in month k discounted to today."""
    total = np.zeros(len(x))
    prev = np.zeros(len(x))
    for k in range(1, horizon + 1):
        cum = bg.expected_purchases(k * DAYS_PER_MONTH / unit, x, t_x, T, params)
        total += (cum - prev) / (1 + discount_rate) ** (k / 12)
        prev = cum
    return total


def customer_clv(bg: BetaGeoModel, gg: GammaGammaModel, summary: pd.DataFrame, horizon: int = 12,
                 discount_rate: float = 0.10, margin: float = 0.3, time_unit: str = "D", *,
                 bg_params: dict | None = None, gg_params: dict | None = None) -> pd.Series:
    """Discounted expected margin of each customer over the next ``horizon`` months.

    ``summary`` has frequency, recency, T (in the model's ``time_unit``) and monetary_value.
    For months k = 1..horizon the expected purchases in month k (difference of the cumulative
    conditional expectation at k and k - 1 months; a month is 365.25/12 days) are multiplied by
    the Gamma-Gamma expected transaction value and ``margin`` and discounted by
    ``(1 + discount_rate) ** (k / 12)`` (``discount_rate`` is annual). ``bg_params`` /
    ``gg_params`` evaluate the CLV at other parameter values (for uncertainty intervals).
    """
    if horizon < 1:
        raise ValueError("horizon must be at least 1 month")
    unit = _unit_days(time_unit)
    x, t_x, T = (summary[c].to_numpy(float) for c in ("frequency", "recency", "T"))
    value = gg.conditional_expected_value(x, summary["monetary_value"].to_numpy(float), gg_params)
    total = _discounted_purchases(bg, x, t_x, T, horizon, discount_rate, unit, bg_params)
    return pd.Series(total * value * margin, index=summary.index, name="clv")


def clv_intervals(bg: BetaGeoModel, gg: GammaGammaModel, summary: pd.DataFrame, *,
                  horizon: int = 12, discount_rate: float = 0.10, margin: float = 0.3,
                  time_unit: str = "D", level: float = 0.9, method: str = "delta",
                  n_draws: int = 200, seed: int = 0) -> pd.DataFrame:
    """CLV point estimate with a parameter-uncertainty interval per customer (columns clv,
    lower, upper) and for the total over customers (``attrs["total"] = (total, lower, upper)``).

    The interval reflects the estimation uncertainty of the population parameters (the two models
    are fitted on different likelihoods and treated as independent), not the much larger
    randomness of one customer's future purchases.

    * ``method="delta"`` (default, deterministic and fast): CLV = margin x E[value] x discounted
      E[purchases] is a product, so log CLV is a sum of a BG/NBD part and a Gamma-Gamma part;
      each part's gradient in the log-parameters is taken by central differences and combined
      with the models' covariance (delta method on the log scale, so bounds stay positive).
    * ``method="draws"``: ``n_draws`` joint draws of the log-parameters from their asymptotic
      normal distributions, CLV recomputed for each, quantile intervals.
    """
    if method not in ("delta", "draws"):
        raise ValueError("method must be 'delta' or 'draws'")
    if bg.cov_log_ is None or gg.cov_log_ is None:
        raise RuntimeError("a model has no covariance (Hessian not invertible)")
    unit = _unit_days(time_unit)
    x, t_x, T = (summary[c].to_numpy(float) for c in ("frequency", "recency", "T"))
    m = summary["monetary_value"].to_numpy(float)
    lo_q, hi_q = (1 - level) / 2, (1 + level) / 2
    # the BG/NBD part depends on (x, t_x, T) only: evaluate it once per distinct pattern (many
    # customers share one; the hypergeometric function dominates the cost) and expand
    (ux, ut, uT), inv = _pattern_inverse(x, t_x, T)

    def disc(params=None):
        return _discounted_purchases(bg, ux, ut, uT, horizon, discount_rate, unit, params)

    purch = disc()[inv]
    value = gg.conditional_expected_value(x, m)
    point = purch * value * margin
    if method == "draws":
        rng = np.random.default_rng(seed)
        bgd = rng.multivariate_normal(bg._theta, bg.cov_log_, size=n_draws)
        ggd = rng.multivariate_normal(gg._theta, gg.cov_log_, size=n_draws)
        sims = np.empty((n_draws, len(x)))
        for i in range(n_draws):
            pb = dict(zip(bg.names, np.exp(bgd[i])))
            pg = dict(zip(gg.names, np.exp(ggd[i])))
            sims[i] = disc(pb)[inv] * gg.conditional_expected_value(x, m, pg) * margin
        lower, upper = np.quantile(sims, lo_q, axis=0), np.quantile(sims, hi_q, axis=0)
        tot = sims.sum(axis=1)
        total = (float(point.sum()), float(np.quantile(tot, lo_q)), float(np.quantile(tot, hi_q)))
    else:
        z = special.ndtri(hi_q)
        h = 1e-4
        tiny = 1e-300

        def grad(theta, names, f, base):
            g = np.empty((len(theta), len(base)))
            for j in range(len(theta)):
                up, dn = theta.copy(), theta.copy()
                up[j] += h
                dn[j] -= h
                fu = f(dict(zip(names, np.exp(up))))
                fd = f(dict(zip(names, np.exp(dn))))
                g[j] = (np.log(np.maximum(fu, tiny)) - np.log(np.maximum(fd, tiny))) / (2 * h)
            return g

        gb = grad(bg._theta, bg.names, disc, ut)[:, inv]  # per pattern, then per customer
        gv = grad(gg._theta, gg.names, lambda p: gg.conditional_expected_value(x, m, p), value)
        var_log = (np.einsum("ji,jk,ki->i", gb, bg.cov_log_, gb)
                   + np.einsum("ji,jk,ki->i", gv, gg.cov_log_, gv))
        se_log = np.sqrt(np.clip(var_log, 0, None))
        lower, upper = point * np.exp(-z * se_log), point * np.exp(z * se_log)
        # total: gradient of sum_i CLV_i = sum_i CLV_i * dlogCLV_i
        tb, tv = gb @ point, gv @ point
        se_tot = np.sqrt(tb @ bg.cov_log_ @ tb + tv @ gg.cov_log_ @ tv)
        tot = float(point.sum())
        total = (tot, tot * float(np.exp(-z * se_tot / tot)), tot * float(np.exp(z * se_tot / tot)))
    out = pd.DataFrame({"clv": point, "lower": lower, "upper": upper}, index=summary.index)
    out.attrs["total"] = total
    return out




def holdout_by_frequency(cal_holdout: pd.DataFrame, bg: BetaGeoModel,
                         max_frequency: int = 7) -> pd.DataFrame:
    """Mean actual vs. predicted holdout purchases by calibration frequency (x >= max pooled).

    The conditional-expectation check of FHL (2005, fig. 4): for each calibration frequency group,
    the mean number of holdout transactions and the model's mean conditional expectation.
    """
    ch = cal_holdout
    pred = bg.expected_purchases(ch["duration_holdout"].to_numpy(float),
                                 ch["frequency_cal"].to_numpy(float),
                                 ch["recency_cal"].to_numpy(float), ch["T_cal"].to_numpy(float))
    grp = np.minimum(ch["frequency_cal"].to_numpy(float), max_frequency).astype(int)
    df = pd.DataFrame({"frequency_cal": grp, "actual": ch["frequency_holdout"].to_numpy(float),
                       "predicted": pred})
    out = df.groupby("frequency_cal").agg(customers=("actual", "size"), actual=("actual", "mean"),
                                          predicted=("predicted", "mean"))
    out.index = [f"{i}+" if i == max_frequency else str(i) for i in out.index]
    out.index.name = "frequency_cal"
    return out


def tracking_cumulative(transactions: pd.DataFrame, bg: BetaGeoModel, *, calibration_end,
                        observation_end, customer_col: str = "customer_id",
                        ts_col: str = "order_ts", time_unit: str = "W",
                        merge_same_day: bool = True, step_days: int = 7) -> pd.DataFrame:
    """Cumulative repeat transactions over time: actual vs. the BG/NBD expectation (FHL fig. 3).

    The customers are those with a first purchase on or before ``calibration_end``. For each
    period end (every ``step_days`` days from the earliest first purchase up to
    ``observation_end``) the actual number of repeat transactions to date is compared with
    ``sum_i E[X(t - t_i)]`` over customers whose first purchase ``t_i`` precedes ``t``.
    """
    unit = _unit_days(time_unit)
    cal_end, obs_end = _day(calibration_end), _day(observation_end)
    tx = _transactions(transactions, customer_col, ts_col, None, merge_same_day, obs_end)
    first = tx.groupby("customer_id")["day"].transform("min")
    cohort = tx.loc[first <= cal_end]
    first = first[first <= cal_end]
    repeat_days = cohort.loc[cohort["day"] > first, "day"] if merge_same_day else \
        cohort.loc[cohort.duplicated("customer_id", keep="first"), "day"]
    first_days = cohort.groupby("customer_id")["day"].min()
    start = first_days.min()
    ends = pd.date_range(start + pd.Timedelta(days=step_days - 1), obs_end,
                         freq=f"{step_days}D")
    if len(ends) == 0 or ends[-1] != obs_end:
        ends = ends.append(pd.DatetimeIndex([obs_end]))
    rep_sorted = np.sort(repeat_days.to_numpy())
    actual = np.searchsorted(rep_sorted, ends.to_numpy(), side="right")
    fd_counts = first_days.value_counts()
    fd = fd_counts.index.to_numpy()
    cnt = fd_counts.to_numpy(float)
    fd_days = pd.DatetimeIndex(fd).to_numpy().astype("datetime64[D]").astype(np.int64)
    end_days = ends.to_numpy().astype("datetime64[D]").astype(np.int64)
    pred = []
    for e in end_days:
        age = (e - fd_days).astype(float) / unit
        m = age > 0
        pred.append(float(np.sum(cnt[m] * bg.expected_purchases_new(age[m]))) if m.any() else 0.0)
    return pd.DataFrame({"period_end": ends, "actual": actual.astype(float),
                         "predicted": np.array(pred)})


def probability_calibration(prob, outcome, n_bins: int = 10) -> pd.DataFrame:
    """Calibration by bins of a predicted probability: customers, mean predicted and observed
    share per equal-count bin (quantile bins of ``prob``; ties stay in one bin)."""
    p = pd.Series(np.asarray(prob, float))
    y = pd.Series(np.asarray(outcome, float))
    ok = p.notna() & y.notna()
    p, y = p[ok], y[ok]
    bins = pd.qcut(p.rank(method="first"), q=min(n_bins, len(p)), labels=False)
    out = pd.DataFrame({"p": p, "y": y, "bin": bins}).groupby("bin").agg(
        customers=("p", "size"), predicted=("p", "mean"), observed=("y", "mean"))
    out.index.name = "bin"
    return out


def naive_holdout_forecast(cal_holdout: pd.DataFrame) -> np.ndarray:
    """Baseline forecast: the customer's calibration repeat rate continues unchanged,
    ``frequency_cal / T_cal * duration_holdout`` (0 for customers with ``T_cal = 0``). It ignores
    both drop-out and regression to the mean, which is what BG/NBD adds."""
    T = cal_holdout["T_cal"].to_numpy(float)
    rate = np.divide(cal_holdout["frequency_cal"].to_numpy(float), T, out=np.zeros(len(T)),
                     where=T > 0)
    return rate * cal_holdout["duration_holdout"].to_numpy(float)


def holdout_errors(actual, forecasts: dict[str, np.ndarray]) -> pd.DataFrame:
    """Per-model total, relative error of the total, and per-customer MAE / RMSE."""
    y = np.asarray(actual, float)
    rows = {}
    for name, f in forecasts.items():
        f = np.asarray(f, float)
        rows[name] = {"total_predicted": f.sum(), "total_actual": y.sum(),
                      "total_error": f.sum() / y.sum() - 1 if y.sum() else np.nan,
                      "mae": np.mean(np.abs(f - y)), "rmse": float(np.sqrt(np.mean((f - y) ** 2)))}
    out = pd.DataFrame(rows).T
    out.index.name = "forecast"
    return out
