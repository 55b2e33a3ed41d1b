"""Seeded synthetic e-commerce data with planted truth.

The generator simulates a Chinese-style online shop over two years and writes the tables of the
data contract (:mod:`helpers.contract`) plus the *truth* that real data never has: each customer's
persona, purchase rate, drop-out probability and the moment they silently became inactive, and the
true incremental effects of the loyalty program and of a retention offer. Chapters estimate these
things from the tables and compare their estimates with the truth.

How customers behave
--------------------
* **Personas.** Six latent personas (:data:`PERSONAS`) differ in demographics, acquisition channel,
  device, category preferences, brand tier (price level), coupon use, return propensity, browsing
  intensity, purchase rate, drop-out and loyalty-program affinity. Each customer draws individual
  values around the persona's (Dirichlet category preferences, gamma purchase rates, beta drop-out).
* **Buy till you die.** After the first purchase, a customer buys as a Poisson process with rate
  ``purchase_rate`` (per year) and, after every repeat purchase, becomes inactive for good with
  probability ``dropout_prob`` (the BG/NBD story). Nobody announces it: ``dropout_ts`` is truth only.
* **Seasonality and promotions.** The purchase intensity follows a persona-specific calendar:
  the 618 and Double-11 (11.11) festivals, 12.12, a Spring-Festival dip and weekends; promotion days
  also raise coupon use and cut prices. Time of day follows an evening-peaked profile.
* **Baskets.** Orders hold one or more products chosen from the customer's category preferences
  and the persona's brand tier; some products have complements bought together ("bundles", the
  structure that association rules and item-based recommenders should find). Quantities, coupons,
  discounts and returns (category- and persona-dependent) follow.
* **Behaviour.** Every order comes with a browsing session (views, add-to-cart, purchase events);
  customers also browse without buying, abandon carts and add favourites, and keep browsing a little
  after they have stopped buying.
* **Loyalty program.** Launched on ``loyalty_launch``; customers join at checkout with a persona-
  dependent probability, so high-value personas are over-represented (self-selection). Membership
  multiplies the purchase rate by ``1 + loyalty_effect``: the true incremental effect.
* **Randomized holdout.** On ``experiment_start`` half of the eligible non-members (bought before,
  not yet members) enter an experiment: half of them are enrolled automatically (treatment), half
  are kept out of the program until the end (holdout).
* **Retention offer.** On ``offer_start`` lapsing customers (last purchase 60-365 days before) not in
  the loyalty experiment are randomized to a win-back coupon; for 60 days it multiplies the purchase
  rate of *active* customers by ``1 + offer_uplift``, which differs by persona (true uplift).
* **Surveys.** About one order in eight triggers an NPS/CSAT survey; answers depend on a latent
  satisfaction that also lowers the drop-out probability, so low scores predict churn.
* **Dirty records.** Exact duplicate order lines and events, missing demographics and a few
  impossible ages, as real exports have; the loader sets them aside or repairs them with a reason.

Truth by simulation
-------------------
The true effect of the loyalty program is computed, not assumed: the whole purchase history is
simulated a second time with the program's effect switched off, with *common random numbers*
(every random draw is a hash of ``seed``, customer, purchase number and purpose), so both worlds
are identical until membership changes something. The true effect is the difference between the
two worlds for the same customers.

Scale
-----
Cost grows linearly with the number of customers (about 3.3 orders, 7.2 order lines and 53
events per customer). ``python -m helpers.synth`` measured on a shared 2-core machine (CPU time,
peak RSS): 10k customers 4 s / 0.36 GiB, 100k 15 s / 0.91 GiB, 1M 149 s / 7.1 GiB (7.5 min wall
under a load of ~6); time grows as size^1.0 and memory as size^0.9 from 100k to 1M. What keeps it
linear and lean:

* The events table is never held as strings: :func:`generate` keeps it as an integer-coded
  :class:`EventLog` (about 23 bytes a row), builds the pandas table only when
  ``data.tables["events"]`` is read (:class:`Tables`), and :func:`write_dataset` writes it in row
  groups of :data:`EVENT_CHUNK` rows, making the strings a row group at a time. Reading
  ``tables["events"]`` at 1M customers materializes ~53M rows of Python strings (tens of GiB):
  write the dataset and load it instead.
* Row-wise work is vectorized and exact: :func:`_poisson_ppf`, :func:`_day_ns` /
  :func:`_ts_floor_s` and :func:`_dirichlet_like_numpy` reproduce ``scipy.stats.poisson.ppf``,
  ``pd.to_timedelta(..., unit="D")`` (+ ``floor("s")``) and numpy's per-row Dirichlet bit for bit;
  sorts by fixed-width ids are integer lexsorts; (rows x categories) comparisons run in chunks.
* Every random draw is the same as before these changes, in the same order, so a given
  (customers, seed) writes the same files, byte for byte (checked at 10k, 20k and 100k).

The one size-dependent rule (older than the changes above): from 200,000 customers the category
preferences are gamma draws divided by their row sum (:func:`_dirichlet_rows`) instead of
numpy's Dirichlet rounding; both consume the same random numbers and differ only in the last
bits (a draw that falls exactly between two categories may land on the other one).

Use ``python -m helpers.synth --customers 20000 --seed 42 --out data/synthetic`` or
:func:`generate` / :func:`write_dataset` from Python.
"""
from __future__ import annotations

import argparse
import json
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

# --------------------------------------------------------------------------------------------
# World description
# --------------------------------------------------------------------------------------------
CATEGORIES = ("electronics", "phone_accessories", "apparel", "shoes_bags", "beauty", "home",
              "grocery", "mother_baby", "sports", "books")
#: median list price per category (CNY)
CATEGORY_PRICE = np.array([1500, 60, 180, 300, 150, 120, 40, 120, 200, 45], dtype=float)
#: probability that a line of this category is returned (before persona adjustment)
CATEGORY_RETURN = np.array([0.04, 0.03, 0.14, 0.10, 0.05, 0.04, 0.01, 0.03, 0.06, 0.01])
#: mean extra units per line (Poisson) by category
CATEGORY_EXTRA_QTY = np.array([0.0, 0.2, 0.1, 0.0, 0.2, 0.2, 0.9, 0.6, 0.1, 0.1])
BRAND_TIERS = ("budget", "mid", "premium")
BRAND_TIER_PRICE = np.array([0.55, 1.0, 2.3])
REGIONS = ("beijing", "shanghai", "guangdong", "zhejiang", "jiangsu", "sichuan", "hubei",
           "henan", "shandong", "other")
CHANNELS = ("search", "social", "livestream", "app_store", "referral", "offline_event")
DEVICES = ("mobile", "desktop", "tablet")
SALES_CHANNELS = ("app", "web", "mini_program")


@dataclass(frozen=True)
class Persona:
    """Parameters of one latent persona (rates are per year)."""

    name: str
    label: str  # operator's name (English / Chinese)
    share: float
    age: tuple[float, float]
    p_female: float
    p_mobile: float
    affluence: float  # weight on tier-1 regions
    channels: tuple[float, ...]
    categories: tuple[float, ...]
    brand_tier: tuple[float, float, float]
    rate_shape: float  # gamma shape r of purchase rate
    rate_mean: float  # mean purchases per year while active
    dropout: tuple[float, float]  # beta(a, b) of drop-out probability per repeat purchase
    p_never_buy: float
    extra_lines: float  # mean extra lines per order
    coupon: float  # probability of coupon use on a normal day
    returns: float  # multiplier on category return rates
    browse: float  # non-buying browsing sessions per year while active
    season: float  # sensitivity to festival peaks (1 = average)
    enrol: float  # probability of joining the loyalty program at a purchase
    offer_uplift: float  # true relative uplift of purchase rate from a retention offer
    nps_shift: float


PERSONAS: tuple[Persona, ...] = (
    Persona("premium_loyalist", "Premium loyalists / 高价值忠诚客", 0.12, (40, 8), 0.5, 0.5, 0.7,
            (.35, .10, .05, .20, .20, .10), (3, 1, 2.5, 2, 2, 1.5, .5, .5, 1.5, 1), (.05, .35, .60),
            2.0, 7.0, (1.0, 14.0), 0.04, 1.0, 0.10, 0.8, 18, 0.6, 0.22, 0.05, 0.8),
    Persona("bargain_hunter", "Bargain hunters / 价格敏感型", 0.22, (33, 10), 0.6, 0.85, 0.3,
            (.15, .30, .30, .15, .05, .05), (.3, 1.5, 1, .5, 1, 2.5, 3.5, 1, .5, .7), (.70, .27, .03),
            1.3, 5.0, (1.0, 6.0), 0.12, 0.8, 0.50, 0.9, 28, 1.7, 0.07, 1.2, -0.3),
    Persona("young_trendsetter", "Young trendsetters / 时尚潮流族", 0.18, (23, 3), 0.8, 0.95, 0.5,
            (.10, .45, .30, .10, .05, .00), (.5, 1.5, 3.5, 2.5, 3.5, .5, .5, .2, .8, .5), (.30, .55, .15),
            1.1, 4.0, (1.0, 5.0), 0.18, 0.9, 0.30, 2.2, 40, 1.2, 0.08, 0.7, 0.0),
    Persona("family_shopper", "Family shoppers / 家庭采购型", 0.20, (35, 5), 0.75, 0.75, 0.4,
            (.25, .20, .15, .15, .15, .10), (.3, .4, 1, .5, .7, 2.5, 3, 4, .6, 1), (.25, .60, .15),
            2.5, 6.0, (1.2, 11.0), 0.08, 1.6, 0.30, 0.7, 14, 0.9, 0.10, 0.5, 0.3),
    Persona("tech_enthusiast", "Tech enthusiasts / 数码发烧友", 0.10, (29, 6), 0.15, 0.55, 0.6,
            (.50, .15, .05, .15, .10, .05), (4, 3.5, .5, .3, .2, .5, .3, .1, 1, 1.2), (.15, .45, .40),
            1.5, 2.5, (1.0, 8.0), 0.12, 0.5, 0.15, 1.0, 35, 1.3, 0.08, 0.2, 0.2),
    Persona("occasional_browser", "Occasional browsers / 低频浏览客", 0.18, (38, 14), 0.5, 0.7, 0.35,
            (.20, .30, .20, .20, .05, .05), (1,) * 10, (.40, .50, .10),
            0.7, 1.3, (1.5, 3.0), 0.40, 0.5, 0.35, 1.0, 25, 1.0, 0.02, 0.9, -0.8),
)
PERSONA_NAMES = tuple(p.name for p in PERSONAS)
#: share of eligible non-members who enter the loyalty holdout experiment
COHORT_SHARE = 0.7


