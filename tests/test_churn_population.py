"""The churn population: one rule, the same edge in training, batch scoring and the service.

A customer is in it when their last purchase is at most `lookback_days` before as_of; a purchase
exactly `lookback_days` before counts, one a second earlier does not.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features import schema as s
from features.customer import build_customer_features
from features.history import History
from features.population import churn_population, in_churn_population
from features.reference import build_reference_tables
from models.names import CHURN, OUTCOME_MODELS
from pipelines import registry
from pipelines.profiles import materialize
from pipelines.score import score_tables
from pipelines.settings import load_settings
from pipelines.training.cache import FeatureCache
from pipelines.training.outcome import labelled_frame, outcome_families
from service.loading import ServiceSettings, build_scorer
from tests.builders import products_table, transactions_table

LOOKBACK_DAYS = 365
AS_OF = pd.Timestamp("2024-06-01")
AT_THE_EDGE = AS_OF - pd.Timedelta(days=LOOKBACK_DAYS)  # exactly lookback_days before as_of
JUST_OUTSIDE = AT_THE_EDGE - pd.Timedelta(seconds=1)


def test_the_rule_counts_a_purchase_exactly_lookback_days_ago():
    days_since = np.array([0.0, 364.5, 365.0, 365.0 + 1 / 86_400, 400.0, 10.0])
    orders = np.array([3, 1, 1, 1, 2, 0])  # the last one never bought: days_since is only its tenure
    assert in_churn_population(days_since, orders, LOOKBACK_DAYS).tolist() == [True, True, True, False, False, False]


def test_feature_rows_at_the_edge_fall_on_the_right_side():
    transactions = transactions_table(
        [
            ("o1", "edge", "p1", 1, 10.0, str(AT_THE_EDGE)),
            ("o2", "outside", "p1", 1, 10.0, str(JUST_OUTSIDE)),
            ("o3", "inside", "p1", 1, 10.0, str(AT_THE_EDGE + pd.Timedelta(seconds=1))),
            ("o4", "returner", "p1", -1, 10.0, str(AS_OF - pd.Timedelta(days=3))),  # a return is no purchase
        ]
    )
    tables = {s.TRANSACTIONS: transactions, s.PRODUCTS: products_table()}
    features = build_customer_features(History.from_tables(tables), AS_OF, build_reference_tables(tables, AS_OF, 5))
    assert features.loc[features[s.CUSTOMER_ID] == "edge", s.DAYS_SINCE_LAST_PURCHASE].item() == LOOKBACK_DAYS
    population = features.loc[churn_population(features, LOOKBACK_DAYS), s.CUSTOMER_ID].tolist()
    assert population == ["edge", "inside"]


@pytest.fixture(scope="module")
def edge_tables(service_workspace) -> dict[str, pd.DataFrame]:
    """The workspace's data plus two customers whose only purchase is at the edge or just outside it."""
    tables = dict(service_workspace.tables)
    as_of = service_workspace.as_of
    product = str(tables[s.PRODUCTS][s.PRODUCT_ID].iloc[0])
    edge = as_of - pd.Timedelta(days=LOOKBACK_DAYS)
    extra = transactions_table(
        [
            ("edge-order", "edge-customer", product, 1, 10.0, str(edge)),
            ("outside-order", "outside-customer", product, 1, 10.0, str(edge - pd.Timedelta(seconds=1))),
        ]
    ).astype(tables[s.TRANSACTIONS].dtypes.to_dict())
    tables[s.TRANSACTIONS] = pd.concat(
        [tables[s.TRANSACTIONS], extra[tables[s.TRANSACTIONS].columns]], ignore_index=True
    )
    return tables


def test_training_batch_scoring_and_the_service_agree_at_the_edge(service_workspace, edge_tables, tmp_path):
    as_of = service_workspace.as_of
    settings = load_settings(overrides=["features.n_jobs=1", f"churn.lookback_days={LOOKBACK_DAYS}"])
    customers = ["edge-customer", "outside-customer"]

    # training: who gets a churn label at this cutoff
    family = outcome_families(settings, edge_tables, ())[CHURN]
    labelled = set(labelled_frame(family, FeatureCache(edge_tables, settings), as_of)[s.CUSTOMER_ID])
    trained = [customer in labelled for customer in customers]

    # batch scoring: who gets a churn probability
    registry.connect(service_workspace.mlflow_store)
    models = registry.load_models(registry.require_versions(OUTCOME_MODELS))
    scores = score_tables(edge_tables, as_of, models, settings).set_index(s.CUSTOMER_ID)
    batch = [bool(np.isfinite(scores.loc[customer, s.CHURN_PROBABILITY])) for customer in customers]

    # the service: who gets a churn probability from /churn
    store_path = tmp_path / "profiles.sqlite"
    materialize(edge_tables, as_of, settings, store_path)
    scorer = build_scorer(ServiceSettings(store_path=store_path, mlflow_store=service_workspace.mlflow_store))
    served = [result[s.CHURN_PROBABILITY] is not None for result in scorer.churn(customers)["results"]]
    scorer.store.close()

    assert trained == batch == served == [True, False]
