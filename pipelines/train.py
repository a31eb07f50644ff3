"""`python -m pipelines.train`: validate, build training sets, fit, evaluate out of time, log to
MLflow, register, and move the `champion` alias only when the evidence says so.

    python -m pipelines.train --data data/sample [--as-of 2025-10-01]
                              [--models churn,propensity,recommender] [--evaluate-at DATE]
                              [--config FILE] [--set churn.horizon_days=182 ...]

`--as-of` means "pretend today is DATE": nothing at or after it is used for features or labels.
Without it, as_of is the day after the last record. For each model, the test window is the
latest complete horizon before as_of; training cutoffs step back from it, the latest of them held
out for early stopping and calibration (churn, propensity). The test window is never used to fit
or tune. The recommender's ranker is fitted on label windows that end at or before the test
cutoff, compared with popularity and item-kNN on the test window, then registered with its
candidate sources refitted on all history before as_of.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from features import schema as s
from features.customer import ReferenceTables, build_reference_tables, feature_columns
from features.labels import CutoffPlan, plan_cutoffs
from models import churn, propensity
from models import recommender_evaluation as recommender_eval
from models.baselines import RfmLogisticBaseline, ScoreColumnBaseline
from models.metrics import evaluate_binary, evaluate_by_segment
from models.outcome import OutcomeModel
from models.recommender import CandidateConfig, RankerConfig, TwoStageRecommender
from models.recommender_evaluation import EvaluationWindow
from pipelines.errors import UserError, exits_cleanly_on_user_error
from pipelines.features import build_profiles, parse_as_of
from pipelines.materialize import add_profiles_argument, fill_profile_store
from pipelines.settings import BoosterSettings, Settings, add_config_arguments, load_settings

RECOMMENDER = "recommender"
OUTCOME_MODELS = (churn.MODEL_NAME, propensity.MODEL_NAME)
AVAILABLE_MODELS = (*OUTCOME_MODELS, RECOMMENDER)
PRIMARY_METRIC = "roc_auc"
# The recommender's gate metric: NDCG of the top 10, always evaluated whatever recommender.ks says.
GATE_K = 10
RECOMMENDER_PRIMARY_METRIC = recommender_eval.metric_name("ndcg", GATE_K)
RECOMMENDER_BASELINES = (recommender_eval.BASELINE_POPULARITY, recommender_eval.BASELINE_ITEM_KNN)
BASELINE_RECENCY = "recency"
BASELINE_RFM = "rfm_logistic"
BASELINE_BGNBD = "bgnbd"


# ---------------------------------------------------------------------------
# Building the frames: features at each cutoff (computed once, shared by the models) + labels.
# ---------------------------------------------------------------------------
@dataclass
class FeatureCache:
    """Feature tables by cutoff, so churn and propensity share the expensive part."""

    tables: dict[str, pd.DataFrame]
    settings: Settings
    frames: dict[pd.Timestamp, tuple[pd.DataFrame, ReferenceTables]] = field(default_factory=dict)

    def at(self, as_of: pd.Timestamp) -> tuple[pd.DataFrame, ReferenceTables]:
        as_of = pd.Timestamp(as_of)
        if as_of not in self.frames:
            reference = build_reference_tables(self.tables, as_of, self.settings.features.top_categories)
            self.frames[as_of] = (build_profiles(self.tables, as_of, self.settings.features), reference)
        return self.frames[as_of]


@dataclass(frozen=True)
class ModelSpec:
    """What differs between churn and propensity: labels, horizon, fit, baseline directions."""

    name: str
    horizon_days: int
    label_column: str
    make_labels: Callable[[pd.DataFrame, pd.Timestamp, pd.DataFrame], pd.DataFrame]
    fit: Callable[[pd.DataFrame, pd.DataFrame, list[str], bool], OutcomeModel]
    # +1 when a higher value of the baseline's score means the outcome is more likely
    recency_direction: int
    bgnbd_direction: int


def model_specs(
    settings: Settings, tables: dict[str, pd.DataFrame], categories: tuple[str, ...]
) -> dict[str, ModelSpec]:
    churn_settings, propensity_settings = settings.churn, settings.propensity
    products = tables.get(s.PRODUCTS, pd.DataFrame(columns=[s.PRODUCT_ID, s.CATEGORY]))
    return {
        churn.MODEL_NAME: ModelSpec(
            name=churn.MODEL_NAME,
            horizon_days=churn_settings.horizon_days,
            label_column=s.CHURN_LABEL,
            make_labels=lambda transactions, as_of, features: churn.make_labels(
                transactions, as_of, churn_settings.horizon_days, churn_settings.lookback_days
            ),
            fit=lambda train, holdout, names, trees: churn.fit_churn_model(
                train,
                holdout,
                names,
                **_booster_arguments(churn_settings.booster, settings.training.seed, trees),
                monotone_rules=churn_settings.monotone,
                base_features=churn_settings.base_features,
            ),
            recency_direction=1,
            bgnbd_direction=-1,
        ),
        propensity.MODEL_NAME: ModelSpec(
            name=propensity.MODEL_NAME,
            horizon_days=propensity_settings.horizon_days,
            label_column=s.PURCHASE_LABEL,
            make_labels=lambda transactions, as_of, features: propensity.make_labels(
                transactions, features[s.CUSTOMER_ID], as_of, propensity_settings.horizon_days, categories, products
            ),
            fit=lambda train, holdout, names, trees: propensity.fit_propensity_model(
                train,
                holdout,
                names,
                categories,
                **_booster_arguments(propensity_settings.booster, settings.training.seed, trees),
                monotone_rules=propensity_settings.monotone,
                base_features=propensity_settings.base_features,
            ),
            recency_direction=-1,
            bgnbd_direction=1,
        ),
    }


def _booster_arguments(booster: BoosterSettings, seed: int, trees: bool = True) -> dict:
    params = booster.model_dump(exclude={"num_boost_round", "early_stopping_rounds"})
    return {
        "booster_params": {**params, "seed": seed},
        "num_boost_round": booster.num_boost_round if trees else 0,
        "early_stopping_rounds": booster.early_stopping_rounds,
    }


def labelled_frame(spec: ModelSpec, cache: FeatureCache, as_of: pd.Timestamp) -> pd.DataFrame:
    """Features at as_of joined with the spec's labels (only customers with a label)."""
    features, _ = cache.at(as_of)
    labels = spec.make_labels(cache.tables[s.TRANSACTIONS], as_of, features)
    frame = features.merge(labels, on=s.CUSTOMER_ID, how="inner")
    frame[s.BGNBD_EXPECTED_PURCHASES] = expected_purchases(cache.tables, as_of, spec.horizon_days, frame[s.CUSTOMER_ID])
    return frame


