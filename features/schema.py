"""The data contract: the four canonical tables, their columns, dtypes and allowed values.

This is the only module where column names are spelled out. Parsing (`pipelines.io`), the
Great Expectations suites (`features.expectations`), the README's table and every feature
builder derive from the objects defined here.

Conventions
- IDs are strings everywhere, even when a source stores them as numbers.
- Timestamps are timezone-naive and read as UTC.
- A column is `required` when a row without it is useless; optional columns may be absent
  from a file altogether, and each has a documented default where a feature needs one.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache, lru_cache
from types import MappingProxyType
from typing import Literal

import numpy as np

# ---------------------------------------------------------------------------
# Column names, defined once.
# ---------------------------------------------------------------------------
CUSTOMER_ID = "customer_id"
SIGNUP_DATE = "signup_date"
BIRTH_YEAR = "birth_year"
GENDER = "gender"
REGION = "region"
MARKETING_OPT_IN = "marketing_opt_in"

PRODUCT_ID = "product_id"
CATEGORY = "category"
PRICE = "price"
BRAND = "brand"
REPLENISHMENT_DAYS = "replenishment_days"

ORDER_ID = "order_id"
QUANTITY = "quantity"
UNIT_PRICE = "unit_price"
TIMESTAMP = "timestamp"
CHANNEL = "channel"
DISCOUNT = "discount"

EVENT_ID = "event_id"
EVENT_TYPE = "event_type"
VALUE = "value"

# Columns that validation adds to a quarantined row: its 0-based position in the input, and why.
ROW_NUMBER = "row_number"
REASONS = "reasons"

# Table names, which are also the file stems (`transactions.parquet`, `events.csv`).
CUSTOMERS = "customers"
PRODUCTS = "products"
TRANSACTIONS = "transactions"
EVENTS = "events"

# ---------------------------------------------------------------------------
# Allowed values.
# ---------------------------------------------------------------------------
# The value of a text feature or a category that is not known (an unseen product's category,
# a customer without a gender or region).
UNKNOWN = "unknown"

GENDERS = ("female", "male", "other", UNKNOWN)
CHANNELS = ("web", "app", "store", "phone", "marketplace", "other")

EVENT_SESSION_START = "session_start"
EVENT_PRODUCT_VIEW = "product_view"
EVENT_ADD_TO_CART = "add_to_cart"
EVENT_SEARCH = "search"
EVENT_EMAIL_OPEN = "email_open"
EVENT_EMAIL_CLICK = "email_click"
EVENT_SUPPORT_TICKET = "support_ticket"
EVENT_NPS_RESPONSE = "nps_response"
EVENT_TYPES = (
    EVENT_SESSION_START,
    EVENT_PRODUCT_VIEW,
    EVENT_ADD_TO_CART,
    EVENT_SEARCH,
    EVENT_EMAIL_OPEN,
    EVENT_EMAIL_CLICK,
    EVENT_SUPPORT_TICKET,
    EVENT_NPS_RESPONSE,
)

NPS_MIN, NPS_MAX = 0, 10
TICKET_SEVERITY_MIN, TICKET_SEVERITY_MAX = 1, 5
EARLIEST_BIRTH_YEAR = 1900

# ---------------------------------------------------------------------------
# The contract as data.
# ---------------------------------------------------------------------------
DType = Literal["id", "string", "timestamp", "int", "float", "bool"]


@dataclass(frozen=True)
class Column:
    """One column of a contract table."""

    name: str
    dtype: DType
    required: bool
    description: str
    allowed: tuple[str, ...] | None = None
    min_value: float | None = None
    max_value: float | None = None
    nonzero: bool = False  # 0 is not a valid value (a quantity is a sale or a return)


@dataclass(frozen=True)
class Reference:
    """A foreign key: `column` holds values of `to_table.to_column` (checked when both tables are given)."""

    column: str
    to_table: str
    to_column: str


@dataclass(frozen=True)
class Table:
    """A contract table: its columns, the key that must be unique, and its references."""

    name: str
    description: str
    columns: tuple[Column, ...]
    unique_key: tuple[str, ...] = ()
    references: tuple[Reference, ...] = ()
    time_column: str | None = None
    row_name: str = "row"  # what one row is, in words, for validation messages
    _by_name: dict[str, Column] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {column.name: column for column in self.columns})

    def column(self, name: str) -> Column:
        return self._by_name[name]

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)

    @property
    def required_columns(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns if column.required)

    @property
    def optional_columns(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns if not column.required)


CUSTOMERS_TABLE = Table(
    name=CUSTOMERS,
    row_name="customer",
    description="One row per customer.",
    columns=(
        Column(CUSTOMER_ID, "id", True, "Customer identifier."),
        Column(SIGNUP_DATE, "timestamp", True, "When the customer first became known."),
        Column(BIRTH_YEAR, "int", False, "Year of birth.", min_value=EARLIEST_BIRTH_YEAR),
        Column(GENDER, "string", False, "Self-reported gender.", allowed=GENDERS),
        Column(REGION, "string", False, "Region or country."),
        Column(MARKETING_OPT_IN, "bool", False, "Whether the customer accepts marketing."),
    ),
    unique_key=(CUSTOMER_ID,),
    time_column=SIGNUP_DATE,
)

PRODUCTS_TABLE = Table(
    name=PRODUCTS,
    row_name="product",
    description="One row per product in the catalogue.",
    columns=(
        Column(PRODUCT_ID, "id", True, "Product identifier."),
        Column(CATEGORY, "string", True, "Product category."),
        Column(PRICE, "float", True, "List price per unit.", min_value=0.0),
        Column(BRAND, "string", False, "Brand name."),
        Column(
            REPLENISHMENT_DAYS,
            "float",
            False,
            "Days a unit typically lasts, for consumables (empty for durable goods).",
            min_value=0.0,
        ),
    ),
    unique_key=(PRODUCT_ID,),
)

TRANSACTIONS_TABLE = Table(
    name=TRANSACTIONS,
    row_name="order line",
    description="One row per order line; a negative quantity is a return.",
    columns=(
        Column(ORDER_ID, "id", True, "Order (invoice) identifier."),
        Column(CUSTOMER_ID, "id", True, "Who bought."),
        Column(PRODUCT_ID, "id", True, "What was bought."),
        Column(QUANTITY, "int", True, "Units; negative for a return, never zero.", nonzero=True),
        Column(UNIT_PRICE, "float", True, "Price paid per unit.", min_value=0.0),
        Column(TIMESTAMP, "timestamp", True, "When the order was placed (UTC)."),
        Column(CHANNEL, "string", True, "Where the order was placed.", allowed=CHANNELS),
        Column(
            DISCOUNT,
            "float",
            False,
            "Share of the list price taken off, 0 to 1 (empty means none).",
            min_value=0.0,
            max_value=1.0,
        ),
    ),
    unique_key=(ORDER_ID, PRODUCT_ID),
    references=(
        Reference(CUSTOMER_ID, CUSTOMERS, CUSTOMER_ID),
        Reference(PRODUCT_ID, PRODUCTS, PRODUCT_ID),
    ),
    time_column=TIMESTAMP,
)

EVENTS_TABLE = Table(
    name=EVENTS,
    row_name="event",
    description="One row per behaviour event.",
    columns=(
        Column(
            EVENT_ID,
            "id",
            False,
            "The sender's id for the event, unique per customer: the event sent again is stored once.",
        ),
        Column(CUSTOMER_ID, "id", True, "Who acted."),
        Column(TIMESTAMP, "timestamp", True, "When (UTC)."),
        Column(EVENT_TYPE, "string", True, "What happened.", allowed=EVENT_TYPES),
        Column(PRODUCT_ID, "id", False, "The product concerned, for views and cart adds."),
        Column(
            VALUE,
            "float",
            False,
            f"NPS score {NPS_MIN}-{NPS_MAX} for nps_response; severity "
            f"{TICKET_SEVERITY_MIN}-{TICKET_SEVERITY_MAX} for support_ticket.",
        ),
    ),
    references=(
        Reference(CUSTOMER_ID, CUSTOMERS, CUSTOMER_ID),
        Reference(PRODUCT_ID, PRODUCTS, PRODUCT_ID),
    ),
    time_column=TIMESTAMP,
)

# The pandas dtype of each contract dtype in a validated frame (ints: `Int64` where the column is
# optional, `int64` where it is required, see `accepted_dtypes`). Nanoseconds: what the feature code
# works in and what Great Expectations compares vectorised.
TIMESTAMP_DTYPE = "datetime64[ns]"
PANDAS_DTYPES: dict[str, str] = {
    "id": "str",
    "string": "str",
    "timestamp": TIMESTAMP_DTYPE,
    "int": "Int64",
    "float": "float64",
    "bool": "boolean",
}


def is_purchase(quantity):
    """Which transaction lines are purchases: a positive quantity (a negative one is a return)."""
    return quantity > 0


def line_value(quantity, unit_price):
    """What a transaction line is worth: quantity x unit price (negative for a return)."""
    return quantity * unit_price


def is_return(quantity):
    """Which transaction lines are returns: a negative quantity."""
    return quantity < 0


def accepted_dtypes(table: Table) -> dict[str, str]:
    """The dtype of each column of a validated frame (ints are `int64` when required, else `Int64`)."""
    return {
        column.name: "int64" if column.dtype == "int" and column.required else PANDAS_DTYPES[column.dtype]
        for column in table.columns
    }


@cache
def pandas_dtype_of(name: str):
    """The pandas dtype object a dtype name stands for, looked up once: pandas reads a name like
    "str" anew on every call that is given it (about 15 microseconds each), which a one-customer
    frame pays per column."""
    from pandas.api.types import pandas_dtype

    return pandas_dtype(name)


def empty_table(table: Table):
    """A frame with the table's columns in their validated dtypes and no rows."""
    import pandas as pd

    return pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in accepted_dtypes(table).items()})


