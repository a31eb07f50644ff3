"""Category affinity: each customer's calibrated probability of buying in every category in the horizon.

The model is one shared LightGBM over long rows, one per (customer, category): the customer's
feature row (without the other categories' share columns) plus that category's columns, the
customer's share of purchase lines in it, its rank among the customer's categories and the
category's base rate (the share of training rows that bought in it within a horizon). One model for
every category lets the rare ones (3% of a catalogue) borrow what the common ones teach about
shares, recency and frequency. It is early-stopped and Platt-calibrated on the held-out cutoff.

`category_rows` is the one conversion from customer feature rows to long rows. Every scorer here
reads the same customer feature matrix as the propensity model (`OutcomeModel.feature_names`
order) and converts it itself, so training, batch scoring and the service, which has only the
stored feature row, score through the same code.

Baselines over the same matrix:
- past share: the customer's share of purchase lines in the category, or the category's
  popularity (its mean share over buyers) for a customer with no purchase; Platt-calibrated per
  category on the held-out cutoff (monotone, so each category's ranking is the share's);
- RFM and share: a logistic regression over the long rows on log recency, frequency and spend, the
  category's share and its base rate (linear: who buys at all, times what they bought before);
- popularity: the category's base rate, the same for everyone.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from features import schema as s
from models.baselines import RfmLogisticBaseline
from models.classifier import CalibratedBoostedClassifier, PlattCalibrator, monotone_for

# Customers whose long rows are built and scored at once (bounds memory on large batches).
CUSTOMERS_PER_CHUNK = 5000
# The category's columns of a long row, after the customer's columns.
CATEGORY_COLUMNS = (s.AFFINITY_SHARE, s.AFFINITY_SHARE_RANK, s.AFFINITY_BASE_RATE)
# A higher share of the category never lowers its probability; nor does a more popular category.
CATEGORY_MONOTONE = {s.AFFINITY_SHARE: 1, s.AFFINITY_SHARE_RANK: -1, s.AFFINITY_BASE_RATE: 1}


@dataclass(frozen=True)
class CategoryLayout:
    """Where each category's share sits in the customer feature rows, and what its output is called."""

    categories: tuple[str, ...]
    outputs: tuple[str, ...]  # per category: purchase_probability_<category>
    feature_names: tuple[str, ...]  # the customer feature matrix's columns, in order
    share_positions: tuple[int, ...]  # per category: its share column in the matrix
    customer_positions: tuple[int, ...]  # the columns every long row carries (no share column)

    @classmethod
    def of(cls, feature_names: Sequence[str], categories: Sequence[str], catalogue: Collection[str]) -> CategoryLayout:
        """`catalogue`: every category of the reference tables, which fixes the column names."""
        shares = s.category_share_columns((*catalogue, *categories))
        position = {name: i for i, name in enumerate(feature_names)}
        missing = [shares[c] for c in categories if shares[c] not in position]
        if missing:
            raise KeyError(f"category share columns missing from the feature rows: {', '.join(missing[:5])}")
        share_names = set(shares.values())
        return cls(
            categories=tuple(categories),
            outputs=tuple(s.category_purchase_probability(c, catalogue) for c in categories),
            feature_names=tuple(feature_names),
            share_positions=tuple(position[shares[c]] for c in categories),
            customer_positions=tuple(i for i, name in enumerate(feature_names) if name not in share_names),
        )

    @property
    def long_names(self) -> list[str]:
        """The columns of a long row: the customer's, then the category's."""
        return [*(self.feature_names[i] for i in self.customer_positions), *CATEGORY_COLUMNS]

    def shares(self, matrix: np.ndarray) -> np.ndarray:
        """customers x categories: each customer's share of purchase lines in each category."""
        return np.asarray(matrix, dtype=float)[:, list(self.share_positions)]


def category_rows(matrix: np.ndarray, layout: CategoryLayout, base_rates: np.ndarray) -> np.ndarray:
    """Customer feature rows (n x features, `layout.feature_names` order) -> long rows (n * categories x
    `layout.long_names`), customer-major: row i * C + j is customer i and category j."""
    matrix = np.asarray(matrix, dtype=float)
    n, n_categories = len(matrix), len(layout.categories)
    shares = layout.shares(matrix)
    # 1 for the customer's most bought category; tied shares (all zero without purchases) share a rank
    ranks = stats.rankdata(-shares, method="min", axis=1) if n else shares
    return np.column_stack(
        [
            np.repeat(matrix[:, list(layout.customer_positions)], n_categories, axis=0),
            shares.reshape(-1),
            np.asarray(ranks, dtype=float).reshape(-1),
            np.tile(np.asarray(base_rates, dtype=float), n),
        ]
    )


