"""Reusable statistics for experiments and observational comparisons.

Everything here returns plain numbers or small frozen dataclasses, works on NumPy arrays or pandas
Series, and is unit-tested against textbook formulas, scipy/statsmodels equivalents or simulated
coverage (``tests/test_stats.py``).

* :func:`nps` — net promoter score with a normal-approximation interval (multinomial variance);
* :func:`proportion_ci`, :func:`diff_proportions_ci`, :func:`mean_diff_ci` — the basic intervals;
* :func:`ratio_of_means_ci` — relative lift ``mean(t) / mean(c) - 1`` with a delta-method or
  bootstrap interval: valid for heavy-tailed spend with many zeros, because it only needs the
  sample means to be approximately normal (large n), not the spend itself;
* :func:`srm_test` — sample-ratio-mismatch chi-square test;
* :func:`cuped` — CUPED adjustment with a pre-period covariate (variance reduction reported);
* :func:`regression_adjusted_effect` — Lin (2013) regression adjustment with robust errors;
* :func:`mde`, :func:`sample_size_per_arm` — power / minimum detectable effect (two arms);
* :func:`propensity_scores`, :func:`att_weights`, :func:`standardized_mean_differences` —
  propensity-score weighting with balance diagnostics;
* :func:`did_ratio` — difference-in-differences on the ratio (multiplicative) scale.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as _st

ArrayLike = np.ndarray | pd.Series | list


def _arr(x: ArrayLike) -> np.ndarray:
    a = np.asarray(x, dtype=float)
    if a.ndim != 1:
        raise ValueError("expected a one-dimensional array")
    return a


def _z(alpha: float) -> float:
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1); got {alpha}")
    return float(_st.norm.ppf(1 - alpha / 2))


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its standard error and a (1 - alpha) confidence interval."""

    estimate: float
    se: float
    ci_low: float
    ci_high: float
    n: int = 0

    def covers(self, value: float) -> bool:
        return bool(self.ci_low <= value <= self.ci_high)

    def as_dict(self) -> dict[str, float]:
        return {"estimate": self.estimate, "se": self.se, "ci_low": self.ci_low,
                "ci_high": self.ci_high, "n": self.n}


# --------------------------------------------------------------------------------------------
# NPS and proportions


@dataclass(frozen=True)
class NPSResult(Estimate):
    promoters: float = np.nan  # share answering 9-10
    passives: float = np.nan  # share answering 7-8
    detractors: float = np.nan  # share answering 0-6


def nps(scores: ArrayLike, alpha: float = 0.05) -> NPSResult:
    """Net promoter score (−100..100) = 100 × (share of 9–10 − share of 0–6), with a CI.

    Each answer contributes +1 (promoter), 0 (passive) or −1 (detractor); NPS is 100 × their mean,
    so its variance is ``(p_P + p_D − (p_P − p_D)²) / n`` (multinomial), and the interval is the
    normal approximation ``NPS ± z · 100 · se``.
    """
    s = _arr(scores)
    s = s[~np.isnan(s)]
    if s.size == 0:
        raise ValueError("nps needs at least one answer")
    if ((s < 0) | (s > 10)).any():
        raise ValueError("NPS answers must be between 0 and 10")
    n = s.size
    p_p, p_d = float(np.mean(s >= 9)), float(np.mean(s <= 6))
    est = p_p - p_d
    se = float(np.sqrt(max(p_p + p_d - est ** 2, 0.0) / n))
    z = _z(alpha)
    return NPSResult(100 * est, 100 * se, 100 * (est - z * se), 100 * (est + z * se), n,
                     promoters=p_p, passives=1 - p_p - p_d, detractors=p_d)


def proportion_ci(k: int, n: int, alpha: float = 0.05) -> Estimate:
    """Share ``k / n`` with a Wilson score interval (good coverage also near 0 and 1)."""
    if n <= 0:
        raise ValueError("proportion_ci needs n > 0")
    if not 0 <= k <= n:
        raise ValueError("need 0 <= k <= n")
    p = k / n
    z = _z(alpha)
    den = 1 + z ** 2 / n
    centre = (p + z ** 2 / (2 * n)) / den
    half = z * np.sqrt(p * (1 - p) / n + z ** 2 / (4 * n ** 2)) / den
    se = float(np.sqrt(p * (1 - p) / n))
    return Estimate(p, se, float(centre - half), float(centre + half), n)


