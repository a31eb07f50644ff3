"""Item-based recommenders on hand-built interaction logs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from features.schema import CUSTOMER_ID, PRODUCT_ID, QUANTITY, TIMESTAMP
from models.item_models import (
    EaseRecommender,
    ItemKNNRecommender,
    PopularityRecommender,
    build_interaction_matrix,
)

ITEM_MODELS = [PopularityRecommender, ItemKNNRecommender, EaseRecommender]


def make_transactions(baskets: dict[str, list[str]], quantity: int = 1) -> pd.DataFrame:
    rows = [(user, item) for user, items in baskets.items() for item in items]
    return pd.DataFrame(
        {
            CUSTOMER_ID: [user for user, _ in rows],
            PRODUCT_ID: [item for _, item in rows],
            QUANTITY: quantity,
            TIMESTAMP: pd.Timestamp("2024-01-01"),
        }
    )


# A and B are always bought together; C and D are bought by others, C the most popular item.
TOGETHER = {
    "u1": ["A", "B"],
    "u2": ["A", "B", "C"],
    "u3": ["A", "B"],
    "u4": ["C", "D"],
    "u5": ["C", "D"],
    "u6": ["C"],
    "u7": ["A"],  # has A, not yet B
}


def test_interaction_matrix_is_binary_by_default_and_drops_non_positive_quantities():
    transactions = pd.concat(
        [
            make_transactions({"u1": ["A", "A", "B"], "u2": ["B"]}),
            make_transactions({"u3": ["A"]}, quantity=0),
            make_transactions({"u2": ["C"]}, quantity=-1),
        ]
    )
    built = build_interaction_matrix(transactions)
    assert built.matrix.dtype == np.float32 and sp.isspmatrix_csr(built.matrix)
    assert built.user_ids.tolist() == ["u1", "u2"]
    assert built.item_ids.tolist() == ["A", "B"]
    assert built.matrix.toarray().tolist() == [[1, 1], [0, 1]]
    counted = build_interaction_matrix(transactions, weighting="count")
    assert counted.matrix.toarray().tolist() == [[2, 1], [0, 1]]
    fixed = build_interaction_matrix(transactions, item_ids=["B", "Z"])
    assert fixed.matrix.toarray().tolist() == [[1, 0], [1, 0]]


def test_popularity_orders_items_by_number_of_customers():
    model = PopularityRecommender().fit(make_transactions(TOGETHER))
    items, scores = model.recommend(["u4"], k=4, exclude_seen=False)
    assert items[0].tolist() == ["A", "C", "B", "D"]  # A and C tie at 4 customers: earlier id first
    assert scores[0].tolist() == [4, 4, 3, 2]
    items, _ = model.recommend(["u4"], k=4)
    assert items[0].tolist() == ["A", "B", None, None]


@pytest.mark.parametrize("model", [ItemKNNRecommender(n_neighbours=2), EaseRecommender(l2=1.0)])
def test_item_bought_together_is_recommended_and_seen_items_are_not(model):
    model.fit(make_transactions(TOGETHER))
    items, scores = model.recommend(["u7"], k=2)
    assert items[0, 0] == "B"
    assert "A" not in items[0]
    assert scores[0, 0] > scores[0, 1]
    items, _ = model.recommend(["u7"], k=4, exclude_seen=False)
    assert "A" in items[0]
    assert model.similar_items("A", k=1)[0].tolist() == ["B"]


@pytest.mark.parametrize("model_class", ITEM_MODELS)
def test_recommend_takes_new_user_rows_like_fitted_users(model_class):
    transactions = make_transactions(TOGETHER)
    model = model_class().fit(transactions)
    new_rows = build_interaction_matrix(make_transactions({"new": ["A"]}), item_ids=model.item_ids_).matrix
    by_row = model.recommend(new_rows, k=3)
    by_id = model.recommend(["u7"], k=3)
    assert by_row[0].tolist() == by_id[0].tolist()
    np.testing.assert_allclose(by_row[1], by_id[1])
    with pytest.raises(KeyError, match="unknown user"):
        model.recommend(["nobody"], k=3)


def test_ease_weights_equal_the_closed_form_with_zero_diagonal():
    X = np.array([[1, 1, 0], [1, 0, 1], [0, 1, 1], [1, 1, 1]], dtype=np.float64)
    l2 = 2.0
    model = EaseRecommender(l2=l2).fit(sp.csr_matrix(X))
    # hand-checked: G = X^T X + 2 I = [[5,2,2],[2,5,2],[2,2,5]], P = G^-1 has P_jj = 7/27, P_ij = -2/27
    P = np.linalg.inv(X.T @ X + l2 * np.eye(3))
    np.testing.assert_allclose(np.diag(P), 7 / 27)
    np.testing.assert_allclose(P[0, 1], -2 / 27)
    expected = np.eye(3) - P / np.diag(P)
    np.testing.assert_allclose(np.diag(model.weights_), 0.0)
    np.testing.assert_allclose(model.weights_, expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(model.weights_[0, 1], 2 / 7, rtol=1e-6)
    # scores are the user's row times B
    _, scores = model.recommend(sp.csr_matrix([[1.0, 0.0, 0.0]]), k=2)
    np.testing.assert_allclose(scores[0], [2 / 7, 2 / 7], rtol=1e-6)


def test_ease_refuses_a_catalogue_above_max_items():
    X = sp.csr_matrix(np.eye(5, dtype=np.float32))
    with pytest.raises(ValueError, match="max_items=4"):
        EaseRecommender(max_items=4).fit(X)


def test_knn_keeps_at_most_n_neighbours_and_is_cosine():
    rng = np.random.default_rng(0)
    X = sp.csr_matrix((rng.random((30, 12)) < 0.4).astype(np.float32))
    model = ItemKNNRecommender(n_neighbours=3).fit(X)
    per_item = np.diff(model.similarity_.indptr)
    assert per_item.max() <= 3 and per_item.min() >= 1
    assert model.similarity_.diagonal().sum() == 0
    dense = X.toarray()
    norms = np.linalg.norm(dense, axis=0)
    cosine = (dense.T @ dense) / np.outer(norms, norms)
    np.fill_diagonal(cosine, 0)
    for item in range(12):
        kept = model.similarity_[item].toarray().ravel()
        nonzero = np.nonzero(kept)[0]
        np.testing.assert_allclose(kept[nonzero], cosine[item, nonzero], rtol=1e-5)
        # nothing dropped beats anything kept
        assert np.delete(cosine[item], np.append(nonzero, item)).max() <= kept[nonzero].min() + 1e-6


@pytest.mark.parametrize("model", [ItemKNNRecommender(), EaseRecommender()])
def test_similar_items_of_an_unknown_item_raises(model):
    model.fit(make_transactions(TOGETHER))
    with pytest.raises(KeyError, match="unknown item id 'Z'"):
        model.similar_items("Z")


@pytest.mark.parametrize("model_class", ITEM_MODELS)
def test_recommendations_are_deterministic_and_independent_of_batch_size(model_class):
    rng = np.random.default_rng(1)
    X = sp.csr_matrix((rng.random((50, 20)) < 0.3).astype(np.float32))
    first = model_class().fit(X).recommend(np.arange(50), k=5)
    second = model_class().fit(X.copy()).recommend(np.arange(50), k=5, batch_size=7)
    assert first[0].tolist() == second[0].tolist()
    np.testing.assert_array_equal(first[1], second[1])
    assert first[0].shape == (50, 5)
    # best first, and never an item the user has
    assert (np.diff(first[1], axis=1) <= 0).all()
    seen = X.toarray().astype(bool)
    for user in range(50):
        assert not seen[user, [i for i in first[0][user] if i is not None]].any()


def test_fit_leaves_the_input_frame_unchanged_and_returns_self():
    transactions = make_transactions(TOGETHER)
    before = transactions.copy()
    model = ItemKNNRecommender()
    assert model.fit(transactions) is model
    pd.testing.assert_frame_equal(transactions, before)


def test_ties_go_to_the_earlier_item():
    # ties inside the top 100 (50 items of 5, 50 of 4) and, in the second case, at its cut (items of 3)
    rng = np.random.default_rng(2)
    counts = rng.permutation(np.concatenate([[5] * 50, [4] * 50, rng.integers(0, 4, size=400)]))
    X = sp.csr_matrix((np.arange(6)[:, None] < counts[None, :]).astype(np.float32))
    no_history = sp.csr_matrix((1, 500), dtype=np.float32)
    items, scores = PopularityRecommender().fit(X).recommend(no_history, k=100)
    assert items[0].tolist() == np.argsort(-counts, kind="stable")[:100].tolist()
    assert scores[0].tolist() == sorted(counts, reverse=True)[:100]
    items, _ = PopularityRecommender().fit(X).recommend(no_history, k=120)
    assert items[0].tolist() == np.argsort(-counts, kind="stable")[:120].tolist()