def top_categories(table: np.ndarray, categories: Sequence[str], k: int) -> list[list[tuple[str, float]]]:
    """Per row of a customers x categories table: the k most likely (category, probability), best
    first (ties by catalogue order)."""
    table = np.asarray(table, dtype=float)
    order = np.argsort(-table, axis=1, kind="stable")[:, :k]
    values = np.take_along_axis(table, order, axis=1).tolist()
    return [
        [(categories[j], p) for j, p in zip(columns, row, strict=True)]
        for columns, row in zip(order.tolist(), values, strict=True)
    ]


class CategoryScorer:
    """What every affinity scorer shares: the layout, the outputs and the per-output view."""

    def __init__(self, layout: CategoryLayout, top_k: int = 5):
        self.layout = layout
        self.top_k = top_k

    @property
    def categories(self) -> tuple[str, ...]:
        return self.layout.categories

    @property
    def outputs(self) -> list[str]:
        return list(self.layout.outputs)

    def predict_table(self, matrix: np.ndarray) -> np.ndarray:  # pragma: no cover - every scorer defines it
        raise NotImplementedError

    def predict_matrix(self, matrix: np.ndarray) -> dict[str, np.ndarray]:
        """output -> probability per customer row."""
        table = self.predict_table(matrix)
        return {output: table[:, j] for j, output in enumerate(self.layout.outputs)}

    def top(self, matrix: np.ndarray, k: int | None = None) -> list[list[tuple[str, float]]]:
        """Each customer's top k (default `top_k`) categories with their probabilities, best first."""
        return top_categories(self.predict_table(matrix), self.categories, self.top_k if k is None else k)


class CategoryAffinityModel(CategoryScorer):
    """The shared calibrated LightGBM over (customer, category) rows (see the module docstring)."""

    def __init__(
        self,
        layout: CategoryLayout,
        booster_params: Mapping[str, object] | None = None,
        num_boost_round: int = 400,
        early_stopping_rounds: int = 30,
        monotone_rules: Mapping[str, int] | None = None,
        base_features: Sequence[str] = (),
        top_k: int = 5,
    ):
        super().__init__(layout, top_k)
        self.booster_params = booster_params
        self.num_boost_round = num_boost_round
        self.early_stopping_rounds = early_stopping_rounds
        self.monotone_rules = monotone_rules
        self.base_features = base_features

    def fit(
        self, matrix: np.ndarray, labels: np.ndarray, holdout_matrix: np.ndarray, holdout_labels: np.ndarray
    ) -> CategoryAffinityModel:
        """matrix: customer feature rows; labels: customers x categories (1: bought in it within the horizon)."""
        labels, holdout_labels = (
            _check_labels(labels, matrix, self.layout),
            _check_labels(holdout_labels, holdout_matrix, self.layout),
        )
        self.base_rates_ = labels.mean(axis=0)
        names = self.layout.long_names
        monotone = {**monotone_for(names, dict(self.monotone_rules or {})), **CATEGORY_MONOTONE}
        self.classifier_ = CalibratedBoostedClassifier(
            params=self.booster_params,
            num_boost_round=self.num_boost_round,
            early_stopping_rounds=self.early_stopping_rounds,
            monotone=monotone,
            base_features=[name for name in (*self.base_features, s.AFFINITY_SHARE) if name in names],
        ).fit(
            pd.DataFrame(category_rows(matrix, self.layout, self.base_rates_), columns=names),
            labels.reshape(-1),
            pd.DataFrame(category_rows(holdout_matrix, self.layout, self.base_rates_), columns=names),
            holdout_labels.reshape(-1),
        )
        return self

    def _long(self, matrix: np.ndarray) -> np.ndarray:
        return category_rows(matrix, self.layout, self.base_rates_)

    def predict_table(self, matrix: np.ndarray) -> np.ndarray:
        return self._in_chunks(matrix, self.classifier_.predict_proba)

    def predict_raw_table(self, matrix: np.ndarray) -> np.ndarray:
        """The probabilities before calibration, customers x categories."""
        return self._in_chunks(matrix, self.classifier_.predict_raw)

    def _in_chunks(self, matrix: np.ndarray, predict) -> np.ndarray:
        # long rows are categories times the customer rows: a batch chunk of 200,000 customers would
        # need gigabytes at once, so they are built and scored a few thousand customers at a time
        matrix = np.asarray(matrix, dtype=float)
        parts = [
            predict(self._long(matrix[start : start + CUSTOMERS_PER_CHUNK])).reshape(-1, len(self.categories))
            for start in range(0, len(matrix), CUSTOMERS_PER_CHUNK)
        ]
        return np.vstack(parts) if parts else np.zeros((0, len(self.categories)))


