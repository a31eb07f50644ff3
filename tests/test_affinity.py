"""Category affinity: the long rows, the evaluation, and the model on generated data.

The model is fitted once per module on the generated 1,000-customer data (two training cutoffs and a
held-out one, through `pipelines.training.affinity.train_affinity`), and judged on a later cutoff it
never saw.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features import schema as s
from features.customer import feature_columns
from features.history import History
from models import affinity as affinity_module
from models.affinity import CategoryLayout, PastShareBaseline, PopularityBaseline, category_rows, top_categories
from models.affinity_evaluation import evaluate_affinity, per_category_auc_draws, top_k_hits
from models.names import PROPENSITY
from pipelines.cli import data_end
from pipelines.profiles import build_profiles
from pipelines.settings import load_settings
from pipelines.training import affinity as training
from pipelines.training.cache import FeatureCache
from pipelines.training.outcome import booster_arguments, labelled_frame, outcome_families
from tests.builders import customers_table, transactions_table

DAY = pd.Timedelta(days=1)
SMALL_BOOSTER = {"num_leaves": 15, "learning_rate": 0.1, "min_data_in_leaf": 40, "verbose": -1, "num_threads": 1}


# ---------------------------------------------------------------------------
# Long rows and the top-k list on hand-built matrices
# ---------------------------------------------------------------------------
def _layout() -> CategoryLayout:
    names = [s.ORDERS_COUNT_TOTAL, s.category_share("garden"), s.DAYS_SINCE_LAST_PURCHASE, s.category_share("books")]
    return CategoryLayout.of(names, ["books", "garden"], ["books", "garden"])


def test_category_rows_are_customer_major_with_the_category_share_rank_and_base_rate():
    layout = _layout()
    matrix = np.array([[3.0, 0.75, 10.0, 0.25], [0.0, 0.0, 99.0, 0.0]])
    rows = category_rows(matrix, layout, np.array([0.1, 0.2]))

    assert layout.long_names == [
        s.ORDERS_COUNT_TOTAL,
        s.DAYS_SINCE_LAST_PURCHASE,
        s.AFFINITY_SHARE,
        s.AFFINITY_SHARE_RANK,
        s.AFFINITY_BASE_RATE,
    ]
    assert layout.outputs == (s.category_purchase_probability("books"), s.category_purchase_probability("garden"))
    # customer 0 x books, customer 0 x garden, customer 1 x books, customer 1 x garden
    assert rows.tolist() == [
        [3.0, 10.0, 0.25, 2.0, 0.1],
        [3.0, 10.0, 0.75, 1.0, 0.2],
        [0.0, 99.0, 0.0, 1.0, 0.1],  # no purchase: every category ties at the best rank
        [0.0, 99.0, 0.0, 1.0, 0.2],
    ]


def test_a_layout_without_a_category_share_column_names_it():
    with pytest.raises(KeyError, match="category_share_toys"):
        CategoryLayout.of([s.ORDERS_COUNT_TOTAL], ["toys"], ["toys"])


def test_top_categories_are_the_most_likely_first_ties_in_catalogue_order():
    table = np.array([[0.1, 0.3, 0.3], [0.9, 0.0, 0.2]])
    assert top_categories(table, ["a", "b", "c"], 2) == [[("b", 0.3), ("c", 0.3)], [("a", 0.9), ("c", 0.2)]]


def test_past_share_ranks_by_share_and_falls_back_to_popularity_for_customers_without_purchases():
    layout = _layout()
    train = np.array([[1.0, 1.0, 5.0, 0.0], [1.0, 0.5, 5.0, 0.5], [1.0, 0.0, 5.0, 1.0], [1.0, 0.9, 5.0, 0.1]])
    labels = np.array([[0, 1], [1, 0], [1, 0], [0, 1]])
    baseline = PastShareBaseline(layout).fit(train, labels, train, labels)
    # popularity: the mean share over buyers, books then garden
    assert baseline.popularity_ == pytest.approx([0.4, 0.6])
    newcomer = np.array([[0.0, 0.0, 0.0, 0.0]])
    assert baseline.scores(newcomer).tolist() == [pytest.approx([0.4, 0.6])]
    table = baseline.predict_table(np.vstack([train, newcomer]))
    assert ((table >= 0) & (table <= 1)).all()
    # calibration is monotone per category: the ranking within a category is the share's
    assert np.argsort(table[:4, 1]).tolist() == np.argsort(train[:, 1]).tolist()
    popularity = PopularityBaseline(layout).fit(train, labels)
    assert popularity.predict_table(newcomer).tolist() == [[0.5, 0.5]]


def test_scorers_refuse_labels_of_the_wrong_shape():
    with pytest.raises(ValueError, match="customers x categories"):
        PopularityBaseline(_layout()).fit(np.zeros((3, 4)), np.zeros((3, 3)))


# ---------------------------------------------------------------------------
# Evaluation on tiny tables
# ---------------------------------------------------------------------------
def test_top_k_hits_count_only_customers_who_bought_a_category():
    labels = np.array([[1, 0, 0], [0, 0, 1], [0, 0, 0]])
    table = np.array([[0.9, 0.1, 0.0], [0.5, 0.4, 0.1], [0.2, 0.2, 0.2]])
    assert top_k_hits(labels, table, 1)[:2].tolist() == [1.0, 0.0]
    assert top_k_hits(labels, table, 3)[:2].tolist() == [1.0, 1.0]
    assert np.isnan(top_k_hits(labels, table, 1)[2])


def test_per_category_auc_is_one_for_a_perfect_ranking_and_nan_for_a_single_class():
    labels = np.array([[1, 0], [0, 0], [1, 0], [0, 0]])
    table = np.array([[0.9, 0.1], [0.1, 0.2], [0.8, 0.3], [0.2, 0.4]])
    auc = per_category_auc_draws(labels, table, np.arange(4)[None, :])[:, 0]
    assert auc[0] == 1.0 and np.isnan(auc[1])


def test_the_gate_serves_the_model_only_when_it_beats_the_best_baseline_beyond_the_noise():
    rng = np.random.default_rng(0)
    labels = (rng.random((400, 3)) < 0.3).astype(float)
    noise = rng.random((400, 3))
    tables = {
        training.MODEL: np.clip(labels * 0.6 + noise * 0.4, 0, 1),  # ranks well
        training.PAST_SHARE: noise,  # ranks at random
        training.RFM_SHARE: rng.random((400, 3)),
        training.POPULARITY: np.full((400, 3), 0.3),
    }
    evaluation = evaluate_affinity(labels, tables, ["a", "b", "c"], samples=200)
    result = training.AffinityResult(None, {}, labels, tables, tables[training.MODEL], evaluation)
    assert training.choose_category_scorer(result, 0.0) == training.MODEL
    assert evaluation.evidence.metrics[training.POPULARITY].estimate == pytest.approx(0.5)
    assert evaluation.top_k[training.MODEL][1].estimate > evaluation.top_k[training.PAST_SHARE][1].estimate
    assert evaluation.top_k_difference(training.MODEL, training.PAST_SHARE, 1).low > 0
    itself = evaluation.top_k_difference(training.MODEL, training.MODEL, 3)
    assert (itself.estimate, itself.low, itself.high) == (0.0, 0.0, 0.0)
    # the same model against itself: no difference beyond the noise, the best baseline is served
    same = evaluate_affinity(labels, {**tables, training.PAST_SHARE: tables[training.MODEL]}, ["a", "b", "c"], 200)
    tied = training.AffinityResult(None, {}, labels, tables, tables[training.MODEL], same)
    assert training.choose_category_scorer(tied, 0.0) == training.PAST_SHARE


# ---------------------------------------------------------------------------
# The model on generated data
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fitted(generated_data):
    """Affinity candidates fitted on two cutoffs, calibrated on a third, tested on a fourth (30-day horizon)."""
    tables = generated_data.tables
    settings = load_settings(overrides=["features.n_jobs=1"])
    cache = FeatureCache(tables, settings)
    end = data_end(tables)
    cutoffs = [end - days * DAY for days in (150, 120, 90, 30)]
    test_reference = cache.at(cutoffs[-1]).reference
    family = outcome_families(settings, tables, tuple(test_reference.categories))[PROPENSITY]
    train = pd.concat([labelled_frame(family, cache, c) for c in cutoffs[:2]], ignore_index=True)
    holdout, test = (labelled_frame(family, cache, c) for c in cutoffs[2:])
    names = feature_columns(cache.at(cutoffs[2]).features)
    layout = CategoryLayout.of(names, family.categories, cache.at(cutoffs[2]).reference.categories)
    arguments = {
        **booster_arguments(settings.propensity.booster, 0),
        "booster_params": SMALL_BOOSTER,
        "num_boost_round": 150,
        "monotone_rules": settings.propensity.monotone,
        "base_features": settings.propensity.base_features,
    }
    result = training.train_affinity(
        layout, family.category_labels, (train, holdout, test), arguments, 5, samples=200, confidence=0.95
    )
    return result, test_reference, settings, tables, test


def test_every_category_of_the_catalogue_gets_a_probability_in_the_unit_interval(fitted):
    result, reference, *_ = fitted
    assert set(result.categories) == set(reference.categories) - {s.UNKNOWN}
    assert len(result.categories) == 12
    for table in result.tables.values():
        assert table.shape == result.labels.shape
        assert ((table >= 0) & (table <= 1)).all()


def _hand_built_customer(tables: dict, as_of: pd.Timestamp, categories: tuple[str, ...]) -> dict:
    """One customer who bought only products of `categories`, a few times over the last year."""
    products = tables[s.PRODUCTS]
    chosen = [products.loc[products[s.CATEGORY] == c, s.PRODUCT_ID].iloc[0] for c in categories]
    rows = [
        (f"o{i}", "hand", chosen[i % len(chosen)], 1, 30.0, as_of - days * DAY)
        for i, days in enumerate((300, 200, 120, 60, 25, 10))
    ]
    return {
        s.CUSTOMERS: customers_table(["hand"], [as_of - 400 * DAY]),
        s.PRODUCTS: products,
        s.TRANSACTIONS: transactions_table(rows),
    }


def test_a_customer_who_only_bought_garden_and_sports_gets_them_as_top_categories(fitted):
    result, reference, settings, tables, _ = fitted
    hand = _hand_built_customer(tables, reference.as_of, ("garden", "sports"))
    profile = build_profiles(hand, reference.as_of, settings.features, reference)
    assert History.from_tables(hand).transactions[s.CUSTOMER_ID].nunique() == 1
    matrix = profile[list(result.layout.feature_names)].to_numpy(dtype=float)
    for name in (training.MODEL, training.PAST_SHARE):
        top = result.candidates[name].top(matrix, 2)[0]
        assert {category for category, _ in top} == {"garden", "sports"}, name


def test_a_larger_share_of_a_category_never_lowers_its_probability(fitted):
    result, *_, test = fitted
    model = result.candidates[training.MODEL]
    buyer = test[test[s.ORDERS_COUNT_TOTAL] >= 3].iloc[[0]]
    matrix = np.repeat(buyer[list(result.layout.feature_names)].to_numpy(dtype=float), 5, axis=0)
    j = result.categories.index("books")
    position = result.layout.share_positions[j]
    others = [p for p in result.layout.share_positions if p != position]
    for row, share in enumerate((0.0, 0.25, 0.5, 0.75, 1.0)):
        # the customer's shares still add up to one: the other categories shrink in proportion
        rest = matrix[row, others].sum()
        matrix[row, others] *= (1 - share) / rest if rest else 0.0
        matrix[row, position] = share
    books = model.predict_table(matrix)[:, j]
    assert (np.diff(books) >= -1e-12).all()
    assert books[-1] > books[0] + 0.01


def test_the_model_ranks_categories_better_than_chance_and_is_calibrated_on_an_unseen_window(fitted):
    result, *_ = fitted
    evaluation = result.evaluation
    assert evaluation.evidence.metrics[training.MODEL].estimate > 0.8
    assert evaluation.top_k[training.MODEL][1].estimate > evaluation.top_k[training.POPULARITY][1].estimate
    model = result.tables[training.MODEL]
    # calibrated on the held-out cutoff, measured 60 days later: within a loose bound overall
    assert evaluation.calibration[training.MODEL]["ece"] < 0.03
    assert abs(model.mean() - result.labels.mean()) < 0.02
    assert evaluation.calibration[training.MODEL]["brier"] <= evaluation.calibration[training.POPULARITY]["brier"]
    summary = evaluation.summary()
    assert list(summary["candidate"]) == [training.MODEL, *training.BASELINES]
    assert {"top1_hit_rate", "top3_hit_rate_low", "mean_roc_auc_high", "brier", "ece"} <= set(summary.columns)


def test_scoring_in_chunks_gives_the_same_probabilities(fitted, monkeypatch):
    result, *_, test = fitted
    model = result.candidates[training.MODEL]
    matrix = test[list(result.layout.feature_names)].to_numpy(dtype=float)[:50]
    whole = model.predict_table(matrix)
    monkeypatch.setattr(affinity_module, "CUSTOMERS_PER_CHUNK", 7)
    np.testing.assert_array_equal(model.predict_table(matrix), whole)
    assert model.predict_table(matrix[:0]).shape == (0, len(result.categories))
