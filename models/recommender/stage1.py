"""Stage 1: the candidate sources' models fitted on the purchases before a cutoff, and the per-customer tables.

`fit_stage1` fits EASE and item-kNN, ranks products by popularity (overall and per category) and
builds the (customer, product) and (customer, category) tables the candidates' features look up.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from features.records import day_of, median_by_group
from features.schema import (
    DAYS_SINCE_CATEGORY_PURCHASE,
    DAYS_SINCE_ITEM_PURCHASE,
    IS_REPLENISHABLE,
    ITEM_BUYERS_90D,
    ITEM_BUYERS_TOTAL,
    ITEM_CATEGORY_SHARE,
    ITEM_PURCHASES_TOTAL,
    ITEM_REPLENISHMENT_DUE_RATIO,
    ITEM_TREND,
)
from models.item_models import EaseRecommender, ItemKNNRecommender
from models.recommender.arrays import append, count_and_max_by_key, expand_ranges, locate, prepend, rank_in_runs
from models.recommender.catalogue import Catalogue, Lines, code_lines
from models.recommender.config import CandidateConfig
from models.recommender.reasons import REASON_BOUGHT_TOGETHER, REASON_POPULAR

ITEM_FEATURES = (ITEM_BUYERS_TOTAL, ITEM_BUYERS_90D, ITEM_TREND, IS_REPLENISHABLE)  # columns of item_features
FEW_CUSTOMERS = 16


@dataclass(frozen=True)
class PairTable:
    """Statistics per (customer, key) pair, sorted by `key = customer * width + column`."""

    width: int
    keys: np.ndarray
    values: dict[str, np.ndarray]

    def lookup(self, customers: np.ndarray, columns: np.ndarray, name: str, missing: float) -> np.ndarray:
        return self.take(self.find(customers, columns), name, missing)

    def find(self, customers: np.ndarray, columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(whether each (customer, column) pair is in the table, its position where it is): found once,
        taken for several statistics by `take`."""
        wanted = customers * self.width + columns
        position = np.searchsorted(self.keys, wanted)
        found = position < len(self.keys)
        found[found] = self.keys[position[found]] == wanted[found]
        return found, position

    def take(self, where: tuple[np.ndarray, np.ndarray], name: str, missing: float) -> np.ndarray:
        """The statistic `name` at pairs `find` located, `missing` where a pair is absent."""
        found, position = where
        out = np.full(len(found), missing, dtype=np.float64)
        out[found] = self.values[name][position[found]]
        return out

    def rows_of(self, customers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(owner, position): every pair of each given customer; owner indexes into `customers`."""
        starts = np.searchsorted(self.keys, customers * self.width)
        ends = np.searchsorted(self.keys, (customers + 1) * self.width)
        if len(customers) == 1:  # a request: one run of positions, without expand_ranges' bookkeeping
            return np.zeros(max(ends[0] - starts[0], 0), dtype=np.int64), np.arange(starts[0], max(ends[0], starts[0]))
        return expand_ranges(starts, ends)

    def subset(self, customers: np.ndarray) -> PairTable:
        """Only these customers' pairs: lookups for a batch then search a small table, not millions of keys."""
        _, positions = self.rows_of(np.unique(customers))
        return PairTable(self.width, self.keys[positions], {name: v[positions] for name, v in self.values.items()})

    def column(self, positions: np.ndarray) -> np.ndarray:
        return self.keys[positions] % self.width


@dataclass(frozen=True)
class Stage1:
    """Candidate sources fitted on the purchases before `as_of`, plus the lookups their features need."""

    as_of: pd.Timestamp
    catalogue: Catalogue
    customers: pd.Index  # every customer id of the coded lines; only `known` ones had purchases before as_of
    known: np.ndarray  # bool per customer code
    user_items: sp.csr_matrix  # customers x products, 1 where bought before as_of
    ease: EaseRecommender | None
    ease_items: np.ndarray  # product code of each EASE column
    knn: ItemKNNRecommender
    neighbours_t: sp.csr_matrix  # knn.similarity_ transposed: user rows @ it give kNN scores
    item_features: np.ndarray  # products x ITEM_FEATURES
    popular_order: np.ndarray  # product codes, most popular first (the whole catalogue)
    category_top: np.ndarray  # categories x n_per_category product codes, -1 padded
    category_top_score: np.ndarray  # same shape: the products' popularity
    purchases: PairTable  # (customer, product): purchases, days since, due ratio
    category_pairs: PairTable  # (customer, category): share of lines, days since
    median_price: np.ndarray  # per customer, NaN without prices
    together_reasons: np.ndarray  # "bought together with <product>" per product code
    popular_reasons: np.ndarray  # "popular in <category>" per category code

    def for_customer(self, transactions: pd.DataFrame, as_of: pd.Timestamp) -> Stage1:
        """This stage 1 with its customer tables rebuilt from one customer's `transactions` before `as_of`.

        The item side (EASE, kNN, popularity, categories) is shared, not copied.
        """
        return self.for_lines(code_lines(transactions, self.catalogue), as_of)

    def for_lines(self, lines: Lines, as_of: pd.Timestamp) -> Stage1:
        """`for_customer` from the customers' lines already coded against this catalogue."""
        now = day_of(as_of)
        before = lines.day < now
        customer, item, day = lines.customer[before], lines.item[before], lines.day[before]
        n_customers = len(lines.customers)
        user_items = _build_bought_matrix(customer, item, n_customers, self.catalogue.size)
        return dataclasses.replace(
            self,
            as_of=as_of,
            customers=lines.customers,
            known=np.diff(user_items.indptr) > 0,
            user_items=user_items,
            purchases=_build_purchase_pairs(customer, item, day, now, self.catalogue),
            category_pairs=_build_category_pairs(
                customer, self.catalogue.category[item], day, now, len(self.catalogue.categories)
            ),
            median_price=_compute_median_price(customer, lines.unit_price[before], n_customers),
        )

    def restricted_to(self, codes: np.ndarray) -> Stage1:
        """This stage 1 with the per-customer tables cut to the given customer codes (a scoring batch)."""
        if len(np.unique(codes)) == len(self.customers):  # every customer (one customer's own stage 1): nothing to cut
            return self
        return dataclasses.replace(
            self, purchases=self.purchases.subset(codes), category_pairs=self.category_pairs.subset(codes)
        )

    def codes_of(self, customer_ids: Sequence[str]) -> np.ndarray:
        """Customer codes of known customers, -1 for anyone without purchases before as_of."""
        if len(customer_ids) <= FEW_CUSTOMERS:  # a hash lookup each; get_indexer builds an Index first
            codes = np.asarray([locate(self.customers, c) for c in customer_ids], dtype=np.int64)
        else:
            codes = self.customers.get_indexer(np.asarray(customer_ids, dtype=object))
        known = codes >= 0
        known[known] = self.known[codes[known]]
        return np.where(known, codes, -1)

    def item_feature(self, name: str, items: np.ndarray) -> np.ndarray:
        """One column of ITEM_FEATURES for the given product codes."""
        return self.item_features[items, ITEM_FEATURES.index(name)]


def fit_stage1(lines: Lines, catalogue: Catalogue, as_of: pd.Timestamp, config: CandidateConfig) -> Stage1:
    """Fit every candidate source on the coded lines strictly before `as_of`."""
    as_of = pd.Timestamp(as_of)
    now = day_of(as_of)
    before = lines.day < now
    if not before.any():
        raise ValueError(f"no purchases before {as_of.date()}")
    customer, item, day = lines.customer[before], lines.item[before], lines.day[before]
    user_items = _build_bought_matrix(customer, item, len(lines.customers), catalogue.size)
    known = np.diff(user_items.indptr) > 0
    purchases = _build_purchase_pairs(customer, item, day, now, catalogue)
    item_features = _measure_items(purchases, catalogue, int(known.sum()), config)
    buyers_total = item_features[:, ITEM_FEATURES.index(ITEM_BUYERS_TOTAL)]
    buyers_recent = item_features[:, ITEM_FEATURES.index(ITEM_BUYERS_90D)]
    popular_order = np.lexsort((np.arange(catalogue.size), -buyers_total, -buyers_recent))
    category_top, category_top_score = _build_category_top(
        popular_order, catalogue, buyers_recent + 1e-3 * buyers_total, config.n_per_category
    )
    ease_items, ease, knn = _fit_item_models(user_items, popular_order, config)
    return Stage1(
        as_of=as_of,
        catalogue=catalogue,
        customers=lines.customers,
        known=known,
        user_items=user_items,
        ease=ease,
        ease_items=ease_items,
        knn=knn,
        neighbours_t=knn.similarity_.T.tocsr(),
        item_features=item_features,
        popular_order=popular_order,
        category_top=category_top,
        category_top_score=category_top_score,
        purchases=purchases,
        category_pairs=_build_category_pairs(customer, catalogue.category[item], day, now, len(catalogue.categories)),
        median_price=_compute_median_price(customer, lines.unit_price[before], len(lines.customers)),
        together_reasons=np.asarray([REASON_BOUGHT_TOGETHER.format(product=p) for p in catalogue.ids], dtype=object),
        popular_reasons=np.asarray([REASON_POPULAR.format(category=c) for c in catalogue.categories], dtype=object),
    )


def _measure_items(purchases: PairTable, catalogue: Catalogue, n_known: int, config: CandidateConfig) -> np.ndarray:
    """Products x ITEM_FEATURES: share of known customers who bought it (ever, recently), trend, replenishable."""
    n_items = catalogue.size
    days_since = purchases.values[DAYS_SINCE_ITEM_PURCHASE]
    bought_item = purchases.column(np.arange(len(purchases.keys)))
    buyers_total = np.bincount(bought_item, minlength=n_items) / max(n_known, 1)
    buyers_recent = np.bincount(bought_item[days_since <= config.popularity_days], minlength=n_items) / max(n_known, 1)
    buyers_trend = np.bincount(bought_item[days_since <= config.trend_days], minlength=n_items) / max(n_known, 1)
    expected_share = buyers_recent * config.trend_days / config.popularity_days  # if buying were steady
    trend = buyers_trend / np.maximum(expected_share, 1.0 / max(n_known, 1))
    return np.column_stack([buyers_total, buyers_recent, trend, catalogue.is_replenishable])


def _fit_item_models(
    user_items: sp.csr_matrix, popular_order: np.ndarray, config: CandidateConfig
) -> tuple[np.ndarray, EaseRecommender | None, ItemKNNRecommender]:
    """(EASE's product codes, EASE or None, item-kNN): EASE on the most popular products, kNN on all."""
    ease_items = np.sort(popular_order[: config.ease_max_items])
    ease = None
    if len(ease_items) > 1:
        ease = EaseRecommender(l2=config.ease_l2, max_items=config.ease_max_items).fit(
            user_items[:, ease_items], item_ids=ease_items
        )
    knn = ItemKNNRecommender(n_neighbours=config.knn_neighbours).fit(
        user_items, item_ids=np.arange(user_items.shape[1])
    )
    return ease_items, ease, knn


def _build_bought_matrix(customer: np.ndarray, item: np.ndarray, n_customers: int, n_items: int) -> sp.csr_matrix:
    """Customers x products, 1 where the customer bought the product; lines sorted by (customer, item)
    as `Lines` keeps them, so each row's columns come out sorted and once each without scipy's
    duplicate summing (a third of stage 1 for one customer)."""
    pair = prepend(True, (customer[1:] != customer[:-1]) | (item[1:] != item[:-1])) if len(item) else item.astype(bool)
    index_type = np.int32 if max(n_customers, n_items, len(item)) < np.iinfo(np.int32).max else np.int64
    indptr = prepend(0, np.cumsum(np.bincount(customer[pair], minlength=n_customers))).astype(index_type)
    indices = item[pair].astype(index_type)
    return sp.csr_matrix((np.ones(len(indices), dtype=np.float32), indices, indptr), shape=(n_customers, n_items))


def _build_purchase_pairs(
    customer: np.ndarray, item: np.ndarray, day: np.ndarray, now: float, catalogue: Catalogue
) -> PairTable:
    """Per (customer, product) bought: times bought, days since the last time, and the due ratio.

    The due ratio is days since the last purchase over the customer's own median gap between
    purchases of the product (gaps under a day are ignored), or over the product's
    replenishment_days when there is no such gap; it is NaN for durable products. Lines arrive
    sorted by (customer, item, day).
    """
    n_items = catalogue.size
    keys = customer * n_items + item
    if not len(keys):
        empty = np.zeros(0)
        names = (ITEM_PURCHASES_TOTAL, DAYS_SINCE_ITEM_PURCHASE, ITEM_REPLENISHMENT_DUE_RATIO)
        return PairTable(n_items, keys.astype(np.int64), dict.fromkeys(names, empty))
    last = append(keys[1:] != keys[:-1], True)
    first = prepend(True, keys[:-1] != keys[1:])
    pair_keys = keys[last]
    group = np.cumsum(first) - 1
    counts = np.bincount(group).astype(np.float64)
    days_since = now - day[last]
    gaps = prepend(np.nan, np.diff(day))
    gaps[first | (gaps < 1)] = np.nan
    median_gap = median_by_group(group, gaps, len(pair_keys))
    nominal = catalogue.replenishment_days[pair_keys % n_items]
    cycle = np.where(np.isnan(median_gap), nominal, median_gap)
    with np.errstate(divide="ignore", invalid="ignore"):
        due = np.where(nominal > 0, days_since / cycle, np.nan)
    return PairTable(
        n_items,
        pair_keys,
        {ITEM_PURCHASES_TOTAL: counts, DAYS_SINCE_ITEM_PURCHASE: days_since, ITEM_REPLENISHMENT_DUE_RATIO: due},
    )


def _build_category_pairs(
    customer: np.ndarray, category: np.ndarray, day: np.ndarray, now: float, n_categories: int
) -> PairTable:
    """Per (customer, category): the share of the customer's lines in it and days since the last one."""
    pair_keys, lines, last_day = count_and_max_by_key(customer * n_categories + category, day)
    per_customer = np.bincount(customer).astype(np.float64)
    return PairTable(
        n_categories,
        pair_keys,
        {
            ITEM_CATEGORY_SHARE: lines / per_customer[pair_keys // n_categories],
            DAYS_SINCE_CATEGORY_PURCHASE: now - last_day,
        },
    )


def _compute_median_price(customer: np.ndarray, unit_price: np.ndarray, n_customers: int) -> np.ndarray:
    """Per customer code: the median positive unit price they paid, NaN without one."""
    return median_by_group(customer, np.where(unit_price > 0, unit_price, np.nan), n_customers)


def _build_category_top(
    popular_order: np.ndarray, catalogue: Catalogue, popularity: np.ndarray, n_per_category: int
) -> tuple[np.ndarray, np.ndarray]:
    """(categories x n_per_category product codes, -1 padded; their popularity): each category's most popular."""
    by_category = popular_order[np.argsort(catalogue.category[popular_order], kind="stable")]
    category = catalogue.category[by_category]
    rank = rank_in_runs(category)
    keep = rank < n_per_category
    top = np.full((len(catalogue.categories), n_per_category), -1, dtype=np.int64)
    score = np.zeros(top.shape)
    top[category[keep], rank[keep]] = by_category[keep]
    score[category[keep], rank[keep]] = popularity[by_category[keep]]
    return top, score
