"""Unit tests of helpers.notebook (setup, Context, metrics) and helpers.paths.

Most tests run in-process (no kernel); one executes a tiny notebook in a real kernel to check
what the outputs look like to nbval and to the runner.
"""
from __future__ import annotations

import os
import random
import subprocess
import sys
import types
import warnings
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest

import helpers
from helpers.notebook import CHAPTER_METRICS, Context, clean_metric, read_metrics, setup
from helpers.paths import DATA, NOTEBOOKS, PARAMS, REPORTS, ROOT, resolve


def _setup(chapter: str = "99_test", **kw) -> Context:
    args = dict(dataset="synthetic", analysis_date="2025-12-31", seed=42,
                export_dir="reports/exports")
    args.update(kw)
    return setup(chapter, **args)


# ---------------------------------------------------------------------------- paths


def test_root_is_the_project_root_whatever_the_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert (ROOT / "pyproject.toml").is_file()
    assert (ROOT / "helpers" / "paths.py").is_file()
    assert DATA == ROOT / "data" and NOTEBOOKS == ROOT / "notebooks"
    assert PARAMS == ROOT / "params" and REPORTS == ROOT / "reports"
    assert resolve("data/synthetic") == ROOT / "data" / "synthetic"
    assert resolve(tmp_path / "x") == tmp_path / "x"
    assert resolve("notebooks/../data") == ROOT / "data"


# ---------------------------------------------------------------------------- validation


@pytest.mark.parametrize("dataset", [None, "", "   "])
def test_setup_requires_a_dataset(dataset):
    with pytest.raises(ValueError, match="'dataset' must be given"):
        _setup(dataset=dataset)


@pytest.mark.parametrize("date", ["2025/12/31", "31-12-2025", "2025-12-31 10:00", 20251231,
                                  "2025-02-30"])
def test_setup_rejects_bad_analysis_dates(date):
    with pytest.raises(ValueError, match="analysis_date"):
        _setup(analysis_date=date)


@pytest.mark.parametrize("seed,exc", [("42", TypeError), (4.2, TypeError), (True, TypeError),
                                      (None, TypeError), (-1, ValueError)])
def test_setup_rejects_bad_seeds(seed, exc):
    with pytest.raises(exc, match="seed"):
        _setup(seed=seed)


def test_setup_accepts_none_date_and_numpy_seed():
    ctx = _setup(analysis_date=None, seed=np.int64(7))
    assert ctx.analysis_date is None
    assert ctx.seed == 7 and type(ctx.seed) is int


