"""Peer comparison: the handbook vs ``lifetimes`` and ``mlxtend`` on the same files.

The peers are installed only in ``bench/.venv-peers`` (``make bench-peers-venv``, from the pinned
``bench/requirements-peers.txt``); they are never runtime dependencies of the handbook.

Steps (each side in its own process, outputs compared here in the project venv):

1. :func:`prepare_inputs` (in its own measured process: ``python -m bench.peers --prepare``)
   loads the orders, order lines and products of a benchmark dataset through the handbook's
   loader (the same cleaning as the chapters), keeps **whole customers** up to a number of
   transaction lines (``max_lines``, default 1,000,000: the customers taken in a seeded random
   order, :func:`select_whole_customers`) and writes ``transactions.parquet`` (one row per
   order: customer_id, order_ts, amount) and ``baskets.parquet`` (order_id, product_id of every
   kept order line of those same orders).
2. :mod:`bench.handbook_side` (project venv) and :mod:`bench.peer_side` (peer venv) run.
3. :func:`compare` checks the results and builds the table of :func:`bench.report.peers_markdown`.

Option mapping that makes lifetimes compute the handbook's numbers (``time_unit="W"``):
``summary_data_from_transaction_data(tx, "customer_id", "order_ts", monetary_value_col="amount",
observation_period_end=<day>, freq="D", freq_multiplier=7)`` and
``calibration_and_holdout_data(..., calibration_period_end=<cal day 23:59:59.999999999>,
observation_period_end=<end day 23:59:59.999999999>, freq="D", freq_multiplier=7,
monetary_value_col="amount")``. Both count a transaction per customer-day (same-day orders
summed), frequency = days with a purchase - 1, recency and T in days / 7 from the first purchase
day, monetary value = mean of the repeat days' sums (0 without repeats).
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.measure import run_measured
from helpers.paths import ROOT

PEER_VENV = ROOT / "bench" / ".venv-peers"
PEER_PYTHON = PEER_VENV / "bin" / "python"
SUMMARY_COLS = ["frequency", "recency", "T", "monetary_value"]
CAL_COLS = ["frequency_cal", "recency_cal", "T_cal", "monetary_value_cal", "frequency_holdout",
            "monetary_value_holdout", "duration_holdout"]


#: Default size of the peers' transaction log (issue #10: "the same 1M-line log").
PEER_LINES = 1_000_000
#: Seed of the customer order from which whole customers are taken (see select_whole_customers).
SELECT_SEED = 42


def select_whole_customers(customer_ids: Any, max_rows: int | None,
                           seed: int = SELECT_SEED) -> np.ndarray:
    """Boolean row mask keeping whole customers until at most ``max_rows`` rows.

    The distinct customer ids are sorted, put in a random order drawn from ``seed``, and taken
    in that order as long as the running total of their rows stays ``<= max_rows``: every
    customer keeps either all or none of their rows, and the next customer in the order would
    exceed ``max_rows``. The result depends only on the multiset of (customer, rows), not on
    the row order. ``max_rows`` None (or >= the number of rows) keeps every row.
    """
    ids = customer_ids if isinstance(customer_ids, pd.Series) else pd.Series(
        np.asarray(customer_ids, dtype=object))
    if ids.isna().any():
        raise ValueError(f"select_whole_customers: {int(ids.isna().sum())} missing customer ids")
    n = len(ids)
    if max_rows is None or max_rows >= n:
        return np.ones(n, dtype=bool)
    if max_rows < 0:
        raise ValueError(f"select_whole_customers: max_rows must be >= 0; got {max_rows}")
    codes, uniques = pd.factorize(ids, sort=True)
    counts = np.bincount(codes, minlength=len(uniques))
    order = np.random.default_rng(seed).permutation(len(uniques))
    k = int(np.searchsorted(np.cumsum(counts[order]), max_rows, side="right"))
    chosen = np.zeros(len(uniques), dtype=bool)
    chosen[order[:k]] = True
    return chosen[codes]


def prepare_inputs(data_dir: Path, out: Path, max_lines: int | None = PEER_LINES,
                   seed: int = SELECT_SEED) -> dict[str, Any]:
    """Write transactions.parquet and baskets.parquet for the comparison from ``data_dir``.

    Only the orders, order_lines and products tables are loaded (a ``dataset.yaml`` naming just
    those, with the source's settings), so the comparison does not pay for the events table.
    With ``max_lines``, only the orders of whole customers chosen by
    :func:`select_whole_customers` are kept (transactions and baskets alike).
    """
    import yaml

    from helpers.data import load_dataset
    from helpers.recommend import purchases

    out.mkdir(parents=True, exist_ok=True)
    cfg = yaml.safe_load((data_dir / "dataset.yaml").read_text(encoding="utf-8"))
    tables = {t: str((data_dir / cfg["tables"][t]).resolve())
              for t in ("orders", "order_lines", "products") if t in cfg.get("tables", {})}
    sub = {k: v for k, v in cfg.items() if k not in ("tables", "truth")}
    sub["tables"] = tables
    sub["name"] = f"{cfg.get('name', 'data')}_peers"
    (out / "dataset.yaml").write_text(yaml.safe_dump(sub, sort_keys=False), encoding="utf-8")
    ds = load_dataset(out / "dataset.yaml")
    orders = ds.orders
    n_orders, n_customers = len(orders), int(orders["customer_id"].nunique())
    keep = select_whole_customers(orders["customer_id"], max_lines, seed)
    if not keep.all():
        orders = orders[keep]
    tx = orders[["customer_id", "order_ts", "amount"]].copy()
    tx["customer_id"] = tx["customer_id"].astype(str)
    tx.to_parquet(out / "transactions.parquet", index=False)
    purch = purchases(orders, ds.order_lines)
    baskets = purch[["order_id", "product_id"]].astype(str)
    baskets.to_parquet(out / "baskets.parquet", index=False)
    analysis = str(cfg.get("analysis_date") or ds.default_analysis_date)[:10]
    if len(tx) < n_orders:
        desc = (f"the orders of `{data_dir}` ({n_orders:,} orders of {n_customers:,} customers) "
                f"restricted to whole customers up to {max_lines:,} transaction lines (customers "
                f"in a random order drawn with seed {seed}, taken while the total stays <= "
                f"{max_lines:,}), one row per order, and the order lines of those same orders "
                "as baskets")
    else:
        desc = (f"all orders of `{data_dir}` (one row per order) and their order lines as "
                "baskets" + (f" (fewer than the {max_lines:,} lines asked for)"
                             if max_lines else ""))
    return {"description": desc,
            "rows": int(len(tx)), "customers": int(tx["customer_id"].nunique()),
            "orders_in_source": int(n_orders), "customers_in_source": n_customers,
            "max_lines": max_lines, "selection_seed": seed,
            "baskets": int(baskets["order_id"].nunique()), "basket_lines": int(len(baskets)),
            "products": int(baskets["product_id"].nunique()), "analysis_date": analysis,
            "source": str(data_dir),
            "dir": str(out)}


def _cal_end(analysis_date: str, holdout_days: int = 182) -> str:
    return (pd.Timestamp(analysis_date) - pd.Timedelta(days=holdout_days)).strftime("%Y-%m-%d")


def run_peers(work: Path, data_dir: Path, *, peer_python: Path = PEER_PYTHON,
              max_lines: int | None = PEER_LINES, min_support: float = 0.0005,
              min_confidence: float = 0.05, handbook_repeat: int = 3, peer_repeat: int = 1,
              rss_limit: int | None = 6 * 1024 ** 3, echo=print) -> dict[str, Any]:
    """The whole comparison into ``work`` (inputs, outputs, logs); returns the peers record.

    Three measured processes, each under ``rss_limit``: the input preparation
    (``python -m bench.peers --prepare``), the handbook side and the peer side.
    """
    if not Path(peer_python).exists():
        return {"error": f"peer venv not found ({peer_python}); create it with "
                         "`make bench-peers-venv`"}
    work.mkdir(parents=True, exist_ok=True)
    echo(f"peers: preparing inputs from {data_dir} "
         f"({'all orders' if not max_lines else f'whole customers up to {max_lines:,} lines'}) ...")
    prep = run_measured([sys.executable, "-m", "bench.peers", "--prepare", "--data",
                         str(data_dir), "--out", str(work / "input"),
                         "--max-lines", str(max_lines or 0)],
                        cwd=ROOT, log_path=work / "prepare.log", rss_limit=rss_limit,
                        env={**os.environ, "HANDBOOK_CACHE": "0"})  # a fresh load, no cache
    if prep.returncode != 0:
        why = " (killed: RSS over the limit)" if prep.killed_for_memory else ""
        return {"error": f"input preparation failed (exit {prep.returncode}){why}; see "
                         f"{work / 'prepare.log'}"}
    inp = json.loads((work / "input" / "input.json").read_text(encoding="utf-8"))
    obs = inp["analysis_date"]
    cal = _cal_end(obs)
    (work / "settings.json").write_text(json.dumps({"observation_end": obs,
                                                    "calibration_end": cal}))
    common = ["--input", str(work / "input"), "--observation-end", obs, "--calibration-end", cal,
              "--min-support", repr(min_support), "--min-confidence", repr(min_confidence)]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    echo(f"peers: handbook side ({inp['rows']:,} transactions, {inp['baskets']:,} baskets) ...")
    hb = run_measured([sys.executable, "-m", "bench.handbook_side", *common,
                       "--out", str(work / "handbook"), "--repeat", str(handbook_repeat)],
                      cwd=ROOT, env=env, log_path=work / "handbook.log", rss_limit=rss_limit)
    if hb.returncode != 0:
        why = " (killed: RSS over the limit)" if hb.killed_for_memory else ""
        return {"error": f"handbook side failed (exit {hb.returncode}){why}; see "
                         f"{work / 'handbook.log'}", "input": inp}
    echo("peers: lifetimes + mlxtend side (bench/.venv-peers) ...")
    peer = run_measured([str(peer_python), str(ROOT / "bench" / "peer_side.py"), *common,
                         "--handbook", str(work / "handbook"), "--out", str(work / "peer"),
                         "--repeat", str(peer_repeat)],
                        cwd=ROOT, env=env, log_path=work / "peer.log", rss_limit=rss_limit)
    if peer.returncode != 0:
        why = " (killed: RSS over the limit)" if peer.killed_for_memory else ""
        return {"error": f"peer side failed (exit {peer.returncode}){why}; see "
                         f"{work / 'peer.log'}", "input": inp}
    res = compare(work / "handbook", work / "peer")
    res["input"] = inp
    k = inp["products"]
    dense = inp["baskets"] * (k * (k - 1) // 2) * 2
    onehot = inp["baskets"] * k
    gib = 1024 ** 3
    res["notes"].append(
        f"mlxtend `apriori` runs with `low_memory=True` and `max_len=2`, minimum support "
        f"{min_support:g} (as the handbook): its default `low_memory=False` builds a baskets x "
        f"candidate pairs x 2 boolean array, up to {dense / gib:,.0f} GiB here "
        f"({inp['baskets']:,} baskets, {k} products; a first attempt with the default on the "
        f"20k data grew past 20 GiB and was killed); with `low_memory=True` it holds the "
        f"baskets x products one-hot table ({onehot / gib:.2f} GiB as bool) plus one baskets x "
        "products block per frequent item while pairing.")
    res["settings"] = {"observation_end": obs, "calibration_end": cal, "time_unit": "W",
                       "min_support": min_support, "min_confidence": min_confidence,
                       "handbook_repeat": handbook_repeat, "peer_repeat": peer_repeat,
                       "max_lines": max_lines,
                       "rss_limit_gib": None if rss_limit is None else rss_limit / gib}
    res["processes"] = {"prepare": {"wall_s": prep.wall_s, "peak_rss": prep.peak_rss},
                        "handbook": {"wall_s": hb.wall_s, "peak_rss": hb.peak_rss},
                        "peer": {"wall_s": peer.wall_s, "peak_rss": peer.peak_rss}}
    res["notes"].append(
        "Processes (wall time, peak RSS): input preparation "
        f"{prep.wall_s:.0f} s, {prep.peak_rss / gib:.2f} GiB; handbook side {hb.wall_s:.0f} s, "
        f"{hb.peak_rss / gib:.2f} GiB; lifetimes + mlxtend side {peer.wall_s:.0f} s, "
        f"{peer.peak_rss / gib:.2f} GiB"
        + ("" if rss_limit is None else f" (each limited to {rss_limit / gib:g} GiB)") + ".")
    return res


# --------------------------------------------------------------------------------------------
# comparison


def _frame_diff(a: pd.DataFrame, b: pd.DataFrame, cols: list[str]) -> dict[str, Any]:
    """Same customers? Per column: max |a - b| and the number of customers that differ."""
    ia = pd.Index(a["customer_id"].astype(str))
    ib = pd.Index(b["customer_id"].astype(str))
    out: dict[str, Any] = {"customers_handbook": len(ia), "customers_peer": len(ib),
                           "only_handbook": int((~ia.isin(ib)).sum()),
                           "only_peer": int((~ib.isin(ia)).sum()), "columns": {}}
    common = ia.intersection(ib)
    aa = a.set_index(ia).loc[common]
    bb = b.set_index(ib).loc[common]
    for c in cols:
        x, y = aa[c].to_numpy(float), bb[c].to_numpy(float)
        diff = np.abs(x - y)
        tol = 1e-9 * np.maximum(1.0, np.abs(x))
        out["columns"][c] = {"max_abs_diff": float(diff.max()) if len(diff) else 0.0,
                             "n_differ": int((diff > tol).sum()),
                             "n_exactly_equal": int((x == y).sum())}
    out["identical"] = (out["only_handbook"] == 0 and out["only_peer"] == 0
                        and all(v["n_differ"] == 0 for v in out["columns"].values()))
    return out


def _mean_ratio(slow: list[float], fast: list[float]) -> float | None:
    if not slow or not fast or min(fast) <= 0:
        return None
    return min(slow) / min(fast)


def holdout_row_mean_explained(inp: Path, cal_end: str, obs_end: str, differing: pd.Index,
                               customers: pd.Index) -> dict[str, int]:
    """How many of the customers whose ``monetary_value_holdout`` differs bought more than once
    on some holdout day (lifetimes averages holdout *rows*, the handbook holdout *days*)."""
    tx = pd.read_parquet(inp / "transactions.parquet")
    day = tx["order_ts"].dt.normalize()
    hold = tx[(day > pd.Timestamp(cal_end)) & (day <= pd.Timestamp(obs_end))]
    per_day = hold.groupby([hold["customer_id"].astype(str), hold["order_ts"].dt.normalize()]).size()
    multi = pd.Index(per_day[per_day > 1].index.get_level_values(0).unique())
    multi = multi[multi.isin(customers)]  # calibration customers only
    return {"differ": int(len(differing)), "differ_with_same_day_orders":
            int(differing.isin(multi).sum()), "customers_with_same_day_holdout_orders":
            int(len(multi))}


def compare(hb_dir: Path, peer_dir: Path) -> dict[str, Any]:
    """Compare the two sides' outputs; returns the record with ``rows`` for the summary table."""
    from helpers import clv

    ht = json.loads((hb_dir / "timings.json").read_text())
    pt = json.loads((peer_dir / "timings.json").read_text())
    htm, ptm = ht["timings"], pt["timings"]
    rows: list[dict[str, Any]] = []
    notes: list[str] = []

    # (a) summary and calibration/holdout
    s_diff = _frame_diff(pd.read_parquet(hb_dir / "summary.parquet"),
                         pd.read_parquet(peer_dir / "summary.parquet"), SUMMARY_COLS)
    hc = pd.read_parquet(hb_dir / "calibration.parquet")
    pc = pd.read_parquet(peer_dir / "calibration.parquet")
    c_diff = _frame_diff(hc, pc, CAL_COLS)
    strict_cols = [c for c in CAL_COLS if c != "monetary_value_holdout"]
    cal_core_same = (c_diff["only_handbook"] == 0 and c_diff["only_peer"] == 0
                     and all(c_diff["columns"][c]["n_differ"] == 0 for c in strict_cols))
    mvh = c_diff["columns"]["monetary_value_holdout"]
    explained = None
    if mvh["n_differ"]:
        ia = pd.Index(hc["customer_id"].astype(str))
        ib = pd.Index(pc["customer_id"].astype(str))
        common = ia.intersection(ib)
        x = hc.set_index(ia).loc[common, "monetary_value_holdout"].to_numpy(float)
        y = pc.set_index(ib).loc[common, "monetary_value_holdout"].to_numpy(float)
        bad = common[np.abs(x - y) > 1e-9 * np.maximum(1, np.abs(x))]
        settings = json.loads((hb_dir.parent / "settings.json").read_text()) \
            if (hb_dir.parent / "settings.json").exists() else None
        if settings:
            explained = holdout_row_mean_explained(hb_dir.parent / "input",
                                                   settings["calibration_end"],
                                                   settings["observation_end"], bad, ia)
    ratio_s = _mean_ratio(ptm.get("summary", []), htm.get("summary", []))
    ratio_c = _mean_ratio(ptm.get("calibration", []), htm.get("calibration", []))
    hb_prep = min(htm["summary"]) + min(htm["calibration"])
    peer_prep = min(ptm["summary"]) + min(ptm["calibration"])
    rows.append({"name": "per-customer summary (rfm_summary vs summary_data_from_transaction_data)",
                 "handbook_s": min(htm["summary"]), "peer_s": min(ptm["summary"]),
                 "ratio": ratio_s, "same": "identical" if s_diff["identical"] else "**differs**",
                 "details": f"{s_diff['customers_handbook']:,} customers; max |diff| "
                            + ", ".join(f"{c} {v['max_abs_diff']:.1e}"
                                        for c, v in s_diff["columns"].items())})
    same_c = "identical" if c_diff["identical"] else (
        "identical except monetary_value_holdout" if cal_core_same else "**differs**")
    det = (f"{c_diff['customers_handbook']:,} calibration customers; frequency/recency/T/"
           f"monetary (cal), frequency_holdout, duration_holdout: max |diff| "
           f"{max(c_diff['columns'][c]['max_abs_diff'] for c in strict_cols):.1e}")
    if mvh["n_differ"]:
        det += (f"; monetary_value_holdout differs for {mvh['n_differ']:,} customers"
                + (f" ({explained['differ_with_same_day_orders']:,} of them bought twice on a "
                   f"holdout day)" if explained else ""))
    rows.append({"name": "calibration/holdout (calibration_holdout vs calibration_and_holdout_data)",
                 "handbook_s": min(htm["calibration"]), "peer_s": min(ptm["calibration"]),
                 "ratio": ratio_c, "same": same_c, "details": det})
    rows.append({"name": "data preparation total (summary + calibration/holdout)",
                 "handbook_s": hb_prep, "peer_s": peer_prep,
                 "ratio": peer_prep / hb_prep if hb_prep > 0 else None,
                 "same": "", "details": "target: handbook >= 5x faster"})
    if mvh["n_differ"]:
        notes.append("`monetary_value_holdout`: lifetimes averages the holdout *rows* "
                      "(`holdout_transactions.groupby(customer)[amount].mean()`), although it "
                      "counts holdout *days* and averages calibration *day sums*; the handbook "
                      "uses day sums in both periods. The values differ exactly for customers "
                      "with two orders on one holdout day"
                      + (f" ({explained['differ_with_same_day_orders']:,} of the "
                         f"{explained['differ']:,} differing customers; "
                         f"{explained['customers_with_same_day_holdout_orders']:,} calibration "
                         "customers have such days)" if explained else "") + ".")
    notes.append("Option mapping: lifetimes `freq='D', freq_multiplier=7` = handbook "
                 "`time_unit='W'` (days / 7; lifetimes' `freq='W'` counts calendar-week periods "
                 "instead); calibration and observation ends passed to lifetimes as the last "
                 "nanosecond of the end day (with a plain date, lifetimes puts purchases made "
                 "after midnight *on* the calibration-end day into the holdout); "
                 "`monetary_value_col='amount'`, `include_first_transaction=False` (default).")
    notes.append("Timing: only the function calls, inputs already in memory; handbook best of "
                 f"{len(htm['summary'])} calls (first call {htm['summary'][0]:.2f} s / "
                 f"{htm['calibration'][0]:.2f} s), peer "
                 + (f"best of {len(ptm['summary'])} calls." if len(ptm["summary"]) > 1 else
                    "measured once (lifetimes' calibration/holdout split takes minutes on a "
                    "large log)."))

    # (b) BG/NBD fit
    fit_h = ht["fit"]
    fit_p = pt.get("fit", {})
    ch = hc
    if "params" in fit_p:
        m = clv.BetaGeoModel()
        m.params_ = dict(fit_p["params"])
        ll_p = float(np.sum(m.log_likelihood(ch["frequency_cal"], ch["recency_cal"],
                                             ch["T_cal"])))
        rel = {k: abs(fit_p["params"][k] / fit_h["params"][k] - 1) for k in fit_h["params"]}
        rows.append({"name": "BG/NBD fit (BetaGeoModel vs BetaGeoFitter)",
                     "handbook_s": htm["bgnbd_fit"][0], "peer_s": ptm["bgnbd_fit"][0],
                     "ratio": ptm["bgnbd_fit"][0] / htm["bgnbd_fit"][0],
                     "same": "same optimum" if max(rel.values()) < 1e-3 and
                     abs(ll_p - fit_h["log_likelihood"]) < 0.01 else "**differs**",
                     "details": "handbook " + _params(fit_h["params"])
                                + f", LL {fit_h['log_likelihood']:.2f}; lifetimes "
                                + _params(fit_p["params"]) + f", LL {ll_p:.2f}; "
                                f"max relative parameter difference {max(rel.values()):.1e}"})
        notes.append("BG/NBD: both fitted on the handbook's calibration summary (weeks); both "
                     "log-likelihoods are the handbook's sum over customers at each side's "
                     "parameters (lifetimes reports a mean on a rescaled time axis: "
                     f"{fit_p['mean_log_likelihood_scaled']:.4f} at time scale "
                     f"{fit_p['time_scale']:.4g}).")
    else:
        rows.append({"name": "BG/NBD fit (BetaGeoModel vs BetaGeoFitter)",
                     "handbook_s": htm["bgnbd_fit"][0], "peer_s": None, "ratio": None,
                     "same": "peer failed", "details": fit_p.get("error", "")})

    # (c) association rules
    hr = pd.read_parquet(hb_dir / "rules.parquet")
    pr = pd.read_parquet(peer_dir / "rules.parquet")
    key = ["antecedent", "consequent"]
    mg = hr.merge(pr, on=key, how="outer", suffixes=("_h", "_p"), indicator=True)
    both = mg[mg["_merge"] == "both"]
    diffs = {c: float(np.abs(both[f"{c}_h"] - both[f"{c}_p"]).max()) if len(both) else 0.0
             for c in ("support", "confidence", "lift")}
    n_h, n_p = int((mg["_merge"] == "left_only").sum()), int((mg["_merge"] == "right_only").sum())
    same_r = n_h == 0 and n_p == 0 and all(v < 1e-9 for v in diffs.values())
    hb_rules = min(htm["pair_rules"])
    pe_rules = min(ptm["rules_encode"]) + min(ptm["rules_mine"])
    rows.append({"name": "pair rules (pair_rules vs mlxtend apriori + association_rules)",
                 "handbook_s": hb_rules, "peer_s": pe_rules,
                 "ratio": pe_rules / hb_rules if hb_rules > 0 else None,
                 "same": "identical" if same_r else "**differs**",
                 "details": f"{len(both):,} rules found by both, {n_h} only by the handbook, "
                            f"{n_p} only by mlxtend; max |diff| support {diffs['support']:.1e}, "
                            f"confidence {diffs['confidence']:.1e}, lift {diffs['lift']:.1e}"})
    notes.append("Rules: the same baskets (one per order), pairs only (mlxtend `max_len=2`), the "
                 "same minimum support and confidence (the handbook's `min_count` set to 1 so "
                 "only the support threshold applies); times include building the basket "
                 f"matrix / one-hot table (mlxtend: encode {min(ptm['rules_encode']):.2f} s + "
                 f"mine {min(ptm['rules_mine']):.2f} s).")
    return {"rows": rows, "notes": notes, "versions": {k: v for k, v in pt.get("versions", {}).items()
                                                         if k in ("lifetimes", "mlxtend")},
            "summary": {"speed_ratio": peer_prep / hb_prep if hb_prep > 0 else None,
                        "identical": bool(s_diff["identical"] and cal_core_same),
                        "identical_note": ("summary identical; calibration/holdout identical "
                                           "except lifetimes' row-mean holdout monetary value "
                                           "(see peer notes)") if mvh["n_differ"] and
                        cal_core_same and s_diff["identical"] else
                        ("all columns identical" if s_diff["identical"] and c_diff["identical"]
                         else "see the peer comparison table")},
            "summary_diff": s_diff, "calibration_diff": c_diff, "holdout_monetary": explained,
            "timings": {"handbook": htm, "peer": ptm}}


def _params(p: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.4g}" for k, v in p.items())


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.peers --prepare --data DIR --out DIR [--max-lines N]``: write the
    comparison's input files and ``input.json`` (the record of :func:`prepare_inputs`)."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m bench.peers", description=main.__doc__)
    ap.add_argument("--prepare", action="store_true", required=True)
    ap.add_argument("--data", required=True, help="dataset folder (with dataset.yaml)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--max-lines", type=int, default=PEER_LINES,
                    help="whole customers up to this many transaction lines (0 = all orders)")
    ap.add_argument("--seed", type=int, default=SELECT_SEED)
    a = ap.parse_args(argv)
    inp = prepare_inputs(Path(a.data), Path(a.out), a.max_lines or None, a.seed)
    (Path(a.out) / "input.json").write_text(json.dumps(inp, indent=2), encoding="utf-8")
    print(f"{inp['rows']:,} transaction lines of {inp['customers']:,} customers, "
          f"{inp['baskets']:,} baskets", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
