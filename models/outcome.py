"""A scoring model: one or more calibrated classifiers over the same customer feature columns.

Churn has one outcome (churned); propensity has "purchased", plus a category scorer
(`models.affinity`) with one output per category. Both are
fitted by `fit_outcome_model`; the object is what the registry stores and what batch scoring and
the service call.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from models.affinity import CategoryScorer
from models.classifier import CalibratedBoostedClassifier, monotone_for


class OutcomeModel:
    """output column -> classifier; the first output is the primary one (gated, explained).

    `affinity` (propensity): the category scorer (`models.affinity`) that adds
    purchase_probability_<category> for every category; it reads the same feature rows.
    """

    def __init__(
        self,
        name: str,
        classifiers: Mapping[str, CalibratedBoostedClassifier],
        feature_names: list[str],
        affinity: CategoryScorer | None = None,
    ):
        self.name = name
        self.classifiers = dict(classifiers)
        self.feature_names = list(feature_names)
        if affinity is not None and list(affinity.layout.feature_names) != self.feature_names:
            raise ValueError(f"{name}: the category scorer reads other feature columns than the model")
        self.affinity = affinity

    @property
    def category_scorer(self) -> CategoryScorer | None:
        # a model pickled before category scorers existed has no such attribute
        return getattr(self, "affinity", None)

    @property
    def primary_output(self) -> str:
        return next(iter(self.classifiers))

    @property
    def outputs(self) -> list[str]:
        scorer = self.category_scorer
        return [*self.classifiers, *(scorer.outputs if scorer is not None else ())]

    def matrix(self, features: pd.DataFrame) -> np.ndarray:
        missing = [name for name in self.feature_names if name not in features]
        if missing:
            raise KeyError(f"feature columns missing for model {self.name}: {', '.join(missing[:5])}")
        return features[self.feature_names].to_numpy(dtype=float)

    def predict_matrix(self, matrix: np.ndarray) -> dict[str, np.ndarray]:
        """Every output for rows already laid out in feature_names order (the fast path)."""
        outputs = {output: model.predict_proba(matrix) for output, model in self.classifiers.items()}
        scorer = self.category_scorer
        return outputs if scorer is None else {**outputs, **scorer.predict_matrix(matrix)}

    def predict_frame(self, features: pd.DataFrame) -> pd.DataFrame:
        """One column per output, aligned with the rows of features."""
        return pd.DataFrame(self.predict_matrix(self.matrix(features)), index=features.index)

    def contributions_matrix(self, matrix: np.ndarray) -> np.ndarray:
        """rows x features: each feature's SHAP contribution to the primary output's log-odds."""
        return self.classifiers[self.primary_output].contributions(matrix)

    def explain_matrix(
        self, matrix: np.ndarray, top: int = 5, contributions: np.ndarray | None = None
    ) -> list[list[tuple[str, float, float]]]:
        """Per row, the top features by absolute SHAP contribution to the primary output:
        (feature, value, contribution to the log-odds), largest first. `contributions`: the rows'
        `contributions_matrix`, when already computed."""
        contributions = self.contributions_matrix(matrix) if contributions is None else contributions
        # one sort over the whole matrix, then plain lists: a request explains up to a thousand rows
        order = np.argsort(-np.abs(contributions), axis=1, kind="stable")[:, :top]
        values = np.take_along_axis(np.asarray(matrix, dtype=float), order, axis=1).tolist()
        impacts = np.take_along_axis(contributions, order, axis=1).tolist()
        names = self.feature_names
        return [
            [(names[i], value, impact) for i, value, impact in zip(columns, row_values, row_impacts, strict=True)]
            for columns, row_values, row_impacts in zip(order.tolist(), values, impacts, strict=True)
        ]


def fit_outcome_model(
    name: str,
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    feature_names: list[str],
    outputs: Mapping[str, str],
    booster_params: dict,
    num_boost_round: int,
    early_stopping_rounds: int,
    monotone_rules: Mapping[str, int],
    base_features: tuple[str, ...] = (),
) -> OutcomeModel:
    """One LightGBM classifier per output (output column -> label column), fitted on the stacked
    training cutoffs, early-stopped and calibrated on the holdout cutoff.

    The first output is the primary one. A further output is fitted only when its label has both
    classes in the training and the holdout rows (a rare category may not); every output shares the
    monotone constraints and the linear base.
    """
    monotone = monotone_for(feature_names, monotone_rules)
    primary = next(iter(outputs))
    fitted = {
        output: label
        for output, label in outputs.items()
        if output == primary
        or (label in train and _has_both_classes(train[label]) and _has_both_classes(holdout[label]))
    }
    classifiers = {
        output: CalibratedBoostedClassifier(
            params=booster_params,
            num_boost_round=num_boost_round,
            early_stopping_rounds=early_stopping_rounds,
            monotone=monotone,
            base_features=base_features,
        ).fit(train[feature_names], train[label].to_numpy(), holdout[feature_names], holdout[label].to_numpy())
        for output, label in fitted.items()
    }
    return OutcomeModel(name, classifiers, feature_names)


def _has_both_classes(labels: pd.Series) -> bool:
    return len(np.unique(labels.to_numpy())) == 2


def assemble_outcome_model(
    name: str,
    candidates: Mapping[str, OutcomeModel],
    winners: Mapping[str, str],
    affinity: CategoryScorer | None = None,
) -> OutcomeModel:
    """One model from the candidates' classifiers: for each output, the winning candidate's.

    Every candidate reads the same feature rows, so classifiers of different candidates mix in one
    model (`winners` maps output -> candidate name; its first output is the primary one). `affinity`:
    the category scorer that won its own gate, if any.
    """
    feature_names = next(iter(candidates.values())).feature_names
    if any(candidate.feature_names != feature_names for candidate in candidates.values()):
        raise ValueError(f"{name}: the candidates read different feature columns; they cannot be mixed")
    classifiers = {output: candidates[winner].classifiers[output] for output, winner in winners.items()}
    return OutcomeModel(name, classifiers, feature_names, affinity)
