"""The recommender: a ranker fitted on rolling label windows, judged beside baselines on the test window.

The ranker is fitted on `recommender.n_cutoffs` label windows of `recommender.horizon_days`, a
horizon apart, all ending at or before the test cutoff. The candidates of the race are the
two-stage model and the baseline recommenders (`models.recommender.baselines`: popularity,
item-kNN, EASE, buy-again first), which share its candidate sources, rules and reasons and differ
only in how they rank; all are scored on the test window's customers, overall and on the items new
to each customer. The version registered for serving has its candidate sources refitted on every
purchase before as_of.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features import schema as s
from features.labels import CutoffPlan, plan_cutoffs
from models import recommender_evaluation as evaluation
from models.names import RECOMMENDER
from models.ranking_metrics import per_user_scores
from models.recommender import BASELINES, CandidateConfig, RankerConfig, TwoStageRecommender
from models.recommender_evaluation import EvaluationWindow
from pipelines.errors import UserError
from pipelines.settings import Settings

# The gate's metric: NDCG of the top 10, always evaluated whatever recommender.ks says.
GATE_K = 10
PRIMARY_METRIC = evaluation.metric_name("ndcg", GATE_K)
MODEL = "model"
ALL_ITEMS = "all"
NEW_ITEMS = evaluation.NEW_ITEMS


@dataclass
class RecommenderResult:
    """A fitted recommender, its test-window metrics beside the baselines, and the model to serve."""

    name: str
    plan: CutoffPlan
    horizon_days: int
    ks: tuple[int, ...]
    evaluated: TwoStageRecommender  # stage 1 as of the test cutoff: what the metrics measure
    served: TwoStageRecommender  # the same ranker, stage 1 refitted on every purchase before as_of
    window: EvaluationWindow
    metrics: dict[str, dict[str, float]]  # MODEL and each baseline
    per_user: dict[str, dict[str, np.ndarray]]  # candidate -> ALL_ITEMS / NEW_ITEMS -> NDCG@10 per window customer
    candidates: CandidateConfig
    ranker: RankerConfig

    def served_candidate(self, name: str) -> TwoStageRecommender:
        """What serving the candidate means: the model, or a baseline on the model's refreshed sources."""
        return self.served if name == MODEL else self.served.as_baseline(name)


def recommender_tables(tables: dict[str, pd.DataFrame]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Transactions and products, or a UserError when there is nothing to recommend from."""
    if s.PRODUCTS not in tables or tables[s.PRODUCTS].empty:
        raise UserError(f"{RECOMMENDER}: needs the products table; train the others with --models churn,propensity")
    transactions, products = tables[s.TRANSACTIONS], tables[s.PRODUCTS]
    bought = transactions.loc[s.is_purchase(transactions[s.QUANTITY]), s.PRODUCT_ID].nunique()
    if bought < 2:
        raise UserError(
            f"{RECOMMENDER}: customers bought {bought} distinct product(s); nothing to recommend "
            "(train the others with --models churn,propensity)"
        )
    return transactions, products


def train_recommender(
    tables: dict[str, pd.DataFrame],
    as_of: pd.Timestamp,
    settings: Settings,
    evaluate_at: pd.Timestamp | None = None,
) -> RecommenderResult:
    """Fit the ranker on cutoffs whose label windows end at or before the test cutoff, evaluate it and
    the baselines on the test window, and refresh its candidates on all history before as_of."""
    config = settings.recommender
    horizon = config.horizon_days
    transactions, products = recommender_tables(tables)
    first_purchase = transactions.loc[s.is_purchase(transactions[s.QUANTITY]), s.TIMESTAMP].min()
    try:
        plan = plan_cutoffs(
            as_of, horizon, config.n_cutoffs, horizon, data_start=first_purchase, test_cutoff=evaluate_at
        )
        window = evaluation.make_test_window(transactions, products, plan.test, horizon)
    except ValueError as error:
        raise UserError(f"{RECOMMENDER}: {error}") from error
    candidates, ranker = CandidateConfig(), RankerConfig()
    try:
        model = TwoStageRecommender(candidates, ranker).fit(transactions, products, plan.train, horizon)
    except ValueError as error:
        raise UserError(
            f"{RECOMMENDER}: {error}; the history before {plan.test.date()} is too short for its "
            f"{horizon}-day training windows (got {len(plan.train)})"
        ) from error
    # the last label window ends at the test cutoff, so stage 1 already sees exactly the history before it
    evaluated = model if model.as_of_ == plan.test else model.refresh_candidates(transactions, products, plan.test)
    ks = tuple(sorted(set(config.ks) | {GATE_K}))
    racers = {MODEL: evaluated, **{name: evaluated.as_baseline(name) for name in BASELINES}}
    lists = {name: evaluation.recommend_lists(racer, window, max(ks)) for name, racer in racers.items()}
    metrics = {name: evaluation.evaluate_lists(found, window, ks) for name, found in lists.items()}
    per_user = {name: per_user_ndcg(found, window) for name, found in lists.items()}
    served = model.refresh_candidates(transactions, products, as_of)
    return RecommenderResult(
        RECOMMENDER, plan, horizon, ks, evaluated, served, window, metrics, per_user, candidates, ranker
    )


def per_user_ndcg(lists: list[list[str]], window: EvaluationWindow) -> dict[str, np.ndarray]:
    """NDCG@10 of each window customer on all relevant items and on the items new to them (NaN: none)."""
    return {
        ALL_ITEMS: per_user_scores(lists, window.relevant, GATE_K),
        NEW_ITEMS: per_user_scores(lists, window.new_items, GATE_K),
    }
