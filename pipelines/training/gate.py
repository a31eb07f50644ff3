"""Promotion by evidence: the served champion is the best candidate on the same held-out window.

For each family the run's candidates are the project's model and its baselines, measured on the
same test window and customers (`models.evidence`: a metric with its interval, paired differences
from one shared bootstrap over customers). The rule, in two steps:

1. the run's winner: the model when it beats the best baseline by more than the noise (the lower
   end of the paired difference's interval above `gate.min_gain`), else the best baseline itself;
2. promotion: with no champion the winner becomes champion; otherwise the champion is re-measured
   on the same window and customers, and the winner replaces it only when it beats it by the same
   rule. A champion that cannot be re-measured is kept (the run says why) unless the caller asks
   to replace it (`--replace-unmeasurable`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from features import schema as s
from models import recommender_evaluation as evaluation
from models.evidence import Evidence, Interval, beats, gather_evidence, mean_draws, roc_auc_draws
from models.outcome import OutcomeModel, assemble_outcome_model
from models.recommender import BASELINES as RECOMMENDER_BASELINES
from models.value_metrics import SPEARMAN
from pipelines import registry
from pipelines.settings import GateSettings
from pipelines.training import outcome, recommender, value
from pipelines.training.affinity import CATEGORY_AFFINITY, choose_category_scorer, describe_choice
from pipelines.training.outcome import MODEL, TrainingResult
from pipelines.training.recommender import ALL_ITEMS, NEW_ITEMS, RecommenderResult, per_user_ndcg
from pipelines.training.value import ValueResult

CHAMPION = "champion"


@dataclass(frozen=True)
class Champion:
    """The current champion, re-measured on this run's window (or why it could not be)."""

    version: str | None
    scores: object | None = None  # what the family's evidence needs (test-row scores, per-user values)
    unmeasurable: str | None = None  # why it could not be re-measured


@dataclass(frozen=True)
class GateDecision:
    """What the run serves and whether it becomes champion, with the evidence behind it."""

    promote: bool
    winner: str  # the candidate the new version serves: MODEL or a baseline's name
    reason: str
    metric: str  # the gate metric in words: ROC-AUC, NDCG@10
    evidence: Evidence  # every candidate's gate metric (and the champion's, when re-measured)
    baselines: tuple[str, ...]
    champion: Champion
    winners: dict[str, str] = field(default_factory=dict)  # per output, for families with several

    @property
    def best_baseline(self) -> str:
        return self.evidence.best(self.baselines)

    def model_vs_best_baseline(self) -> Interval:
        return self.evidence.difference(MODEL, self.best_baseline)


def choose_winner(evidence: Evidence, baselines: tuple[str, ...], min_gain: float, extra_ok: bool = True) -> str:
    """The model when it beats the best baseline beyond the noise (and `extra_ok`), else that baseline."""
    best = evidence.best(baselines)
    return MODEL if extra_ok and beats(evidence.difference(MODEL, best), min_gain) else best


def decide(
    evidence: Evidence,
    baselines: tuple[str, ...],
    metric: str,
    champion: Champion,
    gate: GateSettings,
    replace_unmeasurable: bool = False,
    extra_ok: bool = True,
    extra_reason: str = "",
) -> GateDecision:
    """The two-step rule of the module docstring on one family's evidence."""
    winner = choose_winner(evidence, baselines, gate.min_gain, extra_ok)
    best = evidence.best(baselines)
    versus = evidence.difference(MODEL, best)
    if winner == MODEL:
        why = f"the model beats the best baseline {best} by {versus} {metric}"
    else:
        why = f"the model does not beat {best} beyond the noise ({versus} {metric}{extra_reason}): {best} is served"
    promote, verdict = _promotion(evidence, winner, champion, gate.min_gain, metric, replace_unmeasurable)
    return GateDecision(promote, winner, f"{why}; {verdict}", metric, evidence, baselines, champion)


def _promotion(
    evidence: Evidence, winner: str, champion: Champion, min_gain: float, metric: str, replace: bool
) -> tuple[bool, str]:
    if champion.version is None:
        return True, "first champion"
    if champion.unmeasurable is not None:
        if replace:
            return True, f"replaces champion v{champion.version}, which cannot be re-measured ({champion.unmeasurable})"
        return False, (
            f"champion v{champion.version} is kept: it cannot be re-measured ({champion.unmeasurable}); "
            "--replace-unmeasurable replaces it"
        )
    versus = evidence.difference(winner, CHAMPION)
    if beats(versus, min_gain):
        return True, f"beats champion v{champion.version} by {versus} {metric} on the same window"
    return False, f"does not beat champion v{champion.version} beyond the noise ({versus} {metric}): it stays"


# ---------------------------------------------------------------------------
# Churn and propensity: ROC-AUC on the test rows, per output.
# ---------------------------------------------------------------------------
OUTCOME_METRIC = "ROC-AUC"


