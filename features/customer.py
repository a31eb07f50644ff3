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

from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np
import pandas as pd
from pandas.api.internals import create_dataframe_from_blocks

from features import schema as s
from features.history import HISTORY_TABLES, History
from features.records import (
    Events,
    Lines,
    Orders,
    count_by_label,
    days_before,
    event_rows,
    lookup_codes,
    max_by,
    min_by,
    orders_of,
    pair_counts,
    positions_of,
    sum_by,
    transaction_lines,
)
from features.reference import ReferenceTables
from features.repeat_buying import WEEK_DAYS, score_buyers, summarise_purchase_days
from features.segments import segment_columns

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
    s.CUSTOMERS: (s.CUSTOMER_ID, s.SIGNUP_DATE, s.BIRTH_YEAR, s.GENDER, s.REGION, s.MARKETING_OPT_IN),
    s.TRANSACTIONS: (
        s.ORDER_ID,
        s.CUSTOMER_ID,
        s.PRODUCT_ID,
        s.QUANTITY,
        s.UNIT_PRICE,
        s.TIMESTAMP,
        s.CHANNEL,
        s.DISCOUNT,
    ),
    s.EVENTS: (s.CUSTOMER_ID, s.TIMESTAMP, s.EVENT_TYPE, s.VALUE),
}


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
    customer_ids, codes = _customer_codes(past)
    n = len(customer_ids)
    purchases, returns = transaction_lines(past.transactions, codes[s.TRANSACTIONS], reference.product_lookup, as_of)
    orders = orders_of(purchases)
    events = event_rows(past.events, codes[s.EVENTS], as_of)

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
    columns |= _attributes(past.customers, codes[s.CUSTOMERS], n, as_of)
    columns[s.FAVOURITE_CATEGORY] = _favourite_category(purchases, reference, n)
    columns |= segment_columns(columns, reference.rfm_breakpoints)

    return _assemble(customer_ids, as_of, columns)


_TEXT_COLUMNS = (s.AGE_BAND, s.GENDER, s.REGION, s.FAVOURITE_CATEGORY, s.RFM_SEGMENT, s.LIFECYCLE_STAGE)
_SCORE_COLUMNS = (s.RFM_R, s.RFM_F, s.RFM_M)


def _assemble(customer_ids: np.ndarray, as_of: pd.Timestamp, columns: dict[str, np.ndarray]) -> pd.DataFrame:
    """The feature frame: id, as_of, numeric features (float), text columns, RFM scores (int).

    The frame is made from its blocks (one float block, one int block, one array per text column):
    one construction instead of four frames and a concat, which is most of the cost of a one-row
    frame when the service rebuilds a customer's row per event, and no copy of the float block
    for millions of rows.
    """
    numeric = [name for name in columns if name not in _TEXT_COLUMNS and name not in _SCORE_COLUMNS]
    n = len(customer_ids)
    # blocks are laid out (columns, rows): each feature is one contiguous row of the float block
    block = np.empty((len(numeric), n), dtype=np.float64)
    for position, name in enumerate(numeric):
        block[position] = columns[name]
    scores = np.empty((len(_SCORE_COLUMNS), n), dtype=np.int64)
    for position, name in enumerate(_SCORE_COLUMNS):
        scores[position] = columns[name].astype(np.int64)
    text = s.pandas_dtype_of("str")  # the object: pandas reads a dtype name anew per call
    first_text = 2 + len(numeric)
    first_score = first_text + len(_TEXT_COLUMNS)
    blocks = [
        (pd.array(customer_ids, dtype=text), np.array([0])),
        (np.full((1, n), as_of.to_datetime64().astype("datetime64[ns]")), np.array([1])),
        (block, np.arange(2, first_text)),
        *((pd.array(columns[name], dtype=text), np.array([first_text + i])) for i, name in enumerate(_TEXT_COLUMNS)),
        (scores, np.arange(first_score, first_score + len(_SCORE_COLUMNS))),
    ]
    return create_dataframe_from_blocks(blocks, index=pd.RangeIndex(n), columns=_column_index(tuple(numeric)).copy())


