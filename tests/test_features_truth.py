"""Features and segments recover the generator's hidden structure."""

from __future__ import annotations

import pandas as pd
import pytest

from features import schema as s
from features.customer import build_customer_features
from features.history import History
from pipelines.profiles import build_reference
from pipelines.simulation import TRUTH_DROPOUT_DATE, TRUTH_IS_BUYER

TOP_CATEGORIES = 5

SLEEPING_SEGMENTS = {"At Risk", "Hibernating", "Lost"}
AS_OF = pd.Timestamp("2025-07-01")


@pytest.fixture(scope="module")
def features_and_truth(generated_data) -> tuple[pd.DataFrame, pd.DataFrame]:
    tables = generated_data.tables
    features = build_customer_features(
        History.from_tables(tables), AS_OF, build_reference(tables, AS_OF, TOP_CATEGORIES)
    )
    return features, generated_data.customers_truth.set_index(s.CUSTOMER_ID)


def test_true_dropouts_land_in_sleeping_segments_far_more_often(features_and_truth):
    features, truth = features_and_truth
    buyers = features[features[s.ORDERS_COUNT_TOTAL] > 0].set_index(s.CUSTOMER_ID)
    dropout = truth.loc[buyers.index, TRUTH_DROPOUT_DATE]
    # gone for at least three months before as_of, against buyers who never drop out in the data
    dropped = dropout < AS_OF - pd.Timedelta(days=90)
    staying = dropout.isna() & truth.loc[buyers.index, TRUTH_IS_BUYER].astype(bool)
    assert dropped.sum() >= 30 and staying.sum() >= 30
    sleeping = buyers[s.RFM_SEGMENT].isin(SLEEPING_SEGMENTS)
    dropped_share, staying_share = sleeping[dropped].mean(), sleeping[staying].mean()
    assert dropped_share > 0.6
    assert dropped_share > 3 * staying_share


def test_true_dropouts_are_lapsed_or_at_risk_and_overdue(features_and_truth):
    features, truth = features_and_truth
    buyers = features[features[s.ORDERS_COUNT_TOTAL] > 1].set_index(s.CUSTOMER_ID)
    dropout = truth.loc[buyers.index, TRUTH_DROPOUT_DATE]
    dropped = dropout < AS_OF - pd.Timedelta(days=180)
    active = dropout.isna()
    assert buyers.loc[dropped, s.LIFECYCLE_STAGE].isin({"at risk", "lapsed"}).mean() > 0.8
    assert buyers.loc[dropped, s.OVERDUE_RATIO].median() > 3 * buyers.loc[active, s.OVERDUE_RATIO].median()