def decide_outcome_model(
    result: TrainingResult, gate: GateSettings, replace_unmeasurable: bool = False
) -> GateDecision:
    """The gate for churn or propensity (the primary output decides; other outputs each take their
    own winner among the model and the baselines, by the same rule)."""
    champion = remeasure_outcome_champion(result)
    primary = result.family.primary_output
    evidence = outcome_evidence(result, primary, gate, champion)
    decision = decide(evidence, outcome.BASELINES, OUTCOME_METRIC, champion, gate, replace_unmeasurable)
    winners = {primary: decision.winner}
    for output in result.model.outputs[1:]:
        if output in result.labels:
            winners[output] = choose_winner(outcome_evidence(result, output, gate), outcome.BASELINES, gate.min_gain)
        else:  # a single class in the test window: nothing to judge by, the model's own output stays
            winners[output] = MODEL
    reason = decision.reason
    if result.affinity is not None:  # the category probabilities: their own winner, by the same rule
        winners[CATEGORY_AFFINITY] = choose_category_scorer(result.affinity, gate.min_gain)
        reason = f"{reason}; {describe_choice(result.affinity, winners[CATEGORY_AFFINITY])}"
    return GateDecision(
        decision.promote,
        decision.winner,
        reason,
        decision.metric,
        decision.evidence,
        decision.baselines,
        decision.champion,
        winners,
    )


def outcome_evidence(
    result: TrainingResult, output: str, gate: GateSettings, champion: Champion | None = None
) -> Evidence:
    """ROC-AUC of every candidate (and the re-measured champion) on the test rows, with paired draws."""
    labels = result.labels[output]
    scores = {name: by_output[output] for name, by_output in result.scores.items()}
    if champion is not None and champion.scores is not None:
        scores[CHAMPION] = champion.scores
    full = {
        name: float(roc_auc_draws(labels, score, np.arange(len(labels))[None, :])[0]) for name, score in scores.items()
    }
    return gather_evidence(
        OUTCOME_METRIC,
        full,
        lambda name, rows: roc_auc_draws(labels, scores[name], rows),
        len(labels),
        gate.bootstrap_samples,
        gate.confidence,
    )


def remeasure_outcome_champion(result: TrainingResult) -> Champion:
    """The current champion's primary output on this run's test rows (or why it cannot be had)."""
    version = registry.champion_version(result.name)
    if version is None:
        return Champion(None)
    try:
        champion: OutcomeModel = registry.load_version(result.name, version)
        missing = [name for name in champion.feature_names if name not in result.test.columns]
        if missing:
            return Champion(version, unmeasurable=f"its feature columns are missing: {', '.join(missing[:5])}")
        scores = champion.predict_frame(result.test)[champion.primary_output].to_numpy()
    except Exception as error:  # noqa: BLE001 -- a champion pickled by other code may not run on this code
        return Champion(version, unmeasurable=f"{type(error).__name__}: {str(error).splitlines()[0][:200]}")
    return Champion(version, scores=scores)


def served_outcome_model(result: TrainingResult, decision: GateDecision) -> OutcomeModel:
    """The model the new version holds: each output's winning candidate (and the categories' winner)."""
    winners = {output: winner for output, winner in decision.winners.items() if output != CATEGORY_AFFINITY}
    affinity = result.affinity.candidates[decision.winners[CATEGORY_AFFINITY]] if result.affinity else None
    return assemble_outcome_model(result.name, result.candidates, winners, affinity)


# ---------------------------------------------------------------------------
# The recommender: NDCG@10 per test-window customer; the model must also not lose on new items.
# ---------------------------------------------------------------------------
RECOMMENDER_METRIC = f"NDCG@{recommender.GATE_K}"


def decide_recommender(
    result: RecommenderResult, tables: dict[str, pd.DataFrame], gate: GateSettings, replace_unmeasurable: bool = False
) -> GateDecision:
    """The gate for the recommender: NDCG@10 over the window's customers, every candidate on the same
    candidates and rules; the model wins only if it also does not lose to the best baseline on the
    items new to each customer."""
    champion = remeasure_recommender_champion(result, tables)
    evidence = recommender_evidence(result, ALL_ITEMS, gate, champion)
    best = evidence.best(RECOMMENDER_BASELINES)
    new_items = recommender_evidence(result, NEW_ITEMS, gate).difference(MODEL, best)
    not_losing = bool(np.isfinite(new_items.estimate)) and new_items.estimate >= 0
    extra = "" if not_losing else f"; on new items it loses to {best} by {new_items}"
    return decide(
        evidence, RECOMMENDER_BASELINES, RECOMMENDER_METRIC, champion, gate, replace_unmeasurable, not_losing, extra
    )


