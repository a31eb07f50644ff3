"""Churn and propensity: binary outcomes over the customer feature rows, trained the same way.

For each family the test window is the latest complete horizon before as_of (or `--evaluate-at`);
training cutoffs step back from it, the latest of them held out for early stopping and calibration.
Each cutoff's rows are the features at that cutoff joined with the labels of its horizon.

The candidates: the project's model and three baselines (recency alone, logistic regression on
RFM, BG/NBD expected purchases), fitted on the same rows, each an `OutcomeModel` with the same
outputs that can be registered and served. All are scored on the same test rows; the gate
(`pipelines.training.gate`) picks what is served. Propensity also gives every category a probability:
its rows carry one label per category, and `pipelines.training.affinity` fits and judges the category
model and its baselines on the same train, holdout and test rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from tqdm import tqdm

from features import schema as s
from features.customer import feature_columns
from features.labels import CutoffPlan, make_churn_labels, make_purchase_labels, product_categories
from features.population import churn_population
from models.affinity import CategoryLayout
from models.baselines import BGNBD_SCORE, RfmLogisticBaseline, ScoreColumnBaseline
from models.metrics import evaluate_binary, evaluate_by_segment
from models.names import CHURN, PROPENSITY
from models.outcome import OutcomeModel, fit_outcome_model
from pipelines.errors import UserError
from pipelines.settings import BoosterSettings, ChurnSettings, PropensitySettings, Settings
from pipelines.training.affinity import AffinityResult, train_affinity
from pipelines.training.cache import FeatureCache
from pipelines.training.cutoffs import CutoffRequest, plan_training_cutoffs

PRIMARY_METRIC = "roc_auc"
MODEL = "model"
BASELINE_RECENCY = "recency"
BASELINE_RFM = "rfm_logistic"
BASELINE_BGNBD = "bgnbd"
BASELINES = (BASELINE_RECENCY, BASELINE_RFM, BASELINE_BGNBD)

# (transactions, feature rows at the cutoff, cutoff) -> customer_id plus the label columns.
LabelMaker = Callable[[pd.DataFrame, pd.DataFrame, pd.Timestamp], pd.DataFrame]


@dataclass(frozen=True)
class OutcomeFamily:
    """What differs between churn and propensity: labels, outputs, horizon, settings, baseline directions."""

    name: str
    horizon_days: int
    outputs: dict[str, str]  # output column -> label column; the first is the primary (gated, explained)
    make_labels: LabelMaker
    settings: ChurnSettings | PropensitySettings
    # +1 when a higher value of the baseline's score means the outcome is more likely
    recency_direction: int
    bgnbd_direction: int
    # propensity: every category that gets a probability (`pipelines.training.affinity`), and its label columns
    categories: tuple[str, ...] = ()
    category_labels: tuple[str, ...] = ()

    @property
    def label_column(self) -> str:
        return next(iter(self.outputs.values()))

    @property
    def primary_output(self) -> str:
        return next(iter(self.outputs))


def outcome_families(
    settings: Settings, tables: dict[str, pd.DataFrame], categories: tuple[str, ...]
) -> dict[str, OutcomeFamily]:
    """Churn and propensity as configured; each of `categories` (the reference tables' categories;
    'unknown' is left out) gets a propensity label and, through the affinity model, a probability."""
    churn, propensity = settings.churn, settings.propensity
    products = tables.get(s.PRODUCTS, pd.DataFrame(columns=[s.PRODUCT_ID, s.CATEGORY]))

    def churn_labels(transactions: pd.DataFrame, features: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
        population = features.loc[churn_population(features, churn.lookback_days), s.CUSTOMER_ID]
        return make_churn_labels(transactions, population, as_of, churn.horizon_days)

    categories = tuple(c for c in categories if c != s.UNKNOWN)

    def purchase_labels(transactions: pd.DataFrame, features: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
        return make_purchase_labels(
            transactions, features[s.CUSTOMER_ID], as_of, propensity.horizon_days, categories, products
        )

    catalogue = product_categories(products)
    return {
        CHURN: OutcomeFamily(
            name=CHURN,
            horizon_days=churn.horizon_days,
            outputs={s.CHURN_PROBABILITY: s.CHURN_LABEL},
            make_labels=churn_labels,
            settings=churn,
            recency_direction=1,
            bgnbd_direction=-1,
        ),
        PROPENSITY: OutcomeFamily(
            name=PROPENSITY,
            horizon_days=propensity.horizon_days,
            outputs={s.PURCHASE_PROBABILITY: s.PURCHASE_LABEL},
            make_labels=purchase_labels,
            settings=propensity,
            recency_direction=-1,
            bgnbd_direction=1,
            categories=categories,
            category_labels=tuple(s.category_purchase_label(c, catalogue) for c in categories),
        ),
    }


def plan_family(
    name: str,
    horizon_days: int,
    cache: FeatureCache,
    as_of: pd.Timestamp,
    settings: Settings,
    evaluate_at: pd.Timestamp | None,
) -> CutoffPlan:
    """The family's cutoffs: rolling training cutoffs (the last held out) before its test window."""
    training = settings.training
    request = CutoffRequest(
        model=name,
        horizon_days=horizon_days,
        n_cutoffs=training.n_cutoffs + 1,
        step_days=training.cutoff_step_days,
        min_cutoffs=2,  # one to fit on, and the latest held out for early stopping and calibration
        horizon_key=f"{name}.horizon_days",
        step_key="training.cutoff_step_days",
    )
    return plan_training_cutoffs(request, cache.transactions, as_of, evaluate_at)


