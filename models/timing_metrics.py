"""Evaluation of predicted timing: when each customer buys next, against a held-out window.

Pure functions, no I/O, the companion of `models.value_metrics` for waits.

Conventions
- A customer's outcome is a time-to-event with censoring: `time` is the days from the cutoff to
  their first order in the window when `event` is true, and the window's length when it is false
  (no order in the window: censored at its end, so all we know is that the wait is longer).
- `predicted` is a predicted wait in days (larger = later), aligned with `time` by position.
  Inputs must be finite, not negative and of one length; otherwise ValueError naming the input.
- Metrics that are undefined on the input are NaN, not an error: the concordance index without a
  comparable pair, the MAE without a buyer, a share of nobody.

Concordance (Harrell's C, censoring-aware): a pair is comparable when the customer with the earlier
time bought (event) and the other's time is strictly later (whether they bought or were censored).
It is concordant when the earlier buyer also has the smaller predicted wait; a tie in the
prediction counts a half. C = (concordant + tied / 2) / comparable: 1 is a perfect ordering, 0 the
reversed one, 0.5 a constant or random prediction. Two buyers on the same day are not comparable
(neither came first), nor is a censoring at the very moment of an order (in the benches censoring
is at the window's end, after every order). `concordance_counts` counts the pairs in O(n log^2 n)
numpy work with no Python loop over customers, so a million customers take seconds.

Intervals: a buyer is covered when their time lies in [low, high]. A censored customer's wait is
only known to exceed the window, so their interval can be right (low at or past the window's end:
it said "not in this window"), wrong (high before the window's end: it said "surely by then"), or
undecided (it straddles the end); `evaluate_timing_interval` reports the first two shares.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

CONCORDANCE = "concordance"
MAE_DAYS_BUYERS = "mae_days_buyers"
COVERAGE_BUYERS = "coverage_buyers"
NON_BUYERS_LOW_PAST_WINDOW = "non_buyers_low_past_window"
NON_BUYERS_HIGH_INSIDE_WINDOW = "non_buyers_high_inside_window"
BUYERS = "buyers"
NON_BUYERS = "non_buyers"
PRECISION = "precision"
RECALL = "recall"
PREDICTED_POSITIVE = "predicted_positive"
ACTUAL_POSITIVE = "actual_positive"


class ConcordanceCounts(NamedTuple):
    """Pairs of customers: comparable ones, and of those the concordant and the tied in prediction."""

    concordant: int
    tied: int
    comparable: int

    @property
    def index(self) -> float:
        """(concordant + tied / 2) / comparable; NaN without a comparable pair."""
        return math.nan if self.comparable == 0 else (self.concordant + self.tied / 2) / self.comparable


def check_timing_inputs(time, event, *predicted, names: tuple[str, ...] = ("predicted",)) -> tuple[np.ndarray, ...]:
    """time and each prediction as float arrays, event as bool, one length; ValueError naming the input."""
    arrays = [_as_days(time, "time")]
    event_array = np.asarray(event).ravel()
    if event_array.dtype != bool and not np.isin(event_array, (0, 1)).all():
        raise ValueError("event must be true/false (1/0) per customer")
    arrays.append(event_array.astype(bool))
    arrays.extend(_as_days(values, name) for values, name in zip(predicted, names, strict=True))
    lengths = {name: len(array) for name, array in zip(("time", "event", *names), arrays, strict=True)}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"inputs differ in length: {', '.join(f'{k} {v}' for k, v in lengths.items())}")
    return tuple(arrays)


# What makes a wait unusable, in the order checked (a NaN is not negative, so it is named first).
_BAD_DAYS = (("missing or infinite", lambda days: ~np.isfinite(days)), ("negative", lambda days: days < 0))


def _as_days(values, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=float).ravel()
    if not len(array):
        raise ValueError(f"{name} is empty")
    for problem, find in _BAD_DAYS:
        if bad := int(find(array).sum()):
            raise ValueError(f"{name} has {bad} {problem} value(s); waits are finite, non-negative days")
    return array


def concordance_counts(time, event, predicted) -> ConcordanceCounts:
    """Comparable, concordant and tied pairs (see the module docstring for the rules).

    Times and predictions become dense integer ranks. For two customers whose time ranks differ,
    the highest bit in which the ranks differ is 0 for the earlier and 1 for the later, with the
    bits above it equal: so each pair is met exactly once, at that bit's level, as (an earlier
    customer with bit 0, a later customer with bit 1, same prefix). At each level the later side
    is sorted by (prefix, prediction rank) and every earlier buyer counts, by binary search, the
    later customers of their prefix and how many of those have a larger or an equal prediction.
    Equal times share every bit, so they are never paired.
    """
    time, event, predicted = check_timing_inputs(time, event, predicted)
    time_rank = np.unique(time, return_inverse=True)[1].astype(np.int64)
    predicted_rank = np.unique(predicted, return_inverse=True)[1].astype(np.int64)
    n_ranks = int(predicted_rank.max()) + 1
    concordant = tied = comparable = 0
    for level in range(int(time_rank.max()).bit_length()):
        later = ((time_rank >> level) & 1).astype(bool)
        earlier_buyers = ~later & event
        if not later.any() or not earlier_buyers.any():
            continue
        prefix = time_rank >> (level + 1)
        keys = np.sort(prefix[later] * n_ranks + predicted_rank[later])
        base = prefix[earlier_buyers] * n_ranks
        own = base + predicted_rank[earlier_buyers]
        first = np.searchsorted(keys, base, side="left")
        past_prefix = np.searchsorted(keys, base + n_ranks, side="left")
        below_own = np.searchsorted(keys, own, side="left")
        up_to_own = np.searchsorted(keys, own, side="right")
        comparable += int((past_prefix - first).sum())
        concordant += int((past_prefix - up_to_own).sum())  # the later customer was predicted later
        tied += int((up_to_own - below_own).sum())
    return ConcordanceCounts(concordant, tied, comparable)


def concordance_index(time, event, predicted) -> float:
    """Harrell's censoring-aware concordance of predicted waits with observed ones (NaN without a
    comparable pair)."""
    return concordance_counts(time, event, predicted).index


def concordance_draws(time, event, predicted, rows: np.ndarray) -> np.ndarray:
    """The concordance index on each bootstrap draw (rows from `models.evidence.bootstrap_rows`): a
    customer drawn twice has the same time as their copy, so the copies are never paired."""
    time, event, predicted = check_timing_inputs(time, event, predicted)
    return np.array([concordance_index(time[draw], event[draw], predicted[draw]) for draw in rows])


def mae_days_of_buyers(time, event, predicted) -> float:
    """Mean absolute difference between predicted and observed wait over the customers who bought
    (NaN without one): a censored customer's wait is unknown, so they cannot count."""
    time, event, predicted = check_timing_inputs(time, event, predicted)
    return float(np.abs(predicted - time)[event].mean()) if event.any() else math.nan