def diff_proportions_ci(k1: int, n1: int, k0: int, n0: int, alpha: float = 0.05) -> Estimate:
    """Difference ``k1/n1 − k0/n0`` with Newcombe's hybrid score interval (method 10)."""
    a, b = proportion_ci(k1, n1, alpha), proportion_ci(k0, n0, alpha)
    d = a.estimate - b.estimate
    lo = d - np.sqrt((a.estimate - a.ci_low) ** 2 + (b.ci_high - b.estimate) ** 2)
    hi = d + np.sqrt((a.ci_high - a.estimate) ** 2 + (b.estimate - b.ci_low) ** 2)
    se = float(np.sqrt(a.se ** 2 + b.se ** 2))
    return Estimate(float(d), se, float(lo), float(hi), n1 + n0)


def mean_diff_ci(x1: ArrayLike, x0: ArrayLike, alpha: float = 0.05) -> Estimate:
    """Difference of means ``mean(x1) − mean(x0)`` with a Welch (unequal-variance) t interval."""
    a, b = _arr(x1), _arr(x0)
    if a.size < 2 or b.size < 2:
        raise ValueError("mean_diff_ci needs at least two observations per group")
    v1, v0 = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    se = float(np.sqrt(v1 + v0))
    d = float(a.mean() - b.mean())
    if se == 0:
        return Estimate(d, 0.0, d, d, a.size + b.size)
    df = (v1 + v0) ** 2 / (v1 ** 2 / (a.size - 1) + v0 ** 2 / (b.size - 1))
    t = float(_st.t.ppf(1 - alpha / 2, df))
    return Estimate(d, se, d - t * se, d + t * se, a.size + b.size)


# --------------------------------------------------------------------------------------------
# relative effects: ratio of means


def _weighted_mean_var(y: np.ndarray, w: np.ndarray | None) -> tuple[float, float]:
    """Mean and the variance of that mean (linearisation; weights treated as fixed)."""
    if w is None:
        return float(y.mean()), float(y.var(ddof=1) / y.size)
    sw = w.sum()
    m = float((w * y).sum() / sw)
    var = float((w ** 2 * (y - m) ** 2).sum() / sw ** 2) * y.size / max(y.size - 1, 1)
    return m, var


def ratio_of_means_ci(y_t: ArrayLike, y_c: ArrayLike, alpha: float = 0.05, method: str = "delta",
                      n_boot: int = 2000, seed: int = 0, w_t: ArrayLike | None = None,
                      w_c: ArrayLike | None = None) -> Estimate:
    """Relative lift ``mean(y_t) / mean(y_c) − 1`` with a confidence interval.

    ``method="delta"``: first-order delta method for the ratio of two independent means,
    ``se(R) = R · sqrt(var(ȳ_t)/ȳ_t² + var(ȳ_c)/ȳ_c²)``; the interval is built on the log scale
    (``exp(log R ± z · se_log)``), which respects the positivity of the ratio and has better
    coverage for skewed outcomes. ``method="bootstrap"``: percentile bootstrap, resampling each
    group independently (``n_boot`` draws, seeded). Optional weights (e.g. propensity weights)
    give weighted means; their variance treats weights as fixed.
    """
    a, b = _arr(y_t), _arr(y_c)
    if a.size < 2 or b.size < 2:
        raise ValueError("ratio_of_means_ci needs at least two observations per group")
    wa = None if w_t is None else _arr(w_t)
    wb = None if w_c is None else _arr(w_c)
    m1, v1 = _weighted_mean_var(a, wa)
    m0, v0 = _weighted_mean_var(b, wb)
    if m0 <= 0 or m1 <= 0:
        raise ValueError("ratio of means needs positive group means")
    r = m1 / m0
    se_log = float(np.sqrt(v1 / m1 ** 2 + v0 / m0 ** 2))
    se = r * se_log
    n = a.size + b.size
    if method == "delta":
        z = _z(alpha)
        return Estimate(r - 1, se, float(r * np.exp(-z * se_log) - 1),
                        float(r * np.exp(z * se_log) - 1), n)
    if method == "bootstrap":
        rng = np.random.default_rng(seed)
        reps = np.empty(n_boot)
        for i in range(n_boot):
            ia = rng.integers(0, a.size, a.size)
            ib = rng.integers(0, b.size, b.size)
            ma = a[ia].mean() if wa is None else np.average(a[ia], weights=wa[ia])
            mb = b[ib].mean() if wb is None else np.average(b[ib], weights=wb[ib])
            reps[i] = ma / mb - 1 if mb > 0 else np.nan
        reps = reps[~np.isnan(reps)]
        lo, hi = np.quantile(reps, [alpha / 2, 1 - alpha / 2])
        return Estimate(r - 1, float(reps.std(ddof=1)), float(lo), float(hi), n)
    raise ValueError(f"method must be 'delta' or 'bootstrap'; got {method!r}")