def expected_purchases(
    tables: dict[str, pd.DataFrame], as_of: pd.Timestamp, horizon_days: int, customer_ids: pd.Series
) -> np.ndarray:
    """BG/NBD expected purchases in the horizon, fitted on all history before as_of."""
    from models.bgnbd import BetaGeoBaseline

    transactions = tables[s.TRANSACTIONS]
    baseline = BetaGeoBaseline().fit(transactions, as_of)
    return np.asarray(baseline.predict_expected(transactions, as_of, horizon_days, customer_ids), dtype=float)


# ---------------------------------------------------------------------------
# One model: fit, baselines, evaluation, gate.
# ---------------------------------------------------------------------------
@dataclass
class TrainingResult:
    spec: ModelSpec
    plan: CutoffPlan
    model: OutcomeModel
    test: pd.DataFrame
    scores: dict[str, np.ndarray]  # "model", "model_uncalibrated" and each baseline, on the test rows
    metrics: dict[str, dict[str, float]]
    by_segment: pd.DataFrame
    train_rows: int
    share_older_than_training: float
    trees: bool


def train_model(
    spec: ModelSpec,
    cache: FeatureCache,
    as_of: pd.Timestamp,
    settings: Settings,
    evaluate_at: pd.Timestamp | None = None,
) -> TrainingResult:
    training = settings.training
    try:
        plan = plan_cutoffs(
            as_of,
            spec.horizon_days,
            training.n_cutoffs + 1,
            training.cutoff_step_days,
            data_start=first_record(cache.tables),
            test_cutoff=evaluate_at,
        )
    except ValueError as error:
        raise UserError(f"{spec.name}: {error}") from error
    if len(plan.train) < 2:
        raise UserError(
            f"{spec.name}: the history before {as_of.date()} holds only {len(plan.train)} complete training "
            f"window(s) of {spec.horizon_days} days before the test window; use a shorter horizon or more data"
        )
    fit_cutoffs, holdout_cutoff = plan.train[:-1], plan.train[-1]
    frames = [
        labelled_frame(spec, cache, cutoff)
        for cutoff in tqdm(fit_cutoffs, desc=f"{spec.name}: training cutoffs", leave=False)
    ]
    train = pd.concat(frames, ignore_index=True)
    holdout = labelled_frame(spec, cache, holdout_cutoff)
    test = labelled_frame(spec, cache, plan.test)
    for name, frame in (("training", train), ("holdout", holdout), ("test", test)):
        if frame[spec.label_column].nunique() < 2:
            raise UserError(
                f"{spec.name}: the {name} window holds a single class of '{spec.label_column}'; need more data"
            )

    names = [name for name in feature_columns(cache.at(holdout_cutoff)[0]) if name != s.BGNBD_EXPECTED_PURCHASES]
    older_share = share_older_than_training(train, test)
    trees = older_share <= training.max_share_older_than_training
    model = spec.fit(train, holdout, names, trees)
    primary = model.classifiers[model.primary_output]
    baselines = {
        BASELINE_RECENCY: ScoreColumnBaseline(s.DAYS_SINCE_LAST_PURCHASE, spec.recency_direction),
        BASELINE_RFM: RfmLogisticBaseline(),
        BASELINE_BGNBD: ScoreColumnBaseline(s.BGNBD_EXPECTED_PURCHASES, spec.bgnbd_direction),
    }
    y_train, y_holdout = train[spec.label_column].to_numpy(), holdout[spec.label_column].to_numpy()
    scores = {
        "model": primary.predict_proba(test[names]),
        "model_uncalibrated": primary.predict_raw(test[names]),
    }
    for name, baseline in baselines.items():
        scores[name] = baseline.fit(train, y_train, holdout, y_holdout).predict_proba(test)
    y_test = test[spec.label_column].to_numpy()
    metrics = {name: evaluate_binary(y_test, score) for name, score in scores.items()}
    for output, classifier in list(model.classifiers.items())[1:]:
        label = s.category_purchase_label(output.removeprefix(s.PURCHASE_PROBABILITY + "_"))
        if label in test and test[label].nunique() == 2:
            metrics[output] = evaluate_binary(test[label].to_numpy(), classifier.predict_proba(test[names]))
    by_segment = evaluate_by_segment(y_test, scores["model"], test[s.RFM_SEGMENT])
    return TrainingResult(spec, plan, model, test, scores, metrics, by_segment, len(train), older_share, trees)


