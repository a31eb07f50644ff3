"""Value metrics on hand-built customers: exact answers, the undefined cases, and clear errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from models import value_metrics as vm
from models.evidence import bootstrap_rows


def test_a_perfect_prediction_scores_perfectly():
    actual = np.array([0.0, 10.0, 20.0, 30.0, 40.0, 0.0, 5.0, 7.0, 100.0, 3.0])
    result = vm.evaluate_value(actual, actual)
    assert result[vm.MAE] == 0 and result[vm.RMSE] == 0 and result[vm.AGGREGATE_BIAS] == 0
    assert result[vm.SPEARMAN] == pytest.approx(1.0)
    assert result[vm.NORMALISED_GINI] == pytest.approx(1.0)
    assert result[vm.TOP_DECILE_CAPTURE] == pytest.approx(100 / actual.sum())  # the top 10% is one customer
    assert result[vm.N] == 10


def test_errors_and_bias_by_hand():
    actual = [0.0, 10.0, 20.0, 30.0]
    predicted = [5.0, 5.0, 25.0, 35.0]
    result = vm.evaluate_value(actual, predicted)
    assert result[vm.MAE] == pytest.approx(5.0)
    assert result[vm.RMSE] == pytest.approx(5.0)
    assert result[vm.AGGREGATE_BIAS] == pytest.approx(70 / 60 - 1)


def test_a_reversed_ranking_is_minus_one_and_a_random_one_near_zero():
    actual = np.arange(1.0, 101.0)
    assert vm.spearman(actual, actual[::-1]) == pytest.approx(-1.0)
    assert vm.normalised_gini(actual, actual[::-1]) == pytest.approx(-1.0)
    rng = np.random.default_rng(0)
    spend = rng.gamma(1.0, 50.0, 20_000)
    assert abs(vm.normalised_gini(spend, rng.random(20_000))) < 0.03


def test_top_decile_capture_follows_where_the_big_spender_is_ranked():
    actual = np.zeros(20)
    actual[7] = 100.0
    actual[3] = 100.0
    first = np.zeros(20)
    first[[7, 3]] = [2.0, 1.0]  # the two spenders fill the top 10% (2 of 20)
    assert vm.top_capture(actual, first) == 1.0
    one_of_them = np.zeros(20)
    one_of_them[[7, 5]] = [2.0, 1.0]
    assert vm.top_capture(actual, one_of_them) == 0.5
    assert vm.top_capture(actual, -first + 2) == 0.0  # ranked last


def test_interval_coverage_and_width():
    actual = [1.0, 5.0, 10.0, 0.0]
    low = [0.0, 6.0, 8.0, 0.0]
    high = [2.0, 9.0, 10.0, 1.0]
    result = vm.evaluate_value(actual, [1.0, 7.0, 9.0, 0.5], low, high)
    assert result[vm.INTERVAL_COVERAGE] == 0.75  # 5 lies outside [6, 9]; the bounds count as inside
    assert result[vm.INTERVAL_WIDTH] == pytest.approx((2 + 3 + 2 + 1) / 4)


def test_undefined_metrics_are_nan_not_errors():
    nobody = np.zeros(5)
    result = vm.evaluate_value(nobody, [1.0, 2.0, 3.0, 4.0, 5.0])
    assert math.isnan(result[vm.NORMALISED_GINI])
    assert math.isnan(result[vm.TOP_DECILE_CAPTURE])
    assert math.isnan(result[vm.AGGREGATE_BIAS])
    assert math.isnan(result[vm.SPEARMAN])
    assert result[vm.MAE] == 3.0


@pytest.mark.parametrize(
    ("actual", "predicted", "message"),
    [
        ([], [], "actual is empty"),
        ([1.0, np.nan], [1.0, 2.0], "actual has 1 missing"),
        ([1.0, 2.0], [1.0, -2.0], "predicted has 1 negative"),
        ([1.0, 2.0], [1.0], "differ in length"),
    ],
)
def test_bad_inputs_name_what_is_wrong(actual, predicted, message):
    with pytest.raises(ValueError, match=message):
        vm.evaluate_value(actual, predicted)


def test_an_interval_with_low_above_high_is_refused():
    with pytest.raises(ValueError, match="low above high"):
        vm.evaluate_interval([1.0, 2.0], [0.0, 3.0], [2.0, 2.5])


def test_spearman_draws_agree_with_scipy_on_each_draw():
    rng = np.random.default_rng(1)
    actual = rng.gamma(1.0, 20.0, 300).round()  # many ties at 0 and small values
    predicted = actual + rng.normal(0, 10, 300).clip(-actual)
    rows = bootstrap_rows(300, samples=5, seed=2)
    draws = vm.spearman_draws(actual, predicted, rows)
    expected = [stats.spearmanr(actual[r], predicted[r]).statistic for r in rows]
    np.testing.assert_allclose(draws, expected)


def test_segments_are_evaluated_on_their_own_customers():
    actual = np.array([1.0, 2.0, 3.0, 10.0, 20.0, 30.0])
    predicted = np.array([1.0, 2.0, 3.0, 30.0, 20.0, 10.0])
    table = vm.evaluate_value_by_segment(actual, predicted, np.array(["b", "b", "b", "a", "a", "a"]))
    assert table.index.tolist() == ["a", "b"]
    assert table.loc["b", vm.SPEARMAN] == pytest.approx(1.0)
    assert table.loc["a", vm.SPEARMAN] == pytest.approx(-1.0)
    assert table.loc["a", vm.MAE] == pytest.approx(40 / 3)


def test_the_decile_table_groups_customers_by_predicted_value():
    predicted = np.arange(20.0)
    actual = predicted * 2
    table = vm.decile_table(actual, predicted)
    assert table[vm.DECILE].tolist() == list(range(1, 11))
    assert table[vm.CUSTOMERS].tolist() == [2] * 10
    assert table[vm.MEAN_PREDICTED].iloc[0] == 18.5  # the top two: 19 and 18
    assert table[vm.MEAN_ACTUAL].iloc[-1] == 1.0  # the bottom two: 0 and 2