# ---------------------------------------------------------------------------
# Training sets: features at each cutoff joined with the labels of its horizon.
# ---------------------------------------------------------------------------
def labelled_frame(family: OutcomeFamily, cache: FeatureCache, as_of: pd.Timestamp) -> pd.DataFrame:
    """Features at as_of joined with the family's labels (only customers with a label)."""
    features = cache.at(as_of).features
    labels = family.make_labels(cache.transactions, features, as_of)
    return features.merge(labels, on=s.CUSTOMER_ID, how="inner")


def build_training_set(family: OutcomeFamily, cache: FeatureCache, cutoffs: tuple[pd.Timestamp, ...]) -> pd.DataFrame:
    """Labelled frames of several cutoffs, stacked (column `as_of` tells which)."""
    frames = [
        labelled_frame(family, cache, cutoff)
        for cutoff in tqdm(cutoffs, desc=f"{family.name}: training cutoffs", leave=False)
    ]
    return pd.concat(frames, ignore_index=True)


# ---------------------------------------------------------------------------
# One family: the model and its baselines, fitted on the same rows and scored on the same test rows.
# ---------------------------------------------------------------------------
@dataclass
class TrainingResult:
    family: OutcomeFamily
    plan: CutoffPlan
    candidates: dict[str, OutcomeModel]  # MODEL first, then each baseline
    test: pd.DataFrame
    labels: dict[str, np.ndarray]  # output -> the test rows' labels (outputs with both classes there)
    scores: dict[str, dict[str, np.ndarray]]  # candidate -> output -> probability on the test rows
    uncalibrated: np.ndarray  # the model's primary output before calibration, on the test rows
    metrics: dict[str, dict[str, dict[str, float]]]  # candidate -> output -> evaluate_binary
    by_segment: pd.DataFrame
    train_rows: int
    share_older_than_training: float
    trees: bool
    affinity: AffinityResult | None = None  # propensity: the per-category candidates and their evaluation

    @property
    def name(self) -> str:
        return self.family.name

    @property
    def horizon_days(self) -> int:
        return self.family.horizon_days

    @property
    def test_description(self) -> str:
        return f"test window {self.plan.test.date()} +{self.horizon_days}d"

    @property
    def model(self) -> OutcomeModel:
        return self.candidates[MODEL]


