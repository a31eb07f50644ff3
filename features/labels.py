"""Labels from records after as_of, and the rolling cutoffs that training stacks.

Label windows are [as_of, as_of + horizon_days): a purchase exactly at as_of counts, one at
as_of + horizon does not. A purchase is a transaction line with a positive quantity; a return
alone is not a purchase. Labels are made for the customers they are asked for (for churn, the
churn population of `features.population`); features are never computed here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features import schema as s

DAY = pd.Timedelta(days=1)


def _purchases_between(transactions: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    in_window = (transactions[s.TIMESTAMP] >= start) & (transactions[s.TIMESTAMP] < end)
    return transactions[in_window & s.is_purchase(transactions[s.QUANTITY])]


def make_churn_labels(
    transactions: pd.DataFrame, customer_ids: Sequence[str], as_of: pd.Timestamp, horizon_days: int = 90
) -> pd.DataFrame:
    """churned = 1 for each given customer who buys nothing in [as_of, as_of + horizon_days).

    Give it the churn population (`features.population.churn_population` of the feature rows at
    as_of): a customer who had already gone quiet cannot churn again. Rows in the order given.
    """
    as_of = pd.Timestamp(as_of)
    future = _purchases_between(transactions, as_of, as_of + horizon_days * DAY)
    ids = pd.Index(pd.array(list(customer_ids), dtype="str"))
    churned = ~ids.isin(future[s.CUSTOMER_ID].astype("str"))
    return pd.DataFrame({s.CUSTOMER_ID: ids, s.CHURN_LABEL: churned.astype(np.int64)})


def make_purchase_labels(
    transactions: pd.DataFrame,
    customer_ids: Sequence[str],
    as_of: pd.Timestamp,
    horizon_days: int = 30,
    categories: Sequence[str] = (),
    products: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """purchased = 1 if the customer buys anything in the horizon; one column per category too."""
    as_of = pd.Timestamp(as_of)
    future = _purchases_between(transactions, as_of, as_of + horizon_days * DAY)
    ids = pd.Index(pd.array(list(customer_ids), dtype="str"))
    labels = pd.DataFrame({s.CUSTOMER_ID: ids, s.PURCHASE_LABEL: ids.isin(future[s.CUSTOMER_ID]).astype(np.int64)})
    if categories:
        category_of = products if products is not None else pd.DataFrame(columns=[s.PRODUCT_ID, s.CATEGORY])
        future_category = future[s.PRODUCT_ID].map(
            category_of.drop_duplicates(s.PRODUCT_ID).set_index(s.PRODUCT_ID)[s.CATEGORY]
        )
        catalogue = product_categories(category_of)
        for category in categories:
            buyers = future.loc[(future_category == category).to_numpy(), s.CUSTOMER_ID]
            labels[s.category_purchase_label(category, catalogue)] = ids.isin(buyers).astype(np.int64)
    return labels


def make_value_labels(
    transactions: pd.DataFrame, customer_ids: Sequence[str], as_of: pd.Timestamp, horizon_days: int = 365
) -> pd.DataFrame:
    """future_orders and future_spend of each given customer in [as_of, as_of + horizon_days): their
    distinct orders with a purchase line, and those lines' summed value (0 for a customer who
    bought nothing); and the wait to their first purchase in it (`schema.NEXT_PURCHASE_WAIT`, censored
    at the horizon where `NEXT_PURCHASE_SEEN` is false). Rows in the order given."""
    as_of = pd.Timestamp(as_of)
    future = _purchases_between(transactions, as_of, as_of + horizon_days * DAY)
    customer = future[s.CUSTOMER_ID].astype("str")
    spend = (
        pd.Series(
            s.line_value(future[s.QUANTITY].to_numpy(dtype=float), future[s.UNIT_PRICE].to_numpy(dtype=float)),
            index=future.index,
        )
        .groupby(customer.to_numpy())
        .sum()
    )
    orders = future[s.ORDER_ID].groupby(customer.to_numpy()).nunique()
    first = future[s.TIMESTAMP].groupby(customer.to_numpy()).min()
    ids = pd.Index(pd.array(list(customer_ids), dtype="str"))
    wait = ((first - as_of).dt.days + 0.5).reindex(ids)
    return pd.DataFrame(
        {
            s.CUSTOMER_ID: ids,
            s.FUTURE_ORDERS: orders.reindex(ids, fill_value=0).to_numpy(np.int64),
            s.FUTURE_SPEND: spend.reindex(ids, fill_value=0.0).to_numpy(np.float64),
            s.NEXT_PURCHASE_WAIT: wait.fillna(float(horizon_days)).to_numpy(np.float64),
            s.NEXT_PURCHASE_SEEN: wait.notna().to_numpy(),
        }
    )


def product_categories(products: pd.DataFrame) -> tuple[str, ...]:
    """The categories of the products table: the catalogue that fixes each category's column names
    (`schema.column_parts`), the same one the reference tables hold."""
    return tuple(sorted(products[s.CATEGORY].dropna().astype(str).unique()))


def make_product_pairs(transactions: pd.DataFrame, as_of: pd.Timestamp, horizon_days: int = 30) -> pd.DataFrame:
    """Every distinct (customer_id, product_id) bought in the horizon, sorted by both."""
    as_of = pd.Timestamp(as_of)
    future = _purchases_between(transactions, as_of, as_of + horizon_days * DAY)
    pairs = future[[s.CUSTOMER_ID, s.PRODUCT_ID]].drop_duplicates()
    return pairs.sort_values([s.CUSTOMER_ID, s.PRODUCT_ID], ignore_index=True)


def make_product_sets(transactions: pd.DataFrame, as_of: pd.Timestamp, horizon_days: int = 30) -> pd.DataFrame:
    """The sorted list of distinct products each customer bought in the horizon (buyers only)."""
    pairs = make_product_pairs(transactions, as_of, horizon_days)
    grouped = pairs.groupby(s.CUSTOMER_ID, sort=True)[s.PRODUCT_ID].agg(list)
    return grouped.rename(s.PRODUCTS_BOUGHT).reset_index()


@dataclass(frozen=True)
class CutoffPlan:
    """Training cutoffs (oldest first) and the test cutoff whose window is the latest complete one.

    skipped: the training cutoffs asked for but dropped (oldest first), because no purchase comes
    before them.
    """

    train: tuple[pd.Timestamp, ...]
    test: pd.Timestamp
    horizon_days: int
    skipped: tuple[pd.Timestamp, ...] = ()


def history_days_needed(horizon_days: int, n_cutoffs: int, step_days: int) -> int:
    """Days from the day of the first purchase to the end of the test window that n_cutoffs training
    cutoffs step_days apart need: the test window, the label window of the latest training cutoff,
    the steps back to the oldest, and one day before it (its features need a purchase before it)."""
    return 2 * horizon_days + (n_cutoffs - 1) * step_days + 1


class ShortHistoryError(ValueError):
    """Fewer training cutoffs fit between the first purchase and the test window than are needed."""

    def __init__(
        self, first_purchase: pd.Timestamp, test_end: pd.Timestamp, horizon_days: int, min_cutoffs: int, step_days: int
    ):
        self.days_needed = history_days_needed(horizon_days, min_cutoffs, step_days)
        self.days_available = (test_end - first_purchase.normalize()).days
        steps = f" + {min_cutoffs - 1} x {step_days} between {min_cutoffs} training cutoffs" if min_cutoffs > 1 else ""
        super().__init__(
            f"the history is too short for {horizon_days}-day windows: {self.days_needed} days are needed "
            f"from the first purchase to the end of the test window ({horizon_days} test + {horizon_days} label"
            f"{steps} + 1 before them), there are {self.days_available} "
            f"({first_purchase.date()} to {test_end.date()})"
        )


def plan_cutoffs(
    data_end: pd.Timestamp,
    horizon_days: int,
    n_cutoffs: int = 6,
    step_days: int = 30,
    first_purchase: pd.Timestamp | None = None,
    test_cutoff: pd.Timestamp | None = None,
    min_cutoffs: int = 1,
) -> CutoffPlan:
    """Rolling cutoffs: no label window reaches past data_end and none overlaps the test window.

    data_end is exclusive (the day after the last record). The test window is
    [test_cutoff, test_cutoff + horizon), by default the latest complete one,
    [data_end - horizon, data_end). Training windows end at or before the test cutoff. A training
    cutoff needs a purchase strictly before it (at first_purchase or earlier its features have
    nothing to learn from): such cutoffs are skipped, and fewer than min_cutoffs left raises
    ShortHistoryError.
    """
    if n_cutoffs < min_cutoffs:
        raise ValueError(f"{n_cutoffs} training cutoff(s) asked for, at least {min_cutoffs} needed")
    data_end = pd.Timestamp(data_end).normalize()
    test = data_end - horizon_days * DAY if test_cutoff is None else pd.Timestamp(test_cutoff)
    if test + horizon_days * DAY > data_end:
        raise ValueError(
            f"the test window {test.date()} + {horizon_days} days reaches past the end of the data ({data_end.date()})"
        )
    last_train = test - horizon_days * DAY
    asked = sorted(last_train - i * step_days * DAY for i in range(n_cutoffs))
    train = [cutoff for cutoff in asked if first_purchase is None or cutoff > first_purchase]
    if len(train) < min_cutoffs:
        raise ShortHistoryError(first_purchase, test + horizon_days * DAY, horizon_days, min_cutoffs, step_days)
    skipped = tuple(cutoff for cutoff in asked if cutoff not in train)
    return CutoffPlan(train=tuple(train), test=test, horizon_days=horizon_days, skipped=skipped)
