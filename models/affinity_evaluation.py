"""How well category probabilities rank and are calibrated on a test window, with 95% intervals.

Tables are customers x categories (labels: 1 when the customer bought in the category within the
horizon). One bootstrap over customers, shared by every candidate and category, gives:
- each category's ROC-AUC with its interval (categories with a single class in the window are NaN);
- the mean per-category ROC-AUC (the gate metric, `models.evidence.Evidence`: paired differences);
- top-1 accuracy and top-3 hit rate over the customers who bought something in the window: the share
  whose most likely category (any of the three most likely) was bought;
- calibration: Brier score and expected calibration error over every (customer, category) cell.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from models.evidence import (
    DEFAULT_CONFIDENCE,
    DEFAULT_SAMPLES,
    Evidence,
    Interval,
    bootstrap_rows,
    interval,
    mean_draws,
    roc_auc_draws,
)
from models.metrics import expected_calibration_error

MEAN_AUC = "mean per-category ROC-AUC"
TOP_KS = (1, 3)


def top_k_hits(labels: np.ndarray, table: np.ndarray, k: int) -> np.ndarray:
    """Per customer: 1.0 when one of their k most likely categories was bought, NaN for customers who
    bought no category (they have no right answer)."""
    labels = np.asarray(labels, dtype=float)
    order = np.argsort(-np.asarray(table, dtype=float), axis=1, kind="stable")[:, :k]
    hit = np.take_along_axis(labels, order, axis=1).max(axis=1)
    return np.where(labels.sum(axis=1) > 0, hit, np.nan)


def per_category_auc_draws(labels: np.ndarray, table: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """categories x draws: each category's ROC-AUC on each bootstrap draw of customers (NaN where a
    draw, or the whole window, holds one class)."""
    labels = np.asarray(labels, dtype=float)
    return np.vstack(
        [
            roc_auc_draws(labels[:, j], table[:, j], rows)
            if 0 < labels[:, j].sum() < len(labels)
            else np.full(len(rows), np.nan)
            for j in range(labels.shape[1])
        ]
    )


def _nanmean_columns(values: np.ndarray) -> np.ndarray:
    finite = np.isfinite(values)
    counts = finite.sum(axis=0)
    with np.errstate(invalid="ignore"):
        return np.where(counts > 0, np.where(finite, values, 0.0).sum(axis=0) / np.maximum(counts, 1), np.nan)


@dataclass(frozen=True)
class AffinityEvaluation:
    """Every candidate's category metrics on one test window (see the module docstring)."""

    categories: tuple[str, ...]
    evidence: Evidence  # mean per-category ROC-AUC: the gate's evidence
    per_category: pd.DataFrame  # candidate, category, roc_auc, roc_auc_low, roc_auc_high, brier, base_rate, buyers
    top_k: dict[str, dict[int, Interval]]  # candidate -> k -> hit rate over buyers
    top_k_draws: dict[str, dict[int, np.ndarray]]  # candidate -> k -> the hit rate on each shared draw of buyers
    calibration: dict[str, dict[str, float]]  # candidate -> brier, ece (over every cell)
    buyers: int  # test customers who bought in some category

    def top_k_difference(self, first: str, second: str, k: int) -> Interval:
        """first - second in top-k hit rate, with the interval of the paired differences."""
        estimate = self.top_k[first][k].estimate - self.top_k[second][k].estimate
        return interval(estimate, self.top_k_draws[first][k] - self.top_k_draws[second][k], self.evidence.confidence)

    def summary(self) -> pd.DataFrame:
        """One row per candidate: mean AUC, top-k hit rates, Brier, ECE, each with its interval where it has one."""
        rows = []
        for name, value in self.evidence.metrics.items():
            row = {"candidate": name, **value.as_dict("mean_roc_auc")}
            for k, hits in self.top_k[name].items():
                row |= hits.as_dict(f"top{k}_hit_rate")
            rows.append(row | self.calibration[name])
        return pd.DataFrame(rows)


def evaluate_affinity(
    labels: np.ndarray,
    tables: Mapping[str, np.ndarray],
    categories: Sequence[str],
    samples: int = DEFAULT_SAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
) -> AffinityEvaluation:
    """Every candidate (name -> customers x categories probabilities) on the same labels and draws."""
    labels = np.asarray(labels, dtype=float)
    for name, table in tables.items():
        if np.shape(table) != labels.shape:
            raise ValueError(f"{name}: probabilities of shape {np.shape(table)}, labels {labels.shape}")
    everyone = np.arange(len(labels))[None, :]
    rows = bootstrap_rows(len(labels), samples, seed)
    metrics, draws, per_category, top_k, top_k_draws, calibration = {}, {}, [], {}, {}, {}
    hits_of = {name: {k: top_k_hits(labels, table, k) for k in TOP_KS} for name, table in tables.items()}
    buyers = np.flatnonzero(labels.sum(axis=1) > 0)
    buyer_rows = bootstrap_rows(max(len(buyers), 1), samples, seed + 1)
    for name, table in tables.items():
        table = np.asarray(table, dtype=float)
        full = per_category_auc_draws(labels, table, everyone)[:, 0]
        by_draw = per_category_auc_draws(labels, table, rows)
        mean_draw = _nanmean_columns(by_draw)
        estimate = float(np.nanmean(full)) if np.isfinite(full).any() else float("nan")
        metrics[name], draws[name] = interval(estimate, mean_draw, confidence), mean_draw
        for j, category in enumerate(categories):
            auc = interval(full[j], by_draw[j], confidence)
            per_category.append(
                {
                    "candidate": name,
                    "category": category,
                    **auc.as_dict("roc_auc"),
                    "brier": float(np.mean((table[:, j] - labels[:, j]) ** 2)),
                    "base_rate": float(labels[:, j].mean()),
                    "buyers": int(labels[:, j].sum()),
                }
            )
        top_k[name], top_k_draws[name] = {}, {}
        for k, hits in hits_of[name].items():
            values = hits[buyers] if len(buyers) else np.full(1, np.nan)
            top_k_draws[name][k] = mean_draws(values, buyer_rows)
            top_k[name][k] = interval(float(values.mean()), top_k_draws[name][k], confidence)
        calibration[name] = {
            "brier": float(np.mean((table - labels) ** 2)),
            "ece": expected_calibration_error(labels.reshape(-1), table.reshape(-1)),
        }
    evidence = Evidence(MEAN_AUC, metrics, draws, confidence)
    return AffinityEvaluation(
        tuple(categories), evidence, pd.DataFrame(per_category), top_k, top_k_draws, calibration, len(buyers)
    )