def recommender_evidence(
    result: RecommenderResult, items: str, gate: GateSettings, champion: Champion | None = None
) -> Evidence:
    """Mean per-customer NDCG@10 of every candidate, over the customers with relevant `items`."""
    values = {name: by_items[items] for name, by_items in result.per_user.items()}
    if champion is not None and champion.scores is not None:
        values[CHAMPION] = champion.scores
    scored = np.isfinite(values[MODEL])
    values = {name: value[scored] for name, value in values.items()}
    return gather_evidence(
        RECOMMENDER_METRIC,
        {name: float(value.mean()) if len(value) else float("nan") for name, value in values.items()},
        lambda name, rows: mean_draws(values[name], rows),
        max(int(scored.sum()), 1),
        gate.bootstrap_samples,
        gate.confidence,
    )


def remeasure_recommender_champion(result: RecommenderResult, tables: dict[str, pd.DataFrame]) -> Champion:
    """The champion's per-customer NDCG@10 on this window, its candidate sources refreshed on the history
    before the test cutoff (or why it cannot be had)."""
    version = registry.champion_version(result.name)
    if version is None:
        return Champion(None)
    try:
        champion = registry.load_version(result.name, version)
        refreshed = champion.refresh_candidates(result.measured_on, tables[s.PRODUCTS], result.window.cutoff)
        lists = evaluation.recommend_lists(refreshed, result.window, recommender.GATE_K)
    except Exception as error:  # noqa: BLE001 -- a champion pickled by other code may not run on this code
        return Champion(version, unmeasurable=f"{type(error).__name__}: {str(error).splitlines()[0][:200]}")
    return Champion(version, scores=per_user_ndcg(lists, result.window)[ALL_ITEMS])


# ---------------------------------------------------------------------------
# Customer value: MAE of the horizon's spend per customer; the model must also rank no worse.
# ---------------------------------------------------------------------------
VALUE_METRIC = "MAE of spend"


def decide_value_model(result: ValueResult, gate: GateSettings, replace_unmeasurable: bool = False) -> GateDecision:
    """The gate for customer value: the lowest MAE of spend on the test customers; the model wins only
    if it also ranks them no worse than the best baseline (Spearman's correlation, point estimates),
    so a model that is closer on average but orders customers worse is not served."""
    champion = remeasure_value_champion(result)
    evidence = value_evidence(result, gate, champion)
    best = evidence.best(value.BASELINES)
    spearman = {name: result.metrics[name][SPEARMAN] for name in (MODEL, best)}
    ranks_no_worse = bool(np.isfinite(spearman[MODEL]) and spearman[MODEL] >= spearman[best])
    extra = (
        ""
        if ranks_no_worse
        else f"; it ranks worse than {best} (Spearman {spearman[MODEL]:.3f} < {spearman[best]:.3f})"
    )
    return decide(evidence, value.BASELINES, VALUE_METRIC, champion, gate, replace_unmeasurable, ranks_no_worse, extra)


def value_evidence(result: ValueResult, gate: GateSettings, champion: Champion | None = None) -> Evidence:
    """Mean absolute error of every candidate's spend (and the re-measured champion's) on the test
    customers, lower is better, with paired draws."""
    errors = {name: result.absolute_errors(name) for name in result.candidates}
    if champion is not None and champion.scores is not None:
        errors[CHAMPION] = champion.scores
    return gather_evidence(
        VALUE_METRIC,
        {name: float(error.mean()) for name, error in errors.items()},
        lambda name, rows: mean_draws(errors[name], rows),
        len(result.test.spend),
        gate.bootstrap_samples,
        gate.confidence,
        lower_is_better=True,
    )


def remeasure_value_champion(result: ValueResult) -> Champion:
    """The champion's absolute errors of spend on this run's test customers (or why it cannot be had)."""
    version = registry.champion_version(result.name)
    if version is None:
        return Champion(None)
    try:
        champion = registry.load_version(result.name, version)
        missing = [name for name in champion.feature_names if name not in result.test.features.columns]
        if missing:
            return Champion(version, unmeasurable=f"its feature columns are missing: {', '.join(missing[:5])}")
        if champion.config.horizon_days != result.horizon_days:
            return Champion(
                version,
                unmeasurable=f"its horizon is {champion.config.horizon_days} days, this run's {result.horizon_days}",
            )
        # refitted at the test cutoff: as served, its parameters saw the test window
        refitted = champion.refitted(result.test.features)
        predicted = refitted.predict_frame(result.test.features)[s.CLV].to_numpy(dtype=float)
    except Exception as error:  # noqa: BLE001 -- a champion pickled by other code may not run on this code
        return Champion(version, unmeasurable=f"{type(error).__name__}: {str(error).splitlines()[0][:200]}")
    return Champion(version, scores=np.abs(predicted - result.test.spend))
