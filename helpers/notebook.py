"""Chapter set-up and the metrics/skip protocol shared by every notebook.

A chapter notebook starts with::

    import helpers as hb
    ctx = hb.setup("02_lifecycle", dataset=dataset, analysis_date=analysis_date, seed=seed,
                   export_dir=export_dir, horizon_weeks=horizon_weeks)
    ds = ctx.load()                 # loads + prints the validation summary

and ends with::

    ctx.record_metrics({"bgnbd_r": r, ...})

:func:`setup` makes a run reproducible and its text output stable (seeds, display options, plot
style, warnings filtered once), and validates the common parameters with clear messages. The
:class:`Context` it returns carries the parameters, a seeded random generator, the analysis date
and the export folder.

Metrics and skipped sections are published as notebook outputs carrying metadata
(``{"handbook": "metrics"}`` / ``{"handbook": "skip"}``), so that :func:`read_metrics` can read
them back from an executed notebook without any extra files (the runner uses it to write
``metrics.json``).
"""
from __future__ import annotations

import datetime as _dt
import json
import logging
import math
import os
import random
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from helpers.paths import resolve

#: Metric names each chapter must record (the metrics contract of the chapter issues). A chapter
#: records ``None`` for a metric its data cannot support; extra metrics are allowed.
CHAPTER_METRICS: dict[str, tuple[str, ...]] = {
    "01_user_portrait": (
        "rows_in", "rows_kept", "rows_set_aside", "n_customers", "k", "silhouette",
        "persona_ari",
    ),
    "02_lifecycle": (
        "bgnbd_r", "bgnbd_alpha", "bgnbd_a", "bgnbd_b", "bgnbd_loglik", "gg_p", "gg_q",
        "gg_gamma", "holdout_repeat_purchases_predicted", "holdout_repeat_purchases_actual",
        "palive_auc_vs_truth", "n_active_customers",
    ),
    "03_rfm_segments": (
        "n_customers", "n_segments", "top20_revenue_share", "champions_share",
        "high_value_repurchase_rate", "low_value_repurchase_rate",
    ),
    "04_churn_warning": (
        "churn_rate", "best_model", "auc_best", "auc_oracle", "pr_auc_best", "brier_best",
        "top_decile_lift", "expected_retained_margin",
    ),
    "05_recommendation": (
        "k", "best_model", "ndcg_at_k_best", "ndcg_at_k_popularity", "precision_at_k_best",
        "recall_at_k_best", "coverage_best", "n_rules",
    ),
    "06_loyalty_roi": (
        "nps", "naive_effect", "experiment_effect", "experiment_ci_low", "experiment_ci_high",
        "observational_effect", "true_effect", "roi",
    ),
}

#: Output-metadata key/values that mark the handbook's machine-readable outputs.
META_KEY = "handbook"
META_METRICS = "metrics"
META_SKIP = "skip"
META_SKIPPED = "skipped"  # list of {"section", "reason"} on the metrics output

#: Significant digits kept for float metrics (stable across BLAS/platform noise).
METRIC_DIGITS = 6

Metric = int | float | str | bool | None

_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


# --------------------------------------------------------------------------------------------
# parameter validation


def _check_dataset(dataset: object) -> str:
    if isinstance(dataset, os.PathLike):
        dataset = os.fspath(dataset)
    if not isinstance(dataset, str) or not dataset.strip():
        raise ValueError(
            "parameter 'dataset' must be given: a dataset name such as 'synthetic' "
            f"(a folder under data/) or a path to a dataset folder; got {dataset!r}"
        )
    return dataset.strip()


def _check_analysis_date(value: object) -> pd.Timestamp | None:
    if value is None:
        return None
    if isinstance(value, _dt.date):  # also datetime and pd.Timestamp
        ts = pd.Timestamp(value)
        if ts != ts.normalize():
            raise ValueError(
                f"parameter 'analysis_date' must be a date without a time of day; got {value!r}"
            )
        return ts
    if isinstance(value, str) and _DATE_RE.match(value.strip()):
        try:
            return pd.Timestamp(_dt.date.fromisoformat(value.strip()))
        except ValueError as exc:
            raise ValueError(
                f"parameter 'analysis_date' is not a real calendar date: {value!r} ({exc})"
            ) from None
    raise ValueError(
        "parameter 'analysis_date' must be None (use the dataset's default) or a date written "
        f"'YYYY-MM-DD'; got {value!r}"
    )


