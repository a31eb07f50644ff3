"""Timing metrics on hand-built customers, and the fast concordance against a brute-force count."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models import timing_metrics as tm
from models.evidence import bootstrap_rows


def brute_force_counts(time, event, predicted) -> tm.ConcordanceCounts:
    """Every ordered pair, one by one: the definition in the module docstring, in O(n^2)."""
    concordant = tied = comparable = 0
    for i in range(len(time)):
        for j in range(len(time)):
            if event[i] and time[i] < time[j]:
                comparable += 1
                concordant += predicted[i] < predicted[j]
                tied += predicted[i] == predicted[j]
    return tm.ConcordanceCounts(concordant, tied, comparable)


def test_a_perfect_ordering_scores_1_and_the_reversed_one_0():
    time = [1.0, 2.0, 3.0, 4.0]
    event = [True, True, True, True]
    assert tm.concordance_index(time, event, [10, 20, 30, 40]) == 1.0
    assert tm.concordance_index(time, event, [40, 30, 20, 10]) == 0.0


def test_a_constant_prediction_scores_one_half():
    assert tm.concordance_index([1.0, 2.0, 5.0], [True, True, False], [7.0, 7.0, 7.0]) == 0.5


def test_a_censored_customer_is_compared_only_with_earlier_buyers():
    # B is censored at 10: comparable with A (bought at 3, earlier) but not with C (censored too),
    # and not with D, who bought at 12, after B's censoring: B's wait might be longer or shorter
    time = [3.0, 10.0, 10.0, 12.0]
    event = [True, False, False, True]
    counts = tm.concordance_counts(time, event, [1.0, 5.0, 0.5, 2.0])
    # comparable: (A,B) (A,C) (A,D); A predicted earlier than B and D, later than C
    assert counts == tm.ConcordanceCounts(concordant=2, tied=0, comparable=3)
    assert counts.index == pytest.approx(2 / 3)


def test_two_buyers_on_the_same_day_are_not_comparable():
    counts = tm.concordance_counts([4.0, 4.0], [True, True], [1.0, 9.0])
    assert counts.comparable == 0
    assert math.isnan(counts.index)


def test_ties_in_prediction_count_a_half():
    counts = tm.concordance_counts([1.0, 2.0, 3.0], [True, True, False], [5.0, 5.0, 6.0])
    assert counts == tm.ConcordanceCounts(concordant=2, tied=1, comparable=3)
    assert counts.index == pytest.approx(2.5 / 3)


@pytest.mark.parametrize("seed", range(6))
def test_the_fast_count_equals_the_brute_force_one_on_random_data(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 120))
    # few distinct values on both sides, so ties in time and in prediction are common
    time = rng.integers(0, 15, size=n).astype(float) + 0.5
    event = rng.random(n) < 0.6
    time[~event] = rng.choice([14.5, time.max()], size=(~event).sum())
    predicted = np.round(rng.exponential(5.0, size=n), 0)
    assert tm.concordance_counts(time, event, predicted) == brute_force_counts(time, event, predicted)


def test_bootstrap_draws_give_the_index_of_each_resample():
    time, event, predicted = [1.0, 2.0, 3.0, 9.0], [True, True, False, False], [2.0, 1.0, 3.0, 4.0]
    rows = bootstrap_rows(4, samples=5, seed=1)
    draws = tm.concordance_draws(time, event, predicted, rows)
    expected = [brute_force_counts(*(np.asarray(v)[draw] for v in (time, event, predicted))).index for draw in rows]
    np.testing.assert_allclose(draws, expected)


def test_the_mae_counts_only_buyers():
    # the censored customer's prediction is far off but their wait is unknown
    assert tm.mae_days_of_buyers([2.0, 10.0, 30.0], [True, True, False], [4.0, 7.0, 1.0]) == pytest.approx(2.5)
    assert math.isnan(tm.mae_days_of_buyers([30.0], [False], [1.0]))


def test_interval_coverage_counts_buyers_and_judges_non_buyers_by_the_window_end():
    result = tm.evaluate_timing_interval(
        time=[5.0, 20.0, 30.0, 30.0, 30.0],
        event=[True, True, False, False, False],
        low=[1.0, 1.0, 31.0, 0.0, 10.0],
        high=[9.0, 9.0, 60.0, 20.0, 50.0],
        window_days=30,
    )
    assert result[tm.COVERAGE_BUYERS] == pytest.approx(0.5)  # the first buyer in, the second past high
    assert result[tm.NON_BUYERS_LOW_PAST_WINDOW] == pytest.approx(1 / 3)  # said "not in this window"
    assert result[tm.NON_BUYERS_HIGH_INSIDE_WINDOW] == pytest.approx(1 / 3)  # said "by day 20"
    assert (result[tm.BUYERS], result[tm.NON_BUYERS]) == (2, 3)


def test_precision_and_recall_of_a_yes_no_prediction():
    result = tm.precision_recall(actual=[1, 1, 0, 0], predicted=[1, 0, 1, 1])
    assert result[tm.PRECISION] == pytest.approx(1 / 3)
    assert result[tm.RECALL] == pytest.approx(1 / 2)
    assert math.isnan(tm.precision_recall([1, 0], [0, 0])[tm.PRECISION])


def test_ratio_of_sums_draws_resample_whole_rows():
    rows = np.array([[0, 0], [1, 1], [0, 1]])
    draws = tm.ratio_of_sums_draws([1.0, 0.0], [2.0, 0.0], rows)
    np.testing.assert_allclose(draws, [0.5, np.nan, 0.5])


@pytest.mark.parametrize(
    ("time", "event", "predicted", "message"),
    [
        ([1.0, 2.0], [True, True], [1.0], "differ in length"),
        ([1.0, np.nan], [True, True], [1.0, 2.0], "time has 1 missing"),
        ([1.0, 2.0], [True, True], [1.0, -2.0], "predicted has 1 negative"),
        ([1.0, 2.0], [2, 0], [1.0, 2.0], "event must be true/false"),
        ([], [], [], "time is empty"),
    ],
)
def test_bad_input_is_named(time, event, predicted, message):
    with pytest.raises(ValueError, match=message):
        tm.concordance_index(time, event, predicted)


def test_a_large_sample_is_counted_exactly():
    # exactness on a large sample, by a case with a known answer: predicted = time gives C = 1
    # for every comparable pair; the speed at a million customers is measured by bench/cdnow_timing.py
    rng = np.random.default_rng(0)
    time = rng.integers(0, 1_000_000, size=200_000).astype(float)
    event = rng.random(200_000) < 0.5
    assert tm.concordance_index(time, event, time) == 1.0


def test_the_draws_of_the_mae_and_the_interval_shares_resample_customers():
    time, event = np.array([2.0, 10.0, 30.0]), np.array([True, True, False])
    rows = np.array([[0, 0, 2], [1, 2, 2], [2, 2, 2]])
    np.testing.assert_allclose(tm.mae_days_draws(time, event, [4.0, 7.0, 1.0], rows), [2.0, 3.0, np.nan])
    outcomes = tm.timing_interval_outcomes(time, event, [1.0, 11.0, 31.0], [3.0, 12.0, 40.0], window_days=30)
    hit, counted = outcomes[tm.COVERAGE_BUYERS]
    np.testing.assert_allclose(tm.ratio_of_sums_draws(hit & counted, counted, rows), [1.0, 0.0, np.nan])
    hit, counted = outcomes[tm.NON_BUYERS_LOW_PAST_WINDOW]
    np.testing.assert_allclose(tm.ratio_of_sums_draws(hit & counted, counted, rows), [1.0, 1.0, 1.0])
