"""RFM scores, named RFM segments and lifecycle stages.

Scores are quintiles 1-5 against breakpoints computed once over all buyers at as_of (a
reference table), so a customer's scores never depend on which other customers are in the
frame. Customers with no purchase score 0 and are in the segment "Prospect".

The named segments follow the widely used recency x frequency grid (monetary is reported but,
as in that scheme, does not move a customer between segments). First matching row wins:

| segment            | R (recency score) | F (frequency score) |
| ------------------ | ----------------- | ------------------- |
| Champions          | 5                 | 4-5                 |
| Loyal              | 3-4               | 4-5                 |
| Potential Loyalist | 4-5               | 2-3                 |
| New Customers      | 5                 | 1                   |
| Promising          | 4                 | 1                   |
| Need Attention     | 3                 | 3                   |
| About to Sleep     | 3                 | 1-2                 |
| Can't Lose Them    | 1-2               | 5                   |
| At Risk            | 1-2               | 3-4                 |
| Hibernating        | 1-2               | 1-2 (not R1 F1)     |
| Lost               | 1                 | 1                   |
"""

from __future__ import annotations

import numpy as np

from features import schema as s

PROSPECT = "Prospect"
# The keys of the RFM breakpoints (a reference table): the quantity each score ranks.
RFM_RECENCY, RFM_FREQUENCY, RFM_MONETARY = "recency", "frequency", "monetary"

# (segment, recency scores, frequency scores): the table above, as data.
RFM_SEGMENT_TABLE: tuple[tuple[str, frozenset[int], frozenset[int]], ...] = (
    ("Champions", frozenset({5}), frozenset({4, 5})),
    ("Loyal", frozenset({3, 4}), frozenset({4, 5})),
    ("Potential Loyalist", frozenset({4, 5}), frozenset({2, 3})),
    ("New Customers", frozenset({5}), frozenset({1})),
    ("Promising", frozenset({4}), frozenset({1})),
    ("Need Attention", frozenset({3}), frozenset({3})),
    ("About to Sleep", frozenset({3}), frozenset({1, 2})),
    ("Can't Lose Them", frozenset({1, 2}), frozenset({5})),
    ("At Risk", frozenset({1, 2}), frozenset({3, 4})),
    ("Lost", frozenset({1}), frozenset({1})),
    ("Hibernating", frozenset({1, 2}), frozenset({1, 2})),
)
RFM_SEGMENTS = tuple(name for name, _, _ in RFM_SEGMENT_TABLE)

# Lifecycle stages, judged on days since the first and last purchase (first match wins):
NEW_WITHIN_DAYS = 90  # new: first purchase within this many days
ACTIVE_WITHIN_DAYS = 90  # active: last purchase within this many days...
REACTIVATION_GAP_DAYS = 180  # ...reactivated: and the gap before it was at least this long
LAPSED_AFTER_DAYS = 180  # at risk: last purchase older than active; lapsed: older than this
LIFECYCLE_STAGES = ("prospect", "new", "reactivated", "active", "at risk", "lapsed")


def score_quintile(values: np.ndarray, breakpoints: tuple[float, ...], higher_is_better: bool) -> np.ndarray:
    """1-5 by how many breakpoints a value exceeds (ties go to the lower score)."""
    above = np.searchsorted(np.asarray(breakpoints, dtype=float), values, side="left")
    scores = (
        1 + above
        if higher_is_better
        else 5 - np.searchsorted(np.asarray(breakpoints, dtype=float), values, side="right")
    )
    return np.clip(scores, 1, 5).astype(np.int64)


def name_segment(recency_score: np.ndarray, frequency_score: np.ndarray) -> np.ndarray:
    """The named segment of each (R, F) pair; score 0 means no purchase: Prospect."""
    return _SEGMENT_BY_SCORES[np.asarray(recency_score, dtype=np.int64), np.asarray(frequency_score, dtype=np.int64)]


def _segment_by_scores() -> np.ndarray:
    """RFM_SEGMENT_TABLE as a lookup: [recency score, frequency score] -> name (first match wins).

    One fancy index instead of two set tests per segment: the same names, and on the service's
    one-customer rebuilds a millisecond less.
    """
    names = np.full((6, 6), PROSPECT, dtype=object)
    for recency in range(1, 6):
        for frequency in range(1, 6):
            names[recency, frequency] = next(
                (
                    name
                    for name, recencies, frequencies in RFM_SEGMENT_TABLE
                    if recency in recencies and frequency in frequencies
                ),
                PROSPECT,
            )
    return names


_SEGMENT_BY_SCORES = _segment_by_scores()


def lifecycle_stage(
    orders_total: np.ndarray,
    days_since_first: np.ndarray,
    days_since_last: np.ndarray,
    gap_before_last: np.ndarray,
) -> np.ndarray:
    """prospect, new, reactivated, active, at risk or lapsed; thresholds in this module."""
    conditions = [
        orders_total <= 0,
        days_since_first < NEW_WITHIN_DAYS,
        (days_since_last < ACTIVE_WITHIN_DAYS) & (gap_before_last >= REACTIVATION_GAP_DAYS),
        days_since_last < ACTIVE_WITHIN_DAYS,
        days_since_last < LAPSED_AFTER_DAYS,
    ]
    return np.select(conditions, LIFECYCLE_STAGES[:5], default=LIFECYCLE_STAGES[5]).astype(object)


# The feature columns the segment columns are made from (`segment_columns`).
SEGMENT_SOURCE_COLUMNS = (
    s.ORDERS_COUNT_TOTAL,
    s.DAYS_SINCE_LAST_PURCHASE,
    s.SPEND_SUM_TOTAL,
    s.DAYS_SINCE_FIRST_PURCHASE,
    s.GAP_BEFORE_LAST_DAYS,
)


def segment_columns(columns: dict[str, np.ndarray], rfm_breakpoints: dict[str, tuple[float, ...]]) -> dict:
    """rfm_r, rfm_f, rfm_m, rfm_segment and lifecycle_stage from a customer's feature columns."""
    bought = np.asarray(columns[s.ORDERS_COUNT_TOTAL]) > 0
    out: dict[str, np.ndarray] = {}
    for column, key, higher_is_better, source in (
        (s.RFM_R, RFM_RECENCY, False, s.DAYS_SINCE_LAST_PURCHASE),
        (s.RFM_F, RFM_FREQUENCY, True, s.ORDERS_COUNT_TOTAL),
        (s.RFM_M, RFM_MONETARY, True, s.SPEND_SUM_TOTAL),
    ):
        values = np.asarray(columns[source], dtype=float)
        breakpoints = rfm_breakpoints.get(key, ())
        # with no buyers to rank against, every buyer is in the middle quintile
        score = score_quintile(values, breakpoints, higher_is_better) if breakpoints else np.full(len(values), 3)
        out[column] = np.where(bought, score, 0).astype(np.int64)
    out[s.RFM_SEGMENT] = name_segment(out[s.RFM_R], out[s.RFM_F])
    out[s.LIFECYCLE_STAGE] = lifecycle_stage(
        np.asarray(columns[s.ORDERS_COUNT_TOTAL], dtype=float),
        np.asarray(columns[s.DAYS_SINCE_FIRST_PURCHASE], dtype=float),
        np.asarray(columns[s.DAYS_SINCE_LAST_PURCHASE], dtype=float),
        np.asarray(columns[s.GAP_BEFORE_LAST_DAYS], dtype=float),
    )
    return out
