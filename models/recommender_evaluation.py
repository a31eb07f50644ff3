"""Out-of-time evaluation of recommendations: the test window and the metrics. No I/O.

The test window is `[cutoff, cutoff + horizon_days)`. Its customers are those who bought
something before the cutoff and something in the window (every candidate, baselines included, can
rank for them); everything a scorer uses comes from purchases strictly before the cutoff. A
purchase is a line with a positive quantity.

Relevant items of a customer: the products bought in the window, except durable products
(empty or zero `replenishment_days`) already bought before the cutoff -- nobody is recommended
the sofa they own. Consumables stay relevant when bought again. The relevant set splits in two,
each scored on its own:
- `buy_again`: relevant products the customer had bought before (consumables restocked);
- `new_items`: relevant products the customer had never bought.

Metric names (MLflow-safe, `@` is not allowed there): `ndcg_at_10`, `buy_again.ndcg_at_10`,
`new_items.recall_at_20`, `coverage_at_10`, `novelty_at_10`, `test_customers`; see
`evaluate_lists`. Customers with no relevant item in a set are skipped for that set, as in
`models.ranking_metrics`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.schema import CUSTOMER_ID, PRODUCT_ID, QUANTITY, REPLENISHMENT_DAYS, TIMESTAMP, is_purchase
from models.ranking_metrics import (
    RANKING_METRIC_NAMES,
    USERS,
    catalogue_coverage,
    evaluate_ranking,
    metric_key,
    novelty,
)

DAY = pd.Timedelta(days=1)
BUY_AGAIN = "buy_again"
NEW_ITEMS = "new_items"
COVERAGE = "coverage"
NOVELTY = "novelty"
TEST_CUSTOMERS = "test_customers"


def metric_name(name: str, k: int) -> str:
    """The logged name of a metric at cutoff k: `ndcg_at_10` (MLflow refuses the `@` of "ndcg@10")."""
    return metric_key(name, k).replace("@", "_at_")


@dataclass(frozen=True)
class EvaluationWindow:
    """Who is scored in [cutoff, cutoff + horizon_days), what counts as a hit, and the history's item counts."""

    cutoff: pd.Timestamp
    horizon_days: int
    customer_ids: tuple[str, ...]  # sorted
    relevant: tuple[frozenset, ...]  # aligned with customer_ids
    buy_again: tuple[frozenset, ...]  # relevant and bought before the cutoff
    new_items: tuple[frozenset, ...]  # relevant and never bought before the cutoff
    item_buyers: pd.Series  # product_id -> customers who bought it before the cutoff (every catalogue product)
    history_customers: int  # customers with a purchase before the cutoff
    catalogue_size: int


def make_test_window(
    transactions: pd.DataFrame, products: pd.DataFrame, cutoff: pd.Timestamp, horizon_days: int
) -> EvaluationWindow:
    """The test window at `cutoff` (see the module docstring for who is in it and what is relevant).

    Raises ValueError when no purchase precedes the cutoff or no customer with history buys in
    the window.
    """
    cutoff = pd.Timestamp(cutoff)
    if horizon_days < 1:
        raise ValueError(f"horizon_days must be positive, got {horizon_days}")
    purchases = transactions.loc[is_purchase(transactions[QUANTITY]), [CUSTOMER_ID, PRODUCT_ID, TIMESTAMP]]
    history = purchases[purchases[TIMESTAMP] < cutoff]
    if history.empty:
        raise ValueError(f"no purchases before the test cutoff {cutoff.date()}")
    end = cutoff + horizon_days * DAY
    window = purchases[(purchases[TIMESTAMP] >= cutoff) & (purchases[TIMESTAMP] < end)]
    window = window[window[CUSTOMER_ID].isin(history[CUSTOMER_ID])]
    if window.empty:
        raise ValueError(
            f"no customer with earlier purchases buys in the test window {cutoff.date()} + {horizon_days} days"
        )

    consumables = set(products.loc[_replenishment_days(products) > 0, PRODUCT_ID])
    bought_before = history.groupby(CUSTOMER_ID, sort=False)[PRODUCT_ID].agg(frozenset)
    bought_in_window = window.groupby(CUSTOMER_ID, sort=True)[PRODUCT_ID].agg(frozenset)
    relevant, buy_again, new_items = [], [], []
    for customer, products_bought in bought_in_window.items():
        before = bought_before[customer]
        again = frozenset(p for p in products_bought & before if p in consumables)
        new = products_bought - before
        relevant.append(again | new)
        buy_again.append(again)
        new_items.append(new)

    catalogue = pd.Index(products[PRODUCT_ID].astype(object).unique())
    item_buyers = history.groupby(PRODUCT_ID)[CUSTOMER_ID].nunique().reindex(catalogue, fill_value=0)
    return EvaluationWindow(
        cutoff=cutoff,
        horizon_days=horizon_days,
        customer_ids=tuple(bought_in_window.index),
        relevant=tuple(relevant),
        buy_again=tuple(buy_again),
        new_items=tuple(new_items),
        item_buyers=item_buyers.astype(np.int64),
        history_customers=int(history[CUSTOMER_ID].nunique()),
        catalogue_size=len(catalogue),
    )


