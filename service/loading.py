"""Where the service's parts come from: settings from the environment, champion models from the
MLflow registry (any that exist, at least one), and the materialised profile store. Nothing here
knows about HTTP."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.names import MODEL_NAMES
from pipelines import registry
from pipelines.errors import UserError
from pipelines.store import DEFAULT_STORE_PATH, STORE_PATH_ENV, ProfileStore, SQLiteProfileStore, StoreSchemaError
from pipelines.store.state import MaterializedState, StaleStateError, read_materialized_state
from service.scorer import Scorer, ServingModels


@dataclass(frozen=True)
class ServiceSettings:
    """The service's configuration, from the environment (the API key is read by the HTTP layer)."""

    store_path: Path
    mlflow_store: Path  # the local MLflow store folder; MLFLOW_TRACKING_URI overrides it
    max_batch: int = 1000
    reload_interval_s: float = 0.0  # > 0: check the registry for a new champion this often
    registry_retry_s: float = 5.0  # no champion loaded yet: try the registry again this often
    # how long a write waits for another writer's lock on the store before /events answers 503
    store_busy_timeout_s: float = 5.0
    # 1: /recommend, /due, /profile and /events answered in processes of their own (`service.processes`)
    own_processes: bool = True

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> ServiceSettings:
        env = os.environ if environ is None else environ
        return cls(
            store_path=Path(env.get(STORE_PATH_ENV) or DEFAULT_STORE_PATH),
            mlflow_store=Path(env.get("SCORING_MLFLOW_STORE") or registry.DEFAULT_STORE_DIR),
            max_batch=read_number(env, "SCORING_MAX_BATCH", int, "1000", least=1),
            reload_interval_s=read_number(env, "SCORING_RELOAD_INTERVAL_S", float, "0", least=0),
            registry_retry_s=read_number(env, "SCORING_REGISTRY_RETRY_S", float, "5", least=0.01),
            store_busy_timeout_s=read_number(env, "SCORING_STORE_BUSY_TIMEOUT_S", float, "5", least=0),
            own_processes=read_number(env, "SCORING_PROCESSES", int, "1", least=0) > 0,
        )


def read_number(env: Mapping[str, str], name: str, kind: type[int] | type[float], default: str, least: float) -> float:
    """The variable as an int or float >= least (its default when unset); UserError naming it otherwise."""
    raw = env.get(name, default)
    try:
        value = kind(raw)
    except ValueError:
        value = None
    if value is None or not value >= least:  # `not >=` refuses NaN too
        what = "a whole number" if kind is int else "a number"
        raise UserError(f"{name}: expected {what} >= {least:g}, got {raw!r}")
    return value


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


@dataclass(frozen=True)
class LoadedChampions:
    """The models to serve after a reload, and why some champions could not be loaded."""

    models: ServingModels
    failures: dict[str, str]  # model name -> why its champion was not loaded (one line)


def load_changed_champions(mlflow_store: Path, versions: dict[str, str], current: ServingModels) -> LoadedChampions:
    """The champions of `versions`, each loaded only when its version changed. A family whose new
    champion cannot be loaded (the registry fails, or the model was fitted by code this one does not
    match) keeps its current model, if it has one, and the others are served all the same."""
    registry.connect(mlflow_store)
    models: dict[str, Any] = {}
    served: dict[str, str] = {}
    failures: dict[str, str] = {}
    for name, version in versions.items():
        if current.versions.get(name) == version:
            models[name], served[name] = getattr(current, name), version
            continue
        try:
            models[name], served[name] = registry.load_version(name, version), version
        except Exception as error:  # noqa: BLE001 -- one family's failure must not stop the others
            failures[name] = str(error).splitlines()[0] if str(error) else type(error).__name__
            if name in current.versions:
                models[name], served[name] = getattr(current, name), current.versions[name]
    return LoadedChampions(ServingModels.of(models, served), failures)


def load_serving_models(mlflow_store: Path, versions: dict[str, str]) -> ServingModels:
    """The given registered versions, unwrapped to the project's own model objects."""
    registry.connect(mlflow_store)
    # a family without a champion is None: its endpoints answer 503, the others serve as usual
    return ServingModels.of(registry.load_models(versions), versions)


def open_store(path: Path, busy_timeout_s: float = 5.0) -> tuple[ProfileStore, MaterializedState]:
    """The materialised profile store at `path` and its state; UserError, in one line naming the file
    and what to run, when there is none or the file is not one (it is read, never written, then)."""
    if not Path(path).exists():
        raise UserError(f"{path}: no profile store; run `make train` (or `python -m pipelines.materialize`) first")
    try:
        store = SQLiteProfileStore(path, busy_timeout_s=busy_timeout_s, create=False)
    except StoreSchemaError as error:
        raise UserError(
            f"{error}; the service needs a profile store there: move the file away and run `make train` "
            "(or `python -m pipelines.materialize --data DIR`), or set SCORING_STORE_PATH to a profile store"
        ) from None
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
    store, state = open_store(settings.store_path, settings.store_busy_timeout_s)
    return Scorer(models, store, state, max_batch=settings.max_batch)