def train_outcome_model(
    family: OutcomeFamily,
    plan: CutoffPlan,
    cache: FeatureCache,
    settings: Settings,
) -> TrainingResult:
    """Fit the family's model and baselines on rolling cutoffs before the test window; score all on it."""
    fit_cutoffs, holdout_cutoff = plan.train[:-1], plan.train[-1]
    train = build_training_set(family, cache, fit_cutoffs)
    holdout = labelled_frame(family, cache, holdout_cutoff)
    test = labelled_frame(family, cache, plan.test)
    for name, frame in (("training", train), ("holdout", holdout), ("test", test)):
        if frame[family.label_column].nunique() < 2:
            raise UserError(
                f"{family.name}: the {name} window holds a single class of '{family.label_column}'; need more data"
            )

    names = feature_columns(cache.at(holdout_cutoff).features)
    older_share = share_older_than_training(train, test)
    trees = older_share <= settings.training.max_share_older_than_training
    model = fit_outcome_model(
        family.name,
        train,
        holdout,
        names,
        family.outputs,
        **booster_arguments(family.settings.booster, settings.training.seed, trees),
        monotone_rules=family.settings.monotone,
        base_features=family.settings.base_features,
    )
    candidates = {MODEL: model, **fit_baselines(family, train, holdout, names, model.outputs)}
    labels = {
        output: test[family.outputs[output]].to_numpy()
        for output in model.outputs
        if test[family.outputs[output]].nunique() == 2
    }
    scores = {name: candidate.predict_frame(test).to_dict("series") for name, candidate in candidates.items()}
    scores = {
        name: {output: column.to_numpy() for output, column in by_output.items()} for name, by_output in scores.items()
    }
    metrics = {
        name: {output: evaluate_binary(labels[output], by_output[output]) for output in labels}
        for name, by_output in scores.items()
    }
    primary = family.primary_output
    uncalibrated = model.classifiers[primary].predict_raw(test[names])
    by_segment = evaluate_by_segment(labels[primary], scores[MODEL][primary], test[s.RFM_SEGMENT])
    affinity = None
    if family.categories:
        layout = CategoryLayout.of(names, family.categories, cache.at(holdout_cutoff).reference.categories)
        affinity = train_affinity(
            layout,
            family.category_labels,
            (train, holdout, test),
            {
                **booster_arguments(family.settings.booster, settings.training.seed, trees),
                "monotone_rules": family.settings.monotone,
                "base_features": family.settings.base_features,
            },
            family.settings.top_categories,
            settings.gate.bootstrap_samples,
            settings.gate.confidence,
        )
    return TrainingResult(
        family,
        plan,
        candidates,
        test,
        labels,
        scores,
        uncalibrated,
        metrics,
        by_segment,
        len(train),
        older_share,
        trees,
        affinity,
    )


def fit_baselines(
    family: OutcomeFamily, train: pd.DataFrame, holdout: pd.DataFrame, names: list[str], outputs: list[str]
) -> dict[str, OutcomeModel]:
    """The three baselines as models over the same feature rows, one classifier per output."""
    makers = {
        BASELINE_RECENCY: lambda output: ScoreColumnBaseline(s.DAYS_SINCE_LAST_PURCHASE, family.recency_direction),
        BASELINE_RFM: lambda output: RfmLogisticBaseline(),
        BASELINE_BGNBD: lambda output: ScoreColumnBaseline(BGNBD_SCORE, family.bgnbd_direction),
    }
    baselines = {}
    for name, make in makers.items():
        classifiers = {}
        for output in outputs:
            label = family.outputs[output]
            classifiers[output] = make(output).fit(
                train[names], train[label].to_numpy(), holdout[names], holdout[label].to_numpy()
            )
        baselines[name] = OutcomeModel(family.name, classifiers, names)
    return baselines


def booster_arguments(booster: BoosterSettings, seed: int, trees: bool = True) -> dict:
    """LightGBM settings as `fit_outcome_model` takes them; `trees=False` keeps the linear base only."""
    params = booster.model_dump(exclude={"num_boost_round", "early_stopping_rounds"})
    return {
        "booster_params": {**params, "seed": seed},
        "num_boost_round": booster.num_boost_round if trees else 0,
        "early_stopping_rounds": booster.early_stopping_rounds,
    }


def share_older_than_training(train: pd.DataFrame, test: pd.DataFrame) -> float:
    """Share of test-cutoff customers known longer than any training row (features only)."""
    return float((test[s.TENURE_DAYS] > train[s.TENURE_DAYS].max()).mean())
