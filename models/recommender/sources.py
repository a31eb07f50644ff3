"""The six stage-1 candidate sources: what each proposes for a batch of known customers.

Each `propose_*` returns (owner, product code, score, rank), rank 1 best, where owner indexes the
batch's customers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from features.schema import (
    DAYS_SINCE_ITEM_PURCHASE,
    ITEM_BUYERS_90D,
    ITEM_CATEGORY_SHARE,
    ITEM_PURCHASES_TOTAL,
    ITEM_REPLENISHMENT_DUE_RATIO,
)
from models.item_models import top_k
from models.recommender.arrays import (
    find_nth_largest_per_row,
    get_entry_rows,
    prepend,
    rank_in_runs,
    select_columns,
)

if TYPE_CHECKING:  # annotations only: stage1 imports the reasons, which import these source names
    from models.recommender.config import CandidateConfig
    from models.recommender.stage1 import Stage1

SOURCE_EASE = "ease"
SOURCE_KNN = "knn"
SOURCE_RECENT = "recent"
SOURCE_CATEGORY_POPULARITY = "category_popularity"
SOURCE_POPULAR = "popular"
SOURCE_BUY_AGAIN = "buy_again"
SOURCES = (SOURCE_EASE, SOURCE_KNN, SOURCE_RECENT, SOURCE_CATEGORY_POPULARITY, SOURCE_POPULAR, SOURCE_BUY_AGAIN)
SIMILARITY_SOURCES = (SOURCE_EASE, SOURCE_KNN, SOURCE_RECENT)

SMALL_PRODUCT = 50_000  # stored scores of a user rows x neighbours product

Proposals = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # owner, product code, score, rank


def propose_ease(stage1: Stage1, rows: sp.csr_matrix, n: int) -> Proposals:
    """The top n EASE scores of each user row, never a product the customer already has."""
    if stage1.ease is None:
        return _rank_proposals(*(np.zeros(0, dtype=np.int64),) * 2, np.zeros(0))
    if len(stage1.ease_items) < stage1.catalogue.size:  # EASE covers the most popular products only
        rows = select_columns(rows, stage1.ease_items)
    scores = np.asarray(rows @ stage1.ease.weights_, dtype=np.float32)
    scores[get_entry_rows(rows), rows.indices] = -np.inf  # never what the customer already has
    top, top_scores = top_k(scores, min(n, scores.shape[1]))
    owner = np.repeat(np.arange(rows.shape[0]), top.shape[1])
    valid = np.isfinite(top_scores.ravel())
    rank = np.tile(np.arange(1.0, top.shape[1] + 1), rows.shape[0])
    items, scores = stage1.ease_items[top.ravel()[valid]], top_scores.ravel()[valid].astype(np.float64)
    return owner[valid], items, scores, rank[valid]


def propose_knn(stage1: Stage1, rows: sp.csr_matrix, n: int) -> Proposals:
    """Positive kNN scores only, from the sparse product (no dense row over the whole catalogue)."""
    return _top_unowned(rows @ stage1.neighbours_t, rows, n)


def recent_similarity(stage1: Stage1, customers: np.ndarray, half_life: float) -> sp.csr_matrix:
    """customers x products: item-kNN similarity to each customer's purchases, the latest weighing most.

    A product the customer bought weighs 0.5 ** (k / half_life), k the number of distinct products
    they bought more recently (ties by product code): what someone wants next follows what they
    just bought more than what they bought years ago. Sorted indices, positive entries only.
    """
    pairs = stage1.purchases
    owner, position = pairs.rows_of(customers)
    days_since = pairs.values[DAYS_SINCE_ITEM_PURCHASE][position]
    item = pairs.column(position)
    order = np.lexsort((item, days_since, owner))  # by owner, latest first: a CSR row per customer
    owner, item = owner[order], item[order]
    weight = 0.5 ** (rank_in_runs(owner) / half_life)
    neighbours = stage1.knn.similarity_
    # the dtypes of the neighbours: a mismatch makes scipy convert the whole item matrix on every call
    index_type = neighbours.indices.dtype
    indptr = prepend(0, np.cumsum(np.bincount(owner, minlength=len(customers)))).astype(index_type)
    weighted = sp.csr_matrix(
        (weight.astype(neighbours.dtype), item.astype(index_type), indptr),
        shape=(len(customers), stage1.catalogue.size),
        copy=False,
    )
    # each purchase's own nearest neighbours: ~knn_neighbours entries per purchase, cheap at any catalogue size
    similarity = weighted @ neighbours
    similarity.data[similarity.data < 0] = 0.0
    similarity.eliminate_zeros()
    similarity.sort_indices()
    return similarity


def propose_recent(similarity: sp.csr_matrix, rows: sp.csr_matrix, n: int) -> Proposals:
    """The top n of `recent_similarity`, never a product the customer already has."""
    return _top_unowned(similarity if similarity.shape[0] == 1 else similarity.copy(), rows, n)


def _top_unowned(scores: sp.csr_matrix, rows: sp.csr_matrix, n: int) -> Proposals:
    """The n best positive `scores` per row that are not in the customer's `rows` (modified in place
    for more than one row)."""
    if scores.shape[0] == 1:  # one customer (a request): their stored scores read, not rewritten
        return _top_unowned_of_one(scores, rows, n)
    if scores.nnz < SMALL_PRODUCT:  # a few customers: drop what each has by key
        owner, item = get_entry_rows(scores), scores.indices.astype(np.int64)
        n_items = scores.shape[1]
        seen = np.isin(owner * n_items + item, get_entry_rows(rows) * n_items + rows.indices)
        scores.data[seen] = 0.0
    else:  # a batch: the elementwise product finds what they have without sorting a million keys
        scores = (scores - scores.multiply(rows)).tocsr()
    scores.data[scores.data < 0] = 0.0
    scores.eliminate_zeros()
    owner, item, score = get_entry_rows(scores), scores.indices.astype(np.int64), scores.data.astype(np.float64)
    keep = score >= find_nth_largest_per_row(scores, n)[owner]
    return _rank_proposals(owner[keep], item[keep], score[keep], n)


def _top_unowned_of_one(scores: sp.csr_matrix, rows: sp.csr_matrix, n: int) -> Proposals:
    """`_top_unowned` of one row: what they own as a mask over the catalogue; what the batch path
    zeroes (owned, negative) and then drops is left out instead."""
    owned = np.zeros(scores.shape[1], dtype=bool)
    owned[rows.indices] = True
    kept = ~owned[scores.indices] & ~(scores.data < 0) & (scores.data != 0)
    item, score = scores.indices[kept].astype(np.int64), scores.data[kept]
    threshold = -np.partition(-score, n - 1)[n - 1] if len(score) > n else -np.inf  # find_nth_largest_per_row
    best = score >= threshold
    return _rank_proposals(np.zeros(int(best.sum()), dtype=np.int64), item[best], score[best].astype(np.float64), n)


def propose_category_popular(
    stage1: Stage1, customers: np.ndarray, config: CandidateConfig, extra: np.ndarray | None
) -> Proposals:
    """The most popular products of each customer's top categories and of the `extra` category codes.

    Scored by the customer's share of purchases in the category times the product's popularity.
    """
    pairs = stage1.category_pairs
    owner, position = pairs.rows_of(customers)
    category = pairs.column(position)
    share = pairs.values[ITEM_CATEGORY_SHARE][position]
    owner, category, share, _ = _rank_proposals(owner, category, share, config.n_top_categories)
    if extra is not None and len(extra):
        extra_owner = np.repeat(np.arange(len(customers)), len(extra))
        extra_category = np.tile(extra, len(customers))
        extra_share = pairs.lookup(customers[extra_owner], extra_category, ITEM_CATEGORY_SHARE, 0.0)
        key = np.concatenate([owner, extra_owner]) * pairs.width + np.concatenate([category, extra_category])
        _, first = np.unique(key, return_index=True)
        owner = np.concatenate([owner, extra_owner])[first]
        category = np.concatenate([category, extra_category])[first]
        share = np.concatenate([share, extra_share])[first]
    items = stage1.category_top[category]  # pairs x n_per_category
    scores = share[:, None] * stage1.category_top_score[category]
    owner = np.repeat(owner, items.shape[1])
    items, scores = items.ravel(), scores.ravel()
    valid = items >= 0
    return _rank_proposals(owner[valid], items[valid], scores[valid])


def propose_popular(stage1: Stage1, customers: np.ndarray, n: int, allowed: np.ndarray | None) -> Proposals:
    """The same n most popular (allowed) products for every customer, scored by their recent buyers."""
    order = stage1.popular_order if allowed is None else stage1.popular_order[allowed[stage1.popular_order]]
    top = order[:n]
    score = stage1.item_feature(ITEM_BUYERS_90D, top)
    return (
        np.repeat(np.arange(len(customers)), len(top)),
        np.tile(top, len(customers)),
        np.tile(score, len(customers)),
        np.tile(np.arange(1.0, len(top) + 1), len(customers)),
    )


def propose_buy_again(
    stage1: Stage1, customers: np.ndarray, config: CandidateConfig, keep_purchased: bool
) -> Proposals:
    """Consumables the customer bought whose cycle is at least `due_ratio_min` over (everything bought if kept)."""
    pairs = stage1.purchases
    owner, position = pairs.rows_of(customers)
    due = pairs.values[ITEM_REPLENISHMENT_DUE_RATIO][position]
    if not keep_purchased:
        is_due = due >= config.due_ratio_min
        owner, position, due = owner[is_due], position[is_due], due[is_due]
    # durable items (no due ratio) rank after the consumables, most often bought first
    score = np.where(np.isnan(due), -1.0 / (1.0 + pairs.values[ITEM_PURCHASES_TOTAL][position]), due)
    return _rank_proposals(owner, pairs.column(position), score)


def _rank_proposals(owner: np.ndarray, item: np.ndarray, score: np.ndarray, n: int | None = None) -> Proposals:
    """Sort by (owner, -score, item), rank within owner, keep the first n of each."""
    order = np.lexsort((item, -score, owner))
    owner, item, score = owner[order], item[order], score[order]
    rank = rank_in_runs(owner)
    keep = rank < n if n is not None else np.ones(len(rank), dtype=bool)
    return owner[keep], item[keep], score[keep], rank[keep] + 1.0