def mae_days_draws(time, event, predicted, rows: np.ndarray) -> np.ndarray:
    """`mae_days_of_buyers` on each bootstrap draw of customers (NaN for a draw without a buyer)."""
    time, event, predicted = check_timing_inputs(time, event, predicted)
    return ratio_of_sums_draws(np.abs(predicted - time) * event, event, rows)


def evaluate_timing_interval(time, event, low, high, window_days: float) -> dict[str, float]:
    """How the intervals [low, high] of the wait fare: coverage among buyers, and among non-buyers
    (censored at `window_days`) the share whose low end lies at or past the window's end (right) and
    the share whose high end lies before it (wrong). NaN for a share of nobody."""
    outcomes = timing_interval_outcomes(time, event, low, high, window_days)
    event = outcomes[COVERAGE_BUYERS][1]
    shares = {name: _share(hit, among) for name, (hit, among) in outcomes.items()}
    return shares | {BUYERS: float(event.sum()), NON_BUYERS: float((~event).sum())}


def timing_interval_outcomes(time, event, low, high, window_days: float) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per customer, for each share of `evaluate_timing_interval`: (hit, counted) flags, so a
    bootstrap can resample customers (`ratio_of_sums_draws(hit & counted, counted, rows)`)."""
    time, event, low, high = check_timing_inputs(time, event, low, high, names=("low", "high"))
    if (low > high).any():
        raise ValueError(f"{int((low > high).sum())} interval(s) have low above high")
    if not window_days > 0:
        raise ValueError(f"window_days must be > 0, got {window_days}")
    censored = ~event
    return {
        COVERAGE_BUYERS: ((low <= time) & (time <= high), event),
        NON_BUYERS_LOW_PAST_WINDOW: (low >= window_days, censored),
        NON_BUYERS_HIGH_INSIDE_WINDOW: (high < window_days, censored),
    }


def _share(hit: np.ndarray, among: np.ndarray) -> float:
    return float(hit[among].mean()) if among.any() else math.nan


def precision_recall(actual, predicted) -> dict[str, float]:
    """Precision and recall of a yes/no prediction per row (NaN when nothing is predicted, or
    nothing happened), with the counts of each side."""
    actual, predicted = (_as_flags(values, name) for values, name in ((actual, "actual"), (predicted, "predicted")))
    if len(actual) != len(predicted):
        raise ValueError(f"actual and predicted differ in length: {len(actual)} and {len(predicted)}")
    hits = int((actual & predicted).sum())
    return {
        PRECISION: hits / predicted.sum() if predicted.any() else math.nan,
        RECALL: hits / actual.sum() if actual.any() else math.nan,
        PREDICTED_POSITIVE: float(predicted.sum()),
        ACTUAL_POSITIVE: float(actual.sum()),
    }


def _as_flags(values, name: str) -> np.ndarray:
    array = np.asarray(values).ravel()
    if array.dtype != bool and not np.isin(array, (0, 1)).all():
        raise ValueError(f"{name} must be true/false (1/0) per row")
    return array.astype(bool)


def ratio_of_sums_draws(numerator, denominator, rows: np.ndarray) -> np.ndarray:
    """sum(numerator) / sum(denominator) on each bootstrap draw of rows (NaN where the denominator
    sums to 0): precision and recall when each row (a customer) holds several predictions."""
    numerator = np.asarray(numerator, dtype=float)
    denominator = np.asarray(denominator, dtype=float)
    out = np.empty(len(rows))
    for start in range(0, len(rows), 100):  # a hundred draws at a time bounds memory
        batch = rows[start : start + 100]
        top, bottom = numerator[batch].sum(axis=1), denominator[batch].sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[start : start + len(batch)] = np.where(bottom > 0, top / np.where(bottom > 0, bottom, 1), np.nan)
    return out
