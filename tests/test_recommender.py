"""The two-stage recommender on generated data (out-of-time) and on its serving contract."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.labels import make_product_sets
from features.schema import (
    CUSTOMER_ID,
    PRODUCT_ID,
    PRODUCTS_BOUGHT,
    QUANTITY,
    RECOMMENDATION_RANK,
    RECOMMENDATION_REASON,
    RECOMMENDATION_SCORE,
    REPLENISHMENT_DAYS,
    TIMESTAMP,
)
from models.item_models import ItemKNNRecommender, PopularityRecommender, build_interaction_matrix
from models.ranking_metrics import NDCG, evaluate_ranking, metric_key
from models.recommender import REASON_RESTOCK, TwoStageRecommender

HORIZON_DAYS = 30
N_TRAIN_CUTOFFS = 8
NDCG_10 = metric_key(NDCG, 10)
# Measured on the 1,000-customer fixture (test as_of 2025-12-01, 229 evaluated customers):
# ranker 0.562, EASE 0.150, item-kNN 0.136, popularity 0.057 (8 monthly training cutoffs). The margin
# leaves more than half of the measured gain (0.505) as headroom.
MIN_NDCG_GAIN_OVER_POPULARITY = 0.2


@pytest.fixture(scope="module")
def test_as_of(generated_data) -> pd.Timestamp:
    return generated_data.end.normalize() + pd.Timedelta(days=1) - 31 * pd.Timedelta(days=1)


@pytest.fixture(scope="module")
def train_cutoffs(test_as_of) -> list[pd.Timestamp]:
    return [test_as_of - i * HORIZON_DAYS * pd.Timedelta(days=1) for i in range(1, N_TRAIN_CUTOFFS + 1)]


@pytest.fixture(scope="module")
def fitted(generated_data, train_cutoffs) -> TwoStageRecommender:
    return TwoStageRecommender().fit(
        generated_data.transactions, generated_data.products, train_cutoffs, horizon_days=HORIZON_DAYS
    )


@pytest.fixture(scope="module")
def test_window(generated_data, test_as_of):
    """Customers with history and a purchase in the test window, with their relevant items.

    Relevant: products bought in [as_of, as_of + 30 days), minus durables already bought before as_of.
    """
    transactions, products = generated_data.transactions, generated_data.products
    history = transactions[(transactions[TIMESTAMP] < test_as_of) & (transactions[QUANTITY] > 0)]
    consumables = set(products.loc[products[REPLENISHMENT_DAYS] > 0, PRODUCT_ID])
    bought_before = history.groupby(CUSTOMER_ID)[PRODUCT_ID].agg(set)
    labels = make_product_sets(transactions, test_as_of, HORIZON_DAYS)
    labels = labels[labels[CUSTOMER_ID].isin(bought_before.index)]
    relevant = [
        {p for p in products_bought if p in consumables or p not in bought_before[customer]}
        for customer, products_bought in zip(labels[CUSTOMER_ID], labels[PRODUCTS_BOUGHT], strict=True)
    ]
    return history, labels[CUSTOMER_ID].tolist(), relevant


def _lists(recommendations: pd.DataFrame, customers: list[str]) -> list[list[str]]:
    grouped = recommendations.groupby(CUSTOMER_ID)[PRODUCT_ID].agg(list)
    return [grouped.get(customer, []) for customer in customers]


def _bought_before(recommendations: pd.DataFrame, bought: pd.Series) -> list[bool]:
    pairs = zip(recommendations[CUSTOMER_ID], recommendations[PRODUCT_ID], strict=True)
    return [product in bought[customer] for customer, product in pairs]


def _baseline_ndcg(model, history, products, customers, relevant) -> float:
    built = build_interaction_matrix(history, item_ids=np.sort(products[PRODUCT_ID].astype(object)))
    model.fit(built.matrix, built.user_ids, built.item_ids)
    items, _ = model.recommend(built.matrix[pd.Index(built.user_ids).get_indexer(customers)], k=10)
    lists = [[item for item in row if item is not None] for row in items]
    return evaluate_ranking(lists, relevant, (10,))[NDCG_10]


def test_ranker_beats_popularity_widely_and_matches_item_knn(generated_data, fitted, test_as_of, test_window):
    history, customers, relevant = test_window
    assert fitted.as_of_ == test_as_of
    assert sum(1 for items in relevant if items) > 100  # enough customers for the comparison to mean something
    ranker = evaluate_ranking(_lists(fitted.recommend(customers, k=10), customers), relevant, (10,))[NDCG_10]
    popularity = _baseline_ndcg(PopularityRecommender(), history, generated_data.products, customers, relevant)
    knn = _baseline_ndcg(ItemKNNRecommender(n_neighbours=50), history, generated_data.products, customers, relevant)
    assert ranker >= popularity + MIN_NDCG_GAIN_OVER_POPULARITY, (ranker, popularity)
    assert ranker >= knn, (ranker, knn)


def test_recommend_excludes_purchased_items_when_asked(generated_data, fitted, test_window):
    history, customers, _ = test_window
    customers = customers[:50]
    bought = history.groupby(CUSTOMER_ID)[PRODUCT_ID].agg(set)

    strict = fitted.recommend(customers, k=10, exclude_purchased=True, include_restock=False)
    assert not any(_bought_before(strict, bought))

    with_restock = fitted.recommend(customers, k=10, exclude_purchased=True)
    repeated = _bought_before(with_restock, bought)
    assert any(repeated)  # consumables come back when due...
    assert (with_restock.loc[repeated, RECOMMENDATION_REASON] == REASON_RESTOCK).all()  # ...and only as restocks

    everything = fitted.recommend(customers, k=10, exclude_purchased=False)
    assert any(_bought_before(everything, bought))


def test_unknown_customer_gets_popular_items(fitted, test_window):
    history, customers, _ = test_window
    recent = history[history[TIMESTAMP] >= fitted.as_of_ - 90 * pd.Timedelta(days=1)]
    most_bought = recent.groupby(PRODUCT_ID)[CUSTOMER_ID].nunique().sort_values(ascending=False)

    recommendations = fitted.recommend(["nobody-knows-me", customers[0]], k=5)
    cold = recommendations[recommendations[CUSTOMER_ID] == "nobody-knows-me"]
    assert cold[RECOMMENDATION_RANK].tolist() == [1, 2, 3, 4, 5]
    assert set(cold[PRODUCT_ID]) <= set(most_bought.index[:10])
    assert cold[RECOMMENDATION_REASON].str.startswith("popular in ").all()
    assert recommendations[CUSTOMER_ID].iloc[0] == "nobody-knows-me"  # customers come back in the order asked


def test_every_item_has_a_reason_and_lists_are_ranked(fitted, test_window):
    _, customers, _ = test_window
    recommendations = fitted.recommend(customers, k=10)
    reasons = recommendations[RECOMMENDATION_REASON]
    assert reasons.map(lambda reason: isinstance(reason, str) and len(reason) > 0).all()
    assert recommendations.groupby(CUSTOMER_ID).size().max() <= 10
    assert not recommendations.duplicated([CUSTOMER_ID, PRODUCT_ID]).any()
    for _, rows in recommendations.groupby(CUSTOMER_ID):
        assert rows[RECOMMENDATION_RANK].tolist() == list(range(1, len(rows) + 1))
        assert rows[RECOMMENDATION_SCORE].is_monotonic_decreasing


def test_same_inputs_give_the_same_lists(generated_data, fitted, train_cutoffs, test_window):
    _, customers, _ = test_window
    again = TwoStageRecommender().fit(
        generated_data.transactions, generated_data.products, train_cutoffs, horizon_days=HORIZON_DAYS
    )
    pd.testing.assert_frame_equal(fitted.recommend(customers, k=10), again.recommend(customers, k=10))


def test_fit_without_any_label_window_raises(generated_data):
    with pytest.raises(ValueError):
        TwoStageRecommender().fit(
            generated_data.transactions, generated_data.products, [pd.Timestamp("2030-01-01")], horizon_days=30
        )