def share_older_than_training(train: pd.DataFrame, test: pd.DataFrame) -> float:
    """Share of test-cutoff customers known longer than any training row (features only)."""
    return float((test[s.TENURE_DAYS] > train[s.TENURE_DAYS].max()).mean())


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    reason: str
    champion_version: str | None
    champion_score: float | None  # the champion's gate metric re-measured on the same test window


def decide_promotion(
    new_score: float,
    baseline_scores: dict[str, float],
    champion_score: float | None,
    champion_version: str | None,
    min_gain: float,
    metric: str = "ROC-AUC",
) -> GateDecision:
    """Champion only by evidence: beat every baseline, and the champion by min_gain, on the same window.

    `metric` names the gate metric (higher is better) in the reason: ROC-AUC, NDCG@10...
    """
    beaten_by = [name for name, score in baseline_scores.items() if not new_score > score]
    if beaten_by:
        reason = f"does not beat baseline(s) {', '.join(beaten_by)} on the test window ({metric} {new_score:.4f})"
        return GateDecision(False, reason, champion_version, champion_score)
    if champion_score is None:
        first = "first champion" if champion_version is None else f"champion v{champion_version} cannot be re-measured"
        return GateDecision(True, f"{first}: beats every baseline ({metric} {new_score:.4f})", champion_version, None)
    if new_score >= champion_score + min_gain:
        reason = (
            f"beats champion v{champion_version} by {new_score - champion_score:+.4f} {metric} on the same test window"
        )
        return GateDecision(True, reason, champion_version, champion_score)
    reason = (
        f"{metric} {new_score:.4f} does not beat champion v{champion_version} ({champion_score:.4f}) "
        f"by the required margin {min_gain}"
    )
    return GateDecision(False, reason, champion_version, champion_score)


