"""One customer's list (the service's POST /recommend) through the fast paths is the list the general
code gives: same products, order, reasons, and scores to 1e-12, for hundreds of generated customers.

The general code is the one a batch or a fit runs (pandas factorise and frame filters, scipy's sparse
products); each fast path is chosen below a size, so every test here runs both and compares them.
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from features.schema import (
    CUSTOMER_ID,
    PRODUCT_ID,
    QUANTITY,
    RECOMMENDATION_RANK,
    RECOMMENDATION_REASON,
    RECOMMENDATION_SCORE,
    TIMESTAMP,
)
from models.recommender import RecommendationRules, TwoStageRecommender
from models.recommender import catalogue as catalogue_module
from models.recommender.arrays import append, prepend
from models.recommender.catalogue import code_customer_lines, code_lines
from models.recommender.stage1 import PairTable, _build_bought_matrix
from pipelines import simulation

SEED = 20_251_202
N_CUSTOMERS = 400
HORIZON_DAYS = 30


@pytest.fixture(scope="module")
def tables():
    tables, _ = simulation.generate_tables(N_CUSTOMERS, SEED)
    return tables


@pytest.fixture(scope="module")
def model(tables) -> TwoStageRecommender:
    transactions = tables["transactions"]
    end = transactions[TIMESTAMP].max().normalize() + pd.Timedelta(days=1)
    cutoffs = [end - HORIZON_DAYS * (i + 2) * pd.Timedelta(days=1) for i in range(2)]
    return TwoStageRecommender().fit(transactions, tables["products"], cutoffs, horizon_days=HORIZON_DAYS)


@pytest.fixture(scope="module")
def histories(tables, model):
    """Every customer's rows up to the model's as_of, plus a few purchases after it (the service's
    appended rows), returns and lines of products outside the catalogue mixed in."""
    transactions = tables["transactions"]
    later = transactions[transactions[TIMESTAMP] >= model.as_of_ - pd.Timedelta(days=200)].copy()
    rng = np.random.default_rng(SEED)
    later[TIMESTAMP] = model.as_of_ + pd.to_timedelta(rng.integers(0, 20 * 86_400, len(later)), unit="s")
    unknown = later.sample(frac=0.05, random_state=1).assign(**{PRODUCT_ID: "not-in-the-catalogue"})
    returns = later.sample(frac=0.05, random_state=2).assign(**{QUANTITY: -1})
    history = pd.concat([transactions, later.sample(frac=0.2, random_state=3), unknown, returns], ignore_index=True)
    return history.sample(frac=1.0, random_state=4).reset_index(drop=True)  # rows in no particular order


def _customers(history: pd.DataFrame, n: int) -> list[str]:
    ids = sorted(history[CUSTOMER_ID].astype(str).unique())
    return [ids[i] for i in np.random.default_rng(0).choice(len(ids), size=min(n, len(ids)), replace=False)]


def _old_rows(transactions: pd.DataFrame, customer_id: str) -> pd.DataFrame:
    """The customer's rows as `recommend_for_history` selected them before the fast path."""
    return transactions[transactions[CUSTOMER_ID].astype(object) == customer_id]


def _assert_same_lines(got, expected) -> None:
    assert got.customers.equals(expected.customers) and got.customers.name == expected.customers.name
    for name in ("customer", "item", "day", "unit_price"):
        np.testing.assert_array_equal(getattr(got, name), getattr(expected, name), err_msg=name)
        assert getattr(got, name).dtype == getattr(expected, name).dtype, name


@pytest.mark.parametrize("few_lines", [catalogue_module.FEW_LINES, 0])
def test_one_customers_coded_lines_are_code_lines_of_their_rows(histories, model, monkeypatch, few_lines):
    monkeypatch.setattr(catalogue_module, "FEW_LINES", few_lines)  # 0: the get_indexer lookup too
    catalogue = model.stage1_.catalogue
    for customer_id in [*_customers(histories, 300), "nobody"]:
        lines, latest = code_customer_lines(histories, customer_id, catalogue)
        mine = _old_rows(histories, customer_id)
        _assert_same_lines(lines, code_lines(mine, catalogue))
        if len(mine):
            assert latest == mine[TIMESTAMP].max()
        else:
            assert latest is None


def test_one_customers_rows_with_text_times_or_no_times(histories, model):
    catalogue = model.stage1_.catalogue
    customer_id = _customers(histories, 1)[0]
    mine = _old_rows(histories, customer_id)
    as_text = histories.assign(**{TIMESTAMP: histories[TIMESTAMP].astype(str)})
    lines, latest = code_customer_lines(as_text, customer_id, catalogue)
    _assert_same_lines(lines, code_lines(mine, catalogue))
    assert latest == mine[TIMESTAMP].max().isoformat(sep=" ")  # read as the text it was given
    untimed = mine.assign(**{TIMESTAMP: pd.Series(pd.NaT, index=mine.index, dtype="datetime64[ns]")})
    lines, latest = code_customer_lines(untimed, customer_id, catalogue)
    _assert_same_lines(lines, code_lines(untimed, catalogue))
    assert latest is pd.NaT  # rows, but none with a time (None means no rows)