# --------------------------------------------------------------------------------------------
# experiment hygiene and variance reduction


@dataclass(frozen=True)
class SRMResult:
    observed: tuple[int, ...]
    expected: tuple[float, ...]
    chi2: float
    p_value: float

    @property
    def mismatch(self) -> bool:
        """Sample ratio mismatch at the conventional strict level p < 0.001."""
        return self.p_value < 0.001


def srm_test(counts: ArrayLike, ratios: ArrayLike | None = None) -> SRMResult:
    """Chi-square goodness-of-fit of arm sizes against the planned allocation (default equal)."""
    obs = np.asarray(counts, dtype=float)
    if obs.size < 2 or (obs < 0).any() or obs.sum() <= 0:
        raise ValueError("srm_test needs two or more non-negative counts")
    p = np.full(obs.size, 1 / obs.size) if ratios is None else _arr(ratios) / np.sum(ratios)
    exp = obs.sum() * p
    chi2, pv = _st.chisquare(obs, exp)
    return SRMResult(tuple(int(c) for c in obs), tuple(float(e) for e in exp), float(chi2),
                     float(pv))


@dataclass(frozen=True)
class CupedResult:
    theta: float  # regression coefficient of y on the pre-period covariate (pooled)
    y_adjusted: np.ndarray  # y − theta · (x − mean(x))
    variance_reduction: float  # 1 − var(y_adj) / var(y), pooled within arms


def cuped(y: ArrayLike, x: ArrayLike, arm: ArrayLike | None = None) -> CupedResult:
    """CUPED (Deng et al. 2013): ``y_adj = y − θ (x − x̄)`` with ``θ = cov(y, x) / var(x)``.

    ``x`` must be measured before assignment (pre-period), so it cannot be affected by the
    treatment and the adjusted difference stays unbiased. θ is estimated pooled within arms (when
    ``arm`` is given) so that the treatment effect does not leak into θ. The adjusted outcome has
    the same mean in expectation and variance ``var(y) (1 − ρ²)``.
    """
    ya, xa = _arr(y), _arr(x)
    if ya.size != xa.size:
        raise ValueError("y and x must have the same length")
    if arm is None:
        g = np.zeros(ya.size, dtype=int)
    else:
        g = pd.factorize(np.asarray(arm))[0]
    yc = ya - pd.Series(ya).groupby(g).transform("mean").to_numpy()
    xc = xa - pd.Series(xa).groupby(g).transform("mean").to_numpy()
    vx = float((xc ** 2).sum())
    theta = float((xc * yc).sum() / vx) if vx > 0 else 0.0
    y_adj = ya - theta * (xa - xa.mean())
    yac = y_adj - pd.Series(y_adj).groupby(g).transform("mean").to_numpy()
    vr = 1 - float((yac ** 2).sum() / (yc ** 2).sum()) if (yc ** 2).sum() > 0 else 0.0
    return CupedResult(theta, y_adj, vr)


def regression_adjusted_effect(y: ArrayLike, treated: ArrayLike, x: ArrayLike | pd.DataFrame,
                               alpha: float = 0.05) -> Estimate:
    """Absolute treatment effect by OLS with centred covariates and their interactions with the
    treatment (Lin 2013), with HC2 heteroskedasticity-robust standard errors (statsmodels)."""
    import statsmodels.api as sm

    ya = _arr(y)
    t = _arr(treated)
    X = np.asarray(x, dtype=float)
    if X.ndim == 1:
        X = X[:, None]
    Xc = X - X.mean(axis=0)
    keep: list[int] = []  # drop covariates that are constant or collinear with earlier ones
    for j in range(Xc.shape[1]):
        cand = np.column_stack([np.ones_like(t), t, Xc[:, keep + [j]]])
        if np.linalg.matrix_rank(cand) == cand.shape[1]:
            keep.append(j)
    Xc = Xc[:, keep]
    design = np.column_stack([np.ones_like(t), t, Xc, Xc * t[:, None]])
    fit = sm.OLS(ya, design).fit(cov_type="HC2")
    est, se = float(fit.params[1]), float(fit.bse[1])
    z = _z(alpha)
    return Estimate(est, se, est - z * se, est + z * se, ya.size)


# --------------------------------------------------------------------------------------------
# power


def mde(sd: float, n_per_arm: float, alpha: float = 0.05, power: float = 0.8,
        baseline_mean: float | None = None) -> float:
    """Minimum detectable (absolute) difference of means for two equal arms (two-sided z-test):
    ``(z_{1−α/2} + z_{power}) · sd · sqrt(2 / n)``; relative to ``baseline_mean`` when given."""
    if n_per_arm <= 0 or sd < 0:
        raise ValueError("need n_per_arm > 0 and sd >= 0")
    d = (_z(alpha) + float(_st.norm.ppf(power))) * sd * np.sqrt(2 / n_per_arm)
    return float(d / baseline_mean) if baseline_mean else float(d)


