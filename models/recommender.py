"""The two-stage recommender: candidate sources, then a LightGBM lambdarank ranker over their features.

Stage 1 (candidates), fitted on the purchases strictly before a cutoff `as_of`:
- `ease`: the top items of an `EaseRecommender` over the `ease_max_items` most bought products
  (EASE keeps a dense item x item matrix, so it covers the catalogue only while that fits);
- `knn`: the top items of an `ItemKNNRecommender` (cosine over co-purchases) on the whole catalogue;
- `category_popularity`: the most bought items of the customer's top categories (and of any
  category a query asks for), scored by the customer's share of purchases in the category times
  the item's popularity;
- `popular`: the overall most popular items of the last 90 days (also the cold-start answer);
- `buy_again`: replenishable products the customer bought whose cycle is at least half over.
Durable products the customer already bought are never candidates (unless `recommend` is asked
to keep purchased items): the label window counts only new durables and any consumable.

Stage 2 (ranker): one row per (customer, candidate) with each source's score and rank (empty
when the source did not propose the item), the item's popularity and trend, the customer's share
of purchases in the item's category and days since they last bought it, how often and how long
ago the customer bought the item, its replenishment due ratio, and how far its price is from what
the customer usually pays. It is trained with objective `lambdarank`, one group per (cutoff,
customer), on the products `make_product_pairs` says were bought in [cutoff, cutoff + horizon).

Everything after the fit runs on integer codes and numpy arrays (ids are factorised once per
fit, customers and products sorted by id), so one customer's top 10 takes a few milliseconds and
a million customers go through in batches.

Serving time: `fit` refits stage 1 once more on every purchase before
`as_of_ = max(as_of_cutoffs) + horizon_days`, the end of the last label window (the ranker has
seen nothing after it); `refresh_candidates` moves stage 1 to a later moment without touching
the ranker. Pure code, no I/O.
"""

from __future__ import annotations

import copy
import dataclasses
import multiprocessing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import pandas as pd
import scipy.sparse as sp
from tqdm import tqdm

from features.labels import make_product_pairs
from features.schema import (
    CATEGORY,
    CUSTOMER_ID,
    DAYS_SINCE_CATEGORY_PURCHASE,
    DAYS_SINCE_ITEM_PURCHASE,
    IS_REPLENISHABLE,
    ITEM_BUYERS_90D,
    ITEM_BUYERS_TOTAL,
    ITEM_CATEGORY_SHARE,
    ITEM_PURCHASES_TOTAL,
    ITEM_REPLENISHMENT_DUE_RATIO,
    ITEM_TREND,
    PRICE,
    PRICE_FIT,
    PRODUCT_ID,
    QUANTITY,
    RECOMMENDATION_RANK,
    RECOMMENDATION_REASON,
    RECOMMENDATION_SCORE,
    REPLENISHMENT_DAYS,
    TIMESTAMP,
    UNIT_PRICE,
    candidate_rank,
    candidate_score,
)
from models.item_models import EaseRecommender, ItemKNNRecommender, top_k

SOURCE_EASE = "ease"
SOURCE_KNN = "knn"
SOURCE_CATEGORY_POPULARITY = "category_popularity"
SOURCE_POPULAR = "popular"
SOURCE_BUY_AGAIN = "buy_again"
SOURCES = (SOURCE_EASE, SOURCE_KNN, SOURCE_CATEGORY_POPULARITY, SOURCE_POPULAR, SOURCE_BUY_AGAIN)
SIMILARITY_SOURCES = (SOURCE_EASE, SOURCE_KNN)

REASON_RESTOCK = "time to restock"
REASON_BOUGHT_BEFORE = "bought before"
REASON_SIMILAR_CUSTOMERS = "customers like you"
REASON_BOUGHT_TOGETHER = "bought together with {product}"
REASON_POPULAR = "popular in {category}"
SIMILARITY = "similarity"  # the score column of similar_items / bought_together

ITEM_FEATURES = (ITEM_BUYERS_TOTAL, ITEM_BUYERS_90D, ITEM_TREND, IS_REPLENISHABLE)
FEATURES = (
    *(name for source in SOURCES for name in (candidate_score(source), candidate_rank(source))),
    *ITEM_FEATURES,
    ITEM_CATEGORY_SHARE,
    DAYS_SINCE_CATEGORY_PURCHASE,
    ITEM_PURCHASES_TOTAL,
    DAYS_SINCE_ITEM_PURCHASE,
    ITEM_REPLENISHMENT_DUE_RATIO,
    PRICE_FIT,
)
_COLUMN = {name: position for position, name in enumerate(FEATURES)}
_SCORE_COLUMN = {source: _COLUMN[candidate_score(source)] for source in SOURCES}
_RANK_COLUMN = {source: _COLUMN[candidate_rank(source)] for source in SOURCES}

DAY = pd.Timedelta(days=1)
EPOCH = pd.Timestamp("1970-01-01")
SMALL_PREDICTION = 20_000  # rows
FEW_CUSTOMERS = 16
SMALL_PRODUCT = 50_000  # stored scores of a user rows x neighbours product


@dataclass(frozen=True)
class CandidateConfig:
    """How many candidates each source proposes, and the stage-1 model settings."""

    n_per_source: int = 30
    n_top_categories: int = 3
    n_per_category: int = 10
    due_ratio_min: float = 0.5  # a consumable becomes a buy-again candidate at half its cycle
    popularity_days: int = 90
    trend_days: int = 30
    ease_l2: float = 200.0
    ease_max_items: int = 3_000  # the dense EASE inverse costs O(n^3): 3,000 items ~10 s, 5,000 ~45 s here
    knn_neighbours: int = 50
    batch_size: int = 1024  # customers scored together; bounds memory of the dense EASE scores


@dataclass(frozen=True)
class RankerConfig:
    """LightGBM lambdarank settings (one thread and `deterministic` so a fit is reproducible)."""

    n_estimators: int = 60  # prediction time grows with the trees: a million customers x ~70 candidates
    learning_rate: float = 0.08
    num_leaves: int = 7
    min_child_samples: int = 20
    seed: int = 0
    # customers drawn (seeded) per training cutoff: enough groups for a stable ranker, bounded fit time
    max_customers_per_cutoff: int = 5_000