def _check_seed(seed: object) -> int:
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"parameter 'seed' must be an integer; got {seed!r}")
    if seed < 0:
        raise ValueError(f"parameter 'seed' must be >= 0; got {seed}")
    return int(seed)


def _check_chapter(chapter: object) -> str:
    if not isinstance(chapter, str) or not chapter.strip():
        raise ValueError(f"chapter must be a non-empty name such as '02_lifecycle'; got {chapter!r}")
    return chapter.strip()


# --------------------------------------------------------------------------------------------
# environment: seeds, display, plots, warnings


def _seed_everything(seed: int) -> np.random.Generator:
    random.seed(seed)
    np.random.seed(seed)  # for libraries that still draw from the legacy global state
    return np.random.default_rng(seed)


def _configure_display() -> None:
    pd.set_option("display.max_columns", 40)
    pd.set_option("display.max_rows", 30)
    pd.set_option("display.min_rows", 10)
    pd.set_option("display.width", 120)
    pd.set_option("display.max_colwidth", 60)
    pd.set_option("display.precision", 3)
    pd.set_option("display.show_dimensions", "truncate")
    # numpy 2 prints scalars as `np.float64(0.5)`; the 1.25 style prints `0.5`.
    np.set_printoptions(precision=4, suppress=True, linewidth=120, legacy="1.25")


def _in_kernel() -> Any:
    """The running IPython kernel shell, or None outside a Jupyter kernel."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is a dependency
        return None
    ip = get_ipython()
    return ip if ip is not None and getattr(ip, "kernel", None) is not None else None


def _configure_plots() -> None:
    import matplotlib

    ip = _in_kernel()
    if ip is not None:
        ip.run_line_magic("matplotlib", "inline")
    else:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(context="notebook", style="whitegrid", palette="deep")
    plt.rcParams.update({
        "figure.figsize": (8.0, 4.5),
        "figure.dpi": 100,
        "savefig.dpi": 100,
        "savefig.bbox": "tight",
        "axes.titlesize": 12,
        "axes.titleweight": "bold",
        "svg.hashsalt": "crm-handbook",  # deterministic SVG ids
    })


def _filter_warnings() -> None:
    """Silence library warnings, so no stderr noise reaches notebook outputs (and nbval).

    Idempotent: ``warnings.filterwarnings`` replaces an identical filter instead of adding a copy,
    so calling :func:`setup` again does not grow the filter list.
    """
    for category in (FutureWarning, DeprecationWarning, PendingDeprecationWarning, UserWarning,
                     pd.errors.PerformanceWarning):
        warnings.filterwarnings("ignore", category=category)
    # Statistical libraries report numerical remarks as RuntimeWarning subclasses.
    warnings.filterwarnings(
        "ignore", category=RuntimeWarning,
        module=r"(lifelines|statsmodels|sklearn|scipy|seaborn|matplotlib)(\.|$)",
    )
    for name in ("matplotlib", "matplotlib.font_manager", "papermill", "traitlets"):
        logging.getLogger(name).setLevel(logging.ERROR)
    os.environ["TQDM_DISABLE"] = "1"  # no progress bars inside notebooks


# --------------------------------------------------------------------------------------------
# publishing outputs


def _publish(data: dict[str, Any], metadata: dict[str, Any]) -> None:
    """Display a mime bundle with output metadata; print its text outside a kernel."""
    if _in_kernel() is not None:
        from IPython.display import display

        display(data, raw=True, metadata=metadata)
    else:
        print(data["text/plain"])


def _round_sig(x: float, digits: int = METRIC_DIGITS) -> float:
    return float(f"{x:.{digits}g}") if x != 0 else 0.0


def clean_metric(name: str, value: object) -> Metric:
    """Convert one metric value to plain JSON (see :meth:`Context.record_metrics`)."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        f = float(value)
        return _round_sig(f) if math.isfinite(f) else None
    if isinstance(value, str):
        return str(value)
    raise TypeError(
        f"metric {name!r} must be a number, a string, a bool or None; got "
        f"{type(value).__name__} {value!r}"
    )


def format_metrics(chapter: str, metrics: Mapping[str, Metric],
                   skipped: list[dict[str, str]]) -> str:
    """Plain-text rendering of recorded metrics (the ``text/plain`` part of the output)."""
    width = max((len(k) for k in metrics), default=0)
    lines = [f"Headline metrics of {chapter}:"]
    lines += [f"  {k:<{width}} = {json.dumps(v, ensure_ascii=False)}" for k, v in metrics.items()]
    if skipped:
        lines.append("Sections skipped: " + "; ".join(s["section"] for s in skipped))
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# the context