def sample_size_per_arm(sd: float, effect: float, alpha: float = 0.05, power: float = 0.8) -> int:
    """Customers per arm needed to detect an absolute difference ``effect`` (two equal arms)."""
    if effect <= 0:
        raise ValueError("effect must be positive")
    n = 2 * ((_z(alpha) + float(_st.norm.ppf(power))) * sd / effect) ** 2
    return int(np.ceil(n))


# --------------------------------------------------------------------------------------------
# propensity scores and balance


def propensity_scores(X: pd.DataFrame | np.ndarray, treated: ArrayLike, C: float = 1.0,
                      seed: int = 0) -> np.ndarray:
    """P(treated | X) from a standardized L2 logistic regression (scikit-learn)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    t = _arr(treated).astype(int)
    if t.min() == t.max():
        raise ValueError("propensity scores need both treated and untreated units")
    model = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000,
                                                              random_state=seed))
    model.fit(np.asarray(X, dtype=float), t)
    return model.predict_proba(np.asarray(X, dtype=float))[:, 1]


def att_weights(ps: ArrayLike, treated: ArrayLike, clip: float = 0.01) -> np.ndarray:
    """Weights for the average effect on the treated: 1 for treated, ``e/(1−e)`` for controls
    (scores clipped to [clip, 1 − clip] to keep extreme weights in check)."""
    e = np.clip(_arr(ps), clip, 1 - clip)
    t = _arr(treated).astype(bool)
    return np.where(t, 1.0, e / (1 - e))


def standardized_mean_differences(X: pd.DataFrame, treated: ArrayLike,
                                  weights: ArrayLike | None = None) -> pd.Series:
    """Standardized mean difference per covariate: ``(m_t − m_c) / sqrt((s_t² + s_c²) / 2)``.

    Means (and, with ``weights``, weighted means) by group; the denominator uses the *unweighted*
    standard deviations so weighted and unweighted SMDs are comparable (|SMD| < 0.1 is the usual
    bar for good balance).
    """
    t = _arr(treated).astype(bool)
    w = np.ones(len(t)) if weights is None else _arr(weights)
    out = {}
    for col in X.columns:
        v = X[col].to_numpy(dtype=float)
        mt = np.average(v[t], weights=w[t])
        mc = np.average(v[~t], weights=w[~t])
        sd = np.sqrt((v[t].var(ddof=1) + v[~t].var(ddof=1)) / 2)
        out[col] = (mt - mc) / sd if sd > 0 else 0.0
    return pd.Series(out, name="smd")


# --------------------------------------------------------------------------------------------
# difference-in-differences


def did_ratio(pre_t: ArrayLike, post_t: ArrayLike, pre_c: ArrayLike, post_c: ArrayLike,
              w_t: ArrayLike | None = None, w_c: ArrayLike | None = None, alpha: float = 0.05,
              n_boot: int = 500, seed: int = 0) -> Estimate:
    """Multiplicative difference-in-differences on per-unit totals:

    ``(Σpost_t / Σpre_t) / (Σpost_c / Σpre_c) − 1`` (weighted sums when weights are given), the
    relative change of the treated beyond the relative change of the controls. Parallel trends are
    assumed on the log scale (growth rates), natural for spend. Interval: percentile bootstrap over
    units (pre and post of a unit stay together).
    """
    a0, a1, b0, b1 = map(_arr, (pre_t, post_t, pre_c, post_c))
    wa = np.ones(a0.size) if w_t is None else _arr(w_t)
    wb = np.ones(b0.size) if w_c is None else _arr(w_c)

    def est(i: np.ndarray, j: np.ndarray) -> float:
        rt = (wa[i] * a1[i]).sum() / (wa[i] * a0[i]).sum()
        rc = (wb[j] * b1[j]).sum() / (wb[j] * b0[j]).sum()
        return rt / rc - 1

    point = est(np.arange(a0.size), np.arange(b0.size))
    rng = np.random.default_rng(seed)
    reps = np.array([est(rng.integers(0, a0.size, a0.size), rng.integers(0, b0.size, b0.size))
                     for _ in range(n_boot)])
    reps = reps[np.isfinite(reps)]
    lo, hi = np.quantile(reps, [alpha / 2, 1 - alpha / 2])
    return Estimate(float(point), float(reps.std(ddof=1)), float(lo), float(hi), a0.size + b0.size)
