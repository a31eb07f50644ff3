"""The recommender: a ranker fitted on examples the validation protocol allows, judged beside baselines.

The protocol (`recommender.protocol`, decided from the data when "auto": see
`models.recommender_evaluation.choose_protocol`):
- temporal: the ranker is fitted on `recommender.n_cutoffs` label windows of
  `recommender.horizon_days`, a horizon apart, all ending at or before the test cutoff; the test set
  is the latest complete window before as_of.
- per_customer: each customer's last `recommender.held_out_share` of purchases is the test set; the
  ranker is fitted on the same split applied again to the rest (`n_cutoffs` times, nested), so
  nothing it learns from is held out.
The candidates of the race are the two-stage model and the baseline recommenders
(`models.recommender.baselines`: popularity, item-kNN, EASE, buy-again first), which share its
candidate sources, rules and reasons and differ only in how they rank; all are scored on the same
customers, overall and on the items new to each customer. The version registered for serving has
its candidate sources refitted on every purchase before as_of.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features import schema as s
from features.labels import CutoffPlan
from models import recommender_evaluation as evaluation
from models.names import RECOMMENDER
from models.ranking_metrics import per_user_scores
from models.recommender import BASELINES, CandidateConfig, RankerConfig, TwoStageRecommender
from models.recommender_evaluation import EvaluationWindow
from pipelines.errors import UserError
from pipelines.settings import RecommenderSettings, Settings
from pipelines.training.cutoffs import CutoffRequest, plan_training_cutoffs

# The gate's metric: NDCG of the top 10, always evaluated whatever recommender.ks says.
GATE_K = 10
PRIMARY_METRIC = evaluation.metric_name("ndcg", GATE_K)
MODEL = "model"
ALL_ITEMS = "all"
NEW_ITEMS = evaluation.NEW_ITEMS
AUTO = "auto"
# the way out when the history holds too few time windows
PER_CUSTOMER = "--set recommender.protocol=per_customer"


@dataclass
class RecommenderResult:
    """A fitted recommender, its held-out metrics beside the baselines, and the model to serve."""

    name: str
    protocol: evaluation.ProtocolChoice
    plan: CutoffPlan | None  # the temporal protocol's cutoffs; None per customer
    horizon_days: int | None  # the temporal test window's length; None per customer
    ks: tuple[int, ...]
    evaluated: TwoStageRecommender  # stage 1 as the test set's scorers see it: what the metrics measure
    measured_on: pd.DataFrame  # the transactions stage 1 sees when measured (a champion is refreshed on them)
    served: TwoStageRecommender  # the same ranker, stage 1 refitted on every purchase before as_of
    window: EvaluationWindow
    metrics: dict[str, dict[str, float]]  # MODEL and each baseline
    per_user: dict[str, dict[str, np.ndarray]]  # candidate -> ALL_ITEMS / NEW_ITEMS -> NDCG@10 per window customer
    candidates: CandidateConfig
    ranker: RankerConfig
    held_out_share: float | None = None  # per customer: the share of each customer's purchases held out
    held_out: str | None = None  # per customer: "last" or "random" (`recommender.held_out`)

    def served_candidate(self, name: str) -> TwoStageRecommender:
        """What serving the candidate means: the model, or a baseline on the model's refreshed sources."""
        return self.served if name == MODEL else self.served.as_baseline(name)

    @property
    def test_description(self) -> str:
        """The test set in words: `test window 2025-09-01 +30d` or `each customer's last 25% of purchases`."""
        if self.plan is None and self.held_out == "random":
            return f"a random {self.held_out_share:.0%} of each customer's purchases"
        if self.plan is None:
            return f"each customer's last {self.held_out_share:.0%} of purchases"
        return f"test window {self.plan.test.date()} +{self.horizon_days}d"

    @property
    def train_cutoffs(self) -> tuple[pd.Timestamp, ...]:
        return () if self.plan is None else self.plan.train


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


def decide_protocol(
    transactions: pd.DataFrame,
    as_of: pd.Timestamp,
    settings: RecommenderSettings,
    evaluate_at: pd.Timestamp | None = None,
) -> evaluation.ProtocolChoice:
    """The validation protocol: the setting when it names one, a time window when `--evaluate-at` asks
    for one, else what the data supports (customers coming back in the latest window)."""
    if settings.protocol != AUTO:
        return evaluation.ProtocolChoice(settings.protocol, "set by recommender.protocol")
    if evaluate_at is not None:
        return evaluation.ProtocolChoice(evaluation.TEMPORAL, "--evaluate-at names a test window")
    return evaluation.choose_protocol(
        transactions,
        as_of,
        settings.horizon_days,
        settings.min_window_customers,
        settings.min_window_share,
    )


