"""The recommender's validation protocol: a time window for a shop, each customer's last purchases
for a log where people arrive, buy and leave; chosen from the data, or set."""

from __future__ import annotations

import pandas as pd
import pytest

from features.schema import CATEGORY, CUSTOMER_ID, PRODUCT_ID, PRODUCTS, QUANTITY, TRANSACTIONS
from models.recommender_evaluation import (
    PER_CUSTOMER,
    TEMPORAL,
    choose_protocol,
    split_last_purchases,
    split_random_purchases,
)
from pipelines.errors import UserError
from pipelines.settings import load_settings
from pipelines.training.recommender import decide_protocol, nested_examples, train_recommender
from tests.builders import as_of_after, bursty_log, dated_frame


def test_each_customer_holds_out_the_ceiling_of_the_share_of_their_last_purchases():
    transactions = dated_frame(
        [
            *[("a", f"P{i}", 1, f"2025-01-0{i}") for i in range(1, 5)],  # 4 lines: ceil(1.0) = 1 held out
            *[("b", f"P{i}", 1, "2025-02-01") for i in (5, 3, 1, 4, 2)],  # 5 lines, one moment: ceil(1.25) = 2
            ("b", "P9", -1, "2025-02-03"),  # a return stays in the history
            ("c", "P1", 1, "2025-03-01"),  # a single purchase stays in the history
        ]
    )
    history, held_out = split_last_purchases(transactions, 0.25)
    assert len(history) + len(held_out) == len(transactions)
    assert set(history.index).isdisjoint(held_out.index)
    assert held_out.loc[held_out[CUSTOMER_ID] == "a", PRODUCT_ID].tolist() == ["P4"]
    assert held_out.loc[held_out[CUSTOMER_ID] == "b", PRODUCT_ID].tolist() == ["P4", "P5"]  # ties: by product id
    assert "c" not in set(held_out[CUSTOMER_ID])
    assert (history[QUANTITY] < 0).sum() == 1
    with pytest.raises(ValueError, match="share"):
        split_last_purchases(transactions, 1.0)


def test_a_random_hold_out_keeps_the_counts_and_the_seed_and_differs_from_the_last():
    transactions = bursty_log(100)[TRANSACTIONS]
    last_history, last = split_last_purchases(transactions, 0.25)
    history, held_out = split_random_purchases(transactions, 0.25, seed=3)
    assert len(history) + len(held_out) == len(transactions)
    pd.testing.assert_series_equal(
        held_out[CUSTOMER_ID].value_counts().sort_index(), last[CUSTOMER_ID].value_counts().sort_index()
    )
    assert split_random_purchases(transactions, 0.25, seed=3)[1].index.equals(held_out.index)
    assert set(held_out.index) != set(last.index)
    with pytest.raises(UserError, match="recommender.held_out"):
        load_settings(None, ["recommender.held_out=first"])
    settings = load_settings(None, ["recommender.protocol=per_customer", "recommender.held_out=random"])
    result = train_recommender(bursty_log(300), as_of_after(transactions), settings)
    assert result.test_description == "a random 25% of each customer's purchases"


def test_a_shop_with_customers_coming_back_is_validated_on_a_time_window(generated_data):
    transactions = generated_data.transactions
    settings = load_settings().recommender
    choice = choose_protocol(
        transactions,
        as_of_after(transactions),
        settings.horizon_days,
        settings.min_window_customers,
        settings.min_window_share,
    )
    assert choice.protocol == TEMPORAL
    assert "bought again in the last 30 days" in choice.reason


def test_a_bursty_log_is_validated_per_customer_and_nothing_held_out_is_learned_from():
    tables = bursty_log()
    transactions = tables[TRANSACTIONS]
    as_of = as_of_after(transactions)
    settings = load_settings()
    choice = decide_protocol(transactions, as_of, settings.recommender)
    assert choice.protocol == PER_CUSTOMER
    assert "a time window needs at least 100 and 20%" in choice.reason

    result = train_recommender(tables, as_of, settings)
    assert result.protocol == choice and result.plan is None
    assert result.test_description == "each customer's last 25% of purchases"
    # the test set is each customer's held-out purchases; the scorers saw only the rest
    history, held_out = split_last_purchases(transactions, 0.25)
    assert result.measured_on.index.equals(history.index)
    assert len(result.window.customer_ids) == held_out[CUSTOMER_ID].nunique() > 700
    held_by_customer = held_out.groupby(CUSTOMER_ID)[PRODUCT_ID].agg(set)
    window = result.window
    assert all(hits <= held_by_customer[c] for c, hits in zip(window.customer_ids, window.relevant, strict=True))
    assert result.evaluated.as_of_ == as_of == result.served.as_of_
    # the ranker learned from nested splits of the history, never from the held-out lines
    for example_history, bought in nested_examples(history, 0.25, settings.recommender.n_cutoffs):
        assert example_history.index.isin(history.index).all()
        assert not bought.index.isin(held_out.index).any()
    # a signal there is to find: every candidate beats a random list, the model beats popularity
    assert result.metrics["model"]["ndcg_at_10"] > result.metrics["popularity"]["ndcg_at_10"]


def test_the_protocol_can_be_set_and_evaluate_at_means_a_time_window(generated_data):
    transactions = generated_data.transactions
    as_of = as_of_after(transactions)
    forced = load_settings(None, ["recommender.protocol=per_customer"]).recommender
    assert decide_protocol(transactions, as_of, forced).protocol == PER_CUSTOMER
    assert decide_protocol(transactions, as_of, forced).reason == "set by recommender.protocol"
    bursty = bursty_log(200)[TRANSACTIONS]
    auto = load_settings().recommender
    assert decide_protocol(bursty, as_of_after(bursty), auto, pd.Timestamp("2024-10-01")).protocol == TEMPORAL
    with pytest.raises(UserError, match="recommender.protocol"):
        load_settings(None, ["recommender.protocol=random"])
    with pytest.raises(UserError, match="recommender.held_out_share"):
        load_settings(None, ["recommender.held_out_share=1"])


def test_a_log_where_nobody_bought_twice_is_a_clear_error():
    transactions = dated_frame([(f"u{i}", f"P{i % 3}", 1, "2025-01-01") for i in range(50)])
    tables = {TRANSACTIONS: transactions, PRODUCTS: pd.DataFrame({PRODUCT_ID: ["P0", "P1", "P2"], CATEGORY: "x"})}
    with pytest.raises(UserError, match="^recommender: no customer has both a history and held-out purchases"):
        train_recommender(tables, as_of_after(transactions), load_settings())
