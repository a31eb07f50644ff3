"""Evidence for choosing a model: a metric with its 95% interval, and paired differences.

Every candidate (the project's model, each baseline, the current champion) is scored on the same
held-out rows, so differences are measured *paired*: one bootstrap over rows (customers) draws the
same resampled rows for every candidate, and the interval of a difference comes from the
differences on those draws. Two candidates 0.001 apart with an interval of +-0.01 are the same
model; the significance rule (`beats`) asks for the lower end of the 95% interval of the
difference to clear a margin.

Two kinds of metric are covered:
- whole-sample metrics of binary scores (ROC-AUC): computed on each bootstrap draw
  (`roc_auc_draws`, vectorised through ranks);
- means of per-row values (a recommender's NDCG@10 per customer, a value model's absolute error
  per customer): the mean of each draw (`mean_draws`). For an error, lower is better
  (`lower_is_better`), and a difference is still "how much better", positive when it is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
from scipy import stats

DEFAULT_SAMPLES = 1000
DEFAULT_CONFIDENCE = 0.95
# Bootstrap draws are evaluated this many at a time, which bounds memory on large test windows.
_DRAWS_PER_BATCH = 100


@dataclass(frozen=True)
class Interval:
    """A point estimate (on the full sample) and its bootstrap percentile interval."""

    estimate: float
    low: float
    high: float

    def as_dict(self, prefix: str) -> dict[str, float]:
        return {prefix: self.estimate, f"{prefix}_low": self.low, f"{prefix}_high": self.high}

    def __str__(self) -> str:
        return f"{self.estimate:.4f} [{self.low:.4f}, {self.high:.4f}]"


def bootstrap_rows(n_rows: int, samples: int = DEFAULT_SAMPLES, seed: int = 0) -> np.ndarray:
    """`samples` x `n_rows` row indices drawn with replacement: the same draws for every candidate."""
    if n_rows < 1:
        raise ValueError("cannot bootstrap an empty sample")
    return np.random.default_rng(seed).integers(0, n_rows, size=(samples, n_rows))


def roc_auc_draws(labels: np.ndarray, scores: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """ROC-AUC of `scores` on each bootstrap draw (NaN for a draw holding one class only).

    Through ranks: AUC = (sum of the positives' ranks - n1 (n1 + 1) / 2) / (n1 n0), with tied
    scores sharing their average rank, which is what `sklearn.metrics.roc_auc_score` computes.
    """
    labels = np.asarray(labels, dtype=float)
    scores = np.asarray(scores, dtype=float)
    out = np.empty(len(rows))
    for start in range(0, len(rows), _DRAWS_PER_BATCH):
        batch = rows[start : start + _DRAWS_PER_BATCH]
        drawn_labels = labels[batch]
        ranks = stats.rankdata(scores[batch], axis=1)
        positives = drawn_labels.sum(axis=1)
        negatives = drawn_labels.shape[1] - positives
        rank_sum = (ranks * drawn_labels).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[start : start + len(batch)] = (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)
    return out


def mean_draws(values: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The mean of per-row `values` on each bootstrap draw."""
    values = np.asarray(values, dtype=float)
    return np.concatenate(
        [values[rows[start : start + _DRAWS_PER_BATCH]].mean(axis=1) for start in range(0, len(rows), _DRAWS_PER_BATCH)]
    )


def interval(estimate: float, draws: np.ndarray, confidence: float = DEFAULT_CONFIDENCE) -> Interval:
    """The percentile interval of the finite draws around a full-sample estimate."""
    finite = draws[np.isfinite(draws)]
    if not len(finite):
        return Interval(float(estimate), float("nan"), float("nan"))
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return Interval(float(estimate), float(low), float(high))


@dataclass(frozen=True)
class Evidence:
    """Every candidate's metric with its interval, and each candidate's paired difference to every other."""

    metric: str
    metrics: dict[str, Interval]
    draws: dict[str, np.ndarray]  # the metric on each shared bootstrap draw, per candidate
    confidence: float
    lower_is_better: bool = False  # an error (MAE) rather than a score (ROC-AUC)

    def difference(self, first: str, second: str) -> Interval:
        """How much better first is than second, with the interval of the paired differences:
        first - second for a score, second - first for an error. Positive means first is better."""
        sign = -1.0 if self.lower_is_better else 1.0
        estimate = sign * (self.metrics[first].estimate - self.metrics[second].estimate)
        return interval(estimate, sign * (self.draws[first] - self.draws[second]), self.confidence)

    def best(self, candidates: list[str] | tuple[str, ...]) -> str:
        """The candidate with the best point estimate (the first one on a tie)."""
        sign = -1.0 if self.lower_is_better else 1.0
        return max(candidates, key=lambda name: (sign * self.metrics[name].estimate, -candidates.index(name)))


def gather_evidence(
    metric: str,
    full_sample: Mapping[str, float],
    draw: Callable[[str, np.ndarray], np.ndarray],
    n_rows: int,
    samples: int = DEFAULT_SAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
    lower_is_better: bool = False,
) -> Evidence:
    """Evidence for the candidates of `full_sample` (name -> the metric on all rows).

    `draw(name, rows)` gives a candidate's metric on each bootstrap draw of `rows`; every
    candidate sees the same draws, so differences are paired.
    """
    rows = bootstrap_rows(n_rows, samples, seed)
    draws = {name: draw(name, rows) for name in full_sample}
    metrics = {name: interval(full_sample[name], draws[name], confidence) for name in full_sample}
    return Evidence(metric, metrics, draws, confidence, lower_is_better)


def beats(difference: Interval, min_gain: float) -> bool:
    """The significance rule: the lower end of the difference's interval clears the margin."""
    return bool(np.isfinite(difference.low) and difference.low > min_gain)