def train_recommender(
    tables: dict[str, pd.DataFrame],
    as_of: pd.Timestamp,
    settings: Settings,
    evaluate_at: pd.Timestamp | None = None,
) -> RecommenderResult:
    """Fit the ranker by the chosen protocol, race it against the baselines on the held-out set, and
    refresh its candidates on all history before as_of for serving."""
    transactions, products = recommender_tables(tables)
    protocol = decide_protocol(transactions, as_of, settings.recommender, evaluate_at)
    fit = _fit_temporal if protocol.protocol == evaluation.TEMPORAL else _fit_per_customer
    fitted = fit(transactions, products, as_of, settings.recommender, evaluate_at)
    ks = tuple(sorted(set(settings.recommender.ks) | {GATE_K}))
    evaluated, window = fitted.evaluated, fitted.window
    racers = {MODEL: evaluated, **{name: evaluated.as_baseline(name) for name in BASELINES}}
    lists = {name: evaluation.recommend_lists(racer, window, max(ks)) for name, racer in racers.items()}
    return RecommenderResult(
        name=RECOMMENDER,
        protocol=protocol,
        plan=fitted.plan,
        horizon_days=fitted.plan.horizon_days if fitted.plan else None,
        ks=ks,
        evaluated=evaluated,
        measured_on=fitted.measured_on,
        served=evaluated.refresh_candidates(transactions, products, as_of),
        window=window,
        metrics={name: evaluation.evaluate_lists(found, window, ks) for name, found in lists.items()},
        per_user={name: per_user_ndcg(found, window) for name, found in lists.items()},
        candidates=fitted.candidates,
        ranker=fitted.ranker,
        held_out_share=None if fitted.plan else settings.recommender.held_out_share,
        held_out=None if fitted.plan else settings.recommender.held_out,
    )


@dataclass
class _Fitted:
    plan: CutoffPlan | None
    window: EvaluationWindow
    evaluated: TwoStageRecommender
    measured_on: pd.DataFrame
    candidates: CandidateConfig
    ranker: RankerConfig


def _fit_temporal(
    transactions: pd.DataFrame,
    products: pd.DataFrame,
    as_of: pd.Timestamp,
    config: RecommenderSettings,
    evaluate_at: pd.Timestamp | None,
) -> _Fitted:
    """Label windows a horizon apart, ending at or before the test cutoff; the test set is its window."""
    horizon = config.horizon_days
    request = CutoffRequest(
        model=RECOMMENDER,
        horizon_days=horizon,
        n_cutoffs=config.n_cutoffs,
        step_days=None,
        min_cutoffs=1,
        horizon_key="recommender.horizon_days",
        alternatives=(PER_CUSTOMER,),
    )
    plan = plan_training_cutoffs(request, transactions, as_of, evaluate_at)
    try:
        window = evaluation.make_test_window(transactions, products, plan.test, horizon)
    except ValueError as error:
        raise UserError(f"{RECOMMENDER}: {error}") from error
    candidates, ranker = CandidateConfig(), RankerConfig()
    try:
        model = TwoStageRecommender(candidates, ranker).fit(transactions, products, plan.train, horizon)
    except ValueError as error:
        raise UserError(
            f"{RECOMMENDER}: {error}; the history before {plan.test.date()} is too short for its "
            f"{horizon}-day training windows (got {len(plan.train)}); try {PER_CUSTOMER}"
        ) from error
    # the last label window ends at the test cutoff, so stage 1 already sees exactly the history before it
    evaluated = model if model.as_of_ == plan.test else model.refresh_candidates(transactions, products, plan.test)
    return _Fitted(plan, window, evaluated, transactions, candidates, ranker)


def _fit_per_customer(
    transactions: pd.DataFrame,
    products: pd.DataFrame,
    as_of: pd.Timestamp,
    config: RecommenderSettings,
    evaluate_at: pd.Timestamp | None,
) -> _Fitted:
    """Each customer's last (or a random share of their) purchases held out; the ranker learns from the
    same split of what is left."""
    split = evaluation.HELD_OUT_SPLITS[config.held_out]
    history, held_out = split(transactions, config.held_out_share)
    try:
        window = evaluation.make_held_out_window(history, held_out, products, as_of)
    except ValueError as error:
        raise UserError(f"{RECOMMENDER}: {error} (every customer bought once?)") from error
    examples = nested_examples(history, config.held_out_share, config.n_cutoffs, split)
    candidates, ranker = CandidateConfig(), RankerConfig()
    try:
        evaluated = TwoStageRecommender(candidates, ranker).fit_examples(examples, history, products, as_of)
    except ValueError as error:
        raise UserError(
            f"{RECOMMENDER}: {error}; with each customer's last purchases held out, too few customers "
            "have enough purchases left to learn from"
        ) from error
    return _Fitted(None, window, evaluated, history, candidates, ranker)


def nested_examples(
    history: pd.DataFrame, share: float, depth: int, split=evaluation.split_last_purchases
) -> list[tuple[pd.DataFrame, pd.DataFrame]]:
    """The ranker's (history, bought) examples: `share` of each customer's purchases held out of
    `history` by `split`, then of what is left, `depth` times (or until nobody has two purchases left)."""
    examples = []
    rest = history
    for _ in range(depth):
        rest, bought = split(rest, share)
        if bought.empty:
            break
        examples.append((rest, bought[[s.CUSTOMER_ID, s.PRODUCT_ID]]))
    return examples


def per_user_ndcg(lists: list[list[str]], window: EvaluationWindow) -> dict[str, np.ndarray]:
    """NDCG@10 of each window customer on all relevant items and on the items new to them (NaN: none)."""
    return {
        ALL_ITEMS: per_user_scores(lists, window.relevant, GATE_K),
        NEW_ITEMS: per_user_scores(lists, window.new_items, GATE_K),
    }
