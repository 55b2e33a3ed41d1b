"""Edge cases of chapters 05 and 06 (issue #9, part 5), run end to end through the runner.

Each test writes a small synthetic dataset (same generator as data/synthetic), breaks it in one
way, runs the chapter with ``python -m helpers.run`` (the runner starts the project's kernel with
the notebooks' folder as working directory) and checks that the chapter finishes, says in words
which section it could not do and why, and shows no stack trace:

* chapter 05 on a catalogue of one product (nothing to recommend beyond it, no pairs for rules);
* chapter 06 on a loyalty experiment with only a treatment arm, and with only a holdout arm.

A fast test checks the cold-start export of chapter 05 on the unbroken small dataset: every
``customer_id`` in ``top_n_per_customer.csv`` is a real customer, and the history-free list is a
separate file without a customer column.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from helpers.paths import PARAMS

SMALL_CUSTOMERS = 600


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory) -> Path:
    """A small synthetic dataset in a temporary folder (never the committed data)."""
    from helpers import synth

    out = tmp_path_factory.mktemp("edges") / "synthetic_small"
    synth.write_dataset(synth.generate(n_customers=SMALL_CUSTOMERS, seed=7), out)
    return out


def _copy(src: Path, dest: Path) -> Path:
    import shutil

    shutil.copytree(src, dest)
    return dest


def run_chapter(chapter: str, dataset: Path, out: Path) -> tuple[subprocess.CompletedProcess,
                                                                  nbformat.NotebookNode, dict]:
    """Run one chapter with the runner on ``dataset``; return the process, the executed
    notebook and metrics.json."""
    env = {**os.environ, "JUPYTER_PREFER_ENV_PATH": "1"}
    res = subprocess.run([sys.executable, "-m", "helpers.run", "--params",
                          str(PARAMS / "small.yaml"), "--chapters", chapter,
                          "-p", f"dataset={dataset}", "--out", str(out)],
                         capture_output=True, text=True, timeout=1200, cwd=os.sep, env=env)
    path = out / f"{chapter}.ipynb"
    nb = nbformat.read(path, as_version=4) if path.exists() else None
    metrics = json.loads((out / "metrics.json").read_text()) if (out / "metrics.json").exists() \
        else {}
    return res, nb, metrics


def outputs_text(nb: nbformat.NotebookNode) -> str:
    """All text a reader sees in the executed notebook's outputs (streams, markdown, plain)."""
    parts = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            if o.get("output_type") == "error":
                parts.append("Traceback " + o.get("ename", "") + ": " + o.get("evalue", ""))
            parts.append(o.get("text", ""))
            data = o.get("data", {})
            parts.append(data.get("text/markdown", ""))
            parts.append(data.get("text/plain", ""))
    return "\n".join(parts)


def assert_ran_cleanly(res, nb, metrics, stem: str) -> str:
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert nb is not None
    text = outputs_text(nb)
    assert "Traceback" not in text and "Traceback" not in res.stderr
    assert metrics["status"][stem]["status"] == "ok"
    return text


# ---------------------------------------------------------------------------- chapter 05


def one_product_dataset(src: Path, dest: Path) -> Path:
    """The shop sells a single product: every order line, return and event names it."""
    ds = _copy(src, dest)
    products = pd.read_parquet(ds / "products.parquet")
    only = products["product_id"].iloc[0]
    products.iloc[:1].to_parquet(ds / "products.parquet", index=False)
    lines = pd.read_parquet(ds / "order_lines.parquet")
    lines = lines.assign(product_id=only).drop_duplicates("order_id")  # one line per order
    lines.to_parquet(ds / "order_lines.parquet", index=False)
    for table in ("returns", "events"):
        t = pd.read_parquet(ds / f"{table}.parquet")
        t.assign(product_id=t["product_id"].where(t["product_id"].isna(), only)).to_parquet(
            ds / f"{table}.parquet", index=False)
    return ds


@pytest.mark.slow
def test_chapter_05_with_one_product(small_dataset, tmp_path):
    ds = one_product_dataset(small_dataset, tmp_path / "one_product")
    assert pd.read_parquet(ds / "order_lines.parquet")["product_id"].nunique() == 1
    out = tmp_path / "run"
    res, nb, metrics = run_chapter("05_recommendation", ds, out)
    text = assert_ran_cleanly(res, nb, metrics, "05_recommendation")
    assert "Only 1 product was bought" in text
    assert "nothing to recommend beyond it" in text and "no pairs of products" in text
    skipped = {s["section"]: s["reason"]
               for s in metrics["status"]["05_recommendation"]["sections_skipped"]}
    assert "single product" in skipped["2-10. Recommendation"]
    chapter = metrics["chapters"]["05_recommendation"]
    assert chapter["best_model"] is None and chapter["n_rules"] is None


@pytest.mark.slow
def test_chapter_05_export_keys_rows_by_real_customers(small_dataset, tmp_path):
    out = tmp_path / "run"
    res, nb, metrics = run_chapter("05_recommendation", small_dataset, out)
    assert_ran_cleanly(res, nb, metrics, "05_recommendation")
    folder = out / "exports" / "05_recommendation"
    lists = pd.read_csv(folder / "top_n_per_customer.csv", dtype=str)
    customers = set(pd.read_parquet(small_dataset / "customers.parquet")["customer_id"])
    assert lists["customer_id"].notna().all() and set(lists["customer_id"]) <= customers
    assert len(lists) > 0 and set(lists["model"]) == {metrics["chapters"]["05_recommendation"]
                                                      ["best_model"]}
    fallback = pd.read_csv(folder / "top_n_no_history.csv", dtype=str)
    assert list(fallback.columns) == ["rank", "product_id", "product_name", "model"]
    assert fallback["rank"].astype(int).tolist() == list(range(1, len(fallback) + 1))
    assert set(fallback["model"]) == {"popularity (recent)"}


# ---------------------------------------------------------------------------- chapter 06


def one_arm_dataset(src: Path, dest: Path, keep: str) -> Path:
    """The loyalty experiment keeps only its ``keep`` arm (other experiments are untouched)."""
    ds = _copy(src, dest)
    e = pd.read_parquet(ds / "experiments.parquet")
    drop = (e["experiment_id"] == "loyalty_holdout_2025") & (e["arm"] != keep)
    e[~drop].to_parquet(ds / "experiments.parquet", index=False)
    return ds


@pytest.mark.slow
@pytest.mark.parametrize("keep, missing", [("treatment", "holdout"), ("holdout", "treatment")])
def test_chapter_06_with_a_one_arm_experiment(small_dataset, tmp_path, keep, missing):
    ds = one_arm_dataset(small_dataset, tmp_path / f"only_{keep}", keep)
    arms = pd.read_parquet(ds / "experiments.parquet").query(
        "experiment_id == 'loyalty_holdout_2025'")["arm"].unique().tolist()
    assert arms == [keep]
    out = tmp_path / "run"
    res, nb, metrics = run_chapter("06_loyalty_roi", ds, out)
    text = assert_ran_cleanly(res, nb, metrics, "06_loyalty_roi")
    assert "has only one arm" in text and f"no {missing}" in text
    assert "nothing to compare" in text
    skipped = {s["section"]: s["reason"]
               for s in metrics["status"]["06_loyalty_roi"]["sections_skipped"]}
    assert "only one arm" in skipped["4 Holdout experiment"]
    assert "7 ROI" in skipped
    chapter = metrics["chapters"]["06_loyalty_roi"]
    assert chapter["experiment_effect"] is None and chapter["roi"] is None
    assert chapter["naive_effect"] is not None  # the rest of the chapter still ran
