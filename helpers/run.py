"""The handbook runner: execute chapter notebooks with papermill and collect a report.

Usage::

    python -m helpers.run --params params/default.yaml [--out DIR] [--chapters 01,03]
                          [-p name=value ...] [--on-error stop|continue]

A params file looks like::

    common:                      # passed to every notebook that declares the name
      dataset: synthetic
      analysis_date: "2025-12-31"
      seed: 42
    chapters:                    # per chapter, by notebook stem
      02_lifecycle:
        horizon_weeks: 52

``-p name=value`` overrides a parameter in every selected chapter that declares it;
``-p 02_lifecycle.name=value`` in that chapter only. Values are read as YAML scalars
(``-p seed=7`` is an int, ``-p analysis_date=null`` is None). Every name is checked against the
parameters the notebooks declare (their ``parameters`` cell) before anything runs: an unknown
name is an error, not a silent no-op.

Each run writes to a new folder (default ``reports/<run date>/``; an existing folder is never
reused: ``-2``, ``-3``, ... are appended): the executed notebooks, an HTML export of each, the
exports of the chapters (``exports/``) and ``metrics.json`` (see :func:`summary`). A failing
chapter keeps its partly executed notebook, is marked failed, and by default stops the run; the
exit code is then 1 and the message names the chapter. Configuration errors exit with 2.

Before any chapter runs, every dataset the chapters will read is fingerprinted
(:func:`helpers.data.fingerprint`) and loaded once (:func:`helpers.data.load_dataset`); its
data-quality report goes to ``data_quality.txt``. A dataset that fails its contract (or whose
privacy salt is not set) stops the run with exit code 2 before any chapter runs, the message in
``data_quality.txt`` and on stderr. The fingerprint is taken again after the chapters; if the data
changed during the run, the run fails with exit code 1. The data check also builds the
validated-dataset cache (:mod:`helpers.data.cache`), so the chapters do not validate the data
again and read big tables only when they use them. It runs in a child process
(:func:`check_in_child`), so its memory is returned before the chapters run; a check whose process
dies (e.g. killed when memory runs out) stops the run with exit code 2 and ``run_status: data
check crashed``.

A relative dataset path is resolved once, from the folder the runner was started in (else from
the project root), and the chapters receive the absolute path (:func:`pin_datasets`). Ctrl-C
stops the run with a short message and exit code 130; ``metrics.json`` then says
``run_status: interrupted`` and the chapter that was running has status ``interrupted``.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import json
import os
import platform
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

# Before anything imports jupyter_client: prefer the kernelspecs of this environment (the venv's
# `python3`) over user-wide ones, and keep the debugger's frozen-modules notice off stderr.
os.environ.setdefault("JUPYTER_PREFER_ENV_PATH", "1")
os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")

from helpers.paths import NOTEBOOKS, REPORTS, ROOT  # noqa: E402

KERNEL_NAME = "python3"
LOCK_NAME = ".run.lock"
COMMON_KEYS_RUNNER_SETS = ("export_dir",)
VERSIONED_PACKAGES = (
    "pandas", "numpy", "scipy", "scikit-learn", "statsmodels", "matplotlib", "seaborn",
    "pyarrow", "lifelines", "sqlalchemy", "papermill", "nbformat", "nbconvert", "nbclient",
    "ipykernel", "ipython", "jupyterlab", "pyyaml",
)  # every direct dependency of pyproject.toml (tests/test_runner.py checks)
DATA_QUALITY_NAME = "data_quality.txt"
INTERRUPTED = "interrupted"
DATA_CRASHED = "data check crashed"  # run_status when the data-check process died
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a Ctrl-C


class ConfigError(ValueError):
    """A problem with the run configuration, found before any notebook runs."""


@dataclass
class ChapterResult:
    """Outcome of one chapter."""

    status: str = "not run"  # "ok" | "failed" | "not run" | "interrupted"
    seconds: float | None = None
    error: str | None = None
    sections_skipped: list[dict[str, str]] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)

    def status_dict(self) -> dict[str, Any]:
        return {"status": self.status, "seconds": self.seconds, "error": self.error,
                "sections_skipped": self.sections_skipped}


# --------------------------------------------------------------------------------------------
# configuration


def _plain(value: Any) -> Any:
    """YAML values as papermill-friendly plain values (dates become 'YYYY-MM-DD' strings)."""
    if isinstance(value, _dt.datetime):
        return value.isoformat()
    if isinstance(value, _dt.date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def load_params(path: str | os.PathLike[str] | None) -> tuple[dict[str, Any], dict[str, dict]]:
    """Read a params YAML file into ``(common, chapters)`` (both empty for ``None``)."""
    import yaml

    if path is None:
        return {}, {}
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"params file not found: {path}")
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, ValueError) as exc:
        raise ConfigError(f"params file {path} is not valid YAML: {exc}") from None
    if not isinstance(raw, Mapping):
        raise ConfigError(f"params file {path} must be a mapping with 'common' and 'chapters'")
    unknown = set(raw) - {"common", "chapters"}
    if unknown:
        raise ConfigError(f"params file {path}: unknown top-level keys {sorted(unknown)} "
                          "(expected 'common' and 'chapters')")
    common = raw.get("common") or {}
    chapters = raw.get("chapters") or {}
    if not isinstance(common, Mapping) or not isinstance(chapters, Mapping):
        raise ConfigError(f"params file {path}: 'common' and 'chapters' must be mappings")
    for stem, section in chapters.items():
        if section is not None and not isinstance(section, Mapping):
            raise ConfigError(f"params file {path}: chapters.{stem} must be a mapping")
    return _plain(dict(common)), {str(k): _plain(dict(v or {})) for k, v in chapters.items()}


def parse_overrides(items: Sequence[str]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Parse ``-p name=value`` / ``-p stem.name=value`` into (global, per-chapter) overrides."""
    import yaml

    glob: dict[str, Any] = {}
    scoped: dict[str, dict[str, Any]] = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ConfigError(f"-p expects name=value; got {item!r}")
        try:
            value = _plain(yaml.safe_load(text)) if text.strip() else ""
        except (yaml.YAMLError, ValueError):  # e.g. 2025-13-01: pass the text on as given
            value = text
        if "." in name:
            stem, _, pname = name.partition(".")
            scoped.setdefault(stem, {})[pname] = value
        else:
            glob[name] = value
    return glob, scoped