TABLES: dict[str, Table] = {
    table.name: table for table in (CUSTOMERS_TABLE, PRODUCTS_TABLE, TRANSACTIONS_TABLE, EVENTS_TABLE)
}


# Value ranges that hold only for some event types: (event_type, min, max).
EVENT_VALUE_RANGES: tuple[tuple[str, float, float], ...] = (
    (EVENT_NPS_RESPONSE, NPS_MIN, NPS_MAX),
    (EVENT_SUPPORT_TICKET, TICKET_SEVERITY_MIN, TICKET_SEVERITY_MAX),
)


# ---------------------------------------------------------------------------
# Identity: when two history rows are one row, so that a repeat (a retried POST /events, a file
# that holds a row twice) is recognised and kept once, by the service and the batch pipeline alike.
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Identity:
    """What identifies a row of a history table.

    A row with a value in `id_column` is identified by `id_key` alone, whatever its other cells say
    (a retry may carry, say, a new timestamp); any other row by `key`. A row of one kind is never a
    repeat of a row of the other.
    """

    key: tuple[str, ...]
    id_column: str | None = None
    id_key: tuple[str, ...] = ()


# A behaviour event without an event_id has nothing but its content to be told apart by.
EVENT_CONTENT: tuple[str, ...] = (CUSTOMER_ID, TIMESTAMP, EVENT_TYPE, PRODUCT_ID, VALUE)

