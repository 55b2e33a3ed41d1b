"""The data contract: the canonical tables every chapter consumes.

A *dataset* is a set of named tables. Only ``orders`` is required; every other table is optional,
and a chapter runs the sections that the tables present support (and says which it skipped).

Conventions that hold for every table after loading:

* identifiers (``*_id``) are strings;
* timestamps are timezone-naive ``datetime64[ns]`` in the dataset's *local* time zone (a source
  with time-zone-aware timestamps is converted to the dataset's ``timezone`` first);
* money is a float in the dataset's single ``currency``; amounts are what the customer paid,
  after item-level discounts and before returns (returns live in their own table, positive);
* categorical codes are lower-case strings from the ``allowed`` lists below, missing values are
  ``NA`` (never the empty string).

The specification is data, so that README, validation and tests all read it from one place.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["id", "timestamp", "float", "int", "bool", "category", "text"]


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind
    required: bool
    meaning: str
    allowed: tuple[str, ...] | None = None  # for categories with a closed code list
    min_value: float | None = None  # inclusive lower bound for numbers
    max_value: float | None = None  # inclusive upper bound for numbers
    positive: bool = False  # strictly greater than zero
    nullable: bool = True  # missing values allowed (required id/timestamp columns are never null)


@dataclass(frozen=True)
class Table:
    name: str
    meaning: str
    columns: tuple[Column, ...]
    key: tuple[str, ...] = ()  # unique key (duplicate keys are an error)
    foreign_keys: dict[str, str] = field(default_factory=dict)  # column -> referenced table
    required: bool = False

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"table {self.name!r} has no column {name!r}")

    @property
    def required_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.required]

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]


def _c(name: str, kind: Kind, required: bool, meaning: str, **kw) -> Column:
    if required and kind in ("id", "timestamp"):
        kw.setdefault("nullable", False)
    return Column(name, kind, required, meaning, **kw)


EVENT_TYPES = ("view", "cart", "favourite", "purchase")
TIERS = ("silver", "gold", "black")
ARMS = ("treatment", "holdout")

CUSTOMERS = Table(
    "customers",
    "One row per customer (registered account), purchasing or not.",
    (
        _c("customer_id", "id", True, "Customer identifier."),
        _c("signup_date", "timestamp", False, "Account registration time."),
        _c("gender", "category", False, "Self-reported gender.", allowed=("f", "m", "other")),
        _c("age", "float", False, "Age in years at signup.", min_value=10, max_value=110),
        _c("region", "category", False, "Home region (province or tier-of-city code)."),
        _c("device", "category", False, "Main device.", allowed=("mobile", "desktop", "tablet")),
        _c("acquisition_channel", "category", False, "Channel that brought the customer."),
    ),
    key=("customer_id",),
)

PRODUCTS = Table(
    "products",
    "One row per product (SKU).",
    (
        _c("product_id", "id", True, "Product identifier."),
        _c("product_name", "text", False, "Readable product name (no personal data)."),
        _c("category", "category", False, "Product category."),
        _c("brand", "category", False, "Brand."),
        _c("price", "float", False, "List price.", positive=True),
    ),
    key=("product_id",),
)

ORDERS = Table(
    "orders",
    "One row per completed order. Cancelled orders are not orders; returns go to `returns`.",
    (
        _c("order_id", "id", True, "Order identifier."),
        _c("customer_id", "id", True, "Who placed the order."),
        _c("order_ts", "timestamp", True, "When the order was placed (local time)."),
        _c("amount", "float", False,
           "Amount paid for the order after discounts. Required when there is no `order_lines` "
           "table; otherwise derived as the sum of quantity x unit_price of its lines.",
           positive=True),
        _c("n_items", "float", False, "Units in the order.", min_value=0),
        _c("discount_amount", "float", False, "Discount given on the order.", min_value=0),
        _c("coupon_used", "bool", False, "A coupon was redeemed on the order."),
        _c("channel", "category", False, "Sales channel (app, web, mini-program, ...)."),
        _c("device", "category", False, "Device used.", allowed=("mobile", "desktop", "tablet")),
    ),
    key=("order_id",),
    foreign_keys={"customer_id": "customers"},
    required=True,
)

ORDER_LINES = Table(
    "order_lines",
    "One row per product in an order.",
    (
        _c("order_id", "id", True, "Order the line belongs to."),
        _c("product_id", "id", True, "Product bought."),
        _c("quantity", "int", True, "Units bought.", positive=True),
        _c("unit_price", "float", True, "Price paid per unit, after item discounts.", positive=True),
    ),
    key=("order_id", "product_id"),
    foreign_keys={"order_id": "orders", "product_id": "products"},
)

RETURNS = Table(
    "returns",
    "Returned or cancelled-after-payment goods, one row per returned product line.",
    (
        _c("return_id", "id", True, "Return identifier."),
        _c("customer_id", "id", True, "Who returned."),
        _c("return_ts", "timestamp", True, "When the refund was booked."),
        _c("amount", "float", True, "Amount refunded (positive).", positive=True),
        _c("order_id", "id", False, "Original order, when known."),
        _c("product_id", "id", False, "Returned product, when known."),
        _c("quantity", "int", False, "Units returned.", positive=True),
    ),
    key=("return_id",),
    foreign_keys={"customer_id": "customers", "order_id": "orders", "product_id": "products"},
)

EVENTS = Table(
    "events",
    "Behavioural events from the site or app (the view -> cart -> purchase funnel).",
    (
        _c("customer_id", "id", True, "Who acted."),
        _c("event_ts", "timestamp", True, "When."),
        _c("event_type", "category", True, "What happened.", allowed=EVENT_TYPES),
        _c("session_id", "id", False, "Visit (session) identifier."),
        _c("product_id", "id", False, "Product concerned."),
        _c("device", "category", False, "Device.", allowed=("mobile", "desktop", "tablet")),
        _c("channel", "category", False, "Traffic channel of the visit."),
    ),
    foreign_keys={"customer_id": "customers", "product_id": "products"},
)

LOYALTY = Table(
    "loyalty",
    "Loyalty-program membership: one row per member.",
    (
        _c("customer_id", "id", True, "Member."),
        _c("enrolled_at", "timestamp", True, "Enrolment time."),
        _c("tier", "category", True, "Tier at the analysis date.", allowed=TIERS),
        _c("points_earned", "float", False, "Points earned to date.", min_value=0),
        _c("points_redeemed", "float", False, "Points redeemed to date.", min_value=0),
    ),
    key=("customer_id",),
    foreign_keys={"customer_id": "customers"},
)

EXPERIMENTS = Table(
    "experiments",
    "Randomized marketing experiments: assignment of customers to treatment or holdout.",
    (
        _c("experiment_id", "id", True, "Experiment identifier."),
        _c("customer_id", "id", True, "Assigned customer."),
        _c("arm", "category", True, "Assigned arm.", allowed=ARMS),
        _c("assigned_at", "timestamp", True, "Assignment time (start of the exposure window)."),
    ),
    key=("experiment_id", "customer_id"),
    foreign_keys={"customer_id": "customers"},
)

SURVEYS = Table(
    "surveys",
    "Survey answers: net-promoter (0-10) and satisfaction (1-5).",
    (
        _c("customer_id", "id", True, "Respondent."),
        _c("survey_ts", "timestamp", True, "When answered."),
        _c("nps", "int", True, "How likely to recommend us, 0-10.", min_value=0, max_value=10),
        _c("csat", "int", False, "Satisfaction, 1-5.", min_value=1, max_value=5),
    ),
    foreign_keys={"customer_id": "customers"},
)

TABLES: dict[str, Table] = {
    t.name: t
    for t in (CUSTOMERS, PRODUCTS, ORDERS, ORDER_LINES, RETURNS, EVENTS, LOYALTY, EXPERIMENTS,
              SURVEYS)
}

#: Which chapter sections need which tables (beyond ``orders``). Chapters use this to say plainly
#: what they skip on a dataset that lacks a table.
CAPABILITIES: dict[str, tuple[str, ...]] = {
    "demographics": ("customers",),
    "products": ("order_lines", "products"),
    "returns": ("returns",),
    "events": ("events",),
    "loyalty": ("loyalty",),
    "experiment": ("experiments",),
    "surveys": ("surveys",),
}


def contract_markdown() -> str:
    """The contract as a Markdown document (used by README and ``python -m helpers.contract``)."""
    out: list[str] = []
    for t in TABLES.values():
        req = "required" if t.required else "optional"
        out.append(f"### `{t.name}` ({req})\n\n{t.meaning}\n")
        if t.key:
            out.append(f"Unique key: `{', '.join(t.key)}`.  ")
        if t.foreign_keys:
            fks = ", ".join(f"`{c}` -> `{r}`" for c, r in t.foreign_keys.items())
            out.append(f"References: {fks}.\n")
        out.append("\n| column | type | required | meaning |\n|---|---|---|---|")
        for c in t.columns:
            extra = []
            if c.allowed:
                extra.append("one of " + ", ".join(f"`{a}`" for a in c.allowed))
            if c.positive:
                extra.append("> 0")
            if c.min_value is not None:
                extra.append(f">= {c.min_value:g}")
            if c.max_value is not None:
                extra.append(f"<= {c.max_value:g}")
            meaning = c.meaning + (f" ({'; '.join(extra)})" if extra else "")
            out.append(f"| `{c.name}` | {c.kind} | {'yes' if c.required else 'no'} | {meaning} |")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":  # pragma: no cover
    print(contract_markdown())