def discover(notebooks_dir: Path) -> dict[str, Path]:
    """Chapter notebooks ``NN_name.ipynb`` in ``notebooks_dir``, by stem, in order."""
    return {p.stem: p for p in sorted(notebooks_dir.glob("[0-9][0-9]_*.ipynb"))}


def select(available: Sequence[str], spec: str | None) -> list[str]:
    """Chapters chosen by ``--chapters`` ("01,03" or full stems); all when ``spec`` is empty."""
    if not spec:
        return list(available)
    chosen: list[str] = []
    for token in (t.strip() for t in spec.split(",")):
        if not token:
            continue
        matches = [s for s in available if s == token or s.split("_", 1)[0] == token]
        if not matches:
            raise ConfigError(f"--chapters: no chapter {token!r}; available: "
                              f"{', '.join(available)}")
        chosen += [m for m in matches if m not in chosen]
    return [s for s in available if s in chosen]


def declared_parameters(path: Path) -> dict[str, str | None]:
    """Parameters declared in a notebook's ``parameters`` cell, with their default's source text.

    Parses the cell with :mod:`ast` (every top-level assignment is a parameter) rather than
    ``papermill.inspect_notebook``, whose line-based parser silently drops a parameter whose
    comment contains ``=`` (e.g. ``window = 90  # days (>= 30)``).
    """
    import ast

    try:  # plain JSON: nbformat's schema validation of a large executed notebook takes seconds
        nb = json.loads(Path(path).read_text(encoding="utf-8"))
        cells = [c for c in nb["cells"] if c.get("cell_type") == "code"
                 and "parameters" in c.get("metadata", {}).get("tags", [])]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(f"cannot read {Path(path).name}: {exc}") from None
    if not cells:
        return {}
    source = cells[0]["source"]
    source = "".join(source) if isinstance(source, list) else source
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise ConfigError(f"{path.name}: the parameters cell is not valid Python: {exc}") from None
    declared: dict[str, str | None] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets = [n for t in node.targets
                       for n in (t.elts if isinstance(t, (ast.Tuple, ast.List)) else [t])]
        elif isinstance(node, ast.AnnAssign):
            targets = [node.target]
        else:
            continue
        default = ast.get_source_segment(source, node.value) if node.value else None
        for target in targets:
            if isinstance(target, ast.Name):
                declared[target.id] = default
    return declared