class PastShareBaseline(CategoryScorer):
    """The customer's past share of the category (its popularity for a customer with no purchase),
    Platt-calibrated per category on the held-out cutoff."""

    def fit(
        self, matrix: np.ndarray, labels: np.ndarray, holdout_matrix: np.ndarray, holdout_labels: np.ndarray
    ) -> PastShareBaseline:
        _check_labels(labels, matrix, self.layout)
        holdout_labels = _check_labels(holdout_labels, holdout_matrix, self.layout)
        shares = self.layout.shares(matrix)
        bought = shares.sum(axis=1) > 0
        n_categories = len(self.categories)
        self.popularity_ = shares[bought].mean(axis=0) if bought.any() else np.full(n_categories, 1 / n_categories)
        scores = self.scores(holdout_matrix)
        self.calibrators_ = [PlattCalibrator().fit(scores[:, j], holdout_labels[:, j]) for j in range(n_categories)]
        return self

    def scores(self, matrix: np.ndarray) -> np.ndarray:
        """customers x categories: the share, or the popularity for a customer with no purchase."""
        shares = self.layout.shares(matrix)
        bought = shares.sum(axis=1) > 0
        return np.where(bought[:, None], shares, self.popularity_[None, :])

    def predict_table(self, matrix: np.ndarray) -> np.ndarray:
        scores = self.scores(matrix)
        return np.column_stack([c.transform(scores[:, j]) for j, c in enumerate(self.calibrators_)])


class RfmShareBaseline(CategoryScorer):
    """Logistic regression over the same (customer, category) rows on log recency, frequency and
    spend plus the category's share and base rate: what a linear model makes of who buys at all and
    what they bought before."""

    def fit(self, matrix: np.ndarray, labels: np.ndarray, holdout_matrix=None, holdout_labels=None) -> RfmShareBaseline:
        labels = _check_labels(labels, matrix, self.layout)
        self.base_rates_ = labels.mean(axis=0)
        rows = pd.DataFrame(category_rows(matrix, self.layout, self.base_rates_), columns=self.layout.long_names)
        self.logit_ = RfmLogisticBaseline((s.AFFINITY_SHARE, s.AFFINITY_BASE_RATE)).fit(rows, labels.reshape(-1))
        return self

    def predict_table(self, matrix: np.ndarray) -> np.ndarray:
        rows = category_rows(matrix, self.layout, self.base_rates_)
        return self.logit_.predict_proba(rows).reshape(len(matrix), len(self.categories))


class PopularityBaseline(CategoryScorer):
    """The category's base rate in the training rows, the same for every customer."""

    def fit(
        self, matrix: np.ndarray, labels: np.ndarray, holdout_matrix=None, holdout_labels=None
    ) -> PopularityBaseline:
        self.base_rates_ = _check_labels(labels, matrix, self.layout).mean(axis=0)
        return self

    def predict_table(self, matrix: np.ndarray) -> np.ndarray:
        return np.tile(self.base_rates_, (len(matrix), 1))


def _check_labels(labels: np.ndarray, matrix: np.ndarray, layout: CategoryLayout) -> np.ndarray:
    labels = np.asarray(labels, dtype=float)
    expected = (len(matrix), len(layout.categories))
    if labels.shape != expected:
        raise ValueError(f"category labels: shape {labels.shape}, expected customers x categories {expected}")
    return labels
