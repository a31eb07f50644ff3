"""A workspace for the service tests and the load test: small fitted models registered as champions
in a temp MLflow store, and the profiles materialised into a temp SQLite store.

`build_service_workspace` fits small churn, propensity and recommender models on generated data in
seconds (not the minutes of `pipelines.train`); `tests/conftest.py` builds one per test session as
the `service_workspace` fixture.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from features import schema as s
from features.customer import feature_columns
from features.population import churn_population
from models.affinity import CategoryAffinityModel, CategoryLayout
from models.names import CHURN, CLV, PROPENSITY, RECOMMENDER
from models.outcome import OutcomeModel, fit_outcome_model
from models.recommender import TwoStageRecommender
from models.value import PARETO_NBD, BuyTillYouDieValue, ValueConfig
from models.value_model import CustomerValueModel, summary_from_features
from pipelines import registry
from pipelines.cli import data_end
from pipelines.profiles import build_profiles, build_reference, materialize
from pipelines.settings import load_settings
from pipelines.training.affinity import label_table
from pipelines.training.outcome import OutcomeFamily, outcome_families

SMALL_BOOSTER = {"num_leaves": 7, "learning_rate": 0.1, "min_data_in_leaf": 20, "verbose": -1, "num_threads": 1}


@dataclass(frozen=True)
class ServiceWorkspace:
    """Registered champions and a materialised store: everything `bentoml serve` needs."""

    mlflow_store: Path
    store_path: Path
    as_of: pd.Timestamp
    tables: dict[str, pd.DataFrame]
    profiles: pd.DataFrame

    def environment(self, store_path: Path | None = None, **extra: str) -> dict[str, str]:
        return {
            "SCORING_STORE_PATH": str(store_path or self.store_path),
            "SCORING_MLFLOW_STORE": str(self.mlflow_store),
            **extra,
        }

    def copy_store(self, target: Path) -> Path:
        """A private copy of the materialised store (tests that append events must not share one)."""
        shutil.copy(self.store_path, target)
        return target


def _labelled(tables, cutoff, family, settings) -> pd.DataFrame:
    reference = build_reference(tables, cutoff, settings.propensity.top_categories)
    features = build_profiles(tables, cutoff, settings.features, reference)
    labels = family.make_labels(tables[s.TRANSACTIONS], features, cutoff)
    return features.merge(labels, on=s.CUSTOMER_ID, how="inner")


def with_category_scorer(
    model: OutcomeModel, family: OutcomeFamily, train: pd.DataFrame, holdout: pd.DataFrame, catalogue: list[str]
) -> OutcomeModel:
    """The propensity model with a small category affinity model fitted on the same rows."""
    layout = CategoryLayout.of(model.feature_names, family.categories, catalogue)
    matrices = [frame[model.feature_names].to_numpy(dtype=float) for frame in (train, holdout)]
    labels = [label_table(frame, family.category_labels) for frame in (train, holdout)]
    affinity = CategoryAffinityModel(layout, SMALL_BOOSTER, num_boost_round=60, early_stopping_rounds=10).fit(
        matrices[0], labels[0], matrices[1], labels[1]
    )
    return OutcomeModel(model.name, model.classifiers, model.feature_names, affinity)


def build_service_workspace(root: Path, tables: dict[str, pd.DataFrame]) -> ServiceWorkspace:
    """Fit small models directly (seconds, not the minutes of `pipelines.train`), register, materialise."""
    settings = load_settings(overrides=["features.n_jobs=1"])
    as_of = data_end(tables)
    train_cutoff, holdout_cutoff = as_of - pd.Timedelta(days=270), as_of - pd.Timedelta(days=180)
    transactions, products = tables[s.TRANSACTIONS], tables[s.PRODUCTS]
    fit = {"booster_params": SMALL_BOOSTER, "num_boost_round": 60, "early_stopping_rounds": 10, "monotone_rules": {}}
    catalogue = build_reference(tables, holdout_cutoff, settings.propensity.top_categories).categories
    families = outcome_families(settings, tables, tuple(catalogue))
    models = {}
    for name in (CHURN, PROPENSITY):
        family = families[name]
        train, holdout = (_labelled(tables, c, family, settings) for c in (train_cutoff, holdout_cutoff))
        names = feature_columns(train.drop(columns=list(family.outputs.values())))
        models[name] = fit_outcome_model(name, train, holdout, names, family.outputs, **fit)
    models[PROPENSITY] = with_category_scorer(models[PROPENSITY], families[PROPENSITY], train, holdout, catalogue)

    recommender = TwoStageRecommender().fit(
        transactions, products, [as_of - pd.Timedelta(days=d) for d in (90, 60)], 30
    )
    recommender = recommender.refresh_candidates(transactions, products, as_of)

    reference = build_reference(tables, as_of, settings.propensity.top_categories)
    profiles = build_profiles(tables, as_of, settings.features, reference)
    pareto = BuyTillYouDieValue(PARETO_NBD).fit(summary_from_features(profiles))
    value = CustomerValueModel("pareto_nbd_gamma_gamma", pareto, pareto, ValueConfig(draws=200))

    mlflow_store = root / "mlruns"
    registry.use_experiment(mlflow_store)
    example = holdout.head(3)
    with registry.run("service test models"):
        for name, version in (
            (CHURN, registry.log_model(models[CHURN], CHURN, example)),
            (PROPENSITY, registry.log_model(models[PROPENSITY], PROPENSITY, example)),
            (RECOMMENDER, registry.log_recommender(recommender, RECOMMENDER, example[s.CUSTOMER_ID].tolist())),
            (CLV, registry.log_model(value, CLV, profiles.head(3))),
        ):
            registry.set_alias(name, registry.CHAMPION, version)

    store_path = root / "profiles.sqlite"
    materialize(tables, as_of, settings, store_path)
    return ServiceWorkspace(mlflow_store, store_path, as_of, tables, profiles)


def in_population(workspace: ServiceWorkspace, lookback_days: int = 365) -> pd.DataFrame:
    """Customers whose churn is scored: bought within the lookback."""
    return workspace.profiles[churn_population(workspace.profiles, lookback_days)]


def lapsing_customer(workspace: ServiceWorkspace) -> str:
    """A customer in the churn population whose last purchase is long ago (a purchase now must lower churn)."""
    population = in_population(workspace).sort_values(s.DAYS_SINCE_LAST_PURCHASE, ascending=False)
    return str(population[s.CUSTOMER_ID].iloc[0])


def purchase(customer_id: str, product_id: str, when: pd.Timestamp, order_id: str = "live-1") -> dict:
    return {
        s.ORDER_ID: order_id,
        s.CUSTOMER_ID: customer_id,
        s.PRODUCT_ID: product_id,
        s.QUANTITY: 2,
        s.UNIT_PRICE: 12.5,
        s.TIMESTAMP: when.isoformat(),
        s.CHANNEL: "web",
    }


def register_champions(workspace, mlflow_store: Path, model_names: list[str]) -> Path:
    """Register copies of the workspace's champions of `model_names` (only those) as champions in
    `mlflow_store`: a registry where the other models were never trained. Returns the store."""
    registry.connect(workspace.mlflow_store)
    models = registry.load_models({name: registry.champion_version(name) for name in model_names})
    registry.use_experiment(mlflow_store)
    example = workspace.profiles.head(3)
    with registry.run("some champions"):
        for name, model in models.items():
            if name == RECOMMENDER:
                version = registry.log_recommender(model, name, example[s.CUSTOMER_ID].tolist())
            else:
                version = registry.log_model(model, name, example)
            registry.set_alias(name, registry.CHAMPION, version)
    return mlflow_store


def train_hint(model_name: str) -> str:
    """What a 503 for a model without a champion says (the same for every endpoint)."""
    return (
        f"no {model_name} model is registered; "
        f"train it with `python -m pipelines.train --data DIR --models {model_name}` and POST /reload"
    )
