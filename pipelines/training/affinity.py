"""Propensity per category: the affinity model and its baselines, fitted on the propensity family's
rows and judged on its test window.

The rows are the propensity family's (every customer known at each cutoff), whose labels hold one
column per category. The model and the baselines (`models.affinity`) are fitted on the stacked
training cutoffs and calibrated on the held-out one; the test window only scores them. The gate
rule is the project's: the model is served when its mean per-category ROC-AUC beats the best
baseline's beyond the noise (the lower end of the paired 95% interval above `gate.min_gain`), else
the best baseline gives the category probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from models.affinity import (
    CategoryAffinityModel,
    CategoryLayout,
    CategoryScorer,
    PastShareBaseline,
    PopularityBaseline,
    RfmShareBaseline,
)
from models.affinity_evaluation import AffinityEvaluation, evaluate_affinity
from models.evidence import beats

MODEL = "model"
PAST_SHARE = "past_share"
RFM_SHARE = "rfm_share_logistic"
POPULARITY = "popularity"
BASELINES = (PAST_SHARE, RFM_SHARE, POPULARITY)
# the key of the category part in a decision's per-output winners
CATEGORY_AFFINITY = "category_affinity"


@dataclass
class AffinityResult:
    """The category candidates and their evaluation on the test rows (the family's test frame order)."""

    layout: CategoryLayout
    candidates: dict[str, CategoryScorer]  # MODEL first, then each baseline
    labels: np.ndarray  # test customers x categories
    tables: dict[str, np.ndarray]  # candidate -> test customers x categories probabilities
    uncalibrated: np.ndarray  # the model's probabilities before calibration on the test rows
    evaluation: AffinityEvaluation

    @property
    def categories(self) -> tuple[str, ...]:
        return self.layout.categories


def label_table(frame: pd.DataFrame, label_columns: tuple[str, ...]) -> np.ndarray:
    """customers x categories labels from a labelled frame (a missing column is a clear KeyError)."""
    missing = [column for column in label_columns if column not in frame]
    if missing:
        raise KeyError(f"category label columns missing: {', '.join(missing[:5])}")
    return frame[list(label_columns)].to_numpy(dtype=float)


def train_affinity(
    layout: CategoryLayout,
    label_columns: tuple[str, ...],
    frames: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame],
    model_arguments: dict,
    top_k: int,
    samples: int,
    confidence: float,
) -> AffinityResult:
    """Fit the model and baselines on `frames` (train, holdout, test) and evaluate all on the test rows.

    model_arguments: `CategoryAffinityModel`'s booster settings (booster_params, num_boost_round,
    early_stopping_rounds, monotone_rules, base_features)."""
    matrices = [frame[list(layout.feature_names)].to_numpy(dtype=float) for frame in frames]
    labels = [label_table(frame, label_columns) for frame in frames]
    (train, holdout, test), (train_labels, holdout_labels, test_labels) = matrices, labels
    candidates: dict[str, CategoryScorer] = {
        MODEL: CategoryAffinityModel(layout, top_k=top_k, **model_arguments),
        PAST_SHARE: PastShareBaseline(layout, top_k),
        RFM_SHARE: RfmShareBaseline(layout, top_k),
        POPULARITY: PopularityBaseline(layout, top_k),
    }
    for candidate in candidates.values():
        candidate.fit(train, train_labels, holdout, holdout_labels)
    tables = {name: candidate.predict_table(test) for name, candidate in candidates.items()}
    evaluation = evaluate_affinity(test_labels, tables, layout.categories, samples, confidence)
    uncalibrated = candidates[MODEL].predict_raw_table(test)
    return AffinityResult(layout, candidates, test_labels, tables, uncalibrated, evaluation)


def choose_category_scorer(result: AffinityResult, min_gain: float) -> str:
    """The model when its mean per-category ROC-AUC beats the best baseline's beyond the noise, else that baseline."""
    evidence = result.evaluation.evidence
    best = evidence.best(BASELINES)
    return MODEL if beats(evidence.difference(MODEL, best), min_gain) else best


def describe_choice(result: AffinityResult, winner: str) -> str:
    """The category gate's decision in words."""
    evidence = result.evaluation.evidence
    best = evidence.best(BASELINES)
    versus = evidence.difference(MODEL, best)
    if winner == MODEL:
        return f"categories: the model beats {best} by {versus} mean per-category ROC-AUC"
    return (
        f"categories: the model does not beat {best} beyond the noise "
        f"({versus} mean per-category ROC-AUC): {best} is served"
    )
