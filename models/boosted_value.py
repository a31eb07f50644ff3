"""The supervised customer-value candidate: LightGBM on log spend, over the customer feature rows.

Trained on rolling cutoffs (each cutoff's feature rows joined with the spend and orders of the
horizon after it), with the buy-till-you-die model's outputs at the same cutoff as extra inputs
(`BTYD_INPUTS`). The trees start from the parametric prediction (LightGBM's init score: log(1 +
its value)) and learn a correction on the log scale: the parametric view extrapolates to quiet or
old customers, which trees cannot, so where the trees have seen nothing alike the prediction stays
near it.

- `clv`: a LightGBM regression on log(1 + spend), mapped back to money by one factor fitted on
  the held-out cutoff: the held-out customers' actual spend over their predicted spend, summed. The
  log target alone predicts a geometric mean, far under the mean for spend this skewed; the factor
  restores the level (the sum) and, being one number, keeps the order and every tie as it was.
  (Duan's smearing, the textbook factor, assumes errors of one spread on the log scale; with most
  customers spending nothing in a horizon they are not, and it overshot the level.)
- `clv_low`, `clv_high`: LightGBM quantile regressions on the same log target, at the interval's
  ends (a quantile survives the monotone log, so no map is needed), then widened (or narrowed) on
  the log scale by the conformal correction of the held-out cutoff (conformalised quantile
  regression, Romano et al. 2019): the `interval` quantile of how far each held-out customer fell
  outside their interval, so that the interval holds about `interval` of new customers.
- `expected_orders`: the same regression and map on log(1 + orders).

Estimator conventions as in `models.classifier`: fitted attributes end in `_`, fit returns self.
"""

from __future__ import annotations

from collections.abc import Mapping

import lightgbm as lgb
import numpy as np
import pandas as pd

from features import schema as s

# The buy-till-you-die outputs fed to the trees, under names of their own (not the served columns).
BTYD_INPUTS = {s.EXPECTED_ORDERS: "btyd_expected_orders", s.CLV: "btyd_clv", s.P_ACTIVE: "btyd_p_active"}
_MEAN, _LOW, _HIGH, _ORDERS = "mean", "low", "high", "orders"


