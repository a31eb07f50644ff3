"""Label windows at their edges and cutoff planning."""

from __future__ import annotations

import pandas as pd
import pytest

from features import schema as s
from features.labels import (
    ShortHistoryError,
    history_days_needed,
    make_churn_labels,
    make_product_sets,
    make_purchase_labels,
    make_value_labels,
    plan_cutoffs,
)
from tests.builders import random_tables, transactions_table

AS_OF = pd.Timestamp("2024-06-01")


@pytest.fixture(scope="module")
def edge_transactions() -> pd.DataFrame:
    """at: buys exactly at as_of; edge: buys exactly at as_of + horizon; returner: returns only
    in the horizon; quiet: bought before, nothing after; old: bought before the lookback only."""
    return transactions_table(
        [
            ("o1", "at", "p1", 1, 10.0, "2024-05-01"),
            ("o2", "at", "p1", 1, 10.0, "2024-06-01"),
            ("o3", "edge", "p1", 1, 10.0, "2024-05-01"),
            ("o4", "edge", "p3", 1, 40.0, "2024-08-30"),  # as_of + 90 days: outside
            ("o5", "returner", "p1", 1, 10.0, "2024-05-01"),
            ("o6", "returner", "p1", -1, 10.0, "2024-06-10"),
            ("o7", "quiet", "p1", 1, 10.0, "2024-02-01"),
            ("o8", "old", "p1", 1, 10.0, "2023-01-01"),
            ("o9", "at", "lens", 1, 30.0, "2024-06-02"),
        ]
    )


def test_churn_labels_at_the_window_edges(edge_transactions):
    population = ["at", "edge", "quiet", "returner"]
    labels = make_churn_labels(edge_transactions, population, AS_OF, horizon_days=90).set_index(s.CUSTOMER_ID)
    assert labels[s.CHURN_LABEL].to_dict() == {"at": 0, "edge": 1, "quiet": 1, "returner": 1}
    assert labels.index.tolist() == population  # only the customers asked for, in their order


def test_purchase_labels_at_the_window_edges(edge_transactions):
    ids = ["at", "edge", "returner", "quiet", "old", "browser"]
    labels = make_purchase_labels(
        edge_transactions,
        ids,
        AS_OF,
        horizon_days=90,
        categories=["shirts", "lenses"],
        products=random_tables(0)[s.PRODUCTS],
    ).set_index(s.CUSTOMER_ID)
    assert labels[s.PURCHASE_LABEL].to_dict() == {"at": 1, "edge": 0, "returner": 0, "quiet": 0, "old": 0, "browser": 0}
    assert labels.loc["at", s.category_purchase_label("lenses")] == 1
    assert labels.loc["at", s.category_purchase_label("shirts")] == 1
    assert labels.loc["edge", s.category_purchase_label("shirts")] == 0


def test_product_sets_hold_what_was_bought_in_the_horizon(edge_transactions):
    sets = make_product_sets(edge_transactions, AS_OF, horizon_days=30).set_index(s.CUSTOMER_ID)
    assert sets[s.PRODUCTS_BOUGHT].to_dict() == {"at": ["lens", "p1"]}


def test_value_labels_count_orders_and_spend_inside_the_window(edge_transactions):
    two_lines = transactions_table(
        [("o10", "at", "p2", 2, 5.0, "2024-07-01"), ("o10", "at", "p3", 1, 1.5, "2024-07-01")]
    )
    transactions = pd.concat([edge_transactions, two_lines], ignore_index=True)
    ids = ["at", "edge", "returner", "quiet", "browser"]
    labels = make_value_labels(transactions, ids, AS_OF, horizon_days=90).set_index(s.CUSTOMER_ID)
    assert labels.index.tolist() == ids
    # at: o2 (at as_of: inside), o9, and o10 of two lines (one order); the purchase before as_of is not counted
    assert labels[s.FUTURE_ORDERS].to_dict() == {"at": 3, "edge": 0, "returner": 0, "quiet": 0, "browser": 0}
    assert labels.loc["at", s.FUTURE_SPEND] == 10.0 + 30.0 + 2 * 5.0 + 1.5
    assert labels.loc["edge", s.FUTURE_SPEND] == 0.0  # its order at as_of + 90 days lies outside
    assert labels.loc["returner", s.FUTURE_SPEND] == 0.0  # a return is not a purchase


def test_cutoffs_never_reach_past_the_data_or_into_the_test_window():
    plan = plan_cutoffs(pd.Timestamp("2025-12-31"), horizon_days=90, n_cutoffs=6, step_days=30)
    horizon = pd.Timedelta(days=90)
    assert plan.test + horizon == pd.Timestamp("2025-12-31")
    assert len(plan.train) == 6 and list(plan.train) == sorted(plan.train)
    assert all(cutoff + horizon <= plan.test for cutoff in plan.train)


def test_cutoffs_raise_when_history_is_too_short():
    with pytest.raises(ShortHistoryError, match="too short") as raised:
        plan_cutoffs(pd.Timestamp("2024-03-01"), 90, first_purchase=pd.Timestamp("2024-01-01 10:00"))
    assert raised.value.days_needed == 2 * 90 + 1 and raised.value.days_available == 60
    assert "181 days are needed" in str(raised.value) and "there are 60" in str(raised.value)


def test_cutoffs_without_a_purchase_before_them_are_skipped():
    first_purchase = pd.Timestamp("2025-03-01 10:00")
    plan = plan_cutoffs(pd.Timestamp("2025-12-31"), 90, n_cutoffs=7, step_days=30, first_purchase=first_purchase)
    # asked for 2025-01-05 .. 2025-07-04, 30 days apart; the two before the first purchase have nothing to learn from
    assert plan.skipped == (pd.Timestamp("2025-01-05"), pd.Timestamp("2025-02-04"))
    assert len(plan.train) == 5 and all(cutoff > first_purchase for cutoff in plan.train)
    # a purchase at the very instant of a cutoff is not before it (features use records strictly before)
    at_a_cutoff = plan_cutoffs(pd.Timestamp("2025-12-31"), 90, 7, 30, first_purchase=pd.Timestamp("2025-03-06"))
    assert pd.Timestamp("2025-03-06") in at_a_cutoff.skipped


@pytest.mark.parametrize(("horizon_days", "min_cutoffs", "step_days"), [(90, 2, 30), (30, 1, 30), (34, 2, 30)])
def test_days_needed_is_exactly_the_history_at_which_the_plan_starts_to_fit(horizon_days, min_cutoffs, step_days):
    needed = history_days_needed(horizon_days, min_cutoffs, step_days)
    first_purchase = pd.Timestamp("2024-01-01 10:00")
    for days, fits in ((needed, True), (needed - 1, False)):
        data_end = first_purchase.normalize() + pd.Timedelta(days=days)
        try:
            plan = plan_cutoffs(data_end, horizon_days, 7, step_days, first_purchase, min_cutoffs=min_cutoffs)
        except ShortHistoryError as error:
            assert not fits and (error.days_needed, error.days_available) == (needed, days)
        else:
            assert fits and len(plan.train) == min_cutoffs