def champion_auc_on(result: TrainingResult) -> tuple[str | None, float | None]:
    """The current champion's ROC-AUC re-measured on this run's test window."""
    from pipelines import registry

    version = registry.champion_version(result.spec.name)
    if version is None:
        return None, None
    champion_model = registry.load_version(result.spec.name, version)
    if not set(champion_model.feature_names) <= set(result.test.columns):
        return version, None
    scores = champion_model.predict_frame(result.test)[champion_model.primary_output].to_numpy()
    return version, float(evaluate_binary(result.test[result.spec.label_column].to_numpy(), scores)[PRIMARY_METRIC])


# ---------------------------------------------------------------------------
# The recommender: a ranker fitted on rolling label windows, judged beside baselines on the test window.
# ---------------------------------------------------------------------------
@dataclass
class RecommenderResult:
    """A fitted recommender, its test-window metrics beside the baselines, and the model to serve."""

    name: str
    plan: CutoffPlan
    horizon_days: int
    ks: tuple[int, ...]
    evaluated: TwoStageRecommender  # stage 1 as of the test cutoff: what the metrics measure
    served: TwoStageRecommender  # the same ranker, stage 1 refitted on every purchase before as_of
    window: EvaluationWindow
    metrics: dict[str, dict[str, float]]  # "model" and each baseline
    candidates: CandidateConfig
    ranker: RankerConfig


