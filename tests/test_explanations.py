"""Reasons in words on hand-built contributions: themes, their order, their direction, the comparison."""

from __future__ import annotations

import numpy as np
import pytest

from features import schema as s
from models import explanations as ex

FEATURES = [
    s.DAYS_SINCE_LAST_PURCHASE,
    s.OVERDUE_RATIO,
    s.ORDERS_PER_30D,
    s.orders_count(30),
    s.SPEND_SUM_TOTAL,
    "sessions_7d",
    "category_share_books",
    s.NPS_LATEST,
]


@pytest.mark.parametrize(
    ("column", "group"),
    [
        (s.DAYS_SINCE_LAST_PURCHASE, ex.RECENCY),
        (s.orders_count(90), ex.FREQUENCY),
        (s.spend_sum(365), ex.SPEND),
        ("sessions_7d", ex.ENGAGEMENT),
        ("abandoned_carts_30d", ex.ENGAGEMENT),
        (s.SUPPORT_TICKETS_90D, ex.SERVICE),
        (s.REPLENISHMENT_DUE_RATIO, ex.SEASONALITY),
        ("category_share_pet_food", ex.PRODUCTS_AND_CHANNELS),
        ("channel_share_app", ex.PRODUCTS_AND_CHANNELS),
        (s.AGE_YEARS, ex.OTHER),
    ],
)
def test_every_feature_column_has_a_theme(column, group):
    assert ex.group_of(column) == group


def test_themes_sum_their_features_and_keep_the_rows_total():
    grouped = ex.GroupedContributions.of(FEATURES)
    contributions = np.random.default_rng(0).normal(size=(4, len(FEATURES)))
    sums = grouped.sums(contributions)
    assert sums.sum(axis=1) == pytest.approx(contributions.sum(axis=1))
    recency = grouped.groups.index(ex.RECENCY)
    assert sums[:, recency] == pytest.approx(contributions[:, 0] + contributions[:, 1])


def test_a_customer_quiet_for_long_is_told_by_recency_first_and_loyalty_lowers_the_risk():
    grouped = ex.GroupedContributions.of(FEATURES)
    values = np.array([250.0, 6.2, 0.7, 1.0, 820.0, 0.0, 0.35, 9.0])
    # recency: +0.9 and -0.1 (sum +0.8); frequency: -0.4 and -0.1 (sum -0.5); spend +0.1; the rest 0
    contributions = np.array([0.9, -0.1, -0.4, -0.1, 0.1, 0.0, 0.0, 0.0])
    typical = {s.DAYS_SINCE_LAST_PURCHASE: 40.0, s.ORDERS_PER_30D: 0.5}
    reasons = ex.explain_in_words(FEATURES, values, contributions, grouped, typical, "Loyal")
    assert [r["group"] for r in reasons] == [ex.RECENCY, ex.FREQUENCY, ex.SPEND]
    recency, frequency, spend = reasons
    assert recency["direction"] == "raises" and recency["impact"] == pytest.approx(0.8)
    assert recency["column"] == s.DAYS_SINCE_LAST_PURCHASE  # the strongest feature pushing the theme's way
    assert recency["text"] == (
        "Recency raises the churn risk: days since the last purchase: 250 days; customers like them (Loyal): 40 days"
    )
    assert frequency["direction"] == "lowers" and frequency["column"] == s.ORDERS_PER_30D
    assert frequency["typical"] == 0.5 and "0.7" in frequency["text"]
    assert spend["typical"] is None and "customers like them" not in spend["text"]


def test_a_theme_that_lowers_the_score_is_told_by_a_feature_that_lowers_it():
    grouped = ex.GroupedContributions.of(FEATURES)
    # recency's largest single contribution raises the risk, but the theme as a whole lowers it
    contributions = np.array([0.3, -0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    (reason,) = ex.explain_in_words(FEATURES, np.ones(len(FEATURES)), contributions, grouped)
    assert reason["direction"] == "lowers" and reason["column"] == s.OVERDUE_RATIO


def test_themes_without_effect_are_left_out():
    grouped = ex.GroupedContributions.of(FEATURES)
    contributions = np.zeros(len(FEATURES))
    contributions[5] = -0.2
    reasons = ex.explain_in_words(FEATURES, np.ones(len(FEATURES)), contributions, grouped, top=3)
    assert [r["group"] for r in reasons] == [ex.ENGAGEMENT]


@pytest.mark.parametrize(
    ("column", "value", "text"),
    [
        (s.DAYS_SINCE_LAST_PURCHASE, 249.6, "250 days"),
        ("category_share_books", 0.354, "35%"),
        (s.BGNBD_P_ALIVE, 0.9, "90%"),
        (s.ORDERS_PER_30D, 3.3412, "3.34"),
        (s.NPS_LATEST, float("nan"), "unknown"),
    ],
)
def test_values_read_as_people_say_them(column, value, text):
    assert ex.format_value(column, value) == text


def test_feature_names_read_as_words():
    assert ex.describe_feature(s.DAYS_SINCE_LAST_PURCHASE) == "days since the last purchase"
    assert ex.describe_feature("spend_sum_90d") == "spend sum (last 90 days)"
    assert ex.describe_feature("category_share_pet_food") == "share of purchases in pet food"
    assert ex.describe_feature("gap_std_days") == "gap std days"  # no label: from the name


def test_typical_values_are_medians_within_each_segment():
    matrix = np.array([[1.0, np.nan], [3.0, np.nan], [10.0, 4.0], [20.0, 6.0], [30.0, np.nan]])
    segments = np.array(["a", "a", "b", "b", "b"], dtype=object)
    typical = ex.typical_by_segment(matrix, segments, ["x", "y"])
    assert typical == {"a": {"x": 2.0}, "b": {"x": 20.0, "y": 5.0}}
