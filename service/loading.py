"""Where the service's parts come from: settings from the environment, champion models from the
MLflow registry (any that exist, at least one), and the materialised profile store. Nothing here
knows about HTTP."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from models.names import CHURN, MODEL_NAMES, PROPENSITY, RECOMMENDER
from pipelines import registry
from pipelines.errors import UserError
from pipelines.store import DEFAULT_STORE_PATH, STORE_PATH_ENV, ProfileStore, SQLiteProfileStore
from pipelines.store.state import MaterializedState, StaleStateError, read_materialized_state
from service.scorer import Scorer, ServingModels


@dataclass(frozen=True)
class ServiceSettings:
    """The service's configuration, from the environment (the API key is read by the HTTP layer)."""

    store_path: Path
    mlflow_store: Path  # the local MLflow store folder; MLFLOW_TRACKING_URI overrides it
    max_batch: int = 1000
    reload_interval_s: float = 0.0  # > 0: check the registry for a new champion this often

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> ServiceSettings:
        env = os.environ if environ is None else environ
        try:
            max_batch = int(env.get("SCORING_MAX_BATCH", "1000"))
            interval = float(env.get("SCORING_RELOAD_INTERVAL_S", "0"))
        except ValueError as error:
            raise UserError(f"SCORING_MAX_BATCH / SCORING_RELOAD_INTERVAL_S: {error}") from error
        return cls(
            store_path=Path(env.get(STORE_PATH_ENV) or DEFAULT_STORE_PATH),
            mlflow_store=Path(env.get("SCORING_MLFLOW_STORE") or registry.DEFAULT_STORE_DIR),
            max_batch=max_batch,
            reload_interval_s=interval,
        )


def champion_versions(mlflow_store: Path) -> dict[str, str]:
    """The champion version of each model that has one (its endpoints answer 503 otherwise); UserError
    when no model has one, since the service would have nothing to answer with."""
    uri = registry.connect(mlflow_store)
    found = {name: registry.champion_version(name) for name in MODEL_NAMES}
    versions = {name: version for name, version in found.items() if version is not None}
    if not versions:
        raise UserError(
            f"no '{registry.CHAMPION}' version of any model ({', '.join(MODEL_NAMES)}) in the registry at {uri}; "
            "run `make train` first"
        )
    return versions


def load_serving_models(mlflow_store: Path, versions: dict[str, str]) -> ServingModels:
    """The given registered versions, unwrapped to the project's own model objects."""
    registry.connect(mlflow_store)
    loaded = registry.load_models(versions)
    # a family without a champion is None: its endpoints answer 503, the others serve as usual
    return ServingModels(
        churn=loaded.get(CHURN),
        propensity=loaded.get(PROPENSITY),
        recommender=loaded.get(RECOMMENDER),
        versions=versions,
    )


def open_store(path: Path) -> tuple[ProfileStore, MaterializedState]:
    if not Path(path).exists():
        raise UserError(f"{path}: no profile store; run `make train` (or `python -m pipelines.materialize`) first")
    store = SQLiteProfileStore(path)
    try:
        state = read_materialized_state(store, where=str(path))
    except StaleStateError as error:
        store.close()
        raise UserError(str(error)) from error
    if state is None:
        store.close()
        raise UserError(f"{path}: the profile store was never materialised; run `python -m pipelines.materialize`")
    return store, state


def build_scorer(settings: ServiceSettings) -> Scorer:
    """Champion models + the profile store -> a ready Scorer (raises UserError with what to do)."""
    models = load_serving_models(settings.mlflow_store, champion_versions(settings.mlflow_store))
    store, state = open_store(settings.store_path)
    return Scorer(models, store, state, max_batch=settings.max_batch)
