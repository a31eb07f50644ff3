"""Evaluation of predicted customer value: spend or orders over a horizon, and their intervals.

Pure functions, no I/O, the companion of `models.metrics` (binary scores) for numbers.

Conventions
- `actual` and `predicted` are aligned by position, finite, and not negative (spend and order
  counts); empty inputs, missing values and negative values raise `ValueError` naming the input.
- Ranking metrics order customers by `predicted` with `models.metrics.rank_by_score` (descending,
  ties keep input order), so the top decile here is the top decile there.
- Metrics that are undefined on the input are NaN, not an error: Spearman's correlation when
  either side is constant, the normalised Gini, top-decile capture and aggregate bias when
  nobody spent anything.

The names below are the keys of `evaluate_value`, the columns of `evaluate_value_by_segment` and
the names logged to MLflow.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from models.metrics import rank_by_score, top_percent_count

MAE = "mae"
RMSE = "rmse"
SPEARMAN = "spearman"
NORMALISED_GINI = "normalised_gini"
TOP_DECILE_CAPTURE = "top_decile_capture"
AGGREGATE_BIAS = "aggregate_bias"
INTERVAL_COVERAGE = "interval_coverage"
INTERVAL_WIDTH = "interval_width"
N = "n"

POINT_METRICS = (MAE, RMSE, SPEARMAN, NORMALISED_GINI, TOP_DECILE_CAPTURE, AGGREGATE_BIAS)
INTERVAL_METRICS = (INTERVAL_COVERAGE, INTERVAL_WIDTH)
TOP_DECILE_PERCENT = 10.0

DECILE = "decile"
MEAN_PREDICTED = "mean_predicted"
MEAN_ACTUAL = "mean_actual"
CUSTOMERS = "customers"


def check_value_inputs(actual, predicted, names: tuple[str, str] = ("actual", "predicted")) -> tuple[np.ndarray, ...]:
    """Both inputs as float arrays of one length, finite and not negative, or ValueError naming the input."""
    arrays = tuple(_as_values(values, name) for values, name in zip((actual, predicted), names, strict=True))
    if len(arrays[0]) != len(arrays[1]):
        raise ValueError(f"{names[0]} and {names[1]} differ in length: {len(arrays[0])} and {len(arrays[1])}")
    return arrays


def _as_values(values, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=float).ravel()
    if not len(array):
        raise ValueError(f"{name} is empty")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} has {int((~np.isfinite(array)).sum())} missing or infinite value(s)")
    if (array < 0).any():
        raise ValueError(f"{name} has {int((array < 0).sum())} negative value(s); spend and orders are not negative")
    return array


def evaluate_value(actual, predicted, low=None, high=None) -> dict[str, float]:
    """Every point metric of `predicted` against `actual`; with `low` and `high` (an interval per
    customer), its coverage (share of customers whose actual value lies in [low, high]) and mean width."""
    actual, predicted = check_value_inputs(actual, predicted)
    errors = predicted - actual
    result = {
        MAE: float(np.abs(errors).mean()),
        RMSE: float(np.sqrt((errors**2).mean())),
        SPEARMAN: spearman(actual, predicted),
        NORMALISED_GINI: normalised_gini(actual, predicted),
        TOP_DECILE_CAPTURE: top_capture(actual, predicted, TOP_DECILE_PERCENT),
        AGGREGATE_BIAS: aggregate_bias(actual, predicted),
        N: float(len(actual)),
    }
    if low is not None or high is not None:
        result |= evaluate_interval(actual, low, high)
    return result


def evaluate_interval(actual, low, high) -> dict[str, float]:
    """Coverage of the per-customer intervals [low, high] and their mean width."""
    if low is None or high is None:
        raise ValueError("an interval needs both low and high")
    actual, low = check_value_inputs(actual, low, ("actual", "low"))
    _, high = check_value_inputs(actual, high, ("actual", "high"))
    if (low > high).any():
        raise ValueError(f"{int((low > high).sum())} interval(s) have low above high")
    covered = (low <= actual) & (actual <= high)
    return {INTERVAL_COVERAGE: float(covered.mean()), INTERVAL_WIDTH: float((high - low).mean())}


def spearman(actual, predicted) -> float:
    """Spearman's rank correlation (average ranks for ties); NaN when either side is constant."""
    actual, predicted = check_value_inputs(actual, predicted)
    if np.ptp(actual) == 0 or np.ptp(predicted) == 0:
        return math.nan
    return float(stats.spearmanr(actual, predicted).statistic)


