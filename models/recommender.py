"""The two-stage recommender: candidate sources, then a LightGBM lambdarank ranker over their features.

Stage 1 (candidates), fitted on the purchases strictly before a cutoff `as_of`:
- `ease` and `knn`: the top items of `EaseRecommender` and `ItemKNNRecommender` on the history;
- `category_popularity`: the most bought items of the customer's top categories, scored by the
  customer's share of purchases in the category times the item's popularity;
- `popular`: the overall most popular items of the last 90 days (also the cold-start answer);
- `buy_again`: replenishable products the customer bought whose cycle is at least half over.
Durable products the customer already bought are never candidates (unless `recommend` is asked
to keep purchased items): the label window counts only new durables and any consumable.

Stage 2 (ranker): one row per (customer, candidate) with each source's score and rank (empty
when the source did not propose the item), the item's popularity, the customer's share of
purchases in the item's category, how often and how long ago the customer bought the item and
its replenishment due ratio. It is trained with objective `lambdarank`, one group per
(cutoff, customer), on the labels `make_product_sets` gives for [cutoff, cutoff + horizon).

Serving time: `fit` refits stage 1 once more on every purchase before
`as_of_ = max(as_of_cutoffs) + horizon_days`, the end of the last label window (the ranker has
seen nothing after it), and `recommend` scores customers as of that moment. Later
transactions are ignored until the next fit. Pure code, no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import pandas as pd

from features.labels import make_product_sets
from features.schema import (
    CANDIDATE_SOURCE,
    CATEGORY,
    CUSTOMER_ID,
    DAYS_SINCE_ITEM_PURCHASE,
    IS_REPLENISHABLE,
    ITEM_BUYERS_90D,
    ITEM_BUYERS_TOTAL,
    ITEM_CATEGORY_SHARE,
    ITEM_PURCHASES_TOTAL,
    ITEM_REPLENISHMENT_DUE_RATIO,
    PRODUCT_ID,
    PRODUCTS_BOUGHT,
    QUANTITY,
    RECOMMENDATION_RANK,
    RECOMMENDATION_REASON,
    RECOMMENDATION_SCORE,
    REPLENISHMENT_DAYS,
    TIMESTAMP,
    candidate_rank,
    candidate_score,
)
from models.item_models import EaseRecommender, ItemKNNRecommender, build_interaction_matrix

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

FEATURES = (
    *(name for source in SOURCES for name in (candidate_score(source), candidate_rank(source))),
    ITEM_BUYERS_TOTAL,
    ITEM_BUYERS_90D,
    ITEM_CATEGORY_SHARE,
    ITEM_PURCHASES_TOTAL,
    DAYS_SINCE_ITEM_PURCHASE,
    ITEM_REPLENISHMENT_DUE_RATIO,
    IS_REPLENISHABLE,
)

DAY = pd.Timedelta(days=1)
_LABEL = "_label"  # private working columns, never part of an output frame
_SCORE = "_score"
_RANK = "_rank"
_DAYS_AGO = "_days_ago"
_GAP_DAYS = "_gap_days"


@dataclass(frozen=True)
class CandidateConfig:
    """How many candidates each source proposes, and the stage-1 model settings."""

    n_per_source: int = 30
    n_top_categories: int = 3
    n_per_category: int = 10
    due_ratio_min: float = 0.5  # a consumable becomes a buy-again candidate at half its cycle
    popularity_days: int = 90
    ease_l2: float = 200.0
    knn_neighbours: int = 50


@dataclass(frozen=True)
class RankerConfig:
    """LightGBM lambdarank settings (one thread and `deterministic` so a fit is reproducible)."""

    n_estimators: int = 100
    learning_rate: float = 0.05
    num_leaves: int = 7
    min_child_samples: int = 20
    seed: int = 0


@dataclass(frozen=True)
class Stage1:
    """Candidate sources fitted on the purchases before `as_of`, plus the lookups their features need."""

    as_of: pd.Timestamp
    ease: EaseRecommender
    knn: ItemKNNRecommender
    items: pd.DataFrame  # index product_id: category, is_replenishable, buyer shares (every catalogue product)
    purchases: pd.DataFrame  # customer_id, product_id, purchases, days since, due ratio (pairs bought)
    category_shares: pd.DataFrame  # customer_id, category, share of the customer's purchase lines
    category_top: pd.DataFrame  # category, product_id, score: each category's most popular items
    popular: pd.DataFrame  # product_id, score: the overall most popular items, best first


def fit_stage1(
    transactions: pd.DataFrame, products: pd.DataFrame, as_of: pd.Timestamp, config: CandidateConfig
) -> Stage1:
    """Fit every candidate source on the positive-quantity lines strictly before `as_of`."""
    as_of = pd.Timestamp(as_of)
    before = (transactions[TIMESTAMP] < as_of) & (transactions[QUANTITY] > 0)
    history = transactions.loc[before, [CUSTOMER_ID, PRODUCT_ID, QUANTITY, TIMESTAMP]]
    if history.empty:
        raise ValueError(f"no purchases before {as_of.date()}")
    items = _item_table(products)
    history = history[history[PRODUCT_ID].isin(items.index)]
    history = history.assign(**{CATEGORY: items[CATEGORY].reindex(history[PRODUCT_ID]).to_numpy()})

    built = build_interaction_matrix(history, item_ids=items.index)
    ease = EaseRecommender(l2=config.ease_l2).fit(built.matrix, built.user_ids, built.item_ids)
    knn = ItemKNNRecommender(n_neighbours=config.knn_neighbours).fit(built.matrix, built.user_ids, built.item_ids)

    n_customers = len(built.user_ids)
    recent = history[history[TIMESTAMP] >= as_of - config.popularity_days * DAY]
    items = items.assign(
        **{
            ITEM_BUYERS_TOTAL: _buyer_share(history, items.index, n_customers),
            ITEM_BUYERS_90D: _buyer_share(recent, items.index, n_customers),
        }
    )
    by_popularity = items.sort_values([ITEM_BUYERS_90D, ITEM_BUYERS_TOTAL], ascending=False, kind="stable")
    popular = by_popularity.head(config.n_per_source)
    category_top = by_popularity.groupby(CATEGORY, sort=True).head(config.n_per_category)

    lines = history.groupby([CUSTOMER_ID, CATEGORY], sort=True).size()
    shares = (lines / lines.groupby(level=0).transform("sum")).rename(ITEM_CATEGORY_SHARE).reset_index()

    return Stage1(
        as_of=as_of,
        ease=ease,
        knn=knn,
        items=items,
        purchases=_purchase_pairs(history, items, as_of),
        category_shares=shares,
        category_top=pd.DataFrame(
            {
                CATEGORY: category_top[CATEGORY].to_numpy(),
                PRODUCT_ID: category_top.index.to_numpy(),
                _SCORE: category_top[ITEM_BUYERS_90D].to_numpy() + 1e-3 * category_top[ITEM_BUYERS_TOTAL].to_numpy(),
            }
        ),
        popular=pd.DataFrame({PRODUCT_ID: popular.index.to_numpy(), _SCORE: popular[ITEM_BUYERS_90D].to_numpy()}),
    )


def build_candidates(
    stage1: Stage1,
    customer_ids: Sequence[str],
    config: CandidateConfig,
    keep_purchased: bool = False,
) -> pd.DataFrame:
    """One row per (known customer, candidate product), sorted by both, with the ranker's FEATURES.

    Customers without purchases before `stage1.as_of` are left out. Durable products the
    customer already bought are dropped unless `keep_purchased`, which adds every product the
    customer bought as a `buy_again` candidate.
    """
    known = np.asarray([c for c in dict.fromkeys(customer_ids) if c in stage1.ease.user_index_], dtype=object)
    if len(known) == 0:
        return pd.DataFrame(columns=[CUSTOMER_ID, PRODUCT_ID, CATEGORY, *FEATURES])
    rows = stage1.ease.user_items_[stage1.ease.user_index_.get_indexer(known)]
    n = min(config.n_per_source, len(stage1.items) - 1)
    long = [
        _long_from_arrays(known, *stage1.ease.recommend(rows, k=n), SOURCE_EASE),
        _long_from_arrays(known, *stage1.knn.recommend(rows, k=n), SOURCE_KNN),
        _category_candidates(stage1, known, config),
        _cross(known, stage1.popular).assign(**{CANDIDATE_SOURCE: SOURCE_POPULAR}),
        _buy_again_candidates(stage1, known, config, keep_purchased),
    ]
    long = pd.concat([frame for frame in long if len(frame)], ignore_index=True)
    long[_RANK] = long.groupby([CUSTOMER_ID, CANDIDATE_SOURCE], sort=False).cumcount() + 1.0
    wide = long.pivot_table(index=[CUSTOMER_ID, PRODUCT_ID], columns=CANDIDATE_SOURCE, values=[_SCORE, _RANK])
    candidates = pd.DataFrame(index=wide.index)
    for source in SOURCES:
        present = (_SCORE, source) in wide.columns
        candidates[candidate_score(source)] = wide[(_SCORE, source)] if present else np.nan
        candidates[candidate_rank(source)] = wide[(_RANK, source)] if present else np.nan
    candidates = candidates.reset_index().sort_values([CUSTOMER_ID, PRODUCT_ID], kind="stable", ignore_index=True)

    items = stage1.items.reindex(candidates[PRODUCT_ID])
    candidates[CATEGORY] = items[CATEGORY].to_numpy()
    for name in (ITEM_BUYERS_TOTAL, ITEM_BUYERS_90D, IS_REPLENISHABLE):
        candidates[name] = items[name].to_numpy(dtype=np.float64)
    candidates = candidates.merge(stage1.category_shares, on=[CUSTOMER_ID, CATEGORY], how="left")
    candidates = candidates.merge(stage1.purchases, on=[CUSTOMER_ID, PRODUCT_ID], how="left")
    candidates[ITEM_CATEGORY_SHARE] = candidates[ITEM_CATEGORY_SHARE].fillna(0.0)
    candidates[ITEM_PURCHASES_TOTAL] = candidates[ITEM_PURCHASES_TOTAL].fillna(0.0)
    if not keep_purchased:
        bought_durable = (candidates[ITEM_PURCHASES_TOTAL] > 0) & (candidates[IS_REPLENISHABLE] == 0)
        candidates = candidates[~bought_durable].reset_index(drop=True)
    return candidates[[CUSTOMER_ID, PRODUCT_ID, CATEGORY, *FEATURES]]


class TwoStageRecommender:
    """Candidates from several sources, ranked by a LightGBM lambdarank model (see the module docstring).

    Fitted attributes: `ranker_` (LGBMRanker), `stage1_` (candidate sources as of `as_of_`),
    `as_of_`, `feature_names_`, `training_groups_` and `training_rows_`.
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
        bought in [c, c + horizon_days). Only customers with history before c and at least one
        bought candidate form a training group. Stage 1 is refitted on the purchases before
        `as_of_ = max(cutoffs) + horizon_days`. Raises ValueError when no cutoff yields a group.
        """
        if horizon_days < 1:
            raise ValueError(f"horizon_days must be positive, got {horizon_days}")
        cutoffs = sorted({pd.Timestamp(c) for c in as_of_cutoffs})
        if not cutoffs:
            raise ValueError("as_of_cutoffs is empty")
        candidate_config = self.candidates or CandidateConfig()
        ranker_config = self.ranker or RankerConfig()

        groups = []
        for cutoff in cutoffs:
            labels = make_product_sets(transactions, cutoff, horizon_days)
            if labels.empty:
                continue
            stage1 = fit_stage1(transactions, products, cutoff, candidate_config)
            candidates = build_candidates(stage1, labels[CUSTOMER_ID].tolist(), candidate_config)
            bought = labels.explode(PRODUCTS_BOUGHT)
            positives = pd.MultiIndex.from_arrays([bought[CUSTOMER_ID], bought[PRODUCTS_BOUGHT]])
            candidates[_LABEL] = pd.MultiIndex.from_frame(candidates[[CUSTOMER_ID, PRODUCT_ID]]).isin(positives)
            with_positive = candidates.groupby(CUSTOMER_ID, sort=False)[_LABEL].transform("any")
            groups.append(candidates[with_positive])
        training = pd.concat(groups, ignore_index=True) if groups else pd.DataFrame()
        if training.empty:
            raise ValueError("no cutoff has a customer with a bought candidate in its label window")

        # Rows are already contiguous per (cutoff, customer): groups are the runs of equal customer ids
        # within each cutoff's block, in order.
        sizes = np.concatenate([g.groupby(CUSTOMER_ID, sort=False).size().to_numpy() for g in groups if len(g)])
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
        self.ranker_.fit(training[list(FEATURES)].to_numpy(np.float64), training[_LABEL].to_numpy(int), group=sizes)
        self.feature_names_ = list(FEATURES)
        self.training_groups_ = len(sizes)
        self.training_rows_ = len(training)
        self.as_of_ = cutoffs[-1] + horizon_days * DAY
        self.horizon_days_ = horizon_days
        self.candidate_config_ = candidate_config
        self.stage1_ = fit_stage1(transactions, products, self.as_of_, candidate_config)
        return self

    def recommend(
        self,
        customer_ids: Sequence[str],
        k: int = 10,
        exclude_purchased: bool = True,
        include_restock: bool = True,
    ) -> pd.DataFrame:
        """Top-k products per customer as of `as_of_`: customer_id, product_id, rank (1 best), score, reason.

        Customers come out in the order given, each with at most k rows, best first. With
        `exclude_purchased`, products the customer bought before are left out, except, when
        `include_restock`, consumables whose replenishment cycle is at least half over ("time to
        restock"). Customers with no purchases before `as_of_` get the most popular items of the
        last 90 days (score: share of customers who bought it; reason "popular in <category>").
        """
        if k < 1:
            raise ValueError(f"k must be positive, got {k}")
        stage1, config = self.stage1_, self.candidate_config_
        wanted = list(dict.fromkeys(customer_ids))
        candidates = build_candidates(stage1, wanted, config, keep_purchased=not exclude_purchased)
        if exclude_purchased and not include_restock:
            candidates = candidates[candidates[ITEM_PURCHASES_TOTAL] == 0]
        candidates = candidates.assign(
            **{RECOMMENDATION_SCORE: self.ranker_.predict(candidates[self.feature_names_].to_numpy(np.float64))}
            if len(candidates)
            else {RECOMMENDATION_SCORE: np.array([], dtype=np.float64)}
        )
        ranked = candidates.sort_values([CUSTOMER_ID, RECOMMENDATION_SCORE, PRODUCT_ID], ascending=[True, False, True])
        top = ranked.groupby(CUSTOMER_ID, sort=False).head(k).reset_index(drop=True)
        top[RECOMMENDATION_REASON] = _reasons(top, stage1)

        cold = [c for c in wanted if c not in stage1.ease.user_index_]
        parts = [top]
        if cold:
            popular = stage1.popular.head(k)
            categories = stage1.items[CATEGORY].reindex(popular[PRODUCT_ID]).to_numpy()
            parts.append(
                _cross(np.asarray(cold, dtype=object), popular).assign(
                    **{
                        RECOMMENDATION_SCORE: lambda df: df[_SCORE],
                        RECOMMENDATION_REASON: np.tile(
                            [REASON_POPULAR.format(category=c) for c in categories], len(cold)
                        ),
                    }
                )
            )
        result = pd.concat(parts, ignore_index=True)
        result[RECOMMENDATION_RANK] = result.groupby(CUSTOMER_ID, sort=False).cumcount() + 1
        order = pd.Index(wanted).get_indexer(result[CUSTOMER_ID])
        result = result.iloc[np.lexsort((result[RECOMMENDATION_RANK].to_numpy(), order))].reset_index(drop=True)
        columns = [CUSTOMER_ID, PRODUCT_ID, RECOMMENDATION_RANK, RECOMMENDATION_SCORE, RECOMMENDATION_REASON]
        return result[columns]


# ---------------------------------------------------------------------------
# Helpers.
# ---------------------------------------------------------------------------
def _item_table(products: pd.DataFrame) -> pd.DataFrame:
    """Catalogue sorted by product id: category and whether it is a consumable."""
    replenishment = products[REPLENISHMENT_DAYS] if REPLENISHMENT_DAYS in products.columns else np.nan
    items = pd.DataFrame(
        {
            CATEGORY: products[CATEGORY].to_numpy(),
            REPLENISHMENT_DAYS: pd.to_numeric(pd.Series(replenishment, index=products.index)).to_numpy(),
        },
        index=pd.Index(products[PRODUCT_ID].astype(object), name=PRODUCT_ID),
    ).sort_index()
    if not items.index.is_unique:
        raise ValueError("products has duplicate product ids")
    return items.assign(**{IS_REPLENISHABLE: (items[REPLENISHMENT_DAYS] > 0).astype(np.float64)})


def _buyer_share(history: pd.DataFrame, item_ids: pd.Index, n_customers: int) -> np.ndarray:
    buyers = history.groupby(PRODUCT_ID)[CUSTOMER_ID].nunique().reindex(item_ids, fill_value=0)
    return buyers.to_numpy(np.float64) / max(n_customers, 1)


def _purchase_pairs(history: pd.DataFrame, items: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """Per (customer, product) bought: times bought, days since the last time, and the due ratio.

    The due ratio is days since the last purchase over the customer's own median gap between
    purchases of the product (gaps under a day are ignored), or over the product's
    replenishment_days when there is no such gap; it is empty for durable products.
    """
    ordered = history.sort_values([CUSTOMER_ID, PRODUCT_ID, TIMESTAMP], kind="stable")
    keys = [ordered[CUSTOMER_ID], ordered[PRODUCT_ID]]
    days_ago = (as_of - ordered[TIMESTAMP]) / DAY
    gaps = -days_ago.groupby(keys, sort=False).diff()
    pairs = pd.DataFrame({_DAYS_AGO: days_ago, _GAP_DAYS: gaps.where(gaps >= 1)}).groupby(keys, sort=True)
    summary = pd.DataFrame(
        {
            ITEM_PURCHASES_TOTAL: pairs.size().astype(np.float64),
            DAYS_SINCE_ITEM_PURCHASE: pairs[_DAYS_AGO].min(),
            _GAP_DAYS: pairs[_GAP_DAYS].median(),
        }
    )
    summary.index.names = [CUSTOMER_ID, PRODUCT_ID]
    summary = summary.reset_index()
    nominal = items[REPLENISHMENT_DAYS].reindex(summary[PRODUCT_ID]).to_numpy()
    cycle = summary[_GAP_DAYS].fillna(pd.Series(nominal, index=summary.index))
    replenishable = nominal > 0
    summary[ITEM_REPLENISHMENT_DUE_RATIO] = np.where(replenishable, summary[DAYS_SINCE_ITEM_PURCHASE] / cycle, np.nan)
    return summary.drop(columns=_GAP_DAYS)


def _long_from_arrays(customers: np.ndarray, items: np.ndarray, scores: np.ndarray, source: str) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            CUSTOMER_ID: np.repeat(customers, items.shape[1]),
            PRODUCT_ID: items.ravel(),
            _SCORE: scores.ravel().astype(np.float64),
        }
    )
    frame = frame[frame[PRODUCT_ID].notna() & np.isfinite(frame[_SCORE])]
    return frame.assign(**{CANDIDATE_SOURCE: source})


def _cross(customers: np.ndarray, ranked_items: pd.DataFrame) -> pd.DataFrame:
    """Every customer with every row of `ranked_items` (product_id, score), in that order."""
    return pd.DataFrame(
        {
            CUSTOMER_ID: np.repeat(customers, len(ranked_items)),
            PRODUCT_ID: np.tile(ranked_items[PRODUCT_ID].to_numpy(), len(customers)),
            _SCORE: np.tile(ranked_items[_SCORE].to_numpy(np.float64), len(customers)),
        }
    )


def _category_candidates(stage1: Stage1, customers: np.ndarray, config: CandidateConfig) -> pd.DataFrame:
    shares = stage1.category_shares[stage1.category_shares[CUSTOMER_ID].isin(customers)]
    shares = shares.sort_values([CUSTOMER_ID, ITEM_CATEGORY_SHARE, CATEGORY], ascending=[True, False, True])
    top = shares.groupby(CUSTOMER_ID, sort=False).head(config.n_top_categories)
    pairs = top.merge(stage1.category_top, on=CATEGORY, how="inner")
    pairs[_SCORE] = pairs[ITEM_CATEGORY_SHARE] * pairs[_SCORE]
    pairs = pairs.sort_values([CUSTOMER_ID, _SCORE, PRODUCT_ID], ascending=[True, False, True])
    return pairs[[CUSTOMER_ID, PRODUCT_ID, _SCORE]].assign(**{CANDIDATE_SOURCE: SOURCE_CATEGORY_POPULARITY})


def _buy_again_candidates(
    stage1: Stage1, customers: np.ndarray, config: CandidateConfig, keep_purchased: bool
) -> pd.DataFrame:
    pairs = stage1.purchases[stage1.purchases[CUSTOMER_ID].isin(customers)]
    due = pairs[ITEM_REPLENISHMENT_DUE_RATIO] >= config.due_ratio_min
    if not keep_purchased:
        pairs = pairs[due]
    # durable items (no due ratio) rank after the consumables, most often bought first
    score = pairs[ITEM_REPLENISHMENT_DUE_RATIO].fillna(-1.0 / (1.0 + pairs[ITEM_PURCHASES_TOTAL]))
    frame = pd.DataFrame({CUSTOMER_ID: pairs[CUSTOMER_ID], PRODUCT_ID: pairs[PRODUCT_ID], _SCORE: score})
    frame = frame.sort_values([CUSTOMER_ID, _SCORE, PRODUCT_ID], ascending=[True, False, True])
    return frame.assign(**{CANDIDATE_SOURCE: SOURCE_BUY_AGAIN})


def _reasons(top: pd.DataFrame, stage1: Stage1) -> list[str]:
    """A short reason per recommended row: restock, bought together with X, popular in a category, or similar customers.

    "Bought together with X" names the customer's past product with the highest item-kNN
    similarity to the recommended one.
    """
    if top.empty:
        return []
    knn = stage1.knn
    positions = knn.item_index_.get_indexer(top[PRODUCT_ID])
    anchors = np.full(len(top), None, dtype=object)
    similar = top[[candidate_score(source) for source in SIMILARITY_SOURCES]].notna().any(axis=1).to_numpy()
    for customer, rows in top.groupby(CUSTOMER_ID, sort=False).indices.items():
        rows = rows[similar[rows]]
        if not len(rows):
            continue
        history = knn.user_items_[knn.user_index_.get_loc(customer)].indices
        if not len(history):
            continue
        weights = knn.similarity_[positions[rows]][:, history].toarray()
        best = weights.argmax(axis=1)
        found = weights[np.arange(len(rows)), best] > 0
        anchors[rows[found]] = knn.item_ids_[history[best[found]]]

    reasons = []
    bought = top[ITEM_PURCHASES_TOTAL].to_numpy() > 0
    replenishable = top[IS_REPLENISHABLE].to_numpy() > 0
    from_category = top[candidate_score(SOURCE_CATEGORY_POPULARITY)].notna().to_numpy()
    for i, category in enumerate(top[CATEGORY].to_numpy()):
        if bought[i]:
            reasons.append(REASON_RESTOCK if replenishable[i] else REASON_BOUGHT_BEFORE)
        elif anchors[i] is not None:
            reasons.append(REASON_BOUGHT_TOGETHER.format(product=anchors[i]))
        elif similar[i] and not from_category[i]:
            reasons.append(REASON_SIMILAR_CUSTOMERS)
        else:
            reasons.append(REASON_POPULAR.format(category=category))
    return reasons
