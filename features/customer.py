"""Point-in-time customer features: one row per customer known before `as_of`.

The promise, which tests enforce:
- Only records strictly before `as_of` are used; anything at or after it never changes a row.
- A customer's row depends only on that customer's own records plus `ReferenceTables`, which
  are computed once and passed in. So the builder gives identical rows on any subset of
  customers: bulk training, batch scoring, one shard per core, and the service rebuilding a
  single profile after an event all call `build_customer_features`.

Missing data never crashes: every feature has a documented default (`FEATURE_DEFAULTS`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

from features import schema as s
from features.segments import segment_columns
from models import bgnbd

DAY = pd.Timedelta(days=1)

# What a feature is when the customer has no data for it, and why.
FEATURE_DEFAULTS: dict[str, float] = {
    # No purchase yet: count from when the customer became known, as if they bought then.
    s.DAYS_SINCE_LAST_PURCHASE: np.nan,  # filled with tenure_days, see _fill_defaults
    s.DAYS_SINCE_FIRST_PURCHASE: 0.0,
    # Fewer than two orders: the usual gap is unknown; -1 keeps it apart from real gaps.
    s.GAP_MEAN_DAYS: -1.0,
    s.GAP_STD_DAYS: -1.0,
    s.GAP_BEFORE_LAST_DAYS: -1.0,
    # With one order, "overdue" is measured against the customer's tenure instead of a gap.
    s.OVERDUE_RATIO: np.nan,  # filled in _fill_defaults
    s.NPS_LATEST: -1.0,  # no NPS answer
    s.NPS_MEAN: -1.0,
    s.SUPPORT_SEVERITY_MAX_90D: 0.0,
    s.DAYS_SINCE_LAST_EVENT: np.nan,  # filled with tenure_days
    # No consumable bought: nothing is due, as if the next run-out were a year away.
    s.DAYS_UNTIL_REPLENISHMENT: 365.0,
    s.REPLENISHMENT_DUE_RATIO: 0.0,
    s.AGE_YEARS: -1.0,  # birth year unknown
    # BG/NBD could not be fitted (too few repeat buyers): no expectation.
    s.BGNBD_EXPECTED_PURCHASES_90D: 0.0,
}
UNKNOWN = "unknown"
AGE_BANDS = (
    (0, 25, "18-24"),
    (25, 35, "25-34"),
    (35, 45, "35-44"),
    (45, 55, "45-54"),
    (55, 65, "55-64"),
    (65, 200, "65+"),
)


# The columns the feature builder reads from each table (shards carry only these).
FEATURE_INPUT_COLUMNS = {
    "customers": (s.CUSTOMER_ID, s.SIGNUP_DATE, s.BIRTH_YEAR, s.GENDER, s.REGION, s.MARKETING_OPT_IN),
    "transactions": (
        s.ORDER_ID,
        s.CUSTOMER_ID,
        s.PRODUCT_ID,
        s.QUANTITY,
        s.UNIT_PRICE,
        s.TIMESTAMP,
        s.CHANNEL,
        s.DISCOUNT,
    ),
    "events": (s.CUSTOMER_ID, s.TIMESTAMP, s.EVENT_TYPE, s.VALUE),
}


@dataclass(frozen=True)
class History:
    """Validated contract tables (any may be empty); the input of every feature build."""

    customers: pd.DataFrame
    transactions: pd.DataFrame
    events: pd.DataFrame

    @classmethod
    def from_tables(cls, tables: dict[str, pd.DataFrame]) -> History:
        return cls(
            customers=tables.get(s.CUSTOMERS, _empty(s.CUSTOMERS_TABLE)),
            transactions=tables.get(s.TRANSACTIONS, _empty(s.TRANSACTIONS_TABLE)),
            events=tables.get(s.EVENTS, _empty(s.EVENTS_TABLE)),
        )

    def for_customers(self, customer_ids: Iterable[str]) -> History:
        """The records of these customers only."""
        wanted = pd.Index(pd.unique(pd.Series(list(customer_ids), dtype="str")))
        return History(
            customers=self.customers[self.customers[s.CUSTOMER_ID].isin(wanted)],
            transactions=self.transactions[self.transactions[s.CUSTOMER_ID].isin(wanted)],
            events=self.events[self.events[s.CUSTOMER_ID].isin(wanted)],
        )

    def before(self, as_of: pd.Timestamp) -> History:
        """Records strictly before as_of (customers by signup date)."""
        return History(
            customers=_rows_before(self.customers, s.SIGNUP_DATE, as_of),
            transactions=_rows_before(self.transactions, s.TIMESTAMP, as_of),
            events=_rows_before(self.events, s.TIMESTAMP, as_of),
        )


def _rows_before(frame: pd.DataFrame, column: str, as_of: pd.Timestamp) -> pd.DataFrame:
    """Rows with column < as_of; the frame itself (no copy) when every row already is."""
    before = frame[column] < as_of
    return frame if before.all() else frame[before]


@dataclass(frozen=True)
class ReferenceTables:
    """Tables shared by all customers, computed once per as_of and passed in explicitly.

    products: product_id -> category, price, replenishment_days.
    top_categories: the most bought categories, most bought first (per-category propensity).
    Every category of the catalogue gets its own share column (`categories`), so the feature
    columns depend on the catalogue only, never on which categories were popular at a cutoff.
    rfm_breakpoints: quintile edges of recency, frequency and monetary value over buyers.
    """

    as_of: pd.Timestamp
    products: pd.DataFrame
    top_categories: tuple[str, ...]
    rfm_breakpoints: dict[str, tuple[float, ...]] = field(default_factory=dict)
    # BG/NBD (r, alpha, a, b) in weeks, fitted on all buyers before as_of; None: too little data.
    bgnbd_params: tuple[float, float, float, float] | None = None

    # Lookups derived once from `products` (cached: the service reuses one instance per request).
    @cached_property
    def product_index(self) -> pd.Index:
        return pd.Index(self.products[s.PRODUCT_ID])

    @cached_property
    def categories(self) -> list[str]:
        """Every category of the products, plus 'unknown', sorted by name: one share column each."""
        return sorted(set(self.products[s.CATEGORY].dropna()) | {UNKNOWN})

    @cached_property
    def unknown_category_code(self) -> int:
        return self.categories.index(UNKNOWN)

    @cached_property
    def product_category_codes(self) -> np.ndarray:
        return pd.Index(self.categories).get_indexer(self.products[s.CATEGORY].fillna(UNKNOWN)).astype(np.int64)

    @cached_property
    def product_replenishment_days(self) -> np.ndarray:
        return self.products[s.REPLENISHMENT_DAYS].to_numpy(dtype=float, na_value=np.nan)


@dataclass(frozen=True)
class FeatureWindows:
    """The windows (in days) the features are computed over; from FeatureSettings."""

    windows_days: tuple[int, ...] = (30, 90, 365)
    behaviour_windows_days: tuple[int, ...] = (7, 30)


DEFAULT_WINDOWS = FeatureWindows()


def build_customer_features(
    history: History,
    as_of: pd.Timestamp,
    reference: ReferenceTables,
    windows: FeatureWindows = DEFAULT_WINDOWS,
) -> pd.DataFrame:
    """One row per customer known before as_of, sorted by customer_id.

    A customer is known when their signup date or any of their records is before as_of.
    """
    as_of = pd.Timestamp(as_of)
    past = history.before(as_of)
    customer_ids = _known_customers(past)
    n = len(customer_ids)
    lookup = pd.Index(customer_ids)
    codes = {
        name: _codes(getattr(past, name)[s.CUSTOMER_ID], lookup) for name in ("customers", "transactions", "events")
    }
    purchases, returns = _transaction_lines(past.transactions, codes["transactions"], reference, as_of)
    orders = _orders(purchases)
    events = _event_rows(past.events, codes["events"], as_of)

    columns: dict[str, np.ndarray] = {s.TENURE_DAYS: _tenure_days(past, codes, n, as_of)}
    columns |= _recency_frequency_monetary(orders, n, windows.windows_days)
    columns |= _order_shape(orders, n)
    columns |= _gaps(orders, n)
    columns |= _returns_and_discounts(purchases, returns, n)
    columns |= _category_mix(purchases, reference, n)
    columns |= _channel_mix(purchases, n)
    columns |= _behaviour(events, purchases, n, windows.behaviour_windows_days)
    columns |= _support_and_nps(events, n)
    columns |= _seasonality(orders, n)
    columns |= _replenishment(purchases, n)
    columns |= _repeat_buying(purchases, reference, as_of, n)
    columns = _fill_defaults(columns)
    columns |= _attributes(past.customers, customer_ids, as_of)
    columns[s.FAVOURITE_CATEGORY] = _favourite_category(purchases, reference, n)
    columns |= segment_columns(columns, reference.rfm_breakpoints)

    return _assemble(customer_ids, as_of, columns)


_TEXT_COLUMNS = (s.AGE_BAND, s.GENDER, s.REGION, s.FAVOURITE_CATEGORY, s.RFM_SEGMENT, s.LIFECYCLE_STAGE)
_SCORE_COLUMNS = (s.RFM_R, s.RFM_F, s.RFM_M)


def _assemble(customer_ids: np.ndarray, as_of: pd.Timestamp, columns: dict[str, np.ndarray]) -> pd.DataFrame:
    """The feature frame: id, as_of, numeric features (float), text columns, RFM scores (int).

    Numbers go in as one float block: much cheaper than one column at a time, which matters
    when the service rebuilds one customer's row per event.
    """
    numeric = [name for name in columns if name not in _TEXT_COLUMNS and name not in _SCORE_COLUMNS]
    n = len(customer_ids)
    block = np.column_stack([columns[name] for name in numeric]) if n else np.zeros((0, len(numeric)))
    identity = pd.DataFrame(
        {
            s.CUSTOMER_ID: pd.array(customer_ids, dtype="str"),
            s.AS_OF: np.full(n, as_of.to_datetime64()).astype("datetime64[ns]"),
        }
    )
    text = pd.DataFrame({name: pd.array(columns[name], dtype="str") for name in _TEXT_COLUMNS})
    scores = pd.DataFrame({name: columns[name].astype(np.int64) for name in _SCORE_COLUMNS})
    return pd.concat([identity, pd.DataFrame(block, columns=numeric), text, scores], axis=1)


def build_reference_tables(
    tables: dict[str, pd.DataFrame], as_of: pd.Timestamp, top_categories: int = 8
) -> ReferenceTables:
    """Reference tables at as_of from all customers' records strictly before it.

    Built with the same line and order code the features use, so an RFM breakpoint or a BG/NBD
    input means exactly what the feature of the same name means.
    """
    as_of = pd.Timestamp(as_of)
    transactions = _rows_before(History.from_tables(tables).transactions, s.TIMESTAMP, as_of)
    products = ReferenceTables(as_of, _products_table(tables.get(s.PRODUCTS), transactions), ())
    customer_codes, customer_ids = pd.factorize(transactions[s.CUSTOMER_ID])
    purchases, _ = _transaction_lines(transactions, customer_codes.astype(np.int64), products, as_of)
    n = len(customer_ids)
    orders = _orders(purchases)
    return ReferenceTables(
        as_of=as_of,
        products=products.products,
        top_categories=_top_categories(purchases, products.categories, top_categories),
        rfm_breakpoints=_rfm_breakpoints(orders, n),
        bgnbd_params=bgnbd.fit_summary(*_repeat_buying_summary(purchases, as_of, n)[1:]),
    )


def _top_categories(purchases: _Lines, categories: list[str], top: int) -> tuple[str, ...]:
    """The most bought categories by purchase lines (ties by name)."""
    counts = np.bincount(purchases.category, minlength=len(categories))
    ranked = sorted((-count, name) for name, count in zip(categories, counts, strict=True) if count > 0)
    return tuple(name for _, name in ranked[:top])


def _rfm_breakpoints(orders: _Orders, n: int) -> dict[str, tuple[float, ...]]:
    """Quintile edges of recency (days), frequency (orders) and monetary (spend) over buyers."""
    frequency = _sum_by(orders.code, n)
    bought = frequency > 0
    if not bought.any():
        return {}
    values = {
        "recency": _min_by(orders.code, orders.days_ago, n)[bought],
        "frequency": frequency[bought],
        "monetary": _sum_by(orders.code, n, orders.value)[bought],
    }
    quantiles = (0.2, 0.4, 0.6, 0.8)
    return {name: tuple(float(x) for x in np.quantile(v, quantiles)) for name, v in values.items()}


# ---------------------------------------------------------------------------
# Records as numpy arrays of integer codes and numbers: fast to aggregate with bincount,
# and cheap enough for one customer that the service can rebuild a profile per event.
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class _Lines:
    code: np.ndarray  # the customer's position in the sorted customer ids
    order: np.ndarray  # order code, unique within this build
    days_ago: np.ndarray
    day: np.ndarray  # calendar day of the line, as days since 1970-01-01
    quantity: np.ndarray
    value: np.ndarray
    discount: np.ndarray
    channel: np.ndarray  # position in schema.CHANNELS
    product: np.ndarray  # position in reference.products (-1: unknown product)
    category: np.ndarray  # position in reference.categories
    replenishment_days: np.ndarray


@dataclass(frozen=True)
class _Orders:
    """One entry per order, sorted by customer then oldest first."""

    code: np.ndarray
    days_ago: np.ndarray
    value: np.ndarray
    units: np.ndarray
    lines: np.ndarray


@dataclass(frozen=True)
class _Events:
    code: np.ndarray
    days_ago: np.ndarray
    kind: np.ndarray  # position in schema.EVENT_TYPES
    value: np.ndarray


def _known_customers(past: History) -> np.ndarray:
    """Sorted distinct customer ids over the three tables (distinct per table first: cheap)."""
    distinct = [
        np.asarray(pd.unique(frame[s.CUSTOMER_ID]), dtype=object)
        for frame in (past.customers, past.transactions, past.events)
    ]
    ids = pd.unique(np.concatenate(distinct)) if distinct else np.zeros(0, dtype=object)
    return np.sort(np.asarray([str(i) for i in ids if not pd.isna(i)], dtype=object))


def _codes(ids: pd.Series, lookup: pd.Index) -> np.ndarray:
    """Integer position of each record's customer in the customer index."""
    return lookup_codes(ids, lookup)