@dataclass(frozen=True)
class Config:
    """Generator settings. All dates are local (Asia/Shanghai) calendar dates."""

    n_customers: int = 20_000
    seed: int = 42
    start: str = "2024-01-01"
    end: str = "2025-12-31"  # last day of data (inclusive)
    n_products: int = 600
    n_bundles: int = 60
    loyalty_launch: str = "2024-04-01"
    loyalty_effect: float = 0.15  # purchase-rate multiplier minus one for members
    experiment_start: str = "2025-07-01"
    offer_start: str = "2025-09-01"
    offer_days: int = 60
    survey_rate: float = 0.12
    duplicate_line_rate: float = 0.003
    duplicate_event_rate: float = 0.004
    tier_thresholds: tuple[float, float] = (3000.0, 12000.0)  # trailing-year spend for gold, black

    @property
    def t0(self) -> pd.Timestamp:
        return pd.Timestamp(self.start)

    @property
    def n_days(self) -> int:
        return (pd.Timestamp(self.end) - self.t0).days + 1

    def day(self, date: str) -> float:
        return float((pd.Timestamp(date) - self.t0).days)


# --------------------------------------------------------------------------------------------
# Counter-based randomness: every draw is a hash of (seed, purpose, customer, counter), so two
# simulated worlds see the same random numbers for the same customer and purchase number.
# --------------------------------------------------------------------------------------------
_M1, _M2, _M3 = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def _mix(x: np.ndarray) -> np.ndarray:
    x = x + _M1
    x = (x ^ (x >> np.uint64(30))) * _M2
    x = (x ^ (x >> np.uint64(27))) * _M3
    return x ^ (x >> np.uint64(31))


def keyed_uniform(seed: int, purpose: int, i: np.ndarray, k: np.ndarray | int = 0,
                  j: np.ndarray | int = 0) -> np.ndarray:
    """Uniform(0, 1) draws that depend only on (seed, purpose, i, k, j) — splitmix64 hashing."""
    with np.errstate(over="ignore"):
        x = _mix(np.uint64(seed) * np.uint64(1_000_003) + np.uint64(purpose))
        x = _mix(x ^ np.asarray(i, dtype=np.uint64))
        x = _mix(x ^ np.asarray(k, dtype=np.uint64))
        x = _mix(x ^ np.asarray(j, dtype=np.uint64))
    return ((x >> np.uint64(11)).astype(np.float64) + 0.5) / float(1 << 53)


# purposes of keyed draws
_GAP, _DROP, _ENROL, _BP, _LINES, _CAT, _PROD, _BUNDLE, _QTY, _COUPON, _DISC, _RET, _RETDAY, \
    _TOD, _SURVEY, _COHORT, _ARM, _OFFER, _DEV, _SCH = range(20)


# --------------------------------------------------------------------------------------------
# Calendar
# --------------------------------------------------------------------------------------------
def season_profile(cfg: Config) -> np.ndarray:
    """Daily purchase-intensity multiplier (mean 1) for an average persona."""
    days = pd.date_range(cfg.start, cfg.end, freq="D")
    s = np.ones(len(days))
    md = days.month * 100 + days.day
    s *= np.where(days.dayofweek >= 5, 1.12, 0.95)
    s *= np.where((md >= 601) & (md <= 618), 1.35, 1.0)
    s *= np.where(md == 618, 2.2, 1.0)
    s *= np.where((md >= 1101) & (md <= 1110), 1.45, 1.0)
    s *= np.where(md == 1111, 3.5, 1.0)
    s *= np.where(md == 1212, 1.9, 1.0)
    # Spring Festival dip (approximate: late January to mid February)
    s *= np.where((md >= 125) & (md <= 215), 0.7, 1.0)
    return s / s.mean()


def promo_days(cfg: Config) -> np.ndarray:
    days = pd.date_range(cfg.start, cfg.end, freq="D")
    md = days.month * 100 + days.day
    return ((md >= 601) & (md <= 618)) | ((md >= 1101) & (md <= 1111)) | (md == 1212)


_HOURS = np.array([1, .5, .3, .2, .2, .3, .8, 1.5, 2.5, 3, 3.2, 3.5, 4, 3.5, 3.2, 3.3, 3.5, 3.8,
                   4.2, 5, 6, 6.5, 5, 2.5])
_HOUR_CDF = np.concatenate([[0.0], np.cumsum(_HOURS) / _HOURS.sum()])


def _time_of_day(u: np.ndarray) -> np.ndarray:
    """Map a uniform fraction of the day to an evening-peaked fraction of the day."""
    h = np.searchsorted(_HOUR_CDF, u, side="right") - 1
    h = np.clip(h, 0, 23)
    frac = (u - _HOUR_CDF[h]) / (_HOUR_CDF[h + 1] - _HOUR_CDF[h])
    return (h + frac) / 24.0