def recommender_tables(tables: dict[str, pd.DataFrame]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Transactions and products, or a UserError when there is nothing to recommend from."""
    if s.PRODUCTS not in tables or tables[s.PRODUCTS].empty:
        raise UserError(f"{RECOMMENDER}: needs the products table; train the others with --models churn,propensity")
    transactions, products = tables[s.TRANSACTIONS], tables[s.PRODUCTS]
    bought = transactions.loc[transactions[s.QUANTITY] > 0, s.PRODUCT_ID].nunique()
    if bought < 2:
        raise UserError(
            f"{RECOMMENDER}: customers bought {bought} distinct product(s); nothing to recommend "
            "(train the others with --models churn,propensity)"
        )
    return transactions, products


def train_recommender(
    tables: dict[str, pd.DataFrame],
    as_of: pd.Timestamp,
    settings: Settings,
    evaluate_at: pd.Timestamp | None = None,
) -> RecommenderResult:
    """Fit the ranker on cutoffs whose label windows end at or before the test cutoff, evaluate it and
    the baselines on the test window, and refresh its candidates on all history before as_of."""
    config = settings.recommender
    horizon = config.horizon_days
    transactions, products = recommender_tables(tables)
    first_purchase = transactions.loc[transactions[s.QUANTITY] > 0, s.TIMESTAMP].min()
    try:
        plan = plan_cutoffs(
            as_of, horizon, config.n_cutoffs, horizon, data_start=first_purchase, test_cutoff=evaluate_at
        )
        window = recommender_eval.make_test_window(transactions, products, plan.test, horizon)
    except ValueError as error:
        raise UserError(f"{RECOMMENDER}: {error}") from error
    candidates, ranker = CandidateConfig(), RankerConfig()
    try:
        model = TwoStageRecommender(candidates, ranker).fit(transactions, products, plan.train, horizon)
    except ValueError as error:
        raise UserError(
            f"{RECOMMENDER}: {error}; the history before {plan.test.date()} is too short for its "
            f"{horizon}-day training windows (got {len(plan.train)})"
        ) from error
    # the last label window ends at the test cutoff, so stage 1 already sees exactly the history before it
    evaluated = model if model.as_of_ == plan.test else model.refresh_candidates(transactions, products, plan.test)
    ks = tuple(sorted(set(config.ks) | {GATE_K}))
    k = max(ks)
    lists = {"model": recommender_eval.recommend_lists(evaluated, window, k)}
    lists |= recommender_eval.baseline_lists(transactions, products, window, k, candidates.knn_neighbours)
    metrics = {name: recommender_eval.evaluate_lists(found, window, ks) for name, found in lists.items()}
    served = model.refresh_candidates(transactions, products, as_of)
    return RecommenderResult(RECOMMENDER, plan, horizon, ks, evaluated, served, window, metrics, candidates, ranker)


def recommender_champion_on(
    result: RecommenderResult, tables: dict[str, pd.DataFrame]
) -> tuple[str | None, float | None]:
    """The current champion's NDCG@10 re-measured on this run's test window (its candidates refreshed
    on the purchases before the test cutoff); None when there is no champion or it cannot be re-measured."""
    from pipelines import registry

    version = registry.champion_version(result.name)
    if version is None:
        return None, None
    try:
        champion = registry.load_version(result.name, version)
        refreshed = champion.refresh_candidates(tables[s.TRANSACTIONS], tables[s.PRODUCTS], result.plan.test)
        lists = recommender_eval.recommend_lists(refreshed, result.window, GATE_K)
    except Exception as error:  # noqa: BLE001 -- a champion pickled by older code may not run on this code
        print(f"  {result.name}: champion v{version} cannot be re-measured ({type(error).__name__}: {error})")
        return version, None
    return version, recommender_eval.evaluate_lists(lists, result.window, (GATE_K,))[RECOMMENDER_PRIMARY_METRIC]


# ---------------------------------------------------------------------------
# Provenance.
# ---------------------------------------------------------------------------
def first_record(tables: dict[str, pd.DataFrame]) -> pd.Timestamp:
    times = [
        tables[name][s.TIMESTAMP].min() for name in (s.TRANSACTIONS, s.EVENTS) if name in tables and len(tables[name])
    ]
    return min(times)


def data_fingerprint(tables: dict[str, pd.DataFrame]) -> dict[str, str]:
    """A content hash of the tables, their row counts and the date range: tags on every run."""
    digest = hashlib.sha256()
    tags = {}
    for name in sorted(tables):
        frame = tables[name]
        digest.update(name.encode())
        digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
        tags[f"data.rows.{name}"] = str(len(frame))
    tags["data.hash"] = digest.hexdigest()[:16]
    first = first_record(tables)
    last = max(
        tables[name][s.TIMESTAMP].max() for name in (s.TRANSACTIONS, s.EVENTS) if name in tables and len(tables[name])
    )
    tags["data.date_range"] = f"{first.date()}..{last.date()}"
    return tags


def git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).parent,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def flatten(config: dict, prefix: str = "") -> dict[str, str]:
    """Nested config -> {"churn.horizon_days": "90", ...}; maps with free-form keys stay JSON."""
    flat = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and all(str(k).isidentifier() for k in value):
            flat |= flatten(value, name + ".")
        elif isinstance(value, dict):
            flat[name] = json.dumps(value, sort_keys=True)
        else:
            flat[name] = str(value)
    return flat


def restrict_to_before(tables: dict[str, pd.DataFrame], as_of: pd.Timestamp) -> dict[str, pd.DataFrame]:
    """Pretend today is as_of: drop every record at or after it."""
    restricted = dict(tables)
    for name in (s.TRANSACTIONS, s.EVENTS):
        if name in tables:
            restricted[name] = tables[name][tables[name][s.TIMESTAMP] < as_of]
    if s.CUSTOMERS in tables:
        restricted[s.CUSTOMERS] = tables[s.CUSTOMERS][tables[s.CUSTOMERS][s.SIGNUP_DATE] < as_of]
    return restricted


def check_quarantine(report: dict, data_dir: Path, max_share: float) -> None:
    for table, summary in report.get("tables", report).items():
        if not isinstance(summary, dict) or "rows_in" not in summary:
            continue
        rows_in, quarantined = summary["rows_in"], summary["quarantined"]
        if rows_in and quarantined / rows_in > max_share:
            raise UserError(
                f"{data_dir}: {quarantined:,} of {rows_in:,} {table} rows failed validation "
                f"({quarantined / rows_in:.1%} > {max_share:.0%}); see {data_dir}/_validation/report.json"
            )


# ---------------------------------------------------------------------------
# The command.
# ---------------------------------------------------------------------------
def parse_models(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in AVAILABLE_MODELS]
    if unknown or not names:
        raise UserError(
            f"--models {text!r}: unknown model(s) {', '.join(unknown) or '(none)'}; "
            f"choose from {', '.join(AVAILABLE_MODELS)}"
        )
    return names


@exits_cleanly_on_user_error
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.train", description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="folder with the contract tables")
    parser.add_argument("--as-of", default=None, help="pretend today is this date (default: day after the last record)")
    parser.add_argument(
        "--models", default=",".join(AVAILABLE_MODELS), help="comma-separated: " + ", ".join(AVAILABLE_MODELS)
    )
    parser.add_argument(
        "--evaluate-at",
        default=None,
        help="start of the test window (default: the latest complete horizon before as_of); "
        "training windows end before it",
    )
    parser.add_argument(
        "--store",
        type=Path,
        default=Path("mlruns"),
        help="local MLflow store folder (ignored when MLFLOW_TRACKING_URI is set)",
    )
    add_profiles_argument(parser)
    add_config_arguments(parser)
    args = parser.parse_args(argv)
    settings = load_settings(args.config, args.overrides)
    model_names = parse_models(args.models)

    from pipelines.validate import load_valid_tables

    started = time.perf_counter()
    tables, report = load_valid_tables(
        args.data, pd.Timestamp.now("UTC").tz_localize(None), required_tables=[s.TRANSACTIONS]
    )
    check_quarantine(report, args.data, settings.training.max_quarantined_share)
    if s.TRANSACTIONS not in tables or tables[s.TRANSACTIONS].empty:
        raise UserError(f"{args.data}: no transactions to train on")
    as_of = parse_as_of(args.as_of, tables)
    tables = restrict_to_before(tables, as_of)
    evaluate_at = parse_as_of(args.evaluate_at, tables, "--evaluate-at") if args.evaluate_at else None
    results = run_training(tables, as_of, model_names, settings, args.data, args.store, evaluate_at)
    print_summary(results, as_of, time.perf_counter() - started)
    if args.profiles is not None:
        fill_profile_store(tables, as_of, settings, args.profiles)
    return 0


@dataclass
class LoggedResult:
    result: TrainingResult | RecommenderResult
    version: str
    decision: GateDecision


def run_training(
    tables: dict[str, pd.DataFrame],
    as_of: pd.Timestamp,
    model_names: list[str],
    settings: Settings,
    data_dir: Path,
    store: Path,
    evaluate_at: pd.Timestamp | None = None,
) -> list[LoggedResult]:
    """Train, evaluate, log and gate each model under one parent MLflow run."""
    import mlflow

    from pipelines import registry
    from pipelines.tracking import log_training_result

    if RECOMMENDER in model_names:
        recommender_tables(tables)  # fail before anything is trained when there is nothing to recommend
    registry.connect(store)
    # the active experiment, so nested runs land beside their parent
    mlflow.set_experiment(experiment_id=registry.experiment_id(store))
    cache = FeatureCache(tables, settings)
    specs = {}
    if any(name in OUTCOME_MODELS for name in model_names):
        categories = cache.at(as_of - pd.Timedelta(days=1))[1].top_categories[: settings.propensity.top_categories]
        specs = model_specs(settings, tables, categories)
    logged = []
    with mlflow.start_run(run_name=f"train as_of {as_of.date()}: {'+'.join(model_names)}"):
        mlflow.log_params(flatten(settings.model_dump()))
        mlflow.set_tags(
            {
                "as_of": str(as_of.date()),
                "git_commit": git_commit(),
                "data.path": str(data_dir),
                **data_fingerprint(tables),
            }
        )
        log_inputs(tables, data_dir)
        for name in model_names:
            if name == RECOMMENDER:
                logged.append(train_and_log_recommender(tables, as_of, settings, evaluate_at))
                continue
            spec = specs[name]
            result = train_model(spec, cache, as_of, settings, evaluate_at)
            champion_version, champion_auc = champion_auc_on(result)
            baseline_aucs = {
                b: result.metrics[b][PRIMARY_METRIC] for b in (BASELINE_RECENCY, BASELINE_RFM, BASELINE_BGNBD)
            }
            decision = decide_promotion(
                result.metrics["model"][PRIMARY_METRIC],
                baseline_aucs,
                champion_auc,
                champion_version,
                settings.gate.min_auc_gain,
            )
            version = log_training_result(result, decision, settings, as_of)
            logged.append(LoggedResult(result, version, decision))
    return logged


def train_and_log_recommender(
    tables: dict[str, pd.DataFrame], as_of: pd.Timestamp, settings: Settings, evaluate_at: pd.Timestamp | None
) -> LoggedResult:
    """Train and evaluate the recommender, gate it on NDCG@10 against the baselines and the champion, log it."""
    from pipelines.tracking import log_recommender_result

    result = train_recommender(tables, as_of, settings, evaluate_at)
    champion_version, champion_ndcg = recommender_champion_on(result, tables)
    decision = decide_promotion(
        result.metrics["model"][RECOMMENDER_PRIMARY_METRIC],
        {name: result.metrics[name][RECOMMENDER_PRIMARY_METRIC] for name in RECOMMENDER_BASELINES},
        champion_ndcg,
        champion_version,
        settings.gate.min_ndcg_gain,
        metric=f"NDCG@{GATE_K}",
    )
    version = log_recommender_result(result, decision, settings, as_of)
    return LoggedResult(result, version, decision)


def log_inputs(tables: dict[str, pd.DataFrame], data_dir: Path) -> None:
    import mlflow

    for name, frame in tables.items():
        sample = frame.head(1000)
        dataset = mlflow.data.from_pandas(sample, source=str(Path(data_dir) / name), name=name)
        mlflow.log_input(dataset, context="training")


BASELINE_LABELS = {
    BASELINE_RECENCY: "recency",
    BASELINE_RFM: "RFM logit",
    BASELINE_BGNBD: "BG/NBD",
    recommender_eval.BASELINE_POPULARITY: "popularity",
    recommender_eval.BASELINE_ITEM_KNN: "item-kNN",
}


def summary_row(logged: LoggedResult) -> dict[str, str]:
    """One line of the closing table: the gate metric of the model, its baselines and the champion."""
    result = logged.result
    if isinstance(result, RecommenderResult):
        name, metric, key, baselines = result.name, f"NDCG@{GATE_K}", RECOMMENDER_PRIMARY_METRIC, RECOMMENDER_BASELINES
        horizon = result.horizon_days
    else:
        name, metric, key = result.spec.name, "ROC-AUC", PRIMARY_METRIC
        baselines, horizon = (BASELINE_RECENCY, BASELINE_RFM, BASELINE_BGNBD), result.spec.horizon_days
    champion = logged.decision.champion_score
    return {
        "model": f"{name} v{logged.version}",
        "test window": f"{result.plan.test.date()} +{horizon}d",
        "metric": metric,
        "score": f"{result.metrics['model'][key]:.3f}",
        "baselines": ", ".join(f"{BASELINE_LABELS[b]} {result.metrics[b][key]:.3f}" for b in baselines),
        "champion": f"{champion:.3f}" if champion is not None else "-",
        "promoted": "yes" if logged.decision.promote else "no",
    }


def print_summary(results: list[LoggedResult], as_of: pd.Timestamp, elapsed: float) -> None:
    print(f"\nTrained at as_of {as_of.date()} in {elapsed:.0f} s")
    print(pd.DataFrame([summary_row(logged) for logged in results]).to_string(index=False))
    for logged in results:
        name = logged.result.name if isinstance(logged.result, RecommenderResult) else logged.result.spec.name
        print(f"  {name}: {logged.decision.reason}")
        if isinstance(logged.result, TrainingResult) and not logged.result.trees:
            print(
                f"  {name}: trees off, linear base only: "
                f"{logged.result.share_older_than_training:.0%} of test customers are older than any training row"
            )


if __name__ == "__main__":
    sys.exit(main())
