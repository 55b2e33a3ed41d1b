"""The runner (helpers.run): configuration checks, run folders, and end-to-end runs.

The end-to-end tests run the real chapter notebooks through the command line
(``python -m helpers.run``) on a small synthetic dataset generated for the test session.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from helpers import run
from helpers.notebook import CHAPTER_METRICS
from helpers.paths import NOTEBOOKS, PARAMS, ROOT

STEMS = sorted(p.stem for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
SMALL_CUSTOMERS = 600


def cli(*args: str, timeout: float = 1200) -> subprocess.CompletedProcess[str]:
    """Run ``python -m helpers.run`` from a folder that is not the project root."""
    env = {**os.environ, "JUPYTER_PREFER_ENV_PATH": "1"}
    return subprocess.run([sys.executable, "-m", "helpers.run", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=os.sep, env=env)


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory) -> Path:
    """A small synthetic dataset (same generator as data/synthetic) in a temporary folder."""
    from helpers import synth

    out = tmp_path_factory.mktemp("data") / "synthetic_small"
    synth.write_dataset(synth.generate(n_customers=SMALL_CUSTOMERS, seed=7), out)
    return out


# ---------------------------------------------------------------------------- configuration


def test_six_chapters_are_discovered():
    assert STEMS == sorted(CHAPTER_METRICS)
    assert list(run.discover(NOTEBOOKS)) == STEMS


def test_shipped_params_files_are_valid_for_the_notebooks():
    notebooks = run.discover(NOTEBOOKS)
    for name in ("default", "cdnow", "online_retail_ii", "small"):
        common, sections = run.load_params(PARAMS / f"{name}.yaml")
        assert {"dataset", "analysis_date", "seed"} <= set(common), name
        plan = run.plan_run(notebooks, STEMS, common, sections, {}, {}, Path("/x/exports"))
        for stem in STEMS:
            assert plan.parameters[stem]["dataset"] == common["dataset"]
            assert plan.parameters[stem]["export_dir"] == "/x/exports"
    assert run.load_params(PARAMS / "cdnow.yaml")[0]["analysis_date"] == "1998-06-30"
    assert run.load_params(PARAMS / "online_retail_ii.yaml")[0]["dataset"] == "online_retail_ii"


def test_load_params_errors(tmp_path):
    with pytest.raises(run.ConfigError, match="not found"):
        run.load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("commons:\n  seed: 1\n")
    with pytest.raises(run.ConfigError, match="unknown top-level keys"):
        run.load_params(bad)
    bad.write_text("common: [1, 2]\n")
    with pytest.raises(run.ConfigError, match="must be mappings"):
        run.load_params(bad)
    dates = tmp_path / "dates.yaml"
    dates.write_text("common:\n  analysis_date: 2011-12-09\n")  # unquoted: YAML reads a date
    assert run.load_params(dates)[0] == {"analysis_date": "2011-12-09"}


def test_parse_overrides_types_and_scopes():
    glob, scoped = run.parse_overrides(
        ["seed=7", "analysis_date=2011-12-09", "dataset=cdnow_sample", "x=null",
         "02_lifecycle.horizon=1.5", "flag=true"])
    assert glob == {"seed": 7, "analysis_date": "2011-12-09", "dataset": "cdnow_sample",
                    "x": None, "flag": True}
    assert scoped == {"02_lifecycle": {"horizon": 1.5}}
    # not a real date: passed on as text, for the notebook's setup() to reject clearly
    assert run.parse_overrides(["analysis_date=2025-13-01"])[0] == {"analysis_date": "2025-13-01"}
    with pytest.raises(run.ConfigError, match="name=value"):
        run.parse_overrides(["seed"])


def test_select_chapters():
    assert run.select(STEMS, None) == STEMS
    assert run.select(STEMS, "03,01") == ["01_user_portrait", "03_rfm_segments"]
    assert run.select(STEMS, "02_lifecycle") == ["02_lifecycle"]
    with pytest.raises(run.ConfigError, match="no chapter '09'"):
        run.select(STEMS, "09")


def test_unknown_names_are_rejected_up_front():
    notebooks = run.discover(NOTEBOOKS)
    ok = {"dataset": "synthetic", "seed": 1}
    with pytest.raises(run.ConfigError, match="common parameter 'datset'"):
        run.plan_run(notebooks, STEMS, {"datset": "x"}, {}, {}, {}, Path("e"))
    with pytest.raises(run.ConfigError, match="02_lifecycle declares no parameter 'bogus'"):
        run.plan_run(notebooks, STEMS, ok, {"02_lifecycle": {"bogus": 1}}, {}, {}, Path("e"))
    with pytest.raises(run.ConfigError, match="no chapter '07_extra'"):
        run.plan_run(notebooks, STEMS, ok, {"07_extra": {"seed": 1}}, {}, {}, Path("e"))
    with pytest.raises(run.ConfigError, match="-p bogus"):
        run.plan_run(notebooks, STEMS, ok, {}, {"bogus": 1}, {}, Path("e"))
    with pytest.raises(run.ConfigError, match="-p: 03_rfm_segments declares no parameter 'zz'"):
        run.plan_run(notebooks, STEMS, ok, {}, {}, {"03_rfm_segments": {"zz": 1}}, Path("e"))


def test_parameter_precedence():
    notebooks = run.discover(NOTEBOOKS)
    plan = run.plan_run(notebooks, ["01_user_portrait", "02_lifecycle"],
                        {"dataset": "a", "seed": 1}, {"02_lifecycle": {"seed": 2}},
                        {"dataset": "b"}, {"02_lifecycle": {"seed": 3}}, Path("/o/exports"))
    assert plan.parameters["01_user_portrait"] == {"export_dir": "/o/exports", "dataset": "b",
                                                   "seed": 1}
    assert plan.parameters["02_lifecycle"] == {"export_dir": "/o/exports", "dataset": "b",
                                               "seed": 3}


def test_cli_rejects_unknown_names_before_creating_anything(tmp_path):
    out = tmp_path / "run"
    res = cli("--params", str(PARAMS / "small.yaml"), "--out", str(out), "-p", "bogus=1")
    assert res.returncode == 2
    assert "-p bogus: no selected chapter declares a parameter 'bogus'" in res.stderr
    assert not out.exists()


# ---------------------------------------------------------------------------- run folders


def test_run_folders_are_dated_and_never_reused(tmp_path, monkeypatch):
    monkeypatch.setattr(run, "REPORTS", tmp_path / "reports")
    day = dt.date(2026, 3, 1)
    first = run.create_run_dir(None, today=day)
    (first / "keep.txt").write_text("first run")
    second = run.create_run_dir(None, today=day)
    third = run.create_run_dir(None, today=day)
    assert [p.name for p in (first, second, third)] == ["2026-03-01", "2026-03-01-2",
                                                        "2026-03-01-3"]
    assert (first / "keep.txt").read_text() == "first run"
    assert run.create_run_dir(tmp_path / "mine").name == "mine"
    assert run.create_run_dir(tmp_path / "mine").name == "mine-2"


def test_lock_file_excludes_a_second_writer(tmp_path):
    with run.RunLock(tmp_path):
        assert (tmp_path / run.LOCK_NAME).exists()
        with pytest.raises(run.ConfigError, match="locked by another run"):
            with run.RunLock(tmp_path):
                pass
    assert not (tmp_path / run.LOCK_NAME).exists()


# ---------------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_full_run_on_small_data(small_dataset, tmp_path):
    out = tmp_path / "report"
    res = cli("--params", str(PARAMS / "small.yaml"), "-p", f"dataset={small_dataset}",
              "--out", str(out))
    assert res.returncode == 0, res.stdout + res.stderr
    for i, stem in enumerate(STEMS, 1):
        assert f"[{i}/6] {stem} ... ok in " in res.stdout
    assert sorted(p.name for p in out.glob("*.ipynb")) == [f"{s}.ipynb" for s in STEMS]
    assert sorted(p.name for p in out.glob("*.html")) == [f"{s}.html" for s in STEMS]
    assert not (out / run.LOCK_NAME).exists()

    doc = json.loads((out / "metrics.json").read_text())
    assert set(doc) == {"chapters", "status", "parameters", "package_versions", "data_check",
                        "data_fingerprint", "started", "finished", "run_status"}
    assert doc["run_status"] == "ok"
    assert doc["data_check"] == {str(small_dataset): {"status": "ok", "error": None}}
    assert "Rows per table" in (out / "data_quality.txt").read_text()
    assert sorted(doc["chapters"]) == STEMS
    for stem in STEMS:
        assert set(CHAPTER_METRICS[stem]) <= set(doc["chapters"][stem]), stem
        for value in doc["chapters"][stem].values():
            assert value is None or isinstance(value, (int, float, str, bool))
        status = doc["status"][stem]
        assert status["status"] == "ok" and status["error"] is None
        assert status["seconds"] > 0 and isinstance(status["sections_skipped"], list)
        params = doc["parameters"]["chapters"][stem]
        assert params["dataset"] == str(small_dataset)
        assert params["export_dir"] == str(out / "exports")
    assert doc["package_versions"]["pandas"] and doc["package_versions"]["python"]
    assert doc["started"] <= doc["finished"]

    # the executed notebooks carry the injected parameters and ran in notebooks/
    nb = nbformat.read(out / "01_user_portrait.ipynb", as_version=4)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and str(small_dataset) in injected[0].source
    assert nb.metadata["kernelspec"]["name"] == "python3"


@pytest.mark.slow
def test_failing_chapter_stops_the_run_and_keeps_its_notebook(small_dataset, tmp_path):
    out = tmp_path / "failing"
    res = cli("--params", str(PARAMS / "small.yaml"), "-p", f"dataset={small_dataset}",
              "--chapters", "02,03", "-p", "02_lifecycle.seed=-1", "--out", str(out))
    assert res.returncode == 1
    assert "chapter 02_lifecycle failed" in res.stderr
    assert "[1/2] 02_lifecycle ... FAILED" in res.stdout
    assert "03_rfm_segments ..." not in res.stdout
    # the partly executed notebook is kept, with the error in it
    nb = nbformat.read(out / "02_lifecycle.ipynb", as_version=4)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    assert len(errors) == 1 and errors[0].ename == "ValueError"
    assert (out / "02_lifecycle.html").exists()
    assert not (out / "03_rfm_segments.ipynb").exists()
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["status"]["02_lifecycle"]["status"] == "failed"
    assert "seed" in doc["status"]["02_lifecycle"]["error"]
    assert doc["status"]["03_rfm_segments"]["status"] == "not run"
    assert doc["chapters"] == {"02_lifecycle": {}, "03_rfm_segments": {}}
    assert doc["finished"] is not None

    # a second run with the same output folder writes next to it, never over it
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    res2 = cli("--params", str(PARAMS / "small.yaml"), "-p", f"dataset={small_dataset}",
               "--chapters", "03", "--on-error", "continue", "--out", str(out))
    assert res2.returncode == 0, res2.stdout + res2.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    second = out.with_name(out.name + "-2")
    assert sorted(p.name for p in second.iterdir() if p.is_file()) == [
        "03_rfm_segments.html", "03_rfm_segments.ipynb", "data_quality.txt", "metrics.json"]
    doc2 = json.loads((second / "metrics.json").read_text())
    assert doc2["status"]["03_rfm_segments"]["status"] == "ok"
    assert set(CHAPTER_METRICS["03_rfm_segments"]) <= set(doc2["chapters"]["03_rfm_segments"])


@pytest.mark.slow
def test_on_error_continue_runs_the_rest(small_dataset, tmp_path):
    out = tmp_path / "continue"
    res = cli("--params", str(PARAMS / "small.yaml"), "-p", f"dataset={small_dataset}",
              "--chapters", "01,06", "-p", "01_user_portrait.analysis_date=2025-13-01",
              "--on-error", "continue", "--out", str(out))
    assert res.returncode == 1
    assert "chapter 01_user_portrait failed" in res.stderr
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["status"]["01_user_portrait"]["status"] == "failed"
    assert doc["status"]["06_loyalty_roi"]["status"] == "ok"
    assert (out / "06_loyalty_roi.html").exists()


def _one_cell_notebook(tmp_path: Path, stem: str, parameters: str, code: str) -> Path:
    """A folder ``nbs`` holding notebook ``stem`` with a ``parameters`` cell and one code cell."""
    nbdir = tmp_path / "nbs"
    nbdir.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    params = nbformat.v4.new_code_cell(parameters)
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(code)]
    nbformat.write(nb, nbdir / f"{stem}.ipynb")
    return nbdir


@pytest.mark.slow
def test_kernel_is_this_environment_and_cwd_is_the_notebooks_folder(tmp_path):
    """The runner's kernel runs this venv's Python, in the notebooks' folder, whatever the cwd."""
    nbdir = _one_cell_notebook(
        tmp_path, "99_where", "seed = 1",
        "import os, sys\n"
        "import helpers as hb\n"
        "ctx = hb.setup('99_where', dataset='synthetic', seed=seed)\n"
        "ctx.record_metrics({'cwd': os.getcwd(), 'python': sys.executable, 'seed': seed})")
    out = tmp_path / "out"
    res = cli("--notebooks-dir", str(nbdir), "--out", str(out), "-p", "seed=5")
    assert res.returncode == 0, res.stdout + res.stderr
    metrics = json.loads((out / "metrics.json").read_text())["chapters"]["99_where"]
    assert metrics == {"cwd": str(nbdir), "python": sys.executable, "seed": 5}


