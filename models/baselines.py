"""Baselines every model must beat on the same test window, as servable classifiers.

- recency alone: days since the last purchase;
- logistic regression on the RFM features (log scale), plus any extra columns (the category
  affinity's RFM-and-share baseline, `models.affinity`, adds the category's share and base rate);
- BG/NBD: the expected purchases in the next 90 days under the cutoff's fit (a feature column).

Each reads the same feature rows as the project's model (the full feature matrix, in the model's
`feature_names` order), so a baseline that wins the gate is registered and served like any model:
`predict_proba`, `predict_raw`, `contributions` (linear, so the service can give reasons) and
`feature_importance`, as `models.classifier.CalibratedBoostedClassifier` has them. The single-column
baselines turn their score into a probability with a Platt fit on the held-out cutoff the model is
calibrated on, so every metric (not only AUC) compares like with like.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from features import schema as s
from models.classifier import PlattCalibrator

RFM_FEATURES = (s.DAYS_SINCE_LAST_PURCHASE, s.ORDERS_COUNT_TOTAL, s.SPEND_SUM_TOTAL)
BGNBD_SCORE = s.BGNBD_EXPECTED_PURCHASES_90D


def _log_positive(values: np.ndarray) -> np.ndarray:
    # log scale keeps the fits sane on heavy-tailed counts, days and spend
    return np.log1p(np.maximum(values, 0.0))


class _OnFeatureRows:
    """Reads its columns out of the model's feature matrix (or a frame with those columns)."""

    def _remember_columns(self, features: pd.DataFrame, columns: Sequence[str]) -> None:
        self.feature_names_ = list(features.columns)
        missing = [column for column in columns if column not in self.feature_names_]
        if missing:
            raise KeyError(f"baseline columns missing from the feature rows: {', '.join(missing)}")
        self.columns_ = [self.feature_names_.index(column) for column in columns]

    def _matrix(self, features: pd.DataFrame | np.ndarray) -> np.ndarray:
        if isinstance(features, pd.DataFrame):
            return features[self.feature_names_].to_numpy(dtype=float)
        return np.asarray(features, dtype=float)

    def _spread(self, terms: np.ndarray) -> np.ndarray:
        """Per-column terms placed in a rows x all-features matrix (zeros elsewhere)."""
        out = np.zeros((len(terms), len(self.feature_names_)))
        out[:, self.columns_] = terms
        return out

    def predict_raw(self, features: pd.DataFrame | np.ndarray) -> np.ndarray:
        """A baseline has no separate uncalibrated score: the same as `predict_proba`."""
        return self.predict_proba(features)

    def feature_importance(self) -> pd.Series:
        weights = pd.Series(0.0, index=self.feature_names_)
        weights.iloc[self.columns_] = np.abs(self._weights())
        return weights.sort_values(ascending=False)


class ScoreColumnBaseline(_OnFeatureRows):
    """One column as the score; `direction` -1 when a lower value means the outcome is more likely."""

    def __init__(self, column: str, direction: int = 1):
        self.column = column
        self.direction = direction

    def fit(self, features: pd.DataFrame, y, holdout_features: pd.DataFrame, holdout_y) -> ScoreColumnBaseline:
        self._remember_columns(features, [self.column])
        holdout_score = self._score(self._matrix(holdout_features))
        self.calibrator_ = PlattCalibrator(on_logit=False).fit(holdout_score, np.asarray(holdout_y))
        self.mean_score_ = float(np.mean(self._score(self._matrix(features))))
        return self

    def _score(self, matrix: np.ndarray) -> np.ndarray:
        return self.direction * _log_positive(matrix[:, self.columns_[0]])

    def predict_proba(self, features: pd.DataFrame | np.ndarray) -> np.ndarray:
        return self.calibrator_.transform(self._score(self._matrix(features)))

    def contributions(self, features: pd.DataFrame | np.ndarray) -> np.ndarray:
        """The column's term in the log-odds, centred on the training rows' mean."""
        score = self._score(self._matrix(features))
        return self._spread((self.calibrator_.coef_ * (score - self.mean_score_))[:, None])

    def _weights(self) -> np.ndarray:
        return np.array([self.calibrator_.coef_])


class RfmLogisticBaseline(_OnFeatureRows):
    """Logistic regression on log recency, log frequency and log monetary value (plus any extra columns,
    e.g. the category's share of purchases for a per-category output), standardised."""

    def __init__(self, extra_columns: tuple[str, ...] = ()):
        self.extra_columns = extra_columns

    def fit(self, features: pd.DataFrame, y, holdout_features=None, holdout_y=None) -> RfmLogisticBaseline:
        self._remember_columns(features, [*RFM_FEATURES, *self.extra_columns])
        y = np.asarray(y)
        if len(np.unique(y)) < 2:
            raise ValueError("the training rows hold a single class; the RFM baseline cannot be fitted")
        x = _log_positive(self._matrix(features)[:, self.columns_])
        self.mean_, self.scale_ = x.mean(axis=0), x.std(axis=0) + 1e-9
        model = LogisticRegression(max_iter=1000).fit((x - self.mean_) / self.scale_, y)
        self.coef_, self.intercept_ = model.coef_[0], float(model.intercept_[0])
        return self

    def _terms(self, matrix: np.ndarray) -> np.ndarray:
        return (_log_positive(matrix[:, self.columns_]) - self.mean_) / self.scale_ * self.coef_

    def predict_proba(self, features: pd.DataFrame | np.ndarray) -> np.ndarray:
        log_odds = self.intercept_ + self._terms(self._matrix(features)).sum(axis=1)
        return 1.0 / (1.0 + np.exp(-log_odds))

    def contributions(self, features: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Each column's term in the log-odds (standardised, so centred: a linear SHAP value)."""
        return self._spread(self._terms(self._matrix(features)))

    def _weights(self) -> np.ndarray:
        return self.coef_
