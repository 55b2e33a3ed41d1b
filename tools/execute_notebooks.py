"""Execute the chapter notebooks in place with their default parameters.

``make notebooks`` builds ``notebooks/NN_name.ipynb`` from ``notebooks/src`` and then runs this,
so the committed outputs are those of the default run — the reference that nbval compares
against. Each notebook runs in the ``python3`` kernel of this environment with ``notebooks/`` as
working directory (as nbval does). Cell timing metadata is not recorded, to keep diffs small.

Usage: ``python tools/execute_notebooks.py [NN_name ...]`` (default: every chapter notebook).
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("JUPYTER_PREFER_ENV_PATH", "1")
os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")

import nbformat  # noqa: E402
from nbclient import NotebookClient  # noqa: E402
from nbclient.exceptions import CellExecutionError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"


def execute(path: Path) -> None:
    """Run ``path`` top to bottom and write it back with its outputs."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb, kernel_name="python3", timeout=None, record_timing=False,
        resources={"metadata": {"path": str(NOTEBOOKS)}},
        extra_arguments=["--IPKernelApp.log_level=ERROR"],
    )
    client.execute()
    nbformat.write(nb, path)


def main(argv: list[str]) -> int:
    stems = argv or sorted(p.stem for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    for stem in stems:
        path = NOTEBOOKS / f"{stem}.ipynb"
        t0 = time.perf_counter()
        print(f"executing {path.relative_to(ROOT)} ...", end=" ", flush=True)
        try:
            execute(path)
        except CellExecutionError as exc:
            print("FAILED", flush=True)
            print(f"error: {stem} failed; the notebook was not written.\n{exc}", file=sys.stderr)
            return 1
        print(f"ok in {time.perf_counter() - t0:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