def test_root_notebooks_are_built_from_the_sources():
    """Each committed notebook has a source, and the chapter template's parameters."""
    sources = sorted(p.stem for p in (ROOT / "notebooks" / "src").glob("[0-9][0-9]_*.py"))
    assert sources == STEMS
    for stem in STEMS:
        declared = run.declared_parameters(NOTEBOOKS / f"{stem}.ipynb")
        assert {"dataset", "analysis_date", "seed", "export_dir"} <= set(declared), stem
        assert declared["dataset"] == '"synthetic"'


def test_declared_parameters_survive_comments_with_equals(tmp_path):
    """papermill's line parser drops `x = 1  # (>= 0)`; the runner must not."""
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(
        "window_days = 90  # churn window (>= 30), 'a = b' style comment\n"
        "grid = [\n    1,\n    2,\n]  # multi-line value\n"
        "name: str = 'x'\n"
        "# a = 1 in a comment is not a parameter\n"
        "lo, hi = 0.1, 0.9")
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_code_cell("not_a_param = 1"), cell]
    path = tmp_path / "01_x.ipynb"
    nbformat.write(nb, path)
    assert run.declared_parameters(path) == {
        "window_days": "90", "grid": "[\n    1,\n    2,\n]", "name": "'x'", "lo": "0.1, 0.9",
        "hi": "0.1, 0.9"}
    cell.source = "x = (1"
    nbformat.write(nb, path)
    with pytest.raises(run.ConfigError, match="not valid Python"):
        run.declared_parameters(path)


