"""helpers.stats against hand-computed answers, scipy/statsmodels equivalents and simulation."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint

from helpers import stats as st


# ---------------------------------------------------------------- NPS and proportions
def test_nps_hand_computed():
    # 5 promoters, 3 passives, 2 detractors out of 10: NPS = 100 * (0.5 - 0.2) = 30;
    # var of the +1/0/-1 score = 0.5 + 0.2 - 0.3**2 = 0.61 -> se = 100 * sqrt(0.61 / 10)
    r = st.nps([10, 9, 10, 9, 9, 8, 7, 8, 6, 0])
    assert r.estimate == pytest.approx(30.0)
    assert r.se == pytest.approx(100 * np.sqrt(0.061))
    assert r.ci_low == pytest.approx(30 - 1.959964 * r.se, rel=1e-5)
    assert (r.promoters, r.passives, r.detractors) == pytest.approx((0.5, 0.3, 0.2))
    assert st.nps([10, 10]).estimate == 100 and st.nps([3, 6]).estimate == -100


def test_nps_rejects_out_of_range():
    with pytest.raises(ValueError):
        st.nps([11, 5])
    with pytest.raises(ValueError):
        st.nps([])


def test_nps_interval_coverage_by_simulation():
    rng = np.random.default_rng(1)
    p = np.array([0.25] + [0.05] * 6 + [0.15, 0.15] + [0.1, 0.2])  # answers 0..10
    p = p / p.sum()
    truth = 100 * (p[9:].sum() - p[:7].sum())
    hits = sum(st.nps(rng.choice(11, 400, p=p)).covers(truth) for _ in range(600))
    assert 0.92 <= hits / 600 <= 0.975


def test_proportion_ci_matches_statsmodels_wilson():
    for k, n in [(0, 20), (3, 20), (37, 120), (120, 120)]:
        r = st.proportion_ci(k, n)
        lo, hi = proportion_confint(k, n, alpha=0.05, method="wilson")
        assert (r.ci_low, r.ci_high) == pytest.approx((lo, hi), abs=1e-10)


def test_diff_proportions_matches_statsmodels_newcombe():
    r = st.diff_proportions_ci(56, 70, 48, 80)
    lo, hi = confint_proportions_2indep(56, 70, 48, 80, method="newcomb", compare="diff")
    assert r.estimate == pytest.approx(56 / 70 - 48 / 80)
    assert (r.ci_low, r.ci_high) == pytest.approx((lo, hi), abs=1e-8)


def test_mean_diff_matches_scipy_welch():
    rng = np.random.default_rng(2)
    a, b = rng.normal(1, 2, 50), rng.normal(0, 1, 80)
    r = st.mean_diff_ci(a, b)
    ci = sps.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert (r.ci_low, r.ci_high) == pytest.approx((ci.low, ci.high), rel=1e-10)


# ---------------------------------------------------------------- ratio of means
def _zero_inflated_spend(rng, n, scale):
    buy = rng.random(n) < 0.5
    return np.where(buy, rng.lognormal(np.log(scale), 1.2, n), 0.0)


def test_ratio_of_means_point_and_delta_se():
    r = st.ratio_of_means_ci([1, 2, 3, 4], [1, 1, 2, 0])
    assert r.estimate == pytest.approx(2.5 / 1.0 - 1)
    # delta method: se(R) = R * sqrt(var_t/(n m_t^2) + var_c/(n m_c^2))
    vt, vc = np.var([1, 2, 3, 4], ddof=1) / 4, np.var([1, 1, 2, 0], ddof=1) / 4
    assert r.se == pytest.approx(2.5 * np.sqrt(vt / 2.5 ** 2 + vc / 1.0))


def test_ratio_of_means_delta_coverage_heavy_tailed_zeros():
    # zero-inflated log-normal spend, true lift exactly +10 %: the interval covers ~95 % of the time
    rng = np.random.default_rng(3)
    hits = 0
    for _ in range(400):
        r = st.ratio_of_means_ci(_zero_inflated_spend(rng, 3000, 110.0),
                                 _zero_inflated_spend(rng, 3000, 100.0))
        hits += r.covers(0.10)
    assert 0.925 <= hits / 400 <= 0.975


def test_ratio_of_means_bootstrap_agrees_with_delta_on_large_samples():
    rng = np.random.default_rng(4)
    a, b = _zero_inflated_spend(rng, 5000, 120.0), _zero_inflated_spend(rng, 5000, 100.0)
    d = st.ratio_of_means_ci(a, b)
    bt = st.ratio_of_means_ci(a, b, method="bootstrap", n_boot=800, seed=1)
    assert bt.estimate == d.estimate
    assert bt.se == pytest.approx(d.se, rel=0.15)
    assert bt.ci_low == pytest.approx(d.ci_low, abs=0.03)


def test_weighted_ratio_of_means_equals_replicated_rows():
    r_w = st.ratio_of_means_ci([1.0, 3.0], [2.0, 2.0, 4.0], w_t=[1, 3], w_c=[1, 1, 2])
    assert r_w.estimate == pytest.approx((1 + 9) / 4 / ((2 + 2 + 8) / 4) - 1)


# ---------------------------------------------------------------- SRM, CUPED, regression
def test_srm_hand_computed():
    r = st.srm_test([5000, 5200])
    assert r.chi2 == pytest.approx(2 * 100 ** 2 / 5100)
    assert r.p_value == pytest.approx(sps.chi2.sf(2 * 100 ** 2 / 5100, 1))
    assert not r.mismatch
    assert st.srm_test([5000, 5600]).mismatch
    assert st.srm_test([900, 100], ratios=[0.9, 0.1]).chi2 == pytest.approx(0.0)


def test_cuped_theta_is_ols_slope_and_variance_reduction_is_rho_squared():
    rng = np.random.default_rng(5)
    x = rng.normal(10, 3, 20000)
    y = 2 + 0.8 * x + rng.normal(0, 2, 20000)
    r = st.cuped(y, x)
    assert r.theta == pytest.approx(np.polyfit(x, y, 1)[0], rel=1e-9)
    rho2 = np.corrcoef(x, y)[0, 1] ** 2
    assert r.variance_reduction == pytest.approx(rho2, abs=1e-9)
    assert r.y_adjusted.mean() == pytest.approx(y.mean())


def test_cuped_keeps_the_treatment_effect_unbiased():
    rng = np.random.default_rng(6)
    est = []
    for _ in range(200):
        x = rng.gamma(1.0, 100, 2000)
        t = rng.random(2000) < 0.5
        y = 0.7 * x + rng.gamma(1.0, 50, 2000) + 20 * t
        a = st.cuped(y, x, t).y_adjusted
        est.append(a[t].mean() - a[~t].mean())
    assert np.mean(est) == pytest.approx(20, abs=1.5)


def test_regression_adjustment_recovers_effect_with_smaller_se():
    rng = np.random.default_rng(7)
    x = rng.normal(0, 1, 4000)
    t = (rng.random(4000) < 0.5).astype(float)
    y = 5 + 3 * x + 1.0 * t + rng.normal(0, 1, 4000)
    r = st.regression_adjusted_effect(y, t, x)
    raw = st.mean_diff_ci(y[t == 1], y[t == 0])
    assert r.covers(1.0) and r.se < raw.se / 2


# ---------------------------------------------------------------- power
def test_mde_matches_statsmodels_power():
    sd, n = 2000.0, 3500
    d = st.mde(sd, n)
    power = NormalIndPower().power(effect_size=d / sd, nobs1=n, alpha=0.05, ratio=1.0)
    assert power == pytest.approx(0.8, abs=1e-3)
    assert st.mde(sd, n, baseline_mean=d) == pytest.approx(1.0)
    n_needed = st.sample_size_per_arm(sd, d)
    assert n_needed in (n, n + 1)


# ---------------------------------------------------------------- propensity and balance
def test_att_weights_and_smd_hand_computed():
    w = st.att_weights([0.5, 0.2, 0.8, 0.999], [1, 0, 0, 0], clip=0.01)
    assert w == pytest.approx([1.0, 0.25, 4.0, 0.99 / 0.01])
    X = pd.DataFrame({"a": [1.0, 3.0, 0.0, 2.0]})
    smd = st.standardized_mean_differences(X, [1, 1, 0, 0])
    # means 2 vs 1, variances 2 and 2 -> (2 - 1) / sqrt(2)
    assert smd["a"] == pytest.approx(1 / np.sqrt(2))


def test_propensity_weighting_removes_observed_confounding():
    rng = np.random.default_rng(8)
    n = 20000
    x = rng.normal(0, 1, n)
    t = rng.random(n) < 1 / (1 + np.exp(-(x - 0.5)))
    y = np.exp(0.5 * x) * (1 + 0.10 * t) * rng.gamma(2.0, 0.5, n)  # true ATT lift = +10 %
    naive = y[t].mean() / y[~t].mean() - 1
    X = pd.DataFrame({"x": x})
    w = st.att_weights(st.propensity_scores(X, t), t)
    ipw = st.ratio_of_means_ci(y[t], y[~t], w_t=w[t], w_c=w[~t])
    assert naive > 0.3
    assert ipw.covers(0.10)
    assert abs(st.standardized_mean_differences(X, t, w)["x"]) < 0.05


# ---------------------------------------------------------------- difference-in-differences
def test_did_ratio_recovers_planted_effect_under_parallel_trends():
    # groups differ in level (x3) and both grow x1.2 over time; the treated get +10 % on top
    rng = np.random.default_rng(9)
    hits = 0
    for _ in range(100):
        lt, lc = rng.gamma(1.0, 300, 1500), rng.gamma(1.0, 100, 3000)
        pre_t, pre_c = rng.poisson(lt / 50) * 50.0, rng.poisson(lc / 50) * 50.0
        post_t = rng.poisson(lt * 1.2 * 1.1 / 50) * 50.0
        post_c = rng.poisson(lc * 1.2 / 50) * 50.0
        hits += st.did_ratio(pre_t, post_t, pre_c, post_c, n_boot=200, seed=1).covers(0.10)
    assert hits >= 88  # nominal 95 %; a percentile bootstrap may undercover a little


def test_did_ratio_hand_computed():
    # treated grow 100 -> 150 (x1.5), controls 100 -> 120 (x1.2): 1.5 / 1.2 - 1 = 0.25
    r = st.did_ratio([40, 60], [60, 90], [50, 50], [60, 60], n_boot=50)
    assert r.estimate == pytest.approx(0.25)
    # weights double the second control: controls (50 + 100) -> (60 + 150) = x1.4
    r2 = st.did_ratio([40, 60], [60, 90], [50, 50], [60, 75], w_c=[1, 2], n_boot=50)
    assert r2.estimate == pytest.approx(1.5 / 1.4 - 1)
