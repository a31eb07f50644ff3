"""Promotion by evidence: a new version becomes champion only when it beats every baseline and the
current champion, re-measured on the same test window, by the configured margin."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from features import schema as s
from models import recommender_evaluation as evaluation
from models.metrics import evaluate_binary
from pipelines import registry
from pipelines.training import outcome, recommender
from pipelines.training.outcome import TrainingResult
from pipelines.training.recommender import RecommenderResult


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


@dataclass(frozen=True)
class GateMetric:
    """What a family is judged on: the metric in words, its key in the result's metrics, the baselines."""

    label: str
    key: str
    baselines: tuple[str, ...]


OUTCOME_GATE = GateMetric("ROC-AUC", outcome.PRIMARY_METRIC, outcome.BASELINES)
RECOMMENDER_GATE = GateMetric(f"NDCG@{recommender.GATE_K}", recommender.PRIMARY_METRIC, recommender.BASELINES)


def gate_metric(result: TrainingResult | RecommenderResult) -> GateMetric:
    return RECOMMENDER_GATE if isinstance(result, RecommenderResult) else OUTCOME_GATE


def decide_outcome_model(result: TrainingResult, min_gain: float) -> GateDecision:
    """The gate for churn or propensity: ROC-AUC against the baselines and the re-measured champion."""
    return _decide(result, *_champion_auc_on(result), min_gain)


def decide_recommender(result: RecommenderResult, tables: dict[str, pd.DataFrame], min_gain: float) -> GateDecision:
    """The gate for the recommender: NDCG@10 against the baselines and the re-measured champion."""
    return _decide(result, *_recommender_champion_on(result, tables), min_gain)


def _decide(
    result: TrainingResult | RecommenderResult,
    champion_version: str | None,
    champion_score: float | None,
    min_gain: float,
) -> GateDecision:
    gate = gate_metric(result)
    return decide_promotion(
        result.metrics["model"][gate.key],
        {name: result.metrics[name][gate.key] for name in gate.baselines},
        champion_score,
        champion_version,
        min_gain,
        metric=gate.label,
    )


def _champion_auc_on(result: TrainingResult) -> tuple[str | None, float | None]:
    """The current champion's ROC-AUC re-measured on this run's test window."""
    version = registry.champion_version(result.name)
    if version is None:
        return None, None
    champion_model = registry.load_version(result.name, version)
    if not set(champion_model.feature_names) <= set(result.test.columns):
        return version, None
    scores = champion_model.predict_frame(result.test)[champion_model.primary_output].to_numpy()
    labels = result.test[result.family.label_column].to_numpy()
    return version, float(evaluate_binary(labels, scores)[outcome.PRIMARY_METRIC])


def _recommender_champion_on(
    result: RecommenderResult, tables: dict[str, pd.DataFrame]
) -> tuple[str | None, float | None]:
    """The current champion's NDCG@10 re-measured on this run's test window (its candidates refreshed
    on the purchases before the test cutoff); None when there is no champion or it cannot be re-measured."""
    version = registry.champion_version(result.name)
    if version is None:
        return None, None
    try:
        champion = registry.load_version(result.name, version)
        refreshed = champion.refresh_candidates(tables[s.TRANSACTIONS], tables[s.PRODUCTS], result.plan.test)
        lists = evaluation.recommend_lists(refreshed, result.window, recommender.GATE_K)
    except Exception as error:  # noqa: BLE001 -- a champion pickled by older code may not run on this code
        print(f"  {result.name}: champion v{version} cannot be re-measured ({type(error).__name__}: {error})")
        return version, None
    return version, evaluation.evaluate_lists(lists, result.window, (recommender.GATE_K,))[recommender.PRIMARY_METRIC]