@lru_cache(maxsize=32)
def _column_index(numeric: tuple[str, ...]) -> pd.Index:
    """The feature frame's columns, built once per set of windows and categories (each frame gets a
    shallow copy: its own name, the same labels)."""
    names = [s.CUSTOMER_ID, s.AS_OF, *numeric, *_TEXT_COLUMNS, *_SCORE_COLUMNS]
    return pd.Index(names, dtype=s.pandas_dtype_of("str"))


def _customer_codes(past: History) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(the sorted distinct customer ids over the three tables, each table's rows' positions in them;
    -1 for a missing id).

    The three id columns are factorised together, once (hashed in Arrow for text columns), and the
    codes ranked into id order: one pass instead of a distinct, a factorisation and a lookup per table.
    """
    id_columns = [getattr(past, name)[s.CUSTOMER_ID] for name in HISTORY_TABLES]
    arrays = [column.array for column in id_columns]
    if all(array.dtype == arrays[0].dtype for array in arrays):
        # the documented extension-array concatenation (`pd.concat` of three series costs ~80 us)
        together = type(arrays[0])._concat_same_type(arrays)
    else:
        together = pd.concat(id_columns, ignore_index=True).array
    together_codes, uniques = pd.factorize(together)
    ids = np.asarray(uniques, dtype=object)
    if not all(isinstance(value, str) for value in ids.tolist()):
        # ids that are not text (numbers in an object column) keep the text-based lookup
        customer_ids = _known_customers(past)
        lookup = positions_of(customer_ids)
        return customer_ids, {
            name: lookup_codes(column, lookup) for name, column in zip(HISTORY_TABLES, id_columns, strict=True)
        }
    in_id_order = np.argsort(ids)
    rank = np.empty(len(ids), dtype=np.int64)
    rank[in_id_order] = np.arange(len(ids))
    coded = np.where(together_codes >= 0, rank[np.maximum(together_codes, 0)] if len(ids) else -1, -1)
    ends = np.cumsum([len(column) for column in id_columns])
    return ids[in_id_order], dict(zip(HISTORY_TABLES, np.split(coded, ends[:-1]), strict=True))


def _known_customers(past: History) -> np.ndarray:
    """Sorted distinct customer ids over the three tables (distinct per table first: cheap)."""
    distinct = [
        np.asarray(pd.unique(frame[s.CUSTOMER_ID]), dtype=object)
        for frame in (getattr(past, name) for name in HISTORY_TABLES)
    ]
    ids = pd.unique(np.concatenate(distinct)) if distinct else np.zeros(0, dtype=object)
    return np.sort(np.asarray([str(i) for i in ids if not pd.isna(i)], dtype=object))


def _tenure_days(past: History, codes: dict[str, np.ndarray], n: int, as_of: pd.Timestamp) -> np.ndarray:
    """Days since the customer became known: signup, first purchase or first event, earliest."""
    first_seen = np.zeros(n)
    for name in HISTORY_TABLES:
        frame = getattr(past, name)
        if len(frame):
            time_column = s.TABLES[name].time_column
            first_seen = np.fmax(first_seen, max_by(codes[name], days_before(frame[time_column], as_of), n))
    return first_seen


def _recency_frequency_monetary(orders: Orders, n: int, windows: tuple[int, ...]) -> dict:
    columns = {
        s.DAYS_SINCE_LAST_PURCHASE: min_by(orders.code, orders.days_ago, n),
        s.DAYS_SINCE_FIRST_PURCHASE: max_by(orders.code, orders.days_ago, n),
        s.ORDERS_COUNT_TOTAL: sum_by(orders.code, n),
        s.SPEND_SUM_TOTAL: sum_by(orders.code, n, orders.value),
    }
    for days in windows:
        in_window = orders.days_ago < days
        columns[s.orders_count(days)] = sum_by(orders.code[in_window], n)
        columns[s.spend_sum(days)] = sum_by(orders.code[in_window], n, orders.value[in_window])
    # Spend in the last 90 days against the 90 before, in [-1, 1]; 0 when both are empty.
    last_90 = _spend_between(orders, n, 0, 90)
    previous_90 = _spend_between(orders, n, 90, 180)
    total = last_90 + previous_90
    columns[s.SPEND_TREND_90D] = np.divide(last_90 - previous_90, total, out=np.zeros(n), where=total > 0)
    return columns


def _spend_between(orders: Orders, n: int, from_days: float, to_days: float) -> np.ndarray:
    mask = (orders.days_ago >= from_days) & (orders.days_ago < to_days)
    return sum_by(orders.code[mask], n, orders.value[mask])


def _order_shape(orders: Orders, n: int) -> dict:
    count = np.maximum(sum_by(orders.code, n), 1)
    return {
        s.ORDER_VALUE_MEAN: sum_by(orders.code, n, orders.value) / count,
        s.ITEMS_PER_ORDER_MEAN: sum_by(orders.code, n, orders.units) / count,
        s.LINES_PER_ORDER_MEAN: sum_by(orders.code, n, orders.lines) / count,
    }


def _gaps(orders: Orders, n: int) -> dict:
    """Mean and spread of days between consecutive orders, and the gap before the last one."""
    same_customer = orders.code[1:] == orders.code[:-1]
    gap_codes = orders.code[1:][same_customer]
    gaps = (orders.days_ago[:-1] - orders.days_ago[1:])[same_customer]
    count = sum_by(gap_codes, n)
    mean = np.divide(sum_by(gap_codes, n, gaps), count, out=np.full(n, np.nan), where=count > 0)
    mean_square = np.divide(sum_by(gap_codes, n, gaps**2), count, out=np.full(n, np.nan), where=count > 0)
    std = np.sqrt(np.maximum(mean_square - mean**2, 0.0))
    before_last = np.full(n, np.nan)
    is_last = np.append(gap_codes[1:] != gap_codes[:-1], True) if len(gap_codes) else np.zeros(0, bool)
    before_last[gap_codes[is_last]] = gaps[is_last]
    return {s.GAP_MEAN_DAYS: mean, s.GAP_STD_DAYS: std, s.GAP_BEFORE_LAST_DAYS: before_last}


def _returns_and_discounts(purchases: Lines, returns: Lines, n: int) -> dict:
    returned_units = sum_by(returns.code, n, -returns.quantity)
    bought_units = sum_by(purchases.code, n, purchases.quantity)
    lines = sum_by(purchases.code, n)
    discount = np.nan_to_num(purchases.discount, nan=0.0)
    return {
        s.RETURN_SHARE: _ratio(returned_units, bought_units).clip(0, 1),
        s.RETURNS_COUNT_TOTAL: sum_by(returns.code, n),
        s.DISCOUNT_SHARE: _ratio(sum_by(purchases.code, n, (discount > 0).astype(float)), lines),
        s.DISCOUNT_MEAN: _ratio(sum_by(purchases.code, n, discount), lines),
    }


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, 0 where the denominator is 0."""
    return np.divide(numerator, denominator, out=np.zeros(len(numerator)), where=denominator > 0)


