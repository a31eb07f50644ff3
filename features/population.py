"""Who is in the churn population: the one rule training, batch scoring and the service share.

A customer is in the churn population at as_of when they bought within the lookback: a purchase
(an order with a positive quantity) at most `lookback_days` days before as_of. A purchase exactly
`lookback_days` before as_of counts. Only they get a churn label in training and a churn score
when served; anyone else is a prospect (never bought) or already lapsed, and cannot churn.

The rule reads the customer's feature row (`days_since_last_purchase`, `orders_count_total`),
which every consumer has: training labels the rows this rule selects, batch scoring and the
service blank the score of the rows it leaves out.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features import schema as s

# The feature columns the rule reads.
POPULATION_COLUMNS = (s.DAYS_SINCE_LAST_PURCHASE, s.ORDERS_COUNT_TOTAL)


def in_churn_population(
    days_since_last_purchase: np.ndarray, orders_count_total: np.ndarray, lookback_days: float
) -> np.ndarray:
    """True where a customer bought within the lookback (the last purchase at most lookback_days ago)."""
    return (np.asarray(orders_count_total) > 0) & (np.asarray(days_since_last_purchase) <= lookback_days)


def churn_population(features: pd.DataFrame, lookback_days: float) -> np.ndarray:
    """The rule on a feature table: one bool per row."""
    return in_churn_population(
        features[s.DAYS_SINCE_LAST_PURCHASE].to_numpy(dtype=float),
        features[s.ORDERS_COUNT_TOTAL].to_numpy(dtype=float),
        lookback_days,
    )
