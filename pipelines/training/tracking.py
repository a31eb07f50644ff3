"""What one trained model logs: a nested run with metrics beside the baselines, plots, per-segment
tables, the model itself (registered), and the gate's decision as alias and tags. Every MLflow call
goes through `pipelines.registry`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict

import numpy as np
import pandas as pd

from models import plots
from models.metrics import expected_calibration_error
from models.ranking_metrics import NDCG
from models.recommender_evaluation import metric_name
from pipelines import registry
from pipelines.training.gate import GateDecision
from pipelines.training.outcome import TrainingResult
from pipelines.training.recommender import RecommenderResult

SHAP_SAMPLE_ROWS = 2000


def log_training_result(result: TrainingResult, decision: GateDecision, as_of: pd.Timestamp) -> str:
    """Log result under a nested run; register the model; move aliases per the decision.

    Returns the new registered version.
    """
    holdout = {"holdout_cutoff": str(result.plan.train[-1].date())}
    with _model_run(result, decision, as_of, result.plan.train[:-1], holdout):
        registry.log_params(
            {
                "model": result.name,
                "horizon_days": result.horizon_days,
                "train_rows": result.train_rows,
                "test_rows": len(result.test),
                "n_features": len(result.model.feature_names),
                "best_iteration": result.model.classifiers[result.model.primary_output].best_iteration_,
                "trees": result.trees,
                "share_older_than_training": round(result.share_older_than_training, 4),
            }
        )
        _log_metrics(result)
        _log_tables(result)
        _log_plots(result)
        version = registry.log_model(result.model, result.name, result.test[result.model.feature_names].head(5))
    _apply_decision(result.name, version, decision)
    return version


def _log_metrics(result: TrainingResult) -> None:
    y_test = result.test[result.family.label_column].to_numpy()
    for source, values in result.metrics.items():
        prefix = "test" if source == "model" else f"{source}.test"
        registry.log_metrics({f"{prefix}.{name}": float(value) for name, value in values.items() if np.isfinite(value)})
    # calibration before and after, on the test window
    registry.log_metrics(
        {
            "test.ece_before_calibration": expected_calibration_error(y_test, result.scores["model_uncalibrated"]),
            "test.ece_after_calibration": expected_calibration_error(y_test, result.scores["model"]),
        }
    )


def _log_tables(result: TrainingResult) -> None:
    registry.log_table(result.by_segment.reset_index(drop=False), "evaluation/metrics_by_segment.json")
    _log_comparison(result.metrics)


def _log_comparison(metrics: dict[str, dict[str, float]]) -> None:
    comparison = pd.DataFrame(metrics).T
    comparison.index.name = "scorer"
    registry.log_table(comparison.reset_index(), "evaluation/model_vs_baselines.json")


def _log_plots(result: TrainingResult) -> None:
    for artifact, figure in _figures(result).items():
        registry.log_figure(figure, f"plots/{artifact}.png", plots.SAVE_OPTIONS)


def _figures(result: TrainingResult) -> dict:
    """The evaluation plots: model beside the baselines, calibration before and after, and why."""
    y_test = result.test[result.family.label_column].to_numpy()
    scores = {name: score for name, score in result.scores.items() if name != "model_uncalibrated"}
    calibration = {
        "before calibration": result.scores["model_uncalibrated"],
        "after calibration": result.scores["model"],
    }
    classifier = result.model.classifiers[result.model.primary_output]
    importance = classifier.feature_importance()
    sample = (
        result.test[result.model.feature_names]
        .sample(n=min(SHAP_SAMPLE_ROWS, len(result.test)), random_state=0)
        .to_numpy(dtype=float)
    )
    return {
        "roc": plots.plot_roc(y_test, scores),
        "precision_recall": plots.plot_precision_recall(y_test, scores),
        "calibration": plots.plot_calibration(y_test, calibration),
        "gain_and_lift": plots.plot_gain_and_lift(y_test, scores),
        "feature_importance": plots.plot_feature_importance(list(importance.index), importance.to_numpy()),
        "shap_summary": plots.plot_shap_summary(classifier.contributions(sample), sample, result.model.feature_names),
    }


def log_recommender_result(result: RecommenderResult, decision: GateDecision, as_of: pd.Timestamp) -> str:
    """Log the recommender under a nested run (its metrics and the baselines' at every k, the
    configs, an NDCG bar chart); register the served model; move aliases per the decision.

    Metric names: `ndcg_at_10` for the model, `popularity.ndcg_at_10` and `item_knn.ndcg_at_10` for
    the baselines, `buy_again.` and `new_items.` for the two halves of the relevant set,
    `coverage_at_10`, `novelty_at_10` (see `models.recommender_evaluation`). Returns the new version.
    """
    with _model_run(result, decision, as_of, result.plan.train):
        registry.log_params(
            {
                "model": result.name,
                "horizon_days": result.horizon_days,
                "n_cutoffs": len(result.plan.train),
                "ks": ",".join(str(k) for k in result.ks),
                "training_groups": result.evaluated.training_groups_,
                "training_rows": result.evaluated.training_rows_,
                "test_customers": len(result.window.customer_ids),
                "served_as_of": str(pd.Timestamp(result.served.as_of_).date()),
                **{f"candidates.{key}": value for key, value in asdict(result.candidates).items()},
                **{f"ranker.{key}": value for key, value in asdict(result.ranker).items()},
            }
        )
        for source, values in result.metrics.items():
            prefix = "" if source == "model" else f"{source}."
            registry.log_metrics({f"{prefix}{name}": float(v) for name, v in values.items() if np.isfinite(v)})
        _log_comparison(result.metrics)
        figure = plots.plot_grouped_bars(
            {
                {"model": "two-stage ranker", "popularity": "popularity", "item_knn": "item-kNN"}.get(source, source): [
                    values[metric_name(NDCG, k)] for k in result.ks
                ]
                for source, values in result.metrics.items()
            },
            [f"k = {k}" for k in result.ks],
            "NDCG@k",
            f"Test window {result.plan.test.date()} +{result.horizon_days}d "
            f"({int(result.metrics['model']['test_customers'])} customers)",
        )
        registry.log_figure(figure, "plots/ndcg_at_k.png", plots.SAVE_OPTIONS)
        version = registry.log_recommender(result.served, result.name, list(result.window.customer_ids[:5]))
    _apply_decision(result.name, version, decision)
    return version


@contextmanager
def _model_run(
    result: TrainingResult | RecommenderResult,
    decision: GateDecision,
    as_of: pd.Timestamp,
    train_cutoffs: tuple[pd.Timestamp, ...],
    extra_tags: dict[str, str] | None = None,
) -> Iterator[None]:
    """A nested run named by model, as_of, horizon and gate outcome, tagged with its windows and decision."""
    outcome = _outcome(decision)
    test_end = result.plan.test + pd.Timedelta(days=result.horizon_days)
    with registry.run(f"{result.name} | as_of {as_of.date()} | h{result.horizon_days}d | {outcome}", nested=True):
        registry.set_tags(
            {
                "model": result.name,
                "as_of": str(as_of.date()),
                "test_window": f"{result.plan.test.date()}..{test_end.date()}",
                "train_cutoffs": ",".join(str(c.date()) for c in train_cutoffs),
                **(extra_tags or {}),
                "gate.decision": outcome,
                "gate.reason": decision.reason,
            }
        )
        yield


def _outcome(decision: GateDecision) -> str:
    return registry.CHAMPION if decision.promote else registry.CHALLENGER


def _apply_decision(model_name: str, version: str, decision: GateDecision) -> None:
    alias = registry.CHAMPION if decision.promote else registry.CHALLENGER
    registry.set_alias(model_name, alias, version)
    registry.tag_version(model_name, version, {"gate.decision": alias, "gate.reason": decision.reason})