# ---------------------------------------------------------------------------
# Catalogue and purchase lines as integer codes.
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Catalogue:
    """Products sorted by id; position in this order is the product's code everywhere below."""

    index: pd.Index  # product ids (object dtype: lookups of one id stay in numpy)
    ids: np.ndarray  # the same ids as an object array
    category: np.ndarray  # int code per product into `categories`
    categories: np.ndarray  # sorted category names
    replenishment_days: np.ndarray  # float, NaN for durables
    price: np.ndarray  # float, NaN when unknown

    @property
    def size(self) -> int:
        return len(self.index)

    @property
    def is_replenishable(self) -> np.ndarray:
        return (self.replenishment_days > 0).astype(np.float64)

    def category_codes(self, names: Iterable[str] | None) -> np.ndarray | None:
        """Codes of the given category names; unknown names raise ValueError naming them."""
        if names is None:
            return None
        names = list(dict.fromkeys(names))
        codes = pd.Index(self.categories, dtype=object).get_indexer(names)
        unknown = [name for name, code in zip(names, codes, strict=True) if code < 0]
        if unknown:
            raise ValueError(f"unknown categor{'y' if len(unknown) == 1 else 'ies'} {', '.join(map(repr, unknown))}")
        return codes


def build_catalogue(products: pd.DataFrame) -> Catalogue:
    ordered = products.assign(**{PRODUCT_ID: products[PRODUCT_ID].astype(object)}).sort_values(PRODUCT_ID)
    index = pd.Index(ordered[PRODUCT_ID].to_numpy(dtype=object), dtype=object, name=PRODUCT_ID)
    if not index.is_unique:
        raise ValueError("products has duplicate product ids")
    category_codes, categories = pd.factorize(ordered[CATEGORY].astype(object).fillna(""), sort=True)
    return Catalogue(
        index=index,
        ids=index.to_numpy(),
        category=category_codes.astype(np.int64),
        categories=np.asarray(categories, dtype=object),
        replenishment_days=_float_column(ordered, REPLENISHMENT_DAYS),
        price=_float_column(ordered, PRICE),
    )


@dataclass(frozen=True)
class Lines:
    """Positive-quantity purchase lines of catalogue products as codes, sorted by (customer, item, day)."""

    customers: pd.Index  # customer ids, sorted; position is the customer's code
    customer: np.ndarray  # int64 code per line
    item: np.ndarray  # int64 product code per line
    day: np.ndarray  # float64 days since 1970-01-01
    unit_price: np.ndarray  # float64, NaN when unknown


def code_lines(transactions: pd.DataFrame, catalogue: Catalogue) -> Lines:
    bought = transactions[transactions[QUANTITY] > 0]
    # Factorise the id columns as they are (Arrow strings factorise in C; converting 20 million ids to
    # Python objects first took minutes) and map only the distinct product ids to catalogue codes.
    product_codes, product_ids = pd.factorize(bought[PRODUCT_ID])
    item = catalogue.index.get_indexer(np.asarray(product_ids, dtype=object))[product_codes]
    in_catalogue = item >= 0
    bought, item = bought[in_catalogue], item[in_catalogue]
    customer_codes, customers = pd.factorize(bought[CUSTOMER_ID], sort=True)
    day = _days(bought[TIMESTAMP])
    order = np.lexsort((day, customer_codes.astype(np.int64) * catalogue.size + item))
    return Lines(
        customers=pd.Index(np.asarray(customers, dtype=object), dtype=object, name=CUSTOMER_ID),
        customer=customer_codes[order].astype(np.int64),
        item=item[order].astype(np.int64),
        day=day[order],
        unit_price=_float_column(bought, UNIT_PRICE)[order],
    )