# An order line by its unique key; a customer row by all its columns (the same customer with other
# values is an update, not a repeat); a behaviour event by its event_id within its customer, else by
# everything it says. Per customer, not store-wide: a retry always names the same customer, so no
# repeat is missed, while two senders' ids that happen to collide across customers do not drop a real
# event; and a repeat is then found in the one customer's history, which POST /events reads anyway.
ROW_IDENTITY: dict[str, Identity] = {
    TRANSACTIONS: Identity(TRANSACTIONS_TABLE.unique_key),
    EVENTS: Identity(EVENT_CONTENT, id_column=EVENT_ID, id_key=(CUSTOMER_ID, EVENT_ID)),
    CUSTOMERS: Identity(CUSTOMERS_TABLE.column_names),
}


@dataclass(frozen=True)
class IdentifiedRows:
    """Some rows of a frame (a boolean mask over its positions) and the columns that identify them."""

    rows: np.ndarray
    key: tuple[str, ...]


def identify_rows(table_name: str, frame) -> tuple[IdentifiedRows, ...]:
    """How each row of a frame of a history table is identified (`ROW_IDENTITY`).

    Groups that cover every row once, the same groups in the same order for every frame of the table
    (a frame without the id column has no ids). Two rows are one row, the later a repeat, when they
    are in the same group and equal in its key, an empty cell equal to an empty one.
    """
    identity = ROW_IDENTITY[table_name]
    if identity.id_column is None:
        return (IdentifiedRows(np.ones(len(frame), dtype=bool), identity.key),)
    if identity.id_column in frame.columns:
        # the array's own isna: a tenth of Series.notna's cost, which the service pays per request
        has_id = ~np.asarray(frame[identity.id_column].array.isna(), dtype=bool)
    else:
        has_id = np.zeros(len(frame), dtype=bool)
    return IdentifiedRows(has_id, identity.id_key), IdentifiedRows(~has_id, identity.key)


