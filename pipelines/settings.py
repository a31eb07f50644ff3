"""Configuration: a YAML file (or the embedded defaults) -> frozen, typed settings.

Every pipeline command takes `--config FILE` and any number of `--set key=value` overrides
(`--set churn.horizon_days=182`). Unknown keys are errors, so a typo never passes silently.
Each function receives only the section it needs; the whole resolved config is logged to MLflow.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError

from pipelines.errors import UserError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FeatureSettings(_Section):
    """Windows of the point-in-time customer features."""

    # RFM and spend windows, in days before as_of.
    windows_days: tuple[int, ...] = (30, 90, 365)
    # Behaviour (sessions, views, cart adds...) windows, in days before as_of.
    behaviour_windows_days: tuple[int, ...] = (7, 30)
    # Worker processes for bulk feature building (customers are split into shards).
    n_jobs: int = 2


class BoosterSettings(_Section):
    """LightGBM parameters; small trees and strong regularisation suit short histories."""

    num_leaves: int = 15
    learning_rate: float = 0.05
    min_data_in_leaf: int = 50
    feature_fraction: float = 0.8
    bagging_fraction: float = 0.8
    bagging_freq: int = 1
    lambda_l2: float = 10.0
    num_boost_round: int = 500
    early_stopping_rounds: int = 40
    # One thread: these fits see tens of thousands of rows, where two OpenMP threads on a
    # 2-core machine that is also building features spin against each other (measured 4x slower).
    num_threads: int = 1


# The trees boost from a sign-constrained logistic regression on these (empty: trees alone).
# Linear in log scale, it keeps ranking customers older or quieter than any training row.
BASE_FEATURES = (
    "days_since_last_purchase",
    "recency_over_tenure",
    "orders_count_total",
    "spend_sum_total",
    "bgnbd_p_alive",
    "bgnbd_expected_purchases_90d",
)


class ChurnSettings(_Section):
    """Churn label: bought within lookback_days before as_of and not within horizon_days after."""

    horizon_days: int = 90
    lookback_days: int = 365
    booster: BoosterSettings = BoosterSettings()
    base_features: tuple[str, ...] = BASE_FEATURES
    # +1: churn probability never falls as the feature rises; -1: never rises. '*' = prefix.
    monotone: dict[str, int] = {
        "days_since_last_purchase": 1,
        "recency_over_tenure": 1,
        "overdue_ratio": 1,
        "orders_count_*": -1,
        "spend_sum_*": -1,
        "bgnbd_p_alive": -1,
        "bgnbd_expected_purchases_90d": -1,
    }


class PropensitySettings(_Section):
    """Purchase label: at least one purchase within horizon_days after as_of."""

    horizon_days: int = 30
    # How many of each customer's most likely categories /propensity and pipelines.score list, best
    # first (every category gets a probability); also how many most bought categories the reference
    # tables keep.
    top_categories: int = Field(default=5, ge=1)
    booster: BoosterSettings = BoosterSettings()
    base_features: tuple[str, ...] = BASE_FEATURES
    monotone: dict[str, int] = {
        "days_since_last_purchase": -1,
        "recency_over_tenure": -1,
        "overdue_ratio": -1,
        "orders_count_*": 1,
        "spend_sum_*": 1,
        "spend_trend_90d": 1,
        "bgnbd_p_alive": 1,
        "bgnbd_expected_purchases_90d": 1,
    }


class ClvSettings(_Section):
    """Customer value over horizon_days: expected orders and spend with a central `interval`, the
    chance the customer is still active and the wait to their next order (`models.value_model`).

    Spend is undiscounted unless `discount_rate_annual` is set. The interval of the buy-till-you-die
    models is drawn by Monte Carlo, `draws` per customer. The supervised candidate (LightGBM on log
    spend, `booster`) trains on rolling cutoffs `training.cutoff_step_days` apart, each followed by
    a full horizon before the test window; with too little history for two of them it sits out and
    the run says so.
    """

    horizon_days: PositiveInt = 365
    interval: float = Field(0.8, gt=0.0, lt=1.0)
    draws: int = Field(400, ge=10)
    discount_rate_annual: float = Field(0.0, ge=0.0)
    booster: BoosterSettings = BoosterSettings()


class RecommenderSettings(_Section):
    """Two-stage recommender and how it is validated.

    `protocol` "temporal": label windows of horizon_days, stacked over n_cutoffs training cutoffs
    that step back by the horizon from the test window (no overlap between windows).
    "per_customer": each customer's last `held_out_share` of purchases is the test set, the ranker
    learns from the same split of the rest. "auto" (the default) picks temporal when the latest
    complete window before as_of holds at least `min_window_customers` returning customers, who are
    at least `min_window_share` of those who bought before it, and per_customer otherwise (a ratings
    log, a young shop); `--evaluate-at` asks for a time window, so it means temporal.
    """

    protocol: Literal["auto", "temporal", "per_customer"] = "auto"
    horizon_days: PositiveInt = 30
    n_cutoffs: PositiveInt = 6
    min_window_customers: PositiveInt = 100
    min_window_share: float = Field(0.2, ge=0.0, le=1.0)
    held_out_share: float = Field(0.25, gt=0.0, lt=1.0)
    # per_customer: hold out each customer's "last" purchases (what comes next: the default), or a
    # seeded "random" share (for a log whose use is filling in what a customer would like)
    held_out: Literal["last", "random"] = "last"
    # Cutoffs of the logged ranking metrics (NDCG@10, the gate's metric, is always evaluated).
    ks: tuple[PositiveInt, ...] = (5, 10, 20)


class GateSettings(_Section):
    """Promotion by evidence (ROC-AUC for churn and propensity, NDCG@10 for the recommender).

    Every candidate (the project's model, its baselines, the current champion) is measured on the
    same test window and customers. A candidate beats another when the lower end of the
    `confidence` interval of their paired difference (bootstrap over customers, `bootstrap_samples`
    draws) is above `min_gain`: the model must beat the best baseline so, else the best baseline is
    served; the run's winner must beat the champion so, else the champion stays.
    """

    min_gain: float = Field(0.0, ge=0.0)
    bootstrap_samples: PositiveInt = 1000
    confidence: float = Field(0.95, gt=0.5, lt=1.0)


class TrainingSettings(_Section):
    """How training sets are stacked from rolling as_of cutoffs.

    The latest training cutoff is held out for early stopping and calibration; the test window
    is the latest complete horizon before as_of and is never used for fitting or tuning.
    """

    n_cutoffs: PositiveInt = 6
    cutoff_step_days: PositiveInt = 30
    seed: int = 42
    # Refuse to train when more than this share of any table's rows failed validation.
    max_quarantined_share: float = 0.05
    # Trees cannot extrapolate: when more than this share of the customers at the test cutoff
    # have been known longer than any training row, only the linear base is fitted. Judged on
    # features alone (no test label is read), e.g. CDNOW, where every customer joined in Q1 1997.
    max_share_older_than_training: float = 0.2


class Settings(_Section):
    features: FeatureSettings = FeatureSettings()
    churn: ChurnSettings = ChurnSettings()
    propensity: PropensitySettings = PropensitySettings()
    recommender: RecommenderSettings = RecommenderSettings()
    clv: ClvSettings = ClvSettings()
    training: TrainingSettings = TrainingSettings()
    gate: GateSettings = GateSettings()


def load_settings(config_path: Path | None = None, overrides: list[str] | None = None) -> Settings:
    """Read the config file (or the defaults), apply `key=value` overrides, and validate."""
    raw: dict[str, Any] = _read_yaml(config_path) if config_path else {}
    for override in overrides or []:
        _apply_override(raw, override)
    try:
        return Settings.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        source = f"{config_path}: " if config_path else ""
        raise UserError(f"{source}config key {where}: {first['msg']}") from error


def _read_yaml(path: Path) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: config file not found")
    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise UserError(f"{path}: not valid YAML ({str(error).splitlines()[0]})") from error
    if not isinstance(loaded, dict):
        raise UserError(f"{path}: the config must be a mapping of sections")
    return loaded


def _apply_override(raw: dict[str, Any], override: str) -> None:
    """Set a dotted key in a nested dict: `churn.horizon_days=182`; the value is parsed as YAML."""
    key, separator, value = override.partition("=")
    if not separator or not key.strip():
        raise UserError(f"--set {override!r}: expected key=value, e.g. churn.horizon_days=182")
    *parents, leaf = key.strip().split(".")
    node = raw
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise UserError(f"--set {override!r}: {part} is not a section")
    node[leaf] = yaml.safe_load(value)
