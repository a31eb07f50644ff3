"""TwoStageRecommender: fit the ranker over stage-1 candidates, then serve lists, similar items and cart completions."""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import pandas as pd

from features.labels import make_product_pairs
from features.records import day_of
from features.schema import PRODUCT_ID, RECOMMENDATION_REASON, TIMESTAMP
from models.recommender.baselines import BASELINE_SCORES
from models.recommender.candidates import FEATURES
from models.recommender.catalogue import DAY, build_catalogue, code_customer_lines, code_lines
from models.recommender.config import CandidateConfig, RankerConfig
from models.recommender.ranking import (
    ListPart,
    RecommendationLists,
    build_result_frame,
    build_result_lists,
    predict_scores,
    rank_known_customers,
    recommend_cold_start,
)
from models.recommender.reasons import REASON_BOUGHT_TOGETHER, REASON_POPULAR
from models.recommender.rules import RecommendationRules, make_rules, resolve_rules
from models.recommender.stage1 import Stage1, fit_stage1
from models.recommender.training import TrainingBlock, build_training_block, fit_ranker

SIMILARITY = "similarity"  # the score column of similar_items / bought_together


class TwoStageRecommender:
    """Candidates from several sources, ranked by a LightGBM lambdarank model (see the package docstring).

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
            if bought.empty or not (lines.day < day_of(cutoff)).any():
                continue
            stage1 = fit_stage1(lines, catalogue, cutoff, candidate_config)
            blocks.append(build_training_block(stage1, bought, candidate_config, ranker_config, number))
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
            blocks.append(build_training_block(stage1, bought, candidate_config, ranker_config, number))
        self._fit_ranker(blocks, ranker_config)
        self.as_of_ = pd.Timestamp(as_of)
        self.horizon_days_ = None
        self.candidate_config_ = candidate_config
        self.stage1_ = fit_stage1(code_lines(transactions, catalogue), catalogue, self.as_of_, candidate_config)
        return self

    def _fit_ranker(self, blocks: list[TrainingBlock | None], ranker_config: RankerConfig) -> None:
        self.ranker_, self.training_groups_, self.training_rows_ = fit_ranker(blocks, ranker_config)
        self.feature_names_ = list(FEATURES)

    def stale_reason(self) -> str | None:
        """Why this fitted model cannot run on this code (None: it can). A model pickled by an older
        version keeps its ranker, fitted on that version's candidate features: scoring this version's
        rows with it would fail at the first request."""
        fitted = getattr(self, "feature_names_", None)
        if fitted is None or list(fitted) == list(FEATURES):
            return None
        return f"its ranker was fitted on {len(fitted)} candidate features and this code builds {len(FEATURES)}"

    def _score_candidates(self, features: np.ndarray) -> np.ndarray:
        """The ranker's score per candidate row (higher first)."""
        return predict_scores(self.ranker_.booster_, features)

    def as_baseline(self, name: str) -> BaselineRecommender:
        """A recommender with these candidate sources, rules and reasons, ranked by a baseline rule
        (`models.recommender.baselines`) instead of the ranker: shares the fitted stage 1, costs nothing."""
        if name not in BASELINE_SCORES:
            raise ValueError(f"unknown baseline {name!r}; choose from {', '.join(BASELINE_SCORES)}")
        baseline = BaselineRecommender.__new__(BaselineRecommender)
        baseline.__dict__.update({key: value for key, value in self.__dict__.items() if key != "ranker_"})
        baseline.baseline_ = name
        return baseline

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
        rules: RecommendationRules | None = None,
        **rule_values,
    ) -> pd.DataFrame:
        """Top-k products per customer as of `as_of_`: customer_id, product_id, rank (1 best), score, reason.

        Customers come out in the order given, each with at most k rows, best first. The query-time
        rules come as one `RecommendationRules` or as its fields by keyword (`max_per_category=2`),
        not both; unknown keywords raise TypeError, invalid values and unknown categories ValueError.
        Customers with no purchases before `as_of_` get the most popular products of the last 90
        days that pass the rules (score: share of customers who bought it; reason "popular in
        <category>"); new products enter through their category's popularity.
        """
        parts, wanted = self._rank(self.stage1_, customer_ids, k, make_rules(rules, rule_values))
        return build_result_frame(parts, wanted, self.stage1_.catalogue)

    def recommend_lists(
        self, customer_ids: Sequence[str], k: int = 10, rules: RecommendationRules | None = None
    ) -> RecommendationLists:
        """`recommend` as arrays instead of a frame (for a request: the frame costs more than the ranking)."""
        parts, wanted = self._rank(self.stage1_, customer_ids, k, make_rules(rules, {}))
        return build_result_lists(parts, wanted, self.stage1_.catalogue)

    def recommend_for_history(
        self,
        customer_id: str,
        transactions: pd.DataFrame,
        as_of: pd.Timestamp | None = None,
        k: int = 10,
        rules: RecommendationRules | None = None,
        **rule_values,
    ) -> pd.DataFrame:
        """`recommend([customer_id], k, rules)` computed from this customer's `transactions` instead of the fit's.

        The item models (similarities, popularity) stay as fitted; the customer's own purchases,
        categories and restock timing come from `transactions` before `as_of` (default: just after
        their latest line, and never before `as_of_`). This is how a purchase that arrived after
        the fit changes the list at once. Rows of other customers in `transactions` are ignored.
        """
        stage1 = self._stage1_for_history(customer_id, transactions, as_of)
        parts, wanted = self._rank(stage1, [customer_id], k, make_rules(rules, rule_values))
        return build_result_frame(parts, wanted, stage1.catalogue)

    def recommend_lists_for_history(
        self,
        customer_id: str,
        transactions: pd.DataFrame,
        as_of: pd.Timestamp | None = None,
        k: int = 10,
        rules: RecommendationRules | None = None,
    ) -> RecommendationLists:
        """`recommend_for_history` as arrays instead of a frame (the service's POST /recommend); the
        rules as one `RecommendationRules` or None."""
        stage1 = self._stage1_for_history(customer_id, transactions, as_of)
        parts, wanted = self._rank(stage1, [customer_id], k, make_rules(rules, {}))
        return build_result_lists(parts, wanted, stage1.catalogue)

    def _stage1_for_history(self, customer_id: str, transactions: pd.DataFrame, as_of: pd.Timestamp | None) -> Stage1:
        lines, latest = code_customer_lines(transactions, customer_id, self.stage1_.catalogue)
        if as_of is None:
            latest = self.as_of_ if latest is None else latest
            as_of = max(self.as_of_, pd.Timestamp(latest) + pd.Timedelta(microseconds=1))
        return self.stage1_.for_lines(lines, pd.Timestamp(as_of))

    def _rank(
        self, stage1: Stage1, customer_ids: Sequence[str], k: int, rules: RecommendationRules
    ) -> tuple[list[ListPart], list[str]]:
        """(the list parts of known and cold-start customers, the customers asked, each once in order)."""
        if k < 1:
            raise ValueError(f"k must be positive, got {k}")
        catalogue = stage1.catalogue
        resolved = resolve_rules(rules, catalogue)
        wanted = list(dict.fromkeys(customer_ids))
        codes = stage1.codes_of(wanted)
        allowed = resolved.allowed_items(catalogue)
        parts = []
        known_positions = np.flatnonzero(codes >= 0)
        batch = self.candidate_config_.batch_size
        for start in range(0, len(known_positions), batch):
            positions = known_positions[start : start + batch]
            batch_stage1 = stage1.restricted_to(codes[positions])
            parts.append(
                rank_known_customers(
                    self._score_candidates,
                    self.candidate_config_,
                    batch_stage1,
                    positions,
                    codes[positions],
                    k,
                    resolved,
                    allowed,
                )
            )
        cold_positions = np.flatnonzero(codes < 0)
        if len(cold_positions):
            parts.append(recommend_cold_start(stage1, cold_positions, k, allowed, resolved.max_per_category))
        return parts, wanted

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
            fill = _popular_in_cart_categories(stage1, cart, related, k - len(related))
            reasons += [REASON_POPULAR.format(category=catalogue.categories[c]) for c in catalogue.category[fill]]
            related = np.concatenate([related, fill])
        return pd.DataFrame(
            {
                PRODUCT_ID: catalogue.ids[related],
                SIMILARITY: scores[related].astype(np.float64),
                RECOMMENDATION_REASON: reasons,
            }
        )


def _popular_in_cart_categories(stage1: Stage1, cart: np.ndarray, related: np.ndarray, n: int) -> np.ndarray:
    """The n most popular products of the cart's categories, outside the cart and `related`."""
    catalogue = stage1.catalogue
    allowed = np.isin(catalogue.category, catalogue.category[cart])
    allowed[cart] = False
    allowed[related] = False
    return stage1.popular_order[allowed[stage1.popular_order]][:n]


class BaselineRecommender(TwoStageRecommender):
    """A `TwoStageRecommender` whose candidates are ranked by a baseline rule (`baseline_`), not a ranker.

    Made by `TwoStageRecommender.as_baseline`; served, refreshed and registered like the model.
    """

    def _score_candidates(self, features: np.ndarray) -> np.ndarray:
        return BASELINE_SCORES[self.baseline_](features)