def lookup_codes(values: pd.Series, index: pd.Index) -> np.ndarray:
    """Position of each value in index (-1 when absent or missing).

    Factorising first hashes every string once in Arrow and looks up only the distinct values:
    on tens of millions of string cells that is several times faster than get_indexer.
    """
    codes, uniques = pd.factorize(values)
    positions = index.get_indexer(uniques).astype(np.int64)
    return np.where(codes >= 0, positions[np.maximum(codes, 0)] if len(positions) else -1, -1)


def _days_before(timestamps: pd.Series, as_of: pd.Timestamp) -> np.ndarray:
    as_of_ns = as_of.to_datetime64().astype("datetime64[ns]")
    return (as_of_ns - timestamps.to_numpy(dtype="datetime64[ns]")) / np.timedelta64(1, "D")


def _floats(frame: pd.DataFrame, column: str) -> np.ndarray:
    if column not in frame:
        return np.full(len(frame), np.nan)
    return frame[column].to_numpy(dtype=float, na_value=np.nan)


def _transaction_lines(
    transactions: pd.DataFrame, customer_codes: np.ndarray, reference: ReferenceTables, as_of: pd.Timestamp
) -> tuple[_Lines, _Lines]:
    """(purchase lines with a positive quantity, return lines with a negative one)."""
    quantity = transactions[s.QUANTITY].to_numpy(dtype=float)
    product = lookup_codes(transactions[s.PRODUCT_ID], reference.product_index)
    known = product >= 0
    lines = _Lines(
        code=customer_codes,
        order=pd.factorize(transactions[s.ORDER_ID])[0].astype(np.int64),
        days_ago=_days_before(transactions[s.TIMESTAMP], as_of),
        day=transactions[s.TIMESTAMP].to_numpy(dtype="datetime64[ns]").astype("datetime64[D]").astype(np.int64),
        quantity=quantity,
        value=quantity * transactions[s.UNIT_PRICE].to_numpy(dtype=float),
        discount=_floats(transactions, s.DISCOUNT),
        channel=lookup_codes(transactions[s.CHANNEL], _CHANNEL_INDEX),
        product=product,
        category=np.where(known, reference.product_category_codes[product], reference.unknown_category_code),
        replenishment_days=np.where(known, reference.product_replenishment_days[product], np.nan),
    )
    return _select(lines, quantity > 0), _select(lines, quantity < 0)


