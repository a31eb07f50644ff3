"""The recommender's grouped reductions give the same answer at one customer's size (a numpy sort)
and at a fit's size (pandas' groupby), and the answer a plain reading of their promise gives."""

from __future__ import annotations

import statistics

import numpy as np
import pytest

from features.records import FEW_VALUES, median_by_group
from models.recommender.arrays import count_and_max_by_key


def _expected_medians(groups: np.ndarray, values: np.ndarray, n_groups: int) -> np.ndarray:
    by_group: dict[int, list[float]] = {}
    for group, value in zip(groups.tolist(), values.tolist(), strict=True):
        if not np.isnan(value):
            by_group.setdefault(group, []).append(value)
    return np.array([statistics.median(by_group[g]) if g in by_group else np.nan for g in range(n_groups)])


@pytest.mark.parametrize("size", [0, 1, 7, 500, FEW_VALUES + 500])
def test_median_by_group_matches_the_median_of_each_groups_present_values(size):
    rng = np.random.default_rng(size)
    n_groups = max(size // 4, 3)
    groups = rng.integers(0, n_groups, size)
    values = rng.integers(0, 50, size).astype(float)  # ties and even counts are common
    values[rng.random(size) < 0.2] = np.nan
    got = median_by_group(groups, values, n_groups)
    np.testing.assert_array_equal(got, _expected_medians(groups, values, n_groups))


def test_median_by_group_of_a_hand_built_case():
    groups = np.array([2, 0, 0, 2, 2, 0, 0])
    values = np.array([5.0, 4.0, 1.0, np.nan, 1.0, 3.0, 2.0])
    # group 0: 1, 2, 3, 4 -> 2.5; group 1: nothing; group 2: 1, 5 -> 3
    np.testing.assert_array_equal(median_by_group(groups, values, 3), [2.5, np.nan, 3.0])


@pytest.mark.parametrize("size", [0, 1, 9, FEW_VALUES + 500])
def test_count_and_max_by_key_counts_and_takes_the_largest(size):
    rng = np.random.default_rng(size)
    keys = rng.integers(0, max(size // 3, 2), size)
    values = rng.random(size) * 100
    distinct, counts, largest = count_and_max_by_key(keys, values)
    expected = sorted(set(keys.tolist()))
    assert distinct.tolist() == expected
    assert counts.tolist() == [int((keys == k).sum()) for k in expected]
    np.testing.assert_array_equal(largest, [values[keys == k].max() for k in expected])
