"""Building contract tables from the three source layouts (``format`` in dataset.yaml).

``tables``       one source per contract table (CSV/Parquet/SQL), optional column and code
                 mappings per table.
``transactions`` one source of transactions: customer, timestamp, amount (optionally order id,
                 n_items, product, quantity, channel, ...). Each row becomes an order; without a
                 mapped ``order_id`` the order id is the row's 1-based position in the source.
                 With a mapped ``product_id`` one order line per order is derived
                 (unit_price = amount / quantity) and a products table.
``lines``        one source of invoice lines (order id, product, quantity, unit price, customer,
                 time, optionally product and customer attributes), like Online Retail II. Lines
                 selected by ``lines.cancellation`` become ``returns``; the others ``order_lines``;
                 ``orders``, ``products`` and ``customers`` are derived from the kept lines.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import replace
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from helpers.contract import TABLES, Column, Table

from .coerce import STRING, Coercer
from .config import DatasetConfig, Exclusion, ReaderOptions, SourceSpec
from .errors import DataContractError, Problem, examples
from .privacy import PERSON_ID_COLUMNS, pseudonymize
from .readers import read_source, source_columns
from .validate import Ledger, check_foreign_keys, check_rows, position_in

#: Contract tables in dependency order (parents first).
ORDER = ("customers", "products", "orders", "order_lines", "returns", "events", "loyalty",
         "experiments", "surveys")


class Builder:
    """Loads the tables of one dataset config into contract form, recording everything."""

    def __init__(self, cfg: DatasetConfig, ledger: Ledger):
        self.cfg = cfg
        self.ledger = ledger
        self.problems: list[Problem] = []
        ref = cfg.data_end if cfg.data_end is not None else cfg.analysis_date
        which = "data_end" if cfg.data_end is not None else "analysis_date"
        if ref is None:
            ref, which = pd.Timestamp.now().normalize(), "the day of loading"
        self.limit = ref + pd.Timedelta(days=1) - pd.Timedelta(1, "ns") if ref == ref.normalize() else ref
        self.limit_label = f"{ref.date() if ref == ref.normalize() else ref} ({which})"
        self.pseudonym_key = cfg.privacy.key(cfg.name)  # None unless privacy.pseudonymize_ids

    # -- shared steps --------------------------------------------------------------------------
    def raise_problems(self) -> None:
        if self.problems:
            raise DataContractError(self.problems, dataset=self.cfg.name)

    def read(self, src: SourceSpec, label: str, wanted: list[str] | None) -> tuple[pd.DataFrame, list[str]]:
        """Rows of ``src`` (only ``wanted`` columns for Parquet) and all its column names."""
        names = source_columns(src)
        df = read_source(src, label, wanted if names is not None else None)
        if not isinstance(df.index, pd.RangeIndex) or df.index.start != 0:
            df = df.reset_index(drop=True)
        return df, names if names is not None else list(df.columns)

    def map_and_coerce(self, raw: pd.DataFrame, all_names: list[str], table_of: Mapping[str, str],
                       columns: Mapping[str, Column], mapping: Mapping[str, str],
                       codes: Mapping[str, Mapping[str, str]], reader: ReaderOptions,
                       required: Sequence[str], label: str, source_label: str,
                       mapping_key: str, also_used: Sequence[str] = ()) -> pd.DataFrame:
        """Rename source columns to contract names, check presence and type each column.

        ``columns``: contract name -> Column accepted in this frame; ``table_of``: contract name ->
        table named in messages; ``mapping``: contract name -> source column; ``also_used``:
        source columns read for other purposes (cancellation markers, ...), not reported unused.
        """
        out: dict[str, pd.Series] = {}
        src_names: dict[str, str] = {}
        for name, col in columns.items():
            src = mapping.get(name, name)
            table = table_of.get(name, label)
            if src in raw.columns:
                out[name] = raw[src]
                src_names[name] = src
            elif name in mapping:
                self.problems.append(self._missing(table, name, src, all_names, len(raw),
                                                   source_label, mapping_key, mapped=True))
            elif name in required:
                self.problems.append(self._missing(table, name, name, all_names, len(raw),
                                                   source_label, mapping_key, mapped=False))
        used = set(src_names.values()) | set(also_used)
        extra = [c for c in all_names if c not in used]
        if extra:
            self.ledger.issue(label, ", ".join(extra), "unused_column", "dropped", 0,
                              [repr(c) for c in extra[:5]])
        coercer = Coercer(label, self.cfg.timezone, source_label, src_names)
        typed: dict[str, pd.Series] = {}
        for name, s in out.items():
            coercer.table = table_of.get(name, label)
            col = columns[name]
            fmt = reader.date_format_for(name)
            if fmt is None and isinstance(reader.date_format, Mapping):
                fmt = reader.date_format.get(src_names[name])
            n_problems = len(coercer.problems)
            typed[name] = coercer.coerce(s, col, date_format=fmt,
                                         source_timezone=reader.source_timezone,
                                         codes=codes.get(name), decimal=reader.decimal,
                                         thousands=reader.thousands)
            if (name in required and len(s) and len(coercer.problems) == n_problems
                    and typed[name].isna().all()):
                self.problems.append(Problem(
                    coercer.table, name, "all values are missing in a required column"
                    + (f" (source column {src_names[name]!r})" if src_names[name] != name else ""),
                    len(s), (), "check the column mapping in dataset.yaml and that the column "
                                "is filled in the source.", None, len(s)))
        self.problems += coercer.problems
        if self.pseudonym_key is not None and not coercer.problems:
            for name in PERSON_ID_COLUMNS:
                if name in typed:
                    typed[name] = pseudonymize(typed[name], self.pseudonym_key)
        return pd.DataFrame(typed, index=raw.index)

    def check_exclusion_columns(self, exclusions: Sequence[Exclusion], all_names: list[str],
                                table: str, source_label: str, where: str) -> None:
        """A problem for every ``exclude`` entry naming a column the source lacks."""
        for i, ex in enumerate(exclusions):
            if ex.selector.column not in all_names:
                close = difflib.get_close_matches(ex.selector.column, all_names, n=1, cutoff=0.5)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                self.problems.append(Problem(
                    table, None, f"column {ex.selector.column!r} named in {where}[{i}].column is "
                    f"not in {source_label}; found columns: "
                    + ", ".join(repr(c) for c in all_names[:20]) + hint, 0, (),
                    f"set {where}[{i}].column to a source column name."))

    def exclude(self, table: str, raw: pd.DataFrame, df: pd.DataFrame,
                exclusions: Sequence[Exclusion]) -> pd.DataFrame:
        """Set aside the rows of ``df`` that an ``exclude`` entry selects in ``raw`` (the source
        rows, same index); each entry is listed in ``ds.issues`` as rule ``excluded``. A row
        selected by several entries counts under the first."""
        if not exclusions or not len(df):
            return df
        gone = pd.Series(False, index=df.index)
        for ex in exclusions:
            hit = ex.selector.mask(raw[ex.selector.column]).reindex(df.index, fill_value=False)
            hit = hit & ~gone
            n = int(hit.sum())
            if n:
                self.ledger.issue(table, ex.selector.column, "excluded", "set_aside", n,
                                  examples(raw.loc[hit[hit].index, ex.selector.column]))
                self.ledger.set_aside(table, df[hit.to_numpy()], ex.reason)
                gone |= hit
        return df[~gone.to_numpy()]

    @staticmethod
    def _missing(table: str, name: str, src: str, found: list[str], n: int, source_label: str,
                 mapping_key: str, mapped: bool) -> Problem:
        def norm(x: str) -> str:
            return re.sub(r"[^a-z0-9]", "", x.lower())
        close = difflib.get_close_matches(src, found, n=1, cutoff=0.5)
        if not close:
            normed = {norm(f): f for f in found}
            hit = difflib.get_close_matches(norm(src), list(normed), n=1, cutoff=0.5)
            close = [normed[hit[0]]] if hit else []
        shown = ", ".join(repr(f) for f in found[:20]) + (" ..." if len(found) > 20 else "")
        what = (f"column {src!r} mapped to {name!r} is not in {source_label}" if mapped else
                f"required column {name!r} is missing from {source_label}")
        what += f"; found columns: {shown or 'none'}"
        if close:
            what += f"; did you mean {close[0]!r}?"
        guess = close[0] if close else "<source column>"
        fix = (f"rename the column in the source, or map it in dataset.yaml under "
               f"{mapping_key}: {{{name}: {guess!r}}}.")
        return Problem(table, name, what, n, (), fix, None, None)

    def start(self, table: str, df: pd.DataFrame, derived: bool = False) -> None:
        self.ledger.start(table, len(df), derived=derived)

    def check(self, table: str, df: pd.DataFrame, columns: Sequence[Column], key: Sequence[str],
              **kw: object) -> pd.DataFrame:
        return check_rows(self.ledger, table, df, columns, key, limit=self.limit,
                          limit_label=self.limit_label, **kw)  # type: ignore[arg-type]

    # -- format: tables ------------------------------------------------------------------------
    def build_tables(self) -> dict[str, pd.DataFrame]:
        cfg = self.cfg
        frames: dict[str, pd.DataFrame] = {}
        selector_cols: dict[str, pd.DataFrame] = {}  # source columns read by ``exclude``
        for name in ORDER:
            if name not in cfg.tables:
                continue
            spec = cfg.tables[name]
            t = TABLES[name]
            wanted = ([spec.columns.get(c, c) for c in t.column_names]
                      + [e.selector.column for e in spec.exclude])
            raw, all_names = self.read(spec.source, name, wanted)
            if not len(raw) and name != "orders":  # an empty optional table: present, no rows
                frames[name] = _empty(t)
                continue
            required = list(t.required_columns)
            if name == "orders" and "order_lines" not in cfg.tables:
                required.append("amount")
            self.check_exclusion_columns(spec.exclude, all_names, name, spec.source.label,
                                         f"tables.{name}.exclude")
            df = self.map_and_coerce(raw, all_names, {}, {c.name: c for c in t.columns},
                                     spec.columns, spec.codes, spec.source.reader, required, name,
                                     spec.source.label, f"tables.{name}.columns",
                                     also_used=[e.selector.column for e in spec.exclude])
            if spec.exclude and not self.problems:
                selector_cols[name] = raw[list(dict.fromkeys(e.selector.column
                                                             for e in spec.exclude))]
            if not len(raw):
                self.problems.append(Problem(name, None, "the table is empty", 0, (),
                                             f"check that {spec.source.label} holds rows."))
            frames[name] = df
        if "orders" not in frames:
            self.problems.append(Problem("orders", None, "the required table is not listed", 0, (),
                                         "add 'orders' under 'tables' in dataset.yaml."))
        self.raise_problems()
        for name in list(frames):  # not list(frames.items()): the unchecked frames would
            df = frames[name]       # stay referenced (and in memory) until the loop ends
            t = TABLES[name]
            self.start(name, df)
            if not len(df):
                self.ledger.issue(name, None, "empty_table", "keep", 0)
            if name in selector_cols:
                df = self.exclude(name, selector_cols[name], df, cfg.tables[name].exclude)
            cols = t.columns
            if name == "orders" and "order_lines" not in frames:  # the amount is required
                cols = tuple(replace(c, required=True, nullable=False) if c.name == "amount"
                             else c for c in cols)
            frames[name] = self.check(name, df, cols, t.key,
                                      merge_lines=(name == "order_lines"), consume=True)
            del df
        check_foreign_keys(self.ledger, frames, ["orders", "order_lines"])
        self._derive_order_totals(frames)
        check_foreign_keys(self.ledger, frames, ["returns", "events", "loyalty", "experiments",
                                                 "surveys"])
        self._check_return_times(frames)
        return frames

    def _check_return_times(self, frames: dict[str, pd.DataFrame]) -> None:
        """Rule ``return_before_order``: returns booked before the order they refer to."""
        r, o = frames.get("returns"), frames.get("orders")
        if r is None or o is None or not len(r) or "order_id" not in r.columns:
            return
        placed = r["order_id"].map(pd.Series(o["order_ts"].to_numpy(),
                                             index=o["order_id"].astype(object)))
        mask = placed.notna() & (r["return_ts"] < placed)
        frames["returns"] = self.ledger.act(
            "returns", r, mask, "return_before_order", TABLES["returns"].column("return_ts"),
            "returns booked before their order was placed",
            example_cols=["return_id", "order_id", "return_ts"])

    def _derive_order_totals(self, frames: dict[str, pd.DataFrame]) -> None:
        """``orders.amount`` (and ``n_items``) from the order lines where missing."""
        if "order_lines" not in frames:
            return
        orders, lines = frames["orders"], frames["order_lines"]
        # position of each line's order in ``orders`` (order ids are unique there by now; every
        # kept line has a kept order after the foreign-key check), then sums by position
        pos = position_in(lines["order_id"], orders["order_id"])
        n = len(orders)
        value = np.bincount(pos, (lines["quantity"] * lines["unit_price"]).to_numpy(), n)
        qty = np.bincount(pos, lines["quantity"].to_numpy(), n)
        has_lines = np.bincount(pos, minlength=n) > 0
        amount = pd.Series(np.where(has_lines, value, np.nan), index=orders.index)
        if "amount" in orders.columns:
            amount = orders["amount"].where(orders["amount"].notna(), amount)
        orders = orders.assign(amount=amount)
        if "n_items" not in orders.columns:
            orders = orders.assign(n_items=np.where(has_lines, qty, np.nan))
        col = TABLES["orders"].column("amount")
        orders = self.ledger.act(
            "orders", orders, orders["amount"].isna(), "missing_value",
            Column("amount", "float", True, col.meaning, positive=True),
            "orders without an amount and without (kept) order lines to derive it from",
            example_cols=["order_id"], reason="no amount (no order lines)")
        frames["orders"] = orders

    # -- format: transactions ------------------------------------------------------------------
    def build_transactions(self) -> dict[str, pd.DataFrame]:
        cfg = self.cfg
        assert cfg.source is not None
        columns, table_of = _line_columns("transactions", cfg.columns)
        ex_cols = [e.selector.column for e in cfg.exclude]
        wanted = [cfg.columns.get(c, c) for c in columns] + ex_cols
        raw, all_names = self.read(cfg.source, "orders", wanted)
        required = ["customer_id", "order_ts", "amount"]
        self.check_exclusion_columns(cfg.exclude, all_names, "orders", cfg.source.label,
                                     "exclude")
        df = self.map_and_coerce(raw, all_names, table_of, columns,
                                 {_bare(k): v for k, v in cfg.columns.items()}, cfg.codes,
                                 cfg.source.reader, required, "orders", cfg.source.label,
                                 "columns", also_used=ex_cols)
        if not len(raw):
            self.problems.append(Problem("orders", None, "the table is empty", 0, (),
                                         f"check that {cfg.source.label} holds rows."))
        self.raise_problems()
        has_order_id = "order_id" in df.columns
        self.start("orders", df)
        df = self.exclude("orders", raw, df, cfg.exclude)
        cols = [columns[c] for c in df.columns]
        df = self.check("orders", df, cols, ("order_id",) if has_order_id else (),
                        example_key=("customer_id", "order_ts"))
        if not has_order_id:
            df = df.assign(order_id=pd.Series((df.index + 1).astype(str), index=df.index,
                                              dtype=STRING))
        if "n_items" not in df.columns and "quantity" in df.columns:
            df = df.assign(n_items=df["quantity"])
        frames = {"orders": _contract_frame(df, TABLES["orders"])}
        if "product_id" in df.columns:
            qty = df["quantity"] if "quantity" in df.columns else pd.Series(1.0, index=df.index)
            lines = pd.DataFrame({"order_id": df["order_id"], "product_id": df["product_id"],
                                  "quantity": qty.astype("float64"),
                                  "unit_price": (df["amount"] / qty).astype("float64")})
            self.start("order_lines", lines, derived=True)
            frames["order_lines"] = lines
            frames["products"] = self._derive_products(df.assign(unit_price=lines["unit_price"]),
                                                       None)
        cust_attrs = [c for c in df.columns if table_of.get(c) == "customers"]
        if cust_attrs:
            frames["customers"] = self._derive_customers(df, cust_attrs)
        return frames

    # -- format: lines -------------------------------------------------------------------------
    def build_lines(self) -> dict[str, pd.DataFrame]:
        cfg = self.cfg
        assert cfg.source is not None
        columns, table_of = _line_columns("lines", cfg.columns)
        mapping = {_bare(k): v for k, v in cfg.columns.items()}
        selectors = [s for s in (cfg.lines.cancellation, cfg.lines.non_product_codes) if s]
        selectors += [e.selector for e in cfg.exclude]
        wanted = [mapping.get(c, c) for c in columns] + [s.column for s in selectors]
        raw, all_names = self.read(cfg.source, "order_lines", wanted)
        for sel, what in ((cfg.lines.cancellation, "cancellation"),
                          (cfg.lines.non_product_codes, "non_product_codes")):
            if sel is not None and sel.column not in raw.columns:
                self.problems.append(Problem(
                    "order_lines", None, f"column {sel.column!r} named in lines.{what}.column is "
                    f"not in {cfg.source.label}; found columns: "
                    + ", ".join(repr(c) for c in all_names[:20]), len(raw), (),
                    f"set lines.{what}.column to a source column name."))
        self.check_exclusion_columns(cfg.exclude, all_names, "order_lines", cfg.source.label,
                                     "exclude")
        self.raise_problems()
        required = ["order_id", "customer_id", "order_ts", "product_id", "quantity", "unit_price"]
        wide = self.map_and_coerce(raw, all_names, table_of, columns, mapping, cfg.codes,
                                   cfg.source.reader, required, "order_lines", cfg.source.label,
                                   "columns", also_used=[s.column for s in selectors])
        if not len(raw):
            self.problems.append(Problem("order_lines", None, "the source is empty", 0, (),
                                         f"check that {cfg.source.label} holds rows."))
        self.raise_problems()
        canc = (cfg.lines.cancellation.mask(raw[cfg.lines.cancellation.column])
                if cfg.lines.cancellation else pd.Series(False, index=raw.index))
        nonprod = (cfg.lines.non_product_codes.mask(raw[cfg.lines.non_product_codes.column])
                   if cfg.lines.non_product_codes else None)
        npcol = columns["product_id"]
        # excluded source lines (test orders, ...) are counted and set aside as order lines
        self.start("order_lines", wide.iloc[:0])
        kept = self.exclude("order_lines", raw, wide, cfg.exclude)
        if len(kept) < len(wide):
            self.ledger.books["order_lines"].rows_in += len(wide) - len(kept)
            keep_mask = wide.index.isin(kept.index)
            wide, canc = kept, canc[keep_mask]
            nonprod = nonprod[keep_mask] if nonprod is not None else None
        del raw, kept
        sales = wide[~canc.to_numpy()]
        rets = wide[canc.to_numpy()].rename(columns={"order_id": "cancellation_id",
                                                     "order_ts": "return_ts"})
        if cfg.lines.cancellation_sign == "negative":
            rets = rets.assign(quantity=-rets["quantity"])
        del wide
        self.start("order_lines", sales)
        self.start("returns", rets)
        sales = self.check("order_lines", sales, [columns[c] for c in sales.columns],
                           ("order_id", "product_id"), non_product=nonprod,
                           non_product_column=npcol, merge_lines=True)
        rcols = {c: columns[c] for c in rets.columns if c in columns}
        rcols["cancellation_id"] = Column("cancellation_id", "id", True, "Cancellation invoice.")
        rcols["return_ts"] = TABLES["returns"].column("return_ts")
        rets = self.check("returns", rets, list(rcols.values()), (), non_product=nonprod,
                          non_product_column=npcol,
                          example_key=("cancellation_id", "product_id"))
        frames: dict[str, pd.DataFrame] = {}
        frames["orders"] = self._derive_orders(sales)
        frames["order_lines"] = _contract_frame(sales, TABLES["order_lines"])
        value = rets["quantity"] * rets["unit_price"]
        returns = pd.DataFrame({
            "return_id": (rets["cancellation_id"].astype(str) + ":"
                          + (rets.index + 1).astype(str)).astype(STRING),
            "customer_id": rets["customer_id"], "return_ts": rets["return_ts"],
            "amount": value.astype("float64"),
            "order_id": pd.Series(pd.NA, index=rets.index, dtype=STRING),
            "product_id": rets["product_id"], "quantity": rets["quantity"]})
        sold = pd.MultiIndex.from_arrays([sales["customer_id"], sales["product_id"]]).unique()
        unmatched = ~pd.MultiIndex.from_arrays([returns["customer_id"],
                                                returns["product_id"]]).isin(sold)
        returns = self.ledger.act(
            "returns", returns, pd.Series(unmatched, index=returns.index), "unmatched_return",
            TABLES["returns"].column("product_id"),
            "cancellations of a product the customer never bought in the data",
            example_cols=["return_id", "customer_id", "product_id"],
            column_label="customer_id, product_id")
        keep = returns.index
        rets = rets.loc[keep]
        frames["returns"] = returns
        both = pd.concat([sales, rets.drop(columns=["cancellation_id"])
                          .rename(columns={"return_ts": "order_ts"})])
        frames["products"] = self._derive_products(both, sales)
        cust_attrs = [c for c in both.columns if table_of.get(c) == "customers"]
        if cust_attrs:
            frames["customers"] = self._derive_customers(both, cust_attrs)
        check_foreign_keys(self.ledger, frames, ["orders", "order_lines", "returns"])
        return frames

    def _derive_orders(self, sales: pd.DataFrame) -> pd.DataFrame:
        """One row per order id: first customer, earliest time, amount = sum of quantity x
        unit price, n_items = sum of quantities, discount_amount summed, other attributes the
        most frequent value; lines that disagree are governed by ``inconsistent_value``."""
        g = sales.groupby("order_id", sort=False, observed=True)
        value = (sales["quantity"] * sales["unit_price"]).groupby(sales["order_id"], sort=False,
                                                                  observed=True).sum()
        orders = pd.DataFrame({"order_id": pd.Series(g.size().index, dtype=STRING)})
        key = orders["order_id"]
        orders["customer_id"] = key.map(g["customer_id"].first()).astype(STRING)
        orders["order_ts"] = key.map(g["order_ts"].min()).astype("datetime64[ns]")
        orders["amount"] = key.map(value).astype("float64")
        orders["n_items"] = key.map(g["quantity"].sum()).astype("float64")
        if "discount_amount" in sales.columns:
            orders["discount_amount"] = key.map(g["discount_amount"].sum(min_count=1)).astype(
                "float64")
        attrs = [c for c in sales.columns if c in TABLES["orders"].column_names
                 and c not in ("order_id", "customer_id", "order_ts", "amount", "n_items",
                               "discount_amount")]
        for c in attrs:
            orders[c] = key.map(_mode(sales, "order_id", c)[0]).astype(sales[c].dtype)
        self.start("orders", orders, derived=True)
        for c in ["customer_id", "order_ts"] + attrs:
            n_distinct = key.map(g[c].nunique()).fillna(0)
            mask = n_distinct > 1
            how = "the earliest is used" if c == "order_ts" else "the most frequent is used"
            if c == "customer_id":
                how = "the first is used"
            orders = self.ledger.act(
                "orders", orders, mask, "inconsistent_value", TABLES["orders"].column(c),
                f"lines of one order carry different {c} values ({how} on repair)",
                example_cols=["order_id"], repair=lambda d, m: d)
        return _contract_frame(orders, TABLES["orders"])

    def _derive_products(self, lines: pd.DataFrame, priced: pd.DataFrame | None) -> pd.DataFrame:
        """One row per product: most frequent name/category/brand, median unit price."""
        ids = lines["product_id"].dropna().unique()
        products = pd.DataFrame({"product_id": pd.Series(ids, dtype=STRING)})
        key = products["product_id"]
        for c in ("product_name", "category", "brand"):
            if c in lines.columns:
                mode, n_distinct = _mode(lines, "product_id", c)
                products[c] = key.map(mode).astype(STRING)
                products["_n_" + c] = key.map(n_distinct).fillna(0)
        src = priced if priced is not None else lines
        price = src.groupby("product_id", sort=False, observed=True)["unit_price"].median()
        fallback = lines.groupby("product_id", sort=False, observed=True)["unit_price"].median()
        products["price"] = key.map(price).fillna(key.map(fallback)).astype("float64")
        self.start("products", products, derived=True)
        for c in ("product_name", "category", "brand"):
            if "_n_" + c in products.columns:
                products = self.ledger.act(
                    "products", products, products["_n_" + c] > 1, "inconsistent_value",
                    TABLES["products"].column(c),
                    f"lines of one product carry different {c} values (the most frequent is used "
                    "on repair)", example_cols=["product_id"], repair=lambda d, m: d)
        return _contract_frame(products, TABLES["products"])

    def _derive_customers(self, lines: pd.DataFrame, attrs: list[str]) -> pd.DataFrame:
        ids = lines["customer_id"].dropna().unique()
        customers = pd.DataFrame({"customer_id": pd.Series(ids, dtype=STRING)})
        key = customers["customer_id"]
        counts = {}
        for c in attrs:
            mode, n_distinct = _mode(lines, "customer_id", c)
            customers[c] = key.map(mode).astype(lines[c].dtype)
            counts[c] = key.map(n_distinct).fillna(0)
        self.start("customers", customers, derived=True)
        for c in attrs:
            customers = self.ledger.act(
                "customers", customers, counts[c].reindex(customers.index) > 1,
                "inconsistent_value", TABLES["customers"].column(c),
                f"lines of one customer carry different {c} values (the most frequent is used "
                "on repair)", example_cols=["customer_id"], repair=lambda d, m: d)
        return _contract_frame(customers, TABLES["customers"])


# -- helpers ------------------------------------------------------------------------------------
def _bare(key: str) -> str:
    return key.split(".", 1)[1] if "." in key else key


_CUSTOMER_ATTRS = ("signup_date", "gender", "age", "region", "device", "acquisition_channel")
_ORDER_ATTRS = ("discount_amount", "coupon_used", "channel", "device")
_PRODUCT_ATTRS = ("product_name", "category", "brand")

#: (table, column, required) accepted by each single-source format, in resolution order.
_SINGLE_SOURCE: dict[str, tuple[tuple[str, str, bool], ...]] = {
    "lines": (
        *(("order_lines", c, True) for c in ("order_id", "product_id", "quantity", "unit_price")),
        ("orders", "customer_id", True), ("orders", "order_ts", True),
        *(("orders", c, False) for c in _ORDER_ATTRS),
        *(("products", c, False) for c in _PRODUCT_ATTRS),
        *(("customers", c, False) for c in _CUSTOMER_ATTRS),
    ),
    "transactions": (
        ("orders", "order_id", False), ("orders", "customer_id", True),
        ("orders", "order_ts", True), ("orders", "amount", True), ("orders", "n_items", False),
        *(("orders", c, False) for c in _ORDER_ATTRS),
        ("order_lines", "product_id", False), ("order_lines", "quantity", False),
        *(("products", c, False) for c in _PRODUCT_ATTRS),
        *(("customers", c, False) for c in _CUSTOMER_ATTRS),
    ),
}


def _line_columns(fmt: str, mapping: Mapping[str, str]) -> tuple[dict[str, Column], dict[str, str]]:
    """Contract columns a single-source (``transactions`` / ``lines``) frame may carry.

    Returns contract name -> Column (with the requiredness of this format) and contract name ->
    table it belongs to. An unqualified name resolves to the first table listed in
    ``_SINGLE_SOURCE``; a qualified mapping key (``customers.device``) picks the table.
    """
    accepted = _SINGLE_SOURCE[fmt]
    qualified: dict[str, str] = {}
    for key in mapping:
        if "." in key:
            tname, cname = key.split(".", 1)
            if (tname, cname) not in {(t, c) for t, c, _ in accepted}:
                raise DataContractError(
                    f"columns: {key!r} is not a column a {fmt!r} source can provide; accepted: "
                    + ", ".join(f"{t}.{c}" for t, c, _ in accepted) + ".")
            qualified[cname] = tname
        elif key not in {c for _, c, _ in accepted}:
            close = difflib.get_close_matches(key, [c for _, c, _ in accepted], n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise DataContractError(
                f"columns: {key!r} is not a contract column a {fmt!r} source can provide.{hint} "
                "Accepted: " + ", ".join(dict.fromkeys(c for _, c, _ in accepted)) + ".")
    columns: dict[str, Column] = {}
    table_of: dict[str, str] = {}
    for tname, cname, required in accepted:
        if cname in columns or (cname in qualified and qualified[cname] != tname):
            continue
        col = TABLES[tname].column(cname)
        columns[cname] = replace(col, required=required,
                                 nullable=col.nullable if required else True)
        table_of[cname] = tname
    return columns, table_of


def _mode(df: pd.DataFrame, key: str, col: str) -> tuple[pd.Series, pd.Series]:
    """Most frequent non-missing ``col`` per ``key`` (ties: smallest value) and distinct counts."""
    sub = df[[key, col]].dropna()
    counts = sub.groupby([key, col], sort=True, observed=True).size().reset_index(name="_n")
    counts = counts.sort_values([key, "_n"], ascending=[True, False], kind="stable")
    mode = counts.drop_duplicates(key).set_index(key)[col]
    n_distinct = counts.groupby(key, sort=False, observed=True).size()
    return mode, n_distinct


def _empty(table: Table) -> pd.DataFrame:
    """An empty frame with the contract columns and dtypes of ``table``."""
    dtypes = {"id": STRING, "category": STRING, "text": STRING, "timestamp": "datetime64[ns]",
              "float": "float64", "int": "float64", "bool": "boolean"}
    return pd.DataFrame({c.name: pd.Series(dtype=dtypes[c.kind]) for c in table.columns})


def _contract_frame(df: pd.DataFrame, table: Table) -> pd.DataFrame:
    """Only the contract columns of ``table``, in contract order."""
    return df[[c for c in table.column_names if c in df.columns]]


__all__ = ["Builder", "ORDER"]
