"""Edge cases of chapters 01 and 03 on tiny datasets (issue #9, part 5).

Each test writes an orders-only dataset (``format: tables``, one CSV) into a temporary folder,
runs the real chapter notebook through the runner (``python -m helpers.run``: the project's
kernel, the notebooks' folder as working directory) and checks that the run succeeds and that
the executed notebook says, in a readable note, which section could not be done and why.

* chapter 01 with too few buying customers for k segments (12 buyers), and with enough buyers
  whose tags do not vary at all (every buyer placed one identical order);
* chapter 03 with no repeat buyers (every customer bought exactly once).
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

from helpers.paths import PARAMS


def write_dataset(folder: Path, orders: pd.DataFrame) -> Path:
    """An orders-only dataset: ``orders.csv`` and its ``dataset.yaml`` (format ``tables``)."""
    folder.mkdir(parents=True)
    orders.to_csv(folder / "orders.csv", index=False)
    (folder / "dataset.yaml").write_text(
        "name: edge_case\nformat: tables\ntimezone: Asia/Shanghai\ncurrency: CNY\n"
        "analysis_date: 2025-12-31\ntables:\n  orders: orders.csv\n", encoding="utf-8")
    return folder


def orders_table(customer: list[str], ts: list[str], amount: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"order_id": [f"o{i}" for i in range(len(customer))],
                         "customer_id": customer, "order_ts": ts, "amount": amount})


def run_chapter(chapter: str, dataset: Path, out: Path) -> dict:
    """Run one chapter with the runner from outside the project; return its metrics.json."""
    env = {**os.environ, "JUPYTER_PREFER_ENV_PATH": "1"}
    res = subprocess.run([sys.executable, "-m", "helpers.run", "--params",
                          str(PARAMS / "default.yaml"), "--chapters", chapter,
                          "-p", f"dataset={dataset}", "--out", str(out)],
                         capture_output=True, text=True, timeout=900, cwd=os.sep, env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    return json.loads((out / "metrics.json").read_text())


def notebook_text(path: Path) -> tuple[str, list[str]]:
    """All text outputs of an executed notebook, and the names of any errors in it."""
    nb = nbformat.read(path, as_version=4)
    texts, errors = [], []
    for cell in nb.cells:
        for o in cell.get("outputs", []) if cell.cell_type == "code" else []:
            if o.output_type == "error":
                errors.append(o.ename)
            elif o.output_type == "stream":
                texts.append(o.text)
            else:
                texts.append(str(o.get("data", {}).get("text/plain", "")))
    return "\n".join(texts), errors


def skipped(doc: dict, chapter: str) -> dict[str, str]:
    return {s["section"]: s["reason"] for s in doc["status"][chapter]["sections_skipped"]}


@pytest.mark.slow
def test_01_too_few_customers_for_k_segments(tmp_path):
    # 12 customers with 1-3 orders each: far fewer than the 60 buyers segmentation needs
    cust, ts, amount = [], [], []
    for c in range(12):
        for j in range(1 + c % 3):
            cust.append(f"c{c:02d}")
            ts.append(f"2025-{1 + (c + 4 * j) % 12:02d}-{1 + c:02d} 10:00:00")
            amount.append(50.0 + 10 * c + j)
    data = write_dataset(tmp_path / "few", orders_table(cust, ts, amount))
    doc = run_chapter("01", data, tmp_path / "run")
    chapter = "01_user_portrait"
    assert doc["status"][chapter]["status"] == "ok"
    assert skipped(doc, chapter)["3-5 segmentation"] == "only 12 buying customers (need 60)"
    m = doc["chapters"][chapter]
    assert m["n_customers"] == 12 and m["k"] is None and m["silhouette"] is None
    text, errors = notebook_text(tmp_path / "run" / f"{chapter}.ipynb")
    assert errors == []
    assert "Section 3-5 segmentation skipped: only 12 buying customers (need 60)" in text
    # the export still lists every customer, all in segment 0 ("no purchase yet" is not used)
    export = pd.read_csv(tmp_path / "run" / "exports" / chapter / "customer_segments.csv")
    assert len(export) == 12 and set(export["segment"]) == {0}


@pytest.mark.slow
def test_01_buyers_whose_tags_do_not_vary(tmp_path):
    # 80 buyers, each one order of the same amount at the same time: nothing to segment on
    n = 80
    data = write_dataset(tmp_path / "flat", orders_table(
        [f"c{i:03d}" for i in range(n)], ["2025-03-03 10:00:00"] * n, [99.0] * n))
    doc = run_chapter("01", data, tmp_path / "run")
    chapter = "01_user_portrait"
    assert doc["status"][chapter]["status"] == "ok"
    reason = skipped(doc, chapter)["3-5 segmentation"]
    assert reason.startswith("the tags of the 80 buying customers do not vary")
    assert doc["chapters"][chapter]["k"] is None
    text, errors = notebook_text(tmp_path / "run" / f"{chapter}.ipynb")
    assert errors == [] and f"Section 3-5 segmentation skipped: {reason}" in text


@pytest.mark.slow
def test_03_no_repeat_buyers(tmp_path):
    # 300 customers, each with exactly one order, spread over 2024-2025
    n = 300
    rng = np.random.default_rng(0)
    ts = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 730 * 24, n), unit="h")
    data = write_dataset(tmp_path / "once", orders_table(
        [f"c{i:03d}" for i in range(n)], list(ts.strftime("%Y-%m-%d %H:%M:%S")),
        list(rng.uniform(10, 500, n).round(2))))
    doc = run_chapter("03", data, tmp_path / "run")
    chapter = "03_rfm_segments"
    assert doc["status"][chapter]["status"] == "ok"
    notes = skipped(doc, chapter)
    assert notes["3. Frequency score"].startswith("no repeat buyers: every customer has exactly "
                                                  "one purchase occasion")
    assert "bought again" in notes["8a. Rules vs clusters, 8b-8c. Guide 4.5 claim"]
    m = doc["chapters"][chapter]
    assert m["n_customers"] == n and m["champions_share"] == 0.0
    assert m["high_value_repurchase_rate"] is None and m["low_value_repurchase_rate"] is None
    assert m["n_segments"] <= 5  # only the F = 1 segments can occur
    text, errors = notebook_text(tmp_path / "run" / f"{chapter}.ipynb")
    assert errors == []
    assert "Section 3. Frequency score skipped: no repeat buyers" in text
    assert "Section 8a. Rules vs clusters, 8b-8c. Guide 4.5 claim skipped" in text
    assert "Champions still Champions: no Champions at the earlier date" in text
    assert "nan%" not in text and "infx" not in text
    export = pd.read_csv(tmp_path / "run" / "exports" / chapter / "rfm_segments.csv")
    assert len(export) == n and set(export["F"]) == {1}