# ---------------------------------------------------------------------------- data pre-flight


def test_package_versions_cover_every_direct_dependency():
    import tomllib

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {d.split(";")[0].split("[")[0].split("=")[0].split(">")[0].split("<")[0].strip()
             for d in deps}
    versions = run.package_versions()
    assert names <= set(versions), names - set(versions)
    assert versions["sqlalchemy"] and versions["python"]


def _copy_dataset(src: Path, dest: Path) -> Path:
    import shutil

    shutil.copytree(src, dest)
    return dest


def test_bad_data_exits_2_before_any_chapter(small_dataset, tmp_path):
    bad = _copy_dataset(small_dataset, tmp_path / "bad")
    (bad / "orders.parquet").unlink()
    out = tmp_path / "run"
    res = cli("--params", str(PARAMS / "small.yaml"), "-p", f"dataset={bad}", "--out", str(out))
    assert res.returncode == 2, res.stdout + res.stderr
    assert "error: data check failed, no chapter was run" in res.stderr
    assert "orders" in res.stderr
    assert "Running" not in res.stdout and "[1/6]" not in res.stdout
    assert not list(out.glob("*.ipynb"))
    report = (out / "data_quality.txt").read_text()
    assert "FAILED" in report and "orders" in report
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["data_check"][str(bad)]["status"] == "failed"
    assert "orders" in doc["data_check"][str(bad)]["error"]
    assert {s["status"] for s in doc["status"].values()} == {"not run"}
    assert not (out / run.LOCK_NAME).exists()


