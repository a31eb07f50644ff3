"""Where the service's parts come from: settings from the environment, champion models from the
MLflow registry, and the materialised profile store. Nothing here knows about HTTP."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pipelines import registry
from pipelines.errors import UserError
from service.handlers import (
    CHURN,
    PROPENSITY,
    RECOMMENDER,
    MaterializedState,
    Scorer,
    ServingModels,
    read_materialized_state,
)
from service.store import ProfileStore, SQLiteProfileStore, default_store_path

REQUIRED_MODELS = (CHURN, PROPENSITY)
OPTIONAL_MODELS = (RECOMMENDER,)


@dataclass(frozen=True)
class ServiceSettings:
    """The service's configuration, from the environment (secrets only from there)."""

    store_path: Path
    mlflow_store: Path  # the local MLflow store folder; MLFLOW_TRACKING_URI overrides it
    api_key: str | None = None
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
            store_path=Path(env.get("SCORING_STORE_PATH") or default_store_path()),
            mlflow_store=Path(env.get("SCORING_MLFLOW_STORE") or registry.DEFAULT_STORE_DIR),
            api_key=env.get("SCORING_API_KEY") or None,
            max_batch=max_batch,
            reload_interval_s=interval,
        )


def champion_versions(mlflow_store: Path) -> dict[str, str]:
    """The champion version of each model the service uses (models without one are left out)."""
    registry.connect(mlflow_store)
    versions = {}
    for name in (*REQUIRED_MODELS, *OPTIONAL_MODELS):
        version = registry.champion_version(name)
        if version is not None:
            versions[name] = str(version)
    missing = [name for name in REQUIRED_MODELS if name not in versions]
    if missing:
        raise UserError(
            f"no champion version of {', '.join(missing)} in the registry at {registry.tracking_uri(mlflow_store)}; "
            "run `make train` first"
        )
    return versions


def load_models(mlflow_store: Path, versions: dict[str, str]) -> ServingModels:
    """The given registered versions, unwrapped to the project's own model objects."""
    registry.connect(mlflow_store)
    loaded = {name: registry.load_version(name, version) for name, version in versions.items()}
    return ServingModels(
        churn=loaded[CHURN], propensity=loaded[PROPENSITY], recommender=loaded.get(RECOMMENDER), versions=versions
    )


def open_store(path: Path) -> tuple[ProfileStore, MaterializedState]:
    if not Path(path).exists():
        raise UserError(f"{path}: no profile store; run `make train` (or `python -m pipelines.materialize`) first")
    store = SQLiteProfileStore(path)
    state = read_materialized_state(store)
    if state is None:
        store.close()
        raise UserError(f"{path}: the profile store was never materialised; run `python -m pipelines.materialize`")
    return store, state


def build_scorer(settings: ServiceSettings) -> Scorer:
    """Champion models + the profile store -> a ready Scorer (raises UserError with what to do)."""
    models = load_models(settings.mlflow_store, champion_versions(settings.mlflow_store))
    store, state = open_store(settings.store_path)
    return Scorer(models, store, state, max_batch=settings.max_batch)
