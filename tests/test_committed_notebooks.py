"""Guards for the committed notebooks that nbval uses as reference.

nbval (run by the same ``pytest`` call, see pyproject.toml) compares the cells marked
``# NBVAL_CHECK_OUTPUT`` with their committed outputs. That silently checks nothing when the
committed notebook was saved without outputs, when it is stale relative to its source, or when it
was produced by a papermill run with other parameters. These tests catch those cases.
Refresh the committed notebooks with ``make notebooks`` (or ``make notebooks CHAPTERS=NN_name``).
"""
from __future__ import annotations

import importlib.util

import nbformat
import pytest

from helpers.paths import NOTEBOOKS, ROOT

STEMS = sorted(p.stem for p in (NOTEBOOKS / "src").glob("[0-9][0-9]_*.py"))
CHECK = "# NBVAL_CHECK_OUTPUT"


def _builder():
    spec = importlib.util.spec_from_file_location("build_notebooks",
                                                  ROOT / "tools" / "build_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def builder():
    return _builder()


@pytest.mark.parametrize("stem", STEMS)
def test_notebook_matches_its_source(stem, builder):
    committed = nbformat.read(NOTEBOOKS / f"{stem}.ipynb", as_version=4)
    built = builder.parse((NOTEBOOKS / "src" / f"{stem}.py").read_text(encoding="utf-8"))
    assert [(c.cell_type, c.source) for c in committed.cells] == \
        [(c.cell_type, c.source) for c in built], (
        f"notebooks/{stem}.ipynb is stale: run `make notebooks CHAPTERS={stem}`")


@pytest.mark.parametrize("stem", STEMS)
def test_notebook_holds_the_default_run(stem):
    nb = nbformat.read(NOTEBOOKS / f"{stem}.ipynb", as_version=4)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    assert "papermill" not in nb.metadata, "a papermill run output was committed as reference"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert not [c for c in code if "injected-parameters" in c.metadata.get("tags", [])]
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1)), (
        f"{stem} was not executed top to bottom: run `make notebooks CHAPTERS={stem}`")
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors
    checked = [c for c in code if c.source.startswith(CHECK)]
    assert checked, f"{stem} has no {CHECK} cell: nbval would compare nothing"
    assert all(c.outputs for c in checked), f"{stem}: a checked cell has no stored output"
    metrics = [o for o in code[-1].outputs if o.get("metadata", {}).get("handbook") == "metrics"]
    assert len(metrics) == 1, f"{stem}: the last cell must record the metrics"
