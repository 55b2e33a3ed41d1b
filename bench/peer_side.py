"""The peers' side of the comparison: runs in ``bench/.venv-peers`` (lifetimes, mlxtend).

Standalone on purpose (it must not import the handbook, whose venv it does not share):
``bench/.venv-peers/bin/python bench/peer_side.py --input DIR --handbook DIR --out DIR ...``
reads the same input files as :mod:`bench.handbook_side` and runs

* ``lifetimes.utils.summary_data_from_transaction_data`` and
  ``calibration_and_holdout_data`` with the option mapping that reproduces the handbook's
  conventions (see :mod:`bench.peers`): ``freq="D", freq_multiplier=7`` (weeks = days / 7, as
  the handbook's ``time_unit="W"``; ``freq="W"`` would count calendar-week periods instead), and
  calibration / observation ends passed as the *last nanosecond* of the end day (lifetimes
  compares raw timestamps with the end, so a plain date would move purchases made later on the
  calibration-end day into the holdout);
* ``lifetimes.BetaGeoFitter`` on the handbook's calibration summary (the same numbers);
* ``mlxtend.frequent_patterns.apriori`` (``max_len=2``, the same ``min_support``,
  ``low_memory=True``: the default ``low_memory=False`` materialises a baskets x candidate
  pairs x 2 boolean array, about 24 GB for the 20k default data and 120 GB at 100k) and
  ``association_rules`` (metric confidence, the same minimum) on the same baskets, one-hot
  encoded as a boolean DataFrame (orders x products).

Only the calls are timed; outputs go to Parquet plus ``timings.json``.
"""
from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd


def _end_of_day(day: str) -> pd.Timestamp:
    return pd.Timestamp(day).normalize() + pd.Timedelta(days=1) - pd.Timedelta(1, "ns")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--input", required=True)
    ap.add_argument("--handbook", required=True, help="output folder of bench.handbook_side")
    ap.add_argument("--out", required=True)
    ap.add_argument("--observation-end", required=True)
    ap.add_argument("--calibration-end", required=True)
    ap.add_argument("--min-support", type=float, required=True)
    ap.add_argument("--min-confidence", type=float, required=True)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--parts", default="summary,calibration,fit,rules")
    a = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    import lifetimes
    import mlxtend
    from lifetimes import BetaGeoFitter
    from lifetimes.utils import calibration_and_holdout_data, summary_data_from_transaction_data
    from mlxtend.frequent_patterns import apriori, association_rules

    inp, out = Path(a.input), Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    parts = set(a.parts.split(","))
    timings: dict[str, list[float]] = {}
    info: dict[str, object] = {"versions": {"lifetimes": lifetimes.__version__,
                                            "mlxtend": mlxtend.__version__,
                                            "pandas": pd.__version__, "numpy": np.__version__}}

    def timed(name, fn):
        result = None
        timings[name] = []
        for _ in range(max(1, a.repeat)):
            t0 = time.perf_counter()
            result = fn()
            timings[name].append(time.perf_counter() - t0)
        return result

    tx = pd.read_parquet(inp / "transactions.parquet")
    if "summary" in parts:
        s = timed("summary", lambda: summary_data_from_transaction_data(
            tx, "customer_id", "order_ts", monetary_value_col="amount",
            observation_period_end=a.observation_end, freq="D", freq_multiplier=7))
        s.reset_index().to_parquet(out / "summary.parquet")
    if "calibration" in parts:
        c = timed("calibration", lambda: calibration_and_holdout_data(
            tx, "customer_id", "order_ts", calibration_period_end=_end_of_day(a.calibration_end),
            observation_period_end=_end_of_day(a.observation_end), freq="D", freq_multiplier=7,
            monetary_value_col="amount"))
        c.reset_index().to_parquet(out / "calibration.parquet")
    if "fit" in parts:
        ch = pd.read_parquet(Path(a.handbook) / "calibration.parquet")
        try:
            t0 = time.perf_counter()
            bg = BetaGeoFitter(penalizer_coef=0.0).fit(ch["frequency_cal"], ch["recency_cal"],
                                                       ch["T_cal"])
            timings["bgnbd_fit"] = [time.perf_counter() - t0]
            info["fit"] = {"params": {k: float(v) for k, v in bg.params_.items()},
                           "mean_log_likelihood_scaled": -float(bg._negative_log_likelihood_),
                           "time_scale": float(bg._scale)}
        except Exception as exc:  # noqa: BLE001 - a peer failure is a result, not a crash
            timings["bgnbd_fit"] = [time.perf_counter() - t0]
            info["fit"] = {"error": f"{type(exc).__name__}: {exc}".strip()}
    if "rules" in parts:
        baskets = pd.read_parquet(inp / "baskets.parquet")

        def encode():
            r, orders = pd.factorize(baskets["order_id"], sort=True)
            c, items = pd.factorize(baskets["product_id"], sort=True)
            arr = np.zeros((len(orders), len(items)), dtype=bool)
            arr[r, c] = True
            return pd.DataFrame(arr, columns=[str(i) for i in items])

        onehot = timed("rules_encode", encode)

        def mine():
            freq = apriori(onehot, min_support=a.min_support, use_colnames=True, max_len=2,
                           low_memory=True)
            return association_rules(freq, num_itemsets=len(onehot), metric="confidence",
                                     min_threshold=a.min_confidence)

        rules = timed("rules_mine", mine)
        rules = rules[(rules["antecedents"].map(len) == 1) & (rules["consequents"].map(len) == 1)]
        pd.DataFrame({"antecedent": rules["antecedents"].map(lambda s: next(iter(s))),
                      "consequent": rules["consequents"].map(lambda s: next(iter(s))),
                      "support": rules["support"].to_numpy(float),
                      "confidence": rules["confidence"].to_numpy(float),
                      "lift": rules["lift"].to_numpy(float)}).to_parquet(out / "rules.parquet")
        info["n_baskets"] = int(len(onehot))
    (out / "timings.json").write_text(json.dumps({"timings": timings, **info}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
