"""Row-level rules: what to do with each kind of row-level problem.

Schema-level problems (a missing required column, values of the wrong type, dates that do not
parse, an all-missing required column, an empty required table) are always errors. Row-level
problems are governed by *rules*; each rule has a default action and a set of allowed actions:

``error``      stop loading and report the rows (the default for anything that may hide a bug);
``set_aside``  move the rows to ``Dataset.set_aside[table]`` with a ``reason`` column;
``repair``     fix the rows in place (what a repair does is documented per rule below) and count
               them in ``rows_repaired`` — repaired rows are *kept* rows;
``keep``       keep the rows unchanged and list them in ``Dataset.issues``.

In ``dataset.yaml`` (``rules:``) or ``load_dataset(..., rules=...)`` a rule is set for the whole
dataset (``zero_value: keep``), for one table (``orders.zero_value: keep``) or for one column
(``orders.amount.zero_value: keep``); the most specific setting wins.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Callable, Literal, Mapping

from helpers.contract import TABLES, Column

from .errors import DataContractError

Action = Literal["error", "set_aside", "repair", "keep"]
ACTIONS: tuple[str, ...] = ("error", "set_aside", "repair", "keep")


@dataclass(frozen=True)
class Rule:
    name: str
    meaning: str
    actions: tuple[str, ...]
    default: Action | Callable[[str, Column | None], Action]
    reason: str  # reason written to set-aside rows
    repair: str = ""  # what ``repair`` does

    def default_for(self, table: str, column: Column | None) -> Action:
        return self.default(table, column) if callable(self.default) else self.default


def _optional_repair(table: str, column: Column | None) -> Action:
    """Descriptive optional columns are repaired to NA; required columns are errors."""
    return "error" if column is None or column.required else "repair"


def _missing_default(table: str, column: Column | None) -> Action:
    """Missing required values are errors; missing optional values are kept (and reported)."""
    return "error" if column is None or column.required or not column.nullable else "keep"


def _inconsistent_default(table: str, column: Column | None) -> Action:
    """Lines of one order with different customers are an error; other attributes are repaired."""
    return "error" if column is not None and column.name == "customer_id" else "repair"


RULES: dict[str, Rule] = {
    r.name: r
    for r in (
        Rule("exact_duplicate", "the row is identical (every column) to an earlier row",
             ("error", "set_aside", "keep"), "set_aside", "exact duplicate"),
        Rule("missing_value", "a value is missing: in a required column (id, timestamp, "
             "quantity, ...) an error by default; in an optional column (age, region, ...) kept",
             ("error", "set_aside", "keep"), _missing_default, "no {column}"),
        Rule("non_product_code", "the line's product code is a non-product code (postage, fees, "
             "manual adjustments, ...) listed under lines.non_product_codes",
             ("error", "set_aside", "keep"), "set_aside", "non-product code"),
        Rule("negative_value", "an amount, price or quantity that must be positive is negative",
             ("error", "set_aside"), "error", "negative {column}"),
        Rule("zero_value", "an amount, price or quantity that must be positive is zero",
             ("error", "set_aside", "keep"), "error", "zero {column}"),
        Rule("out_of_range", "a number is outside its allowed range (e.g. age 150)",
             ("error", "set_aside", "repair", "keep"), _optional_repair, "{column} out of range",
             "the value is replaced by NA"),
        Rule("invalid_code", "a category value is not one of the allowed codes",
             ("error", "set_aside", "repair"), _optional_repair, "invalid {column} code",
             "the value is replaced by NA"),
        Rule("outlier", "an amount, price or quantity is more than 1,000 times the median of its "
             "column (columns with at least 20 positive values): kept by default and listed in "
             "ds.issues, so a typo (an extra zero, cents entered as units) or a wholesale order is "
             "seen, not silently kept or dropped",
             ("error", "set_aside", "keep"), "keep", "{column} outlier"),
        Rule("future_date", "a timestamp lies after the dataset's data end (data_end, else "
             "analysis_date, else the day of loading)",
             ("error", "set_aside", "keep"), "error", "{column} after data end"),
        Rule("duplicate_key", "several (non-identical) rows share the table's unique key",
             ("error", "set_aside", "repair"), "error", "duplicate key",
             "order lines with the same (order_id, product_id) are merged into the first one "
             "(quantities summed, unit price weighted by quantity) and the merged rows are set "
             "aside with reason 'merged into an earlier line (duplicate key)'; in other tables "
             "the first row is kept and the others are set aside with reason "
             "'duplicate key (first kept)'"),
        Rule("orphan_key", "a foreign key refers to a row that does not exist in the referenced "
             "table (e.g. an order line of an unknown order)",
             ("error", "set_aside"), "error", "unknown {column}"),
        Rule("return_before_order", "a return refers to an order (returns.order_id) but is booked "
             "before that order was placed (a clock, time-zone or linking error)",
             ("error", "set_aside", "keep"), "error", "return before its order"),
        Rule("unmatched_return", "a cancellation line (format lines) whose customer never bought "
             "that product in the data: the original sale is before the data window or missing. "
             "Kept by default (the refund happened) and listed in ds.issues",
             ("error", "set_aside", "keep"), "keep", "no original sale"),
        Rule("inconsistent_value", "rows that must agree disagree (lines of one order with "
             "different customers or times, one customer with several regions, ...)",
             ("error", "repair"), _inconsistent_default, "inconsistent {column}",
             "the earliest timestamp, or the most frequent value, is used"),
    )
}

#: Other names accepted in ``rules:`` (kept for compatibility; prefer the canonical names).
ALIASES: dict[str, str] = {"duplicate_rows": "exact_duplicate"}

#: Reason given to rows set aside because a row they refer to was set aside (not a rule: a
#: child row cannot be kept without its parent).
PARENT_SET_ASIDE = "{parent} row set aside"


def _canonical(key: str) -> str:
    *scope, rule = key.split(".")
    return ".".join([*scope, ALIASES.get(rule, rule)])


class RuleBook:
    """Resolved rule settings: ``action(rule, table, column)`` gives the action to take."""

    def __init__(self, settings: Mapping[str, str] | None = None):
        self.settings: dict[str, str] = {}
        for key, action in (settings or {}).items():
            key = _canonical(str(key))
            self._check(key, action)
            self.settings[key] = str(action)

    def updated(self, settings: Mapping[str, str] | None) -> "RuleBook":
        merged = dict(self.settings)
        merged.update({_canonical(str(k)): str(v) for k, v in (settings or {}).items()})
        return RuleBook(merged)

    @staticmethod
    def _check(key: str, action: object) -> None:
        parts = key.split(".")
        rule = parts[-1]
        if rule not in RULES:
            close = difflib.get_close_matches(rule, RULES, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise DataContractError(
                f"Unknown rule {key!r} in rules.{hint} Known rules: {', '.join(RULES)}. A rule may "
                "be scoped to a table or column: 'orders.zero_value' or 'orders.amount.zero_value'.")
        if len(parts) > 3 or (len(parts) >= 2 and parts[0] not in TABLES):
            raise DataContractError(
                f"Rule key {key!r}: expected 'rule', 'table.rule' or 'table.column.rule' with a "
                f"contract table ({', '.join(TABLES)}).")
        if len(parts) == 3:  # lines of format 'lines' carry columns of several tables
            known = {c for t in TABLES.values() for c in t.column_names}
            if parts[1] not in known:
                close = difflib.get_close_matches(parts[1], sorted(known), n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise DataContractError(
                    f"Rule key {key!r}: {parts[1]!r} is not a contract column.{hint}")
        allowed = RULES[rule].actions
        if action not in allowed:
            raise DataContractError(
                f"Rule {key!r}: action {action!r} is not allowed; choose one of "
                f"{', '.join(allowed)}.")

    def action(self, rule: str, table: str, column: Column | None = None) -> Action:
        """The action for ``rule`` on ``table``/``column``: most specific setting wins."""
        keys = []
        if column is not None:
            keys.append(f"{table}.{column.name}.{rule}")
        keys += [f"{table}.{rule}", rule]
        for key in keys:
            if key in self.settings:
                return self.settings[key]  # type: ignore[return-value]
        return RULES[rule].default_for(table, column)

    def fix_hint(self, rule: str, table: str, column: str | None, required: bool = False) -> str:
        """How to change the rule in dataset.yaml (used in error messages)."""
        others = [a for a in RULES[rule].actions if a != "error"
                  and not (a == "keep" and rule == "missing_value" and required)]
        key = f"{table}.{column}.{rule}" if column else f"{table}.{rule}"
        if not others:
            return "correct these rows in the source data."
        return (f"correct these rows in the source data, or set `rules: {{{key}: {others[0]}}}` in "
                f"dataset.yaml (allowed: {', '.join(others)}).")


def rules_markdown() -> str:
    """The rules as a Markdown table (for README / docs)."""
    out = ["| rule | problem | default | allowed actions | repair does |", "|---|---|---|---|---|"]
    for r in RULES.values():
        default = r.default if isinstance(r.default, str) else (
            "repair (optional column) / error (required column)" if r.default is _optional_repair
            else "error (required column) / keep (optional column)" if r.default is _missing_default
            else "error for customer_id / repair otherwise")
        out.append(f"| `{r.name}` | {r.meaning} | {default} | {', '.join(r.actions)} | "
                   f"{r.repair or '-'} |")
    return "\n".join(out)
