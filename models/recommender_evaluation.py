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
    """Who is scored, what counts as a hit, and the history's item counts.

    A global time window is [cutoff, cutoff + horizon_days); a per-customer one holds each customer's
    last purchases out (`horizon_days` None), the candidate sources fitted on the histories as of `cutoff`.
    """

    cutoff: pd.Timestamp
    horizon_days: int | None
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
    """The global time window at `cutoff` (see the module docstring for who is in it and what is relevant).

    Raises ValueError when no purchase precedes the cutoff or no customer with history buys in
    the window.
    """
    cutoff = pd.Timestamp(cutoff)
    if horizon_days < 1:
        raise ValueError(f"horizon_days must be positive, got {horizon_days}")
    purchases = _purchases(transactions)
    history = purchases[purchases[TIMESTAMP] < cutoff]
    if history.empty:
        raise ValueError(f"no purchases before the test cutoff {cutoff.date()}")
    end = cutoff + horizon_days * DAY
    future = purchases[(purchases[TIMESTAMP] >= cutoff) & (purchases[TIMESTAMP] < end)]
    if not future[CUSTOMER_ID].isin(history[CUSTOMER_ID]).any():
        raise ValueError(
            f"no customer with earlier purchases buys in the test window {cutoff.date()} + {horizon_days} days"
        )
    return window_from(history, future, products, cutoff, horizon_days)


def split_last_purchases(transactions: pd.DataFrame, share: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(history, held out): each customer's last ceil(`share`) of purchase lines, by (timestamp, product id),
    held out; customers with a single line keep it in the history. Returns are not purchases and stay
    with the history, so a customer's history is everything but their held-out purchases."""
    return _hold_out(transactions, share, lambda lines: [lines[PRODUCT_ID].to_numpy(), lines[TIMESTAMP].to_numpy()])


def split_random_purchases(
    transactions: pd.DataFrame, share: float, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`split_last_purchases` with a seeded random ceil(`share`) of each customer's lines held out instead
    of the last: for a log whose use is filling in what a customer would like, not what comes next."""
    return _hold_out(transactions, share, lambda lines: [np.random.default_rng(seed).random(len(lines))])


HELD_OUT_SPLITS = {"last": split_last_purchases, "random": split_random_purchases}


def _hold_out(transactions: pd.DataFrame, share: float, order_keys) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hold out the last ceil(`share`) of each customer's purchase lines in the order `order_keys(lines)` gives
    (np.lexsort keys, the last key primary) within the customer."""
    if not 0 < share < 1:
        raise ValueError(f"share must be between 0 and 1, got {share}")
    purchase = is_purchase(transactions[QUANTITY]).to_numpy()
    lines = transactions[purchase]
    order = np.lexsort([*order_keys(lines), lines[CUSTOMER_ID].to_numpy()])
    lines = lines.iloc[order]
    position = lines.groupby(CUSTOMER_ID, sort=False).cumcount().to_numpy()
    count = lines.groupby(CUSTOMER_ID, sort=False)[PRODUCT_ID].transform("size").to_numpy()
    held = (count >= 2) & (position >= count - np.ceil(share * count))
    held_out = lines[held]
    history = pd.concat([transactions[~purchase], lines[~held]]).sort_index()
    return history, held_out


def make_held_out_window(
    history: pd.DataFrame, held_out: pd.DataFrame, products: pd.DataFrame, as_of: pd.Timestamp
) -> EvaluationWindow:
    """The per-customer test set: each customer's held-out purchases (`split_last_purchases`) against
    their history, every scorer's candidate sources fitted on the histories as of `as_of`."""
    purchases = _purchases(history)
    if purchases.empty or held_out.empty:
        raise ValueError("no customer has both a history and held-out purchases")
    return window_from(purchases, _purchases(held_out), products, pd.Timestamp(as_of), None)


def window_from(
    history: pd.DataFrame,
    future: pd.DataFrame,
    products: pd.DataFrame,
    cutoff: pd.Timestamp,
    horizon_days: int | None,
) -> EvaluationWindow:
    """Who is scored (customers with a history who buy in `future`) and what counts as a hit."""
    future = future[future[CUSTOMER_ID].isin(history[CUSTOMER_ID])]
    consumables = set(products.loc[_replenishment_days(products) > 0, PRODUCT_ID])
    bought_before = history.groupby(CUSTOMER_ID, sort=False)[PRODUCT_ID].agg(frozenset)
    bought_later = future.groupby(CUSTOMER_ID, sort=True)[PRODUCT_ID].agg(frozenset)
    relevant, buy_again, new_items = [], [], []
    for customer, products_bought in bought_later.items():
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
        customer_ids=tuple(bought_later.index),
        relevant=tuple(relevant),
        buy_again=tuple(buy_again),
        new_items=tuple(new_items),
        item_buyers=item_buyers.astype(np.int64),
        history_customers=int(history[CUSTOMER_ID].nunique()),
        catalogue_size=len(catalogue),
    )


def _purchases(transactions: pd.DataFrame) -> pd.DataFrame:
    return transactions.loc[is_purchase(transactions[QUANTITY]), [CUSTOMER_ID, PRODUCT_ID, TIMESTAMP]]


# ---------------------------------------------------------------------------
# Which protocol: global time windows when buying is spread over time, else per customer.
# ---------------------------------------------------------------------------
TEMPORAL = "temporal"
PER_CUSTOMER = "per_customer"


@dataclass(frozen=True)
class ProtocolChoice:
    protocol: str  # TEMPORAL or PER_CUSTOMER
    reason: str


def choose_protocol(
    transactions: pd.DataFrame, as_of: pd.Timestamp, horizon_days: int, min_customers: int, min_share: float
) -> ProtocolChoice:
    """The validation protocol the data supports, decided from the history before as_of alone.

    Global time windows when the latest complete window [as_of - horizon, as_of) holds at least
    `min_customers` customers who bought before it and buy again in it, and they are at least
    `min_share` of the customers who bought before it (a shop, with customers coming back over
    time). Otherwise per customer: each customer's last purchases are held out (a ratings log where
    most people arrive, rate and leave within days, or a young shop).
    """
    purchases = _purchases(transactions[transactions[TIMESTAMP] < pd.Timestamp(as_of)])
    cutoff = pd.Timestamp(as_of) - horizon_days * DAY
    before = purchases.loc[purchases[TIMESTAMP] < cutoff, CUSTOMER_ID].unique()
    in_window = purchases.loc[purchases[TIMESTAMP] >= cutoff, CUSTOMER_ID]
    returning = int(in_window[in_window.isin(before)].nunique())
    share = returning / max(len(before), 1)
    facts = (
        f"{returning:,} of the {len(before):,} customers who bought before {cutoff.date()} "
        f"({share:.0%}) bought again in the last {horizon_days} days"
    )
    if returning >= min_customers and share >= min_share:
        return ProtocolChoice(TEMPORAL, f"{facts}: enough for a global time window")
    return ProtocolChoice(
        PER_CUSTOMER,
        f"{facts}; a time window needs at least {min_customers:,} and {min_share:.0%}: "
        "each customer's last purchases are held out instead",
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