def describe_contract_markdown() -> str:
    """The contract as Markdown tables, for the README (kept in sync by a test)."""
    lines: list[str] = []
    for table in TABLES.values():
        lines.append(f"#### `{table.name}`: {table.description}")
        lines.append("")
        lines.append("| column | type | required | allowed / range | meaning |")
        lines.append("| --- | --- | --- | --- | --- |")
        for column in table.columns:
            lines.append(
                f"| `{column.name}` | {column.dtype} | {'yes' if column.required else 'no'} "
                f"| {_describe_domain(column)} | {column.description} |"
            )
        lines.append("")  # ends the table: Markdown reads a line right below it as one more row
        if table.unique_key:
            lines.append(f"Unique key: {_code_list(table.unique_key)}.")
        identity = ROW_IDENTITY.get(table.name)
        if identity is not None and identity.id_column is not None:
            lines.append(
                f"Identity: {_code_list(identity.id_key, ' + ')}; without an `{identity.id_column}`: "
                f"{_code_list(identity.key, ' + ')}. A row with the identity of an earlier or stored row is a "
                "repeat, kept once."
            )
        if table.references:
            refs = ", ".join(f"`{r.column}` -> `{r.to_table}.{r.to_column}`" for r in table.references)
            lines.append(f"References (checked when both tables are given): {refs}.")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _code_list(columns: Iterable[str], separator: str = ", ") -> str:
    return separator.join(f"`{column}`" for column in columns)


def _describe_domain(column: Column) -> str:
    if column.nonzero:
        return "not 0"
    if column.allowed:
        return ", ".join(column.allowed)
    if column.min_value is not None and column.max_value is not None:
        return f"{column.min_value:g} to {column.max_value:g}"
    if column.min_value is not None:
        return f">= {column.min_value:g}"
    return ""


# ---------------------------------------------------------------------------
# Derived columns: the customer feature table, labels and segments.
# Feature names are snake_case with unit and window (`spend_sum_90d`).
# ---------------------------------------------------------------------------
AS_OF = "as_of"