def _shares(counts: np.ndarray, total: np.ndarray) -> np.ndarray:
    """Each column of an n x k matrix of counts over the n totals, 0 where the total is 0 (`_ratio`
    on every column at once)."""
    return np.divide(counts, total[:, None], out=np.zeros(counts.shape), where=total[:, None] > 0)


def _category_mix(purchases: Lines, reference: ReferenceTables, n: int) -> dict:
    lines = sum_by(purchases.code, n)
    share_columns = s.category_share_columns(reference.categories)
    shares = _shares(count_by_label(purchases.code, purchases.category, n, len(reference.categories)), lines)
    columns = {share_columns[name]: shares[:, code] for code, name in enumerate(reference.categories)}
    pair_code, _, pair_count = pair_counts(purchases.code, purchases.category)
    columns[s.CATEGORY_COUNT] = sum_by(pair_code, n)
    share = pair_count / lines[pair_code] if len(pair_code) else np.zeros(0)
    columns[s.CATEGORY_ENTROPY] = sum_by(pair_code, n, -share * np.log(share))
    return columns


def _favourite_category(purchases: Lines, reference: ReferenceTables, n: int) -> np.ndarray:
    """The most bought category (ties broken by name); 'unknown' for customers with no purchase."""
    favourite = np.full(n, s.UNKNOWN, dtype=object)
    code, label, count = pair_counts(purchases.code, purchases.category)
    # categories are sorted by name, so within a customer the lowest label wins a tie
    best_first = np.lexsort((label, -count, code))
    code, label = code[best_first], label[best_first]
    first = np.append(True, code[1:] != code[:-1]) if len(code) else np.zeros(0, bool)
    favourite[code[first]] = np.asarray(reference.categories, dtype=object)[label[first]]
    return favourite


