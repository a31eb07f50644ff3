"""The yardsticks for "when does a customer buy next": their own mean gap from their last order, and recency.

`GapTimingBaseline` predicts from the RFM summary (`features.repeat_buying.rfm_summary`, weeks) the
wait from the cutoff to the next order: last order + the customer's mean gap between orders
(recency / frequency: the span of their repeat orders over their count), at least 0 (an overdue
customer is due now). A customer with one order has no gap of their own and gets the population's
typical one, the median over repeat buyers. Its interval scales the gap by how gaps spread across
customers (their central `interval` share, over the median) before the elapsed time is taken
off: a stand-in, since the summary does not hold a customer's individual gaps. No fitting beyond
those two population numbers, no purchase process: what a model must beat.

`RecencyTimingBaseline` predicts a wait equal to the time since the last order (no interval): it
only ranks, and ranks the way recency does everywhere else in the project.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features import schema as s
from features.repeat_buying import AGE, FREQUENCY, RECENCY, WEEK_DAYS
from models.value import ValueConfig, check_summary


class GapTimingBaseline:
    """Next order = last order + own mean gap (the population's median gap for one-time buyers)."""

    def fit(self, summary: pd.DataFrame) -> GapTimingBaseline:
        """The typical gap (weeks) and every repeat buyer's mean gap over it, from `summary`."""
        summary = check_summary(summary)
        repeat = summary[summary[FREQUENCY] > 0]
        if not len(repeat):
            raise ValueError("the RFM summary has no repeat buyer: no gap to learn from")
        gaps = repeat[RECENCY].to_numpy(dtype=float) / repeat[FREQUENCY].to_numpy(dtype=float)
        self.typical_gap_weeks_ = float(np.median(gaps))
        self.relative_gaps_ = gaps / self.typical_gap_weeks_
        return self

    def predict(self, summary: pd.DataFrame, config: ValueConfig | None = None) -> pd.DataFrame:
        """NEXT_PURCHASE_DAYS and its `config.interval` interval (ValueConfig's default: 80%) per
        customer of `summary` (same index), in days from the cutoff."""
        summary = check_summary(summary)
        config = config or ValueConfig()
        x, t_x, age = (summary[column].to_numpy(dtype=float) for column in (FREQUENCY, RECENCY, AGE))
        gap = np.where(x > 0, t_x / np.maximum(x, 1), self.typical_gap_weeks_)
        since_last = age - t_x
        low_scale, _, high_scale = np.quantile(self.relative_gaps_, config.quantiles)
        scales = {s.NEXT_PURCHASE_DAYS: 1.0, s.NEXT_PURCHASE_LOW_DAYS: low_scale, s.NEXT_PURCHASE_HIGH_DAYS: high_scale}
        return pd.DataFrame(
            {column: np.maximum(gap * scale - since_last, 0.0) * WEEK_DAYS for column, scale in scales.items()},
            index=summary.index,
        )


class RecencyTimingBaseline:
    """A customer comes back after as long as they have been away: the wait is the days since their
    last order. A ranking yardstick (recency is the strongest single signal of who buys soon); it
    has no interval (NaN)."""

    def fit(self, summary: pd.DataFrame) -> RecencyTimingBaseline:
        check_summary(summary)
        return self

    def predict(self, summary: pd.DataFrame, config: ValueConfig | None = None) -> pd.DataFrame:
        """NEXT_PURCHASE_DAYS per customer of `summary` (same index); the interval's columns NaN."""
        summary = check_summary(summary)
        since_last = (summary[AGE].to_numpy(dtype=float) - summary[RECENCY].to_numpy(dtype=float)) * WEEK_DAYS
        missing = np.full(len(summary), np.nan)
        return pd.DataFrame(
            {s.NEXT_PURCHASE_DAYS: since_last, s.NEXT_PURCHASE_LOW_DAYS: missing, s.NEXT_PURCHASE_HIGH_DAYS: missing},
            index=summary.index,
        )