@dataclass
class Plan:
    """What will run: chapters in order and the parameters each receives."""

    chapters: list[str]
    notebooks: dict[str, Path]
    parameters: dict[str, dict[str, Any]]


def plan_run(notebooks: Mapping[str, Path], selected: Sequence[str], common: Mapping[str, Any],
             chapter_sections: Mapping[str, Mapping[str, Any]], overrides: Mapping[str, Any],
             scoped_overrides: Mapping[str, Mapping[str, Any]], export_dir: Path) -> Plan:
    """Resolve every selected chapter's parameters, rejecting unknown names up front."""
    declared = {stem: declared_parameters(path) for stem, path in notebooks.items()}
    errors: list[str] = []
    all_declared = set().union(*declared.values()) if declared else set()

    for name in common:
        if name not in all_declared:
            errors.append(f"common parameter {name!r} is not declared by any notebook")
    for source, sections in (("params file chapters", chapter_sections),
                             ("-p", scoped_overrides)):
        for stem, section in sections.items():
            if stem not in declared:
                errors.append(f"{source}: no chapter {stem!r} (available: "
                              f"{', '.join(declared)})")
                continue
            for name in section:
                if name not in declared[stem]:
                    errors.append(f"{source}: {stem} declares no parameter {name!r} "
                                  f"(it declares: {', '.join(declared[stem]) or 'none'})")
    selected_declared = set().union(*(declared[s] for s in selected)) if selected else set()
    for name in overrides:
        if name not in selected_declared:
            errors.append(f"-p {name}: no selected chapter declares a parameter {name!r}")
    if errors:
        raise ConfigError("unknown parameter names:\n  " + "\n  ".join(errors))

    parameters: dict[str, dict[str, Any]] = {}
    for stem in selected:
        names = declared[stem]
        params: dict[str, Any] = {}
        if "export_dir" in names:
            params["export_dir"] = str(export_dir)
        params.update({k: v for k, v in common.items() if k in names})
        params.update(chapter_sections.get(stem, {}))
        params.update({k: v for k, v in overrides.items() if k in names})
        params.update(scoped_overrides.get(stem, {}))
        parameters[stem] = params
    return Plan(list(selected), {s: notebooks[s] for s in selected}, parameters)


# --------------------------------------------------------------------------------------------
# output folder


def create_run_dir(out: Path | None, today: _dt.date | None = None) -> Path:
    """Create a new, empty run folder atomically; never reuse an existing one.

    ``out`` defaults to ``reports/<today>``. When the folder exists, ``-2``, ``-3``, ... are
    appended until ``mkdir`` succeeds (``mkdir`` is atomic, so two runs never share a folder).
    """
    base = Path(out) if out is not None else REPORTS / (today or _dt.date.today()).isoformat()
    base = base.expanduser().absolute()
    base.parent.mkdir(parents=True, exist_ok=True)
    candidate, n = base, 1
    while True:
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            n += 1
            candidate = base.with_name(f"{base.name}-{n}")


class _no_lock:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


class RunLock:
    """``<run dir>/.run.lock`` held while a run writes there (created exclusively)."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / LOCK_NAME

    def __enter__(self) -> RunLock:
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            raise ConfigError(f"{self.path.parent} is locked by another run "
                              f"({self.path.read_text(errors='replace').strip()})") from None
        with os.fdopen(fd, "w") as fh:
            fh.write(f"pid {os.getpid()} since {_now()}\n")
        return self

    def __exit__(self, *exc: object) -> None:
        self.path.unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------
# execution


def _now() -> str:
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


def package_versions() -> dict[str, str | None]:
    """Python and key package versions, for the record in ``metrics.json``."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in VERSIONED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _error_text(exc: BaseException) -> str:
    ename = getattr(exc, "ename", None)
    if ename:  # papermill.PapermillExecutionError
        cell = getattr(exc, "exec_count", None)
        where = f" (cell [{cell}])" if cell is not None else ""
        return f"{ename}: {getattr(exc, 'evalue', '')}{where}".strip()
    return f"{type(exc).__name__}: {exc}"