class _Clock:
    """Operational time: cumulative purchase intensity (in years of average intensity)."""

    def __init__(self, cfg: Config) -> None:
        base = season_profile(cfg)
        self.n_days = cfg.n_days
        sens = np.array([p.season for p in PERSONAS])
        prof = 1.0 + sens[:, None] * (base[None, :] - 1.0)
        prof = np.clip(prof, 0.05, None)
        prof /= prof.mean(axis=1, keepdims=True)
        self.daily = prof / 365.25  # (P, D) intensity per day in years
        self.cum = np.concatenate([np.zeros((len(PERSONAS), 1)), np.cumsum(self.daily, 1)], 1)

    def op(self, persona: np.ndarray, day: np.ndarray) -> np.ndarray:
        day = np.clip(day, 0.0, self.n_days - 1e-9)
        d = np.floor(day).astype(int)
        return self.cum[persona, d] + (day - d) * self.daily[persona, d]

    def cal(self, persona: np.ndarray, op: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`op` (day as float)."""
        out = np.empty(len(op))
        for p in np.unique(persona):
            m = persona == p
            c = self.cum[p]
            d = np.clip(np.searchsorted(c, op[m], side="right") - 1, 0, self.n_days - 1)
            out[m] = d + (op[m] - c[d]) / self.daily[p, d]
        return out


# --------------------------------------------------------------------------------------------
# The generator
# --------------------------------------------------------------------------------------------
class Tables(MutableMapping):
    """The generated tables by name, as pandas DataFrames.

    The events table (by far the largest: ~53 rows a customer) is kept as a coded
    :class:`EventLog` and built as a DataFrame only when it is first read from this mapping;
    :func:`write_dataset` writes it from the coded form in row groups, without ever holding the
    whole table as strings. :meth:`n_rows` counts rows without building anything.
    """

    def __init__(self, tables: dict[str, pd.DataFrame | EventLog]) -> None:
        self._tables = dict(tables)

    def __getitem__(self, name: str) -> pd.DataFrame:
        t = self._tables[name]
        if isinstance(t, EventLog):
            t = self._tables[name] = t.frame()
        return t

    def __setitem__(self, name: str, df: pd.DataFrame) -> None:
        self._tables[name] = df

    def __delitem__(self, name: str) -> None:
        del self._tables[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._tables)

    def __len__(self) -> int:
        return len(self._tables)

    def raw(self, name: str) -> pd.DataFrame | EventLog:
        """The table as stored: a DataFrame, or the coded :class:`EventLog` if not yet built."""
        return self._tables[name]

    def n_rows(self, name: str) -> int:
        return len(self._tables[name])


@dataclass
class SyntheticData:
    """Generated tables (raw, with dirty records), truth and the settings that produced them."""

    tables: Tables
    truth_customers: pd.DataFrame
    facts: dict
    config: Config = field(default_factory=Config)


def _customers(cfg: Config, rng: np.random.Generator) -> pd.DataFrame:
    n = cfg.n_customers
    shares = np.array([p.share for p in PERSONAS])
    persona = rng.choice(len(PERSONAS), size=n, p=shares / shares.sum())
    # sign-ups grow over time and follow the season
    s = season_profile(cfg)
    ramp = 1.0 + 1.0 * np.arange(cfg.n_days) / cfg.n_days
    w = (s * ramp)[: cfg.n_days - 14]
    signup_day = rng.choice(len(w), size=n, p=w / w.sum()) + rng.random(n)

    age = np.empty(n)
    female = np.empty(n, dtype=bool)
    mobile = np.empty(n, dtype=bool)
    region = np.empty(n, dtype=object)
    channel = np.empty(n, dtype=object)
    for pi, p in enumerate(PERSONAS):
        m = persona == pi
        k = int(m.sum())
        age[m] = np.clip(rng.normal(p.age[0], p.age[1], k), 16, 80).round()
        female[m] = rng.random(k) < p.p_female
        mobile[m] = rng.random(k) < p.p_mobile
        rw = np.array([p.affluence] * 4 + [1 - p.affluence] * 6)
        rw = rw * np.array([1, 1, 1.3, 1, 1, 0.8, 0.6, 0.7, 0.7, 1.5])
        region[m] = rng.choice(REGIONS, size=k, p=rw / rw.sum())
        ch = np.array(p.channels)
        channel[m] = rng.choice(CHANNELS, size=k, p=ch / ch.sum())
    device = np.where(mobile, "mobile", np.where(rng.random(n) < 0.8, "desktop", "tablet"))
    cust = pd.DataFrame({
        "customer_id": [f"C{i:07d}" for i in range(1, n + 1)],
        "signup_date": cfg.t0 + pd.to_timedelta(signup_day, unit="D"),
        "gender": np.where(female, "f", "m").astype(object),
        "age": age,
        "region": region,
        "device": device.astype(object),
        "acquisition_channel": channel,
    })
    cust["_persona"] = persona
    cust["_signup_day"] = signup_day
    return cust


def _products(cfg: Config, rng: np.random.Generator) -> pd.DataFrame:
    n = cfg.n_products
    # category sizes roughly proportional to assortment breadth
    sizes = np.array([8, 10, 14, 10, 12, 12, 14, 10, 6, 4], dtype=float)
    cat = rng.choice(len(CATEGORIES), size=n, p=sizes / sizes.sum())
    cat[: len(CATEGORIES)] = np.arange(len(CATEGORIES))  # every category has a product
    tier = rng.choice(3, size=n, p=[0.4, 0.4, 0.2])
    brand_no = rng.integers(1, 5, size=n)
    price = CATEGORY_PRICE[cat] * BRAND_TIER_PRICE[tier] * np.exp(rng.normal(0, 0.35, n))
    price = np.round(np.maximum(price, 3.0), 1)
    popularity = rng.lognormal(0, 1.0, n)  # some products are bestsellers in every persona
    prod = pd.DataFrame({
        "product_id": [f"P{i:05d}" for i in range(1, n + 1)],
        "category": np.array(CATEGORIES)[cat],
        "brand": [f"{CATEGORIES[c][:4]}-{BRAND_TIERS[t]}-{b}" for c, t, b in zip(cat, tier, brand_no)],
        "price": price,
    })
    prod["product_name"] = [f"{BRAND_TIERS[t].title()} {CATEGORIES[c].replace('_', ' ')} item {i + 1}"
                            for i, (c, t) in enumerate(zip(cat, tier))]
    prod["_cat"] = cat
    prod["_tier"] = tier
    prod["_pop"] = popularity
    return prod


def _bundles(cfg: Config, prod: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
    """complement[j] = index of the product usually bought with product j, or -1."""
    comp = np.full(len(prod), -1)
    pairs = [("electronics", "phone_accessories"), ("apparel", "shoes_bags"),
             ("mother_baby", "grocery"), ("sports", "apparel"), ("beauty", "beauty"),
             ("books", "books"), ("home", "home"), ("grocery", "grocery")]
    cat = prod["category"].to_numpy()
    pop = prod["_pop"].to_numpy()
    made = 0
    while made < cfg.n_bundles:
        a_cat, b_cat = pairs[made % len(pairs)]
        a_pool = np.flatnonzero((cat == a_cat) & (comp == -1))
        b_pool = np.flatnonzero((cat == b_cat) & (comp == -1))
        if len(a_pool) == 0 or len(b_pool) < 2:
            made += 1
            continue
        a = rng.choice(a_pool, p=pop[a_pool] / pop[a_pool].sum())
        b_pool = b_pool[b_pool != a]
        b = rng.choice(b_pool)
        comp[a] = b
        made += 1
    return comp


@dataclass
class _World:
    cust: np.ndarray  # purchases: customer index
    k: np.ndarray  # purchase number (0 = first)
    day: np.ndarray  # purchase time (days since start, float)
    self_enrol_day: np.ndarray  # per customer, NaN if never joined at checkout
    dropout_day: np.ndarray  # per customer, NaN if active at the end
    exp_arm: np.ndarray  # per customer: 0 not in experiment, 1 treatment, 2 holdout
    offer_arm: np.ndarray  # per customer: 0 not offered, 1 offer, 2 control
    offer_active: np.ndarray  # per customer: active when the offer started


def _simulate(cfg: Config, clock: _Clock, persona: np.ndarray, first_day: np.ndarray,
              rate: np.ndarray, dropout: np.ndarray, uplift: np.ndarray, theta: float) -> _World:
    """Simulate every purchase after the first, exactly, for piecewise-constant rates."""
    n = len(persona)
    seed = cfg.seed
    launch = cfg.day(cfg.loyalty_launch)
    t_exp, t_off = cfg.day(cfg.experiment_start), cfg.day(cfg.offer_start)
    t_off_end = t_off + cfg.offer_days
    end_day = float(cfg.n_days)
    enrol_p = np.array([p.enrol for p in PERSONAS])[persona]
    u_cohort = keyed_uniform(seed, _COHORT, np.arange(n))
    u_arm = keyed_uniform(seed, _ARM, np.arange(n))
    u_offer = keyed_uniform(seed, _OFFER, np.arange(n))

    member = np.zeros(n, bool)
    self_enrol = np.full(n, np.nan)
    dropout_day = np.full(n, np.nan)
    exp_arm = np.zeros(n, np.int8)
    offer_arm = np.zeros(n, np.int8)
    offer_active = np.zeros(n, bool)
    in_offer = np.zeros(n, bool)
    last_day = first_day.copy()
    kk = np.zeros(n, np.int64)
    op_end = clock.op(persona, np.full(n, end_day - 1e-9))

    buyers = np.flatnonzero(~np.isnan(first_day))
    rec_c, rec_k, rec_d = [buyers], [np.zeros(len(buyers), np.int64)], [first_day[buyers]]

    def enrol_at(idx: np.ndarray, day: np.ndarray, k: np.ndarray) -> None:
        ok = (~member[idx]) & (day >= launch) & ~((exp_arm[idx] == 2) & (day >= t_exp))
        ok &= keyed_uniform(seed, _ENROL, idx, k) < 0.5 * enrol_p[idx]
        member[idx[ok]] = True
        self_enrol[idx[ok]] = day[ok]

    enrol_at(buyers, first_day[buyers], kk[buyers])
    u = np.full(n, np.nan)
    u[buyers] = clock.op(persona[buyers], first_day[buyers])
    active = buyers

    def cur_rate(idx: np.ndarray) -> np.ndarray:
        return rate[idx] * (1 + theta * member[idx]) * (1 + uplift[idx] * in_offer[idx])

    breakpoints = [(t_exp, "exp"), (t_off, "offer"), (t_off_end, "offer_end")]
    while active.size:
        gap = -np.log(keyed_uniform(seed, _GAP, active, kk[active] + 1))
        c = u[active] + gap / cur_rate(active)
        for b_no, (bday, what) in enumerate(breakpoints):
            lb = clock.op(persona[active], np.full(active.size, bday))
            m = (u[active] < lb) & (c >= lb)
            if not m.any():
                continue
            sub = active[m]
            if what == "exp":
                elig = ~member[sub]
                coh = elig & (u_cohort[sub] < COHORT_SHARE)
                treat = coh & (u_arm[sub] < 0.5)
                exp_arm[sub[coh]] = np.where(treat[coh], 1, 2)
                member[sub[treat]] = True
            elif what == "offer":
                lapsing = ((t_off - last_day[sub]) >= 60) & ((t_off - last_day[sub]) <= 365)
                elig = lapsing & (exp_arm[sub] == 0)
                offer_arm[sub[elig]] = np.where(u_offer[sub[elig]] < 0.5, 1, 2)
                offer_active[sub] = True
                in_offer[sub[elig & (u_offer[sub] < 0.5)]] = True
            else:
                in_offer[sub] = False
            redraw = -np.log(keyed_uniform(seed, _BP, sub, b_no))
            c[m] = lb[m] + redraw / cur_rate(sub)
        done = c > op_end[active]
        buy = active[~done]
        if not buy.size:
            break
        day = clock.cal(persona[buy], c[~done])
        kk[buy] += 1
        rec_c.append(buy)
        rec_k.append(kk[buy].copy())
        rec_d.append(day)
        u[buy] = c[~done]
        last_day[buy] = day
        enrol_at(buy, day, kk[buy])
        dead = keyed_uniform(seed, _DROP, buy, kk[buy]) < dropout[buy]
        dropout_day[buy[dead]] = day[dead]
        active = buy[~dead]

    # experiment and offer assignment for customers who never crossed the start date alive
    # (same rule as inside the loop, so the assignment is a function of history only)
    before_exp = (first_day < t_exp) & ~(self_enrol < t_exp)
    coh = before_exp & (u_cohort < COHORT_SHARE) & (exp_arm == 0)
    exp_arm[coh] = np.where(u_arm[coh] < 0.5, 1, 2)
    cust_all = np.concatenate(rec_c)
    day_all = np.concatenate(rec_d)
    last_before = pd.Series(day_all[day_all < t_off]).groupby(cust_all[day_all < t_off]).max()
    lb_full = np.full(n, np.nan)
    lb_full[last_before.index.to_numpy()] = last_before.to_numpy()
    lapse = t_off - lb_full
    elig = (lapse >= 60) & (lapse <= 365) & (exp_arm == 0) & (offer_arm == 0)
    offer_arm[elig] = np.where(u_offer[elig] < 0.5, 1, 2)
    return _World(cust_all, np.concatenate(rec_k), day_all, self_enrol, dropout_day, exp_arm,
                  offer_arm, offer_active)


def _baskets(cfg: Config, world: _World, persona: np.ndarray, cat_cdf: np.ndarray,
             spend_scale: np.ndarray, prod: pd.DataFrame, comp: np.ndarray,
             prod_cdf: dict, promo: np.ndarray) -> pd.DataFrame:
    """Order lines for every purchase of a world (keyed draws: same purchase, same basket)."""
    seed = cfg.seed
    c, k = world.cust, world.k
    n_orders = len(c)
    per = persona[c]
    extra = np.array([p.extra_lines for p in PERSONAS])[per] * spend_scale[c]
    n_lines = 1 + _poisson_ppf(keyed_uniform(seed, _LINES, c, k), extra).astype(int)
    n_lines = np.minimum(n_lines, 8)
    order_idx = np.repeat(np.arange(n_orders), n_lines)
    line_no = np.arange(len(order_idx)) - np.repeat(np.cumsum(n_lines) - n_lines, n_lines)
    lc, lk = c[order_idx], k[order_idx]
    # category from the customer's own preferences
    cat = _pick_category(cat_cdf, lc, keyed_uniform(seed, _CAT, lc, lk, line_no))
    # product within category from the persona's brand-tier preferences and popularity
    up = keyed_uniform(seed, _PROD, lc, lk, line_no)
    prod_idx = np.empty(len(lc), dtype=int)
    lper = per[order_idx]
    for (pi, ci), (members, cdf) in prod_cdf.items():
        m = (lper == pi) & (cat == ci)
        if m.any():
            prod_idx[m] = members[np.searchsorted(cdf, up[m], side="right").clip(0, len(cdf) - 1)]
    # complements bought together
    cp = comp[prod_idx]
    add = (cp >= 0) & (keyed_uniform(seed, _BUNDLE, lc, lk, line_no) < 0.45)
    order_idx = np.concatenate([order_idx, order_idx[add]])
    prod_idx = np.concatenate([prod_idx, cp[add]])
    line_no = np.concatenate([line_no, 100 + line_no[add]])
    lc, lk = c[order_idx], k[order_idx]
    pcat = prod["_cat"].to_numpy()[prod_idx]
    qty = 1 + _poisson_ppf(keyed_uniform(seed, _QTY, lc, lk, line_no),
                           CATEGORY_EXTRA_QTY[pcat]).astype(int)
    day_int = np.floor(world.day[order_idx]).astype(int).clip(0, cfg.n_days - 1)
    is_promo = promo[day_int]
    coupon_p = np.array([p.coupon for p in PERSONAS])[persona[lc]]
    coupon = keyed_uniform(seed, _COUPON, lc, lk) < np.minimum(coupon_p * np.where(is_promo, 1.6, 1.0), 0.95)
    coupon_rate = 0.05 + 0.20 * keyed_uniform(seed, _DISC, lc, lk)
    list_price = prod["price"].to_numpy()[prod_idx]
    unit_price = list_price * np.where(is_promo, 0.9, 1.0) * np.where(coupon, 1 - coupon_rate, 1.0)
    lines = pd.DataFrame({
        "_order": order_idx, "_line": line_no, "_cust": lc, "_k": lk, "_prod": prod_idx,
        "quantity": qty, "unit_price": np.round(unit_price, 2), "_list_price": list_price,
        "_coupon": coupon, "_cat": pcat,
    })
    # the same product twice in an order: merge (a basket line per product)
    if lines.duplicated(["_order", "_prod"]).any():
        lines = (lines.groupby(["_order", "_prod"], as_index=False, sort=False)
                 .agg({"_line": "first", "_cust": "first", "_k": "first", "quantity": "sum",
                       "unit_price": "first", "_list_price": "first", "_coupon": "first",
                       "_cat": "first"}))
    return lines


def _spend_in(world: _World, lines: pd.DataFrame, start: float, end: float, n: int) -> np.ndarray:
    val = (lines["quantity"] * lines["unit_price"]).groupby(lines["_order"]).sum()
    order_val = np.zeros(len(world.cust))
    order_val[val.index.to_numpy()] = val.to_numpy()
    m = (world.day >= start) & (world.day < end)
    return np.bincount(world.cust[m], weights=order_val[m], minlength=n)


def generate(n_customers: int = 20_000, seed: int = 42, **overrides) -> SyntheticData:
    """Generate a dataset. ``overrides`` set other :class:`Config` fields.

    Memory and time are linear in ``n_customers`` (see *Scale* in the module docstring): the
    events table stays integer-coded until ``tables["events"]`` is read or the dataset is written
    with :func:`write_dataset`.
    """
    cfg = Config(n_customers=n_customers, seed=seed, **overrides)
    rng = np.random.default_rng(seed)
    clock = _Clock(cfg)
    cust = _customers(cfg, rng)
    prod = _products(cfg, rng)
    comp = _bundles(cfg, prod, rng)
    promo = promo_days(cfg)
    n = cfg.n_customers
    persona = cust["_persona"].to_numpy()

    # latent customer traits
    z = rng.normal(0, 1, n)  # satisfaction
    shape = np.array([p.rate_shape for p in PERSONAS])[persona]
    mean = np.array([p.rate_mean for p in PERSONAS])[persona]
    rate = rng.gamma(shape, mean / shape)
    rate = np.maximum(rate, 0.02)
    da = np.array([p.dropout[0] for p in PERSONAS])[persona]
    db = np.array([p.dropout[1] for p in PERSONAS])[persona]
    p0 = np.clip(rng.beta(da, db), 1e-4, 0.999)
    dropout = 1 / (1 + np.exp(-(np.log(p0 / (1 - p0)) - 0.6 * z)))
    spend_scale = rng.gamma(4.0, 0.25, n)
    uplift = np.array([p.offer_uplift for p in PERSONAS])[persona] * rng.gamma(4.0, 0.25, n)
    weights = np.array([p.categories for p in PERSONAS], dtype=float)
    alpha = weights[persona] / weights[persona].sum(1, keepdims=True) * 8.0
    # below 200k customers: numpy's per-row Dirichlet (normalized by the reciprocal of a
    # sequential sum), replicated exactly in one vectorized pass; from 200k: plain normalization
    cat_pref = _dirichlet_like_numpy(rng, alpha) if n < 200_000 else _dirichlet_rows(rng, alpha)
    cat_cdf = np.cumsum(cat_pref, 1)
    # product choice tables per (persona, category)
    tiers = prod["_tier"].to_numpy()
    pcat = prod["_cat"].to_numpy()
    pop = prod["_pop"].to_numpy()
    prod_cdf = {}
    for pi, p in enumerate(PERSONAS):
        for ci in range(len(CATEGORIES)):
            members = np.flatnonzero(pcat == ci)
            w = pop[members] * np.array(p.brand_tier)[tiers[members]]
            prod_cdf[(pi, ci)] = (members, np.cumsum(w) / w.sum())

    never = rng.random(n) < np.array([p.p_never_buy for p in PERSONAS])[persona]
    first_day = cust["_signup_day"].to_numpy() + rng.exponential(6.0, n)
    first_day[never | (first_day >= cfg.n_days)] = np.nan

    actual = _simulate(cfg, clock, persona, first_day, rate, dropout, uplift, cfg.loyalty_effect)
    counterfactual = _simulate(cfg, clock, persona, first_day, rate, dropout, uplift, 0.0)
    lines = _baskets(cfg, actual, persona, cat_cdf, spend_scale, prod, comp, prod_cdf, promo)
    table_dict, extra = _assemble(cfg, rng, cust, prod, actual, lines, persona, cat_cdf, z, promo)
    # baskets use keyed draws only (no generator state), so the counterfactual world's can be
    # made after the tables: its lines are not held while the events are built
    cf_lines = _baskets(cfg, counterfactual, persona, cat_cdf, spend_scale, prod, comp, prod_cdf, promo)
    truth, facts = _truth(cfg, cust, persona, rate, dropout, uplift, z, first_day, actual,
                          counterfactual, lines, cf_lines, clock, extra)
    pid = prod["product_id"].to_numpy()
    facts["bundles"] = [[str(pid[a]), str(pid[b])] for a, b in enumerate(comp) if b >= 0]
    return SyntheticData(Tables(table_dict), truth, facts, cfg)


def _dirichlet_rows(rng: np.random.Generator, alpha: np.ndarray) -> np.ndarray:
    g = rng.gamma(alpha)
    return g / g.sum(1, keepdims=True)


def _dirichlet_like_numpy(rng: np.random.Generator, alpha: np.ndarray) -> np.ndarray:
    """``np.vstack([rng.dirichlet(a) for a in alpha])``, bit for bit, without the Python loop.

    numpy draws the gamma variates of each row in order (the same stream as one
    ``standard_gamma`` call over the C-ordered matrix) and multiplies them by the reciprocal of
    their sum accumulated left to right; requires ``alpha.max(1) >= 0.1`` in every row (numpy
    uses a stick-breaking algorithm otherwise).
    """
    if len(alpha) and (alpha.max(1) < 0.1).any():
        raise ValueError("_dirichlet_like_numpy: a row with all alpha < 0.1 (numpy draws it by "
                         "stick-breaking, which this does not replicate)")
    g = rng.standard_gamma(np.ascontiguousarray(alpha, dtype=float))
    acc = g[:, 0].copy()
    for j in range(1, g.shape[1]):
        acc += g[:, j]
    g *= (1 / acc)[:, None]
    return g


def _poisson_ppf(q: np.ndarray, mu: np.ndarray, margin: float = 1e-5) -> np.ndarray:
    """``scipy.stats.poisson.ppf(q, mu)`` for ``0 < q < 1``, the same values, ~10x faster.

    scipy inverts the continuous Poisson CDF numerically (slow) and returns ``k - 1`` or ``k``
    after checking ``pdtr(k - 1, mu) >= q``, i.e. the smallest ``k`` with ``pdtr(k, mu) >= q``
    whenever its inversion is accurate. This walks ``k = 0, 1, ...`` with the same ``pdtr`` and
    hands the rows where ``q`` lies within ``margin`` above ``pdtr(k - 1, mu)`` (where an
    inversion error could tip the rounding) back to scipy itself.
    """
    from scipy import special, stats  # imported here: scipy costs seconds at import, and
    # reading the answer key (Truth) in every chapter does not need it

    q = np.asarray(q, dtype=float)
    mu = np.broadcast_to(np.asarray(mu, dtype=float), q.shape)
    k = np.zeros(q.shape)
    lower = np.zeros(q.shape)  # pdtr(k - 1, mu); 0 for k = 0
    idx = np.arange(q.size)
    f = special.pdtr(0.0, mu)
    kk = 0
    while True:
        up = f < q[idx]  # the CDF at kk is still below q: the answer is above kk
        idx, f = idx[up], f[up]
        if not idx.size:
            break
        lower[idx] = f
        kk += 1
        k[idx] = kk
        f = special.pdtr(float(kk), mu[idx])
    near = np.flatnonzero((k > 0) & (q - lower < margin))
    if near.size:
        k[near] = stats.poisson.ppf(q[near], mu[near])
    return k


def _day_ns(days: np.ndarray) -> np.ndarray:
    """``pd.to_timedelta(days, unit="D")`` as int64 nanoseconds, bit for bit (no NaN allowed).

    pandas splits each value into whole days and a fraction rounded to 13 decimals and adds the
    two products with the nanoseconds per day; this does the same in numpy, ~10x faster.
    """
    days = np.asarray(days, dtype=float)
    if np.isnan(days).any():
        raise ValueError("_day_ns: NaN days")
    base = days.astype(np.int64)
    frac = np.round(days - base, 13)
    per_day = np.int64(86_400 * 10**9)
    return base * per_day + (frac * per_day).astype(np.int64)


def _ts_floor_s(t0: pd.Timestamp, days: np.ndarray) -> np.ndarray:
    """``(t0 + pd.to_timedelta(days, unit="D")).floor("s")`` as datetime64[ns], bit for bit."""
    ns = _day_ns(days) + t0.as_unit("ns").value
    if len(ns) and ns.min() < 0:
        raise ValueError("_ts_floor_s: times before 1970")  # floor below is for positive values
    ns -= ns % 10**9
    return ns.view("datetime64[ns]")


def _assemble(cfg: Config, rng: np.random.Generator, cust: pd.DataFrame, prod: pd.DataFrame,
              w: _World, lines: pd.DataFrame, persona: np.ndarray, cat_cdf: np.ndarray,
              z: np.ndarray, promo: np.ndarray) -> tuple[dict[str, pd.DataFrame], dict]:
    seed = cfg.seed
    n = cfg.n_customers
    t0 = cfg.t0
    # ---- orders
    tod = _time_of_day(keyed_uniform(seed, _TOD, w.cust, w.k))
    order_day = np.floor(w.day) + tod
    order = pd.DataFrame({"_order": np.arange(len(w.cust)), "_cust": w.cust, "_k": w.k,
                          "_day": order_day})
    # stable sort by (time, customer): what a stable two-key sort_values gives, without pandas'
    # factorization of every key
    order = order.iloc[np.lexsort((w.cust, order_day))].reset_index(drop=True)
    order["order_id"] = _format_ids("O", np.arange(1, len(order) + 1), 8).to_numpy(
        zero_copy_only=False)
    oid = np.empty(len(order), dtype=object)
    oid[order["_order"].to_numpy()] = order["order_id"].to_numpy()
    cust_ids = cust["customer_id"].to_numpy()
    dev_cust = cust["device"].to_numpy()
    other_dev = np.where(dev_cust == "mobile", "desktop", "mobile")
    dev = np.where(keyed_uniform(seed, _DEV, order["_cust"].to_numpy(), order["_k"].to_numpy()) < 0.85,
                   dev_cust[order["_cust"]], other_dev[order["_cust"]])
    sales_ch = np.where(dev == "mobile",
                        np.where(keyed_uniform(seed, _SCH, order["_cust"].to_numpy(),
                                               order["_k"].to_numpy()) < 0.6, "app", "mini_program"),
                        "web")
    lines["_value"] = lines["quantity"] * lines["unit_price"]
    lines["_discount"] = lines["quantity"] * (lines["_list_price"] - lines["unit_price"])
    agg = lines.groupby("_order").agg(discount=("_discount", "sum"), coupon=("_coupon", "first"),
                                      value=("_value", "sum"), items=("quantity", "sum"))
    order = order.join(agg, on="_order")
    orders = pd.DataFrame({
        "order_id": order["order_id"],
        "customer_id": cust_ids[order["_cust"]],
        "order_ts": _ts_floor_s(t0, order["_day"].to_numpy()),
        "discount_amount": order["discount"].round(2),
        "coupon_used": order["coupon"].astype(bool),
        "channel": sales_ch,
        "device": dev,
    })
    order_ts_by_idx = np.empty(len(order), dtype="datetime64[ns]")
    order_ts_by_idx[order["_order"].to_numpy()] = orders["order_ts"].to_numpy()

    # ---- order lines
    order_lines = pd.DataFrame({
        "order_id": oid[lines["_order"].to_numpy()],
        "product_id": prod["product_id"].to_numpy()[lines["_prod"].to_numpy()],
        "quantity": lines["quantity"].astype("int64"),
        "unit_price": lines["unit_price"],
    })
    l_ts = order_ts_by_idx[lines["_order"].to_numpy()]
    if len(order) < 10**8 and len(prod) < 10**5:
        # fixed-width ids ("O" + 8 digits, "P" + 5 digits) sort as their numbers: a stable
        # lexsort of (time, order position, product index) is the sort by (time, ids)
        rank = np.empty(len(order), dtype=np.int64)
        rank[order["_order"].to_numpy()] = np.arange(len(order))
        ix = np.lexsort((lines["_prod"].to_numpy(), rank[lines["_order"].to_numpy()], l_ts))
        order_lines = order_lines.iloc[ix].reset_index(drop=True)
        del rank, ix
    else:
        order_lines["_ts"] = l_ts
        order_lines = order_lines.sort_values(["_ts", "order_id", "product_id"], kind="mergesort")
        order_lines = order_lines.drop(columns="_ts").reset_index(drop=True)
    del l_ts

    # ---- returns (a line is returned 3-21 days later; not yet observed after the data end)
    ret_mult = np.array([p.returns for p in PERSONAS])[persona[lines["_cust"].to_numpy()]]
    ret_p = CATEGORY_RETURN[lines["_cat"].to_numpy()] * ret_mult
    lc, lk, lno = lines["_cust"].to_numpy(), lines["_k"].to_numpy(), lines["_line"].to_numpy()
    is_ret = keyed_uniform(seed, _RET, lc, lk, lno) < ret_p
    ret_day = keyed_uniform(seed, _RETDAY, lc, lk, lno) * 18 + 3
    ret_ts = order_ts_by_idx[lines["_order"].to_numpy()] + _day_ns(ret_day).view("m8[ns]")
    end_ts = np.datetime64(pd.Timestamp(cfg.end) + pd.Timedelta(days=1))
    keep = is_ret & (ret_ts < end_ts)
    rl = lines[keep]
    returns = pd.DataFrame({
        "customer_id": cust_ids[rl["_cust"].to_numpy()],
        "return_ts": pd.to_datetime(ret_ts[keep]).floor("s"),
        "amount": (rl["quantity"] * rl["unit_price"]).round(2).to_numpy(),
        "order_id": oid[rl["_order"].to_numpy()],
        "product_id": prod["product_id"].to_numpy()[rl["_prod"].to_numpy()],
        "quantity": rl["quantity"].astype("int64").to_numpy(),
    }).sort_values(["return_ts", "order_id", "product_id"], kind="mergesort").reset_index(drop=True)
    returns.insert(0, "return_id", [f"R{i:07d}" for i in range(1, len(returns) + 1)])

    # ---- loyalty members
    exp_treat_day = cfg.day(cfg.experiment_start)
    enrol_day = np.where(w.exp_arm == 1, exp_treat_day, w.self_enrol_day)
    enrol_day = np.where((w.exp_arm == 1) & (w.self_enrol_day < exp_treat_day), w.self_enrol_day, enrol_day)
    members = np.flatnonzero(~np.isnan(enrol_day))
    order_val = np.zeros(len(w.cust))
    v = lines.groupby("_order")["_value"].sum()
    order_val[v.index.to_numpy()] = v.to_numpy()
    year_start = cfg.n_days - 365
    trailing = np.bincount(w.cust[w.day >= year_start], weights=order_val[w.day >= year_start],
                           minlength=n)
    after = w.day >= enrol_day[w.cust]
    earned = np.bincount(w.cust[after], weights=order_val[after], minlength=n)
    gold, black = cfg.tier_thresholds
    tier = np.where(trailing >= black, "black", np.where(trailing >= gold, "gold", "silver"))
    loyalty = pd.DataFrame({
        "customer_id": cust_ids[members],
        "enrolled_at": (t0 + pd.to_timedelta(enrol_day[members], unit="D")).floor("s"),
        "tier": tier[members],
        "points_earned": np.floor(earned[members]),
        "points_redeemed": np.floor(earned[members] * rng.beta(2, 5, len(members))),
    }).sort_values("customer_id").reset_index(drop=True)

    # ---- experiments
    exp_rows = []
    for exp_id, arm_arr, start in (("loyalty_holdout_2025", w.exp_arm, cfg.experiment_start),
                                   ("retention_offer_2025", w.offer_arm, cfg.offer_start)):
        idx = np.flatnonzero(arm_arr > 0)
        exp_rows.append(pd.DataFrame({
            "experiment_id": exp_id,
            "customer_id": cust_ids[idx],
            "arm": np.where(arm_arr[idx] == 1, "treatment", "holdout"),
            "assigned_at": pd.Timestamp(start),
        }))
    experiments = pd.concat(exp_rows, ignore_index=True)

    # ---- surveys: a share of orders triggers a survey answered two days later
    ord_c = order["_cust"].to_numpy()
    s_mask = keyed_uniform(seed, _SURVEY, ord_c, order["_k"].to_numpy()) < cfg.survey_rate
    s_c = ord_c[s_mask]
    s_ts = orders["order_ts"].to_numpy()[s_mask] + np.timedelta64(2, "D")
    ok = s_ts < end_ts
    s_c, s_ts = s_c[ok], s_ts[ok]
    shift = np.array([p.nps_shift for p in PERSONAS])[persona[s_c]]
    nps = np.clip(np.round(7.3 + 1.7 * z[s_c] + shift + rng.normal(0, 1.3, len(s_c))), 0, 10)
    csat = np.clip(np.round(3.9 + 0.6 * z[s_c] + 0.2 * shift + rng.normal(0, 0.7, len(s_c))), 1, 5)
    surveys = pd.DataFrame({"customer_id": cust_ids[s_c], "survey_ts": s_ts,
                            "nps": nps.astype("int64"), "csat": csat.astype("int64")})

    # ---- events (coded; strings are made when the table is written or first used)
    events, n_events = _events(cfg, rng, cust, prod, w, lines, order, orders, persona, cat_cdf)

    # ---- customers (with missing values and a few impossible ages, as exports have)
    customers = cust[["customer_id", "signup_date", "gender", "age", "region", "device",
                      "acquisition_channel"]].copy()
    customers["signup_date"] = customers["signup_date"].dt.floor("s")
    for col, share in (("gender", 0.03), ("age", 0.06), ("region", 0.02), ("device", 0.01)):
        miss = rng.random(n) < share
        customers.loc[miss, col] = None
    bad_age = rng.random(n) < 0.002
    customers.loc[bad_age, "age"] = rng.choice([0, 150, 999], size=int(bad_age.sum()))

    # ---- dirty duplicates
    dup = rng.random(len(order_lines)) < cfg.duplicate_line_rate
    order_lines = pd.concat([order_lines, order_lines[dup]]).sort_index(kind="mergesort")
    order_lines = order_lines.reset_index(drop=True)
    dup_e = rng.random(n_events) < cfg.duplicate_event_rate
    # a duplicate follows its original (as concat + stable sort by the original row number)
    events.rows = np.repeat(np.arange(n_events, dtype=np.int32 if n_events < 2**31 else np.int64),
                            np.where(dup_e, 2, 1))
    del dup_e

    products = prod[["product_id", "product_name", "category", "brand", "price"]].copy()
    tables = {"customers": customers, "products": products, "orders": orders,
              "order_lines": order_lines, "returns": returns, "events": events,
              "loyalty": loyalty, "experiments": experiments, "surveys": surveys}
    extra = {"order_value": order_val}
    return tables, extra


#: values of the events table's coded columns (codes index these tuples)
EVENT_TYPES = ("view", "cart", "favourite", "purchase")
EVENT_CHANNELS = ("search", "social", "livestream", "direct")
#: rows per Parquet row group (and per chunk when the events table is built or written)
EVENT_CHUNK = 1 << 20


@dataclass
class EventLog:
    """The events table in compact, integer-coded form (about 23 bytes a row instead of ~400).

    Row ``r`` of the table is source row ``rows[r]`` of the coded columns (``rows`` repeats the
    exact duplicates). :meth:`frame` builds the pandas table (object strings, as written);
    :meth:`arrow_chunks` yields it as Arrow tables of :data:`EVENT_CHUNK` rows for writing.
    """

    customer_ids: np.ndarray  # object array of all customer ids (the dictionary)
    product_ids: np.ndarray  # object array of all product ids
    cust: np.ndarray  # per source row: customer index
    ts: np.ndarray  # per source row: event time, datetime64[ns] (floored to the second)
    etype: np.ndarray  # per source row: index into EVENT_TYPES
    session: np.ndarray  # per source row: session number (session_id "S" + 8 digits)
    prod: np.ndarray  # per source row: product index
    device: np.ndarray  # per source row: index into DEVICES
    channel: np.ndarray  # per source row: index into EVENT_CHANNELS
    rows: np.ndarray  # table row -> source row

    def __len__(self) -> int:
        return len(self.rows)

    def _columns(self, rows: np.ndarray, arrow: bool) -> dict[str, object]:
        sess = self.session[rows]
        if arrow:
            def dict_take(values: object, codes: np.ndarray) -> pa.Array:
                return values.take(pa.array(codes))  # type: ignore[attr-defined]
            return {
                "customer_id": dict_take(self._arrow_dict("customer_ids"), self.cust[rows]),
                "event_ts": pa.array(self.ts[rows], pa.timestamp("ns")),
                "event_type": dict_take(self._arrow_dict("etypes"), self.etype[rows]),
                "session_id": _format_ids("S", sess, 8),
                "product_id": dict_take(self._arrow_dict("product_ids"), self.prod[rows]),
                "device": dict_take(self._arrow_dict("devices"), self.device[rows]),
                "channel": dict_take(self._arrow_dict("channels"), self.channel[rows]),
            }
        return {
            "customer_id": self.customer_ids[self.cust[rows]],
            "event_ts": self.ts[rows],
            "event_type": np.array(EVENT_TYPES, dtype=object)[self.etype[rows]],
            "session_id": _format_ids("S", sess, 8).to_numpy(zero_copy_only=False),
            "product_id": self.product_ids[self.prod[rows]],
            "device": np.array(DEVICES, dtype=object)[self.device[rows]],
            "channel": np.array(EVENT_CHANNELS, dtype=object)[self.channel[rows]],
        }

    def _arrow_dict(self, name: str) -> pa.Array:
        cache = self.__dict__.setdefault("_dicts", {})
        if name not in cache:
            values = {"customer_ids": self.customer_ids, "product_ids": self.product_ids,
                      "etypes": EVENT_TYPES, "devices": DEVICES, "channels": EVENT_CHANNELS}[name]
            cache[name] = pa.array(list(values), pa.string())
        return cache[name]

    def frame(self) -> pd.DataFrame:
        """The events table as a pandas DataFrame (object string columns)."""
        return pd.DataFrame(self._columns(self.rows, arrow=False))

    def arrow_chunks(self, schema: pa.Schema) -> "Iterator[pa.Table]":
        """The table in consecutive Arrow tables of :data:`EVENT_CHUNK` rows (the last shorter)."""
        for a in range(0, len(self.rows), EVENT_CHUNK):
            cols = self._columns(self.rows[a: a + EVENT_CHUNK], arrow=True)
            yield pa.Table.from_arrays([cols[f.name] for f in schema], schema=schema)


def _pick_category(cat_cdf: np.ndarray, cust: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Category of each draw: the first ``j`` with ``cat_cdf[cust, j] >= u`` (capped at the last).

    Counted a chunk of rows at a time, so the (rows x categories) comparison never exists whole.
    """
    out = np.empty(len(u), dtype=np.int8)
    for a in range(0, len(u), EVENT_CHUNK):
        b = a + EVENT_CHUNK
        out[a:b] = np.minimum((cat_cdf[cust[a:b]] < u[a:b, None]).sum(1), len(CATEGORIES) - 1)
    return out


def _format_ids(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    """``f"{prefix}{x:0{width}d}"`` for each non-negative integer ``x``, as an Arrow string array.

    Built with array arithmetic (no Python string per row); numbers wider than ``width`` keep
    all their digits, as the format does.
    """
    x = np.asarray(numbers, dtype=np.int64)
    if x.size and x.min() < 0:
        raise ValueError(f"_format_ids: negative number {int(x.min())}")
    nd = np.full(len(x), 1, dtype=np.int64)
    for k in range(1, 19):
        nd += x >= 10 ** k
    nd = np.maximum(nd, width)
    pre = prefix.encode("utf-8")
    lengths = len(pre) + nd
    offsets = np.zeros(len(x) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    buf = np.empty(int(offsets[-1]), dtype=np.uint8)
    for j, byte in enumerate(pre):
        buf[offsets[:-1] + j] = byte
    end = offsets[1:] - 1
    rest = x.copy()
    for pos in range(int(nd.max()) if len(x) else 0):
        ok = pos < nd
        buf[end[ok] - pos] = 48 + rest[ok] % 10
        rest //= 10
    typ = pa.string() if offsets[-1] < 2**31 - 1 else pa.large_string()
    off = offsets.astype(np.int32) if typ == pa.string() else offsets
    return pa.Array.from_buffers(typ, len(x), [None, pa.py_buffer(off), pa.py_buffer(buf)])


def _events(cfg: Config, rng: np.random.Generator, cust: pd.DataFrame, prod: pd.DataFrame,
            w: _World, lines: pd.DataFrame, order: pd.DataFrame, orders: pd.DataFrame,
            persona: np.ndarray, cat_cdf: np.ndarray) -> tuple[EventLog, int]:
    """Sessions: one before every order (views, carts, purchases) plus browsing without buying.

    Returns the (not yet de-duplicated) events as a coded :class:`EventLog` and its row count.
    Columns are integer codes and arrays of 4-8 bytes a row; strings are made only when the table
    is written or materialized.
    """
    n = cfg.n_customers
    t0 = cfg.t0
    pcat = prod["_cat"].to_numpy()
    by_cat = [np.flatnonzero(pcat == c) for c in range(len(CATEGORIES))]
    cat_pop = [prod["_pop"].to_numpy()[m] / prod["_pop"].to_numpy()[m].sum() for m in by_cat]
    dev_code = pd.Categorical(cust["device"].to_numpy(), categories=DEVICES).codes.astype(np.int8)
    if (dev_code < 0).any():
        raise ValueError("_events: a customer device outside DEVICES")
    ch_code = pd.Categorical(cust["acquisition_channel"].to_numpy(), categories=CHANNELS).codes
    direct = EVENT_CHANNELS.index("direct")
    # acquisition channels search/social/livestream keep their name as traffic source
    traffic = np.array([EVENT_CHANNELS.index(c) if c in EVENT_CHANNELS else direct
                        for c in CHANNELS], dtype=np.int8)[ch_code]

    # purchase sessions: start 2-40 minutes before the order
    o_start = order["_day"].to_numpy() - (2 + 38 * rng.random(len(order))) / 1440
    # browsing sessions while active, then a fading tail of 60 days after dropping out
    signup = cust["_signup_day"].to_numpy()
    end_day = float(cfg.n_days)
    stop = np.where(np.isnan(w.dropout_day), end_day, np.minimum(w.dropout_day + 60, end_day))
    has_bought = np.zeros(n, bool)
    has_bought[w.cust] = True
    # never-buyers browse for a few months after signing up
    stop = np.where(has_bought, stop, np.minimum(signup + 120, end_day))
    browse = np.array([p.browse for p in PERSONAS])[persona]
    span_years = np.maximum(stop - signup, 0) / 365.25
    n_sess = rng.poisson(0.6 * browse * span_years * np.where(has_bought, 1.0, 0.5))
    b_cust = np.repeat(np.arange(n, dtype=np.int32), n_sess)
    b_start = signup[b_cust] + rng.random(len(b_cust)) * (stop - signup)[b_cust]
    del stop, span_years

    # --- per-session view/cart/favourite events
    n_ord = len(order)
    s_cust = np.concatenate([order["_cust"].to_numpy().astype(np.int32), b_cust])
    s_start = np.concatenate([o_start, b_start])
    del o_start, b_start, b_cust
    n_s = len(s_cust)
    n_views = rng.geometric(0.5, n_s)
    n_v = int(n_views.sum())
    ev_s = np.repeat(np.arange(n_s, dtype=np.int32), n_views)
    ev_c = s_cust[ev_s]
    vcat = _pick_category(cat_cdf, ev_c, rng.random(n_v))
    vprod = np.empty(n_v, dtype=np.int32)
    for ci in range(len(CATEGORIES)):
        m = vcat == ci
        if m.any():
            vprod[m] = rng.choice(by_cat[ci], size=int(m.sum()), p=cat_pop[ci])
    del vcat, m
    starts = np.cumsum(n_views) - n_views
    offs = np.arange(n_v, dtype=np.int64)
    offs -= np.repeat(starts, n_views)
    del starts, n_views
    v_day = s_start[ev_s] + offs * rng.uniform(0.3, 3.0, n_v) / 1440
    del offs, s_start
    # abandoned carts and favourites in browsing sessions
    cart = (ev_s >= n_ord) & (rng.random(n_v) < 0.16)
    fav = rng.random(n_v) < 0.04
    # purchase sessions: view + cart + purchase of every bought product
    pos = np.empty(n_ord, dtype=np.int32)
    pos[order["_order"].to_numpy()] = np.arange(n_ord, dtype=np.int32)
    l_sess = pos[lines["_order"].to_numpy()]
    l_day = order["_day"].to_numpy()[l_sess]
    l_cust = lines["_cust"].to_numpy().astype(np.int32)
    l_prod = lines["_prod"].to_numpy().astype(np.int32)
    n_l = len(l_sess)
    # row blocks in the order of the original frames: views, carts, favourites, then
    # view/cart/purchase of every line
    etype = np.concatenate([np.zeros(n_v, np.int8), np.full(int(cart.sum()), 1, np.int8),
                            np.full(int(fav.sum()), 2, np.int8),
                            np.repeat(np.array([0, 1, 3], np.int8), n_l)])
    e_s = np.concatenate([ev_s, ev_s[cart], ev_s[fav], l_sess, l_sess, l_sess])
    del ev_s
    e_c = np.concatenate([ev_c, ev_c[cart], ev_c[fav], l_cust, l_cust, l_cust])
    del ev_c, l_cust
    e_p = np.concatenate([vprod, vprod[cart], vprod[fav], l_prod, l_prod, l_prod])
    del vprod, l_prod
    e_day = np.concatenate([v_day, v_day[cart] + 0.5 / 1440, v_day[fav] + 0.3 / 1440,
                            l_day - 1.5 / 1440, l_day - 1.0 / 1440, l_day - 0.0 / 1440])
    del v_day, l_day, cart, fav
    keep = (e_day >= 0) & (e_day < end_day)
    if not keep.all():
        e_day, e_s, e_c, e_p, etype = (x[keep] for x in (e_day, e_s, e_c, e_p, etype))
    del keep
    other = np.where(dev_code == DEVICES.index("mobile"), DEVICES.index("desktop"),
                     DEVICES.index("mobile")).astype(np.int8)
    s_dev = np.where(rng.random(n_s) < 0.85, dev_code[s_cust], other[s_cust])
    s_dev[:n_ord] = pd.Categorical(orders["device"].to_numpy(), categories=DEVICES).codes
    s_ch = np.where(rng.random(n_s) < 0.5, traffic[s_cust], np.int8(direct)).astype(np.int8)
    del s_cust
    # sort by (time, session), stable: the same order as a stable two-key sort of the frame
    order_ix = np.lexsort((e_s, e_day))
    e_day = e_day[order_ix]
    ts = np.empty(len(e_day), dtype="datetime64[ns]")
    for a in range(0, len(e_day), EVENT_CHUNK):
        ts[a: a + EVENT_CHUNK] = _ts_floor_s(t0, e_day[a: a + EVENT_CHUNK])
    del e_day
    e_s = e_s[order_ix]
    log = EventLog(
        customer_ids=cust["customer_id"].to_numpy(), product_ids=prod["product_id"].to_numpy(),
        cust=e_c[order_ix], ts=ts, etype=etype[order_ix], session=e_s,
        prod=e_p[order_ix].astype(np.int16 if len(prod) < 2**15 else np.int32),
        device=s_dev[e_s].astype(np.int8), channel=s_ch[e_s],
        rows=np.arange(0))  # set by the caller (with the duplicates)
    return log, len(ts)


def _truth(cfg: Config, cust: pd.DataFrame, persona: np.ndarray, rate: np.ndarray,
           dropout: np.ndarray, uplift: np.ndarray, z: np.ndarray, first_day: np.ndarray,
           actual: _World, cf: _World, lines: pd.DataFrame, cf_lines: pd.DataFrame,
           clock: _Clock, extra: dict) -> tuple[pd.DataFrame, dict]:
    n = cfg.n_customers
    t0 = cfg.t0
    t_exp = cfg.day(cfg.experiment_start)
    end_day = float(cfg.n_days)
    t_off = cfg.day(cfg.offer_start)

    def ts(days: np.ndarray) -> pd.Series:
        return pd.Series(t0 + pd.to_timedelta(days, unit="D")).dt.floor("s")

    # true change in the probability of buying within the offer window if offered (active only)
    member_at_offer = (actual.self_enrol_day < t_off) | (actual.exp_arm == 1)
    r0 = rate * (1 + cfg.loyalty_effect * member_at_offer)
    d_op = clock.op(persona, np.full(n, t_off + cfg.offer_days)) - clock.op(persona, np.full(n, t_off))
    alive_off = (~np.isnan(first_day)) & (first_day < t_off) & ~(actual.dropout_day < t_off)
    p_buy_uplift = np.where(alive_off, np.exp(-r0 * d_op) - np.exp(-r0 * (1 + uplift) * d_op), 0.0)

    truth = pd.DataFrame({
        "customer_id": cust["customer_id"].to_numpy(),
        "persona": np.array(PERSONA_NAMES)[persona],
        "purchase_rate": rate.round(4),
        "dropout_prob": dropout.round(4),
        "satisfaction": z.round(3),
        "first_purchase_ts": ts(first_day),
        "dropout_ts": ts(actual.dropout_day),
        "offer_uplift": uplift.round(4),
        "offer_buy_prob_uplift": p_buy_uplift.round(5),
    })

    # loyalty effects: actual world vs the world without the program's effect
    s1 = _spend_in(actual, lines, t_exp, end_day, n)
    s0 = _spend_in(cf, cf_lines, t_exp, end_day, n)
    o1 = np.bincount(actual.cust[actual.day >= t_exp], minlength=n)
    o0 = np.bincount(cf.cust[cf.day >= t_exp], minlength=n)
    treat = actual.exp_arm == 1
    self_members = actual.self_enrol_day < t_exp
    # members' first 180 days after joining at checkout (observational target)
    enrol = actual.self_enrol_day
    win1 = _spend_after(actual, lines, enrol, 180.0, n)
    win0 = _spend_after(cf, cf_lines, enrol, 180.0, n)
    has180 = self_members & (enrol + 180 <= end_day)
    facts = {
        "generator": "helpers.synth",
        "seed": cfg.seed,
        "n_customers": n,
        "data_start": cfg.start,
        "data_end": cfg.end,
        "timezone": "Asia/Shanghai",
        "currency": "CNY",
        "personas": {p.name: p.label for p in PERSONAS},
        "loyalty_launch": cfg.loyalty_launch,
        "loyalty_rate_multiplier": 1 + cfg.loyalty_effect,
        "experiment": {
            "experiment_id": "loyalty_holdout_2025",
            "start": cfg.experiment_start,
            "end": cfg.end,
            "scale": "relative change in spend per customer over the experiment window "
                     "(treatment arm, actual vs. the same customers without the program)",
            "true_effect": float(s1[treat].sum() / s0[treat].sum() - 1),
            "true_effect_orders": float(o1[treat].sum() / o0[treat].sum() - 1),
            "true_effect_abs_spend_per_customer": float((s1[treat] - s0[treat]).mean()),
            "n_treatment": int(treat.sum()),
            "n_holdout": int((actual.exp_arm == 2).sum()),
        },
        "members_att": {
            "scale": "relative change in spend per member in the 180 days after joining at "
                     "checkout (members who joined before the experiment and have 180 days of data)",
            "true_effect": float(win1[has180].sum() / win0[has180].sum() - 1),
            "n_members": int(has180.sum()),
            "true_effect_2025h2": float(s1[self_members].sum() / s0[self_members].sum() - 1),
        },
        "retention_offer": {
            "experiment_id": "retention_offer_2025",
            "start": cfg.offer_start,
            "days": cfg.offer_days,
            "scale": "absolute change in the probability of at least one purchase within the "
                     "offer window (per customer: truth column offer_buy_prob_uplift)",
            "mean_true_uplift_offered": float(p_buy_uplift[actual.offer_arm > 0].mean()),
        },
        "persona_offer_uplift": {p.name: p.offer_uplift for p in PERSONAS},
        "tier_thresholds": {"gold": cfg.tier_thresholds[0], "black": cfg.tier_thresholds[1]},
    }
    return truth, facts


def _spend_after(w: _World, lines: pd.DataFrame, start: np.ndarray, days: float, n: int) -> np.ndarray:
    val = (lines["quantity"] * lines["unit_price"]).groupby(lines["_order"]).sum()
    order_val = np.zeros(len(w.cust))
    order_val[val.index.to_numpy()] = val.to_numpy()
    s = start[w.cust]
    m = (w.day >= s) & (w.day < s + days)
    return np.bincount(w.cust[m], weights=order_val[m], minlength=n)


# --------------------------------------------------------------------------------------------
# Truth access and writing
# --------------------------------------------------------------------------------------------
class Truth:
    """Planted truth of a synthetic dataset (see the module docstring)."""

    def __init__(self, customers: pd.DataFrame, facts: dict) -> None:
        self.customers = customers
        self.facts = facts

    @classmethod
    def load(cls, folder: str | Path) -> "Truth":
        folder = Path(folder)
        customers = pd.read_parquet(folder / "customers.parquet")
        facts = json.loads((folder / "facts.json").read_text(encoding="utf-8"))
        return cls(customers, facts)

    def alive_at(self, ts: str | pd.Timestamp) -> pd.Series:
        """Active at ``ts`` (boolean, indexed by customer_id) for customers who had bought by then.

        Customers whose first purchase is after ``ts`` (or who never bought) are not included:
        "alive" is only defined for customers.
        """
        ts = pd.Timestamp(ts)
        c = self.customers
        bought = c["first_purchase_ts"].notna() & (c["first_purchase_ts"] <= ts)
        alive = c["dropout_ts"].isna() | (c["dropout_ts"] > ts)
        return pd.Series(alive[bought].to_numpy(), index=c.loc[bought, "customer_id"].to_numpy(),
                         name="alive")

    def persona(self) -> pd.Series:
        return self.customers.set_index("customer_id")["persona"]


DATASET_YAML = """\
# The default synthetic dataset of the handbook, generated by helpers.synth (see its docstring).
# Regenerate with: python -m helpers.synth --customers {n} --seed {seed} --out data/synthetic
name: synthetic
description: >-
  Synthetic Chinese online shop, {start} to {end}: {n} customers in six latent personas,
  buy-till-you-die purchasing with seasonality, baskets, returns, coupons, a behavioural funnel,
  a loyalty program with self-selection and a randomized holdout, a retention-offer experiment
  and NPS/CSAT surveys. Planted truth in truth/.
format: tables
timezone: Asia/Shanghai
currency: CNY
analysis_date: "{end}"
data_end: "{end}"
tables:
  customers: customers.parquet
  products: products.parquet
  orders: orders.parquet
  order_lines: order_lines.parquet
  returns: returns.parquet
  events: events.parquet
  loyalty: loyalty.parquet
  experiments: experiments.parquet
  surveys: surveys.parquet
truth: truth
rules:
  exact_duplicate: set_aside
  out_of_range: repair
"""


def write_dataset(data: SyntheticData, out: str | Path) -> Path:
    """Write tables (Parquet), truth and a dataset.yaml into ``out``."""
    out = Path(out)
    (out / "truth").mkdir(parents=True, exist_ok=True)
    tables = data.tables
    for name in tables:
        t = tables.raw(name) if isinstance(tables, Tables) else tables[name]
        if isinstance(t, EventLog):
            _write_event_log(t, out / f"{name}.parquet")
        else:
            t.to_parquet(out / f"{name}.parquet", index=False, compression="zstd")
    data.truth_customers.to_parquet(out / "truth" / "customers.parquet", index=False,
                                    compression="zstd")
    (out / "truth" / "facts.json").write_text(json.dumps(data.facts, indent=2, sort_keys=True),
                                              encoding="utf-8")
    cfg = data.config
    (out / "dataset.yaml").write_text(
        DATASET_YAML.format(n=cfg.n_customers, seed=cfg.seed, start=cfg.start, end=cfg.end),
        encoding="utf-8")
    return out


def _write_event_log(log: EventLog, path: Path) -> None:
    """Write the events in row groups of :data:`EVENT_CHUNK` rows.

    The file is the one ``log.frame().to_parquet(path, index=False, compression="zstd")`` writes
    (same schema and pandas metadata, same row groups), without building the whole frame.
    """
    head = pd.DataFrame(log._columns(log.rows[:1000], arrow=False))
    schema = pa.Schema.from_pandas(head, preserve_index=False)
    with pq.ParquetWriter(path, schema, compression="zstd") as writer:
        for chunk in log.arrow_chunks(schema):
            writer.write_table(chunk)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Generate the synthetic dataset with planted truth.")
    ap.add_argument("--customers", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--out", default="data/synthetic")
    a = ap.parse_args(argv)
    data = generate(a.customers, a.seed)
    path = write_dataset(data, a.out)
    sizes = ", ".join(f"{k}={data.tables.n_rows(k):,}" for k in data.tables)
    print(f"wrote {path}: {sizes}")
    print(json.dumps({k: data.facts[k] for k in ("experiment", "members_att")}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
