"""pytest set-up shared by tests/ and the nbval regression run of notebooks/*.ipynb.

* Kernels must be this environment's: nbval gets ``--nbval-current-env`` (pyproject.toml), and
  the runner/nbclient get ``JUPYTER_PREFER_ENV_PATH=1`` so the venv's ``python3`` kernelspec wins.
* ``--nbval-sanitize-with`` is given relative to the project root in pyproject.toml; it is made
  absolute here so that pytest works from any working directory.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("JUPYTER_PREFER_ENV_PATH", "1")
os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")

ROOT = Path(__file__).resolve().parent


def pytest_configure(config: pytest.Config) -> None:
    sanitize = getattr(config.option, "nbval_sanitize_with", None)
    if sanitize and not Path(sanitize).is_absolute():
        config.option.nbval_sanitize_with = str(ROOT / sanitize)


# nbval regression covers the committed chapter notebooks only, not notebooks used as test data.
collect_ignore_glob = ["tests/**/*.ipynb"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark nbval's notebook cells `nbval` and `slow`, so `-m "not slow"` runs unit tests only."""
    for item in items:
        if item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.nbval)
            item.add_marker(pytest.mark.slow)