def normalised_gini(actual, predicted) -> float:
    """The Gini of the ordering by `predicted` over the Gini of the best ordering (by `actual`):
    1 for a perfect ranking of spend, about 0 for a random one. NaN when nobody spent anything."""
    actual, predicted = check_value_inputs(actual, predicted)
    best = _gini(actual, actual)
    return math.nan if best == 0 else _gini(actual, predicted) / best


def _gini(actual: np.ndarray, predicted: np.ndarray) -> float:
    """The area between the cumulative share of `actual` taken in `predicted` order and the diagonal."""
    total = actual.sum()
    if total == 0:
        return 0.0
    captured = np.cumsum(actual[rank_by_score(predicted)]) / total
    n = len(actual)
    return float(captured.sum() / n - (n + 1) / (2 * n))


def top_capture(actual, predicted, percent: float = TOP_DECILE_PERCENT) -> float:
    """Share of all actual spend made by the top `percent`% of customers by `predicted` (NaN without spend)."""
    actual, predicted = check_value_inputs(actual, predicted)
    total = actual.sum()
    if total == 0:
        return math.nan
    top = rank_by_score(predicted)[: top_percent_count(len(actual), percent)]
    return float(actual[top].sum() / total)


def aggregate_bias(actual, predicted) -> float:
    """Sum predicted over sum actual, minus 1: +0.1 means 10% too much in total (NaN without spend)."""
    actual, predicted = check_value_inputs(actual, predicted)
    total = actual.sum()
    return math.nan if total == 0 else float(predicted.sum() / total - 1)


def evaluate_value_by_segment(actual, predicted, segments, low=None, high=None) -> pd.DataFrame:
    """`evaluate_value` within each segment (one row each, sorted by segment name)."""
    actual, predicted = check_value_inputs(actual, predicted)
    segment_values = np.asarray(segments, dtype=object)
    if len(segment_values) != len(actual):
        raise ValueError(f"segments has {len(segment_values)} values for {len(actual)} customers")
    codes, names = pd.factorize(segment_values, sort=True)
    rows = []
    for code in range(len(names)):
        chosen = codes == code
        bounds = (None, None) if low is None else (np.asarray(low)[chosen], np.asarray(high)[chosen])
        rows.append(evaluate_value(actual[chosen], predicted[chosen], *bounds))
    columns = [*POINT_METRICS, *(INTERVAL_METRICS if low is not None else ()), N]
    return pd.DataFrame(rows, index=pd.Index(names, name=getattr(segments, "name", None)), columns=columns)


def decile_table(actual, predicted, n_bins: int = 10) -> pd.DataFrame:
    """Customers in `n_bins` groups of (nearly) equal size by predicted value, highest first: their
    mean predicted and mean actual value (the predicted-against-actual plot by decile)."""
    actual, predicted = check_value_inputs(actual, predicted)
    order = rank_by_score(predicted)
    group = np.empty(len(order), dtype=np.int64)
    group[order] = np.arange(len(order)) * n_bins // len(order)
    frame = pd.DataFrame({DECILE: group + 1, MEAN_PREDICTED: predicted, MEAN_ACTUAL: actual})
    grouped = frame.groupby(DECILE)
    table = grouped[[MEAN_PREDICTED, MEAN_ACTUAL]].mean().assign(**{CUSTOMERS: grouped.size()})
    return table.reset_index()


def spearman_draws(actual, predicted, rows: np.ndarray) -> np.ndarray:
    """Spearman's correlation on each bootstrap draw (rows from `models.evidence.bootstrap_rows`;
    NaN for a draw where either side is constant), for paired evidence between candidates."""
    actual, predicted = check_value_inputs(actual, predicted)
    out = np.empty(len(rows))
    for start in range(0, len(rows), 100):  # a hundred draws at a time bounds memory
        batch = rows[start : start + 100]
        ranked_actual = stats.rankdata(actual[batch], axis=1)
        ranked_predicted = stats.rankdata(predicted[batch], axis=1)
        ranked_actual -= ranked_actual.mean(axis=1, keepdims=True)
        ranked_predicted -= ranked_predicted.mean(axis=1, keepdims=True)
        covariance = (ranked_actual * ranked_predicted).sum(axis=1)
        spread = np.sqrt((ranked_actual**2).sum(axis=1) * (ranked_predicted**2).sum(axis=1))
        with np.errstate(invalid="ignore", divide="ignore"):
            out[start : start + len(batch)] = covariance / spread
    return out