def test_missing_privacy_salt_exits_2(small_dataset, tmp_path):
    data = _copy_dataset(small_dataset, tmp_path / "pseudo")
    yml = data / "dataset.yaml"
    yml.write_text(yml.read_text() + "\nprivacy: {pseudonymize_ids: true, "
                   "salt_env: HANDBOOK_SALT_RUNNER_TEST}\n")
    env_before = os.environ.pop("HANDBOOK_SALT_RUNNER_TEST", None)
    try:
        out = tmp_path / "run"
        res = cli("--params", str(PARAMS / "small.yaml"), "-p", f"dataset={data}",
                  "--chapters", "03", "--out", str(out))
    finally:
        if env_before is not None:
            os.environ["HANDBOOK_SALT_RUNNER_TEST"] = env_before
    assert res.returncode == 2, res.stdout + res.stderr
    assert "HANDBOOK_SALT_RUNNER_TEST" in res.stderr
    assert "HANDBOOK_SALT_RUNNER_TEST" in (out / "data_quality.txt").read_text()
    assert not (out / "03_rfm_segments.ipynb").exists()


def test_data_changed_during_the_run_fails(small_dataset, tmp_path, monkeypatch, capsys):
    """The fingerprint is taken before and after the chapters; a change fails the run."""
    data = _copy_dataset(small_dataset, tmp_path / "moving")

    def fake_chapter(src, dest, parameters, cwd, timeout=None):  # a chapter that edits the data
        with open(data / "dataset.yaml", "a") as fh:
            fh.write("\n# edited while the run was going\n")

    monkeypatch.setattr(run, "execute_chapter", fake_chapter)
    out = tmp_path / "run"
    code = run.main(["--params", str(PARAMS / "small.yaml"), "-p", f"dataset={data}",
                     "--chapters", "03", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 1
    assert "the data changed during the run" in err and str(data) in err
    fp = json.loads((out / "metrics.json").read_text())["data_fingerprint"]
    assert fp["changed"] == [str(data)]
    assert fp["before"][str(data)]["sha256"] != fp["after"][str(data)]["sha256"]
    assert fp["before"][str(data)]["files"]["dataset.yaml"]["sha256"] != \
        fp["after"][str(data)]["files"]["dataset.yaml"]["sha256"]


# ---------------------------------------------------------------------------- scheduled runs


@pytest.mark.slow
def test_two_scheduled_runs_dated_folders_summaries_and_exit_codes(small_dataset, tmp_path):
    """Issue 9 part 4: two unattended runs on the same date, the second with a failing chapter."""
    out = tmp_path / "reports" / dt.date.today().isoformat()  # as reports/<run date>/
    base = ("--params", str(PARAMS / "small.yaml"), "-p", f"dataset={small_dataset}",
            "--chapters", "03,06", "--out", str(out))
    first = cli(*base)
    assert first.returncode == 0, first.stdout + first.stderr
    snapshot = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}

    second = cli(*base, "-p", "03_rfm_segments.seed=-1", "--on-error", "continue")
    assert second.returncode == 1, second.stdout + second.stderr
    assert "chapter 03_rfm_segments failed" in second.stderr
    assert "06_loyalty_roi failed" not in second.stderr

    second_dir = out.with_name(out.name + "-2")
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name, second_dir.name]
    # the first run's folder is untouched
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == snapshot

    docs = [json.loads((d / "metrics.json").read_text()) for d in (out, second_dir)]
    for d, doc in zip((out, second_dir), docs):
        assert doc["parameters"]["chapters"]["03_rfm_segments"]["dataset"] == str(small_dataset)
        assert doc["package_versions"]["pandas"] and doc["package_versions"]["sqlalchemy"]
        fp = doc["data_fingerprint"]
        assert len(fp["before"][str(small_dataset)]["sha256"]) == 64
        assert fp["after"] == fp["before"] and fp["changed"] == []
        assert "Rows per table" in (d / "data_quality.txt").read_text()
        for stem in ("03_rfm_segments", "06_loyalty_roi"):
            assert doc["status"][stem]["seconds"] > 0
        assert doc["finished"] is not None
        assert not (d / run.LOCK_NAME).exists()
    assert {s: docs[0]["status"][s]["status"] for s in docs[0]["status"]} == {
        "03_rfm_segments": "ok", "06_loyalty_roi": "ok"}
    assert {s: docs[1]["status"][s]["status"] for s in docs[1]["status"]} == {
        "03_rfm_segments": "failed", "06_loyalty_roi": "ok"}
    assert docs[1]["parameters"]["chapters"]["03_rfm_segments"]["seed"] == -1
    assert "seed" in docs[1]["status"]["03_rfm_segments"]["error"]
    # the other chapter's results are there despite the failure
    assert set(CHAPTER_METRICS["06_loyalty_roi"]) <= set(docs[1]["chapters"]["06_loyalty_roi"])
    assert (second_dir / "06_loyalty_roi.html").exists()
    assert (second_dir / "03_rfm_segments.ipynb").exists()