def btyd_inputs(values: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The buy-till-you-die value columns (`predict_arrays`' output) under the trees' input names."""
    return {name: np.asarray(values[column]) for column, name in BTYD_INPUTS.items()}


class BoostedValue:
    """LightGBM regressions of a horizon's spend (mean, interval ends) and orders."""

    def __init__(
        self,
        booster_params: Mapping | None = None,
        num_boost_round: int = 500,
        early_stopping_rounds: int = 40,
        interval: float = 0.8,
        horizon_days: int = 365,
    ) -> None:
        self.booster_params = booster_params
        self.num_boost_round = num_boost_round
        self.early_stopping_rounds = early_stopping_rounds
        self.interval = interval
        self.horizon_days = horizon_days  # the labels' horizon: what the model predicts

    def fit(
        self,
        features: pd.DataFrame,
        spend: np.ndarray,
        orders: np.ndarray,
        holdout_features: pd.DataFrame,
        holdout_spend: np.ndarray,
        holdout_orders: np.ndarray,
    ) -> BoostedValue:
        """Fit on the training rows; stop early and map back to money on the held-out rows."""
        self.feature_names_ = list(features.columns)
        train, holdout = self._matrix(features), self._matrix(holdout_features)
        tail = (1 - self.interval) / 2
        targets = {_MEAN: spend, _LOW: spend, _HIGH: spend, _ORDERS: orders}
        holdout_targets = {_MEAN: holdout_spend, _LOW: holdout_spend, _HIGH: holdout_spend, _ORDERS: holdout_orders}
        objectives = {
            _MEAN: {"objective": "regression"},
            _LOW: {"objective": "quantile", "alpha": tail},
            _HIGH: {"objective": "quantile", "alpha": 1 - tail},
            _ORDERS: {"objective": "regression"},
        }
        self.boosters_, self.iterations_ = {}, {}
        for part, objective in objectives.items():
            self.boosters_[part] = self._fit_booster(
                (train, _log_target(targets[part]), self._base(train, part)),
                (holdout, _log_target(holdout_targets[part]), self._base(holdout, part)),
                objective,
            )
            self.iterations_[part] = int(
                self.boosters_[part].best_iteration or self.boosters_[part].current_iteration()
            )
        self.widening_ = conformal_widening(
            self._raw(holdout, _LOW), self._raw(holdout, _HIGH), _log_target(holdout_spend), self.interval
        )
        self.level_ = {part: level_factor(self._raw(holdout, part), holdout_targets[part]) for part in (_MEAN, _ORDERS)}
        return self

    def predict(self, features: pd.DataFrame) -> pd.DataFrame:
        """expected_orders, clv, clv_low, clv_high per row (same index)."""
        return pd.DataFrame(self.predict_matrix(self._matrix(features)), index=features.index)

    def predict_matrix(self, matrix: np.ndarray) -> dict[str, np.ndarray]:
        """`predict` on a matrix whose columns are `feature_names_`: column -> array."""
        clv = self._level(matrix, _MEAN)
        low = np.expm1(np.maximum(self._raw(matrix, _LOW) - self.widening_, 0.0))
        high = np.expm1(np.maximum(self._raw(matrix, _HIGH) + self.widening_, 0.0))
        return {
            s.EXPECTED_ORDERS: self._level(matrix, _ORDERS),
            s.CLV: clv,
            s.CLV_LOW: np.minimum(low, clv),
            s.CLV_HIGH: np.maximum(high, clv),
        }

    def feature_importance(self) -> pd.Series:
        """Total gain per input of the spend regression, largest first."""
        gain = self.boosters_[_MEAN].feature_importance(importance_type="gain", iteration=self.iterations_[_MEAN])
        return pd.Series(gain, index=self.feature_names_).sort_values(ascending=False)

    # -- the pieces ---------------------------------------------------------------------------
    def _fit_booster(self, train: tuple, holdout: tuple, objective: dict) -> lgb.Booster:
        """One booster on (matrix, log target, base) of the training and held-out rows."""
        (matrix, target, base), (holdout_matrix, holdout_target, holdout_base) = train, holdout
        params = {
            "verbosity": -1,
            "deterministic": True,
            "force_col_wise": True,
            **dict(self.booster_params or {}),
            **objective,
        }
        return lgb.train(
            params,
            lgb.Dataset(matrix, label=target, init_score=base, feature_name=self.feature_names_),
            num_boost_round=self.num_boost_round,
            valid_sets=[
                lgb.Dataset(
                    holdout_matrix, label=holdout_target, init_score=holdout_base, feature_name=self.feature_names_
                )
            ],
            callbacks=[lgb.early_stopping(self.early_stopping_rounds, verbose=False)],
        )

    def _level(self, matrix: np.ndarray, part: str) -> np.ndarray:
        """The mean on the original scale: exp(log-scale prediction) - 1, times the level factor."""
        return np.expm1(np.maximum(self._raw(matrix, part), 0.0)) * self.level_[part]

    def _raw(self, matrix: np.ndarray, part: str) -> np.ndarray:
        """The log-scale prediction: the parametric base plus the trees' correction."""
        return self._base(matrix, part) + self.boosters_[part].predict(matrix, num_iteration=self.iterations_[part])

    def _base(self, matrix: np.ndarray, part: str) -> np.ndarray:
        """log(1 + the buy-till-you-die model's value) of the part: where the trees start from."""
        column = self.feature_names_.index(BTYD_INPUTS[s.EXPECTED_ORDERS if part == _ORDERS else s.CLV])
        return _log_target(matrix[:, column])

    def _matrix(self, features: pd.DataFrame | np.ndarray) -> np.ndarray:
        if isinstance(features, pd.DataFrame):
            return features[self.feature_names_].to_numpy(dtype=float)
        return np.asarray(features, dtype=float)


def _log_target(values: np.ndarray) -> np.ndarray:
    return np.log1p(np.maximum(np.asarray(values, dtype=float), 0.0))


def level_factor(predicted_log: np.ndarray, actual: np.ndarray) -> float:
    """The factor that makes the held-out predictions sum to what the held-out customers did:
    sum(actual) / sum(exp(prediction) - 1) (1 when nothing was predicted)."""
    predicted = np.expm1(np.maximum(np.asarray(predicted_log, dtype=float), 0.0)).sum()
    return float(np.asarray(actual, dtype=float).sum() / predicted) if predicted > 0 else 1.0


def conformal_widening(low: np.ndarray, high: np.ndarray, actual: np.ndarray, interval: float) -> float:
    """How much to widen [low, high] (negative: narrow) so that it holds `interval` of the rows: the
    ceil((n + 1) interval) / n empirical quantile of max(low - actual, actual - high)."""
    scores = np.maximum(np.asarray(low) - actual, np.asarray(actual) - np.asarray(high))
    if not len(scores):
        return 0.0
    level = min(1.0, np.ceil((len(scores) + 1) * interval) / len(scores))
    return float(np.quantile(scores, level, method="higher"))
