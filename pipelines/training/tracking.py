"""What one trained family logs: a nested run with every candidate's metrics and their intervals,
the paired differences and the decision, plots, per-segment tables, and the served model itself
(registered), with the gate's decision as alias and tags. Every MLflow call goes through
`pipelines.registry`.

Metric names. Per candidate: the model's as `test.<metric>` (churn, propensity) or `<metric>`
(recommender), a baseline's with its name in front (`rfm_logistic.test.roc_auc`,
`item_knn.ndcg_at_10`). The same across families, for the gate: `test.gate_metric` (and `_low`,
`_high`: its interval) for the model, `<candidate>.test.gate_metric` for each baseline and for the
re-measured `champion`, `served.test.gate_metric` for what the new version serves, and paired
differences as `diff.<a>_vs_<b>.gate_metric` with their intervals.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict

import numpy as np
import pandas as pd

from features import schema as s
from models import plots
from models.affinity_evaluation import TOP_KS
from models.evidence import Interval
from models.metrics import expected_calibration_error
from models.ranking_metrics import NDCG
from models.recommender_evaluation import metric_name
from models.value import BGNBD
from models.value_metrics import decile_table
from pipelines import registry
from pipelines.training.affinity import BASELINES as AFFINITY_BASELINES
from pipelines.training.affinity import MODEL as AFFINITY_MODEL
from pipelines.training.affinity import AffinityResult
from pipelines.training.gate import CHAMPION, GateDecision, served_outcome_model
from pipelines.training.outcome import MODEL, TrainingResult
from pipelines.training.recommender import RecommenderResult
from pipelines.training.value import BASELINE_BGNBD_GG, ValueResult

SHAP_SAMPLE_ROWS = 2000
GATE_METRIC = "gate_metric"


def log_training_result(result: TrainingResult, decision: GateDecision, as_of: pd.Timestamp) -> str:
    """Log churn or propensity under a nested run; register the served model; move aliases per the
    decision. Returns the new registered version."""
    served = served_outcome_model(result, decision)
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
        _log_outcome_metrics(result)
        _log_evidence(decision, "test")
        registry.log_table(result.by_segment.reset_index(drop=False), "evaluation/metrics_by_segment.json")
        _log_comparison({name: by_output[result.family.primary_output] for name, by_output in result.metrics.items()})
        for artifact, figure in _outcome_figures(result, decision).items():
            registry.log_figure(figure, f"plots/{artifact}.png", plots.SAVE_OPTIONS)
        if result.affinity is not None:
            _log_category_affinity(result.affinity, result.test_description)
        version = registry.log_model(served, result.name, result.test[served.feature_names].head(5))
    _apply_decision(result.name, version, decision)
    return version


def _log_outcome_metrics(result: TrainingResult) -> None:
    primary = result.family.primary_output
    for candidate, by_output in result.metrics.items():
        for output, values in by_output.items():
            prefix = "test" if output == primary else f"{output}.test"
            prefix = prefix if candidate == MODEL else f"{candidate}.{prefix}"
            registry.log_metrics({f"{prefix}.{name}": float(v) for name, v in values.items() if np.isfinite(v)})
    labels = result.labels[primary]
    registry.log_metrics(
        {
            "test.ece_before_calibration": expected_calibration_error(labels, result.uncalibrated),
            "test.ece_after_calibration": expected_calibration_error(labels, result.scores[MODEL][primary]),
        }
    )


def _outcome_figures(result: TrainingResult, decision: GateDecision) -> dict:
    """The evaluation plots: the candidates side by side, the evidence, calibration, and why."""
    primary = result.family.primary_output
    labels = result.labels[primary]
    scores = {name: by_output[primary] for name, by_output in result.scores.items()}
    calibration = {"before calibration": result.uncalibrated, "after calibration": scores[MODEL]}
    classifier = result.model.classifiers[primary]
    importance = classifier.feature_importance()
    sample = (
        result.test[result.model.feature_names]
        .sample(n=min(SHAP_SAMPLE_ROWS, len(result.test)), random_state=0)
        .to_numpy(dtype=float)
    )
    return {
        "evidence": _evidence_figure(result, decision),
        "roc": plots.plot_roc(labels, scores),
        "precision_recall": plots.plot_precision_recall(labels, scores),
        "calibration": plots.plot_calibration(labels, calibration),
        "gain_and_lift": plots.plot_gain_and_lift(labels, scores),
        "feature_importance": plots.plot_feature_importance(list(importance.index), importance.to_numpy()),
        "shap_summary": plots.plot_shap_summary(classifier.contributions(sample), sample, result.model.feature_names),
    }


def _log_category_affinity(affinity: AffinityResult, test_description: str) -> None:
    """The per-category part of propensity: every candidate's mean per-category ROC-AUC, top-1 accuracy
    and top-3 hit rate with their intervals, Brier and ECE, paired differences to the model, each
    category's ROC-AUC with its interval, and a bar chart of the per-category ROC-AUC.

    Metric names: `categories.<candidate>.mean_roc_auc` (`_low`, `_high`), `categories.<candidate>.
    top1_hit_rate`, `.top3_hit_rate`, `.brier`, `.ece`, `categories.diff.model_vs_<baseline>.mean_roc_auc`
    (and `.top1_hit_rate`, `.top3_hit_rate`: paired differences),
    `<output>.<candidate>.roc_auc` per category (output: purchase_probability_<category>)."""
    evaluation = affinity.evaluation
    summary = evaluation.summary()
    metrics: dict[str, float] = {}
    for row in summary.to_dict("records"):
        name = row.pop("candidate")
        metrics |= {f"categories.{name}.{key}": float(value) for key, value in row.items()}
    for baseline in AFFINITY_BASELINES:
        difference = evaluation.evidence.difference(AFFINITY_MODEL, baseline)
        metrics |= _interval_metrics(f"categories.diff.{AFFINITY_MODEL}_vs_{baseline}.mean_roc_auc", difference)
        for k in TOP_KS:
            difference = evaluation.top_k_difference(AFFINITY_MODEL, baseline, k)
            metrics |= _interval_metrics(f"categories.diff.{AFFINITY_MODEL}_vs_{baseline}.top{k}_hit_rate", difference)
    output_of = dict(zip(affinity.layout.categories, affinity.layout.outputs, strict=True))
    for row in evaluation.per_category.to_dict("records"):
        prefix = f"{output_of[row['category']]}.{row['candidate']}"
        metrics |= {f"{prefix}.{key}": float(row[key]) for key in ("roc_auc", "roc_auc_low", "roc_auc_high", "brier")}
    labels = affinity.labels.reshape(-1)
    metrics |= {
        "categories.model.ece_before_calibration": expected_calibration_error(
            labels, affinity.uncalibrated.reshape(-1)
        ),
        "categories.buyers": float(evaluation.buyers),
    }
    registry.log_metrics({name: value for name, value in metrics.items() if np.isfinite(value)})
    registry.log_table(summary, "evaluation/categories_summary.json")
    registry.log_table(evaluation.per_category, "evaluation/categories_roc_auc.json")
    by_candidate = evaluation.per_category.pivot(index="category", columns="candidate", values="roc_auc")
    by_candidate = by_candidate.reindex(list(affinity.categories))
    figure = plots.plot_grouped_bars(
        {name: by_candidate[name].fillna(0.5).tolist() for name in affinity.candidates},
        list(affinity.categories),
        "ROC-AUC",
        f"Purchase in each category: {test_description}",
    )
    registry.log_figure(figure, "plots/categories_roc_auc.png", plots.SAVE_OPTIONS)


def log_recommender_result(result: RecommenderResult, decision: GateDecision, as_of: pd.Timestamp) -> str:
    """Log the recommender under a nested run (every candidate's metrics at every k, the evidence, the
    configs, an NDCG bar chart); register the served candidate; move aliases per the decision.

    Metric names: `ndcg_at_10` for the model, `popularity.ndcg_at_10`, `item_knn.ndcg_at_10`,
    `ease.ndcg_at_10` and `buy_again_first.ndcg_at_10` for the baselines, `buy_again.` and
    `new_items.` for the two halves of the relevant set, `coverage_at_10`, `novelty_at_10` (see
    `models.recommender_evaluation`). Returns the new version.
    """
    with _model_run(result, decision, as_of, result.train_cutoffs, _protocol_tags(result)):
        registry.log_params(
            {
                "model": result.name,
                "protocol": result.protocol.protocol,
                "horizon_days": result.horizon_days,
                "held_out_share": result.held_out_share,
                "n_cutoffs": len(result.train_cutoffs),
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
            prefix = "" if source == MODEL else f"{source}."
            registry.log_metrics({f"{prefix}{name}": float(v) for name, v in values.items() if np.isfinite(v)})
        _log_evidence(decision, "test")
        _log_comparison(result.metrics)
        figure = plots.plot_grouped_bars(
            {
                "two-stage ranker" if source == MODEL else source: [values[metric_name(NDCG, k)] for k in result.ks]
                for source, values in result.metrics.items()
            },
            [f"k = {k}" for k in result.ks],
            "NDCG@k",
            f"{result.test_description[:1].upper()}{result.test_description[1:]} "
            f"({int(result.metrics[MODEL]['test_customers'])} customers)",
        )
        registry.log_figure(figure, "plots/ndcg_at_k.png", plots.SAVE_OPTIONS)
        registry.log_figure(_evidence_figure(result, decision), "plots/evidence.png", plots.SAVE_OPTIONS)
        served = result.served_candidate(decision.winner)
        version = registry.log_recommender(served, result.name, list(result.window.customer_ids[:5]))
    _apply_decision(result.name, version, decision)
    return version


def log_value_result(result: ValueResult, decision: GateDecision, as_of: pd.Timestamp) -> str:
    """Log customer value under a nested run: every candidate's spend and orders metrics (MAE, RMSE,
    Spearman, normalised Gini, top-decile capture, aggregate bias, interval coverage and width), the
    next purchase's (`timing.<count model>.test.concordance`, `.mae_days_buyers`,
    `.coverage_buyers`, on the test window and the validation cutoff), the evidence, the metrics by
    RFM segment, the decile plot; register the served candidate refitted at as_of; move aliases per
    the decision. Returns the new version."""
    tags = {
        "value.model_kind": result.model_kind,
        "value.timing_model": result.timing_model,
        **({"value.note": result.note} if result.note else {}),
    }
    with _model_run(result, decision, as_of, result.train_cutoffs, tags):
        registry.log_params(
            {
                "model": result.name,
                "horizon_days": result.horizon_days,
                "interval": result.config.interval,
                "draws": result.config.draws,
                "discount_rate_annual": result.config.discount_rate_annual,
                "test_rows": len(result.test.spend),
                "model_kind": result.model_kind,
            }
        )
        for candidate, values in result.metrics.items():
            prefix = "test" if candidate == MODEL else f"{candidate}.test"
            registry.log_metrics({f"{prefix}.{name}": float(v) for name, v in values.items() if np.isfinite(v)})
        registry.log_metrics({f"validation.{kind}.mae": mae for kind, mae in result.validation.items()})
        for window, by_model in (("test", result.timing_metrics), ("validation", result.timing_validation)):
            for count_model, values in by_model.items():
                registry.log_metrics(
                    {f"timing.{count_model}.{window}.{name}": v for name, v in values.items() if np.isfinite(v)}
                )
        _log_evidence(decision, "test")
        _log_intervals(result, decision)
        _log_comparison(result.metrics)
        registry.log_table(result.by_segment.reset_index(drop=False), "evaluation/metrics_by_segment.json")
        deciles = {
            name: decile_table(result.test.spend, frame[s.CLV].to_numpy(dtype=float))
            for name, frame in result.predictions.items()
        }
        registry.log_table(deciles[MODEL], "evaluation/deciles.json")
        title = f"{result.name}: {result.test_description} ({len(result.test.spend):,} customers)"
        registry.log_figure(plots.plot_value_deciles(deciles, title), "plots/deciles.png", plots.SAVE_OPTIONS)
        registry.log_figure(_evidence_figure(result, decision), "plots/evidence.png", plots.SAVE_OPTIONS)
        served = result.served_candidates[decision.winner]
        example = result.test.features[[s.CUSTOMER_ID, s.AS_OF, *served.feature_names]].head(5)
        version = registry.log_model(served, result.name, example)
    _apply_decision(result.name, version, decision)
    return version


def _log_intervals(result: ValueResult, decision: GateDecision) -> None:
    """Spearman's correlation of every candidate and the timing models' concordance with their
    intervals, and every candidate's paired difference from the BG/NBD yardstick
    (`diff.<a>_vs_<b>.<metric>`, the gate metric's included)."""
    metrics: dict[str, float] = {}
    for name in result.candidates:
        if name != BASELINE_BGNBD_GG:
            difference = decision.evidence.difference(name, BASELINE_BGNBD_GG)
            metrics |= _interval_metrics(f"diff.{name}_vs_{BASELINE_BGNBD_GG}.{GATE_METRIC}", difference)
    for evidence, prefix, yardstick in (
        (result.spearman, "", BASELINE_BGNBD_GG),
        (result.concordance, "timing.", BGNBD),
    ):
        for name, value in evidence.metrics.items():
            where = "test" if name == MODEL else f"{prefix}{name}.test"
            metrics |= _interval_metrics(f"{where}.{evidence.metric}", value)
            if name != yardstick:
                difference = evidence.difference(name, yardstick)
                metrics |= _interval_metrics(f"diff.{prefix}{name}_vs_{yardstick}.{evidence.metric}", difference)
    registry.log_metrics({name: value for name, value in metrics.items() if np.isfinite(value)})


def _protocol_tags(result: RecommenderResult) -> dict[str, str]:
    """Which validation protocol was used and why (`recommender.protocol`)."""
    return {"protocol": result.protocol.protocol, "protocol.reason": result.protocol.reason}


# ---------------------------------------------------------------------------
# The evidence, the same for every family.
# ---------------------------------------------------------------------------
def _log_evidence(decision: GateDecision, test: str) -> None:
    """Each candidate's gate metric with its interval, the paired differences behind the decision."""
    evidence = decision.evidence
    metrics: dict[str, float] = {}
    for name, value in evidence.metrics.items():
        metrics |= _interval_metrics(
            f"{test}.{GATE_METRIC}" if name == MODEL else f"{name}.{test}.{GATE_METRIC}", value
        )
    metrics |= _interval_metrics(f"served.{test}.{GATE_METRIC}", evidence.metrics[decision.winner])
    for baseline in decision.baselines:
        metrics |= _interval_metrics(f"diff.{MODEL}_vs_{baseline}.{GATE_METRIC}", evidence.difference(MODEL, baseline))
    if CHAMPION in evidence.metrics:
        difference = evidence.difference(decision.winner, CHAMPION)
        metrics |= _interval_metrics(f"diff.{decision.winner}_vs_{CHAMPION}.{GATE_METRIC}", difference)
    registry.log_metrics({name: value for name, value in metrics.items() if np.isfinite(value)})
    rows = [
        {"candidate": name, decision.metric: value.estimate, "low": value.low, "high": value.high}
        for name, value in evidence.metrics.items()
    ]
    registry.log_table(pd.DataFrame(rows), "evaluation/gate_evidence.json")


def _interval_metrics(name: str, value: Interval) -> dict[str, float]:
    return {name: value.estimate, f"{name}_low": value.low, f"{name}_high": value.high}


def _evidence_figure(result: TrainingResult | RecommenderResult | ValueResult, decision: GateDecision):
    evidence = decision.evidence
    return plots.plot_intervals(
        {name: (value.estimate, value.low, value.high) for name, value in evidence.metrics.items()},
        decision.metric,
        f"{result.name}: {result.test_description}",
        highlight=decision.winner,
        confidence=evidence.confidence,
    )


def _log_comparison(metrics: dict[str, dict[str, float]]) -> None:
    comparison = pd.DataFrame(metrics).T
    comparison.index.name = "scorer"
    registry.log_table(comparison.reset_index(), "evaluation/model_vs_baselines.json")


@contextmanager
def _model_run(
    result: TrainingResult | RecommenderResult | ValueResult,
    decision: GateDecision,
    as_of: pd.Timestamp,
    train_cutoffs: tuple[pd.Timestamp, ...],
    extra_tags: dict[str, str] | None = None,
) -> Iterator[None]:
    """A nested run named by model, as_of, horizon and gate outcome, tagged with its windows and decision."""
    outcome = _outcome(decision)
    test_set = "per customer" if result.plan is None else f"h{result.horizon_days}d"
    run_name = f"{result.name} | as_of {as_of.date()} | {test_set} | {outcome} | serves {decision.winner}"
    with registry.run(run_name, nested=True):
        registry.set_tags(
            {
                "model": result.name,
                "as_of": str(as_of.date()),
                "test_set": result.test_description,
                "train_cutoffs": ",".join(str(c.date()) for c in train_cutoffs),
                **(extra_tags or {}),
                **decision_tags(decision),
            }
        )
        yield


def decision_tags(decision: GateDecision) -> dict[str, str]:
    """The decision as run and version tags."""
    tags = {
        "gate.decision": _outcome(decision),
        "gate.reason": decision.reason,
        "gate.served": decision.winner,
        "gate.metric": decision.metric,
    }
    if decision.winners:
        tags["gate.served_per_output"] = json.dumps(decision.winners)
    if decision.champion.unmeasurable:
        tags["gate.champion_unmeasurable"] = decision.champion.unmeasurable
    return tags


def _outcome(decision: GateDecision) -> str:
    return registry.CHAMPION if decision.promote else registry.CHALLENGER


def _apply_decision(model_name: str, version: str, decision: GateDecision) -> None:
    registry.set_alias(model_name, _outcome(decision), version)
    registry.tag_version(model_name, version, decision_tags(decision))