def _channel_mix(purchases: Lines, n: int) -> dict:
    lines = sum_by(purchases.code, n)
    shares = _shares(count_by_label(purchases.code, purchases.channel, n, len(s.CHANNELS)), lines)
    return {s.channel_share(name): shares[:, i] for i, name in enumerate(s.CHANNELS)}


def _behaviour(events: Events, purchases: Lines, n: int, windows: tuple[int, ...]) -> dict:
    columns: dict[str, np.ndarray] = {}
    for days in windows:
        in_window = events.days_ago < days
        by_kind = count_by_label(events.code[in_window], events.kind[in_window], n, len(s.EVENT_TYPES))
        for kind, noun in s.BEHAVIOUR_COUNTS.items():
            columns[s.windowed(noun, days)] = by_kind[:, s.EVENT_TYPES.index(kind)]
        # Cart adds that no purchased line in the same window answers (a documented approximation:
        # the contract does not link a cart to an order).
        bought_lines = sum_by(purchases.code[purchases.days_ago < days], n)
        cart_adds = columns[s.windowed(s.BEHAVIOUR_COUNTS[s.EVENT_ADD_TO_CART], days)]
        columns[s.windowed(s.ABANDONED_CARTS, days)] = np.maximum(cart_adds - bought_lines, 0.0)
    recent = events.days_ago < 30
    opens = sum_by(events.code[recent & (events.kind == s.EVENT_TYPES.index(s.EVENT_EMAIL_OPEN))], n)
    clicks = sum_by(events.code[recent & (events.kind == s.EVENT_TYPES.index(s.EVENT_EMAIL_CLICK))], n)
    columns[s.EMAIL_CLICK_RATE_30D] = _ratio(clicks, opens).clip(0, 1)
    columns[s.DAYS_SINCE_LAST_EVENT] = min_by(events.code, events.days_ago, n)
    return columns


