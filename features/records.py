"""Records as integer codes and numpy arrays: the form every feature block aggregates.

A feature build factorises customer ids once, turns transaction lines, orders and events into
arrays of codes and numbers (`Lines`, `Orders`, `Events`), and aggregates them with `bincount`
(`sum_by`, `min_by`, `max_by`). That is fast at tens of millions of rows and cheap enough for one
customer that the service can rebuild a profile per event. The reference tables are built from
the same arrays, so an RFM breakpoint means exactly what the feature of the same name means.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from features import schema as s

_CHANNEL_POSITIONS = {channel: position for position, channel in enumerate(s.CHANNELS)}
_EPOCH_NS = np.datetime64("1970-01-01", "ns")
_DAY_NS = np.timedelta64(1, "D")
NS_PER_DAY = 86_400 * 10**9
_EVENT_POSITIONS = {kind: position for position, kind in enumerate(s.EVENT_TYPES)}
PRODUCT_COLUMNS = (s.PRODUCT_ID, s.CATEGORY, s.PRICE, s.REPLENISHMENT_DAYS)


@dataclass(frozen=True)
class ProductLookup:
    """The product table (sorted by id) and the per-product arrays the lines need.

    Every category of the catalogue, plus 'unknown', gets a code (sorted by name), so the feature
    columns depend on the catalogue only, never on which categories were popular at a cutoff.
    """

    products: pd.DataFrame  # product_id, category, price, replenishment_days

    @cached_property
    def product_index(self) -> pd.Index:
        return pd.Index(self.products[s.PRODUCT_ID])

    @cached_property
    def product_positions(self) -> dict[str, int]:
        """Each product id's position in the table (what `lookup_codes` reads)."""
        return positions_of(self.product_index)

    @cached_property
    def categories(self) -> list[str]:
        """Every category of the products, plus 'unknown', sorted by name: one share column each."""
        return sorted(set(self.products[s.CATEGORY].dropna()) | {s.UNKNOWN})

    @cached_property
    def unknown_category_code(self) -> int:
        return self.categories.index(s.UNKNOWN)

    @cached_property
    def product_category_codes(self) -> np.ndarray:
        return pd.Index(self.categories).get_indexer(self.products[s.CATEGORY].fillna(s.UNKNOWN)).astype(np.int64)

    @cached_property
    def product_replenishment_days(self) -> np.ndarray:
        return self.products[s.REPLENISHMENT_DAYS].to_numpy(dtype=float, na_value=np.nan)


def build_products_table(products: pd.DataFrame | None, transactions: pd.DataFrame) -> pd.DataFrame:
    """The product table with every product seen in transactions (unknown ones get 'unknown')."""
    if products is None or products.empty:
        products = pd.DataFrame(
            {c: pd.Series(dtype="float" if c in (s.PRICE, s.REPLENISHMENT_DAYS) else "str") for c in PRODUCT_COLUMNS}
        )
    products = products.reindex(columns=list(PRODUCT_COLUMNS)).drop_duplicates(s.PRODUCT_ID)
    products[s.REPLENISHMENT_DAYS] = pd.to_numeric(products[s.REPLENISHMENT_DAYS], errors="coerce")
    missing = pd.Index(pd.unique(transactions[s.PRODUCT_ID])).difference(products[s.PRODUCT_ID])
    if len(missing):
        extra = pd.DataFrame(
            {s.PRODUCT_ID: missing, s.CATEGORY: s.UNKNOWN, s.PRICE: np.nan, s.REPLENISHMENT_DAYS: np.nan}
        )
        products = pd.concat([products, extra], ignore_index=True)
    return products.sort_values(s.PRODUCT_ID, ignore_index=True)


@dataclass(frozen=True)
class Lines:
    """Transaction lines, one entry per line."""

    code: np.ndarray  # the customer's code (position in the build's customer ids)
    order: np.ndarray  # order code, unique within this build
    days_ago: np.ndarray
    day: np.ndarray  # calendar day of the line, as days since 1970-01-01
    quantity: np.ndarray
    value: np.ndarray
    discount: np.ndarray
    channel: np.ndarray  # position in schema.CHANNELS
    product: np.ndarray  # position in the product lookup (-1: unknown product)
    category: np.ndarray  # position in the lookup's categories
    replenishment_days: np.ndarray