def execute_chapter(src: Path, dest: Path, parameters: Mapping[str, Any], cwd: Path,
                    timeout: float | None = None) -> None:
    """Run one notebook with papermill into ``dest`` (kernel and cwd passed explicitly)."""
    import logging

    import papermill as pm

    # Parameter names were checked up front (plan_run); papermill's own line-based check would
    # only add false "Unable to parse line" / "Passed unknown parameter" warnings.
    logging.getLogger("papermill.translators").setLevel(logging.ERROR)
    logging.getLogger("papermill").setLevel(logging.ERROR)
    with kernel_stderr_to(dest.with_suffix(".kernel.log")):
        pm.execute_notebook(
            str(src), str(dest), parameters=dict(parameters), kernel_name=KERNEL_NAME,
            cwd=str(cwd), progress_bar=False, log_output=False, execution_timeout=timeout,
            # keep the kernel's own start-up log (e.g. its transport notice) off the terminal
            extra_arguments=["--IPKernelApp.log_level=ERROR"],
        )


@contextlib.contextmanager
def kernel_stderr_to(path: Path) -> Iterator[None]:
    """Send what the notebook kernel writes to stderr into ``path`` instead of the terminal.

    The kernel inherits the runner's file descriptor 2 when it starts, so fd 2 points at
    ``path`` while a chapter runs and is restored afterwards. This keeps kernel-side noise off a
    scheduled run's console, notably the traceback ipykernel logs when Ctrl-C reaches it while
    the runner is already closing the connection. An empty log is removed.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with open(path, "ab") as log_file:
        os.dup2(log_file.fileno(), 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        try:
            if path.stat().st_size == 0:
                path.unlink()
        except OSError:
            pass


def export_html(notebook: Path) -> Path:
    """Write ``<notebook>.html`` next to an executed notebook (nbconvert's lab template)."""
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(str(notebook), as_version=4)
    body, _ = HTMLExporter(template_name="lab").from_notebook_node(nb)
    out = notebook.with_suffix(".html")
    out.write_text(body, encoding="utf-8")
    return out


def summary(plan: Plan, results: Mapping[str, ChapterResult], run_info: Mapping[str, Any],
            started: str, finished: str | None,
            data: Mapping[str, Any] | None = None, run_status: str | None = None
            ) -> dict[str, Any]:
    """The ``metrics.json`` document.

    ``chapters``: stem -> recorded metrics (``{}`` when none were recorded); ``status``: stem ->
    ``{"status": "ok"|"failed"|"not run", "seconds", "error", "sections_skipped"}``;
    ``parameters``: what each chapter received and where it came from; ``package_versions``;
    ``started``/``finished`` (ISO 8601, ``finished`` is null while running);
    ``data_check``: dataset -> ``{"status": "ok"|"failed"|"crashed", "error"}`` of the
    pre-flight load (``crashed``: its process died, e.g. out of memory);
    ``data_fingerprint``: ``{"before": {dataset: fingerprint}, "after": ... (null until the
    chapters are done), "changed": [datasets whose fingerprint differs]}``; ``run_status``:
    ``running`` (default while ``finished`` is null), ``ok``, ``failed``, ``data error``,
    ``data check crashed`` (exit code 2 as for a data error) or ``interrupted`` (Ctrl-C; the
    chapter that was running has status ``interrupted``).
    """
    if run_status is None:
        run_status = "running" if finished is None else "ok"
    data = data or {}
    return {
        "chapters": {s: results[s].metrics for s in plan.chapters},
        "status": {s: results[s].status_dict() for s in plan.chapters},
        "parameters": {**run_info, "chapters": plan.parameters},
        "package_versions": package_versions(),
        "data_check": data.get("check", {}),
        "data_fingerprint": data.get("fingerprint", {"before": {}, "after": None, "changed": []}),
        "started": started,
        "finished": finished,
        "run_status": run_status,
    }


def _write_json(path: Path, doc: Mapping[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def run(plan: Plan, run_dir: Path, run_info: Mapping[str, Any], *, on_error: str = "stop",
        cwd: Path = NOTEBOOKS, timeout: float | None = None, log=print,
        data: dict[str, Any] | None = None, lock: bool = True,
        results: dict[str, ChapterResult] | None = None) -> dict[str, ChapterResult]:
    """Execute the plan into ``run_dir``; returns the result per chapter.

    ``data`` is the pre-flight record (:func:`preflight`); when given, the datasets are
    fingerprinted again after the chapters and ``data["fingerprint"]["changed"]`` lists those
    that changed during the run. ``lock``: take the folder's lock (``False`` when the caller
    holds it already). A ``KeyboardInterrupt`` (Ctrl-C) marks the running chapter
    ``interrupted``, writes ``metrics.json`` (``run_status: interrupted``), releases the lock
    and is raised again. ``results``: the dict to fill (one :class:`ChapterResult` per chapter;
    default a new one), so that a caller sees the state reached when an exception escapes.
    """
    from helpers.notebook import read_metrics

    if results is None:
        results = {s: ChapterResult() for s in plan.chapters}
    started = _now()
    metrics_path = run_dir / "metrics.json"
    _write_json(metrics_path, summary(plan, results, run_info, started, None, data))
    n = len(plan.chapters)
    with RunLock(run_dir) if lock else _no_lock():
        for i, stem in enumerate(plan.chapters, 1):
            res = results[stem]
            dest = run_dir / f"{stem}.ipynb"
            log(f"[{i}/{n}] {stem} ...", end=" ", flush=True)
            t0 = time.perf_counter()
            try:
                execute_chapter(plan.notebooks[stem], dest, plan.parameters[stem], cwd, timeout)
                res.status = "ok"
            except KeyboardInterrupt:
                res.status, res.error = INTERRUPTED, "interrupted by the user (Ctrl-C)"
                res.seconds = round(time.perf_counter() - t0, 1)
                _write_json(metrics_path, summary(plan, results, run_info, started, _now(), data,
                                                  run_status=INTERRUPTED))
                raise
            except Exception as exc:  # noqa: BLE001 - any failure of a chapter is reported
                if getattr(exc, "ename", None) == "KeyboardInterrupt":  # Ctrl-C reached the kernel
                    res.status, res.error = INTERRUPTED, "interrupted by the user (Ctrl-C)"
                    res.seconds = round(time.perf_counter() - t0, 1)
                    _write_json(metrics_path, summary(plan, results, run_info, started, _now(),
                                                      data, run_status=INTERRUPTED))
                    raise KeyboardInterrupt from None
                res.status, res.error = "failed", _error_text(exc)
            finally:
                res.seconds = round(time.perf_counter() - t0, 1)
                if dest.exists() and res.status != INTERRUPTED:
                    try:
                        res.metrics, res.sections_skipped = read_metrics(dest)
                        export_html(dest)
                    except Exception as exc:  # noqa: BLE001
                        if res.status == "ok":
                            res.status, res.error = "failed", f"report: {_error_text(exc)}"
                if res.status != INTERRUPTED:
                    _write_json(metrics_path, summary(plan, results, run_info, started, None,
                                                      data))
            if res.status == "ok":
                skipped = len(res.sections_skipped)
                note = f" ({skipped} section{'s' * (skipped != 1)} skipped)" if skipped else ""
                log(f"ok in {res.seconds:.1f} s{note}", flush=True)
            else:
                log(f"FAILED in {res.seconds:.1f} s: {res.error}", flush=True)
                if on_error == "stop":
                    break
        if data is not None and "fingerprint" in data:
            fp = data["fingerprint"]
            fp["after"] = {name: _fingerprint(name) for name in fp["before"]}
            fp["changed"] = [name for name in fp["before"]
                             if _fp_hash(fp["before"][name]) != _fp_hash(fp["after"][name])
                             or fp["before"][name] is None]
        failed = any(r.status == "failed" for r in results.values())
        changed = bool(data and data.get("fingerprint", {}).get("changed"))
        _write_json(metrics_path, summary(plan, results, run_info, started, _now(), data,
                                          run_status="failed" if failed or changed else "ok"))
    return results


# --------------------------------------------------------------------------------------------
# data pre-flight


def pin_datasets(plan: Plan, cwd: Path | None = None) -> None:
    """Make every chapter's ``dataset`` parameter mean the same dataset everywhere.

    Notebooks run in ``notebooks/``, the runner in the caller's folder: a relative dataset path
    is resolved once here, from ``cwd`` (default: the working directory) and else from the
    project root, by :func:`helpers.data.config.locate` (the rule every load applies), and the
    absolute path is what the data check and the chapters receive. Names stay names.
    """
    from helpers.data.config import locate

    for params in plan.parameters.values():
        value = params.get("dataset")
        if isinstance(value, (str, os.PathLike)) and str(value).strip():
            params["dataset"] = locate(str(value).strip(), cwd)


def plan_datasets(plan: Plan) -> list[str]:
    """The datasets the planned chapters will read (their ``dataset`` parameter), in order.

    A chapter that does not receive ``dataset`` reads its declared default; a chapter that
    declares no ``dataset`` parameter reads none the runner knows of.
    """
    import ast

    names: list[str] = []
    for stem in plan.chapters:
        if "dataset" in plan.parameters[stem]:
            value = plan.parameters[stem]["dataset"]
        else:
            default = declared_parameters(plan.notebooks[stem]).get("dataset")
            if default is None:
                continue
            try:
                value = ast.literal_eval(default)
            except (ValueError, SyntaxError):
                continue
        if isinstance(value, (str, os.PathLike)) and str(value) not in names:
            names.append(str(value))
    return names


def _fingerprint(name: str) -> dict[str, Any] | None:
    """:func:`helpers.data.fingerprint`, or ``None`` when it cannot be taken."""
    from helpers.data import fingerprint

    try:
        return fingerprint(name)
    except Exception:  # noqa: BLE001 - e.g. a file removed; the load reports the reason
        return None


def _fp_hash(fp: Mapping[str, Any] | None) -> str | None:
    return None if fp is None else fp.get("sha256")


def _check_dataset(name: str) -> tuple[str, str]:
    """Load dataset ``name`` (validating it and filling the dataset cache) and return
    ``("ok", report)`` or ``("failed", error message)``. Runs in the data-check child process."""
    from helpers.data import load_dataset

    try:
        ds = load_dataset(name)
        report = ds.report()
        del ds
    except Exception as exc:  # noqa: BLE001 - DataContractError, a missing salt, a bad file
        msg = str(exc) if type(exc).__name__ == "DataContractError" else _error_text(exc)
        return "failed", msg
    return "ok", report


def _check_child_main(name: str, conn: Any) -> None:
    """Entry point of the data-check child: send :func:`_check_dataset`'s result to ``conn``."""
    try:
        result: tuple[str, str] = _check_dataset(name)
    except BaseException as exc:  # noqa: BLE001 - e.g. MemoryError: report it, do not hang
        result = ("failed", _error_text(exc))
    conn.send(result)
    conn.close()


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """Ignore SIGINT while a child process is started: the child inherits the disposition (an
    ignored signal stays ignored across exec, and Python keeps it so), so a Ctrl-C at the
    terminal, which reaches the whole process group, interrupts only the runner, which then
    stops the child (no second traceback from the child)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _crash_text(exitcode: int | None) -> str:
    import signal

    if exitcode is not None and exitcode < 0:
        try:
            sig = signal.Signals(-exitcode).name
        except ValueError:
            sig = f"signal {-exitcode}"
        hint = (" — most likely the system ran out of memory and its OOM killer stopped it; "
                "free memory or use a machine with more RAM") if -exitcode == signal.SIGKILL else ""
        return f"the data check's process was killed by {sig}{hint}"
    return f"the data check's process exited with code {exitcode} without a result"


def check_in_child(name: str, *, target: Any = None) -> tuple[str, str]:
    """:func:`_check_dataset` in a fresh child process (multiprocessing ``spawn``).

    Validating a big dataset takes gigabytes that the allocators (glibc, Arrow's pool) do not
    give back after the dataset is dropped; in a child process they are returned to the system
    when it ends, so the runner stays small while the chapters run. Returns ``("ok", report)``,
    ``("failed", message)`` (a data error, the same message as a load in this process), or
    ``("crashed", message)`` when the child died without a result (e.g. killed by the OOM
    killer). Ctrl-C (``KeyboardInterrupt``) stops the child and propagates. ``target`` (tests
    only) replaces the child's entry point (``f(name, connection)``, importable by the child).
    """
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    receiver, sender = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=target or _check_child_main, args=(name, sender),
                       name="handbook-data-check", daemon=True)
    try:
        with _sigint_ignored():
            proc.start()
        sender.close()
        try:
            result = receiver.recv()
        except EOFError:  # the child ended without sending anything
            result = None
        proc.join()
    except BaseException:  # Ctrl-C (or anything else): do not leave the child running
        if proc.is_alive():
            proc.terminate()
            proc.join(10)
            if proc.is_alive():
                proc.kill()
                proc.join()
        raise
    finally:
        receiver.close()
        sender.close()
    if result is None:
        return "crashed", _crash_text(proc.exitcode)
    status, text = result
    return str(status), str(text)


def preflight(datasets: Sequence[str], run_dir: Path) -> tuple[dict[str, Any], str | None]:
    """Fingerprint and load each dataset once, before any chapter runs.

    Each load runs in a child process (:func:`check_in_child`), so the memory it takes is given
    back before the first chapter starts. Writes every dataset's data-quality report (or its
    error) to ``data_quality.txt`` in ``run_dir``. Returns ``(data, error)``: ``data`` is the
    record for ``metrics.json`` (``{"check": ..., "fingerprint": {"before": ..., "after": None,
    "changed": []}}``; ``check``: dataset -> ``{"status": "ok"|"failed"|"crashed", "error"}``)
    and ``error`` the first dataset error message (``None`` when all loaded).
    """
    check: dict[str, dict[str, Any]] = {}
    before: dict[str, Any] = {}
    parts: list[str] = []
    error: str | None = None
    for name in datasets:
        before[name] = _fingerprint(name)  # before loading: it describes what was loaded
        status, text = check_in_child(name)
        if status != "ok":
            check[name] = {"status": status, "error": text}
            label = "FAILED" if status == "failed" else "CRASHED"
            parts.append(f"== dataset {name}: {label} (no chapter was run)\n\n{text}\n")
            error = error or f"dataset {name!r}: {text}"
            continue
        check[name] = {"status": "ok", "error": None}
        parts.append(f"== dataset {name}: ok (sha256 {_fp_hash(before[name])})\n\n{text}\n")
    if not datasets:
        parts.append("No chapter reads a dataset parameter; nothing to check.\n")
    (run_dir / DATA_QUALITY_NAME).write_text("\n".join(parts), encoding="utf-8")
    return {"check": check, "fingerprint": {"before": before, "after": None, "changed": []}}, error


# --------------------------------------------------------------------------------------------
# command line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m helpers.run",
        description="Run the handbook's chapter notebooks with papermill and write a report "
                    "folder (executed notebooks, HTML, exports, metrics.json).",
    )
    parser.add_argument("--params", default=None,
                        help="params YAML file (common: ..., chapters: ...); "
                             "e.g. params/default.yaml")
    parser.add_argument("--out", default=None,
                        help="output folder (default reports/<run date>/; an existing folder is "
                             "never reused: -2, -3, ... are appended)")
    parser.add_argument("--chapters", default=None,
                        help="comma-separated chapters to run, by number or stem (default: all)")
    parser.add_argument("-p", "--parameter", action="append", default=[], metavar="NAME=VALUE",
                        help="override a parameter (NAME or STEM.NAME); repeatable")
    parser.add_argument("--on-error", choices=("stop", "continue"), default="stop",
                        help="after a failing chapter: stop (default) or run the others")
    parser.add_argument("--timeout", type=float, default=None,
                        help="per-cell timeout in seconds (default: none)")
    parser.add_argument("--notebooks-dir", default=str(NOTEBOOKS),
                        help=argparse.SUPPRESS)  # for tests: run other notebooks
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    notebooks_dir = Path(args.notebooks_dir).absolute()
    try:
        notebooks = discover(notebooks_dir)
        if not notebooks:
            raise ConfigError(f"no chapter notebooks (NN_name.ipynb) in {notebooks_dir}")
        common, sections = load_params(args.params)
        glob, scoped = parse_overrides(args.parameter)
        selected = select(list(notebooks), args.chapters)
        # Validate everything before creating the output folder.
        plan_run(notebooks, selected, common, sections, glob, scoped, Path("exports"))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    run_dir = create_run_dir(Path(args.out) if args.out else None)
    plan = plan_run(notebooks, selected, common, sections, glob, scoped, run_dir / "exports")
    pin_datasets(plan)
    run_info = {
        "params_file": args.params,
        "overrides": list(args.parameter),
        "common": common,
        "chapters_selected": plan.chapters,
        "out": str(run_dir),
    }
    try:
        shown = run_dir.relative_to(Path.cwd())
    except ValueError:
        shown = run_dir
    datasets = plan_datasets(plan)
    results = {s: ChapterResult() for s in plan.chapters}
    data: dict[str, Any] = {}
    started = _now()
    try:
        with RunLock(run_dir):
            try:
                print(f"Checking data: {', '.join(datasets) or '(none)'} ...", flush=True)
                data, data_error = preflight(datasets, run_dir)
                if data_error is not None:
                    now = _now()
                    crashed = any(c["status"] == "crashed" for c in data["check"].values())
                    _write_json(run_dir / "metrics.json", summary(
                        plan, results, run_info, now, now, data,
                        run_status=DATA_CRASHED if crashed else "data error"))
                    print(f"error: data check failed, no chapter was run: {data_error}\n"
                          f"(report: {run_dir / DATA_QUALITY_NAME})", file=sys.stderr)
                    return 2
                print(f"Running {len(plan.chapters)} chapter(s) into {shown}/", flush=True)
                results = run(plan, run_dir, run_info, on_error=args.on_error,
                              cwd=notebooks_dir, timeout=args.timeout, data=data, lock=False,
                              results=results)
            except KeyboardInterrupt:
                if not any(r.status == INTERRUPTED for r in results.values()):
                    # during the data check (or between chapters): record it
                    _write_json(run_dir / "metrics.json", summary(
                        plan, results, run_info, started, _now(), data or None,
                        run_status=INTERRUPTED))
                raise
    except KeyboardInterrupt:
        import logging

        # a kernel killed by the same Ctrl-C can leave nbclient a finished task holding
        # "DeadKernelError: Kernel died"; asyncio would print its traceback when the task is
        # garbage-collected at exit. The interruption is reported below; keep stderr clean.
        logging.getLogger("asyncio").setLevel(logging.CRITICAL + 1)
        running = [s for s, r in results.items() if r.status == INTERRUPTED]
        where = f"chapter {running[0]}" if running else "the data check"
        print(f"\ninterrupted (Ctrl-C) during {where}; the run was stopped. Partial results "
              f"in {shown}/ (metrics.json: run_status \"interrupted\").", file=sys.stderr)
        return EXIT_INTERRUPTED
    failed = [s for s, r in results.items() if r.status == "failed"]
    ok = sum(r.status == "ok" for r in results.values())
    not_run = sum(r.status == "not run" for r in results.values())
    print(f"Done: {ok} ok, {len(failed)} failed, {not_run} not run. "
          f"Report: {shown}/ (metrics.json)", flush=True)
    for stem in failed:
        print(f"error: chapter {stem} failed: {results[stem].error} "
              f"(partial notebook: {run_dir / (stem + '.ipynb')})", file=sys.stderr)
    changed = data["fingerprint"]["changed"]
    for name in changed:
        fp = data["fingerprint"]
        print(f"error: the data changed during the run: dataset {name!r} fingerprint "
              f"{_fp_hash(fp['before'][name])} before the chapters, "
              f"{_fp_hash(fp['after'][name])} after; the results may mix both versions",
              file=sys.stderr)
    return 1 if failed or changed else 0


if __name__ == "__main__":
    sys.exit(main())
