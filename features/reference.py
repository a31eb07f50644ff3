"""Reference tables: what every customer's row is computed against, built once per as_of.

A customer's row depends only on that customer's records plus these tables (invariant 3), so the
feature build shards by customer. They are computed from all customers' records strictly before
as_of and passed in explicitly:

- products: product_id -> category, price, replenishment_days (every product seen in the
  transactions, unknown ones in category 'unknown'); every category gets a share column;
- top_categories: the most bought categories, most bought first (per-category propensity);
- rfm_breakpoints: quintile edges of recency, frequency and monetary value over buyers;
- bgnbd: the repeat-buying model's parameters, fitted by the caller (`models.bgnbd`) on the RFM
  summary built here, or None when there is too little data to fit it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

from features import schema as s
from features.history import History, rows_before
from features.records import (
    Orders,
    ProductLookup,
    build_products_table,
    min_by,
    orders_of,
    sum_by,
    transaction_lines,
)
from features.repeat_buying import BgNbdParameters, PurchaseDaySummary, summarise_purchase_days
from features.segments import RFM_FREQUENCY, RFM_MONETARY, RFM_RECENCY

RFM_QUANTILES = (0.2, 0.4, 0.6, 0.8)

# Fits the repeat-buying model on every buyer's summary; None when the data cannot support it.
RepeatBuyingFit = Callable[[PurchaseDaySummary], BgNbdParameters | None]


@dataclass(frozen=True)
class ReferenceTables:
    """Tables shared by all customers at one as_of (see the module docstring)."""

    as_of: pd.Timestamp
    products: pd.DataFrame
    top_categories: tuple[str, ...]
    rfm_breakpoints: dict[str, tuple[float, ...]] = field(default_factory=dict)
    bgnbd: BgNbdParameters | None = None

    # Lookups derived once from `products` (cached: the service reuses one instance per request).
    @cached_property
    def product_lookup(self) -> ProductLookup:
        return ProductLookup(self.products)

    @property
    def product_index(self) -> pd.Index:
        return self.product_lookup.product_index

    @property
    def categories(self) -> list[str]:
        """Every category of the products, plus 'unknown', sorted by name: one share column each."""
        return self.product_lookup.categories


def build_reference_tables(
    tables: dict[str, pd.DataFrame],
    as_of: pd.Timestamp,
    top_categories: int,
    fit_repeat_buying: RepeatBuyingFit | None = None,
) -> ReferenceTables:
    """Reference tables at as_of from all customers' records strictly before it.

    Built with the same line and order code the features use, so an RFM breakpoint or a BG/NBD
    input means exactly what the feature of the same name means. `fit_repeat_buying` receives
    every buyer's RFM summary (in weeks) and returns the BG/NBD parameters; without it the
    tables carry none, and the repeat-buying features take their defaults.
    """
    as_of = pd.Timestamp(as_of)
    transactions = rows_before(History.from_tables(tables).transactions, s.TIMESTAMP, as_of)
    products = ProductLookup(build_products_table(tables.get(s.PRODUCTS), transactions))
    _check_category_columns(products.categories)
    customer_codes, customer_ids = pd.factorize(transactions[s.CUSTOMER_ID])
    purchases, _ = transaction_lines(transactions, customer_codes.astype(np.int64), products, as_of)
    n = len(customer_ids)
    summary = summarise_purchase_days(purchases.code, purchases.day, as_of, n)
    return ReferenceTables(
        as_of=as_of,
        products=products.products,
        top_categories=_top_categories(purchases.category, products.categories, top_categories),
        rfm_breakpoints=_rfm_breakpoints(orders_of(purchases), n),
        bgnbd=fit_repeat_buying(summary) if fit_repeat_buying is not None else None,
    )


def _check_category_columns(categories: list[str]) -> None:
    """Fail here, naming the table, if two categories cannot get distinct feature columns."""
    try:
        s.column_parts(categories)
    except ValueError as error:
        raise ValueError(f"{s.PRODUCTS} table, column {s.CATEGORY}: {error}") from None


def _top_categories(category_codes: np.ndarray, categories: list[str], top: int) -> tuple[str, ...]:
    """The most bought categories by purchase lines (ties by name)."""
    counts = np.bincount(category_codes, minlength=len(categories))
    ranked = sorted((-count, name) for name, count in zip(categories, counts, strict=True) if count > 0)
    return tuple(name for _, name in ranked[:top])


def _rfm_breakpoints(orders: Orders, n: int) -> dict[str, tuple[float, ...]]:
    """Quintile edges of recency (days), frequency (orders) and monetary (spend) over buyers."""
    frequency = sum_by(orders.code, n)
    bought = frequency > 0
    if not bought.any():
        return {}
    values = {
        RFM_RECENCY: min_by(orders.code, orders.days_ago, n)[bought],
        RFM_FREQUENCY: frequency[bought],
        RFM_MONETARY: sum_by(orders.code, n, orders.value)[bought],
    }
    return {name: tuple(float(x) for x in np.quantile(v, RFM_QUANTILES)) for name, v in values.items()}