# ---------------------------------------------------------------------------
# Stage 1.
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class PairTable:
    """Statistics per (customer, key) pair, sorted by `key = customer * width + column`."""

    width: int
    keys: np.ndarray
    values: dict[str, np.ndarray]

    def lookup(self, customers: np.ndarray, columns: np.ndarray, name: str, missing: float) -> np.ndarray:
        wanted = customers * self.width + columns
        position = np.searchsorted(self.keys, wanted)
        found = position < len(self.keys)
        found[found] = self.keys[position[found]] == wanted[found]
        out = np.full(len(wanted), missing, dtype=np.float64)
        out[found] = self.values[name][position[found]]
        return out

    def rows_of(self, customers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(owner, position): every pair of each given customer; owner indexes into `customers`."""
        starts = np.searchsorted(self.keys, customers * self.width)
        ends = np.searchsorted(self.keys, (customers + 1) * self.width)
        return _expand_ranges(starts, ends)

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
        lines = code_lines(transactions, self.catalogue)
        now = _days(pd.Series([as_of]))[0]
        before = lines.day < now
        customer, item, day = lines.customer[before], lines.item[before], lines.day[before]
        n_customers = len(lines.customers)
        user_items = _bought_matrix(customer, item, n_customers, self.catalogue.size)
        return dataclasses.replace(
            self,
            as_of=as_of,
            customers=lines.customers,
            known=np.diff(user_items.indptr) > 0,
            user_items=user_items,
            purchases=_purchase_pairs(customer, item, day, now, self.catalogue),
            category_pairs=_category_pairs(
                customer, self.catalogue.category[item], day, now, len(self.catalogue.categories)
            ),
            median_price=_median_price(customer, lines.unit_price[before], n_customers),
        )

    def restricted_to(self, codes: np.ndarray) -> Stage1:
        """This stage 1 with the per-customer tables cut to the given customer codes (a scoring batch)."""
        return dataclasses.replace(
            self, purchases=self.purchases.subset(codes), category_pairs=self.category_pairs.subset(codes)
        )

    def codes_of(self, customer_ids: Sequence[str]) -> np.ndarray:
        """Customer codes of known customers, -1 for anyone without purchases before as_of."""
        if len(customer_ids) <= FEW_CUSTOMERS:  # a hash lookup each; get_indexer builds an Index first
            codes = np.asarray([_position_or_minus_one(self.customers, c) for c in customer_ids], dtype=np.int64)
        else:
            codes = self.customers.get_indexer(np.asarray(customer_ids, dtype=object))
        known = codes >= 0
        known[known] = self.known[codes[known]]
        return np.where(known, codes, -1)


def fit_stage1(lines: Lines, catalogue: Catalogue, as_of: pd.Timestamp, config: CandidateConfig) -> Stage1:
    """Fit every candidate source on the coded lines strictly before `as_of`."""
    as_of = pd.Timestamp(as_of)
    now = _days(pd.Series([as_of]))[0]
    before = lines.day < now
    if not before.any():
        raise ValueError(f"no purchases before {as_of.date()}")
    customer, item, day = lines.customer[before], lines.item[before], lines.day[before]
    n_customers, n_items = len(lines.customers), catalogue.size

    user_items = _bought_matrix(customer, item, n_customers, n_items)
    known = np.diff(user_items.indptr) > 0
    n_known = int(known.sum())

    purchases = _purchase_pairs(customer, item, day, now, catalogue)
    days_since = purchases.values[DAYS_SINCE_ITEM_PURCHASE]
    bought_item = purchases.column(np.arange(len(purchases.keys)))
    buyers_total = np.bincount(bought_item, minlength=n_items) / max(n_known, 1)
    buyers_recent = np.bincount(bought_item[days_since <= config.popularity_days], minlength=n_items) / max(n_known, 1)
    buyers_trend = np.bincount(bought_item[days_since <= config.trend_days], minlength=n_items) / max(n_known, 1)
    expected_share = buyers_recent * config.trend_days / config.popularity_days  # if buying were steady
    trend = buyers_trend / np.maximum(expected_share, 1.0 / max(n_known, 1))
    item_features = np.column_stack([buyers_total, buyers_recent, trend, catalogue.is_replenishable])

    popular_order = np.lexsort((np.arange(n_items), -buyers_total, -buyers_recent))
    category_top, category_top_score = _category_top(
        popular_order, catalogue, buyers_recent + 1e-3 * buyers_total, config.n_per_category
    )

    ease_items = np.sort(popular_order[: config.ease_max_items])
    ease = None
    if len(ease_items) > 1:
        ease = EaseRecommender(l2=config.ease_l2, max_items=config.ease_max_items).fit(
            user_items[:, ease_items], item_ids=ease_items
        )
    knn = ItemKNNRecommender(n_neighbours=config.knn_neighbours).fit(user_items, item_ids=np.arange(n_items))

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
        category_pairs=_category_pairs(customer, catalogue.category[item], day, now, len(catalogue.categories)),
        median_price=_median_price(customer, lines.unit_price[before], n_customers),
        together_reasons=np.asarray([REASON_BOUGHT_TOGETHER.format(product=p) for p in catalogue.ids], dtype=object),
        popular_reasons=np.asarray([REASON_POPULAR.format(category=c) for c in catalogue.categories], dtype=object),
    )


# ---------------------------------------------------------------------------
# Candidates: (owner, product code) pairs with the ranker's feature matrix.
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Candidates:
    """Rows sorted by (owner, product); `owner` indexes the customer codes the candidates were built for."""

    owner: np.ndarray
    item: np.ndarray
    features: np.ndarray  # len x FEATURES

    def take(self, mask: np.ndarray) -> Candidates:
        return Candidates(self.owner[mask], self.item[mask], self.features[mask])

    def feature(self, name: str) -> np.ndarray:
        return self.features[:, _COLUMN[name]]


def build_candidates(
    stage1: Stage1,
    customers: np.ndarray,
    config: CandidateConfig,
    keep_purchased: bool = False,
    extra_categories: np.ndarray | None = None,
    allowed: np.ndarray | None = None,
) -> Candidates:
    """Candidates and features for known customer codes (see the module docstring).

    Durable products the customer already bought are dropped unless `keep_purchased`, which adds
    every product the customer bought as a `buy_again` candidate. `extra_categories` (codes) add
    the most popular items of those categories for every customer; `allowed` (bool per product)
    makes the `popular` source propose the most popular allowed products, so a query restricted
    by rules still finds enough candidates.
    """
    n_items = stage1.catalogue.size
    rows = _csr_rows(stage1.user_items, customers)
    proposals = [
        (SOURCE_EASE, *_ease_candidates(stage1, rows, config.n_per_source)),
        (SOURCE_KNN, *_knn_candidates(stage1, rows, config.n_per_source)),
        (SOURCE_CATEGORY_POPULARITY, *_category_candidates(stage1, customers, config, extra_categories)),
        (SOURCE_POPULAR, *_popular_candidates(stage1, customers, config.n_per_source, allowed)),
        (SOURCE_BUY_AGAIN, *_buy_again_candidates(stage1, customers, config, keep_purchased)),
    ]
    keys = np.concatenate([owner * n_items + item for _, owner, item, _, _ in proposals])
    unique_keys, inverse = np.unique(keys, return_inverse=True)
    features = np.full((len(unique_keys), len(FEATURES)), np.nan)
    start = 0
    for source, owner, _, score, rank in proposals:
        rows = inverse[start : start + len(owner)]
        features[rows, _SCORE_COLUMN[source]] = score
        features[rows, _RANK_COLUMN[source]] = rank
        start += len(owner)
    owner, item = unique_keys // n_items, unique_keys % n_items
    code = customers[owner]
    category = stage1.catalogue.category[item]

    for position, name in enumerate(ITEM_FEATURES):
        features[:, _COLUMN[name]] = stage1.item_features[item, position]
    pairs, categories = stage1.purchases, stage1.category_pairs
    features[:, _COLUMN[ITEM_PURCHASES_TOTAL]] = pairs.lookup(code, item, ITEM_PURCHASES_TOTAL, 0.0)
    for name in (DAYS_SINCE_ITEM_PURCHASE, ITEM_REPLENISHMENT_DUE_RATIO):
        features[:, _COLUMN[name]] = pairs.lookup(code, item, name, np.nan)
    features[:, _COLUMN[ITEM_CATEGORY_SHARE]] = categories.lookup(code, category, ITEM_CATEGORY_SHARE, 0.0)
    features[:, _COLUMN[DAYS_SINCE_CATEGORY_PURCHASE]] = categories.lookup(
        code, category, DAYS_SINCE_CATEGORY_PURCHASE, np.nan
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        features[:, _COLUMN[PRICE_FIT]] = np.abs(np.log(stage1.catalogue.price[item] / stage1.median_price[code]))

    candidates = Candidates(owner, item, features)
    if keep_purchased:
        return candidates
    bought_durable = (candidates.feature(ITEM_PURCHASES_TOTAL) > 0) & (candidates.feature(IS_REPLENISHABLE) == 0)
    return candidates.take(~bought_durable)


# ---------------------------------------------------------------------------
# The model.
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Rules:
    """Query-time business rules (category and product codes, already resolved)."""

    exclude_purchased: bool = True
    include_restock: bool = True
    include_categories: np.ndarray | None = None
    exclude_categories: np.ndarray | None = None
    exclude_items: np.ndarray | None = None
    max_per_category: int | None = None

    @property
    def restricts_items(self) -> bool:
        return any(x is not None for x in (self.include_categories, self.exclude_categories, self.exclude_items))

    def allowed_items(self, catalogue: Catalogue) -> np.ndarray:
        """Bool per product code: may this product be shown at all?"""
        allowed = np.ones(catalogue.size, dtype=bool)
        if self.include_categories is not None:
            allowed &= np.isin(catalogue.category, self.include_categories)
        if self.exclude_categories is not None:
            allowed &= ~np.isin(catalogue.category, self.exclude_categories)
        if self.exclude_items is not None:
            allowed[self.exclude_items] = False
        return allowed


class TwoStageRecommender:
    """Candidates from several sources, ranked by a LightGBM lambdarank model (see the module docstring).

    Fitted attributes: `ranker_` (LGBMRanker), `stage1_` (candidate sources as of `as_of_`),
    `as_of_`, `horizon_days_`, `feature_names_`, `training_groups_` and `training_rows_`.
    """

    def __init__(self, candidates: CandidateConfig | None = None, ranker: RankerConfig | None = None):
        self.candidates = candidates
        self.ranker = ranker

    def fit(
        self,
        transactions: pd.DataFrame,
        products: pd.DataFrame,
        as_of_cutoffs: Sequence[pd.Timestamp],
        horizon_days: int = 30,
    ) -> TwoStageRecommender:
        """Train the ranker on each cutoff's candidates and label window, then refit stage 1 for serving.

        For a cutoff c, stage 1 sees purchases strictly before c and the labels are the products
        bought in [c, c + horizon_days). Customers with history before c and at least one bought
        candidate form training groups (at most `max_customers_per_cutoff` per cutoff, drawn with
        the ranker's seed). Stage 1 is refitted on the purchases before
        `as_of_ = max(cutoffs) + horizon_days`. Raises ValueError when no cutoff yields a group.
        """
        if horizon_days < 1:
            raise ValueError(f"horizon_days must be positive, got {horizon_days}")
        cutoffs = sorted({pd.Timestamp(c) for c in as_of_cutoffs})
        if not cutoffs:
            raise ValueError("as_of_cutoffs is empty")
        candidate_config = self.candidates or CandidateConfig()
        ranker_config = self.ranker or RankerConfig()
        catalogue = build_catalogue(products)
        lines = code_lines(transactions, catalogue)

        blocks = []
        for number, cutoff in enumerate(cutoffs):
            bought = make_product_pairs(transactions, cutoff, horizon_days)
            if bought.empty or not (lines.day < _days(pd.Series([cutoff]))[0]).any():
                continue
            stage1 = fit_stage1(lines, catalogue, cutoff, candidate_config)
            blocks.append(_training_block(stage1, bought, candidate_config, ranker_config, number))
        self._fit_ranker(blocks, ranker_config)
        self.as_of_ = cutoffs[-1] + horizon_days * DAY
        self.horizon_days_ = horizon_days
        self.candidate_config_ = candidate_config
        self.stage1_ = fit_stage1(lines, catalogue, self.as_of_, candidate_config)
        return self

    def fit_examples(
        self,
        examples: Sequence[tuple[pd.DataFrame, pd.DataFrame]],
        transactions: pd.DataFrame,
        products: pd.DataFrame,
        as_of: pd.Timestamp,
    ) -> TwoStageRecommender:
        """Train the ranker on explicit (history, bought) examples, then fit stage 1 on `transactions` before `as_of`.

        For data without a usable time order (e.g. a random per-user split): each example is a
        history frame (transactions) on which stage 1 is fitted in full, and a frame of
        (customer_id, product_id) pairs bought "afterwards" that label its candidates. Several
        examples (e.g. folds with different held-out items) give the ranker more groups; no example
        may hold what the evaluation will score.
        """
        candidate_config = self.candidates or CandidateConfig()
        ranker_config = self.ranker or RankerConfig()
        catalogue = build_catalogue(products)
        blocks = []
        for number, (history, bought) in enumerate(examples):
            lines = code_lines(history, catalogue)
            after_history = pd.Timestamp(history[TIMESTAMP].max()) + DAY
            stage1 = fit_stage1(lines, catalogue, after_history, candidate_config)
            blocks.append(_training_block(stage1, bought, candidate_config, ranker_config, number))
        self._fit_ranker(blocks, ranker_config)
        self.as_of_ = pd.Timestamp(as_of)
        self.horizon_days_ = None
        self.candidate_config_ = candidate_config
        self.stage1_ = fit_stage1(code_lines(transactions, catalogue), catalogue, self.as_of_, candidate_config)
        return self

    def _fit_ranker(self, blocks: list, ranker_config: RankerConfig) -> None:
        blocks = [block for block in blocks if block is not None]
        if not blocks:
            raise ValueError("no cutoff has a customer with a bought candidate in its label window")
        features = np.concatenate([candidates.features for candidates, _, _ in blocks])
        labels = np.concatenate([label for _, label, _ in blocks])
        sizes = np.concatenate([sizes for _, _, sizes in blocks])
        self.ranker_ = lgb.LGBMRanker(
            objective="lambdarank",
            n_estimators=ranker_config.n_estimators,
            learning_rate=ranker_config.learning_rate,
            num_leaves=ranker_config.num_leaves,
            min_child_samples=ranker_config.min_child_samples,
            random_state=ranker_config.seed,
            n_jobs=1,  # LightGBM's num_threads: one thread plus `deterministic` gives reproducible trees
            deterministic=True,
            force_row_wise=True,
            verbose=-1,
        )
        self.ranker_.fit(features, labels.astype(int), group=sizes)
        self.feature_names_ = list(FEATURES)
        self.training_groups_ = len(sizes)
        self.training_rows_ = len(features)

    def refresh_candidates(
        self, transactions: pd.DataFrame, products: pd.DataFrame, as_of: pd.Timestamp
    ) -> TwoStageRecommender:
        """A copy whose candidate sources are refitted on the purchases before `as_of`; the ranker is kept.

        Use it to serve (or re-measure) a fitted ranker at another moment: the registered model
        refreshed on the latest history, or a champion re-measured on a new test window.
        """
        catalogue = build_catalogue(products)
        refreshed = copy.copy(self)
        refreshed.as_of_ = pd.Timestamp(as_of)
        refreshed.stage1_ = fit_stage1(
            code_lines(transactions, catalogue), catalogue, refreshed.as_of_, self.candidate_config_
        )
        return refreshed

    def recommend(
        self,
        customer_ids: Sequence[str],
        k: int = 10,
        exclude_purchased: bool = True,
        include_restock: bool = True,
        include_categories: Sequence[str] | None = None,
        exclude_categories: Sequence[str] | None = None,
        exclude_product_ids: Sequence[str] | None = None,
        max_per_category: int | None = None,
    ) -> pd.DataFrame:
        """Top-k products per customer as of `as_of_`: customer_id, product_id, rank (1 best), score, reason.

        Customers come out in the order given, each with at most k rows, best first. Rules:
        - `exclude_purchased`: leave out products the customer bought before, except, when
          `include_restock`, consumables whose replenishment cycle is at least half over ("time
          to restock");
        - `include_categories` / `exclude_categories`: only / never products of these categories
          (unknown names raise ValueError);
        - `exclude_product_ids`: never these products (ids outside the catalogue are ignored);
        - `max_per_category`: at most this many products of one category per list (diversity).
        Customers with no purchases before `as_of_` get the most popular products of the last 90
        days that pass the rules (score: share of customers who bought it; reason "popular in
        <category>"); new products enter through their category's popularity.
        """
        rules = {
            "exclude_purchased": exclude_purchased,
            "include_restock": include_restock,
            "include_categories": include_categories,
            "exclude_categories": exclude_categories,
            "exclude_product_ids": exclude_product_ids,
            "max_per_category": max_per_category,
        }
        return self._recommend(self.stage1_, customer_ids, k, **rules)

    def recommend_for_history(
        self, customer_id: str, transactions: pd.DataFrame, as_of: pd.Timestamp | None = None, k: int = 10, **rules
    ) -> pd.DataFrame:
        """`recommend([customer_id], k, **rules)` computed from this customer's `transactions` instead of the fit's.

        The item models (similarities, popularity) stay as fitted; the customer's own purchases,
        categories and restock timing come from `transactions` before `as_of` (default: just after
        their latest line, and never before `as_of_`). This is how a purchase that arrived after
        the fit changes the list at once. Rows of other customers in `transactions` are ignored.
        """
        mine = transactions[transactions[CUSTOMER_ID].astype(object) == customer_id]
        if as_of is None:
            latest = mine[TIMESTAMP].max() if len(mine) else self.as_of_
            as_of = max(self.as_of_, pd.Timestamp(latest) + pd.Timedelta(microseconds=1))
        stage1 = self.stage1_.for_customer(mine, pd.Timestamp(as_of))
        return self._recommend(stage1, [customer_id], k, **rules)

    def _recommend(
        self,
        stage1: Stage1,
        customer_ids: Sequence[str],
        k: int = 10,
        exclude_purchased: bool = True,
        include_restock: bool = True,
        include_categories: Sequence[str] | None = None,
        exclude_categories: Sequence[str] | None = None,
        exclude_product_ids: Sequence[str] | None = None,
        max_per_category: int | None = None,
    ) -> pd.DataFrame:
        if k < 1:
            raise ValueError(f"k must be positive, got {k}")
        if max_per_category is not None and max_per_category < 1:
            raise ValueError(f"max_per_category must be positive, got {max_per_category}")
        catalogue = stage1.catalogue
        excluded = catalogue.index.get_indexer(list(exclude_product_ids)) if exclude_product_ids is not None else None
        rules = Rules(
            exclude_purchased=exclude_purchased,
            include_restock=include_restock,
            include_categories=catalogue.category_codes(include_categories),
            exclude_categories=catalogue.category_codes(exclude_categories),
            exclude_items=excluded[excluded >= 0] if excluded is not None else None,
            max_per_category=max_per_category,
        )
        wanted = list(dict.fromkeys(customer_ids))
        codes = stage1.codes_of(wanted)
        allowed = rules.allowed_items(catalogue)
        parts = []
        known_positions = np.flatnonzero(codes >= 0)
        batch = self.candidate_config_.batch_size
        for start in range(0, len(known_positions), batch):
            positions = known_positions[start : start + batch]
            batch_stage1 = stage1.restricted_to(codes[positions])
            parts.append(self._recommend_known(batch_stage1, positions, codes[positions], k, rules, allowed))
        cold_positions = np.flatnonzero(codes < 0)
        if len(cold_positions):
            parts.append(_cold_start(stage1, cold_positions, k, allowed, rules.max_per_category))
        return _result_frame(parts, wanted, catalogue)

    def _recommend_known(
        self, stage1: Stage1, positions: np.ndarray, codes: np.ndarray, k: int, rules: Rules, allowed: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(position in the query, product code, score, reason) of the top k of each known customer."""
        config = self.candidate_config_
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
        scores = _predict(self.ranker_.booster_, candidates.features)
        order = np.lexsort((candidates.item, -scores, candidates.owner))
        owner, item, scores = candidates.owner[order], candidates.item[order], scores[order]
        chosen = _top_per_owner(owner, item, stage1.catalogue.category, k, rules.max_per_category)
        top = candidates.take(order[chosen])
        reasons = _reasons(stage1, codes[top.owner], top)
        return positions[top.owner], top.item, scores[chosen], reasons

    def similar_items(self, product_id: str, k: int = 10) -> pd.DataFrame:
        """The k products most often bought by the same customers (cosine over co-purchases): product_id, similarity.

        A product nobody bought yet gets its category's most popular products (similarity 0).
        Unknown product ids raise KeyError.
        """
        return self.bought_together([product_id], k)

    def bought_together(self, product_ids: Sequence[str], k: int = 10) -> pd.DataFrame:
        """The k products that go best with a cart: summed co-purchase similarity to its products.

        Columns product_id, similarity, reason ("bought together with X": the cart product that
        contributes most). Cart products are never returned; when no cart product was ever bought,
        the answer is the most popular products of the cart's categories. Unknown ids raise KeyError.
        """
        if k < 1:
            raise ValueError(f"k must be positive, got {k}")
        stage1 = self.stage1_
        catalogue = stage1.catalogue
        cart = catalogue.index.get_indexer(list(product_ids))
        if (cart < 0).any():
            unknown = [p for p, c in zip(product_ids, cart, strict=True) if c < 0]
            raise KeyError(f"unknown product id(s) {', '.join(map(repr, unknown))}")
        neighbours = stage1.knn.similarity_[cart]
        scores = np.asarray(neighbours.sum(axis=0)).ravel()
        scores[cart] = 0.0
        related = np.flatnonzero(scores > 0)
        related = related[np.lexsort((related, -scores[related]))][:k]
        anchors = cart[np.asarray(neighbours[:, related].argmax(axis=0)).ravel()] if len(related) else related
        reasons = [REASON_BOUGHT_TOGETHER.format(product=catalogue.ids[a]) for a in anchors]
        if len(related) < k:  # fill from the cart's categories: how new products get in
            allowed = np.isin(catalogue.category, catalogue.category[cart])
            allowed[cart] = False
            allowed[related] = False
            fill = stage1.popular_order[allowed[stage1.popular_order]][: k - len(related)]
            reasons += [REASON_POPULAR.format(category=catalogue.categories[c]) for c in catalogue.category[fill]]
            related = np.concatenate([related, fill])
        return pd.DataFrame(
            {
                PRODUCT_ID: catalogue.ids[related],
                SIMILARITY: scores[related].astype(np.float64),
                RECOMMENDATION_REASON: reasons,
            }
        )


def recommend_in_parallel(
    model: TwoStageRecommender,
    customer_ids: Sequence[str],
    k: int = 10,
    n_jobs: int = 2,
    chunk_size: int = 20_000,
    progress: bool = False,
    **rules,
) -> pd.DataFrame:
    """`model.recommend` for many customers, in chunks spread over `n_jobs` forked processes.

    The same rows, in the same order, as one `recommend(customer_ids, k, **rules)` call: each
    customer's list depends only on that customer and the fitted model, so chunks are
    independent. Workers read the model through the parent's memory (fork, copy-on-write).
    """
    wanted = list(dict.fromkeys(customer_ids))
    chunks = [wanted[start : start + chunk_size] for start in range(0, len(wanted), chunk_size)]
    if n_jobs <= 1 or len(chunks) <= 1:
        parts = [model.recommend(chunk, k, **rules) for chunk in tqdm(chunks, disable=not progress, unit="chunk")]
    else:
        _WORK.update(model=model, chunks=chunks, k=k, rules=rules)
        try:
            with multiprocessing.get_context("fork").Pool(n_jobs) as pool:
                work = pool.imap(_recommend_chunk, range(len(chunks)))
                parts = list(tqdm(work, total=len(chunks), disable=not progress, unit="chunk", desc="recommend"))
        finally:
            _WORK.clear()
    return pd.concat(parts, ignore_index=True) if parts else model.recommend([], k, **rules)


_WORK: dict = {}  # what forked workers read from the parent's memory


def _recommend_chunk(number: int) -> pd.DataFrame:
    return _WORK["model"].recommend(_WORK["chunks"][number], _WORK["k"], **_WORK["rules"])


# ---------------------------------------------------------------------------
# Training data.
# ---------------------------------------------------------------------------
def _training_block(
    stage1: Stage1,
    bought: pd.DataFrame,
    candidate_config: CandidateConfig,
    ranker_config: RankerConfig,
    number: int,
) -> tuple[Candidates, np.ndarray, np.ndarray] | None:
    """Candidates of the buyers in `bought` (customer_id, product_id pairs) with labels and group sizes.

    None when no buyer has history in stage 1 or none has a bought candidate.
    """
    catalogue = stage1.catalogue
    buyer = stage1.codes_of(bought[CUSTOMER_ID].to_numpy(dtype=object))
    bought_item = catalogue.index.get_indexer(bought[PRODUCT_ID].to_numpy(dtype=object))
    customers = np.unique(buyer[buyer >= 0])
    if len(customers) > ranker_config.max_customers_per_cutoff:
        rng = np.random.default_rng([ranker_config.seed, number])
        customers = np.sort(rng.choice(customers, ranker_config.max_customers_per_cutoff, replace=False))
    if not len(customers):
        return None
    candidates = build_candidates(stage1.restricted_to(customers), customers, candidate_config)
    n_items = catalogue.size
    owner_of = np.searchsorted(customers, buyer)
    found = (buyer >= 0) & (bought_item >= 0) & (owner_of < len(customers))
    found[found] = customers[owner_of[found]] == buyer[found]
    positive = owner_of[found] * n_items + bought_item[found]
    label = np.isin(candidates.owner * n_items + candidates.item, positive)
    with_positive = np.zeros(len(customers), dtype=bool)
    with_positive[candidates.owner[label]] = True
    keep = with_positive[candidates.owner]
    candidates, label = candidates.take(keep), label[keep]
    if not len(label):
        return None
    sizes = np.bincount(candidates.owner, minlength=len(customers))
    return candidates, label, sizes[sizes > 0]


# ---------------------------------------------------------------------------
# Helpers: stage-1 tables.
# ---------------------------------------------------------------------------
def _days(timestamps: pd.Series) -> np.ndarray:
    return ((pd.to_datetime(timestamps) - EPOCH) / DAY).to_numpy(np.float64)


def _float_column(frame: pd.DataFrame, name: str) -> np.ndarray:
    if name not in frame.columns:
        return np.full(len(frame), np.nan)
    return pd.to_numeric(frame[name], errors="coerce").to_numpy(np.float64, na_value=np.nan)


def _expand_ranges(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(owner, position) for every position in [starts[i], ends[i]) of every i, in order."""
    lengths = np.maximum(ends - starts, 0)
    owner = np.repeat(np.arange(len(starts)), lengths)
    offsets = np.arange(len(owner)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return owner, np.repeat(starts, lengths) + offsets


def _csr_rows(matrix: sp.csr_matrix, rows: np.ndarray) -> sp.csr_matrix:
    """matrix[rows] built from the index arrays (scipy's fancy indexing costs more for a handful of rows)."""
    starts, ends = matrix.indptr[rows], matrix.indptr[rows + 1]
    _, position = _expand_ranges(starts, ends)
    indptr = np.r_[0, np.cumsum(ends - starts)]
    return sp.csr_matrix((matrix.data[position], matrix.indices[position], indptr), shape=(len(rows), matrix.shape[1]))


def _row_of_entries(matrix: sp.csr_matrix) -> np.ndarray:
    return np.repeat(np.arange(matrix.shape[0], dtype=np.int64), np.diff(matrix.indptr))


def _position_or_minus_one(index: pd.Index, key) -> int:
    try:
        position = index.get_loc(key)
    except KeyError:
        return -1
    return position if isinstance(position, (int, np.integer)) else -1


def _columns_subset(matrix: sp.csr_matrix, columns: np.ndarray) -> sp.csr_matrix:
    """matrix[:, columns] for sorted `columns`, from the index arrays (scipy's column indexing costs more)."""
    position = np.minimum(np.searchsorted(columns, matrix.indices), len(columns) - 1)
    keep = columns[position] == matrix.indices
    per_row = np.bincount(_row_of_entries(matrix)[keep], minlength=matrix.shape[0])
    indptr = np.r_[0, np.cumsum(per_row)]
    return sp.csr_matrix((matrix.data[keep], position[keep], indptr), shape=(matrix.shape[0], len(columns)))


def _rank_in_runs(groups: np.ndarray) -> np.ndarray:
    """0-based position of each element within its run of equal consecutive `groups` values."""
    if len(groups) == 0:
        return np.zeros(0, dtype=np.int64)
    index = np.arange(len(groups))
    run_start = np.r_[True, groups[1:] != groups[:-1]]
    return index - np.maximum.accumulate(np.where(run_start, index, 0))


def _bought_matrix(customer: np.ndarray, item: np.ndarray, n_customers: int, n_items: int) -> sp.csr_matrix:
    """Customers x products, 1 where the customer bought the product."""
    matrix = sp.csr_matrix(
        (np.ones(len(item), dtype=np.float32), (customer, item)), shape=(n_customers, n_items), dtype=np.float32
    )
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return matrix


def _purchase_pairs(
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
    last = np.r_[keys[1:] != keys[:-1], True]
    first = np.r_[True, keys[:-1] != keys[1:]]
    pair_keys = keys[last]
    group = np.cumsum(first) - 1
    counts = np.bincount(group).astype(np.float64)
    days_since = now - day[last]
    gaps = np.r_[np.nan, np.diff(day)]
    gaps[first | (gaps < 1)] = np.nan
    median_gap = pd.Series(gaps).groupby(group).median().to_numpy(np.float64)
    nominal = catalogue.replenishment_days[pair_keys % n_items]
    cycle = np.where(np.isnan(median_gap), nominal, median_gap)
    with np.errstate(divide="ignore", invalid="ignore"):
        due = np.where(nominal > 0, days_since / cycle, np.nan)
    return PairTable(
        n_items,
        pair_keys,
        {ITEM_PURCHASES_TOTAL: counts, DAYS_SINCE_ITEM_PURCHASE: days_since, ITEM_REPLENISHMENT_DUE_RATIO: due},
    )


def _category_pairs(
    customer: np.ndarray, category: np.ndarray, day: np.ndarray, now: float, n_categories: int
) -> PairTable:
    """Per (customer, category): the share of the customer's lines in it and days since the last one."""
    keys = customer * n_categories + category
    grouped = pd.Series(day).groupby(keys, sort=True)
    lines = grouped.size()
    pair_keys = lines.index.to_numpy(np.int64)
    per_customer = np.bincount(customer).astype(np.float64)
    return PairTable(
        n_categories,
        pair_keys,
        {
            ITEM_CATEGORY_SHARE: lines.to_numpy(np.float64) / per_customer[pair_keys // n_categories],
            DAYS_SINCE_CATEGORY_PURCHASE: now - grouped.max().to_numpy(np.float64),
        },
    )


def _median_price(customer: np.ndarray, unit_price: np.ndarray, n_customers: int) -> np.ndarray:
    medians = pd.Series(unit_price).where(unit_price > 0).groupby(customer).median()
    out = np.full(n_customers, np.nan)
    out[medians.index.to_numpy(np.int64)] = medians.to_numpy(np.float64)
    return out


def _category_top(
    popular_order: np.ndarray, catalogue: Catalogue, popularity: np.ndarray, n_per_category: int
) -> tuple[np.ndarray, np.ndarray]:
    by_category = popular_order[np.argsort(catalogue.category[popular_order], kind="stable")]
    category = catalogue.category[by_category]
    rank = _rank_in_runs(category)
    keep = rank < n_per_category
    top = np.full((len(catalogue.categories), n_per_category), -1, dtype=np.int64)
    score = np.zeros(top.shape)
    top[category[keep], rank[keep]] = by_category[keep]
    score[category[keep], rank[keep]] = popularity[by_category[keep]]
    return top, score


# ---------------------------------------------------------------------------
# Helpers: candidate sources. Each returns (owner, product code, score, rank), rank 1 best.
# ---------------------------------------------------------------------------
def _ranked(owner: np.ndarray, item: np.ndarray, score: np.ndarray, n: int | None = None):
    """Sort by (owner, -score, item), rank within owner, keep the first n of each."""
    order = np.lexsort((item, -score, owner))
    owner, item, score = owner[order], item[order], score[order]
    rank = _rank_in_runs(owner)
    keep = rank < n if n is not None else np.ones(len(rank), dtype=bool)
    return owner[keep], item[keep], score[keep], rank[keep] + 1.0


def _ease_candidates(stage1: Stage1, rows: sp.csr_matrix, n: int):
    if stage1.ease is None:
        return _ranked(*(np.zeros(0, dtype=np.int64),) * 2, np.zeros(0))
    if len(stage1.ease_items) < stage1.catalogue.size:  # EASE covers the most popular products only
        rows = _columns_subset(rows, stage1.ease_items)
    scores = np.asarray(rows @ stage1.ease.weights_, dtype=np.float32)
    scores[_row_of_entries(rows), rows.indices] = -np.inf  # never what the customer already has
    top, top_scores = top_k(scores, min(n, scores.shape[1]))
    owner = np.repeat(np.arange(rows.shape[0]), top.shape[1])
    valid = np.isfinite(top_scores.ravel())
    rank = np.tile(np.arange(1.0, top.shape[1] + 1), rows.shape[0])
    items, scores = stage1.ease_items[top.ravel()[valid]], top_scores.ravel()[valid].astype(np.float64)
    return owner[valid], items, scores, rank[valid]


def _knn_candidates(stage1: Stage1, rows: sp.csr_matrix, n: int):
    """Positive kNN scores only, from the sparse product (no dense row over the whole catalogue)."""
    scores = rows @ stage1.neighbours_t
    if scores.nnz < SMALL_PRODUCT:  # a request: drop what the customer has by key
        owner, item = _row_of_entries(scores), scores.indices.astype(np.int64)
        n_items = stage1.catalogue.size
        seen = np.isin(owner * n_items + item, _row_of_entries(rows) * n_items + rows.indices)
        scores.data[seen] = 0.0
    else:  # a batch: the elementwise product finds what they have without sorting a million keys
        scores = (scores - scores.multiply(rows)).tocsr()
    scores.data[scores.data < 0] = 0.0
    scores.eliminate_zeros()
    owner, item, score = _row_of_entries(scores), scores.indices.astype(np.int64), scores.data.astype(np.float64)
    keep = score >= _nth_largest_per_row(scores, n)[owner]
    return _ranked(owner[keep], item[keep], score[keep], n)


def _nth_largest_per_row(matrix: sp.csr_matrix, n: int) -> np.ndarray:
    """Each row's n-th largest stored value (-inf when the row holds fewer than n values).

    Rows are laid out in a padded dense block and partitioned: at a million customers and 50,000
    products, sorting every stored score of a batch took most of its time.
    """
    lengths = np.diff(matrix.indptr)
    threshold = np.full(matrix.shape[0], -np.inf)
    if not len(lengths) or lengths.max() <= n:
        return threshold
    row = _row_of_entries(matrix)
    block = np.full((matrix.shape[0], lengths.max()), -np.inf)
    block[row, np.arange(len(row)) - matrix.indptr[row]] = matrix.data
    nth = -np.partition(-block, n - 1, axis=1)[:, n - 1]
    long_rows = lengths > n
    threshold[long_rows] = nth[long_rows]
    return threshold


def _category_candidates(stage1: Stage1, customers: np.ndarray, config: CandidateConfig, extra: np.ndarray | None):
    pairs = stage1.category_pairs
    owner, position = pairs.rows_of(customers)
    category = pairs.column(position)
    share = pairs.values[ITEM_CATEGORY_SHARE][position]
    owner, category, share, _ = _ranked(owner, category, share, config.n_top_categories)
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
    return _ranked(owner[valid], items[valid], scores[valid])


def _popular_candidates(stage1: Stage1, customers: np.ndarray, n: int, allowed: np.ndarray | None):
    order = stage1.popular_order if allowed is None else stage1.popular_order[allowed[stage1.popular_order]]
    top = order[:n]
    score = stage1.item_features[top, ITEM_FEATURES.index(ITEM_BUYERS_90D)]
    return (
        np.repeat(np.arange(len(customers)), len(top)),
        np.tile(top, len(customers)),
        np.tile(score, len(customers)),
        np.tile(np.arange(1.0, len(top) + 1), len(customers)),
    )


def _buy_again_candidates(stage1: Stage1, customers: np.ndarray, config: CandidateConfig, keep_purchased: bool):
    pairs = stage1.purchases
    owner, position = pairs.rows_of(customers)
    due = pairs.values[ITEM_REPLENISHMENT_DUE_RATIO][position]
    if not keep_purchased:
        is_due = due >= config.due_ratio_min
        owner, position, due = owner[is_due], position[is_due], due[is_due]
    # durable items (no due ratio) rank after the consumables, most often bought first
    score = np.where(np.isnan(due), -1.0 / (1.0 + pairs.values[ITEM_PURCHASES_TOTAL][position]), due)
    return _ranked(owner, pairs.column(position), score)


# ---------------------------------------------------------------------------
# Helpers: selection, reasons, output.
# ---------------------------------------------------------------------------
def _top_per_owner(
    owner: np.ndarray, item: np.ndarray, category: np.ndarray, k: int, max_per_category: int | None
) -> np.ndarray:
    """Positions (into rows sorted by owner, best first) of each owner's top k, capped per category."""
    keep = np.ones(len(owner), dtype=bool)
    if max_per_category is not None and len(owner):
        by_category = np.lexsort((np.arange(len(owner)), category[item], owner))
        rank = np.empty(len(owner), dtype=np.int64)
        group = owner[by_category] * (category.max() + 1) + category[item[by_category]]
        rank[by_category] = _rank_in_runs(group)
        keep = rank < max_per_category
    positions = np.flatnonzero(keep)
    return positions[_rank_in_runs(owner[positions]) < k]


def _predict(booster: lgb.Booster, features: np.ndarray) -> np.ndarray:
    if not len(features):
        return np.zeros(0)
    # One thread for small inputs: starting OpenMP threads costs more than the trees (16 ms vs 0.7 ms
    # for 50 rows measured here on a busy machine); one per worker process when customers are sharded.
    alone = multiprocessing.parent_process() is None
    return booster.predict(features, num_threads=0 if alone and len(features) >= SMALL_PREDICTION else 1)


def _reasons(stage1: Stage1, codes: np.ndarray, top: Candidates) -> list[str]:
    """A short reason per recommended row: restock, bought together with X, popular in a category, or similar customers.

    "Bought together with X" names the customer's past product with the highest item-kNN
    similarity to the recommended one.
    """
    if not len(codes):
        return []
    catalogue = stage1.catalogue
    anchor = _strongest_bought_neighbour(stage1, codes, top.item)
    similar = np.zeros(len(codes), dtype=bool)
    for source in SIMILARITY_SOURCES:
        similar |= ~np.isnan(top.feature(candidate_score(source)))
    from_category = ~np.isnan(top.feature(candidate_score(SOURCE_CATEGORY_POPULARITY)))
    bought = top.feature(ITEM_PURCHASES_TOTAL) > 0
    replenishable = top.feature(IS_REPLENISHABLE) > 0
    together = similar & (anchor >= 0)
    reasons = np.select(
        [bought & replenishable, bought, together, similar & ~from_category],
        [REASON_RESTOCK, REASON_BOUGHT_BEFORE, "", REASON_SIMILAR_CUSTOMERS],
        default="",
    ).astype(object)
    reasons[together & ~bought] = stage1.together_reasons[anchor[together & ~bought]]
    popular = ~bought & ~together & ~(similar & ~from_category)
    reasons[popular] = stage1.popular_reasons[catalogue.category[top.item[popular]]]
    return reasons.tolist()


def _strongest_bought_neighbour(stage1: Stage1, codes: np.ndarray, items: np.ndarray) -> np.ndarray:
    """Per (customer, item): the customer's past product most similar to the item (kNN), or -1."""
    similarity = stage1.knn.similarity_
    row, position = _expand_ranges(similarity.indptr[items], similarity.indptr[items + 1])
    neighbour = similarity.indices[position].astype(np.int64)
    bought = ~np.isnan(stage1.purchases.lookup(codes[row], neighbour, DAYS_SINCE_ITEM_PURCHASE, np.nan))
    row, neighbour, weight = row[bought], neighbour[bought], similarity.data[position][bought]
    order = np.lexsort((neighbour, -weight, row))
    first = order[np.r_[True, row[order][1:] != row[order][:-1]]] if len(order) else order
    anchor = np.full(len(items), -1, dtype=np.int64)
    anchor[row[first]] = neighbour[first]
    return anchor


def _cold_start(stage1: Stage1, positions: np.ndarray, k: int, allowed: np.ndarray, max_per_category: int | None):
    """The same popular list, filtered by the rules, for every customer without history."""
    catalogue = stage1.catalogue
    order = stage1.popular_order[allowed[stage1.popular_order]]
    chosen = order[_top_per_owner(np.zeros(len(order), dtype=np.int64), order, catalogue.category, k, max_per_category)]
    score = stage1.item_features[chosen, ITEM_FEATURES.index(ITEM_BUYERS_90D)]
    reasons = stage1.popular_reasons[catalogue.category[chosen]].tolist()
    n = len(positions)
    return np.repeat(positions, len(chosen)), np.tile(chosen, n), np.tile(score, n), reasons * n


def _result_frame(parts: list, wanted: list[str], catalogue: Catalogue) -> pd.DataFrame:
    columns = [CUSTOMER_ID, PRODUCT_ID, RECOMMENDATION_RANK, RECOMMENDATION_SCORE, RECOMMENDATION_REASON]
    if not parts:
        return pd.DataFrame({name: pd.Series(dtype=object) for name in columns})
    position = np.concatenate([part[0] for part in parts])
    item = np.concatenate([part[1] for part in parts])
    score = np.concatenate([part[2] for part in parts]).astype(np.float64)
    reason = np.asarray([r for part in parts for r in part[3]], dtype=object)
    order = np.argsort(position, kind="stable")  # parts are best first within each customer
    position, item, score, reason = position[order], item[order], score[order], reason[order]
    return pd.DataFrame(
        {
            CUSTOMER_ID: np.asarray(wanted, dtype=object)[position],
            PRODUCT_ID: catalogue.ids[item],
            RECOMMENDATION_RANK: _rank_in_runs(position) + 1,
            RECOMMENDATION_SCORE: score,
            RECOMMENDATION_REASON: reason,
        }
    )