def _support_and_nps(events: Events, n: int) -> dict:
    ticket = events.kind == s.EVENT_TYPES.index(s.EVENT_SUPPORT_TICKET)
    recent_ticket = ticket & (events.days_ago < 90)
    answer = (events.kind == s.EVENT_TYPES.index(s.EVENT_NPS_RESPONSE)) & ~np.isnan(events.value)
    count = sum_by(events.code[answer], n)
    return {
        s.SUPPORT_TICKETS_TOTAL: sum_by(events.code[ticket], n),
        s.SUPPORT_TICKETS_90D: sum_by(events.code[recent_ticket], n),
        # a ticket without a severity counts as the mildest
        s.SUPPORT_SEVERITY_MAX_90D: max_by(
            events.code[recent_ticket], np.nan_to_num(events.value[recent_ticket], nan=1.0), n
        ),
        s.NPS_LATEST: _latest_value(events.code[answer], events.days_ago[answer], events.value[answer], n),
        s.NPS_MEAN: np.divide(
            sum_by(events.code[answer], n, events.value[answer]), count, out=np.full(n, np.nan), where=count > 0
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


def _seasonality(orders: Orders, n: int) -> dict:
    """Orders in the 30 and 90 days that followed this date one year earlier."""
    a_year_ago = orders.days_ago <= 365
    return {
        s.ORDERS_NEXT_30D_LAST_YEAR: sum_by(orders.code[a_year_ago & (orders.days_ago > 335)], n),
        s.ORDERS_NEXT_90D_LAST_YEAR: sum_by(orders.code[a_year_ago & (orders.days_ago > 275)], n),
    }


def _replenishment(purchases: Lines, n: int) -> dict:
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
        s.CONSUMABLES_BOUGHT: sum_by(code, n),
        s.DAYS_UNTIL_REPLENISHMENT: min_by(code, lasts_days - days_ago, n),
        s.REPLENISHMENT_DUE_RATIO: max_by(code, days_ago / lasts_days, n),
    }


# BG/NBD expected purchases are a feature over this fixed horizon, whatever a model's horizon.
BGNBD_HORIZON_DAYS = 90


def _repeat_buying(purchases: Lines, reference: ReferenceTables, as_of: pd.Timestamp, n: int) -> dict:
    """BG/NBD P(alive) and expected purchases in the next 90 days, under the reference fit, and the
    repeat-buying summary in days that the value models read (`schema.PURCHASE_DAYS_TOTAL` on).

    The parametric view extrapolates to customers older or quieter than any training row, which
    trees cannot. Customers with no purchase get P(alive) 1 and an expectation of 0.
    """
    in_days = summarise_purchase_days(
        purchases.code, purchases.day, as_of, n, time_unit_days=1.0, value=purchases.value
    )
    in_weeks = replace(in_days, recency=in_days.recency / WEEK_DAYS, T=in_days.T / WEEK_DAYS)
    p_alive, expected = np.ones(n), np.zeros(n)
    p_alive[in_days.buyers], expected[in_days.buyers] = score_buyers(
        reference.bgnbd, in_weeks, BGNBD_HORIZON_DAYS / WEEK_DAYS
    )
    columns = {s.BGNBD_P_ALIVE: p_alive, s.BGNBD_EXPECTED_PURCHASES_90D: expected}
    for name, buyers_values in {
        s.PURCHASE_DAYS_TOTAL: in_days.frequency + 1,
        s.FIRST_TO_LAST_PURCHASE_DAYS: in_days.recency,
        s.PURCHASE_HISTORY_DAYS: in_days.T,
        s.REPEAT_DAY_VALUE_MEAN: np.nan_to_num(in_days.monetary, nan=0.0),  # no repeat day: 0
    }.items():
        columns[name] = np.zeros(n)  # no purchase: an empty summary
        columns[name][in_days.buyers] = buyers_values
    return columns


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


def _attributes(customers: pd.DataFrame, customer_codes: np.ndarray, n: int, as_of: pd.Timestamp) -> dict:
    """Age, gender, region and opt-in from the customers table (a customer's first row, by their
    codes in the build); 'unknown' / -1 / 0 when absent."""
    row = _first_rows(customer_codes, n)
    found = row >= 0

    def pick(column: str, missing):
        if column not in customers:
            return np.full(n, missing, dtype=object)
        values = customers[column].to_numpy(dtype=object, na_value=None)
        picked = np.where(found, values[np.maximum(row, 0)] if len(values) else None, None)
        return np.where(pd.isna(picked), missing, picked)

    birth_year = pick(s.BIRTH_YEAR, np.nan).astype(float)
    age = np.where(np.isnan(birth_year), FEATURE_DEFAULTS[s.AGE_YEARS], as_of.year - birth_year)
    opt_in = pick(s.MARKETING_OPT_IN, False)
    return {
        s.AGE_YEARS: age,
        s.AGE_BAND: _age_band(age),
        s.GENDER: pick(s.GENDER, s.UNKNOWN),
        s.REGION: pick(s.REGION, s.UNKNOWN),
        s.MARKETING_OPT_IN: np.array([1.0 if value is True else 0.0 for value in opt_in]),
    }


def _first_rows(codes: np.ndarray, n: int) -> np.ndarray:
    """For each customer code 0..n-1, the position of its first row among `codes` (-1: none)."""
    row = np.full(n, -1, dtype=np.int64)
    present = np.flatnonzero(codes >= 0)
    distinct, first = np.unique(codes[present], return_index=True)
    row[distinct] = present[first]
    return row


def _age_band(age: np.ndarray) -> np.ndarray:
    band = np.full(len(age), s.UNKNOWN, dtype=object)
    for low, high, label in AGE_BANDS:
        band[(age >= max(low, 18)) & (age < high)] = label
    return band


def feature_columns(features: pd.DataFrame) -> list[str]:
    """The numeric model inputs of a feature table (ids, dates, labels and text excluded)."""
    excluded = {s.RFM_R, s.RFM_F, s.RFM_M}
    return [
        column
        for column in features.columns
        if column not in excluded and pd.api.types.is_float_dtype(features[column])
    ]