@dataclass(frozen=True)
class Orders:
    """One entry per order, sorted by customer then oldest first."""

    code: np.ndarray
    days_ago: np.ndarray
    value: np.ndarray
    units: np.ndarray
    lines: np.ndarray


@dataclass(frozen=True)
class Events:
    code: np.ndarray
    days_ago: np.ndarray
    kind: np.ndarray  # position in schema.EVENT_TYPES
    value: np.ndarray


def lookup_codes(values: pd.Series, positions: Mapping[Any, int]) -> np.ndarray:
    """Position of each value (`positions`, from `positions_of`; -1 when absent or missing).

    Factorising first hashes every string once in Arrow and looks up only the distinct values:
    on tens of millions of string cells that is several times faster than get_indexer, and a dict
    lookup of the few distinct values costs microseconds where an index lookup costs tens.
    """
    codes, uniques = pd.factorize(values)
    found = np.fromiter((positions.get(value, -1) for value in uniques.tolist()), dtype=np.int64, count=len(uniques))
    return np.where(codes >= 0, found[np.maximum(codes, 0)] if len(found) else -1, -1)


def positions_of(labels: pd.Index | list) -> dict[Any, int]:
    """{label: its position} for labels without repeats (a repeated one is refused, as an index
    lookup refuses it)."""
    positions = {label: position for position, label in enumerate(list(labels))}
    if len(positions) != len(labels):
        raise ValueError("labels to look codes up in must not repeat")
    return positions


def to_days(timestamps: pd.Series | np.ndarray) -> np.ndarray:
    """Float days since 1970-01-01, the time axis of day-coded records (NaN for a missing time)."""
    moments = np.asarray(timestamps)
    if moments.dtype != _EPOCH_NS.dtype:  # strings, other units, time zones: pandas reads them
        moments = pd.to_datetime(pd.Series(timestamps)).to_numpy("datetime64[ns]")
    return (moments - _EPOCH_NS) / _DAY_NS


def day_of(moment) -> float:
    """One moment on the same axis: float days since 1970-01-01."""
    return int(pd.Timestamp(moment).to_datetime64().astype("datetime64[ns]").astype(np.int64)) / NS_PER_DAY


def days_before(timestamps: pd.Series, as_of: pd.Timestamp) -> np.ndarray:
    """Days from each timestamp to as_of (positive before it), as floats."""
    as_of_ns = as_of.to_datetime64().astype("datetime64[ns]")
    return (as_of_ns - timestamps.to_numpy(dtype="datetime64[ns]")) / np.timedelta64(1, "D")


def _floats(frame: pd.DataFrame, column: str) -> np.ndarray:
    if column not in frame:
        return np.full(len(frame), np.nan)
    return frame[column].to_numpy(dtype=float, na_value=np.nan)


def transaction_lines(
    transactions: pd.DataFrame, customer_codes: np.ndarray, products: ProductLookup, as_of: pd.Timestamp
) -> tuple[Lines, Lines]:
    """(purchase lines with a positive quantity, return lines with a negative one)."""
    quantity = transactions[s.QUANTITY].to_numpy(dtype=float)
    product = lookup_codes(transactions[s.PRODUCT_ID], products.product_positions)
    known = product >= 0
    lines = Lines(
        code=customer_codes,
        order=pd.factorize(transactions[s.ORDER_ID])[0].astype(np.int64),
        days_ago=days_before(transactions[s.TIMESTAMP], as_of),
        day=transactions[s.TIMESTAMP].to_numpy(dtype="datetime64[ns]").astype("datetime64[D]").astype(np.int64),
        quantity=quantity,
        value=s.line_value(quantity, transactions[s.UNIT_PRICE].to_numpy(dtype=float)),
        discount=_floats(transactions, s.DISCOUNT),
        channel=lookup_codes(transactions[s.CHANNEL], _CHANNEL_POSITIONS),
        product=product,
        category=np.where(known, products.product_category_codes[product], products.unknown_category_code),
        replenishment_days=np.where(known, products.product_replenishment_days[product], np.nan),
    )
    return _select(lines, s.is_purchase(quantity)), _select(lines, s.is_return(quantity))


