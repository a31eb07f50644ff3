"""Candidates: the sources' proposals for a batch of customers, one row per (customer, product) with FEATURES.

A row holds each source's score and rank (NaN when the source did not propose the product), the
product's popularity and trend, and the customer's history with the product and its category.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from features.schema import (
    DAYS_SINCE_CATEGORY_PURCHASE,
    DAYS_SINCE_ITEM_PURCHASE,
    IS_REPLENISHABLE,
    ITEM_CATEGORY_SHARE,
    ITEM_PURCHASES_TOTAL,
    ITEM_REPLENISHMENT_DUE_RATIO,
    PRICE_FIT,
    RECENT_SIMILARITY,
    candidate_rank,
    candidate_score,
)
from models.recommender.arrays import lookup_entries, select_rows
from models.recommender.config import CandidateConfig
from models.recommender.sources import (
    SOURCE_BUY_AGAIN,
    SOURCE_CATEGORY_POPULARITY,
    SOURCE_EASE,
    SOURCE_KNN,
    SOURCE_POPULAR,
    SOURCE_RECENT,
    SOURCES,
    propose_buy_again,
    propose_category_popular,
    propose_ease,
    propose_knn,
    propose_popular,
    propose_recent,
    recent_similarity,
)
from models.recommender.stage1 import ITEM_FEATURES, Stage1

FEATURES = (
    *(name for source in SOURCES for name in (candidate_score(source), candidate_rank(source))),
    *ITEM_FEATURES,
    ITEM_CATEGORY_SHARE,
    DAYS_SINCE_CATEGORY_PURCHASE,
    ITEM_PURCHASES_TOTAL,
    DAYS_SINCE_ITEM_PURCHASE,
    ITEM_REPLENISHMENT_DUE_RATIO,
    PRICE_FIT,
    RECENT_SIMILARITY,
)
FEATURE_COLUMN = {name: position for position, name in enumerate(FEATURES)}
_SCORE_COLUMN = {source: FEATURE_COLUMN[candidate_score(source)] for source in SOURCES}
_RANK_COLUMN = {source: FEATURE_COLUMN[candidate_rank(source)] for source in SOURCES}


@dataclass(frozen=True)
class Candidates:
    """Rows sorted by (owner, product); `owner` indexes the customer codes the candidates were built for."""

    owner: np.ndarray
    item: np.ndarray
    features: np.ndarray  # len x FEATURES

    def take(self, mask: np.ndarray) -> Candidates:
        return Candidates(self.owner[mask], self.item[mask], self.features[mask])

    def feature(self, name: str) -> np.ndarray:
        return self.features[:, FEATURE_COLUMN[name]]


def build_candidates(
    stage1: Stage1,
    customers: np.ndarray,
    config: CandidateConfig,
    keep_purchased: bool = False,
    extra_categories: np.ndarray | None = None,
    allowed: np.ndarray | None = None,
) -> Candidates:
    """Candidates and features for known customer codes (see the package docstring).

    Durable products the customer already bought are dropped unless `keep_purchased`, which adds
    every product the customer bought as a `buy_again` candidate. `extra_categories` (codes) add
    the most popular items of those categories for every customer; `allowed` (bool per product)
    makes the `popular` source propose the most popular allowed products, so a query restricted
    by rules still finds enough candidates.
    """
    rows = select_rows(stage1.user_items, customers)
    recent = recent_similarity(stage1, customers, config.recent_half_life)
    proposals = [
        (SOURCE_EASE, *propose_ease(stage1, rows, config.n_per_source)),
        (SOURCE_KNN, *propose_knn(stage1, rows, config.n_per_source)),
        (SOURCE_RECENT, *propose_recent(recent, rows, config.n_per_source)),
        (SOURCE_CATEGORY_POPULARITY, *propose_category_popular(stage1, customers, config, extra_categories)),
        (SOURCE_POPULAR, *propose_popular(stage1, customers, config.n_per_source, allowed)),
        (SOURCE_BUY_AGAIN, *propose_buy_again(stage1, customers, config, keep_purchased)),
    ]
    owner, item, features = _merge_proposals(proposals, stage1.catalogue.size)
    _fill_item_and_customer_features(features, stage1, customers[owner], item)
    features[:, FEATURE_COLUMN[RECENT_SIMILARITY]] = lookup_entries(recent, owner, item)
    candidates = Candidates(owner, item, features)
    if keep_purchased:
        return candidates
    bought_durable = (candidates.feature(ITEM_PURCHASES_TOTAL) > 0) & (candidates.feature(IS_REPLENISHABLE) == 0)
    return candidates.take(~bought_durable)


def _merge_proposals(proposals: list, n_items: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(owner, product code, features): one row per distinct pair, sorted, with each source's score and rank.

    A source that did not propose the pair leaves its two columns NaN.
    """
    keys = np.concatenate([owner * n_items + item for _, owner, item, _, _ in proposals])
    unique_keys, inverse = np.unique(keys, return_inverse=True)
    features = np.full((len(unique_keys), len(FEATURES)), np.nan)
    start = 0
    for source, owner, _, score, rank in proposals:
        rows = inverse[start : start + len(owner)]
        features[rows, _SCORE_COLUMN[source]] = score
        features[rows, _RANK_COLUMN[source]] = rank
        start += len(owner)
    return unique_keys // n_items, unique_keys % n_items, features


def _fill_item_and_customer_features(features: np.ndarray, stage1: Stage1, code: np.ndarray, item: np.ndarray) -> None:
    """Write the product's and the (customer, product) pair's columns of `features` in place."""
    category = stage1.catalogue.category[item]
    for position, name in enumerate(ITEM_FEATURES):
        features[:, FEATURE_COLUMN[name]] = stage1.item_features[item, position]
    pairs, categories = stage1.purchases, stage1.category_pairs
    bought, in_category = pairs.find(code, item), categories.find(code, category)
    features[:, FEATURE_COLUMN[ITEM_PURCHASES_TOTAL]] = pairs.take(bought, ITEM_PURCHASES_TOTAL, 0.0)
    for name in (DAYS_SINCE_ITEM_PURCHASE, ITEM_REPLENISHMENT_DUE_RATIO):
        features[:, FEATURE_COLUMN[name]] = pairs.take(bought, name, np.nan)
    features[:, FEATURE_COLUMN[ITEM_CATEGORY_SHARE]] = categories.take(in_category, ITEM_CATEGORY_SHARE, 0.0)
    features[:, FEATURE_COLUMN[DAYS_SINCE_CATEGORY_PURCHASE]] = categories.take(
        in_category, DAYS_SINCE_CATEGORY_PURCHASE, np.nan
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        features[:, FEATURE_COLUMN[PRICE_FIT]] = np.abs(
            np.log(stage1.catalogue.price[item] / stage1.median_price[code])
        )