def _list_before(model: TwoStageRecommender, customer_id, transactions, as_of, k, rules) -> pd.DataFrame:
    """`recommend_for_history` as written before the fast path: the frame filtered, stage 1 rebuilt
    from it by `for_customer`, and the model's batch code over that stage 1."""
    mine = _old_rows(transactions, customer_id)
    if as_of is None:
        latest = mine[TIMESTAMP].max() if len(mine) else model.as_of_
        as_of = max(model.as_of_, pd.Timestamp(latest) + pd.Timedelta(microseconds=1))
    rebuilt = copy.copy(model)
    rebuilt.stage1_ = model.stage1_.for_customer(mine, pd.Timestamp(as_of))
    return rebuilt.recommend([customer_id], k, rules)


def _assert_same_list(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert list(got.columns) == list(expected.columns)
    assert list(got.dtypes) == list(expected.dtypes)
    for name in got.columns:
        if name != RECOMMENDATION_SCORE:
            assert got[name].tolist() == expected[name].tolist(), name
    np.testing.assert_allclose(got[RECOMMENDATION_SCORE], expected[RECOMMENDATION_SCORE], rtol=0, atol=1e-12)


def _rule_sets(model) -> list[RecommendationRules]:
    categories = list(model.stage1_.catalogue.categories)
    products = tuple(model.stage1_.catalogue.ids[:10])
    return [
        RecommendationRules(),
        RecommendationRules(max_per_category=2),
        RecommendationRules(exclude_purchased=False),
        RecommendationRules(include_restock=False, include_categories=tuple(categories[:2])),
        RecommendationRules(exclude_categories=(categories[0],), exclude_product_ids=products),
    ]


def test_lists_from_a_history_are_the_lists_before(histories, model):
    rule_sets = _rule_sets(model)
    customers = _customers(histories, 300)
    for number, customer_id in enumerate([*customers, "nobody"]):
        rules = rule_sets[number % len(rule_sets)]
        k = (10, 3, 25)[number % 3]
        for as_of in (None, model.as_of_):
            got = model.recommend_for_history(customer_id, histories, as_of, k=k, rules=rules)
            expected = _list_before(model, customer_id, histories, as_of, k, rules)
            _assert_same_list(got, expected)
            assert got[RECOMMENDATION_RANK].tolist() == list(range(1, len(got) + 1))
            assert got[RECOMMENDATION_REASON].map(len).min() > 0 if len(got) else True


def _as_frame(lists) -> pd.DataFrame:
    columns = (CUSTOMER_ID, PRODUCT_ID, RECOMMENDATION_RANK, RECOMMENDATION_SCORE, RECOMMENDATION_REASON)
    values = (lists.customer_id, lists.product_id, lists.rank, lists.score, lists.reason)
    return pd.DataFrame(dict(zip(columns, values, strict=True)))


def test_lists_as_arrays_hold_the_frames_rows(histories, model):
    customers = _customers(histories, 40)
    for number, customer_id in enumerate(customers):
        rules = _rule_sets(model)[number % 5]
        frame = model.recommend_for_history(customer_id, histories, k=10, rules=rules)
        _assert_same_list(
            _as_frame(model.recommend_lists_for_history(customer_id, histories, k=10, rules=rules)), frame
        )
    many = [*customers, "nobody"]
    _assert_same_list(_as_frame(model.recommend_lists(many, k=7)), model.recommend(many, k=7))
    assert len(model.recommend_lists([], k=7).product_id) == 0


def test_a_batch_of_every_customer_gets_the_lists_of_smaller_batches(model):
    """A batch holding every customer of the fit uses stage 1's tables as they are; smaller batches
    cut them to their customers first."""
    everyone = model.stage1_.customers[model.stage1_.known].tolist()
    assert len(everyone) <= model.candidate_config_.batch_size  # one batch: the tables are not cut
    for rules in _rule_sets(model)[:3]:
        whole = model.recommend([*everyone, "nobody"], k=10, rules=rules)
        parts = [
            model.recommend(everyone[start : start + 50], k=10, rules=rules) for start in range(0, len(everyone), 50)
        ]
        parts.append(model.recommend(["nobody"], k=10, rules=rules))
        _assert_same_list(whole, pd.concat(parts, ignore_index=True))


def _bought_matrix_before(customer: np.ndarray, item: np.ndarray, n_customers: int, n_items: int) -> sp.csr_matrix:
    """`_build_bought_matrix` as written before: scipy's COO to CSR and duplicate summing."""
    matrix = sp.csr_matrix(
        (np.ones(len(item), dtype=np.float32), (customer, item)), shape=(n_customers, n_items), dtype=np.float32
    )
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return matrix


@pytest.mark.parametrize(
    ("n_lines", "n_customers", "n_items"), [(0, 0, 5), (0, 3, 5), (1, 1, 5), (40, 1, 250), (20_000, 900, 300)]
)
def test_the_bought_matrix_is_the_one_scipy_built_before(n_lines, n_customers, n_items):
    rng = np.random.default_rng(n_lines)
    customer = np.sort(rng.integers(0, max(n_customers, 1), n_lines))
    item = rng.integers(0, n_items, n_lines)
    order = np.lexsort((rng.random(n_lines), customer * n_items + item))  # as Lines keeps them
    customer, item = customer[order], item[order]
    got = _build_bought_matrix(customer, item, n_customers, n_items)
    expected = _bought_matrix_before(customer, item, n_customers, n_items)
    assert got.shape == expected.shape and got.dtype == expected.dtype and got.has_canonical_format
    for name in ("indptr", "indices", "data"):
        np.testing.assert_array_equal(getattr(got, name), getattr(expected, name))
        assert getattr(got, name).dtype == getattr(expected, name).dtype, name


def _rows_of(lists: pd.DataFrame, customer_id: str) -> pd.DataFrame:
    return lists[lists[CUSTOMER_ID] == customer_id].reset_index(drop=True)


def test_each_customer_alone_gets_their_list_in_a_batch(model):
    """Alone, a customer goes through the one-row paths (a mask of what they own, their own top n);
    in a batch, through the paths of many rows."""
    customers = _customers(pd.DataFrame({CUSTOMER_ID: model.stage1_.customers[model.stage1_.known]}), 150)
    for rules in _rule_sets(model)[:3]:
        batch = model.recommend(customers, k=10, rules=rules)
        for customer_id in customers:
            _assert_same_list(model.recommend([customer_id], k=10, rules=rules), _rows_of(batch, customer_id))


def test_each_history_alone_gets_its_list_in_a_batch_over_every_history(histories, model):
    as_of = model.as_of_ + pd.Timedelta(days=10)
    rebuilt = copy.copy(model)
    rebuilt.stage1_ = model.stage1_.for_customer(histories, as_of)  # every customer's tables at once
    customers = _customers(histories, 150)
    batch = rebuilt.recommend(customers, k=10)
    for customer_id in customers:
        alone = model.recommend_for_history(customer_id, histories, as_of, k=10)
        _assert_same_list(alone, _rows_of(batch, customer_id))


def test_one_customers_pair_rows_are_those_a_batch_finds():
    table = PairTable(10, np.array([3, 4, 11, 12, 13, 30, 31], dtype=np.int64), {})
    owner, position = table.rows_of(np.arange(5))  # the batch's expand_ranges
    for customer in range(5):
        alone_owner, alone_position = table.rows_of(np.array([customer]))
        np.testing.assert_array_equal(alone_position, position[owner == customer])
        assert (alone_owner == 0).all() and alone_owner.dtype == owner.dtype and alone_position.dtype == position.dtype


@pytest.mark.parametrize(
    ("value", "values"),
    [
        (True, np.array([False, True])),
        (True, np.zeros(0, dtype=bool)),
        (0, np.array([3, 5], dtype=np.int64)),
        (0, np.array([3, 5], dtype=np.int32)),
        (np.nan, np.array([1.5, 2.0])),
    ],
)
def test_prepend_and_append_are_np_r(value, values):
    """The request path's replacements for np.r_ give its arrays and dtypes."""
    for got, expected in (
        (prepend(value, values), np.r_[value, values]),
        (append(values, value), np.r_[values, value]),
    ):
        np.testing.assert_array_equal(got, expected)
        assert got.dtype == expected.dtype


def test_a_line_without_a_product_is_no_product_on_either_path(histories, model):
    catalogue = model.stage1_.catalogue
    customer_id = _customers(histories, 1)[0]
    mine = _old_rows(histories, customer_id).reset_index(drop=True)
    known = code_lines(mine, catalogue)
    blank = mine.iloc[:1].assign(**{PRODUCT_ID: None})  # before the fix it became the last distinct product
    with_blank = pd.concat([mine, blank], ignore_index=True)
    _assert_same_lines(code_lines(with_blank, catalogue), known)
    _assert_same_lines(code_customer_lines(with_blank, customer_id, catalogue)[0], known)
