"""`python -m pipelines.train`: validate, build training sets, fit, evaluate out of time, log to
MLflow, register, and move the `champion` alias only when the evidence says so.

    python -m pipelines.train --data data/sample [--as-of 2025-10-01]
                              [--models churn,propensity,recommender,clv] [--evaluate-at DATE]
                              [--config FILE] [--set churn.horizon_days=182 ...]

`--as-of` means "pretend today is DATE": nothing at or after it is used for features or labels.
Without it, as_of is the day after the last record. For each model, the test window is the
latest complete horizon before as_of; training cutoffs step back from it, the latest of them held
out for early stopping and calibration (churn, propensity). The test window is never used to fit
or tune. The recommender is validated on a time window or on each customer's last purchases,
whichever the data supports (`recommender.protocol`), raced against its baselines (popularity,
item-kNN, EASE, buy again first) on the same customers, then registered with its candidate
sources refitted on all history before as_of. The training itself lives in
`pipelines.training`; this module is the command: options, the loop over models, the summary.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from features import schema as s
from features.history import tables_before
from models.names import CLV, MODEL_NAMES, OUTCOME_MODELS, PROPENSITY, RECOMMENDER
from pipelines import registry
from pipelines.cli import (
    add_as_of_argument,
    add_config_arguments,
    add_data_argument,
    add_mlflow_store_argument,
    add_profiles_argument,
    now_utc,
    parse_as_of,
    parse_models,
)
from pipelines.errors import UserError, exits_cleanly_on_user_error
from pipelines.profiles import fill_profile_store
from pipelines.settings import Settings, load_settings
from pipelines.training.cache import FeatureCache
from pipelines.training.gate import GateDecision, decide_outcome_model, decide_recommender, decide_value_model
from pipelines.training.outcome import MODEL, TrainingResult, outcome_families, plan_family, train_outcome_model
from pipelines.training.provenance import data_fingerprint, flatten, git_commit
from pipelines.training.recommender import RecommenderResult, recommender_tables, train_recommender
from pipelines.training.tracking import log_recommender_result, log_training_result, log_value_result
from pipelines.training.value import ValueResult, plan_test_window, train_value_model
from pipelines.validate import load_valid_tables


@dataclass
class LoggedResult:
    result: TrainingResult | RecommenderResult | ValueResult
    version: str
    decision: GateDecision


@exits_cleanly_on_user_error
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.train", description=__doc__.split("\n")[0])
    add_data_argument(parser)
    add_as_of_argument(parser)
    parser.add_argument(
        "--models",
        default=None,
        help=f"comma-separated: {', '.join(MODEL_NAMES)} (default: all; clv only where its horizon fits the data)",
    )
    parser.add_argument(
        "--evaluate-at",
        default=None,
        help="start of the test window (default: the latest complete horizon before as_of); "
        "training windows end before it",
    )
    parser.add_argument(
        "--replace-unmeasurable",
        action="store_true",
        help="let the run's winner replace a champion that cannot be re-measured on the test window "
        "(kept otherwise, with a warning): the human override, like pipelines.promote",
    )
    add_mlflow_store_argument(parser)
    add_profiles_argument(parser)
    add_config_arguments(parser)
    args = parser.parse_args(argv)
    settings = load_settings(args.config, args.overrides)
    model_names = parse_models(args.models or ",".join(MODEL_NAMES))

    started = time.perf_counter()
    tables, report = load_valid_tables(args.data, now_utc(), required_tables=[s.TRANSACTIONS])
    check_quarantine(report, args.data, settings.training.max_quarantined_share)
    if s.TRANSACTIONS not in tables or tables[s.TRANSACTIONS].empty:
        raise UserError(f"{args.data}: no transactions to train on")
    as_of = parse_as_of(args.as_of, tables)
    tables = tables_before(tables, as_of)
    evaluate_at = parse_as_of(args.evaluate_at, tables, "--evaluate-at") if args.evaluate_at else None
    if args.models is None:
        model_names = [name for name in model_names if name != CLV or value_fits(tables, as_of, settings, evaluate_at)]
    results = run_training(
        tables, as_of, model_names, settings, args.data, args.mlflow_store, evaluate_at, args.replace_unmeasurable
    )
    print_summary(results, as_of, time.perf_counter() - started)
    if args.profiles is not None:
        fill_profile_store(tables, as_of, settings, args.profiles)
    return 0


def value_fits(
    tables: dict[str, pd.DataFrame], as_of: pd.Timestamp, settings: Settings, evaluate_at: pd.Timestamp | None
) -> bool:
    """Whether the data holds a test window of clv.horizon_days (365) with purchases before it; when
    not, the default run leaves customer value out with a note instead of failing every model."""
    try:
        plan_test_window(tables[s.TRANSACTIONS], as_of, settings, evaluate_at)
    except UserError as error:
        print(f"note: {CLV} left out: {error} (or name it in --models to see this as an error)", file=sys.stderr)
        return False
    return True


def check_quarantine(report: dict, data_dir: Path, max_share: float) -> None:
    """Refuse to train when too many rows of a table failed validation."""
    for table, summary in report.get("tables", report).items():
        if not isinstance(summary, dict) or "rows_in" not in summary:
            continue
        rows_in, quarantined = summary["rows_in"], summary["quarantined"]
        if rows_in and quarantined / rows_in > max_share:
            raise UserError(
                f"{data_dir}: {quarantined:,} of {rows_in:,} {table} rows failed validation "
                f"({quarantined / rows_in:.1%} > {max_share:.0%}); see {data_dir}/_validation/report.json"
            )


def run_training(
    tables: dict[str, pd.DataFrame],
    as_of: pd.Timestamp,
    model_names: list[str],
    settings: Settings,
    data_dir: Path,
    mlflow_store: Path,
    evaluate_at: pd.Timestamp | None = None,
    replace_unmeasurable: bool = False,
) -> list[LoggedResult]:
    """Train, evaluate, gate and log each model family under one parent MLflow run."""
    if RECOMMENDER in model_names:
        recommender_tables(tables)  # fail before anything is trained when there is nothing to recommend
    registry.use_experiment(mlflow_store)
    cache = FeatureCache(tables, settings)
    families, plans = {}, {}
    outcome_names = [name for name in model_names if name in OUTCOME_MODELS]
    if outcome_names:
        horizons = {name: family.horizon_days for name, family in outcome_families(settings, tables, ()).items()}
        plans = {name: plan_family(name, horizons[name], cache, as_of, settings, evaluate_at) for name in outcome_names}
        # a propensity per category for every category of the reference tables at the test cutoff
        categories = tuple(cache.at(plans[PROPENSITY].test).reference.categories) if PROPENSITY in plans else ()
        families = outcome_families(settings, tables, categories)
    logged = []
    with registry.run(f"train as_of {as_of.date()}: {'+'.join(model_names)}"):
        registry.log_params(flatten(settings.model_dump()))
        provenance = {"as_of": str(as_of.date()), "git_commit": git_commit(), "data.path": str(data_dir)}
        registry.set_tags({**provenance, **data_fingerprint(tables)})
        for name, frame in tables.items():
            registry.log_input_sample(frame, source=str(Path(data_dir) / name), name=name)
        for name in model_names:
            if name == CLV:
                result = train_value_model(cache, as_of, settings, evaluate_at)
                decision = decide_value_model(result, settings.gate, replace_unmeasurable)
                logged.append(LoggedResult(result, log_value_result(result, decision, as_of), decision))
            elif name == RECOMMENDER:
                result = train_recommender(tables, as_of, settings, evaluate_at)
                decision = decide_recommender(result, tables, settings.gate, replace_unmeasurable)
                logged.append(LoggedResult(result, log_recommender_result(result, decision, as_of), decision))
            else:
                result = train_outcome_model(families[name], plans[name], cache, settings)
                decision = decide_outcome_model(result, settings.gate, replace_unmeasurable)
                logged.append(LoggedResult(result, log_training_result(result, decision, as_of), decision))
            warn_if_champion_kept_unmeasured(logged[-1])
        log_decisions(logged)
    return logged


def warn_if_champion_kept_unmeasured(logged: LoggedResult) -> None:
    champion = logged.decision.champion
    if champion.unmeasurable is not None and not logged.decision.promote:
        print(
            f"warning: {logged.result.name}: champion v{champion.version} cannot be re-measured "
            f"({champion.unmeasurable}); it stays champion. Retrain with --replace-unmeasurable to replace it.",
            file=sys.stderr,
        )


def log_decisions(logged: list[LoggedResult]) -> None:
    """The decisions, on the parent run: a table, a tag and the served metric per family, so two
    training runs compare in the MLflow UI without opening the nested runs."""
    rows = [decision_row(entry) for entry in logged]
    registry.log_table(pd.DataFrame(rows), "gate_decisions.json")
    registry.set_tags({f"gate.{row['model']}": row["decision"] for row in rows})
    registry.log_metrics(
        {
            f"{entry.result.name}.served.gate_metric": entry.decision.evidence.metrics[entry.decision.winner].estimate
            for entry in logged
        }
    )


def decision_row(logged: LoggedResult) -> dict[str, str]:
    """One family's decision in words and numbers (the summary table and the parent run's table)."""
    decision, result = logged.decision, logged.result
    evidence = decision.evidence
    best = decision.best_baseline
    champion = evidence.metrics.get("champion")
    served = "the model" if decision.winner == MODEL else f"baseline {decision.winner}"
    verdict = "promoted to champion" if decision.promote else f"challenger; champion v{decision.champion.version} stays"
    return {
        "model": result.name,
        "version": logged.version,
        "test set": result.test_description,
        "metric": decision.metric,
        "served": decision.winner,
        "served score": str(evidence.metrics[decision.winner]),
        "best baseline": f"{best} {evidence.metrics[best].estimate:.4f}",
        "model gain over best baseline": str(decision.model_vs_best_baseline()),
        "champion": f"v{decision.champion.version} {champion.estimate:.4f}" if champion else "-",
        "decision": f"v{logged.version} serves {served}; {verdict}",
    }


# ---------------------------------------------------------------------------
# The closing table.
# ---------------------------------------------------------------------------
def print_summary(results: list[LoggedResult], as_of: pd.Timestamp, elapsed: float) -> None:
    print(f"\nTrained at as_of {as_of.date()} in {elapsed:.0f} s")
    rows = [decision_row(logged) for logged in results]
    table = pd.DataFrame(rows).drop(columns=["decision"])
    print(table.to_string(index=False))
    for logged, row in zip(results, rows, strict=True):
        print(f"  {row['decision']}: {logged.decision.reason}")
        if isinstance(logged.result, RecommenderResult):
            protocol = logged.result.protocol
            print(f"  {logged.result.name}: validated {protocol.protocol.replace('_', ' ')}: {protocol.reason}")
        if isinstance(logged.result, ValueResult):
            value = logged.result
            print(f"  {value.name}: the model is {value.model_kind}{_validation_words(value)}")
            print(f"  {value.name}: next purchase from {value.timing_model}: {_timing_words(value)}")
        if isinstance(logged.result, TrainingResult) and not logged.result.trees:
            print(
                f"  {logged.result.name}: trees off, the model is its linear base only: "
                f"{logged.result.share_older_than_training:.0%} of test customers are older than any training row"
            )


def _timing_words(result: ValueResult) -> str:
    served = result.timing_metrics[result.timing_model]
    return (
        f"concordance {served['concordance']:.3f}, MAE {served['mae_days_buyers']:.0f} days over buyers, "
        f"80% interval holds {served['coverage_buyers']:.0%} of buyers (test window)"
    )


def _validation_words(result: ValueResult) -> str:
    if result.note:
        return f": {result.note}"
    maes = ", ".join(f"{kind} {mae:.2f}" for kind, mae in result.validation.items())
    return f", the lower MAE of spend on the validation cutoff {result.plan.train[-1].date()} ({maes})"


if __name__ == "__main__":
    sys.exit(main())