def test_context_fields_and_params(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # export_dir must not depend on the cwd
    ctx = setup("02_lifecycle", dataset="cdnow_sample", analysis_date="1998-06-30", seed=3,
                export_dir="reports/exports", horizon_weeks=52)
    assert ctx.chapter == "02_lifecycle" and ctx.dataset == "cdnow_sample"
    assert ctx.analysis_date == pd.Timestamp("1998-06-30")
    assert ctx.export_dir == ROOT / "reports" / "exports"
    assert ctx.params == {"dataset": "cdnow_sample", "analysis_date": "1998-06-30", "seed": 3,
                          "export_dir": "reports/exports", "horizon_weeks": 52}


def test_seeds_make_runs_reproducible():
    a = _setup(seed=11)
    first = (random.random(), np.random.rand(), a.rng.normal(size=3))
    b = _setup(seed=11)
    second = (random.random(), np.random.rand(), b.rng.normal(size=3))
    assert first[0] == second[0] and first[1] == second[1]
    np.testing.assert_array_equal(first[2], second[2])
    c = _setup(seed=12)
    assert not np.array_equal(c.rng.normal(size=3), first[2])


def test_display_and_plot_settings():
    import matplotlib
    import matplotlib.pyplot as plt

    _setup()
    assert pd.get_option("display.precision") == 3
    assert pd.get_option("display.max_columns") == 40
    assert repr(np.float64(0.5)) == "0.5"  # numpy 2 would print np.float64(0.5)
    assert matplotlib.get_backend().lower() == "agg"  # outside a kernel
    assert tuple(plt.rcParams["figure.figsize"]) == (8.0, 4.5)
    assert plt.rcParams["figure.dpi"] == 100


def test_library_warnings_are_silenced():
    _setup()
    with warnings.catch_warnings(record=True) as caught:
        for cat in (FutureWarning, DeprecationWarning, UserWarning):
            warnings.warn("library noise", cat)
    assert caught == []
    n_filters = len(warnings.filters)
    _setup()  # calling setup again does not pile up filters
    assert len(warnings.filters) == n_filters


# ---------------------------------------------------------------------------- exports


def test_export_path_is_created_lazily_under_the_chapter(tmp_path):
    ctx = _setup(export_dir=tmp_path / "exports")
    assert not (tmp_path / "exports").exists()
    p = ctx.export_path("segments.csv")
    assert p == tmp_path / "exports" / "99_test" / "segments.csv"
    assert p.parent.is_dir() and not p.exists()
    for bad in ("../escape.csv", "/etc/passwd", ""):
        with pytest.raises(ValueError):
            ctx.export_path(bad)


# ---------------------------------------------------------------------------- metrics


def test_clean_metric_conversions():
    assert clean_metric("a", np.int64(3)) == 3 and type(clean_metric("a", np.int64(3))) is int
    assert clean_metric("a", np.float32(0.25)) == 0.25
    assert clean_metric("a", 1 / 3) == 0.333333
    assert clean_metric("a", 123456789.0) == 123457000.0
    assert clean_metric("a", np.bool_(True)) is True
    assert clean_metric("a", float("nan")) is None
    assert clean_metric("a", np.inf) is None
    assert clean_metric("a", pd.NA) is None
    assert clean_metric("a", np.str_("x")) == "x" and type(clean_metric("a", np.str_("x"))) is str
    assert clean_metric("a", np.array(2.5)) == 2.5
    for bad in ([1, 2], {"x": 1}, pd.Timestamp("2025-01-01"), np.array([1.0, 2.0])):
        with pytest.raises(TypeError, match="metric 'a'"):
            clean_metric("a", bad)


def test_record_metrics_prints_and_stores(capsys):
    ctx = _setup()
    out = ctx.record_metrics({"auc": np.float64(0.812345678), "n": np.int32(5), "model": "rf",
                              "missing": np.nan})
    assert out is None  # no stray value at the end of a cell
    assert ctx.metrics == {"auc": 0.812346, "n": 5, "model": "rf", "missing": None}
    text = capsys.readouterr().out
    assert "Headline metrics of 99_test:" in text
    assert 'auc     = 0.812346' in text and 'model   = "rf"' in text
    assert "missing = null" in text


def test_record_metrics_enforces_the_chapter_contract():
    ctx = setup("03_rfm_segments", dataset="synthetic")
    with pytest.raises(ValueError, match="champions_share"):
        ctx.record_metrics({"n_customers": 10})
    ctx.record_metrics({name: None for name in CHAPTER_METRICS["03_rfm_segments"]})
    with pytest.raises(TypeError, match="names"):
        ctx.record_metrics({1: 2})


def test_contract_covers_the_six_chapters():
    stems = sorted(p.stem for p in (ROOT / "notebooks" / "src").glob("[0-9][0-9]_*.py"))
    assert sorted(CHAPTER_METRICS) == stems
    assert len(stems) == 6


def test_skip_prints_the_standard_note_and_remembers(capsys):
    ctx = _setup()
    ctx.skip("3. Funnel", "the dataset has no events table")
    ctx.skip("5. Loyalty", "no loyalty table")
    ctx.skip("3. Funnel", "no events")  # same section again: replaced, not duplicated
    text = capsys.readouterr().out
    assert "Section 3. Funnel skipped: the dataset has no events table" in text
    assert ctx.skipped == [{"section": "5. Loyalty", "reason": "no loyalty table"},
                           {"section": "3. Funnel", "reason": "no events"}]
    with pytest.raises(ValueError):
        ctx.skip("4", "")


# ---------------------------------------------------------------------------- load


class _FakeDataset:
    name = "tiny"
    default_analysis_date = pd.Timestamp("2024-06-30")
    quality = pd.DataFrame({
        "table": ["customers", "orders"], "rows_in": [10, 25], "rows_kept": [10, 23],
        "rows_repaired": [1, 0], "rows_set_aside": [0, 2],
    })


def test_load_uses_the_data_layer_and_defaults_the_date(monkeypatch, capsys):
    calls = []
    fake = types.ModuleType("helpers.data")
    fake.load_dataset = lambda name: calls.append(name) or _FakeDataset()
    monkeypatch.setitem(sys.modules, "helpers.data", fake)
    ctx = _setup(dataset="tiny", analysis_date=None, seed=5)
    ds = ctx.load()
    assert calls == ["tiny"] and isinstance(ds, _FakeDataset) and ctx.ds is ds
    assert ctx.analysis_date == pd.Timestamp("2024-06-30")
    text = capsys.readouterr().out
    assert text.splitlines()[0] == "Dataset 'tiny': analysis date 2024-06-30, seed 5"
    assert "rows_set_aside" in text and "orders" in text
    assert "All 35 input rows accounted for (kept or set aside)." in text

    _FakeDataset.quality = _FakeDataset.quality.assign(rows_kept=[10, 20])
    try:
        assert "WARNING: 3 of 35 input rows are not accounted for." in ctx.load_summary(ds)
    finally:
        _FakeDataset.quality = _FakeDataset.quality.assign(rows_kept=[10, 23])


def test_explicit_analysis_date_wins_over_the_default(monkeypatch):
    fake = types.ModuleType("helpers.data")
    fake.load_dataset = lambda name: _FakeDataset()
    monkeypatch.setitem(sys.modules, "helpers.data", fake)
    ctx = _setup(analysis_date="2024-01-31")
    ctx.load()
    assert ctx.analysis_date == pd.Timestamp("2024-01-31")


# ---------------------------------------------------------------------------- package


def test_package_import_is_light_and_lazy():
    code = ("import sys, helpers, helpers.paths; "
            "assert 'pandas' not in sys.modules, 'pandas imported eagerly'; "
            "assert 'matplotlib' not in sys.modules; "
            "helpers.setup; assert 'pandas' in sys.modules; "
            "assert helpers.read_metrics.__module__ == 'helpers.notebook'; print('ok')")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=os.sep)
    assert res.returncode == 0, res.stderr
    assert helpers.setup is setup and helpers.Context is Context
    with pytest.raises(AttributeError):
        helpers.no_such_name  # noqa: B018


