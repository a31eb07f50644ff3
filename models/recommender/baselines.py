"""Baseline recommenders: the same candidates and rules as the two-stage model, ranked by one rule each.

A baseline shares everything with the model but the ranker: the candidate sources (fitted on the
same history), the exclusion rules (what may be recommended again applies to every candidate), the
cold-start list and the reasons. So the race on the test window is fair, and a baseline that wins it
is served as it is. Each rule scores candidate rows (`FEATURES` columns):

- `popularity`: the share of customers who bought the product in the last 90 days;
- `item_knn`: the item-kNN score (cosine over co-purchases), candidates kNN did not propose after;
- `ease`: EASE's rank, candidates EASE did not propose after;
- `buy_again_first`: the customer's own purchases first, most often then most recently bought (the
  "personal top frequency" baseline of next-basket research), then the item-kNN order.

Below the rule's own candidates the rest keep the popularity order, so a list is always full.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from features.schema import (
    DAYS_SINCE_ITEM_PURCHASE,
    ITEM_BUYERS_90D,
    ITEM_PURCHASES_TOTAL,
    candidate_rank,
    candidate_score,
)
from models.recommender.candidates import FEATURE_COLUMN
from models.recommender.sources import SOURCE_EASE, SOURCE_KNN

BASELINE_POPULARITY = "popularity"
BASELINE_ITEM_KNN = "item_knn"
BASELINE_EASE = "ease"
BASELINE_BUY_AGAIN = "buy_again_first"

# Scores are built in bands: a rule's own candidates in a band above the rest, which follow popularity.
_BAND = 10.0


def _column(features: np.ndarray, name: str) -> np.ndarray:
    return features[:, FEATURE_COLUMN[name]]


def _popularity(features: np.ndarray) -> np.ndarray:
    """In [0, 1]: the product's share of buyers in the last 90 days."""
    return np.nan_to_num(_column(features, ITEM_BUYERS_90D), nan=0.0)


def score_by_popularity(features: np.ndarray) -> np.ndarray:
    return _popularity(features)


def score_by_item_knn(features: np.ndarray) -> np.ndarray:
    knn = _column(features, candidate_score(SOURCE_KNN))  # positive where proposed
    return np.where(np.isnan(knn), _popularity(features) - _BAND, knn)


def score_by_ease(features: np.ndarray) -> np.ndarray:
    rank = _column(features, candidate_rank(SOURCE_EASE))  # 1 is best; EASE scores themselves can be negative
    return np.where(np.isnan(rank), _popularity(features) - _BAND, -rank * 1e-4)


def score_by_buy_again(features: np.ndarray) -> np.ndarray:
    bought = np.nan_to_num(_column(features, ITEM_PURCHASES_TOTAL), nan=0.0)
    days_since = np.nan_to_num(_column(features, DAYS_SINCE_ITEM_PURCHASE), nan=0.0)
    # frequency first, recency breaking ties (a day is worth far less than one more purchase)
    own = 2 * _BAND + bought - np.minimum(days_since, 36_500.0) / 36_500.0
    return np.where(bought > 0, own, score_by_item_knn(features))


BASELINE_SCORES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    BASELINE_POPULARITY: score_by_popularity,
    BASELINE_ITEM_KNN: score_by_item_knn,
    BASELINE_EASE: score_by_ease,
    BASELINE_BUY_AGAIN: score_by_buy_again,
}
BASELINES = tuple(BASELINE_SCORES)
