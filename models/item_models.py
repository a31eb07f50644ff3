"""Item-based top-k recommenders: popularity, item-kNN (cosine) and EASE.

They serve as candidate sources and baselines for the two-stage recommender. All three share
one interface (scikit-learn style: nothing happens in `__init__`, `fit` returns `self`,
fitted attributes end in `_`):

- `fit(interactions)` takes a transactions frame (contract columns from `features.schema`) or
  a user x item sparse matrix;
- `recommend(users, k, exclude_seen=True)` returns `(items, scores)`, two `(n_users, k)` arrays,
  best first, computed for batches of users at a time so memory stays bounded;
- `similar_items(item_id, k)` (item-kNN and EASE) returns the k items most tied to one item.

Interactions are binary: a (customer, product) pair with positive total quantity counts once,
however often it was bought (`build_interaction_matrix(weighting="count")` sums quantities
instead). Pure code, no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd
import scipy.sparse as sp

from features.schema import CUSTOMER_ID, PRODUCT_ID, QUANTITY, is_purchase

WEIGHTINGS = ("binary", "count")
DEFAULT_BATCH_SIZE = 1024


class Interactions(NamedTuple):
    """A user x item matrix and the ids of its rows and columns."""

    matrix: sp.csr_matrix  # float32, shape (len(user_ids), len(item_ids))
    user_ids: np.ndarray  # object array, row i is user_ids[i]
    item_ids: np.ndarray  # object array, column j is item_ids[j]


def build_interaction_matrix(
    transactions: pd.DataFrame,
    weighting: str = "binary",
    item_ids: Sequence | None = None,
) -> Interactions:
    """User x item CSR matrix (float32) from transactions with positive quantity.

    Rows are the customers with at least one positive-quantity line, columns the products, both
    sorted by id. `weighting="binary"` puts 1 for every (customer, product) pair bought at least
    once; `"count"` puts the pair's total quantity. With `item_ids` the columns are exactly those
    ids, in that order, and lines for other products are dropped (use it to score new history
    against a fitted model's catalogue). The input frame is not modified.
    """
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
    missing = [c for c in (CUSTOMER_ID, PRODUCT_ID, QUANTITY) if c not in transactions.columns]
    if missing:
        raise ValueError(f"transactions lack columns {missing}")
    positive = transactions.loc[is_purchase(transactions[QUANTITY]), [CUSTOMER_ID, PRODUCT_ID, QUANTITY]]
    if item_ids is not None:
        items = pd.Index(np.asarray(item_ids, dtype=object))
        if not items.is_unique:
            raise ValueError("item_ids must be unique")
        positive = positive[positive[PRODUCT_ID].isin(items)]
    else:
        items = pd.Index(np.sort(positive[PRODUCT_ID].unique().astype(object)))
    pairs = positive.groupby([CUSTOMER_ID, PRODUCT_ID], sort=True)[QUANTITY].sum()
    users = pd.Index(np.sort(pairs.index.get_level_values(0).unique().astype(object)))
    rows = users.get_indexer(pairs.index.get_level_values(0))
    cols = items.get_indexer(pairs.index.get_level_values(1))
    values = np.ones(len(pairs), dtype=np.float32) if weighting == "binary" else pairs.to_numpy(np.float32)
    matrix = sp.csr_matrix((values, (rows, cols)), shape=(len(users), len(items)), dtype=np.float32)
    return Interactions(matrix, users.to_numpy(dtype=object), items.to_numpy(dtype=object))


class _ItemRecommender:
    """Shared fitting input, id lookup and batched top-k selection."""

    def fit(self, interactions, user_ids: Sequence | None = None, item_ids: Sequence | None = None):
        """Fit on a transactions frame, or on a user x item sparse matrix with optional row/column ids.

        Matrix ids default to 0..n-1. Returns self.
        """
        if isinstance(interactions, pd.DataFrame):
            built = build_interaction_matrix(interactions)
            matrix, user_ids, item_ids = built.matrix, built.user_ids, built.item_ids
        else:
            matrix = sp.csr_matrix(interactions, dtype=np.float32)
            user_ids = np.arange(matrix.shape[0]) if user_ids is None else user_ids
            item_ids = np.arange(matrix.shape[1]) if item_ids is None else item_ids
        self.user_ids_ = np.asarray(user_ids, dtype=object)
        self.item_ids_ = np.asarray(item_ids, dtype=object)
        if self.user_ids_.shape != (matrix.shape[0],) or self.item_ids_.shape != (matrix.shape[1],):
            raise ValueError(f"ids do not match the matrix shape {matrix.shape}")
        if matrix.shape[1] == 0:
            raise ValueError("no items to fit on")
        self.user_index_ = pd.Index(self.user_ids_)
        self.item_index_ = pd.Index(self.item_ids_)
        if not (self.user_index_.is_unique and self.item_index_.is_unique):
            raise ValueError("user and item ids must be unique")
        self.user_items_ = matrix
        self._fit_matrix(matrix)
        return self

    def _fit_matrix(self, matrix: sp.csr_matrix) -> None:
        raise NotImplementedError

    def _score(self, rows: sp.csr_matrix) -> np.ndarray:
        """Dense (n_rows, n_items) float32 scores for a batch of user rows."""
        raise NotImplementedError

    def recommend(self, users, k: int = 10, exclude_seen: bool = True, batch_size: int = DEFAULT_BATCH_SIZE):
        """Top-k items for each user, best first: `(items, scores)`, both of shape (n_users, k').

        `users` is either a sparse matrix of user rows over `item_ids_` (history the model was not
        fitted on, e.g. built with `build_interaction_matrix(..., item_ids=model.item_ids_)`) or a
        sequence of fitted user ids (unknown ids raise KeyError). k' = min(k, n_items). With
        `exclude_seen`, items in a user's row are never returned; a user with fewer than k'
        eligible items gets None with score -inf in the remaining slots. Ties go to the item
        earlier in `item_ids_`, so results are deterministic.
        """
        if k < 1:
            raise ValueError(f"k must be positive, got {k}")
        rows = self._user_rows(users)
        k = min(k, len(self.item_ids_))
        items = np.empty((rows.shape[0], k), dtype=object)
        scores = np.empty((rows.shape[0], k), dtype=np.float32)
        for start in range(0, rows.shape[0], batch_size):
            batch = rows[start : start + batch_size]
            batch_scores = np.asarray(self._score(batch), dtype=np.float32)
            if exclude_seen:
                seen_rows, seen_cols = batch.nonzero()
                batch_scores[seen_rows, seen_cols] = -np.inf
            top, top_scores = top_k(batch_scores, k)
            items[start : start + batch_size] = np.where(np.isneginf(top_scores), None, self.item_ids_[top])
            scores[start : start + batch_size] = top_scores
        return items, scores

    def _user_rows(self, users) -> sp.csr_matrix:
        if sp.issparse(users):
            rows = sp.csr_matrix(users, dtype=np.float32)
            if rows.shape[1] != len(self.item_ids_):
                raise ValueError(f"user rows have {rows.shape[1]} columns, the model has {len(self.item_ids_)} items")
            return rows
        wanted = np.asarray(users, dtype=object).ravel()
        positions = self.user_index_.get_indexer(wanted)
        if (positions < 0).any():
            unknown = wanted[positions < 0]
            raise KeyError(f"{len(unknown)} unknown user id(s), e.g. {unknown[:3].tolist()}; pass their rows instead")
        return self.user_items_[positions]

    def _item_position(self, item_id) -> int:
        position = self.item_index_.get_indexer([item_id])[0]
        if position < 0:
            raise KeyError(f"unknown item id {item_id!r}")
        return position

    def _top_related(self, weights: np.ndarray, position: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        weights = np.asarray(weights, dtype=np.float32).copy()
        weights[position] = -np.inf
        top, top_scores = top_k(weights[None, :], min(k, len(weights) - 1))
        keep = top_scores[0] > 0
        return self.item_ids_[top[0][keep]], top_scores[0][keep]


class PopularityRecommender(_ItemRecommender):
    """Everyone gets the items bought by the most customers (a baseline and a cold-start fallback)."""

    def _fit_matrix(self, matrix: sp.csr_matrix) -> None:
        self.popularity_ = np.asarray((matrix > 0).sum(axis=0), dtype=np.float32).ravel()

    def _score(self, rows: sp.csr_matrix) -> np.ndarray:
        return np.broadcast_to(self.popularity_, (rows.shape[0], len(self.popularity_))).copy()


class ItemKNNRecommender(_ItemRecommender):
    """Item-kNN: cosine similarity between item columns, each item keeps its n most similar items.

    `similarity_[j]` holds item j's neighbours (at most `n_neighbours`, positive similarity,
    never itself); a user's score for j is the sum of similarities between j and the user's items
    among those neighbours (user row times `similarity_.T`).
    """

    def __init__(self, n_neighbours: int = 100):
        self.n_neighbours = n_neighbours

    def _fit_matrix(self, matrix: sp.csr_matrix) -> None:
        if self.n_neighbours < 1:
            raise ValueError(f"n_neighbours must be positive, got {self.n_neighbours}")
        norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=0), dtype=np.float64).ravel())
        inverse = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
        normalised = (matrix @ sp.diags(inverse.astype(np.float32))).tocsc()
        cosine = (normalised.T @ normalised).tocsr()
        cosine.sort_indices()  # entries in (row, column) order: ties below go to the lower column
        n_items = matrix.shape[1]
        n_keep = min(self.n_neighbours, n_items - 1)
        row = np.repeat(np.arange(n_items), np.diff(cosine.indptr))
        keep = (cosine.indices != row) & (cosine.data > 0)
        row, col, value = row[keep], cosine.indices[keep], cosine.data[keep]
        # Each item's n_keep largest similarities from the sparse entries (a dense row per item and a
        # partition over the whole catalogue cost a minute at 50,000 items): one float sort on the
        # row plus the value's distance from the largest, scaled into [0, 1).
        span = float(value.max() - value.min()) if len(value) else 0.0
        key = row + (0.999 * (value.max() - value) / span if span > 0 else 0.0)
        order = np.argsort(key, kind="stable")
        row, col, value = row[order], col[order], value[order]
        first = np.searchsorted(row, row, side="left")
        selected = (np.arange(len(row)) - first) < n_keep
        self.similarity_ = sp.csr_matrix(
            (value[selected].astype(np.float32), (row[selected], col[selected])), shape=(n_items, n_items)
        )

    def _score(self, rows: sp.csr_matrix) -> np.ndarray:
        return (rows @ self.similarity_.T).toarray()

    def similar_items(self, item_id, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """The item's most similar neighbours (at most k, positive similarity), best first: (ids, cosine)."""
        position = self._item_position(item_id)
        return self._top_related(self.similarity_[position].toarray().ravel(), position, k)


class EaseRecommender(_ItemRecommender):
    """EASE (Steck 2019): a dense item x item linear model with zero diagonal, in closed form.

    With G = X^T X + l2 * I and P = G^-1, `weights_` = B = I - P / diag(P) (column j divided by
    P_jj), so diag(B) = 0; a user's scores are their row times B. The dense inverse costs
    O(n_items^3) time and 8 * n_items^2 bytes: fitting more than `max_items` items raises.
    """

    def __init__(self, l2: float = 500.0, max_items: int = 20_000):
        self.l2 = l2
        self.max_items = max_items

    def _fit_matrix(self, matrix: sp.csr_matrix) -> None:
        n_items = matrix.shape[1]
        if n_items > self.max_items:
            raise ValueError(
                f"EASE needs a dense {n_items} x {n_items} matrix; that is above max_items={self.max_items}. "
                "Restrict the catalogue (e.g. to popular items) or raise max_items."
            )
        if self.l2 <= 0:
            raise ValueError(f"l2 must be positive, got {self.l2}")
        gram = (matrix.T @ matrix).toarray().astype(np.float64)
        gram[np.diag_indices(n_items)] += self.l2
        precision = np.linalg.inv(gram)
        weights = -precision / np.diag(precision)[None, :]
        weights[np.diag_indices(n_items)] = 0.0
        self.weights_ = weights.astype(np.float32)

    def _score(self, rows: sp.csr_matrix) -> np.ndarray:
        return np.asarray(rows @ self.weights_)

    def similar_items(self, item_id, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Items whose score rises most when a user has `item_id` (row of B; positive weights only): (ids, weights)."""
        position = self._item_position(item_id)
        return self._top_related(self.weights_[position], position, k)


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Column positions and values of each row's k largest scores, best first (ties: lower position first)."""
    n_cols = scores.shape[1]
    if k < n_cols:
        candidates = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        # argpartition picks arbitrarily among scores tied at the cut: rank those rows fully, by (-score, column)
        threshold = np.take_along_axis(scores, candidates, axis=1).min(axis=1, keepdims=True)
        tied = np.nonzero(np.sum(scores >= threshold, axis=1) > k)[0]
        if len(tied):
            candidates[tied] = np.argsort(-scores[tied], axis=1, kind="stable")[:, :k]
    else:
        candidates = np.broadcast_to(np.arange(n_cols), scores.shape)
    values = np.take_along_axis(scores, candidates, axis=1)
    order = np.lexsort((candidates, -values))
    top = np.take_along_axis(candidates, order, axis=1)
    return top, np.take_along_axis(values, order, axis=1)
