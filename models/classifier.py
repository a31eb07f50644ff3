"""A calibrated LightGBM classifier for one binary outcome (churn, purchase, category purchase).

Estimator conventions (scikit-learn's): no logic in __init__, fitted attributes end in `_`,
fit returns self, so the fitted object pickles into the logged MLflow model as it is.

Scoring keeps to numpy and the raw Booster: on one row that is ~50 microseconds, where the
scikit-learn wrapper on a DataFrame costs milliseconds (../shared/NOTES.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

EPSILON = 1e-6


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, EPSILON, 1 - EPSILON)
    return np.log(p / (1 - p))


class PlattCalibrator:
    """Maps a raw score to a probability with a logistic fit on a held-out set.

    Strictly increasing, so calibration never changes a ranking (AUC is untouched).
    """

    def __init__(self, on_logit: bool = True):
        self.on_logit = on_logit

    def fit(self, scores: np.ndarray, y: np.ndarray) -> PlattCalibrator:
        x = self._inputs(scores)
        if len(np.unique(y)) < 2:  # nothing to learn: keep the base rate
            self.coef_, self.intercept_ = 0.0, float(_logit(np.array([np.mean(y)]))[0])
            return self
        model = LogisticRegression(C=1e6, max_iter=1000).fit(x.reshape(-1, 1), y)
        self.coef_, self.intercept_ = float(model.coef_[0, 0]), float(model.intercept_[0])
        if self.coef_ <= 0:  # a reversed fit would flip the ranking; keep the raw order instead
            self.coef_ = 1.0 if self.on_logit else 1e-3
        return self

    def transform(self, scores: np.ndarray) -> np.ndarray:
        z = self.coef_ * self._inputs(scores) + self.intercept_
        return 1.0 / (1.0 + np.exp(-z))

    def _inputs(self, scores: np.ndarray) -> np.ndarray:
        scores = np.asarray(scores, dtype=float)
        return _logit(scores) if self.on_logit else scores


class CalibratedBoostedClassifier:
    """LightGBM on numeric features, early-stopped and Platt-calibrated on a held-out cutoff.

    params: LightGBM parameters (objective and seed included by the caller's config).
    monotone: feature -> +1 (probability never falls as it rises) or -1; others free.
    """

    def __init__(
        self,
        params: Mapping[str, object] | None = None,
        num_boost_round: int = 400,
        early_stopping_rounds: int = 30,
        monotone: Mapping[str, int] | None = None,
    ):
        self.params = params
        self.num_boost_round = num_boost_round
        self.early_stopping_rounds = early_stopping_rounds
        self.monotone = monotone

    def fit(
        self,
        features: pd.DataFrame,
        y: np.ndarray,
        holdout_features: pd.DataFrame,
        holdout_y: np.ndarray,
    ) -> CalibratedBoostedClassifier:
        self.feature_names_ = list(features.columns)
        monotone = dict(self.monotone or {})
        params = {
            "objective": "binary",
            "verbosity": -1,
            "deterministic": True,
            "force_col_wise": True,
            **dict(self.params or {}),
            "monotone_constraints": [int(monotone.get(name, 0)) for name in self.feature_names_],
        }
        train = lgb.Dataset(
            features.to_numpy(dtype=float), label=np.asarray(y), feature_name=self.feature_names_, free_raw_data=True
        )
        valid = lgb.Dataset(
            holdout_features[self.feature_names_].to_numpy(dtype=float), label=np.asarray(holdout_y), reference=train
        )
        self.booster_ = lgb.train(
            params,
            train,
            num_boost_round=self.num_boost_round,
            valid_sets=[valid],
            callbacks=[lgb.early_stopping(self.early_stopping_rounds, verbose=False)],
        )
        self.best_iteration_ = int(self.booster_.best_iteration or self.booster_.current_iteration())
        raw = self.predict_raw(holdout_features)
        self.calibrator_ = PlattCalibrator().fit(raw, np.asarray(holdout_y))
        return self

    def _matrix(self, features: pd.DataFrame | np.ndarray) -> np.ndarray:
        if isinstance(features, pd.DataFrame):
            return features[self.feature_names_].to_numpy(dtype=float)
        return np.asarray(features, dtype=float)

    def predict_raw(self, features: pd.DataFrame | np.ndarray) -> np.ndarray:
        """The booster's probability before calibration."""
        return self.booster_.predict(self._matrix(features), num_iteration=self.best_iteration_)

    def predict_proba(self, features: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Calibrated probability of the positive class, one per row."""
        return self.calibrator_.transform(self.predict_raw(features))

    def contributions(self, features: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Per-row SHAP contributions to the raw log-odds, one column per feature (bias dropped)."""
        contrib = self.booster_.predict(self._matrix(features), num_iteration=self.best_iteration_, pred_contrib=True)
        return np.asarray(contrib)[:, :-1]

    def feature_importance(self) -> pd.Series:
        """Total gain per feature, largest first."""
        gain = self.booster_.feature_importance(importance_type="gain", iteration=self.best_iteration_)
        return pd.Series(gain, index=self.feature_names_).sort_values(ascending=False)


def monotone_for(feature_names: Sequence[str], rules: Mapping[str, int]) -> dict[str, int]:
    """Constraints from config rules; a rule ending in '*' matches a prefix (e.g. 'spend_sum_*')."""
    constraints: dict[str, int] = {}
    for name in feature_names:
        for pattern, direction in rules.items():
            matches = name.startswith(pattern[:-1]) if pattern.endswith("*") else name == pattern
            if matches:
                constraints[name] = int(direction)
    return constraints