@dataclass
class Context:
    """What a chapter needs after :func:`setup`: parameters, randomness, dates and outputs.

    Attributes:
        chapter: the notebook stem, e.g. ``"02_lifecycle"``.
        dataset: the dataset name or path given as parameter.
        params: every parameter passed to :func:`setup` (common and chapter-specific).
        seed: the seed; ``rng`` is a ``numpy.random.Generator`` seeded with it.
        analysis_date: the analysis date as a ``pd.Timestamp``; ``None`` until :meth:`load` when
            the parameter was ``None`` (then the dataset's default is used).
        export_dir: folder for files meant for other tools (absolute; created lazily).
        ds: the loaded dataset (after :meth:`load`).
        skipped: sections skipped so far, as ``{"section", "reason"}`` dicts.
        metrics: the cleaned metrics after :meth:`record_metrics`.
    """

    chapter: str
    dataset: str
    params: dict[str, Any]
    seed: int
    rng: np.random.Generator
    analysis_date: pd.Timestamp | None
    export_dir: Path
    ds: Any = None
    skipped: list[dict[str, str]] = field(default_factory=list)
    metrics: dict[str, Metric] | None = None

    def load(self) -> Any:
        """Load and validate the dataset (``helpers.data.load_dataset``), print a summary.

        The validated result comes from the dataset cache when the runner's data check (or an
        earlier chapter) built it; big tables such as ``events`` are then read only when the
        chapter first uses them (see ``helpers.data.cache``). The printed summary is the same.

        Sets :attr:`analysis_date` to the dataset's default when the parameter was ``None``.
        """
        from helpers.data import load_dataset  # lazy: the data layer is heavy

        ds = load_dataset(self.dataset)
        if self.analysis_date is None:
            self.analysis_date = pd.Timestamp(ds.default_analysis_date).normalize()
        self.ds = ds
        print(self.load_summary(ds))
        return ds

    def load_summary(self, ds: Any) -> str:
        """Short, deterministic text: dataset, analysis date and rows accounted per table."""
        name = getattr(ds, "name", self.dataset)
        date = self.analysis_date.date().isoformat() if self.analysis_date is not None else "-"
        lines = [f"Dataset {name!r}: analysis date {date}, seed {self.seed}"]
        quality = getattr(ds, "quality", None)
        if isinstance(quality, pd.DataFrame) and not quality.empty:
            cols = [c for c in ("table", "rows_in", "rows_kept", "rows_repaired",
                                "rows_set_aside") if c in quality.columns]
            lines.append(quality[cols].to_string(index=False))
            if {"rows_in", "rows_kept", "rows_set_aside"} <= set(cols):
                n_in = int(quality["rows_in"].sum())
                n_out = int(quality["rows_kept"].sum() + quality["rows_set_aside"].sum())
                if n_in == n_out:
                    lines.append(f"All {n_in:,} input rows accounted for (kept or set aside).")
                else:
                    lines.append(f"WARNING: {n_in - n_out:,} of {n_in:,} input rows are not "
                                 "accounted for.")
        return "\n".join(lines)

    def export_path(self, name: str) -> Path:
        """Path for an exported file ``<export_dir>/<chapter>/<name>``; creates the folder."""
        rel = Path(name)
        if rel.is_absolute() or ".." in rel.parts or not rel.parts:
            raise ValueError(f"export name must be a relative file name; got {name!r}")
        path = self.export_dir / self.chapter / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def skip(self, section: str, reason: str) -> None:
        """Say visibly that a section cannot run on this data, and remember it.

        Displays the standard note "Section <section> skipped: <reason>" (Markdown in the
        notebook) and records it for the metrics output and the runner's ``metrics.json``.
        """
        section, reason = str(section).strip(), str(reason).strip()
        if not section or not reason:
            raise ValueError("skip() needs a section name and a reason")
        self.skipped = [s for s in self.skipped if s["section"] != section]
        self.skipped.append({"section": section, "reason": reason})
        _publish(
            {"text/markdown": f"> **Section {section} skipped:** {reason}",
             "text/plain": f"Section {section} skipped: {reason}"},
            {META_KEY: META_SKIP, "section": section, "reason": reason},
        )

    def record_metrics(self, metrics: Mapping[str, object]) -> None:
        """Record the chapter's headline metrics as one machine-readable output.

        Values must be numbers, strings, bools or ``None``: numpy scalars are converted, floats
        rounded to 6 significant digits, NaN and infinities become ``None``. Every metric name
        the chapter's contract (:data:`CHAPTER_METRICS`) lists must be present (``None`` when
        the data cannot support it). The output carries ``application/json`` (the metrics) and a
        ``text/plain`` rendering, with metadata ``{"handbook": "metrics", "skipped": [...]}``.
        Returns nothing, so it can be the last line of a cell without a stray value.
        """
        if not isinstance(metrics, Mapping):
            raise TypeError(f"record_metrics expects a dict of name -> value; got {type(metrics)}")
        clean: dict[str, Metric] = {}
        for name, value in metrics.items():
            if not isinstance(name, str) or not name:
                raise TypeError(f"metric names must be non-empty strings; got {name!r}")
            clean[name] = clean_metric(name, value)
        missing = [m for m in CHAPTER_METRICS.get(self.chapter, ()) if m not in clean]
        if missing:
            raise ValueError(
                f"{self.chapter} must record the contract metrics {missing} "
                "(use None for a metric the data cannot support)"
            )
        self.metrics = clean
        skipped = [dict(s) for s in self.skipped]
        _publish(
            {"application/json": clean, "text/plain": format_metrics(self.chapter, clean, skipped)},
            {META_KEY: META_METRICS, META_SKIPPED: skipped},
        )


