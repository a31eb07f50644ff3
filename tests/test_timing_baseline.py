"""The own-gap timing baseline on hand-built RFM summaries (weeks)."""

from __future__ import annotations

import pandas as pd
import pytest

from features import schema as s
from features.repeat_buying import AGE, FREQUENCY, MONETARY, RECENCY
from models.timing_baseline import GapTimingBaseline, RecencyTimingBaseline
from models.value import ValueConfig


def summary(rows: dict[str, tuple[float, float, float]]) -> pd.DataFrame:
    """customer -> (frequency, recency, T) in weeks."""
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=[FREQUENCY, RECENCY, AGE])
    return frame.assign(**{MONETARY: 10.0})


def test_the_next_order_is_the_last_one_plus_the_own_mean_gap():
    customers = summary({"A": (2, 8, 10), "B": (4, 8, 30), "C": (0, 0, 1)})
    predicted = GapTimingBaseline().fit(customers).predict(customers)
    # A: gap 4 weeks, last order 2 weeks ago -> 2 weeks; B: gap 2, 22 weeks ago -> overdue, due now;
    # C bought once: the median repeat buyer's gap (3 weeks), 1 week ago -> 2 weeks
    assert predicted[s.NEXT_PURCHASE_DAYS].tolist() == pytest.approx([14.0, 0.0, 14.0])


def test_the_interval_holds_the_median_and_widens_with_the_gaps_spread():
    customers = summary({"A": (2, 8, 10), "B": (4, 8, 8), "C": (1, 8, 8), "D": (1, 2, 4)})
    predicted = GapTimingBaseline().fit(customers).predict(customers, ValueConfig(interval=0.8))
    low, median, high = (
        predicted[c] for c in (s.NEXT_PURCHASE_LOW_DAYS, s.NEXT_PURCHASE_DAYS, s.NEXT_PURCHASE_HIGH_DAYS)
    )
    assert (low <= median).all() and (median <= high).all()
    assert (high - low).loc["C"] > (high - low).loc["B"]  # a longer own gap, a wider interval


def test_a_summary_without_repeat_buyers_is_refused():
    with pytest.raises(ValueError, match="no repeat buyer"):
        GapTimingBaseline().fit(summary({"A": (0, 0, 3)}))


def test_the_recency_baseline_waits_as_long_as_the_customer_has_been_away():
    customers = summary({"A": (2, 8, 10), "B": (0, 0, 1)})
    predicted = RecencyTimingBaseline().fit(customers).predict(customers)
    assert predicted[s.NEXT_PURCHASE_DAYS].tolist() == pytest.approx([14.0, 7.0])
    assert predicted[s.NEXT_PURCHASE_LOW_DAYS].isna().all()  # it has no interval