def evaluate_lists(
    recommended: Sequence[Sequence[str]], window: EvaluationWindow, ks: Iterable[int]
) -> dict[str, float]:
    """Every metric of one scorer's lists (aligned with `window.customer_ids`, best first).

    Keys: `<metric>_at_<k>` for precision, recall, ndcg, map and hit_rate on the relevant items,
    the same prefixed `buy_again.` and `new_items.`, `test_customers` (and the prefixed counts:
    customers with at least one relevant item in that set), `coverage_at_<k>` (share of the
    catalogue in someone's top k) and `novelty_at_<k>` (mean self-information in bits; a product
    nobody bought before the cutoff counts as bought by one customer).
    """
    ks = tuple(sorted(set(ks)))
    if len(recommended) != len(window.customer_ids):
        raise ValueError(f"{len(recommended)} lists for {len(window.customer_ids)} test customers")
    result: dict[str, float] = {}
    for prefix, relevant in (
        ("", window.relevant),
        (f"{BUY_AGAIN}.", window.buy_again),
        (f"{NEW_ITEMS}.", window.new_items),
    ):
        scores = evaluate_ranking(recommended, relevant, ks)
        for k in ks:
            for name in RANKING_METRIC_NAMES:
                result[prefix + metric_name(name, k)] = scores[metric_key(name, k)]
        result[prefix + TEST_CUSTOMERS] = float(scores[USERS])
    popularity = window.item_buyers.clip(lower=1)
    for k in ks:
        result[metric_name(COVERAGE, k)] = catalogue_coverage(recommended, window.catalogue_size, k)
        result[metric_name(NOVELTY, k)] = novelty(recommended, popularity, window.history_customers, k)
    return result


def lists_from_frame(recommendations: pd.DataFrame, customer_ids: Sequence[str]) -> list[list[str]]:
    """A `recommend()` frame (rows best first per customer) -> one product list per customer, in order."""
    grouped = recommendations.groupby(CUSTOMER_ID, sort=False)[PRODUCT_ID].agg(list)
    return [list(grouped.get(customer, [])) for customer in customer_ids]


def recommend_lists(model, window: EvaluationWindow, k: int) -> list[list[str]]:
    """The top-k lists of a fitted recommender (anything with `recommend(customer_ids, k=...)` returning a
    frame) for the window's customers; it must be fitted, or refreshed, as of `window.cutoff`."""
    return lists_from_frame(model.recommend(list(window.customer_ids), k=k), window.customer_ids)


def _replenishment_days(products: pd.DataFrame) -> pd.Series:
    if REPLENISHMENT_DAYS not in products.columns:
        return pd.Series(np.nan, index=products.index)
    return pd.to_numeric(products[REPLENISHMENT_DAYS], errors="coerce")