# ---------------------------------------------------------------------------- real data


@pytest.mark.slow
@pytest.mark.parametrize("params, skipped_in", [
    ("cdnow", {"05_recommendation": "", "06_loyalty_roi": "loyalty"}),
    ("online_retail_ii", {"06_loyalty_roi": "loyalty"}),
])
def test_real_data_runs_every_chapter(params, skipped_in, tmp_path):
    """Issue 2 "Done when": the same command with the CDNOW / Online Retail II params runs every
    chapter, each chapter saying which sections its data cannot support."""
    out = tmp_path / params
    res = cli("--params", str(PARAMS / f"{params}.yaml"), "--out", str(out), timeout=1800)
    assert res.returncode == 0, res.stdout + res.stderr
    doc = json.loads((out / "metrics.json").read_text())
    assert sorted(doc["status"]) == STEMS
    for stem in STEMS:
        assert doc["status"][stem]["status"] == "ok", (stem, doc["status"][stem])
        assert set(CHAPTER_METRICS[stem]) <= set(doc["chapters"][stem]), stem
    for stem, word in skipped_in.items():
        skipped = doc["status"][stem]["sections_skipped"]
        assert skipped, f"{stem} on {params} records no skipped section"
        assert any(word in (s["section"] + " " + s["reason"]).lower() for s in skipped), skipped
    assert (out / "data_quality.txt").read_text().startswith("== dataset ")


