"""Training sets: features at each cutoff joined with labels, one home for churn and propensity."""

from __future__ import annotations

import pandas as pd

from features import schema as s
from features.labels import make_churn_labels
from features.population import churn_population
from models.names import CHURN, PROPENSITY
from pipelines.settings import load_settings
from pipelines.training.cache import FeatureCache
from pipelines.training.outcome import build_training_set, outcome_families
from tests.builders import random_tables

CUTOFFS = (pd.Timestamp("2023-09-01"), pd.Timestamp("2023-10-01"))


def _cache_and_families(horizon_days: int = 60):
    tables = random_tables(seed=5, n_customers=40)
    settings = load_settings(overrides=["features.n_jobs=1", f"churn.horizon_days={horizon_days}"])
    return tables, FeatureCache(tables, settings), outcome_families(settings, tables, ("shirts",)), settings


def test_training_set_stacks_cutoffs_and_labels_only_the_churn_population():
    tables, cache, families, settings = _cache_and_families()
    training = build_training_set(families[CHURN], cache, CUTOFFS)
    assert set(training[s.AS_OF]) == set(CUTOFFS)
    for as_of in CUTOFFS:
        block = training[training[s.AS_OF] == as_of]
        features = cache.at(as_of).features
        population = features.loc[churn_population(features, settings.churn.lookback_days), s.CUSTOMER_ID]
        assert block[s.CUSTOMER_ID].tolist() == population.tolist()
        expected = make_churn_labels(tables[s.TRANSACTIONS], population, as_of, horizon_days=60)
        assert block[s.CHURN_LABEL].tolist() == expected[s.CHURN_LABEL].tolist()
        assert (block[s.ORDERS_COUNT_TOTAL] > 0).all()
        # labels ride along; the cached feature rows stay as they were built
        assert s.CHURN_LABEL in block and s.CHURN_LABEL not in features


def test_propensity_rows_are_every_known_customer_with_one_label_per_output():
    _, cache, families, _ = _cache_and_families()
    family = families[PROPENSITY]
    training = build_training_set(family, cache, CUTOFFS[:1])
    assert training[s.CUSTOMER_ID].tolist() == cache.at(CUTOFFS[0]).features[s.CUSTOMER_ID].tolist()
    assert set(family.outputs.values()) <= set(training.columns)
    # every category asked for gets a label column, read by the category affinity model
    assert family.category_labels == (s.category_purchase_label("shirts"),)
    assert set(family.category_labels) <= set(training.columns)


def test_features_of_a_cutoff_are_built_once_and_shared_by_both_families():
    _, cache, families, _ = _cache_and_families()
    build_training_set(families[CHURN], cache, CUTOFFS)
    first = {cutoff: cache.at(cutoff) for cutoff in CUTOFFS}
    build_training_set(families[PROPENSITY], cache, CUTOFFS)
    assert all(cache.at(cutoff) is first[cutoff] for cutoff in CUTOFFS)
