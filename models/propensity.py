"""Purchase propensity: the probability of at least one purchase in the horizon, overall and
per top category."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from features import schema as s
from features.labels import make_purchase_labels
from models.classifier import CalibratedBoostedClassifier, monotone_for
from models.outcome import OutcomeModel

MODEL_NAME = "propensity"


def make_labels(
    transactions: pd.DataFrame,
    customer_ids: Sequence[str],
    as_of: pd.Timestamp,
    horizon_days: int,
    categories: Sequence[str],
    products: pd.DataFrame,
) -> pd.DataFrame:
    return make_purchase_labels(transactions, customer_ids, as_of, horizon_days, categories, products)


def fit_propensity_model(
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    feature_names: list[str],
    categories: Sequence[str],
    booster_params: dict,
    num_boost_round: int,
    early_stopping_rounds: int,
    monotone_rules: dict[str, int],
    base_features: tuple[str, ...] = (),
) -> OutcomeModel:
    """One classifier for any purchase, then one per category that has both classes to learn from."""
    outputs = {s.PURCHASE_PROBABILITY: s.PURCHASE_LABEL}
    for category in categories:
        label = s.category_purchase_label(category)
        if label in train and _has_both_classes(train[label]) and _has_both_classes(holdout[label]):
            outputs[s.category_purchase_probability(category)] = label
    monotone = monotone_for(feature_names, monotone_rules)
    classifiers = {
        output: CalibratedBoostedClassifier(
            params=booster_params,
            num_boost_round=num_boost_round,
            early_stopping_rounds=early_stopping_rounds,
            # per-category models keep only the overall-activity constraints' direction
            monotone=monotone,
            base_features=base_features,
        ).fit(train[feature_names], train[label].to_numpy(), holdout[feature_names], holdout[label].to_numpy())
        for output, label in outputs.items()
    }
    return OutcomeModel(MODEL_NAME, classifiers, feature_names)


def _has_both_classes(labels: pd.Series) -> bool:
    return len(np.unique(labels.to_numpy())) == 2
