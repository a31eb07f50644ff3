"""Why a product is on a list: the reason wording and the rule that picks one per recommended row."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from features.schema import DAYS_SINCE_ITEM_PURCHASE, IS_REPLENISHABLE, ITEM_PURCHASES_TOTAL, candidate_score
from models.recommender.arrays import expand_ranges, prepend
from models.recommender.sources import SIMILARITY_SOURCES, SOURCE_CATEGORY_POPULARITY

if TYPE_CHECKING:  # annotations only: stage1 imports this module for the wording it precomputes
    from models.recommender.candidates import Candidates
    from models.recommender.stage1 import Stage1

REASON_RESTOCK = "time to restock"
REASON_BOUGHT_BEFORE = "bought before"
REASON_SIMILAR_CUSTOMERS = "customers like you"
REASON_BOUGHT_TOGETHER = "bought together with {product}"
REASON_POPULAR = "popular in {category}"


def explain_recommendations(stage1: Stage1, codes: np.ndarray, top: Candidates) -> list[str]:
    """A short reason per recommended row: restock, bought together with X, popular in a category, or similar customers.

    "Bought together with X" names the customer's past product with the highest item-kNN
    similarity to the recommended one.
    """
    if not len(codes):
        return []
    catalogue = stage1.catalogue
    anchor = _find_strongest_bought_neighbour(stage1, codes, top.item)
    similar = np.zeros(len(codes), dtype=bool)
    for source in SIMILARITY_SOURCES:
        similar |= ~np.isnan(top.feature(candidate_score(source)))
    from_category = ~np.isnan(top.feature(candidate_score(SOURCE_CATEGORY_POPULARITY)))
    bought = top.feature(ITEM_PURCHASES_TOTAL) > 0
    replenishable = top.feature(IS_REPLENISHABLE) > 0
    together = similar & (anchor >= 0)
    rules = [(bought & replenishable, REASON_RESTOCK), (bought, REASON_BOUGHT_BEFORE), (together, "")]
    rules.append((similar & ~from_category, REASON_SIMILAR_CUSTOMERS))
    reasons = np.full(len(codes), "", dtype=object)
    for applies, reason in reversed(rules):  # the first rule that applies wins: written last
        reasons[applies] = reason
    reasons[together & ~bought] = stage1.together_reasons[anchor[together & ~bought]]
    popular = ~bought & ~together & ~(similar & ~from_category)
    reasons[popular] = stage1.popular_reasons[catalogue.category[top.item[popular]]]
    return reasons.tolist()


def _find_strongest_bought_neighbour(stage1: Stage1, codes: np.ndarray, items: np.ndarray) -> np.ndarray:
    """Per (customer, item): the customer's past product most similar to the item (kNN), or -1."""
    similarity = stage1.knn.similarity_
    row, position = expand_ranges(similarity.indptr[items], similarity.indptr[items + 1])
    neighbour = similarity.indices[position].astype(np.int64)
    bought = ~np.isnan(stage1.purchases.lookup(codes[row], neighbour, DAYS_SINCE_ITEM_PURCHASE, np.nan))
    row, neighbour, weight = row[bought], neighbour[bought], similarity.data[position][bought]
    order = np.lexsort((neighbour, -weight, row))
    first = order[prepend(True, row[order][1:] != row[order][:-1])] if len(order) else order
    anchor = np.full(len(items), -1, dtype=np.int64)
    anchor[row[first]] = neighbour[first]
    return anchor
