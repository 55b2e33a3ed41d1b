"""Where things live: the project root and its standard folders.

Every path the handbook uses is derived from the location of this package file, never from the
caller's working directory, so the same code works from a notebook (run in ``notebooks/``), from
the runner (run anywhere) and from the tests.
"""
from __future__ import annotations

import os
from pathlib import Path

#: The repository root (the folder holding ``pyproject.toml``, ``helpers/`` and ``data/``).
ROOT: Path = Path(__file__).resolve().parents[1]
#: One sub-folder per dataset, each with a ``dataset.yaml``.
DATA: Path = ROOT / "data"
#: The chapter notebooks (``NN_name.ipynb``) and their sources (``src/NN_name.py``).
NOTEBOOKS: Path = ROOT / "notebooks"
#: Run configurations for :mod:`helpers.run`.
PARAMS: Path = ROOT / "params"
#: Default parent folder of the runner's output folders.
REPORTS: Path = ROOT / "reports"


def resolve(path: str | os.PathLike[str]) -> Path:
    """Return ``path`` as an absolute path, resolving a relative one against :data:`ROOT`.

    ``~`` is expanded. Absolute paths are returned unchanged (normalised).

    >>> resolve("data/synthetic") == ROOT / "data" / "synthetic"
    True
    """
    p = Path(path).expanduser()
    if not p.is_absolute():
        p = ROOT / p
    return Path(os.path.normpath(p))


__all__ = ["ROOT", "DATA", "NOTEBOOKS", "PARAMS", "REPORTS", "resolve"]