# ---------------------------------------------------------------------------- dataset paths


def _cdnow_sample_copy(dest: Path) -> Path:
    """The CDNOW sample as a dataset folder of its own (dataset.yaml + the text file)."""
    dest.mkdir(parents=True)
    shutil.copy(ROOT / "data" / "cdnow" / "cdnow_sample.yaml", dest / "dataset.yaml")
    shutil.copy(ROOT / "data" / "cdnow" / "CDNOW_sample.txt", dest / "CDNOW_sample.txt")
    return dest


def _loading_notebook(nbdir: Path) -> Path:
    """A chapter ``99_load`` that loads its ``dataset`` like the real chapters (ctx.load)."""
    nbdir.mkdir(parents=True, exist_ok=True)
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    params = nbformat.v4.new_code_cell("dataset = 'synthetic'\nseed = 42")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(
        "import helpers as hb\n"
        "ctx = hb.setup('99_load', dataset=dataset, seed=seed)\n"
        "ds = ctx.load()\n"
        "ctx.record_metrics({'name': ds.name, 'orders': len(ds.orders), "
        "'config': str(ds.path)})")]
    nbformat.write(nb, nbdir / "99_load.ipynb")
    return nbdir


def test_relative_dataset_paths_are_pinned_from_the_callers_folder(tmp_path, monkeypatch):
    """One rule (helpers.data.config.locate): from the caller's folder, else the project
    root; names stay names; the chapters get the absolute path the data check used."""
    from helpers.data.config import locate

    mine = _cdnow_sample_copy(tmp_path / "exports" / "shop")
    monkeypatch.chdir(tmp_path)
    assert locate("exports/shop") == str(mine)
    assert locate("synthetic") == "synthetic"
    assert locate("examples/own_data") == str(ROOT / "examples" / "own_data")  # from the root
    assert locate(str(mine)) == str(mine)
    assert locate("no/such/folder") == "no/such/folder"
    nbdir = _loading_notebook(tmp_path / "nbs")
    plan = run.plan_run(run.discover(nbdir), ["99_load"], {}, {}, {"dataset": "exports/shop"},
                        {}, tmp_path / "x")
    run.pin_datasets(plan)
    assert plan.parameters["99_load"]["dataset"] == str(mine)
    assert run.plan_datasets(plan) == [str(mine)]


