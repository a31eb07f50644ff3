"""The catalogue and the purchase lines as integer codes: everything after a fit runs on these arrays."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.records import to_days
from features.schema import (
    CATEGORY,
    CUSTOMER_ID,
    PRICE,
    PRODUCT_ID,
    QUANTITY,
    REPLENISHMENT_DAYS,
    TIMESTAMP,
    UNIT_PRICE,
    is_purchase,
)
from models.recommender.arrays import locate

DAY = pd.Timedelta(days=1)
# Up to this many rows one customer's product ids are looked up one by one (about 0.3 us each) rather
# than by get_indexer (about 70 us whatever the size).
FEW_LINES = 256


@dataclass(frozen=True)
class Catalogue:
    """Products sorted by id; position in this order is the product's code everywhere below."""

    index: pd.Index  # product ids (object dtype: lookups of one id stay in numpy)
    ids: np.ndarray  # the same ids as an object array
    category: np.ndarray  # int code per product into `categories`
    categories: np.ndarray  # sorted category names
    replenishment_days: np.ndarray  # float, NaN for durables
    price: np.ndarray  # float, NaN when unknown

    @property
    def size(self) -> int:
        return len(self.index)

    @property
    def is_replenishable(self) -> np.ndarray:
        return (self.replenishment_days > 0).astype(np.float64)

    def category_codes(self, names: Iterable[str] | None) -> np.ndarray | None:
        """Codes of the given category names; unknown names raise ValueError naming them."""
        if names is None:
            return None
        names = list(dict.fromkeys(names))
        codes = pd.Index(self.categories, dtype=object).get_indexer(names)
        unknown = [name for name, code in zip(names, codes, strict=True) if code < 0]
        if unknown:
            raise ValueError(f"unknown categor{'y' if len(unknown) == 1 else 'ies'} {', '.join(map(repr, unknown))}")
        return codes


def build_catalogue(products: pd.DataFrame) -> Catalogue:
    """The products frame as a Catalogue; duplicate product ids raise ValueError."""
    ordered = products.assign(**{PRODUCT_ID: products[PRODUCT_ID].astype(object)}).sort_values(PRODUCT_ID)
    index = pd.Index(ordered[PRODUCT_ID].to_numpy(dtype=object), dtype=object, name=PRODUCT_ID)
    if not index.is_unique:
        raise ValueError("products has duplicate product ids")
    category_codes, categories = pd.factorize(ordered[CATEGORY].astype(object).fillna(""), sort=True)
    return Catalogue(
        index=index,
        ids=index.to_numpy(),
        category=category_codes.astype(np.int64),
        categories=np.asarray(categories, dtype=object),
        replenishment_days=_float_column(ordered, REPLENISHMENT_DAYS),
        price=_float_column(ordered, PRICE),
    )


@dataclass(frozen=True)
class Lines:
    """Positive-quantity purchase lines of catalogue products as codes, sorted by (customer, item, day)."""

    customers: pd.Index  # customer ids, sorted; position is the customer's code
    customer: np.ndarray  # int64 code per line
    item: np.ndarray  # int64 product code per line
    day: np.ndarray  # float64 days since 1970-01-01
    unit_price: np.ndarray  # float64, NaN when unknown


def code_lines(transactions: pd.DataFrame, catalogue: Catalogue) -> Lines:
    """The bought lines (quantity > 0) of catalogue products as codes; other products are dropped."""
    # Factorise the id columns as they are (Arrow strings factorise in C; converting 20 million ids to
    # Python objects first took minutes) and map only the distinct product ids to catalogue codes.
    # The kept lines are taken column by column: selecting rows of the whole frame costs more,
    # and at one customer's history (the service) it was most of the time.
    product_codes, product_ids = pd.factorize(transactions[PRODUCT_ID])
    distinct_items = catalogue.index.get_indexer(np.asarray(product_ids, dtype=object))
    # a missing product id factorises to -1: it picks the -1 appended last, no product
    item = np.append(distinct_items, -1)[product_codes]
    bought = is_purchase(transactions[QUANTITY]).to_numpy(dtype=bool, na_value=False)
    kept = np.flatnonzero(bought & (item >= 0))
    customer_codes, customers = pd.factorize(transactions[CUSTOMER_ID].array.take(kept), sort=True)
    return _sorted_lines(
        np.asarray(customers, dtype=object),
        customer_codes.astype(np.int64),
        item[kept],
        transactions[TIMESTAMP].to_numpy()[kept],
        _float_column(transactions, UNIT_PRICE)[kept],
        catalogue,
    )


