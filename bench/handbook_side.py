"""The handbook's side of the peer comparison (runs in the project venv, in its own process).

``python -m bench.handbook_side --input DIR --out DIR [--repeat 3] ...`` reads the input files
written by :func:`bench.peers.prepare_inputs` (``transactions.parquet``: customer_id, order_ts,
amount; ``baskets.parquet``: order_id, product_id), runs

* :func:`helpers.clv.rfm_summary` and :func:`helpers.clv.calibration_holdout` (weeks),
* :class:`helpers.clv.BetaGeoModel` on the calibration summary,
* :func:`helpers.recommend.basket_matrix` + :func:`helpers.recommend.pair_rules`,

times the calls only (not the file reads), and writes the outputs as Parquet plus
``timings.json``. ``--repeat`` repeats each preparation call and records every time (the first
call and the best).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd


def _timed(fn, repeat: int):
    times, out = [], None
    for _ in range(max(1, repeat)):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return out, times


def main(argv: list[str] | None = None) -> int:
    from helpers import clv
    from helpers import recommend as rc

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--input", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--observation-end", required=True)
    ap.add_argument("--calibration-end", required=True)
    ap.add_argument("--min-support", type=float, required=True)
    ap.add_argument("--min-confidence", type=float, required=True)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args(argv)
    inp, out = Path(a.input), Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    tx = pd.read_parquet(inp / "transactions.parquet")
    timings: dict[str, list[float]] = {}

    summ, timings["summary"] = _timed(lambda: clv.rfm_summary(
        tx, observation_end=a.observation_end, time_unit="W"), a.repeat)
    summ.reset_index().to_parquet(out / "summary.parquet")
    ch, timings["calibration"] = _timed(lambda: clv.calibration_holdout(
        tx, calibration_end=a.calibration_end, observation_end=a.observation_end,
        time_unit="W"), a.repeat)
    ch.reset_index().to_parquet(out / "calibration.parquet")

    bg, timings["bgnbd_fit"] = _timed(lambda: clv.BetaGeoModel().fit(
        ch["frequency_cal"], ch["recency_cal"], ch["T_cal"]), 1)
    fit = {"params": bg.params_, "log_likelihood": bg.log_likelihood_,
           "n_customers": bg.n_customers_, "converged": bg.converged_}

    baskets = pd.read_parquet(inp / "baskets.parquet")

    def mine():
        b, _, items = rc.basket_matrix(baskets)
        return rc.pair_rules(b, items, min_support=a.min_support, min_count=1,
                             min_confidence=a.min_confidence), b.shape[0]

    (rules, n_baskets), timings["pair_rules"] = _timed(mine, a.repeat)
    rules[["antecedent", "consequent", "support", "confidence", "lift"]].astype(
        {"antecedent": str, "consequent": str}).to_parquet(out / "rules.parquet")
    (out / "timings.json").write_text(json.dumps(
        {"timings": timings, "fit": fit, "n_baskets": int(n_baskets)}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