@pytest.mark.slow
def test_runner_called_from_another_folder_with_a_relative_dataset_path(tmp_path):
    """The data check and the chapter (run in the notebooks' folder) read the same dataset."""
    caller = tmp_path / "caller"
    _cdnow_sample_copy(caller / "shop")
    nbdir = _loading_notebook(tmp_path / "nbs")
    out = tmp_path / "out"
    env = {**os.environ, "JUPYTER_PREFER_ENV_PATH": "1"}
    res = subprocess.run([sys.executable, "-m", "helpers.run", "--notebooks-dir", str(nbdir),
                          "--out", str(out), "-p", "dataset=shop"],
                         capture_output=True, text=True, timeout=600, cwd=caller, env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    doc = json.loads((out / "metrics.json").read_text())
    shop = str(caller / "shop")
    assert list(doc["data_check"]) == [shop] and doc["data_check"][shop]["status"] == "ok"
    assert doc["parameters"]["chapters"]["99_load"]["dataset"] == shop
    assert doc["chapters"]["99_load"]["config"] == str(caller / "shop" / "dataset.yaml")


# ---------------------------------------------------------------------------- Ctrl-C


def _assert_interrupted(out: Path, err: str, code: int, where: str) -> dict:
    assert code == run.EXIT_INTERRUPTED
    assert "Traceback" not in err and f"interrupted (Ctrl-C) during {where}" in err
    assert not (out / run.LOCK_NAME).exists()
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["run_status"] == "interrupted" and doc["finished"] is not None
    return doc


def test_ctrl_c_during_the_data_check(tmp_path, monkeypatch, capsys):
    def interrupted(datasets, run_dir):
        assert (run_dir / run.LOCK_NAME).exists()  # the folder is locked from the data check on
        raise KeyboardInterrupt

    monkeypatch.setattr(run, "preflight", interrupted)
    out = tmp_path / "run"
    code = run.main(["--params", str(PARAMS / "small.yaml"), "--chapters", "03", "--out",
                     str(out)])
    doc = _assert_interrupted(out, capsys.readouterr().err, code, "the data check")
    assert doc["status"]["03_rfm_segments"]["status"] == "not run"


def test_ctrl_c_during_a_chapter(small_dataset, tmp_path, monkeypatch, capsys):
    def interrupted(src, dest, parameters, cwd, timeout=None):
        assert (dest.parent / run.LOCK_NAME).exists()
        raise KeyboardInterrupt

    monkeypatch.setattr(run, "execute_chapter", interrupted)
    out = tmp_path / "run"
    code = run.main(["--params", str(PARAMS / "small.yaml"), "-p", f"dataset={small_dataset}",
                     "--chapters", "03,06", "--out", str(out)])
    doc = _assert_interrupted(out, capsys.readouterr().err, code, "chapter 03_rfm_segments")
    assert doc["status"]["03_rfm_segments"]["status"] == "interrupted"
    assert doc["status"]["06_loyalty_roi"]["status"] == "not run"


def _interrupt(args: list[str], wait_for: str, cwd: Path, delay: float = 1.0,
               prelude: str = "", wait_file: Path | None = None
               ) -> subprocess.CompletedProcess[str]:
    """Start the runner, wait for ``wait_for`` on stdout (and for ``wait_file`` to exist), then
    press Ctrl-C (SIGINT to its process group, as a terminal does)."""
    import signal
    import time

    code = f"import sys\n{prelude}\nfrom helpers import run\nsys.exit(run.main({args!r}))"
    env = {**os.environ, "JUPYTER_PREFER_ENV_PATH": "1", "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    seen = ""
    while wait_for not in seen:
        line = proc.stdout.readline()
        if not line:
            break
        seen += line
    deadline = time.monotonic() + 120
    while wait_file is not None and not wait_file.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(delay)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(proc.args, proc.returncode, seen + out, err)


def test_sigint_during_a_slow_data_check_exits_130_without_traceback(tmp_path):
    out = tmp_path / "run"
    slow = ("import time\nimport helpers.run as r\n"
            "r.preflight = lambda datasets, run_dir: time.sleep(120)")
    res = _interrupt(["--params", str(PARAMS / "small.yaml"), "--chapters", "03", "--out",
                      str(out)], "Checking data", tmp_path, prelude=slow)
    _assert_interrupted(out, res.stderr, res.returncode, "the data check")


@pytest.mark.slow
def test_sigint_during_a_chapter_exits_130_without_traceback(tmp_path):
    nbdir = _one_cell_notebook(tmp_path, "01_sleep", "dataset = 'cdnow_sample'",
                               "print('started', flush=True)\nimport time\ntime.sleep(300)")
    out = tmp_path / "run"
    res = _interrupt(["--notebooks-dir", str(nbdir), "--out", str(out)], "Running", tmp_path,
                     delay=8.0)
    doc = _assert_interrupted(out, res.stderr, res.returncode, "chapter 01_sleep")
    assert doc["status"]["01_sleep"]["status"] == "interrupted"


def test_kernel_stderr_goes_to_the_chapter_log_and_an_empty_log_is_removed(tmp_path, capfd):
    """A child process started inside the block (as the kernel is) writes its stderr to the log,
    not to the terminal; fd 2 is restored afterwards."""
    log = tmp_path / "01_x.kernel.log"
    with run.kernel_stderr_to(log):
        subprocess.run([sys.executable, "-c", "import sys; sys.stderr.write('kernel noise\\n')"],
                       check=True)
    print("after", file=sys.stderr, flush=True)
    assert log.read_text() == "kernel noise\n"
    err = capfd.readouterr().err
    assert "kernel noise" not in err and "after" in err
    quiet = tmp_path / "02_y.kernel.log"
    with run.kernel_stderr_to(quiet):
        subprocess.run([sys.executable, "-c", "pass"], check=True)
    assert not quiet.exists()


# ---------------------------------------------------------------------------- data check child


def _killed_check(name, conn):  # a data-check child that dies like an OOM-killed process
    import signal

    os.kill(os.getpid(), signal.SIGKILL)


def _slow_check(name, conn):  # a data-check child that would run for two minutes
    import time

    Path(f"{name}.child.pid").write_text(str(os.getpid()))
    time.sleep(120)


def test_data_check_runs_in_a_child_and_returns_the_report(small_dataset):
    from helpers.data import load_dataset

    status, text = run.check_in_child(str(small_dataset))
    assert status == "ok"
    assert text == load_dataset(small_dataset).report()


def test_data_check_error_in_the_child_has_the_same_message(small_dataset, tmp_path):
    from helpers.data import DataContractError, load_dataset

    bad = _copy_dataset(small_dataset, tmp_path / "bad")
    (bad / "orders.parquet").unlink()
    status, text = run.check_in_child(str(bad))
    with pytest.raises(DataContractError) as info:
        load_dataset(bad)
    assert status == "failed" and text == str(info.value)


def test_a_killed_data_check_child_is_a_clear_failure(small_dataset, tmp_path, monkeypatch,
                                                      capsys):
    status, text = run.check_in_child(str(small_dataset), target=_killed_check)
    assert status == "crashed"
    assert "SIGKILL" in text and "memory" in text
    real = run.check_in_child
    monkeypatch.setattr(run, "check_in_child",
                        lambda name: real(name, target=_killed_check))
    out = tmp_path / "run"
    code = run.main(["--params", str(PARAMS / "small.yaml"), "-p", f"dataset={small_dataset}",
                     "--chapters", "03", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert "data check failed" in err and "SIGKILL" in err
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["run_status"] == run.DATA_CRASHED
    assert doc["data_check"][str(small_dataset)]["status"] == "crashed"
    assert "CRASHED" in (out / run.DATA_QUALITY_NAME).read_text()
    assert not (out / run.LOCK_NAME).exists()


def test_sigint_during_the_child_data_check_stops_the_child(small_dataset, tmp_path):
    """A real Ctrl-C (SIGINT to the process group) while the child checks the data: the runner
    exits 130 without a traceback, and the child process does not outlive it."""
    data = _copy_dataset(small_dataset, tmp_path / "data")
    out = tmp_path / "run"
    prelude = ("import functools, sys\nsys.path.insert(0, %r)\nimport test_runner\n"
               "import helpers.run as r\n"
               "r.check_in_child = functools.partial(r.check_in_child, "
               "target=test_runner._slow_check)" % str(Path(__file__).parent))
    res = _interrupt(["--params", str(PARAMS / "small.yaml"), "--chapters", "03", "-p",
                      f"dataset={data}", "--out", str(out)], "Checking data", tmp_path,
                     delay=1.0, prelude=prelude, wait_file=Path(f"{data}.child.pid"))
    _assert_interrupted(out, res.stderr, res.returncode, "the data check")
    pid = int(Path(f"{data}.child.pid").read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
