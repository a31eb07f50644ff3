"""The only module that imports MLflow: tracking store, runs and what they log, the model registry
and its aliases. Everything else calls the functions here.

Embedded default: a SQLite store and local artifacts under `mlruns/` (what `mlflow ui` reads,
see `make ui`). `MLFLOW_TRACKING_URI` switches to a tracking server. Models are loaded by
alias (`models:/churn@champion`) or exact version, never as "latest".
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd

from features.schema import CUSTOMER_ID
from pipelines.cli import train_command
from pipelines.errors import UserError

DEFAULT_STORE_DIR = Path("mlruns")
EXPERIMENT_NAME = "customer-intelligence"
CHAMPION = "champion"
CHALLENGER = "challenger"
# The recommender pyfunc's params and their defaults (see `RecommenderModel`).
RECOMMEND_PARAMS = {"k": 10, "exclude_purchased": True}
# MLflow's own HTTP retries (7, with exponential backoff) hold a call to an unreachable tracking
# server for minutes; a caller that retries by itself (the service) wants the failure in seconds.
SHORT_HTTP_RETRIES = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
}


def default_tracking_uri(store_dir: Path = DEFAULT_STORE_DIR) -> str:
    return f"sqlite:///{(Path(store_dir) / 'mlflow.db').resolve()}"


def tracking_uri(store_dir: Path = DEFAULT_STORE_DIR) -> str:
    """MLFLOW_TRACKING_URI when set, else the embedded SQLite store under store_dir."""
    return os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri(store_dir)


def connect(store_dir: Path = DEFAULT_STORE_DIR) -> str:
    """Point MLflow at the store (creating the local folder) and quiet its chatter; returns the URI."""
    uri = tracking_uri(store_dir)
    if uri.startswith("sqlite:///") and "MLFLOW_TRACKING_URI" not in os.environ:
        Path(store_dir).mkdir(parents=True, exist_ok=True)
    user_setting = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    # MLflow copies the URI into the environment; undo that, so the next connect() still tells
    # a user's MLFLOW_TRACKING_URI from our own default
    if user_setting is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    for name in ("mlflow", "alembic", "mlflow.store.db.utils"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="mlflow")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    return uri


def use_short_http_retries() -> None:
    """Let MLflow's calls to a tracking server fail within seconds (`SHORT_HTTP_RETRIES`), unless
    the environment sets those variables itself; for this process and the ones it starts."""
    for name, value in SHORT_HTTP_RETRIES.items():
        os.environ.setdefault(name, value)


def experiment_id(store_dir: Path = DEFAULT_STORE_DIR, name: str = EXPERIMENT_NAME) -> str:
    """The project's experiment, created on first use with artifacts beside the local store."""
    existing = mlflow.get_experiment_by_name(name)
    if existing is not None:
        return existing.experiment_id
    artifact_location = None
    if tracking_uri(store_dir).startswith("sqlite:///") and "MLFLOW_TRACKING_URI" not in os.environ:
        artifact_location = (Path(store_dir) / "artifacts").resolve().as_uri()
    return mlflow.create_experiment(name, artifact_location=artifact_location)


def use_experiment(store_dir: Path = DEFAULT_STORE_DIR) -> None:
    """Connect and make the project's experiment the active one, so nested runs land beside their parent."""
    connect(store_dir)
    mlflow.set_experiment(experiment_id=experiment_id(store_dir))


# ---------------------------------------------------------------------------
# Runs and what they log.
# ---------------------------------------------------------------------------
@contextmanager
def run(name: str, nested: bool = False) -> Iterator[None]:
    """An MLflow run (nested under the active one when `nested`), ended when the block ends."""
    with mlflow.start_run(run_name=name, nested=nested):
        yield


def log_params(params: Mapping[str, Any]) -> None:
    mlflow.log_params(dict(params))


def set_tags(tags: Mapping[str, Any]) -> None:
    mlflow.set_tags(dict(tags))


def log_metrics(metrics: Mapping[str, float]) -> None:
    mlflow.log_metrics(dict(metrics))


def log_table(frame: pd.DataFrame, artifact_file: str) -> None:
    mlflow.log_table(frame, artifact_file=artifact_file)


def log_figure(figure: Any, artifact_file: str, save_kwargs: Mapping[str, Any] | None = None) -> None:
    mlflow.log_figure(figure, artifact_file, save_kwargs=dict(save_kwargs or {}))


def log_input_sample(frame: pd.DataFrame, source: str, name: str, rows: int = 1000) -> None:
    """Record a table the run trained on (its first rows, schema and source) as a run input."""
    dataset = mlflow.data.from_pandas(frame.head(rows), source=source, name=name)
    mlflow.log_input(dataset, context="training")


# ---------------------------------------------------------------------------
# The model registry.
# ---------------------------------------------------------------------------
def _client():
    from mlflow import MlflowClient

    return MlflowClient()


def version_with_alias(model_name: str, alias: str) -> str | None:
    """The version holding the alias, or None when there is none (or no such model).

    Any other failure (the registry cannot be reached) raises: a model that is missing and a registry
    that did not answer must not look alike, or a reload would drop a served model.
    """
    from mlflow.exceptions import MlflowException

    try:
        return str(_client().get_model_version_by_alias(model_name, alias).version)
    except MlflowException as error:
        # MLflow answers a missing alias with INVALID_PARAMETER_VALUE, a missing model with RESOURCE_DOES_NOT_EXIST
        if error.error_code in ("INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST"):
            return None
        raise