def setup(chapter: str, *, dataset: str, analysis_date: str | None = None, seed: int = 42,
          export_dir: str | os.PathLike[str] = "reports/exports", **chapter_params: Any) -> Context:
    """Prepare a chapter run and return its :class:`Context`.

    Validates the common parameters (clear errors for a missing dataset, a malformed
    ``analysis_date`` or a non-integer seed), seeds ``random`` and ``numpy``, sets compact pandas
    and numpy display options, selects an inline-safe matplotlib backend with the handbook's
    seaborn style and figure size, and filters library warnings.

    Args:
        chapter: notebook stem, e.g. ``"03_rfm_segments"``.
        dataset: dataset name (``data/<name>/``) or path.
        analysis_date: ``"YYYY-MM-DD"`` or ``None`` for the dataset's default.
        seed: non-negative integer seed.
        export_dir: folder for exports; a relative path is resolved against the project root.
        **chapter_params: the chapter's own parameters, kept in ``ctx.params``.
    """
    chapter = _check_chapter(chapter)
    dataset = _check_dataset(dataset)
    date = _check_analysis_date(analysis_date)
    seed = _check_seed(seed)
    if export_dir is None or (isinstance(export_dir, str) and not export_dir.strip()):
        raise ValueError("parameter 'export_dir' must be a folder path")
    _filter_warnings()
    _configure_display()
    _configure_plots()
    rng = _seed_everything(seed)
    params = {"dataset": dataset, "analysis_date": analysis_date, "seed": seed,
              "export_dir": os.fspath(export_dir), **chapter_params}
    return Context(chapter=chapter, dataset=dataset, params=params, seed=seed, rng=rng,
                   analysis_date=date, export_dir=resolve(export_dir))


def read_metrics(notebook_path: str | os.PathLike[str]) -> tuple[dict[str, Metric],
                                                                   list[dict[str, str]]]:
    """Read recorded metrics and skipped sections back from an executed notebook.

    Returns ``(metrics, skipped)``: the last metrics output's values (``{}`` when the notebook
    recorded none, e.g. it failed earlier) and the skipped sections (from the metrics output, or
    collected from the skip notes when there is no metrics output).
    """
    import nbformat

    nb = nbformat.read(os.fspath(notebook_path), as_version=4)
    metrics: dict[str, Metric] = {}
    skipped: list[dict[str, str]] | None = None
    notes: list[dict[str, str]] = []
    for cell in nb.cells:
        if cell.get("cell_type") != "code":
            continue
        for out in cell.get("outputs", []):
            meta = out.get("metadata", {}) or {}
            kind = meta.get(META_KEY)
            if kind == META_METRICS:
                data = out.get("data", {}).get("application/json", {})
                metrics = json.loads(data) if isinstance(data, str) else dict(data)
                skipped = [dict(s) for s in meta.get(META_SKIPPED, [])]
            elif kind == META_SKIP:
                notes = [n for n in notes if n["section"] != meta.get("section")]
                notes.append({"section": str(meta.get("section")),
                              "reason": str(meta.get("reason"))})
    return metrics, (skipped if skipped is not None else notes)


__all__ = ["CHAPTER_METRICS", "Context", "Metric", "clean_metric", "format_metrics",
           "read_metrics", "setup"]
