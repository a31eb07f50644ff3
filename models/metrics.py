"""Evaluation of binary classifiers (churn, purchase propensity): pure functions, no I/O.

Conventions shared by every function here
- `y_true` holds 0/1 labels (bools and floats equal to 0 or 1 are accepted); `y_score` holds
  predicted probabilities of the positive class in [0, 1]. Inputs are aligned by position, not
  by pandas index. Empty inputs, missing values, labels other than 0/1 and scores outside
  [0, 1] raise `ValueError`.
- Metrics that need both classes are NaN, not an error, when only one class is present:
  ROC AUC and PR AUC for any single-class input, lift when there are no positives (the base
  rate is 0), capture when there are no positives. Log loss, Brier score and ECE are always
  defined.
- Top-k% selection: rows are ranked by a stable sort on score, descending, so tied scores
  keep their input order (the earlier row ranks higher); the top p% are the first
  k = ceil(p * n / 100) rows, at least one. The answer is therefore deterministic, but with
  heavy ties it depends on row order: shuffle first if that matters.
- Calibration bins are the `n_bins` equal-width intervals of [0, 1]: a score s falls in bin
  floor(s * n_bins), and a score of exactly 1 in the top bin.

The metric names below are the keys of `evaluate_binary`, the columns of
`evaluate_by_segment` and the names logged to MLflow.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

ROC_AUC = "roc_auc"
PR_AUC = "pr_auc"
LOG_LOSS = "log_loss"
BRIER = "brier"
ECE = "ece"
BASE_RATE = "base_rate"
LIFT_AT_10 = "lift_at_10"
LIFT_AT_20 = "lift_at_20"
CAPTURE_AT_10 = "capture_at_10"
CAPTURE_AT_20 = "capture_at_20"
N = "n"

METRIC_NAMES = (
    ROC_AUC,
    PR_AUC,
    LOG_LOSS,
    BRIER,
    ECE,
    BASE_RATE,
    LIFT_AT_10,
    LIFT_AT_20,
    CAPTURE_AT_10,
    CAPTURE_AT_20,
    N,
)

# Columns of `calibration_table`.
BIN = "bin"
BIN_LOWER = "bin_lower"
BIN_UPPER = "bin_upper"
MEAN_PREDICTED = "mean_predicted"
OBSERVED_RATE = "observed_rate"
COUNT = "count"

DEFAULT_N_BINS = 10
# Log loss clips the probability of the observed class to at least EPS, so a confident mistake
# costs about 34.5 nats instead of infinity.
LOG_LOSS_EPS = 1e-15


def check_binary_inputs(y_true, y_score) -> tuple[np.ndarray, np.ndarray]:
    """Validate labels and scores; return them as 1-D float arrays (labels are 0.0 or 1.0)."""
    labels = _as_1d_float(y_true, "y_true")
    scores = _as_1d_float(y_score, "y_score")
    if labels.size != scores.size:
        raise ValueError(f"y_true has {labels.size} rows but y_score has {scores.size}")
    if labels.size == 0:
        raise ValueError("cannot evaluate an empty set of predictions")
    if np.isnan(labels).any():
        raise ValueError("y_true has missing labels")
    if not np.isin(labels, (0.0, 1.0)).all():
        raise ValueError("y_true must hold only 0 and 1")
    if not np.isfinite(scores).all():
        raise ValueError("y_score has missing or infinite values")
    if scores.min() < 0.0 or scores.max() > 1.0:
        raise ValueError("y_score must hold probabilities in [0, 1]")
    return labels, scores


def _as_1d_float(values, name: str) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must be numeric") from error
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    return array


def evaluate_binary(y_true, y_score) -> dict[str, float]:
    """All headline metrics of one set of binary predictions, keyed by `METRIC_NAMES`.

    roc_auc (the primary metric), pr_auc (average precision), log_loss (natural log; the
    probability given to the observed class is clipped to at least 1e-15), brier (mean squared
    error of the probability), ece (see `expected_calibration_error`), base_rate (share of
    positives), lift_at_10/20 and capture_at_10/20 (see `lift_at` and `capture_at`) and n (the
    number of rows, an int).
    A single-class `y_true` gives NaN AUCs rather than an error.
    """
    labels, scores = check_binary_inputs(y_true, y_score)
    single_class = labels.min() == labels.max()
    # the probability given to the observed class, clipped the same way for both classes
    p_observed = np.clip(np.where(labels == 1.0, scores, 1.0 - scores), LOG_LOSS_EPS, 1.0)
    return {
        ROC_AUC: math.nan if single_class else float(roc_auc_score(labels, scores)),
        PR_AUC: math.nan if single_class else float(average_precision_score(labels, scores)),
        LOG_LOSS: float(-np.mean(np.log(p_observed))),
        BRIER: float(np.mean((scores - labels) ** 2)),
        ECE: _ece(labels, scores, DEFAULT_N_BINS),
        BASE_RATE: float(labels.mean()),
        LIFT_AT_10: _lift(labels, scores, 10),
        LIFT_AT_20: _lift(labels, scores, 20),
        CAPTURE_AT_10: _capture(labels, scores, 10),
        CAPTURE_AT_20: _capture(labels, scores, 20),
        N: int(labels.size),
    }


def evaluate_by_segment(y_true, y_score, segments) -> pd.DataFrame:
    """`evaluate_binary` per segment: one row per segment, columns `METRIC_NAMES`.

    The index holds the segment values in sorted order and is named after `segments` when it
    is a named Series (e.g. `schema.RFM_SEGMENT`). Rows whose segment is missing are left out.
    A segment with one class gets NaN AUCs (and NaN lift/capture when it has no positives).
    """
    labels, scores = check_binary_inputs(y_true, y_score)
    segment_values = segments.to_numpy() if isinstance(segments, pd.Series | pd.Index) else np.asarray(segments)
    if segment_values.ndim != 1 or segment_values.size != labels.size:
        raise ValueError(f"segments must be one-dimensional with {labels.size} rows")
    codes, uniques = pd.factorize(segment_values, sort=True)
    rows = [evaluate_binary(labels[codes == code], scores[codes == code]) for code in range(len(uniques))]
    index = pd.Index(uniques, name=getattr(segments, "name", None))
    return pd.DataFrame(rows, index=index, columns=list(METRIC_NAMES))


def top_percent_count(n: int, percent: float) -> int:
    """How many of n ranked rows make up the top `percent`%: ceil(percent * n / 100), at least 1."""
    if not 0 < percent <= 100:
        raise ValueError(f"percent must be in (0, 100], got {percent}")
    # round() first so that float noise such as 0.1 * 30 = 3.0000000000000004 does not add a row
    return max(1, math.ceil(round(percent * n / 100, 9)))


def rank_by_score(y_score) -> np.ndarray:
    """Row positions from highest to lowest score; ties keep input order (stable sort)."""
    return np.argsort(-np.asarray(y_score, dtype=float), kind="stable")


def lift_at(y_true, y_score, percent: float) -> float:
    """Positive rate in the top `percent`% by score over the base rate (NaN without positives)."""
    labels, scores = check_binary_inputs(y_true, y_score)
    return _lift(labels, scores, percent)


def capture_at(y_true, y_score, percent: float) -> float:
    """Share of all positives found in the top `percent`% by score (NaN without positives)."""
    labels, scores = check_binary_inputs(y_true, y_score)
    return _capture(labels, scores, percent)


def _top_labels(labels: np.ndarray, scores: np.ndarray, percent: float) -> np.ndarray:
    return labels[rank_by_score(scores)[: top_percent_count(labels.size, percent)]]


def _lift(labels: np.ndarray, scores: np.ndarray, percent: float) -> float:
    base_rate = labels.mean()
    if base_rate == 0:
        return math.nan
    return float(_top_labels(labels, scores, percent).mean() / base_rate)


def _capture(labels: np.ndarray, scores: np.ndarray, percent: float) -> float:
    positives = labels.sum()
    if positives == 0:
        return math.nan
    return float(_top_labels(labels, scores, percent).sum() / positives)


def cumulative_gain(y_true, y_score) -> tuple[np.ndarray, np.ndarray]:
    """The cumulative gain curve: (share of rows targeted, share of positives captured).

    Both arrays have n + 1 points and start at (0, 0); rows are taken in `rank_by_score`
    order, so the curve agrees with `capture_at`. Cumulative lift is captured / targeted.
    """
    labels, scores = check_binary_inputs(y_true, y_score)
    positives = labels.sum()
    if positives == 0:
        raise ValueError("the gain curve needs at least one positive")
    targeted = np.arange(labels.size + 1) / labels.size
    captured = np.concatenate(([0.0], np.cumsum(labels[rank_by_score(scores)]) / positives))
    return targeted, captured


def _bin_index(scores: np.ndarray, n_bins: int) -> np.ndarray:
    return np.minimum(np.floor(scores * n_bins).astype(np.int64), n_bins - 1)


def calibration_table(y_true, y_score, n_bins: int = DEFAULT_N_BINS) -> pd.DataFrame:
    """Reliability table: one row per equal-width score bin, empty bins included.

    Columns: bin (0-based), bin_lower, bin_upper, mean_predicted and observed_rate (NaN for an
    empty bin) and count. A score s is in bin floor(s * n_bins); 1.0 is in the top bin.
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be at least 1, got {n_bins}")
    labels, scores = check_binary_inputs(y_true, y_score)
    bins = _bin_index(scores, n_bins)
    count = np.bincount(bins, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_predicted = np.bincount(bins, weights=scores, minlength=n_bins) / count
        observed_rate = np.bincount(bins, weights=labels, minlength=n_bins) / count
    edges = np.arange(n_bins + 1) / n_bins
    return pd.DataFrame(
        {
            BIN: np.arange(n_bins),
            BIN_LOWER: edges[:-1],
            BIN_UPPER: edges[1:],
            MEAN_PREDICTED: mean_predicted,
            OBSERVED_RATE: observed_rate,
            COUNT: count,
        }
    )


def expected_calibration_error(y_true, y_score, n_bins: int = DEFAULT_N_BINS) -> float:
    """ECE: sum over bins of (count / n) * |mean predicted - observed rate|.

    Bins as in `calibration_table` (equal width, empty bins contribute nothing). 0 means every
    bin's average prediction matches its observed positive rate.
    """
    labels, scores = check_binary_inputs(y_true, y_score)
    return _ece(labels, scores, n_bins)


def _ece(labels: np.ndarray, scores: np.ndarray, n_bins: int) -> float:
    bins = _bin_index(scores, n_bins)
    gap = np.bincount(bins, weights=scores - labels, minlength=n_bins)
    # |sum(score - label)| / n per bin = (count / n) * |mean predicted - observed rate|
    return float(np.abs(gap).sum() / labels.size)