def test_load_dataset_is_reexported_from_the_data_layer():
    data = pytest.importorskip("helpers.data")
    if not hasattr(data, "load_dataset"):
        pytest.fail("helpers.data has no load_dataset")
    assert helpers.load_dataset is data.load_dataset


# ---------------------------------------------------------------------------- in a kernel


@pytest.mark.slow
def test_outputs_in_a_kernel_and_read_back(tmp_path):
    """Run setup/skip/plot/record_metrics in a real kernel; read the metrics back."""
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.cells = [
        nbformat.v4.new_code_cell(
            "import warnings\nimport numpy as np\nimport helpers as hb\n"
            f"ctx = hb.setup('99_test', dataset='synthetic', seed=1, "
            f"export_dir={str(tmp_path / 'exp')!r})"),
        nbformat.v4.new_code_cell("ctx.skip('2. Events', 'no events table')"),
        nbformat.v4.new_code_cell(
            "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\n"
            "warnings.warn('noise', FutureWarning)\nplt.show()"),
        nbformat.v4.new_code_cell(
            "ctx.record_metrics({'auc': np.float64(0.1234567), 'k': np.int64(4), "
            "'best': 'rf', 'none': float('nan')})"),
    ]
    client = NotebookClient(nb, kernel_name="python3", timeout=120,
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    path = tmp_path / "run.ipynb"
    nbformat.write(nb, path)

    outputs = [o for c in nb.cells for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "stream" and o.name == "stderr"]
    assert not [o for o in outputs if o.output_type in ("error", "execute_result")]
    skip_out = nb.cells[1].outputs[0]
    assert skip_out.metadata["handbook"] == "skip"
    assert skip_out.data["text/markdown"] == "> **Section 2. Events skipped:** no events table"
    plot_outs = nb.cells[2].outputs
    assert [sorted(o.data) for o in plot_outs] == [["image/png", "text/plain"]]
    metrics_out = nb.cells[3].outputs[0]
    assert metrics_out.output_type == "display_data"
    assert metrics_out.metadata["handbook"] == "metrics"
    assert metrics_out.data["application/json"] == {"auc": 0.123457, "k": 4, "best": "rf",
                                                    "none": None}
    assert metrics_out.data["text/plain"].startswith("Headline metrics of 99_test:")

    metrics, skipped = read_metrics(path)
    assert metrics == {"auc": 0.123457, "k": 4, "best": "rf", "none": None}
    assert skipped == [{"section": "2. Events", "reason": "no events table"}]


def test_read_metrics_of_a_notebook_that_stopped_early(tmp_path):
    """Without a metrics output, skipped sections still come from the skip notes."""
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("ctx.skip(...)")
    cell.outputs = [nbformat.v4.new_output(
        "display_data", data={"text/plain": "Section 4 skipped: x"},
        metadata={"handbook": "skip", "section": "4", "reason": "x"})]
    nb.cells = [cell, nbformat.v4.new_code_cell("1/0")]
    path = tmp_path / "partial.ipynb"
    nbformat.write(nb, path)
    assert read_metrics(path) == ({}, [{"section": "4", "reason": "x"}])

