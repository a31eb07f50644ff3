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

import numpy as np
import pandas as pd

from features import schema as s
from features.segments import add_segments

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
}
UNKNOWN = "unknown"
AGE_BANDS = ((0, 25, "18-24"), (25, 35, "25-34"), (35, 45, "35-44"), (45, 55, "45-54"),
             (55, 65, "55-64"), (65, 200, "65+"))


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
            customers=self.customers[self.customers[s.SIGNUP_DATE] < as_of],
            transactions=self.transactions[self.transactions[s.TIMESTAMP] < as_of],
            events=self.events[self.events[s.TIMESTAMP] < as_of],
        )


@dataclass(frozen=True)
class ReferenceTables:
    """Tables shared by all customers, computed once per as_of and passed in explicitly.

    products: product_id -> category, price, replenishment_days.
    top_categories: the categories that get their own share column, most bought first.
    rfm_breakpoints: quintile edges of recency, frequency and monetary value over buyers.
    """

    as_of: pd.Timestamp
    products: pd.DataFrame
    top_categories: tuple[str, ...]
    rfm_breakpoints: dict[str, tuple[float, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class FeatureWindows:
    """The windows (in days) the features are computed over; from FeatureSettings."""

    windows_days: tuple[int, ...] = (30, 90, 365)
    behaviour_windows_days: tuple[int, ...] = (7, 30)


def build_customer_features(
    history: History,
    as_of: pd.Timestamp,
    reference: ReferenceTables,
    windows: FeatureWindows = FeatureWindows(),
) -> pd.DataFrame:
    """One row per customer known before as_of, indexed by nothing, sorted by customer_id.

    A customer is known when their signup date or any of their records is before as_of.
    """
    as_of = pd.Timestamp(as_of)
    past = history.before(as_of)
    customer_ids = _known_customers(past)
    n = len(customer_ids)
    purchases = _purchase_lines(past.transactions, reference, customer_ids, as_of)
    orders = _orders(purchases)

    columns: dict[str, np.ndarray] = {s.TENURE_DAYS: _tenure_days(past, customer_ids, as_of)}
    columns |= _recency_frequency_monetary(orders, n, windows.windows_days)
    columns |= _order_shape(orders, purchases, n)
    columns |= _gaps(orders, n)
    columns |= _returns_and_discounts(past.transactions, purchases, customer_ids, n)
    columns |= _category_mix(purchases, reference, n)
    columns |= _channel_mix(purchases, n)
    columns |= _behaviour(past.events, purchases, customer_ids, as_of, windows.behaviour_windows_days)
    columns |= _support_and_nps(past.events, customer_ids, as_of)
    columns |= _seasonality(orders, n)
    columns |= _replenishment(purchases, n)

    features = pd.DataFrame(columns)
    features.insert(0, s.CUSTOMER_ID, pd.array(customer_ids, dtype="str"))
    features = _fill_defaults(features)
    features = _add_attributes(features, past.customers, as_of)
    features[s.FAVOURITE_CATEGORY] = _favourite_category(purchases, reference, n)
    features = add_segments(features, reference.rfm_breakpoints)
    features.insert(1, s.AS_OF, as_of)
    return features


def build_reference_tables(
    tables: dict[str, pd.DataFrame], as_of: pd.Timestamp, top_categories: int = 8
) -> ReferenceTables:
    """Reference tables at as_of from all customers' records strictly before it."""
    as_of = pd.Timestamp(as_of)
    history = History.from_tables(tables).before(as_of)
    products = _products_table(tables.get(s.PRODUCTS), history.transactions)
    purchases = history.transactions[history.transactions[s.QUANTITY] > 0]
    category_of = products.set_index(s.PRODUCT_ID)[s.CATEGORY]
    categories = purchases[s.PRODUCT_ID].map(category_of).fillna(UNKNOWN)
    ranked = categories.value_counts(sort=False).rename_axis("c").reset_index(name="n")
    ranked = ranked.sort_values(["n", "c"], ascending=[False, True])
    return ReferenceTables(
        as_of=as_of,
        products=products,
        top_categories=tuple(ranked["c"].head(top_categories)),
        rfm_breakpoints=_rfm_breakpoints(purchases, as_of),
    )


# ---------------------------------------------------------------------------
# Who is known, and the purchase lines and orders everything else is built from.
# ---------------------------------------------------------------------------
def _known_customers(past: History) -> np.ndarray:
    ids = pd.concat(
        [past.customers[s.CUSTOMER_ID], past.transactions[s.CUSTOMER_ID], past.events[s.CUSTOMER_ID]],
        ignore_index=True,
    )
    return np.sort(pd.unique(ids.astype("str")).astype(object))


def _codes(ids: pd.Series, customer_ids: np.ndarray) -> np.ndarray:
    """Integer position of each record's customer in customer_ids (every id must be there)."""
    return pd.Index(customer_ids).get_indexer(ids).astype(np.int64)


def _days_before(timestamps: pd.Series, as_of: pd.Timestamp) -> np.ndarray:
    return ((as_of - timestamps) / DAY).to_numpy(dtype=float)


def _purchase_lines(
    transactions: pd.DataFrame,
    reference: ReferenceTables,
    customer_ids: np.ndarray,
    as_of: pd.Timestamp,
) -> pd.DataFrame:
    """Lines with a positive quantity, as integer codes and numbers (fast to aggregate).

    code: the customer's position in customer_ids; order: a per-call order code; product:
    position in reference.products; category: position in _categories(reference); channel:
    position in schema.CHANNELS.
    """
    lines = transactions[transactions[s.QUANTITY] > 0]
    products = reference.products
    product = pd.Index(products[s.PRODUCT_ID]).get_indexer(lines[s.PRODUCT_ID])
    category_codes = pd.Index(_categories(reference)).get_indexer(products[s.CATEGORY].fillna(UNKNOWN))
    replenishment = products[s.REPLENISHMENT_DAYS].to_numpy(dtype=float, na_value=np.nan)
    known = product >= 0
    quantity = lines[s.QUANTITY].to_numpy(dtype=float)
    return pd.DataFrame(
        {
            "code": _codes(lines[s.CUSTOMER_ID], customer_ids),
            "order": pd.factorize(lines[s.ORDER_ID])[0],
            "days_ago": _days_before(lines[s.TIMESTAMP], as_of),
            "quantity": quantity,
            "value": quantity * lines[s.UNIT_PRICE].to_numpy(dtype=float),
            "discount": lines[s.DISCOUNT].to_numpy(dtype=float, na_value=np.nan)
            if s.DISCOUNT in lines
            else np.full(len(lines), np.nan),
            "channel": pd.Index(s.CHANNELS).get_indexer(lines[s.CHANNEL]),
            "product": product,
            "category": np.where(known, category_codes[product], _categories(reference).index(UNKNOWN)),
            "replenishment_days": np.where(known, replenishment[product], np.nan),
        }
    )


def _categories(reference: ReferenceTables) -> list[str]:
    """Every category of the reference products, plus 'unknown', in a fixed order."""
    return sorted(set(reference.products[s.CATEGORY].dropna()) | {UNKNOWN})


def _orders(purchases: pd.DataFrame) -> pd.DataFrame:
    """One row per order: customer code, age in days (of its first line), value, units, lines."""
    if purchases.empty:
        return pd.DataFrame({"code": [], "days_ago": [], "value": [], "units": [], "lines": []})
    grouped = purchases.groupby(["code", "order"], sort=False)
    orders = grouped.agg(
        days_ago=("days_ago", "max"),
        value=("value", "sum"),
        units=("quantity", "sum"),
        lines=("quantity", "size"),
    ).reset_index()
    return orders.sort_values(["code", "days_ago"], ascending=[True, False], kind="stable")


# ---------------------------------------------------------------------------
# Feature blocks: each returns {column: array of length n_customers}.
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


def _tenure_days(past: History, customer_ids: np.ndarray, as_of: pd.Timestamp) -> np.ndarray:
    """Days since the customer became known: signup, first purchase or first event, earliest."""
    n = len(customer_ids)
    first_seen = np.full(n, 0.0)
    for frame, column in (
        (past.customers, s.SIGNUP_DATE),
        (past.transactions, s.TIMESTAMP),
        (past.events, s.TIMESTAMP),
    ):
        if len(frame):
            seen = _max_by(_codes(frame[s.CUSTOMER_ID], customer_ids), _days_before(frame[column], as_of), n)
            first_seen = np.fmax(first_seen, seen)
    return first_seen


def _recency_frequency_monetary(orders: pd.DataFrame, n: int, windows: tuple[int, ...]) -> dict:
    codes = orders["code"].to_numpy(dtype=np.int64)
    days_ago = orders["days_ago"].to_numpy(dtype=float)
    value = orders["value"].to_numpy(dtype=float)
    columns = {
        s.DAYS_SINCE_LAST_PURCHASE: _min_by(codes, days_ago, n),
        s.DAYS_SINCE_FIRST_PURCHASE: _max_by(codes, days_ago, n),
        s.ORDERS_COUNT_TOTAL: _sum_by(codes, n),
        s.SPEND_SUM_TOTAL: _sum_by(codes, n, value),
    }
    for days in sorted(set(windows) | {90, 180}):
        in_window = days_ago < days
        if days in windows:
            columns[s.orders_count(days)] = _sum_by(codes[in_window], n)
        columns[s.spend_sum(days)] = _sum_by(codes[in_window], n, value[in_window])
    # Spend in the last 90 days against the 90 before, in [-1, 1]; 0 when both are empty.
    last_90 = columns[s.spend_sum(90)]
    previous_90 = columns[s.spend_sum(180)] - last_90
    total = last_90 + previous_90
    columns[s.SPEND_TREND_90D] = np.divide(last_90 - previous_90, total, out=np.zeros(n), where=total > 0)
    if 180 not in windows:
        del columns[s.spend_sum(180)]
    if 90 not in windows:
        del columns[s.spend_sum(90)]
    return columns


def _order_shape(orders: pd.DataFrame, purchases: pd.DataFrame, n: int) -> dict:
    codes = orders["code"].to_numpy(dtype=np.int64)
    count = _sum_by(codes, n)
    safe = np.maximum(count, 1)
    return {
        s.ORDER_VALUE_MEAN: _sum_by(codes, n, orders["value"].to_numpy(dtype=float)) / safe,
        s.ITEMS_PER_ORDER_MEAN: _sum_by(codes, n, orders["units"].to_numpy(dtype=float)) / safe,
        s.LINES_PER_ORDER_MEAN: _sum_by(codes, n, orders["lines"].to_numpy(dtype=float)) / safe,
    }


def _gaps(orders: pd.DataFrame, n: int) -> dict:
    """Mean and spread of days between consecutive orders (orders are sorted by customer, time)."""
    codes = orders["code"].to_numpy(dtype=np.int64)
    days_ago = orders["days_ago"].to_numpy(dtype=float)
    same_customer = codes[1:] == codes[:-1]
    gap_codes = codes[1:][same_customer]
    gaps = (days_ago[:-1] - days_ago[1:])[same_customer]
    count = _sum_by(gap_codes, n)
    mean = np.divide(_sum_by(gap_codes, n, gaps), count, out=np.full(n, np.nan), where=count > 0)
    mean_square = np.divide(_sum_by(gap_codes, n, gaps**2), count, out=np.full(n, np.nan), where=count > 0)
    std = np.sqrt(np.maximum(mean_square - mean**2, 0.0))
    before_last = np.full(n, np.nan)
    is_last = np.append(gap_codes[1:] != gap_codes[:-1], True) if len(gap_codes) else np.array([], bool)
    before_last[gap_codes[is_last]] = gaps[is_last]
    return {s.GAP_MEAN_DAYS: mean, s.GAP_STD_DAYS: std, s.GAP_BEFORE_LAST_DAYS: before_last}


def _returns_and_discounts(
    transactions: pd.DataFrame, purchases: pd.DataFrame, customer_ids: np.ndarray, n: int
) -> dict:
    returns = transactions[transactions[s.QUANTITY] < 0]
    return_codes = _codes(returns[s.CUSTOMER_ID], customer_ids)
    returned_units = _sum_by(return_codes, n, -returns[s.QUANTITY].to_numpy(dtype=float))
    codes = purchases["code"].to_numpy(dtype=np.int64)
    bought_units = _sum_by(codes, n, purchases["quantity"].to_numpy(dtype=float))
    lines = _sum_by(codes, n)
    discount = np.nan_to_num(purchases["discount"].to_numpy(dtype=float), nan=0.0)
    return {
        s.RETURN_SHARE: np.divide(returned_units, bought_units, out=np.zeros(n), where=bought_units > 0).clip(0, 1),
        s.RETURNS_COUNT_TOTAL: _sum_by(return_codes, n),
        s.DISCOUNT_SHARE: np.divide(_sum_by(codes, n, (discount > 0).astype(float)), lines, out=np.zeros(n), where=lines > 0),
        s.DISCOUNT_MEAN: np.divide(_sum_by(codes, n, discount), lines, out=np.zeros(n), where=lines > 0),
    }


def _category_mix(purchases: pd.DataFrame, reference: ReferenceTables, n: int) -> dict:
    codes = purchases["code"].to_numpy(dtype=np.int64)
    category = purchases["category"].to_numpy(dtype=np.int64)
    categories = _categories(reference)
    lines = _sum_by(codes, n)
    columns = {
        s.category_share(name): np.divide(
            _sum_by(codes[category == categories.index(name)], n), lines, out=np.zeros(n), where=lines > 0
        )
        for name in reference.top_categories
    }
    pair_counts = _pair_counts(codes, category)
    columns[s.CATEGORY_COUNT] = _sum_by(pair_counts["code"].to_numpy(dtype=np.int64), n)
    share = pair_counts["count"].to_numpy(dtype=float) / lines[pair_counts["code"].to_numpy(dtype=np.int64)]
    columns[s.CATEGORY_ENTROPY] = _sum_by(
        pair_counts["code"].to_numpy(dtype=np.int64), n, -share * np.log(share)
    )
    return columns


def _pair_counts(codes: np.ndarray, labels: np.ndarray) -> pd.DataFrame:
    """Lines per (customer code, integer label), one row per pair present."""
    width = int(labels.max()) + 1 if len(labels) else 1
    pairs, counts = np.unique(codes * width + labels, return_counts=True)
    return pd.DataFrame({"code": pairs // width, "label": pairs % width, "count": counts})


def _favourite_category(purchases: pd.DataFrame, reference: ReferenceTables, n: int) -> np.ndarray:
    """The most bought category (ties broken by name); 'unknown' for customers with no purchase."""
    favourite = np.full(n, UNKNOWN, dtype=object)
    if purchases.empty:
        return favourite
    pairs = _pair_counts(purchases["code"].to_numpy(dtype=np.int64), purchases["category"].to_numpy(dtype=np.int64))
    pairs = pairs.sort_values(["code", "count", "label"], ascending=[True, False, True], kind="stable")
    first = pairs.drop_duplicates("code")
    names = np.asarray(_categories(reference), dtype=object)
    favourite[first["code"].to_numpy(dtype=np.int64)] = names[first["label"].to_numpy(dtype=np.int64)]
    return favourite


def _channel_mix(purchases: pd.DataFrame, n: int) -> dict:
    codes = purchases["code"].to_numpy(dtype=np.int64)
    channel = purchases["channel"].to_numpy(dtype=np.int64)
    lines = _sum_by(codes, n)
    return {
        s.channel_share(name): np.divide(_sum_by(codes[channel == i], n), lines, out=np.zeros(n), where=lines > 0)
        for i, name in enumerate(s.CHANNELS)
    }


def _behaviour(
    events: pd.DataFrame,
    purchases: pd.DataFrame,
    customer_ids: np.ndarray,
    as_of: pd.Timestamp,
    windows: tuple[int, ...],
) -> dict:
    n = len(customer_ids)
    codes = _codes(events[s.CUSTOMER_ID], customer_ids)
    days_ago = _days_before(events[s.TIMESTAMP], as_of)
    event_type = pd.Index(s.EVENT_TYPES).get_indexer(events[s.EVENT_TYPE])
    purchase_codes = purchases["code"].to_numpy(dtype=np.int64)
    purchase_days_ago = purchases["days_ago"].to_numpy(dtype=float)
    columns: dict[str, np.ndarray] = {}
    for days in windows:
        in_window = days_ago < days
        for kind, noun in s.BEHAVIOUR_COUNTS.items():
            mask = in_window & (event_type == s.EVENT_TYPES.index(kind))
            columns[s.windowed(noun, days)] = _sum_by(codes[mask], n)
        # Cart adds that no purchased line in the same window answers (documented approximation).
        bought_lines = _sum_by(purchase_codes[purchase_days_ago < days], n)
        columns[s.windowed(s.ABANDONED_CARTS, days)] = np.maximum(
            columns[s.windowed(s.BEHAVIOUR_COUNTS[s.EVENT_ADD_TO_CART], days)] - bought_lines, 0.0
        )
    opens_30 = _sum_by(codes[(days_ago < 30) & (event_type == s.EVENT_TYPES.index(s.EVENT_EMAIL_OPEN))], n)
    clicks_30 = _sum_by(codes[(days_ago < 30) & (event_type == s.EVENT_TYPES.index(s.EVENT_EMAIL_CLICK))], n)
    columns[s.EMAIL_CLICK_RATE_30D] = np.divide(clicks_30, opens_30, out=np.zeros(n), where=opens_30 > 0).clip(0, 1)
    columns[s.DAYS_SINCE_LAST_EVENT] = _min_by(codes, days_ago, n)
    return columns


def _support_and_nps(events: pd.DataFrame, customer_ids: np.ndarray, as_of: pd.Timestamp) -> dict:
    n = len(customer_ids)
    tickets = events[events[s.EVENT_TYPE] == s.EVENT_SUPPORT_TICKET]
    ticket_codes = _codes(tickets[s.CUSTOMER_ID], customer_ids)
    ticket_recent = _days_before(tickets[s.TIMESTAMP], as_of) < 90
    severity = tickets[s.VALUE].to_numpy(dtype=float, na_value=np.nan) if s.VALUE in tickets else np.full(len(tickets), np.nan)
    answers = events[(events[s.EVENT_TYPE] == s.EVENT_NPS_RESPONSE) & events[s.VALUE].notna()]
    answer_codes = _codes(answers[s.CUSTOMER_ID], customer_ids)
    scores = answers[s.VALUE].to_numpy(dtype=float)
    count = _sum_by(answer_codes, n)
    return {
        s.SUPPORT_TICKETS_TOTAL: _sum_by(ticket_codes, n),
        s.SUPPORT_TICKETS_90D: _sum_by(ticket_codes[ticket_recent], n),
        s.SUPPORT_SEVERITY_MAX_90D: _max_by(
            ticket_codes[ticket_recent], np.nan_to_num(severity[ticket_recent], nan=1.0), n
        ),
        s.NPS_LATEST: _latest_value(answer_codes, _days_before(answers[s.TIMESTAMP], as_of), scores, n),
        s.NPS_MEAN: np.divide(_sum_by(answer_codes, n, scores), count, out=np.full(n, np.nan), where=count > 0),
        s.NPS_RESPONSES_TOTAL: count,
    }


def _latest_value(codes: np.ndarray, days_ago: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Each customer's most recent value (ties: the larger value, so the result is order-free)."""
    out = np.full(n, np.nan)
    order = np.lexsort((values, -days_ago))  # oldest first, then by value; last write wins
    out[codes[order]] = values[order]
    return out


def _seasonality(orders: pd.DataFrame, n: int) -> dict:
    """Orders in the 30 and 90 days that followed this date one year earlier."""
    codes = orders["code"].to_numpy(dtype=np.int64)
    days_ago = orders["days_ago"].to_numpy(dtype=float)
    return {
        s.ORDERS_NEXT_30D_LAST_YEAR: _sum_by(codes[(days_ago <= 365) & (days_ago > 335)], n),
        s.ORDERS_NEXT_90D_LAST_YEAR: _sum_by(codes[(days_ago <= 365) & (days_ago > 275)], n),
    }


def _replenishment(purchases: pd.DataFrame, n: int) -> dict:
    """For consumables: days until the soonest expected run-out (negative when overdue).

    A line of quantity q of a product lasting r days runs out r*q days after it was bought;
    only the latest purchase of each consumable product counts.
    """
    consumables = purchases[purchases["replenishment_days"] > 0]
    latest = consumables.sort_values("days_ago", kind="stable").drop_duplicates(["code", "product"])
    codes = latest["code"].to_numpy(dtype=np.int64)
    lasts_days = latest["replenishment_days"].to_numpy(dtype=float) * latest["quantity"].to_numpy(dtype=float)
    days_ago = latest["days_ago"].to_numpy(dtype=float)
    return {
        s.CONSUMABLES_BOUGHT: _sum_by(codes, n),
        s.DAYS_UNTIL_REPLENISHMENT: _min_by(codes, lasts_days - days_ago, n),
        s.REPLENISHMENT_DUE_RATIO: _max_by(codes, days_ago / lasts_days, n),
    }


# ---------------------------------------------------------------------------
# Defaults, attributes, reference helpers.
# ---------------------------------------------------------------------------
def _fill_defaults(features: pd.DataFrame) -> pd.DataFrame:
    features = features.copy()
    tenure = features[s.TENURE_DAYS]
    features[s.DAYS_SINCE_LAST_PURCHASE] = features[s.DAYS_SINCE_LAST_PURCHASE].fillna(tenure)
    features[s.DAYS_SINCE_LAST_EVENT] = features[s.DAYS_SINCE_LAST_EVENT].fillna(tenure)
    recency = features[s.DAYS_SINCE_LAST_PURCHASE]
    features[s.RECENCY_OVER_TENURE] = np.divide(
        recency, tenure, out=np.ones(len(features)), where=tenure.to_numpy() > 0
    )
    gap = features[s.GAP_MEAN_DAYS]
    features[s.OVERDUE_RATIO] = np.where(
        gap > 0, recency / gap.where(gap > 0, 1.0), recency / np.maximum(tenure, 1.0)
    )
    features[s.ORDERS_PER_30D] = features[s.ORDERS_COUNT_TOTAL] * 30.0 / np.maximum(tenure, 1.0)
    for column, default in FEATURE_DEFAULTS.items():
        if column in features and not np.isnan(default):
            features[column] = features[column].fillna(default)
    return features


def _add_attributes(features: pd.DataFrame, customers: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """Age, gender, region and opt-in from the customers table; 'unknown' / -1 / 0 when absent."""
    attributes = customers.drop_duplicates(s.CUSTOMER_ID).set_index(s.CUSTOMER_ID)
    ids = features[s.CUSTOMER_ID]

    def column(name: str) -> pd.Series:
        if name not in attributes:
            return pd.Series(np.nan, index=ids.index)
        return ids.map(attributes[name]).set_axis(ids.index)

    birth_year = pd.to_numeric(column(s.BIRTH_YEAR), errors="coerce")
    features[s.AGE_YEARS] = (as_of.year - birth_year).fillna(FEATURE_DEFAULTS[s.AGE_YEARS]).astype(float)
    features[s.AGE_BAND] = _age_band(features[s.AGE_YEARS].to_numpy())
    features[s.GENDER] = column(s.GENDER).fillna(UNKNOWN).astype("str")
    features[s.REGION] = column(s.REGION).fillna(UNKNOWN).astype("str")
    opt_in = column(s.MARKETING_OPT_IN).map({True: 1.0, False: 0.0})
    features[s.MARKETING_OPT_IN] = pd.to_numeric(opt_in, errors="coerce").fillna(0.0).astype(float)
    return features


def _age_band(age: np.ndarray) -> np.ndarray:
    band = np.full(len(age), UNKNOWN, dtype=object)
    for low, high, label in AGE_BANDS:
        band[(age >= max(low, 18)) & (age < high)] = label
    return band


def _products_table(products: pd.DataFrame | None, transactions: pd.DataFrame) -> pd.DataFrame:
    """The product table with every product seen in transactions (unknown ones get 'unknown')."""
    columns = [s.PRODUCT_ID, s.CATEGORY, s.PRICE, s.REPLENISHMENT_DAYS]
    if products is None or products.empty:
        products = pd.DataFrame({c: pd.Series(dtype="float" if c in (s.PRICE, s.REPLENISHMENT_DAYS) else "str") for c in columns})
    products = products.reindex(columns=columns).drop_duplicates(s.PRODUCT_ID)
    products[s.REPLENISHMENT_DAYS] = pd.to_numeric(products[s.REPLENISHMENT_DAYS], errors="coerce")
    missing = pd.Index(pd.unique(transactions[s.PRODUCT_ID])).difference(products[s.PRODUCT_ID])
    if len(missing):
        extra = pd.DataFrame({s.PRODUCT_ID: missing, s.CATEGORY: UNKNOWN, s.PRICE: np.nan, s.REPLENISHMENT_DAYS: np.nan})
        products = pd.concat([products, extra], ignore_index=True)
    return products.sort_values(s.PRODUCT_ID, ignore_index=True)


def _rfm_breakpoints(purchases: pd.DataFrame, as_of: pd.Timestamp) -> dict[str, tuple[float, ...]]:
    """Quintile edges of recency (days), frequency (orders) and monetary (spend) over buyers."""
    if purchases.empty:
        return {}
    lines = pd.DataFrame(
        {
            "customer": purchases[s.CUSTOMER_ID].to_numpy(dtype=object),
            "order": purchases[s.ORDER_ID].to_numpy(dtype=object),
            "days_ago": _days_before(purchases[s.TIMESTAMP], as_of),
            "value": purchases[s.QUANTITY].to_numpy(dtype=float) * purchases[s.UNIT_PRICE].to_numpy(dtype=float),
        }
    )
    per_customer = lines.groupby("customer").agg(
        recency=("days_ago", "min"), frequency=("order", "nunique"), monetary=("value", "sum")
    )
    quantiles = (0.2, 0.4, 0.6, 0.8)
    return {
        name: tuple(float(x) for x in np.quantile(per_customer[name].to_numpy(dtype=float), quantiles))
        for name in ("recency", "frequency", "monetary")
    }


def _empty(table: s.Table) -> pd.DataFrame:
    dtypes = {"id": "str", "string": "str", "timestamp": "datetime64[ns]", "int": "int64", "float": "float64", "bool": "boolean"}
    return pd.DataFrame({c.name: pd.Series(dtype=dtypes[c.dtype]) for c in table.columns})


def feature_columns(features: pd.DataFrame) -> list[str]:
    """The numeric model inputs of a feature table (ids, dates, labels and text excluded)."""
    excluded = {s.RFM_R, s.RFM_F, s.RFM_M}
    return [
        column
        for column in features.columns
        if column not in excluded and pd.api.types.is_float_dtype(features[column])
    ]