TENURE_DAYS = "tenure_days"
DAYS_SINCE_FIRST_PURCHASE = "days_since_first_purchase"
DAYS_SINCE_LAST_PURCHASE = "days_since_last_purchase"
RECENCY_OVER_TENURE = "recency_over_tenure"
ORDERS_COUNT_TOTAL = "orders_count_total"
SPEND_SUM_TOTAL = "spend_sum_total"
ORDER_VALUE_MEAN = "order_value_mean"
ITEMS_PER_ORDER_MEAN = "items_per_order_mean"
LINES_PER_ORDER_MEAN = "lines_per_order_mean"
ORDERS_PER_30D = "orders_per_30d"
GAP_MEAN_DAYS = "gap_mean_days"
GAP_STD_DAYS = "gap_std_days"
GAP_BEFORE_LAST_DAYS = "gap_before_last_days"
OVERDUE_RATIO = "overdue_ratio"
SPEND_TREND_90D = "spend_trend_90d"
RETURN_SHARE = "return_share"
RETURNS_COUNT_TOTAL = "returns_count_total"
DISCOUNT_SHARE = "discount_share"
DISCOUNT_MEAN = "discount_mean"
CATEGORY_COUNT = "category_count"
CATEGORY_ENTROPY = "category_entropy"
FAVOURITE_CATEGORY = "favourite_category"
DAYS_SINCE_LAST_EVENT = "days_since_last_event"
ABANDONED_CARTS = "abandoned_carts"
EMAIL_CLICK_RATE_30D = "email_click_rate_30d"
SUPPORT_TICKETS_TOTAL = "support_tickets_total"
SUPPORT_TICKETS_90D = "support_tickets_90d"
SUPPORT_SEVERITY_MAX_90D = "support_severity_max_90d"
NPS_LATEST = "nps_latest"
NPS_MEAN = "nps_mean"
NPS_RESPONSES_TOTAL = "nps_responses_total"
ORDERS_NEXT_30D_LAST_YEAR = "orders_next_30d_last_year"
ORDERS_NEXT_90D_LAST_YEAR = "orders_next_90d_last_year"
CONSUMABLES_BOUGHT = "consumables_bought"
DAYS_UNTIL_REPLENISHMENT = "days_until_replenishment"
REPLENISHMENT_DUE_RATIO = "replenishment_due_ratio"
BGNBD_P_ALIVE = "bgnbd_p_alive"
BGNBD_EXPECTED_PURCHASES_90D = "bgnbd_expected_purchases_90d"
# The repeat-buying summary in days (`features.repeat_buying`), what the value models read: purchase
# days (all lines of a calendar day are one purchase), first to last purchase day, first purchase
# day to the last observed day (the day before as_of), and the mean value of the repeat purchase days.
PURCHASE_DAYS_TOTAL = "purchase_days_total"
FIRST_TO_LAST_PURCHASE_DAYS = "first_to_last_purchase_days"
PURCHASE_HISTORY_DAYS = "purchase_history_days"
REPEAT_DAY_VALUE_MEAN = "repeat_day_value_mean"
AGE_YEARS = "age_years"
AGE_BAND = "age_band"

RFM_R = "rfm_r"
RFM_F = "rfm_f"
RFM_M = "rfm_m"
RFM_SEGMENT = "rfm_segment"
LIFECYCLE_STAGE = "lifecycle_stage"

CHURN_LABEL = "churned"
CHURN_PROBABILITY = "churn_probability"
PURCHASE_PROBABILITY = "purchase_probability"
PURCHASE_LABEL = "purchased"
PRODUCTS_BOUGHT = "products_bought"
# Value labels: what a customer did in the horizon after as_of (orders: distinct order ids of
# purchase lines; spend: their summed `line_value`, returns not netted, as the spend models count it).
FUTURE_ORDERS = "future_orders"
FUTURE_SPEND = "future_spend"
# Days from as_of to the first purchase in the horizon, plus a half (a purchase on day d came during
# it); censored at the horizon for customers who bought nothing in it (NEXT_PURCHASE_SEEN false).
NEXT_PURCHASE_WAIT = "next_purchase_wait"
NEXT_PURCHASE_SEEN = "next_purchase_seen"

# Event types counted per behaviour window, with the plural noun used in the column name.
BEHAVIOUR_COUNTS = {
    EVENT_SESSION_START: "sessions",
    EVENT_PRODUCT_VIEW: "product_views",
    EVENT_ADD_TO_CART: "cart_adds",
    EVENT_SEARCH: "searches",
    EVENT_EMAIL_OPEN: "email_opens",
    EVENT_EMAIL_CLICK: "email_clicks",
}


