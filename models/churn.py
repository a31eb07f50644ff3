"""Churn: the probability that a customer who bought in the lookback buys nothing in the horizon."""

from __future__ import annotations

import pandas as pd

from features import schema as s
from features.labels import make_churn_labels
from models.classifier import CalibratedBoostedClassifier, monotone_for
from models.outcome import OutcomeModel

MODEL_NAME = "churn"


def make_labels(transactions: pd.DataFrame, as_of: pd.Timestamp, horizon_days: int, lookback_days: int) -> pd.DataFrame:
    return make_churn_labels(transactions, as_of, horizon_days=horizon_days, lookback_days=lookback_days)


def fit_churn_model(
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    feature_names: list[str],
    booster_params: dict,
    num_boost_round: int,
    early_stopping_rounds: int,
    monotone_rules: dict[str, int],
    base_features: tuple[str, ...] = (),
) -> OutcomeModel:
    """LightGBM on the stacked training cutoffs, early-stopped and calibrated on the holdout cutoff."""
    classifier = CalibratedBoostedClassifier(
        params=booster_params,
        num_boost_round=num_boost_round,
        early_stopping_rounds=early_stopping_rounds,
        monotone=monotone_for(feature_names, monotone_rules),
        base_features=base_features,
    ).fit(
        train[feature_names], train[s.CHURN_LABEL].to_numpy(), holdout[feature_names], holdout[s.CHURN_LABEL].to_numpy()
    )
    return OutcomeModel(MODEL_NAME, {s.CHURN_PROBABILITY: classifier}, feature_names)
