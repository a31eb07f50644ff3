"""The recommender's out-of-time evaluation, on tiny hand-made frames with hand-computed answers."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from features.schema import CATEGORY, CUSTOMER_ID, PRODUCT_ID, QUANTITY, REPLENISHMENT_DAYS, TIMESTAMP
from models.plots import plot_grouped_bars
from models.recommender_evaluation import (
    evaluate_lists,
    lists_from_frame,
    make_test_window,
    metric_name,
)
from pipelines.errors import UserError
from pipelines.settings import load_settings
from pipelines.training.recommender import recommender_tables, train_recommender

CUTOFF = pd.Timestamp("2025-01-01")
LOG2_3 = math.log2(3)


def _products() -> pd.DataFrame:
    # P2 is the only consumable (a 30-day cycle); the rest are durables
    return pd.DataFrame(
        {
            PRODUCT_ID: ["P1", "P2", "P3", "P4", "P5"],
            CATEGORY: ["home", "food", "home", "toys", "toys"],
            REPLENISHMENT_DAYS: [None, 30.0, None, None, None],
        }
    )


def _transactions() -> pd.DataFrame:
    rows = [
        # history, before the cutoff
        ("c1", "P1", 1, "2024-12-01"),
        ("c1", "P2", 1, "2024-12-05"),
        ("c2", "P1", 2, "2024-11-20"),
        ("c3", "P3", 1, "2024-12-10"),
        ("c4", "P2", 1, "2024-12-20"),
        # the test window [2025-01-01, 2025-01-31)
        ("c1", "P1", 1, "2025-01-03"),  # a durable c1 owns: not relevant
        ("c1", "P2", 1, "2025-01-04"),  # a consumable bought again: relevant, buy again
        ("c1", "P3", 1, "2025-01-05"),  # new to c1
        ("c2", "P4", 1, "2025-01-01"),  # exactly at the cutoff counts
        ("c3", "P3", -1, "2025-01-06"),  # a return is not a purchase
        ("c5", "P1", 1, "2025-01-07"),  # no history: no baseline can rank for c5
        ("c4", "P5", 1, "2025-01-31"),  # the window's end is exclusive
    ]
    frame = pd.DataFrame(rows, columns=[CUSTOMER_ID, PRODUCT_ID, QUANTITY, TIMESTAMP])
    return frame.assign(**{TIMESTAMP: pd.to_datetime(frame[TIMESTAMP])})


@pytest.fixture
def window():
    return make_test_window(_transactions(), _products(), CUTOFF, 30)


def test_window_holds_buyers_with_history_and_relevance_drops_owned_durables(window):
    assert window.customer_ids == ("c1", "c2")
    assert window.relevant == (frozenset({"P2", "P3"}), frozenset({"P4"}))
    assert window.buy_again == (frozenset({"P2"}), frozenset())
    assert window.new_items == (frozenset({"P3"}), frozenset({"P4"}))
    assert window.item_buyers.to_dict() == {"P1": 2, "P2": 2, "P3": 1, "P4": 0, "P5": 0}
    assert window.history_customers == 4
    assert window.catalogue_size == 5


def test_metrics_match_hand_computed_values(window):
    metrics = evaluate_lists([["P3", "P2"], ["P5", "P4"]], window, ks=(1, 2))
    assert metrics["ndcg_at_1"] == pytest.approx(0.5)  # c1 hits at rank 1, c2 misses
    assert metrics["ndcg_at_2"] == pytest.approx((1 + 1 / LOG2_3) / 2)  # c1 perfect, c2 hits at rank 2
    assert metrics["precision_at_2"] == pytest.approx(0.75)
    assert metrics["recall_at_1"] == pytest.approx(0.25)
    assert metrics["hit_rate_at_2"] == pytest.approx(1.0)
    assert metrics["map_at_2"] == pytest.approx((1 + 0.5) / 2)
    assert metrics["test_customers"] == 2
    # buy again: only c1 has such an item (P2, at rank 2)
    assert metrics["buy_again.test_customers"] == 1
    assert metrics["buy_again.ndcg_at_2"] == pytest.approx(1 / LOG2_3)
    assert metrics["buy_again.hit_rate_at_1"] == 0.0
    # new items: c1's P3 at rank 1, c2's P4 at rank 2
    assert metrics["new_items.ndcg_at_1"] == pytest.approx(0.5)
    assert metrics["new_items.ndcg_at_2"] == pytest.approx((1 + 1 / LOG2_3) / 2)
    # coverage: {P3, P5} then {P2, P3, P4, P5} of 5 products
    assert metrics["coverage_at_1"] == pytest.approx(0.4)
    assert metrics["coverage_at_2"] == pytest.approx(0.8)
    # novelty over 4 history customers: P3 (1 buyer) and never-bought P5, P4 (counted as 1) are 2 bits, P2 is 1
    assert metrics["novelty_at_1"] == pytest.approx(2.0)
    assert metrics["novelty_at_2"] == pytest.approx((2 + 1 + 2 + 2) / 4)


def test_a_perfect_ranking_scores_one_and_no_hits_score_zero(window):
    perfect = evaluate_lists([["P2", "P3"], ["P4"]], window, ks=(2,))
    assert perfect["ndcg_at_2"] == pytest.approx(1.0) and perfect["map_at_2"] == pytest.approx(1.0)
    nothing = evaluate_lists([["P5"], []], window, ks=(2,))
    assert nothing["ndcg_at_2"] == 0.0 and nothing["hit_rate_at_2"] == 0.0


def test_lists_must_align_with_the_window(window):
    with pytest.raises(ValueError, match="test customers"):
        evaluate_lists([["P2"]], window, ks=(1,))


def test_lists_from_frame_keeps_the_order_asked_and_fills_unknown_customers():
    frame = pd.DataFrame({CUSTOMER_ID: ["b", "b", "a"], PRODUCT_ID: ["x", "y", "z"]})
    assert lists_from_frame(frame, ["a", "nobody", "b"]) == [["z"], [], ["x", "y"]]


def test_empty_windows_raise():
    transactions, products = _transactions(), _products()
    with pytest.raises(ValueError, match="no purchases before"):
        make_test_window(transactions, products, pd.Timestamp("2024-01-01"), 30)
    with pytest.raises(ValueError, match="no customer with earlier purchases"):
        make_test_window(transactions, products, pd.Timestamp("2025-06-01"), 30)


def test_metric_names_are_mlflow_safe():
    assert metric_name("ndcg", 10) == "ndcg_at_10"
    assert metric_name("hit_rate", 5) == "hit_rate_at_5"


def test_too_little_history_for_the_recommender_is_a_user_error():
    tables = {"transactions": _transactions(), "products": _products()}
    with pytest.raises(UserError, match="^recommender: .*too short"):
        train_recommender(tables, pd.Timestamp("2024-12-31"), load_settings(None, ["recommender.protocol=temporal"]))
    single = {"transactions": _transactions().assign(**{PRODUCT_ID: "P1"}), "products": _products()}
    with pytest.raises(UserError, match="^recommender: customers bought 1 distinct product"):
        recommender_tables(single)


def test_recommender_settings_have_defaults_and_refuse_nonsense():
    settings = load_settings()
    assert settings.recommender.horizon_days == 30 and settings.recommender.n_cutoffs == 6
    assert settings.recommender.ks == (5, 10, 20)
    with pytest.raises(UserError, match="recommender.horizon_days"):
        load_settings(None, ["recommender.horizon_days=0"])


def test_grouped_bars_draw_one_bar_per_model_and_k():
    figure = plot_grouped_bars({"ranker": [0.5, 0.6], "popularity": [0.1, 0.2]}, ["k = 5", "k = 10"], "NDCG@k", "t")
    assert len(figure.axes[0].patches) == 4
    with pytest.raises(ValueError):
        plot_grouped_bars({"ranker": [0.5]}, ["k = 5", "k = 10"], "NDCG@k", "t")
