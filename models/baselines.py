"""Baselines every model must beat on the same test window.

- recency alone: days since the last purchase;
- logistic regression on the RFM features (log scale);
- BG/NBD expected purchases in the horizon (`bgnbd_expected_purchases`, under the parameters
  fitted once per cutoff for the reference tables), supplied as a score column.

Each turns its score into a probability with a Platt fit on the same held-out cutoff the model
is calibrated on, so every metric (not only AUC) compares like with like.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from features import schema as s
from features.repeat_buying import (
    AGE,
    FREQUENCY,
    RECENCY,
    WEEK_DAYS,
    BgNbdParameters,
    expected_purchases,
    summarise_customers,
)
from models.classifier import PlattCalibrator

RFM_FEATURES = (s.DAYS_SINCE_LAST_PURCHASE, s.ORDERS_COUNT_TOTAL, s.SPEND_SUM_TOTAL)


class ScoreColumnBaseline:
    """A single column as the score; `direction` -1 when a lower value means the outcome."""

    def __init__(self, column: str, direction: int = 1):
        self.column = column
        self.direction = direction

    def fit(self, features, y, holdout_features, holdout_y) -> ScoreColumnBaseline:
        self.calibrator_ = PlattCalibrator(on_logit=False).fit(self._score(holdout_features), np.asarray(holdout_y))
        return self

    def _score(self, features: pd.DataFrame) -> np.ndarray:
        # log scale keeps the Platt fit sane on heavy-tailed counts and days
        return self.direction * _log_positive(features[self.column].to_numpy(dtype=float))

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        return self.calibrator_.transform(self._score(features))


def _log_positive(values: np.ndarray) -> np.ndarray:
    return np.log1p(np.maximum(values, 0.0))


class RfmLogisticBaseline:
    """Logistic regression on log recency, log frequency and log monetary value."""

    def fit(self, features, y, holdout_features, holdout_y) -> RfmLogisticBaseline:
        self.pipeline_ = make_pipeline(
            FunctionTransformer(_log_positive),
            StandardScaler(),
            LogisticRegression(max_iter=1000),
        )
        if len(np.unique(y)) < 2:
            raise ValueError("the training rows hold a single class; the RFM baseline cannot be fitted")
        self.pipeline_.fit(features[list(RFM_FEATURES)].to_numpy(dtype=float), np.asarray(y))
        return self

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        return self.pipeline_.predict_proba(features[list(RFM_FEATURES)].to_numpy(dtype=float))[:, 1]


def bgnbd_expected_purchases(
    transactions: pd.DataFrame,
    as_of: pd.Timestamp,
    parameters: BgNbdParameters | None,
    horizon_days: float,
    customer_ids: Sequence[str],
) -> np.ndarray:
    """BG/NBD expected purchase days in [as_of, as_of + horizon_days), aligned to customer_ids.

    Uses only records strictly before as_of. Customers without a purchase get 0: BG/NBD describes
    repeat buying after a first purchase and says nothing about someone who never bought; 0 ranks
    them below every buyer, the conservative choice for a baseline. Without parameters (too little
    data to fit) every customer gets 0.
    """
    if not horizon_days >= 0:
        raise ValueError(f"horizon_days must be >= 0, got {horizon_days}")
    ids = pd.Index(pd.array(list(customer_ids), dtype="str"))
    expected = np.zeros(len(ids))
    if parameters is None:
        return expected
    summary = summarise_customers(transactions, as_of, WEEK_DAYS)
    row = summary.index.get_indexer(ids)
    known = row >= 0
    if known.any():
        picked = summary.iloc[row[known]]
        expected[known] = expected_purchases(
            parameters, horizon_days / WEEK_DAYS, picked[FREQUENCY], picked[RECENCY], picked[AGE]
        )
    return expected
