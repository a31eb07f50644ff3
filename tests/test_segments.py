"""RFM scoring, the named-segment table and lifecycle stages on hand-built customers."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from features import schema as s
from features.customer import build_customer_features
from features.history import History
from features.segments import (
    LIFECYCLE_STAGES,
    PROSPECT,
    RFM_SEGMENTS,
    lifecycle_stage,
    name_segment,
    score_quintile,
)
from pipelines.profiles import build_reference
from tests.builders import customers_table, products_table, transactions_table

TOP_CATEGORIES = 5


def test_every_recency_frequency_cell_has_exactly_one_of_the_eleven_segments():
    cells = list(itertools.product(range(1, 6), range(1, 6)))
    names = name_segment(np.array([r for r, _ in cells]), np.array([f for _, f in cells]))
    assert PROSPECT not in names
    assert set(names) == set(RFM_SEGMENTS) and len(RFM_SEGMENTS) == 11


def test_segment_corners():
    names = name_segment(np.array([5, 1, 1, 5, 1, 0]), np.array([5, 1, 5, 1, 2, 0]))
    assert list(names) == ["Champions", "Lost", "Can't Lose Them", "New Customers", "Hibernating", PROSPECT]


def test_quintile_scores_direction_and_ties():
    edges = (1.0, 1.0, 2.0, 3.0)
    assert list(score_quintile(np.array([1.0, 2.0, 3.0, 10.0]), edges, higher_is_better=True)) == [1, 3, 4, 5]
    recency_edges = (10.0, 20.0, 30.0, 40.0)
    assert list(score_quintile(np.array([5.0, 15.0, 45.0]), recency_edges, higher_is_better=False)) == [5, 4, 1]


def test_lifecycle_stages():
    stages = lifecycle_stage(
        orders_total=np.array([0, 1, 3, 3, 3, 3]),
        days_since_first=np.array([0, 10, 400, 400, 400, 400]),
        days_since_last=np.array([0, 10, 20, 30, 120, 300]),
        gap_before_last=np.array([-1, -1, 200, 30, 30, 30]),
    )
    assert list(stages) == list(LIFECYCLE_STAGES)


def test_hand_built_best_and_worst_customers_land_in_champions_and_lost():
    as_of = pd.Timestamp("2024-06-01")
    ids = [f"c{i}" for i in range(10)]
    rows = []
    for i, customer in enumerate(ids):
        # c0 buys often and recently; c9 bought once long ago
        for k in range(10 - i):
            rows.append((f"{customer}-{k}", customer, "p1", 1, 10.0, as_of - pd.Timedelta(days=1 + 30 * i + 10 * k)))
    tables = {
        s.CUSTOMERS: customers_table(ids, ["2022-01-01"] * 10),
        s.PRODUCTS: products_table(),
        s.TRANSACTIONS: transactions_table(rows),
    }
    features = build_customer_features(
        History.from_tables(tables), as_of, build_reference(tables, as_of, TOP_CATEGORIES)
    )
    segment = features.set_index(s.CUSTOMER_ID)[s.RFM_SEGMENT]
    assert segment["c0"] == "Champions"
    assert segment["c9"] == "Lost"
    scores = features.set_index(s.CUSTOMER_ID)[[s.RFM_R, s.RFM_F, s.RFM_M]]
    assert scores.loc["c0"].tolist() == [5, 5, 5] and scores.loc["c9"].tolist() == [1, 1, 1]
