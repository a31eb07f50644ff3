"""Binary-classifier metrics on tiny hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

from features import schema as s
from features.segments import RFM_SEGMENTS
from models import metrics as m


def _perfect(n: int, positives: int) -> tuple[np.ndarray, np.ndarray]:
    labels = np.r_[np.ones(positives), np.zeros(n - positives)]
    scores = np.linspace(0.99, 0.01, n)  # strictly decreasing, so positives rank first
    return labels, scores


@pytest.mark.parametrize("n, positives", [(20, 5), (10, 1), (30, 10), (15, 2)])
def test_perfect_scores(n, positives):
    labels, scores = _perfect(n, positives)
    result = m.evaluate_binary(labels, scores)
    base_rate = positives / n
    assert result[m.ROC_AUC] == pytest.approx(1.0)
    assert result[m.PR_AUC] == pytest.approx(1.0)
    assert result[m.BASE_RATE] == pytest.approx(base_rate)
    assert result[m.N] == n
    for key_capture, key_lift, percent in [
        (m.CAPTURE_AT_10, m.LIFT_AT_10, 10),
        (m.CAPTURE_AT_20, m.LIFT_AT_20, 20),
    ]:
        k = math.ceil(percent * n / 100)
        assert result[key_capture] == pytest.approx(min(1.0, k / positives))
        assert result[key_lift] == pytest.approx(min(k, positives) / k / base_rate)


def test_reversed_scores_have_auc_zero():
    labels, scores = _perfect(20, 5)
    result = m.evaluate_binary(labels, scores[::-1])
    assert result[m.ROC_AUC] == pytest.approx(0.0)
    assert result[m.CAPTURE_AT_20] == pytest.approx(0.0)
    assert result[m.LIFT_AT_10] == pytest.approx(0.0)


def test_result_has_every_metric_name():
    labels, scores = _perfect(10, 3)
    assert tuple(m.evaluate_binary(labels, scores)) == m.METRIC_NAMES


def test_lift_and_capture_on_ten_rows_by_hand():
    # ranked by score: rows 0..9; positives at ranks 1, 3 and 6 (base rate 0.3)
    labels = [0, 1, 0, 1, 0, 0, 1, 0, 0, 0]
    scores = [0.9, 0.8, 0.75, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1]
    result = m.evaluate_binary(labels, scores)
    # top 10% = 1 row (label 0); top 20% = 2 rows (one positive of three)
    assert result[m.CAPTURE_AT_10] == pytest.approx(0.0)
    assert result[m.LIFT_AT_10] == pytest.approx(0.0)
    assert result[m.CAPTURE_AT_20] == pytest.approx(1 / 3)
    assert result[m.LIFT_AT_20] == pytest.approx((1 / 2) / 0.3)
    assert m.capture_at(labels, scores, 40) == pytest.approx(2 / 3)
    assert m.lift_at(labels, scores, 40) == pytest.approx((2 / 4) / 0.3)
    assert m.capture_at(labels, scores, 100) == pytest.approx(1.0)
    assert m.lift_at(labels, scores, 100) == pytest.approx(1.0)


def test_ties_are_broken_by_position():
    # rows 1 and 2 tie for the top score; the earlier row (a negative) takes the single top-10% slot
    labels = [0, 0, 1, 1, 0, 0, 1, 0, 0, 0]
    scores = [0.5, 0.9, 0.9, 0.4, 0.3, 0.3, 0.2, 0.1, 0.1, 0.1]
    assert m.capture_at(labels, scores, 10) == pytest.approx(0.0)
    swapped = [0, 1, 0, 1, 0, 0, 1, 0, 0, 0]
    assert m.capture_at(swapped, scores, 10) == pytest.approx(1 / 3)
    assert list(m.rank_by_score(scores)[:3]) == [1, 2, 0]


@pytest.mark.parametrize(
    "n, percent, expected",
    [(10, 10, 1), (30, 10, 3), (15, 10, 2), (5, 10, 1), (3, 100, 3), (1, 20, 1), (50, 20, 10)],
)
def test_top_percent_count(n, percent, expected):
    assert m.top_percent_count(n, percent) == expected


def test_top_percent_count_rejects_bad_percent():
    with pytest.raises(ValueError):
        m.top_percent_count(10, 0)
    with pytest.raises(ValueError):
        m.top_percent_count(10, 120)


def test_cumulative_gain_agrees_with_capture():
    labels = [0, 1, 0, 1, 0, 0, 1, 0, 0, 0]
    scores = [0.9, 0.8, 0.75, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1]
    targeted, captured = m.cumulative_gain(labels, scores)
    assert targeted[0] == 0 and captured[0] == 0 and targeted[-1] == 1 and captured[-1] == pytest.approx(1.0)
    assert captured[2] == pytest.approx(m.capture_at(labels, scores, 20))
    assert captured[4] == pytest.approx(2 / 3)


def test_ece_is_zero_when_every_bin_is_calibrated():
    labels = [1, 0, 0, 0, 1, 1, 1, 0]
    scores = [0.25] * 4 + [0.75] * 4
    assert m.expected_calibration_error(labels, scores) == pytest.approx(0.0)
    assert m.evaluate_binary(labels, scores)[m.ECE] == pytest.approx(0.0)


def test_ece_by_hand():
    # bin 0: mean 0.05, observed 0.5 -> gap 0.45, weight 0.5
    # bin 9: mean 0.95, observed 1.0 -> gap 0.05, weight 0.5
    labels = [1, 0, 1, 1]
    scores = [0.05, 0.05, 0.95, 0.95]
    assert m.expected_calibration_error(labels, scores) == pytest.approx(0.5 * 0.45 + 0.5 * 0.05)
    # with one bin everything is pooled: |mean score 0.5 - rate 0.75|
    assert m.expected_calibration_error(labels, scores, n_bins=1) == pytest.approx(0.25)


def test_calibration_table_by_hand():
    labels = [1, 0, 1, 1, 0]
    scores = [0.05, 0.15, 0.95, 1.0, 0.3]
    table = m.calibration_table(labels, scores)
    assert len(table) == 10
    assert list(table[m.BIN]) == list(range(10))
    assert list(table[m.COUNT]) == [1, 1, 0, 1, 0, 0, 0, 0, 0, 2]  # 0.3 -> bin 3, 1.0 -> top bin
    assert table[m.MEAN_PREDICTED].iloc[9] == pytest.approx(0.975)
    assert table[m.OBSERVED_RATE].iloc[9] == pytest.approx(1.0)
    assert table[m.OBSERVED_RATE].iloc[1] == pytest.approx(0.0)
    assert np.isnan(table[m.MEAN_PREDICTED].iloc[2]) and np.isnan(table[m.OBSERVED_RATE].iloc[2])
    assert table[m.BIN_LOWER].iloc[3] == pytest.approx(0.3) and table[m.BIN_UPPER].iloc[9] == pytest.approx(1.0)


def test_brier_and_log_loss_by_hand():
    result = m.evaluate_binary([1, 0], [0.8, 0.4])
    assert result[m.BRIER] == pytest.approx((0.2**2 + 0.4**2) / 2)
    assert result[m.LOG_LOSS] == pytest.approx(-(math.log(0.8) + math.log(0.6)) / 2)


def test_log_loss_clips_confident_mistakes():
    result = m.evaluate_binary([1, 0], [0.0, 1.0])
    assert result[m.LOG_LOSS] == pytest.approx(-math.log(m.LOG_LOSS_EPS))
    assert result[m.BRIER] == pytest.approx(1.0)


def test_agrees_with_scikit_learn_on_random_data():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 200)
    scores = rng.random(200)
    result = m.evaluate_binary(labels, scores)
    assert result[m.ROC_AUC] == pytest.approx(roc_auc_score(labels, scores))
    assert result[m.LOG_LOSS] == pytest.approx(log_loss(labels, scores))
    assert result[m.BRIER] == pytest.approx(brier_score_loss(labels, scores))


def test_single_class_gives_nan_auc_not_an_error():
    negatives = m.evaluate_binary([0, 0, 0, 0], [0.1, 0.2, 0.3, 0.4])
    assert math.isnan(negatives[m.ROC_AUC]) and math.isnan(negatives[m.PR_AUC])
    assert math.isnan(negatives[m.LIFT_AT_10]) and math.isnan(negatives[m.CAPTURE_AT_10])
    assert negatives[m.BASE_RATE] == 0.0
    assert negatives[m.BRIER] == pytest.approx((0.01 + 0.04 + 0.09 + 0.16) / 4)

    positives = m.evaluate_binary([1, 1, 1, 1], [0.1, 0.2, 0.3, 0.4])
    assert math.isnan(positives[m.ROC_AUC]) and math.isnan(positives[m.PR_AUC])
    assert positives[m.LIFT_AT_10] == pytest.approx(1.0)
    assert positives[m.CAPTURE_AT_10] == pytest.approx(1 / 4)


@pytest.mark.parametrize(
    "labels, scores",
    [
        ([0, 1], [0.5]),  # length mismatch
        ([], []),  # empty
        ([0, 2], [0.1, 0.2]),  # not binary
        ([0, np.nan], [0.1, 0.2]),  # missing label
        ([0, 1], [0.1, 1.5]),  # not a probability
        ([0, 1], [0.1, np.nan]),  # missing score
        ([[0, 1]], [[0.1, 0.2]]),  # not 1-D
    ],
)
def test_bad_inputs_raise(labels, scores):
    with pytest.raises(ValueError):
        m.evaluate_binary(labels, scores)


def test_accepts_booleans_and_series_by_position():
    labels = pd.Series([True, False, True], index=[10, 5, 7])
    scores = pd.Series([0.9, 0.2, 0.6], index=[0, 1, 2])
    assert m.evaluate_binary(labels, scores)[m.ROC_AUC] == pytest.approx(1.0)


def test_evaluate_by_segment_one_row_per_segment():
    first, second, third = RFM_SEGMENTS[:3]
    labels = [1, 0, 1, 0, 0, 0, 1, 1]
    scores = [0.9, 0.1, 0.2, 0.8, 0.3, 0.4, 0.7, 0.5]
    segments = pd.Series([second, second, first, first, third, third, None, second], name=s.RFM_SEGMENT)
    table = m.evaluate_by_segment(labels, scores, segments)

    assert table.index.name == s.RFM_SEGMENT
    # sorted, and the row without a segment is left out
    assert list(table.index) == sorted([first, second, third])
    assert list(table.columns) == list(m.METRIC_NAMES)
    assert table.loc[second, m.N] == 3
    assert table.loc[second, m.BASE_RATE] == pytest.approx(2 / 3)
    assert table.loc[second, m.ROC_AUC] == pytest.approx(1.0)
    assert table.loc[first, m.ROC_AUC] == pytest.approx(0.0)
    assert np.isnan(table.loc[third, m.ROC_AUC])  # only negatives
    assert np.isnan(table.loc[third, m.LIFT_AT_10])
    expected = m.evaluate_binary([1, 0, 1], [0.9, 0.1, 0.5])
    assert table.loc[second].to_dict() == pytest.approx(expected)


def test_evaluate_by_segment_rejects_misaligned_segments():
    with pytest.raises(ValueError):
        m.evaluate_by_segment([0, 1], [0.1, 0.9], ["a"])