def _select(lines, mask: np.ndarray):
    return type(lines)(**{name: getattr(lines, name)[mask] for name in lines.__dataclass_fields__})


def _event_rows(events: pd.DataFrame, customer_codes: np.ndarray, as_of: pd.Timestamp) -> _Events:
    return _Events(
        code=customer_codes,
        days_ago=_days_before(events[s.TIMESTAMP], as_of),
        kind=lookup_codes(events[s.EVENT_TYPE], _EVENT_INDEX),
        value=_floats(events, s.VALUE),
    )


_CHANNEL_INDEX = pd.Index(s.CHANNELS)
_EVENT_INDEX = pd.Index(s.EVENT_TYPES)


def _orders(purchases: _Lines) -> _Orders:
    """Purchase lines grouped into orders; an order's age is that of its oldest line."""
    if len(purchases.code) == 0:
        empty = np.zeros(0)
        return _Orders(np.zeros(0, dtype=np.int64), empty, empty, empty, empty)
    width = int(purchases.order.max()) + 1
    keys, index = np.unique(purchases.code * width + purchases.order, return_inverse=True)
    m = len(keys)
    code = keys // width
    days_ago = _max_by(index, purchases.days_ago, m)
    value = np.bincount(index, weights=purchases.value, minlength=m)
    units = np.bincount(index, weights=purchases.quantity, minlength=m)
    lines = np.bincount(index, minlength=m).astype(float)
    by_time = np.lexsort((-days_ago, code))
    return _Orders(code[by_time], days_ago[by_time], value[by_time], units[by_time], lines[by_time])


