"""Edge cases of chapters 02 (lifecycle & CLV) and 04 (churn warning) on tiny datasets.

Each test writes a small orders-only dataset folder, runs the real chapter notebook through the
runner (``python -m helpers.run``, which starts the project's kernel in the notebooks' folder) and
checks that the chapter finishes and says in a readable sentence which sections it skipped and
why, instead of stopping with a stack trace:

* chapter 02, "no repeat buyers": every customer bought exactly once, so BG/NBD and Gamma-Gamma
  cannot be fitted;
* chapter 04, "less than one churn window of history": the out-of-time design has no training
  history;
* chapter 04, "no churners in the window": every active customer bought again, so there is
  nothing to model.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
import yaml

from helpers.paths import PARAMS

ANALYSIS_DATE = "2025-12-31"


def write_orders_dataset(folder: Path, orders: pd.DataFrame) -> Path:
    """An orders-only dataset (the one required table) with its dataset.yaml."""
    folder.mkdir(parents=True, exist_ok=True)
    orders.to_csv(folder / "orders.csv", index=False)
    cfg = {"name": folder.name, "format": "tables", "timezone": "UTC", "currency": "EUR",
           "analysis_date": ANALYSIS_DATE, "tables": {"orders": "orders.csv"}}
    (folder / "dataset.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return folder


def orders_frame(rows: list[tuple[str, pd.Timestamp]], seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "order_id": [f"o{i}" for i in range(len(rows))],
        "customer_id": [c for c, _ in rows],
        "order_ts": [t.strftime("%Y-%m-%d %H:%M:%S") for _, t in rows],
        "amount": rng.uniform(20, 200, len(rows)).round(2),
    })


def one_order_each(n: int = 400) -> pd.DataFrame:
    """n customers, each with exactly one order, spread over 2024-2025."""
    start = pd.Timestamp("2024-01-01 10:00")
    return orders_frame([(f"c{i:04d}", start + pd.Timedelta(days=int(i * 730 / n)))
                         for i in range(n)])


def regular_buyers(start: str, end: str, n: int = 120, every_days: int = 20) -> pd.DataFrame:
    """n customers who each order every ``every_days`` days from ``start`` to ``end`` (shifted
    by a day or two per customer), so none of them is ever silent for long."""
    rows = []
    for i in range(n):
        t = pd.Timestamp(start) + pd.Timedelta(days=i % 3, hours=9 + i % 8)
        while t <= pd.Timestamp(end):
            rows.append((f"c{i:04d}", t))
            t += pd.Timedelta(days=every_days)
    return orders_frame(rows, seed=1)


def run_chapter(chapter: str, dataset: Path, out: Path) -> tuple[subprocess.CompletedProcess,
                                                                  dict]:
    """Run one chapter with the default parameters on ``dataset``; return the process and the
    chapter's status entry of metrics.json."""
    env = {**os.environ, "JUPYTER_PREFER_ENV_PATH": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "helpers.run", "--params", str(PARAMS / "default.yaml"),
         "--chapters", chapter, "-p", f"dataset={dataset}", "-p", f"analysis_date={ANALYSIS_DATE}",
         "--out", str(out)],
        capture_output=True, text=True, timeout=900, cwd=os.sep, env=env)
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    stem = next(s for s in metrics["status"] if s.startswith(chapter))
    return proc, metrics["status"][stem] | {"stem": stem, "metrics": metrics["chapters"].get(stem)}


def notebook_text(out: Path, stem: str) -> str:
    """Every text output of the executed notebook (what a reader sees)."""
    nb = nbformat.read(out / f"{stem}.ipynb", as_version=4)
    parts = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            if o.get("output_type") == "error":
                parts.append("ERROR " + o.get("ename", ""))
            parts.append(str(o.get("text", "")))
            parts.append(str(o.get("data", {}).get("text/plain", "")))
            parts.append(str(o.get("data", {}).get("text/markdown", "")))
    return "\n".join(parts)


def skipped(status: dict) -> dict[str, str]:
    return {s["section"]: s["reason"] for s in status["sections_skipped"]}


@pytest.mark.slow
def test_chapter02_without_repeat_buyers_skips_clv_with_a_reason(tmp_path):
    data = write_orders_dataset(tmp_path / "no_repeat", one_order_each())
    proc, status = run_chapter("02", data, tmp_path / "run")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert status["status"] == "ok", status
    reasons = skipped(status)
    assert "bought more than once" in reasons["6.2-6.5 Predictive CLV"]
    assert "neither can be fitted" in reasons["6.2-6.5 Predictive CLV"]
    text = notebook_text(tmp_path / "run", status["stem"])
    assert "Section 6.2-6.5 Predictive CLV skipped" in text
    assert "ERROR" not in text and "Traceback" not in text
    m = status["metrics"]
    assert m["bgnbd_r"] is None and m["gg_p"] is None and m["palive_auc_vs_truth"] is None
    assert m["n_active_customers"] is not None  # the stage rules still ran


def run_chapter04_ok(tmp_path: Path, folder: str, orders: pd.DataFrame
                     ) -> tuple[dict, dict[str, str], str]:
    """Run chapter 04 on an orders-only dataset; check that it finished without an error and
    return its status entry, the skipped sections with their reasons, and the notebook text."""
    data = write_orders_dataset(tmp_path / folder, orders)
    proc, status = run_chapter("04", data, tmp_path / "run")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert status["status"] == "ok", status
    text = notebook_text(tmp_path / "run", status["stem"])
    assert "ERROR" not in text and "Traceback" not in text
    return status, skipped(status), text


@pytest.mark.slow
def test_chapter04_with_less_than_one_window_of_history_skips_the_design(tmp_path):
    # 150 days of data; N = 90 puts the training cutoff at 2025-07-03, before the data start
    status, reasons, text = run_chapter04_ok(tmp_path, "short",
                                             regular_buyers("2025-08-01", ANALYSIS_DATE))
    for section in ("4. Features", "5. Models", "8. Other warning signals"):
        assert "less than one churn window" in reasons[section], section
    for section in ("7. Reasons", "9. Intervention", "11. Export"):
        assert "section 5 skipped" in reasons[section], section  # they build on the models
    assert "Section 4. Features skipped: the data start 2025-08-01" in text
    assert status["metrics"]["churn_rate"] is None and status["metrics"]["auc_best"] is None


@pytest.mark.slow
def test_chapter04_with_no_churners_skips_the_models_with_a_reason(tmp_path):
    # everyone orders every 20 days for two years: nobody is silent for a 90-day window
    status, reasons, text = run_chapter04_ok(tmp_path, "loyal",
                                             regular_buyers("2024-01-01", ANALYSIS_DATE))
    assert "too few churners" in reasons["5. Models"]
    assert "0 churners" in reasons["5. Models"]
    assert "4. Features" not in reasons  # features and labels were built
    assert "churn rate 0.0%" in text
    m = status["metrics"]
    assert m["churn_rate"] == 0.0 and m["best_model"] is None
