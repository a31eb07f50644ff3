"""From candidates to lists: the ranker's scores, the rules, the per-category cap, the cold-start list, the frame."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import pandas as pd

from features.schema import (
    CUSTOMER_ID,
    ITEM_BUYERS_90D,
    ITEM_PURCHASES_TOTAL,
    PRODUCT_ID,
    RECOMMENDATION_RANK,
    RECOMMENDATION_REASON,
    RECOMMENDATION_SCORE,
)
from models.recommender.arrays import rank_in_runs
from models.recommender.candidates import build_candidates
from models.recommender.catalogue import Catalogue
from models.recommender.config import CandidateConfig
from models.recommender.reasons import explain_recommendations
from models.recommender.rules import Rules
from models.recommender.stage1 import Stage1

SMALL_PREDICTION = 20_000  # rows

# (position in the query, product code, score, reason) per recommended row, best first per customer
ListPart = tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]


def rank_known_customers(
    score: Callable[[np.ndarray], np.ndarray],
    config: CandidateConfig,
    stage1: Stage1,
    positions: np.ndarray,
    codes: np.ndarray,
    k: int,
    rules: Rules,
    allowed: np.ndarray,
) -> ListPart:
    """The top k of each known customer (customer `codes`, at `positions` in the query) under the rules,
    ordered by `score` (candidate feature rows -> one number each, higher first)."""
    candidates = build_candidates(
        stage1,
        codes,
        config,
        keep_purchased=not rules.exclude_purchased,
        extra_categories=rules.include_categories,
        allowed=allowed if rules.restricts_items else None,
    )
    keep = allowed[candidates.item]
    if rules.exclude_purchased and not rules.include_restock:
        keep &= candidates.feature(ITEM_PURCHASES_TOTAL) == 0
    candidates = candidates.take(keep)
    scores = score(candidates.features)
    order = np.lexsort((candidates.item, -scores, candidates.owner))
    owner, item, scores = candidates.owner[order], candidates.item[order], scores[order]
    chosen = select_top_per_owner(owner, item, stage1.catalogue.category, k, rules.max_per_category)
    top = candidates.take(order[chosen])
    reasons = explain_recommendations(stage1, codes[top.owner], top)
    return positions[top.owner], top.item, scores[chosen], reasons


def recommend_cold_start(
    stage1: Stage1, positions: np.ndarray, k: int, allowed: np.ndarray, max_per_category: int | None
) -> ListPart:
    """The same popular list, filtered by the rules, for every customer without history."""
    catalogue = stage1.catalogue
    order = stage1.popular_order[allowed[stage1.popular_order]]
    one_owner = np.zeros(len(order), dtype=np.int64)
    chosen = order[select_top_per_owner(one_owner, order, catalogue.category, k, max_per_category)]
    score = stage1.item_feature(ITEM_BUYERS_90D, chosen)
    reasons = stage1.popular_reasons[catalogue.category[chosen]].tolist()
    n = len(positions)
    return np.repeat(positions, len(chosen)), np.tile(chosen, n), np.tile(score, n), reasons * n


def predict_scores(booster: lgb.Booster, features: np.ndarray) -> np.ndarray:
    """The ranker's score per candidate row."""
    if not len(features):
        return np.zeros(0)
    # One thread for small inputs: starting OpenMP threads costs more than the trees (16 ms vs 0.7 ms
    # for 50 rows measured here on a busy machine); one per worker process when customers are sharded.
    alone = multiprocessing.parent_process() is None
    return booster.predict(features, num_threads=0 if alone and len(features) >= SMALL_PREDICTION else 1)


def select_top_per_owner(
    owner: np.ndarray, item: np.ndarray, category: np.ndarray, k: int, max_per_category: int | None
) -> np.ndarray:
    """Positions (into rows sorted by owner, best first) of each owner's top k, capped per category."""
    keep = np.ones(len(owner), dtype=bool)
    if max_per_category is not None and len(owner):
        by_category = np.lexsort((np.arange(len(owner)), category[item], owner))
        rank = np.empty(len(owner), dtype=np.int64)
        group = owner[by_category] * (category.max() + 1) + category[item[by_category]]
        rank[by_category] = rank_in_runs(group)
        keep = rank < max_per_category
    positions = np.flatnonzero(keep)
    return positions[rank_in_runs(owner[positions]) < k]


@dataclass(frozen=True)
class RecommendationLists:
    """The lists as arrays, customers in the order asked, best first: row i is `customer_id[i]`'s
    `rank[i]`-th product. The columns of `build_result_frame` without the frame, whose string
    columns cost more to build than one customer's ranking."""

    customer_id: np.ndarray  # object
    product_id: np.ndarray  # object
    rank: np.ndarray  # int, 1 best
    score: np.ndarray  # float64
    reason: np.ndarray  # object


def build_result_lists(parts: list[ListPart], wanted: list[str], catalogue: Catalogue) -> RecommendationLists:
    """The parts as one `RecommendationLists`: customers in the order of `wanted`, best first."""
    if not parts:
        empty = np.zeros(0, dtype=object)
        return RecommendationLists(empty, empty, np.zeros(0, dtype=np.int64), np.zeros(0), empty)
    position = np.concatenate([part[0] for part in parts])
    item = np.concatenate([part[1] for part in parts])
    score = np.concatenate([part[2] for part in parts]).astype(np.float64)
    reason = np.asarray([r for part in parts for r in part[3]], dtype=object)
    order = np.argsort(position, kind="stable")  # parts are best first within each customer
    position, item, score, reason = position[order], item[order], score[order], reason[order]
    return RecommendationLists(
        customer_id=np.asarray(wanted, dtype=object)[position],
        product_id=catalogue.ids[item],
        rank=rank_in_runs(position) + 1,
        score=score,
        reason=reason,
    )


def build_result_frame(parts: list[ListPart], wanted: list[str], catalogue: Catalogue) -> pd.DataFrame:
    """customer_id, product_id, rank, score, reason: customers in the order of `wanted`, best first."""
    columns = [CUSTOMER_ID, PRODUCT_ID, RECOMMENDATION_RANK, RECOMMENDATION_SCORE, RECOMMENDATION_REASON]
    if not parts:
        return pd.DataFrame({name: pd.Series(dtype=object) for name in columns})
    lists = build_result_lists(parts, wanted, catalogue)
    return pd.DataFrame(
        dict(zip(columns, (lists.customer_id, lists.product_id, lists.rank, lists.score, lists.reason), strict=True))
    )