# Two-stage recommender: the output of `recommend` and the candidate features of the ranker.
RECOMMENDATION_RANK = "recommendation_rank"  # 1 is best
RECOMMENDATION_SCORE = "recommendation_score"
RECOMMENDATION_REASON = "recommendation_reason"
RECOMMENDATIONS = "recommendations"  # in scored output: the top-k product ids, best first
ITEM_BUYERS_TOTAL = "item_buyers_total"  # share of customers with history who bought the product before as_of
ITEM_BUYERS_90D = "item_buyers_90d"  # the same share over the 90 days before as_of
ITEM_CATEGORY_SHARE = "item_category_share"  # the customer's share of purchase lines in the product's category
ITEM_PURCHASES_TOTAL = "item_purchases_total"  # times the customer bought this product
DAYS_SINCE_ITEM_PURCHASE = "days_since_item_purchase"  # empty when never bought
ITEM_REPLENISHMENT_DUE_RATIO = "item_replenishment_due_ratio"  # days since last bought / cycle; empty if durable
IS_REPLENISHABLE = "is_replenishable"
ITEM_TREND = "item_trend"  # the product's buyers in the last 30 days over a third of its buyers in the last 90
DAYS_SINCE_CATEGORY_PURCHASE = "days_since_category_purchase"  # empty when the customer never bought the category
PRICE_FIT = "price_fit"  # |log(product price / the customer's median unit price)|; empty without prices
# item-kNN similarity to the customer's purchases, the latest weighing most (half-life in purchases)
RECENT_SIMILARITY = "recent_similarity"

# Category affinity (`models.affinity`): one row per (customer, category), the customer's feature
# row plus these columns of that category.
AFFINITY_SHARE = "affinity_share"  # the customer's share of purchase lines in the category
AFFINITY_SHARE_RANK = "affinity_share_rank"  # 1 for the customer's most bought category (ties share the best)
AFFINITY_BASE_RATE = "affinity_base_rate"  # share of training rows that bought in the category within a horizon
TOP_CATEGORIES = "top_categories"  # in scored output: the customer's most likely categories, best first

# Customer value (`models.value`): over the horizon, expected orders and spend with an interval,
# the chance the customer is still active, and the days to their next order given they are.
EXPECTED_ORDERS = "expected_orders"
CLV = "clv"
CLV_LOW = "clv_low"
CLV_HIGH = "clv_high"
P_ACTIVE = "p_active"
NEXT_PURCHASE_DAYS = "next_purchase_days"
NEXT_PURCHASE_LOW_DAYS = "next_purchase_low_days"
NEXT_PURCHASE_HIGH_DAYS = "next_purchase_high_days"
VALUE_COLUMNS = (
    EXPECTED_ORDERS,
    CLV,
    CLV_LOW,
    CLV_HIGH,
    P_ACTIVE,
    NEXT_PURCHASE_DAYS,
    NEXT_PURCHASE_LOW_DAYS,
    NEXT_PURCHASE_HIGH_DAYS,
)
# The next purchase as calendar days: as_of plus the waits above.
NEXT_PURCHASE_DATE = "next_purchase_date"
NEXT_PURCHASE_LOW = "next_purchase_low"
NEXT_PURCHASE_HIGH = "next_purchase_high"

# Due products (`models.due`): what a customer is due to buy next, when, how sure, and why.
DUE_DATE = "due_date"
DUE_LOW = "due_low"  # the interval's first day
DUE_HIGH = "due_high"  # the interval's last day
DUE_PROBABILITY = "due_probability"  # chance of buying it inside the query window
DUE_REASON = "due_reason"
DUE_KIND = "due_kind"  # DUE_REPLENISHMENT or DUE_SEASONAL
EXPECTED_QUANTITY = "expected_quantity"
DUE_REPLENISHMENT = "replenishment"
DUE_SEASONAL = "seasonal"


def windowed(name: str, days: int) -> str:
    """The column name of a windowed quantity: windowed('spend_sum', 90) -> 'spend_sum_90d'."""
    return f"{name}_{days}d"


