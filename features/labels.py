"""Labels from records after as_of, and training sets stacked over rolling cutoffs.

Label windows are [as_of, as_of + horizon_days): a purchase exactly at as_of counts, one at
as_of + horizon does not. A purchase is a transaction line with a positive quantity; a return
alone is not a purchase. Features are never computed here: `build_training_set` calls the one
feature builder for each cutoff.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features import schema as s
from features.customer import History, ReferenceTables, build_customer_features, build_reference_tables

DAY = pd.Timedelta(days=1)


def _purchases_between(transactions: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    in_window = (transactions[s.TIMESTAMP] >= start) & (transactions[s.TIMESTAMP] < end)
    return transactions[in_window & (transactions[s.QUANTITY] > 0)]


def make_churn_labels(
    transactions: pd.DataFrame, as_of: pd.Timestamp, horizon_days: int = 90, lookback_days: int = 365
) -> pd.DataFrame:
    """churned = 1 for customers who bought in the lookback before as_of and not in the horizon.

    Only customers who bought within [as_of - lookback_days, as_of) get a label: a customer who
    had already gone quiet cannot churn again. Sorted by customer_id.
    """
    as_of = pd.Timestamp(as_of)
    recent = _purchases_between(transactions, as_of - lookback_days * DAY, as_of)
    future = _purchases_between(transactions, as_of, as_of + horizon_days * DAY)
    population = np.sort(pd.unique(recent[s.CUSTOMER_ID].astype("str")).astype(object))
    churned = ~pd.Index(population).isin(future[s.CUSTOMER_ID].astype("str"))
    return pd.DataFrame({s.CUSTOMER_ID: pd.array(population, dtype="str"), s.CHURN_LABEL: churned.astype(np.int64)})


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
        for category in categories:
            buyers = future.loc[(future_category == category).to_numpy(), s.CUSTOMER_ID]
            labels[s.category_purchase_label(category)] = ids.isin(buyers).astype(np.int64)
    return labels


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
    """Training cutoffs (oldest first) and the test cutoff whose window is the latest complete one."""

    train: tuple[pd.Timestamp, ...]
    test: pd.Timestamp
    horizon_days: int


def plan_cutoffs(
    data_end: pd.Timestamp,
    horizon_days: int,
    n_cutoffs: int = 6,
    step_days: int = 30,
    data_start: pd.Timestamp | None = None,
    test_cutoff: pd.Timestamp | None = None,
) -> CutoffPlan:
    """Rolling cutoffs: no label window reaches past data_end and none overlaps the test window.

    data_end is exclusive (the day after the last record). The test window is
    [test_cutoff, test_cutoff + horizon), by default the latest complete one,
    [data_end - horizon, data_end). Training windows end at or before the test cutoff.
    """
    data_end = pd.Timestamp(data_end).normalize()
    test = data_end - horizon_days * DAY if test_cutoff is None else pd.Timestamp(test_cutoff)
    if test + horizon_days * DAY > data_end:
        raise ValueError(
            f"the test window {test.date()} + {horizon_days} days reaches past the end of the data ({data_end.date()})"
        )
    last_train = test - horizon_days * DAY
    train = [last_train - i * step_days * DAY for i in range(n_cutoffs)]
    if data_start is not None:
        train = [cutoff for cutoff in train if cutoff > pd.Timestamp(data_start)]
    if not train:
        raise ValueError(
            f"no training cutoff fits: data ends {data_end.date()}, horizon {horizon_days} days; "
            "the history is too short for this horizon"
        )
    return CutoffPlan(train=tuple(sorted(train)), test=test, horizon_days=horizon_days)


LabelMaker = Callable[[pd.DataFrame, pd.Timestamp, ReferenceTables], pd.DataFrame]


def build_training_set(
    tables: dict[str, pd.DataFrame],
    cutoffs: Sequence[pd.Timestamp],
    make_labels: LabelMaker,
    build_features: Callable[[History, pd.Timestamp, ReferenceTables], pd.DataFrame] | None = None,
    top_categories: int = 8,
) -> pd.DataFrame:
    """Feature rows joined with labels, one block per cutoff, stacked (column `as_of` tells which).

    make_labels(transactions, as_of, reference) returns customer_id plus label columns; only
    customers with a label are kept.
    """
    history = History.from_tables(tables)
    build = build_features or (lambda h, a, r: build_customer_features(h, a, r))
    blocks = []
    for as_of in cutoffs:
        reference = build_reference_tables(tables, as_of, top_categories)
        features = build(history, pd.Timestamp(as_of), reference)
        labels = make_labels(history.transactions, pd.Timestamp(as_of), reference)
        blocks.append(features.merge(labels, on=s.CUSTOMER_ID, how="inner"))
    if not blocks:
        raise ValueError("no cutoffs given")
    return pd.concat(blocks, ignore_index=True)