# ---------------------------------------------------------------------------
# Feature blocks: each returns {column: array with one value per customer}.
# ---------------------------------------------------------------------------
def _sum_by(codes: np.ndarray, n: int, weights: np.ndarray | None = None) -> np.ndarray:
    return np.bincount(codes, weights=weights, minlength=n).astype(float)


def _min_by(codes: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    out = np.full(n, np.inf)
    np.minimum.at(out, codes, values)
    return np.where(np.isinf(out), np.nan, out)


def _max_by(codes: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    out = np.full(n, -np.inf)
    np.maximum.at(out, codes, values)
    return np.where(np.isinf(out), np.nan, out)


def _tenure_days(past: History, codes: dict[str, np.ndarray], n: int, as_of: pd.Timestamp) -> np.ndarray:
    """Days since the customer became known: signup, first purchase or first event, earliest."""
    first_seen = np.zeros(n)
    for name, column in (("customers", s.SIGNUP_DATE), ("transactions", s.TIMESTAMP), ("events", s.TIMESTAMP)):
        frame = getattr(past, name)
        if len(frame):
            first_seen = np.fmax(first_seen, _max_by(codes[name], _days_before(frame[column], as_of), n))
    return first_seen


def _recency_frequency_monetary(orders: _Orders, n: int, windows: tuple[int, ...]) -> dict:
    columns = {
        s.DAYS_SINCE_LAST_PURCHASE: _min_by(orders.code, orders.days_ago, n),
        s.DAYS_SINCE_FIRST_PURCHASE: _max_by(orders.code, orders.days_ago, n),
        s.ORDERS_COUNT_TOTAL: _sum_by(orders.code, n),
        s.SPEND_SUM_TOTAL: _sum_by(orders.code, n, orders.value),
    }
    for days in windows:
        in_window = orders.days_ago < days
        columns[s.orders_count(days)] = _sum_by(orders.code[in_window], n)
        columns[s.spend_sum(days)] = _sum_by(orders.code[in_window], n, orders.value[in_window])
    # Spend in the last 90 days against the 90 before, in [-1, 1]; 0 when both are empty.
    last_90 = _spend_between(orders, n, 0, 90)
    previous_90 = _spend_between(orders, n, 90, 180)
    total = last_90 + previous_90
    columns[s.SPEND_TREND_90D] = np.divide(last_90 - previous_90, total, out=np.zeros(n), where=total > 0)
    return columns


def _spend_between(orders: _Orders, n: int, from_days: float, to_days: float) -> np.ndarray:
    mask = (orders.days_ago >= from_days) & (orders.days_ago < to_days)
    return _sum_by(orders.code[mask], n, orders.value[mask])


def _order_shape(orders: _Orders, n: int) -> dict:
    count = np.maximum(_sum_by(orders.code, n), 1)
    return {
        s.ORDER_VALUE_MEAN: _sum_by(orders.code, n, orders.value) / count,
        s.ITEMS_PER_ORDER_MEAN: _sum_by(orders.code, n, orders.units) / count,
        s.LINES_PER_ORDER_MEAN: _sum_by(orders.code, n, orders.lines) / count,
    }


def _gaps(orders: _Orders, n: int) -> dict:
    """Mean and spread of days between consecutive orders, and the gap before the last one."""
    same_customer = orders.code[1:] == orders.code[:-1]
    gap_codes = orders.code[1:][same_customer]
    gaps = (orders.days_ago[:-1] - orders.days_ago[1:])[same_customer]
    count = _sum_by(gap_codes, n)
    mean = np.divide(_sum_by(gap_codes, n, gaps), count, out=np.full(n, np.nan), where=count > 0)
    mean_square = np.divide(_sum_by(gap_codes, n, gaps**2), count, out=np.full(n, np.nan), where=count > 0)
    std = np.sqrt(np.maximum(mean_square - mean**2, 0.0))
    before_last = np.full(n, np.nan)
    is_last = np.append(gap_codes[1:] != gap_codes[:-1], True) if len(gap_codes) else np.zeros(0, bool)
    before_last[gap_codes[is_last]] = gaps[is_last]
    return {s.GAP_MEAN_DAYS: mean, s.GAP_STD_DAYS: std, s.GAP_BEFORE_LAST_DAYS: before_last}


def _returns_and_discounts(purchases: _Lines, returns: _Lines, n: int) -> dict:
    returned_units = _sum_by(returns.code, n, -returns.quantity)
    bought_units = _sum_by(purchases.code, n, purchases.quantity)
    lines = _sum_by(purchases.code, n)
    discount = np.nan_to_num(purchases.discount, nan=0.0)
    return {
        s.RETURN_SHARE: _ratio(returned_units, bought_units).clip(0, 1),
        s.RETURNS_COUNT_TOTAL: _sum_by(returns.code, n),
        s.DISCOUNT_SHARE: _ratio(_sum_by(purchases.code, n, (discount > 0).astype(float)), lines),
        s.DISCOUNT_MEAN: _ratio(_sum_by(purchases.code, n, discount), lines),
    }


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, 0 where the denominator is 0."""
    return np.divide(numerator, denominator, out=np.zeros(len(numerator)), where=denominator > 0)


def _category_mix(purchases: _Lines, reference: ReferenceTables, n: int) -> dict:
    lines = _sum_by(purchases.code, n)
    columns = {}
    for name in reference.categories:
        in_category = purchases.category == reference.categories.index(name)
        columns[s.category_share(name)] = _ratio(_sum_by(purchases.code[in_category], n), lines)
    pair_code, _, pair_count = _pair_counts(purchases.code, purchases.category)
    columns[s.CATEGORY_COUNT] = _sum_by(pair_code, n)
    share = pair_count / lines[pair_code] if len(pair_code) else np.zeros(0)
    columns[s.CATEGORY_ENTROPY] = _sum_by(pair_code, n, -share * np.log(share))
    return columns


def _pair_counts(codes: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(customer code, label, lines) for each pair present, sorted by code then label."""
    width = int(labels.max()) + 1 if len(labels) else 1
    pairs, counts = np.unique(codes * width + labels, return_counts=True)
    return pairs // width, pairs % width, counts.astype(float)


def _favourite_category(purchases: _Lines, reference: ReferenceTables, n: int) -> np.ndarray:
    """The most bought category (ties broken by name); 'unknown' for customers with no purchase."""
    favourite = np.full(n, UNKNOWN, dtype=object)
    code, label, count = _pair_counts(purchases.code, purchases.category)
    # categories are sorted by name, so within a customer the lowest label wins a tie
    best_first = np.lexsort((label, -count, code))
    code, label = code[best_first], label[best_first]
    first = np.append(True, code[1:] != code[:-1]) if len(code) else np.zeros(0, bool)
    favourite[code[first]] = np.asarray(reference.categories, dtype=object)[label[first]]
    return favourite


def _channel_mix(purchases: _Lines, n: int) -> dict:
    lines = _sum_by(purchases.code, n)
    return {
        s.channel_share(name): _ratio(_sum_by(purchases.code[purchases.channel == i], n), lines)
        for i, name in enumerate(s.CHANNELS)
    }


def _behaviour(events: _Events, purchases: _Lines, n: int, windows: tuple[int, ...]) -> dict:
    columns: dict[str, np.ndarray] = {}
    for days in windows:
        in_window = events.days_ago < days
        for kind, noun in s.BEHAVIOUR_COUNTS.items():
            mask = in_window & (events.kind == s.EVENT_TYPES.index(kind))
            columns[s.windowed(noun, days)] = _sum_by(events.code[mask], n)
        # Cart adds that no purchased line in the same window answers (a documented approximation:
        # the contract does not link a cart to an order).
        bought_lines = _sum_by(purchases.code[purchases.days_ago < days], n)
        cart_adds = columns[s.windowed(s.BEHAVIOUR_COUNTS[s.EVENT_ADD_TO_CART], days)]
        columns[s.windowed(s.ABANDONED_CARTS, days)] = np.maximum(cart_adds - bought_lines, 0.0)
    recent = events.days_ago < 30
    opens = _sum_by(events.code[recent & (events.kind == s.EVENT_TYPES.index(s.EVENT_EMAIL_OPEN))], n)
    clicks = _sum_by(events.code[recent & (events.kind == s.EVENT_TYPES.index(s.EVENT_EMAIL_CLICK))], n)
    columns[s.EMAIL_CLICK_RATE_30D] = _ratio(clicks, opens).clip(0, 1)
    columns[s.DAYS_SINCE_LAST_EVENT] = _min_by(events.code, events.days_ago, n)
    return columns


def _support_and_nps(events: _Events, n: int) -> dict:
    ticket = events.kind == s.EVENT_TYPES.index(s.EVENT_SUPPORT_TICKET)
    recent_ticket = ticket & (events.days_ago < 90)
    answer = (events.kind == s.EVENT_TYPES.index(s.EVENT_NPS_RESPONSE)) & ~np.isnan(events.value)
    count = _sum_by(events.code[answer], n)
    return {
        s.SUPPORT_TICKETS_TOTAL: _sum_by(events.code[ticket], n),
        s.SUPPORT_TICKETS_90D: _sum_by(events.code[recent_ticket], n),
        # a ticket without a severity counts as the mildest
        s.SUPPORT_SEVERITY_MAX_90D: _max_by(
            events.code[recent_ticket], np.nan_to_num(events.value[recent_ticket], nan=1.0), n
        ),
        s.NPS_LATEST: _latest_value(events.code[answer], events.days_ago[answer], events.value[answer], n),
        s.NPS_MEAN: np.divide(
            _sum_by(events.code[answer], n, events.value[answer]), count, out=np.full(n, np.nan), where=count > 0
        ),
        s.NPS_RESPONSES_TOTAL: count,
    }


def _latest_value(codes: np.ndarray, days_ago: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Each customer's most recent value (ties: the larger value, so the result is order-free)."""
    out = np.full(n, np.nan)
    latest_last = np.lexsort((values, -days_ago, codes))
    codes, values = codes[latest_last], values[latest_last]
    last = np.append(codes[1:] != codes[:-1], True) if len(codes) else np.zeros(0, bool)
    out[codes[last]] = values[last]
    return out


def _seasonality(orders: _Orders, n: int) -> dict:
    """Orders in the 30 and 90 days that followed this date one year earlier."""
    a_year_ago = orders.days_ago <= 365
    return {
        s.ORDERS_NEXT_30D_LAST_YEAR: _sum_by(orders.code[a_year_ago & (orders.days_ago > 335)], n),
        s.ORDERS_NEXT_90D_LAST_YEAR: _sum_by(orders.code[a_year_ago & (orders.days_ago > 275)], n),
    }


def _replenishment(purchases: _Lines, n: int) -> dict:
    """For consumables: days until the soonest expected run-out (negative when overdue).

    A line of quantity q of a product lasting r days runs out r*q days after it was bought;
    only the latest purchase of each consumable product counts.
    """
    consumable = purchases.replenishment_days > 0
    code, product = purchases.code[consumable], purchases.product[consumable]
    days_ago = purchases.days_ago[consumable]
    lasts_days = purchases.replenishment_days[consumable] * purchases.quantity[consumable]
    # latest purchase per (customer, product): sort by pair, newest first (larger quantity on ties)
    newest_first = np.lexsort((-lasts_days, days_ago, product, code))
    code, product = code[newest_first], product[newest_first]
    first = np.append(True, (code[1:] != code[:-1]) | (product[1:] != product[:-1])) if len(code) else np.zeros(0, bool)
    code, days_ago, lasts_days = code[first], days_ago[newest_first][first], lasts_days[newest_first][first]
    return {
        s.CONSUMABLES_BOUGHT: _sum_by(code, n),
        s.DAYS_UNTIL_REPLENISHMENT: _min_by(code, lasts_days - days_ago, n),
        s.REPLENISHMENT_DUE_RATIO: _max_by(code, days_ago / lasts_days, n),
    }


BGNBD_HORIZON_DAYS = 90
WEEK_DAYS = 7.0


def _repeat_buying_summary(
    purchases: _Lines, as_of: pd.Timestamp, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(buyer codes, frequency, recency, T) in weeks, the BG/NBD inputs of each buyer.

    Purchases on one calendar day count once; frequency = purchase days - 1; recency = last -
    first purchase day; T = last observed day (the day before a midnight as_of) - first day.
    """
    code, day = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    if len(purchases.day):
        earliest = purchases.day.min()
        code, day, _ = _pair_counts(purchases.code, purchases.day - earliest)
        day = day + earliest
    buyers = np.unique(code)
    first, last = _min_by(code, day.astype(float), n)[buyers], _max_by(code, day.astype(float), n)[buyers]
    last_observed = (as_of - pd.Timedelta(nanoseconds=1)).to_datetime64().astype("datetime64[D]").astype(np.int64)
    frequency = _sum_by(code, n)[buyers] - 1
    return buyers, frequency, (last - first) / WEEK_DAYS, (last_observed - first) / WEEK_DAYS


def _repeat_buying(purchases: _Lines, reference: ReferenceTables, as_of: pd.Timestamp, n: int) -> dict:
    """BG/NBD P(alive) and expected purchases in the next 90 days, under the reference fit.

    The parametric view extrapolates to customers older or quieter than any training row, which
    trees cannot. Customers with no purchase get P(alive) 1 and an expectation of 0.
    """
    buyers, frequency, recency, age = _repeat_buying_summary(purchases, as_of, n)
    p_alive, expected = np.ones(n), np.zeros(n)
    p_alive[buyers], expected[buyers] = bgnbd.score_customers(
        reference.bgnbd_params, frequency, recency, age, BGNBD_HORIZON_DAYS / WEEK_DAYS
    )
    return {s.BGNBD_P_ALIVE: p_alive, s.BGNBD_EXPECTED_PURCHASES_90D: expected}


# ---------------------------------------------------------------------------
# Defaults, attributes, reference helpers.
# ---------------------------------------------------------------------------
def _fill_defaults(columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    columns = dict(columns)
    tenure = columns[s.TENURE_DAYS]
    recency = np.where(np.isnan(columns[s.DAYS_SINCE_LAST_PURCHASE]), tenure, columns[s.DAYS_SINCE_LAST_PURCHASE])
    columns[s.DAYS_SINCE_LAST_PURCHASE] = recency
    columns[s.DAYS_SINCE_LAST_EVENT] = np.where(
        np.isnan(columns[s.DAYS_SINCE_LAST_EVENT]), tenure, columns[s.DAYS_SINCE_LAST_EVENT]
    )
    columns[s.RECENCY_OVER_TENURE] = np.divide(recency, tenure, out=np.ones(len(tenure)), where=tenure > 0)
    gap = columns[s.GAP_MEAN_DAYS]
    has_gap = np.nan_to_num(gap, nan=0.0) > 0
    columns[s.OVERDUE_RATIO] = np.where(
        has_gap, recency / np.where(has_gap, gap, 1.0), recency / np.maximum(tenure, 1.0)
    )
    columns[s.ORDERS_PER_30D] = columns[s.ORDERS_COUNT_TOTAL] * 30.0 / np.maximum(tenure, 1.0)
    for column, default in FEATURE_DEFAULTS.items():
        if column in columns and not np.isnan(default):
            columns[column] = np.where(np.isnan(columns[column]), default, columns[column])
    return columns


def _attributes(customers: pd.DataFrame, customer_ids: np.ndarray, as_of: pd.Timestamp) -> dict:
    """Age, gender, region and opt-in from the customers table; 'unknown' / -1 / 0 when absent."""
    customers = customers.drop_duplicates(s.CUSTOMER_ID)
    row = pd.Index(customers[s.CUSTOMER_ID]).get_indexer(customer_ids)
    found = row >= 0

    def pick(column: str, missing):
        if column not in customers:
            return np.full(len(customer_ids), missing, dtype=object)
        values = customers[column].to_numpy(dtype=object, na_value=None)
        picked = np.where(found, values[np.maximum(row, 0)] if len(values) else None, None)
        return np.where(pd.isna(picked), missing, picked)

    birth_year = pick(s.BIRTH_YEAR, np.nan).astype(float)
    age = np.where(np.isnan(birth_year), FEATURE_DEFAULTS[s.AGE_YEARS], as_of.year - birth_year)
    opt_in = pick(s.MARKETING_OPT_IN, False)
    return {
        s.AGE_YEARS: age,
        s.AGE_BAND: _age_band(age),
        s.GENDER: pick(s.GENDER, UNKNOWN),
        s.REGION: pick(s.REGION, UNKNOWN),
        s.MARKETING_OPT_IN: np.array([1.0 if value is True else 0.0 for value in opt_in]),
    }


def _age_band(age: np.ndarray) -> np.ndarray:
    band = np.full(len(age), UNKNOWN, dtype=object)
    for low, high, label in AGE_BANDS:
        band[(age >= max(low, 18)) & (age < high)] = label
    return band


def _products_table(products: pd.DataFrame | None, transactions: pd.DataFrame) -> pd.DataFrame:
    """The product table with every product seen in transactions (unknown ones get 'unknown')."""
    columns = [s.PRODUCT_ID, s.CATEGORY, s.PRICE, s.REPLENISHMENT_DAYS]
    if products is None or products.empty:
        products = pd.DataFrame(
            {c: pd.Series(dtype="float" if c in (s.PRICE, s.REPLENISHMENT_DAYS) else "str") for c in columns}
        )
    products = products.reindex(columns=columns).drop_duplicates(s.PRODUCT_ID)
    products[s.REPLENISHMENT_DAYS] = pd.to_numeric(products[s.REPLENISHMENT_DAYS], errors="coerce")
    missing = pd.Index(pd.unique(transactions[s.PRODUCT_ID])).difference(products[s.PRODUCT_ID])
    if len(missing):
        extra = pd.DataFrame(
            {s.PRODUCT_ID: missing, s.CATEGORY: UNKNOWN, s.PRICE: np.nan, s.REPLENISHMENT_DAYS: np.nan}
        )
        products = pd.concat([products, extra], ignore_index=True)
    return products.sort_values(s.PRODUCT_ID, ignore_index=True)


def _empty(table: s.Table) -> pd.DataFrame:
    dtypes = {
        "id": "str",
        "string": "str",
        "timestamp": "datetime64[ns]",
        "int": "int64",
        "float": "float64",
        "bool": "boolean",
    }
    return pd.DataFrame({c.name: pd.Series(dtype=dtypes[c.dtype]) for c in table.columns})


def feature_columns(features: pd.DataFrame) -> list[str]:
    """The numeric model inputs of a feature table (ids, dates, labels and text excluded)."""
    excluded = {s.RFM_R, s.RFM_F, s.RFM_M}
    return [
        column
        for column in features.columns
        if column not in excluded and pd.api.types.is_float_dtype(features[column])
    ]
