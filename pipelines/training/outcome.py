"""Churn and propensity: binary outcomes over the customer feature rows, trained the same way.

For each family the test window is the latest complete horizon before as_of (or `--evaluate-at`);
training cutoffs step back from it, the latest of them held out for early stopping and calibration.
Each cutoff's rows are the features at that cutoff joined with the labels of its horizon. The model
and three baselines (recency alone, logistic regression on RFM, BG/NBD expected purchases under the
cutoff's reference fit) are scored on the same test rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from tqdm import tqdm

from features import schema as s
from features.customer import feature_columns
from features.history import first_record
from features.labels import CutoffPlan, make_churn_labels, make_purchase_labels, plan_cutoffs
from features.population import churn_population
from models.baselines import RfmLogisticBaseline, ScoreColumnBaseline, bgnbd_expected_purchases
from models.metrics import evaluate_binary, evaluate_by_segment
from models.names import CHURN, PROPENSITY
from models.outcome import OutcomeModel, fit_outcome_model
from pipelines.errors import UserError
from pipelines.settings import BoosterSettings, ChurnSettings, PropensitySettings, Settings
from pipelines.training.cache import FeatureCache

PRIMARY_METRIC = "roc_auc"
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

    @property
    def label_column(self) -> str:
        return next(iter(self.outputs.values()))


def outcome_families(
    settings: Settings, tables: dict[str, pd.DataFrame], categories: tuple[str, ...]
) -> dict[str, OutcomeFamily]:
    """Churn and propensity as configured; `categories` get their own propensity outputs."""
    churn, propensity = settings.churn, settings.propensity
    products = tables.get(s.PRODUCTS, pd.DataFrame(columns=[s.PRODUCT_ID, s.CATEGORY]))

    def churn_labels(transactions: pd.DataFrame, features: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
        population = features.loc[churn_population(features, churn.lookback_days), s.CUSTOMER_ID]
        return make_churn_labels(transactions, population, as_of, churn.horizon_days)

    def purchase_labels(transactions: pd.DataFrame, features: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
        return make_purchase_labels(
            transactions, features[s.CUSTOMER_ID], as_of, propensity.horizon_days, categories, products
        )

    category_outputs = {s.category_purchase_probability(c): s.category_purchase_label(c) for c in categories}
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
            outputs={s.PURCHASE_PROBABILITY: s.PURCHASE_LABEL, **category_outputs},
            make_labels=purchase_labels,
            settings=propensity,
            recency_direction=-1,
            bgnbd_direction=1,
        ),
    }


# ---------------------------------------------------------------------------
# Training sets: features at each cutoff joined with the labels of its horizon.
# ---------------------------------------------------------------------------
def labelled_frame(family: OutcomeFamily, cache: FeatureCache, as_of: pd.Timestamp) -> pd.DataFrame:
    """Features at as_of joined with the family's labels (only customers with a label), plus the
    BG/NBD baseline's score in the family's horizon (never a model input)."""
    cutoff = cache.at(as_of)
    labels = family.make_labels(cache.transactions, cutoff.features, as_of)
    frame = cutoff.features.merge(labels, on=s.CUSTOMER_ID, how="inner")
    frame[s.BGNBD_EXPECTED_PURCHASES] = bgnbd_expected_purchases(
        cache.transactions, as_of, cutoff.reference.bgnbd, family.horizon_days, frame[s.CUSTOMER_ID]
    )
    return frame


def build_training_set(family: OutcomeFamily, cache: FeatureCache, cutoffs: tuple[pd.Timestamp, ...]) -> pd.DataFrame:
    """Labelled frames of several cutoffs, stacked (column `as_of` tells which)."""
    frames = [
        labelled_frame(family, cache, cutoff)
        for cutoff in tqdm(cutoffs, desc=f"{family.name}: training cutoffs", leave=False)
    ]
    return pd.concat(frames, ignore_index=True)


# ---------------------------------------------------------------------------
# One family: fit, baselines, evaluation.
# ---------------------------------------------------------------------------
@dataclass
class TrainingResult:
    family: OutcomeFamily
    plan: CutoffPlan
    model: OutcomeModel
    test: pd.DataFrame
    scores: dict[str, np.ndarray]  # "model", "model_uncalibrated" and each baseline, on the test rows
    metrics: dict[str, dict[str, float]]
    by_segment: pd.DataFrame
    train_rows: int
    share_older_than_training: float
    trees: bool

    @property
    def name(self) -> str:
        return self.family.name

    @property
    def horizon_days(self) -> int:
        return self.family.horizon_days


def train_outcome_model(
    family: OutcomeFamily,
    cache: FeatureCache,
    as_of: pd.Timestamp,
    settings: Settings,
    evaluate_at: pd.Timestamp | None = None,
) -> TrainingResult:
    """Fit the family's model on rolling cutoffs before the test window; score it and the baselines on it."""
    plan = _plan(family, cache, as_of, settings, evaluate_at)
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
    primary = model.classifiers[model.primary_output]
    scores = {
        "model": primary.predict_proba(test[names]),
        "model_uncalibrated": primary.predict_raw(test[names]),
    }
    y_train, y_holdout = train[family.label_column].to_numpy(), holdout[family.label_column].to_numpy()
    for name, baseline in _baselines(family).items():
        scores[name] = baseline.fit(train, y_train, holdout, y_holdout).predict_proba(test)
    y_test = test[family.label_column].to_numpy()
    metrics = {name: evaluate_binary(y_test, score) for name, score in scores.items()}
    for output, classifier in list(model.classifiers.items())[1:]:
        label = family.outputs[output]
        if label in test and test[label].nunique() == 2:
            metrics[output] = evaluate_binary(test[label].to_numpy(), classifier.predict_proba(test[names]))
    by_segment = evaluate_by_segment(y_test, scores["model"], test[s.RFM_SEGMENT])
    return TrainingResult(family, plan, model, test, scores, metrics, by_segment, len(train), older_share, trees)


def _plan(
    family: OutcomeFamily,
    cache: FeatureCache,
    as_of: pd.Timestamp,
    settings: Settings,
    evaluate_at: pd.Timestamp | None,
) -> CutoffPlan:
    training = settings.training
    try:
        plan = plan_cutoffs(
            as_of,
            family.horizon_days,
            training.n_cutoffs + 1,
            training.cutoff_step_days,
            data_start=first_record(cache.tables),
            test_cutoff=evaluate_at,
        )
    except ValueError as error:
        raise UserError(f"{family.name}: {error}") from error
    if len(plan.train) < 2:
        raise UserError(
            f"{family.name}: the history before {as_of.date()} holds only {len(plan.train)} complete training "
            f"window(s) of {family.horizon_days} days before the test window; use a shorter horizon or more data"
        )
    return plan


def _baselines(family: OutcomeFamily) -> dict:
    return {
        BASELINE_RECENCY: ScoreColumnBaseline(s.DAYS_SINCE_LAST_PURCHASE, family.recency_direction),
        BASELINE_RFM: RfmLogisticBaseline(),
        BASELINE_BGNBD: ScoreColumnBaseline(s.BGNBD_EXPECTED_PURCHASES, family.bgnbd_direction),
    }


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