def _select(records, mask: np.ndarray):
    return type(records)(**{field.name: getattr(records, field.name)[mask] for field in fields(records)})


def event_rows(events: pd.DataFrame, customer_codes: np.ndarray, as_of: pd.Timestamp) -> Events:
    return Events(
        code=customer_codes,
        days_ago=days_before(events[s.TIMESTAMP], as_of),
        kind=lookup_codes(events[s.EVENT_TYPE], _EVENT_POSITIONS),
        value=_floats(events, s.VALUE),
    )


def orders_of(purchases: Lines) -> Orders:
    """Purchase lines grouped into orders; an order's age is that of its oldest line."""
    if len(purchases.code) == 0:
        empty = np.zeros(0)
        return Orders(np.zeros(0, dtype=np.int64), empty, empty, empty, empty)
    width = int(purchases.order.max()) + 1
    keys, index = np.unique(purchases.code * width + purchases.order, return_inverse=True)
    m = len(keys)
    code = keys // width
    days_ago = max_by(index, purchases.days_ago, m)
    value = np.bincount(index, weights=purchases.value, minlength=m)
    units = np.bincount(index, weights=purchases.quantity, minlength=m)
    lines = np.bincount(index, minlength=m).astype(float)
    by_time = np.lexsort((-days_ago, code))
    return Orders(code[by_time], days_ago[by_time], value[by_time], units[by_time], lines[by_time])


# ---------------------------------------------------------------------------
# Aggregation per customer code: each returns one value per customer (n of them).
# ---------------------------------------------------------------------------
def sum_by(codes: np.ndarray, n: int, weights: np.ndarray | None = None) -> np.ndarray:
    return np.bincount(codes, weights=weights, minlength=n).astype(float)


def count_by_label(codes: np.ndarray, labels: np.ndarray, n: int, n_labels: int) -> np.ndarray:
    """Rows per customer and label, as an n x n_labels float matrix (one bincount for all labels,
    not one per label); a row whose label is outside 0..n_labels-1 (-1: unknown) is not counted."""
    known = (labels >= 0) & (labels < n_labels)
    pairs = codes[known] * n_labels + labels[known]
    return np.bincount(pairs, minlength=n * n_labels).astype(float).reshape(n, n_labels)


def min_by(codes: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Each customer's smallest value; NaN for a customer without one."""
    out = np.full(n, np.inf)
    np.minimum.at(out, codes, values)
    return np.where(np.isinf(out), np.nan, out)


def max_by(codes: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Each customer's largest value; NaN for a customer without one."""
    out = np.full(n, -np.inf)
    np.maximum.at(out, codes, values)
    return np.where(np.isinf(out), np.nan, out)


def pair_counts(codes: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(customer code, label, lines) for each pair present, sorted by code then label."""
    width = int(labels.max()) + 1 if len(labels) else 1
    pairs, counts = np.unique(codes * width + labels, return_counts=True)
    return pairs // width, pairs % width, counts.astype(float)


# Up to this many values a grouped reduction sorts in numpy: pandas' groupby costs about 0.2 ms per
# call whatever the size (most of a one-customer rebuild in the service), while on millions of
# lines (a fit) its hash-based reductions are about three times faster than a sort.
FEW_VALUES = 10_000


def median_by_group(groups: np.ndarray, values: np.ndarray, n_groups: int) -> np.ndarray:
    """The median of each group's non-NaN `values` (the mean of the two middle ones for an even
    count), for group codes 0..n_groups-1; NaN for a group without a value."""
    if len(values) > FEW_VALUES:
        medians = pd.Series(values).groupby(groups).median()
        out = np.full(n_groups, np.nan)
        out[medians.index.to_numpy(np.int64)] = medians.to_numpy(np.float64)
        return out
    present = ~np.isnan(values)
    groups, values = groups[present], values[present]
    order = np.lexsort((values, groups))
    groups, values = groups[order], values[order]
    counts = np.bincount(groups, minlength=n_groups)
    starts = np.cumsum(counts) - counts
    out = np.full(n_groups, np.nan)
    has = np.flatnonzero(counts)
    low, high = starts[has] + (counts[has] - 1) // 2, starts[has] + counts[has] // 2
    out[has] = (values[low] + values[high]) / 2
    return out
