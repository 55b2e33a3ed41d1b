"""Errors raised when a dataset does not meet the data contract, and their message format.

Every problem found while loading is described by a :class:`Problem` that names the table, the
column, what is wrong, how many rows are affected, up to five example values and how to fix it.
A :class:`DataContractError` carries one or more problems and renders them as one readable message.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

import pandas as pd

MAX_EXAMPLES = 5


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a dataset.

    ``rule`` is the row-level rule that fired (see :mod:`helpers.data.rules`) or ``None`` for a
    schema-level problem (missing column, unparseable values, ...), which is always an error.
    """

    table: str
    column: str | None
    problem: str
    n_rows: int
    examples: tuple[str, ...] = ()
    fix: str = ""
    rule: str | None = None
    n_total: int | None = None

    def message(self) -> str:
        where = f"{self.table}.{self.column}" if self.column else self.table
        if self.n_total is not None:
            count = f"{self.n_rows:,} of {self.n_total:,} rows"
        else:
            count = f"{self.n_rows:,} row{'s' if self.n_rows != 1 else ''}"
        text = f"{where}: {self.problem} ({count})"
        if self.examples:
            text += "; examples: " + ", ".join(self.examples)
        text += "."
        if self.fix:
            text += f" Fix: {self.fix}"
        return text


class DataContractError(ValueError):
    """A dataset does not meet the data contract (or its ``dataset.yaml`` is invalid).

    ``str(error)`` is a readable report; ``error.problems`` holds the structured problems.
    """

    def __init__(self, problems: Problem | Sequence[Problem] | str, *, dataset: str | None = None):
        if isinstance(problems, str):
            self.problems: list[Problem] = []
            text = problems
        else:
            self.problems = [problems] if isinstance(problems, Problem) else list(problems)
            text = render(self.problems, dataset)
        self.dataset = dataset
        super().__init__(text)


def render(problems: Sequence[Problem], dataset: str | None = None) -> str:
    """The readable form of a list of problems (one bullet each)."""
    name = f"Dataset {dataset!r}" if dataset else "The dataset"
    if len(problems) == 1:
        return f"{name} does not meet the data contract: {problems[0].message()}"
    lines = [f"{name} does not meet the data contract ({len(problems)} problems):"]
    lines += [f"- {p.message()}" for p in problems]
    return "\n".join(lines)


def fmt_value(value: object, width: int = 40) -> str:
    """``repr``-like short form of one example value."""
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return "<missing>"
    if isinstance(value, tuple):
        return "(" + ", ".join(fmt_value(v, width) for v in value) + ")"
    if isinstance(value, pd.Timestamp):
        text = str(value.date()) if value == value.normalize() else str(value)
    elif isinstance(value, float):
        text = f"{value:g}"
    elif isinstance(value, str):
        text = repr(value)
    else:
        text = str(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def examples(values: pd.Series | pd.DataFrame | Iterable[object], k: int = MAX_EXAMPLES) -> tuple[str, ...]:
    """Up to ``k`` distinct example values, in order of first appearance, formatted for messages."""
    if isinstance(values, pd.DataFrame):
        head = values.drop_duplicates().head(k)
        items: list[object] = list(head.itertuples(index=False, name=None))
        if values.shape[1] == 1:
            items = [t[0] for t in items]
    elif isinstance(values, pd.Series):
        items = list(values.drop_duplicates().head(k))
    else:
        items = []
        for v in values:
            if v not in items:
                items.append(v)
            if len(items) >= k:
                break
    return tuple(fmt_value(v) for v in items)