def orders_count(days: int) -> str:
    return windowed("orders_count", days)


def spend_sum(days: int) -> str:
    return windowed("spend_sum", days)


def category_share(category: str, categories: Collection[str] = ()) -> str:
    """Share of a customer's purchase lines in one category, e.g. 'category_share_pet_food'.

    `categories` is the whole catalogue (`ReferenceTables.categories`), so that two categories
    with the same slug get two columns (see `column_parts`).
    """
    return f"category_share_{_category_part(category, categories)}"


def channel_share(channel: str) -> str:
    return f"channel_share_{_column_part(channel, CHANNELS)}"


def category_purchase_label(category: str, categories: Collection[str] = ()) -> str:
    """`categories` as in `category_share`: the whole catalogue, not only the labelled ones."""
    return f"purchased_{_category_part(category, categories)}"


def category_purchase_probability(category: str, categories: Collection[str] = ()) -> str:
    """`categories` as in `category_share`: the whole catalogue, not only the scored ones."""
    return f"purchase_probability_{_category_part(category, categories)}"


def column_parts(names: Iterable[str]) -> dict[str, str]:
    """Each name's part in a column name, distinct across `names` and independent of their order.

    A name gets its slug ('Pet Food' -> 'pet_food'). Where several names share a slug ('Pet Food',
    'pet-food'), each one not spelled exactly as the slug also gets the first 6 hex digits of the
    SHA-256 of its name ('pet_food_e714ce'): only clashing names change, so every other category
    keeps the column that trained models know. Raises ValueError, naming both, if two names would
    still share a part (a name spelled like another's suffixed part, or a suffix collision).
    """
    unique = set(names)
    slug_counts = Counter(_slug(name) for name in unique)
    parts = {name: _clash_free_part(name, slug_counts[_slug(name)] > 1) for name in unique}
    owner: dict[str, str] = {}
    for name in sorted(unique, key=str):
        part = parts[name]
        if part in owner:
            raise ValueError(
                f"names {owner[part]!r} and {name!r} would share the column name part {part!r}; rename one"
            )
        owner[part] = name
    return parts


def category_share_columns(categories: Collection[str]) -> dict[str, str]:
    """`category_share` of every category of the catalogue, the catalogue mapped once (a customer's
    rebuild on the service's event path asks for all of them)."""
    parts = _category_parts((*categories,))
    return {category: f"category_share_{parts[category]}" for category in categories}


def _category_part(category: str, categories: Collection[str]) -> str:
    return _category_parts((*categories, category))[category]


def _category_parts(categories: tuple[str, ...]) -> Mapping[str, str]:
    # "unknown" (products missing from the products table) is in every catalogue, whether or not it
    # occurs, so the products table alone fixes every category's column
    return _cached_column_parts(frozenset((*categories, UNKNOWN)))


def _column_part(name: str, among: Collection[str]) -> str:
    return _cached_column_parts(frozenset(among) | {name})[name]


# Each column name is asked for with the whole catalogue: map it once, not once per category.
@lru_cache(maxsize=64)
def _cached_column_parts(names: frozenset[str]) -> Mapping[str, str]:
    return MappingProxyType(column_parts(names))


def _clash_free_part(name: str, slug_is_shared: bool) -> str:
    slug = _slug(name)
    if not slug_is_shared or str(name) == slug:
        return slug
    return f"{slug}_{hashlib.sha256(str(name).encode()).hexdigest()[:6]}"


def _slug(text: str) -> str:
    cleaned = "".join(ch if ch.isalnum() else "_" for ch in str(text).strip().lower())
    return "_".join(part for part in cleaned.split("_") if part) or "unknown"


def candidate_score(source: str) -> str:
    """The ranker feature holding one candidate source's score, e.g. 'candidate_score_ease'."""
    return f"candidate_score_{_column_part(source, ())}"


def candidate_rank(source: str) -> str:
    """The ranker feature holding one candidate source's rank (1 is best), e.g. 'candidate_rank_ease'."""
    return f"candidate_rank_{_column_part(source, ())}"