def champion_version(model_name: str) -> str | None:
    """The version holding the champion alias, or None when there is none (or no such model)."""
    return version_with_alias(model_name, CHAMPION)


def require_versions(model_names: Iterable[str], alias: str = CHAMPION) -> dict[str, str]:
    """The version holding `alias` for each model; UserError naming the models without one."""
    versions = {name: version_with_alias(name, alias) for name in model_names}
    missing = [name for name, version in versions.items() if version is None]
    if missing:
        raise UserError(
            f"no '{alias}' version of model(s) {', '.join(missing)} in the registry at {mlflow.get_tracking_uri()}; "
            "run `make train` first"
        )
    return versions


def load_models(versions: Mapping[str, str]) -> dict[str, Any]:
    """The project's own fitted model objects of these exact versions (model name -> version)."""
    return {name: load_version(name, version) for name, version in versions.items()}


def load_model(model_name: str, alias: str = CHAMPION) -> Any:
    """The project's own fitted model object behind `models:/<name>@<alias>`."""
    return load_models(require_versions([model_name], alias))[model_name]


class StaleModelError(UserError):
    """A registered model that this version of the code cannot run: retrain it."""


def load_version(model_name: str, version: str) -> Any:
    """The fitted model object of this version; StaleModelError when it was fitted by code it no longer
    matches (a model object may say why with `stale_reason()`)."""
    model = mlflow.pyfunc.load_model(f"models:/{model_name}/{version}").unwrap_python_model().model
    stale_reason = getattr(model, "stale_reason", None)
    reason = stale_reason() if stale_reason is not None else None
    if reason:
        raise StaleModelError(
            f"models:/{model_name}/{version} cannot run on this code ({reason}); "
            f"retrain it with {train_command([model_name])} (or `make train`)"
        )
    return model


def set_alias(model_name: str, alias: str, version: str) -> None:
    _client().set_registered_model_alias(model_name, alias, str(version))


def tag_version(model_name: str, version: str, tags: dict[str, str]) -> None:
    client = _client()
    for key, value in tags.items():
        client.set_model_version_tag(model_name, str(version), key, str(value))


def version_exists(model_name: str, version: str) -> bool:
    from mlflow.exceptions import MlflowException

    try:
        _client().get_model_version(model_name, str(version))
        return True
    except MlflowException:
        return False


def log_model(model: Any, model_name: str, input_example: pd.DataFrame) -> str:
    """Log a fitted project model as a pyfunc (with signature and input example), register it,
    and return the new version."""
    return _log_pyfunc(ScoringModel(model), model_name, input_example)


def log_recommender(model: Any, model_name: str, customer_ids: list[str]) -> str:
    """Log a fitted recommender as a pyfunc, register it and return the new version.

    Served as `predict(DataFrame with a customer_id column, params={"k": 10, "exclude_purchased":
    True})` -> the `recommend()` frame: customer_id, product_id, rank, score, reason.
    """
    input_example = pd.DataFrame({CUSTOMER_ID: pd.Series(customer_ids, dtype=object)})
    return _log_pyfunc(RecommenderModel(model), model_name, input_example, params=dict(RECOMMEND_PARAMS))


def _log_pyfunc(wrapper: Any, model_name: str, input_example: pd.DataFrame, params: dict | None = None) -> str:
    from mlflow.models import infer_signature

    output = wrapper.predict(None, input_example, params)
    signature = infer_signature(input_example, output, params=params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        info = mlflow.pyfunc.log_model(
            name=model_name,
            python_model=wrapper,
            signature=signature,
            input_example=input_example if params is None else (input_example, params),
            registered_model_name=model_name,
            # stated, not inferred: inference re-imports the model in a subprocess (~15 s a model)
            pip_requirements=_pip_requirements(),
        )
    return str(info.registered_model_version)


def _pip_requirements() -> list[str]:
    from importlib.metadata import version

    packages = ("mlflow", "lightgbm", "scikit-learn", "pandas", "numpy", "scipy", "pyarrow")
    return [f"{name}=={version(name)}" for name in packages]


def recent_runs(model_name: str, limit: int = 10) -> pd.DataFrame:
    """The latest nested runs that trained model_name, newest first, with their metrics."""
    runs = mlflow.search_runs(
        experiment_names=[EXPERIMENT_NAME],
        filter_string=f"tags.model = '{model_name}'",
        order_by=["attributes.start_time DESC"],
        max_results=limit,
    )
    return runs


class ScoringModel(mlflow.pyfunc.PythonModel):
    """The MLflow wrapper around a project model: predict(DataFrame) -> DataFrame of scores.

    The wrapped object travels as a pickle; `unwrap_python_model().model` gives it back so the
    service can use its fast numpy path.
    """

    def __init__(self, model: Any):
        self.model = model

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        return self.model.predict_frame(model_input)


class RecommenderModel(mlflow.pyfunc.PythonModel):
    """The MLflow wrapper around a fitted recommender: predict(DataFrame with customer_id, params) ->
    the `recommend()` frame (customer_id, product_id, rank, score, reason), customers in input order.

    `unwrap_python_model().model` gives the recommender back (`load_model` does that).
    """

    def __init__(self, model: Any):
        self.model = model

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        chosen = {**RECOMMEND_PARAMS, **(params or {})}
        customer_ids = model_input[CUSTOMER_ID].astype(str).tolist()
        return self.model.recommend(
            customer_ids, k=int(chosen["k"]), exclude_purchased=bool(chosen["exclude_purchased"])
        )
