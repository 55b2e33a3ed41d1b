"""Build the chapter notebooks from their percent-format sources.

The editable source of chapter ``NN_name`` is ``notebooks/src/NN_name.py``; this script turns it
into ``notebooks/NN_name.ipynb`` (without outputs). ``make notebooks`` then executes each built
notebook with its default parameters so that the committed outputs are those of the default run.

Source format (a small subset of the "percent" format that editors such as VS Code understand):

* ``# %%`` starts a code cell; ``# %% [markdown]`` a Markdown cell whose lines start with ``# ``;
* ``# %% tags=["parameters"]`` (any tag list) sets the cell's tags;
* everything before the first ``# %%`` is ignored (use it for a module docstring).

Usage: ``python tools/build_notebooks.py [NN_name ...]`` (default: every source).
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "notebooks" / "src"
HEADER = re.compile(r"^# %%(?P<md> \[markdown\])?(?: tags=(?P<tags>\[.*\]))?\s*$")


def parse(text: str) -> list[nbformat.NotebookNode]:
    """Split a percent-format source into notebook cells."""
    cells: list[nbformat.NotebookNode] = []
    kind, tags, lines = None, [], []

    def flush() -> None:
        if kind is None:
            return
        body = "\n".join(lines).strip("\n")
        if kind == "markdown":
            body = "\n".join(re.sub(r"^# ?", "", ln) for ln in body.split("\n"))
            cell = nbformat.v4.new_markdown_cell(body)
        else:
            cell = nbformat.v4.new_code_cell(body)
        if tags:
            cell.metadata["tags"] = tags
        cells.append(cell)

    for line in text.split("\n"):
        m = HEADER.match(line)
        if m:
            flush()
            kind = "markdown" if m.group("md") else "code"
            tags = json.loads(m.group("tags")) if m.group("tags") else []
            lines = []
        elif kind is not None:
            lines.append(line)
    flush()
    return cells


def build(stem: str) -> Path:
    src = SRC / f"{stem}.py"
    nb = nbformat.v4.new_notebook()
    nb.cells = parse(src.read_text(encoding="utf-8"))
    for i, cell in enumerate(nb.cells):  # stable ids keep diffs small
        cell["id"] = f"{stem[:2]}-{i:03d}"
    nb.metadata = {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
    }
    out = ROOT / "notebooks" / f"{stem}.ipynb"
    nbformat.write(nb, out)
    return out


def main(argv: list[str]) -> int:
    stems = argv or sorted(p.stem for p in SRC.glob("[0-9][0-9]_*.py"))
    for stem in stems:
        print(f"built {build(stem).relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