def code_customer_lines(
    transactions: pd.DataFrame, customer_id: str, catalogue: Catalogue
) -> tuple[Lines, pd.Timestamp | None]:
    """(`code_lines` of the rows of `customer_id` alone, the time of their latest row of any kind:
    NaT when none has a time, None without a row). Rows of other customers are ignored.

    The same answer as `code_lines(transactions[transactions[CUSTOMER_ID].astype(object) == customer_id])`
    without the frame operations, which cost most of a request at one customer's few dozen rows.
    """
    ids = transactions[CUSTOMER_ID].to_numpy(dtype=object, na_value=None)
    rows = np.flatnonzero(ids == customer_id)
    timestamps = transactions[TIMESTAMP].to_numpy()[rows]
    if timestamps.dtype.kind != "M":  # strings or time zones: pandas reads them
        mine = transactions.take(rows)
        return code_lines(mine, catalogue), mine[TIMESTAMP].max() if len(rows) else None
    products = transactions[PRODUCT_ID].to_numpy(dtype=object, na_value=None)[rows]
    if len(rows) > FEW_LINES:  # one hash lookup per line is cheaper than get_indexer's set-up below this
        item = catalogue.index.get_indexer(products)
    else:
        item = np.fromiter((locate(catalogue.index, product) for product in products), np.int64, len(rows))
    quantity = transactions[QUANTITY]
    if isinstance(quantity.dtype, np.dtype):  # numpy numbers: NaN is no purchase
        quantity = quantity.to_numpy()[rows]
    else:  # nullable numbers: a missing quantity is no purchase
        quantity = quantity.to_numpy(np.float64, na_value=0.0)[rows]
    kept = np.flatnonzero(is_purchase(quantity) & (item >= 0))
    present = timestamps[~np.isnat(timestamps)]
    return (
        _sorted_lines(
            ids[rows[kept[:1]]],  # the id as stored, once: every kept line is this customer's
            np.zeros(len(kept), dtype=np.int64),
            item[kept],
            timestamps[kept],
            _float_column(transactions, UNIT_PRICE)[rows[kept]],
            catalogue,
        ),
        (pd.Timestamp(present.max()) if len(present) else pd.NaT) if len(rows) else None,
    )


def _sorted_lines(
    customers: np.ndarray,
    customer: np.ndarray,
    item: np.ndarray,
    timestamps: np.ndarray,
    unit_price: np.ndarray,
    catalogue: Catalogue,
) -> Lines:
    """Kept lines as `Lines`, sorted by (customer, item, day)."""
    day = to_days(timestamps)
    order = np.lexsort((day, customer * catalogue.size + item))
    return Lines(
        customers=pd.Index(customers, dtype=object, name=CUSTOMER_ID),
        customer=customer[order],
        item=item[order].astype(np.int64),
        day=day[order],
        unit_price=unit_price[order],
    )


def _float_column(frame: pd.DataFrame, name: str) -> np.ndarray:
    if name not in frame.columns:  # optional columns (price, replenishment) read as unknown
        return np.full(len(frame), np.nan)
    column = frame[name]
    if column.dtype == np.float64:  # already numbers: to_numeric would copy them as they are
        return column.to_numpy()
    return pd.to_numeric(column, errors="coerce").to_numpy(np.float64, na_value=np.nan)
