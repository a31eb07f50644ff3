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

DAY = pd.Timedelta(days=1)


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
    item = catalogue.index.get_indexer(np.asarray(product_ids, dtype=object))[product_codes]
    bought = is_purchase(transactions[QUANTITY]).to_numpy(dtype=bool, na_value=False)
    kept = np.flatnonzero(bought & (item >= 0))
    item = item[kept]
    customer_codes, customers = pd.factorize(transactions[CUSTOMER_ID].array.take(kept), sort=True)
    day = to_days(transactions[TIMESTAMP].to_numpy()[kept])
    order = np.lexsort((day, customer_codes.astype(np.int64) * catalogue.size + item))
    return Lines(
        customers=pd.Index(np.asarray(customers, dtype=object), dtype=object, name=CUSTOMER_ID),
        customer=customer_codes[order].astype(np.int64),
        item=item[order].astype(np.int64),
        day=day[order],
        unit_price=_float_column(transactions, UNIT_PRICE)[kept][order],
    )


def _float_column(frame: pd.DataFrame, name: str) -> np.ndarray:
    if name not in frame.columns:  # optional columns (price, replenishment) read as unknown
        return np.full(len(frame), np.nan)
    return pd.to_numeric(frame[name], errors="coerce").to_numpy(np.float64, na_value=np.nan)
