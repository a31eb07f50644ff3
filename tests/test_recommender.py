"""The two-stage recommender on generated data (out-of-time) and on its serving contract."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from features.labels import make_product_sets
from features.schema import (
    CATEGORY,
    CUSTOMER_ID,
    PRODUCT_ID,
    PRODUCTS_BOUGHT,
    QUANTITY,
    RECOMMENDATION_RANK,
    RECOMMENDATION_REASON,
    RECOMMENDATION_SCORE,
    REPLENISHMENT_DAYS,
    TIMESTAMP,
)
from models.item_models import ItemKNNRecommender, PopularityRecommender, build_interaction_matrix
from models.ranking_metrics import NDCG, evaluate_ranking, metric_key
from models.recommender import (
    BASELINE_BUY_AGAIN,
    BASELINE_POPULARITY,
    BASELINES,
    REASON_RESTOCK,
    SIMILARITY,
    RecommendationRules,
    TwoStageRecommender,
    recommend_in_parallel,
)
from models.recommender.catalogue import build_catalogue, code_lines
from models.recommender.config import CandidateConfig
from models.recommender.sources import propose_recent, recent_similarity
from models.recommender.stage1 import fit_stage1
from pipelines.simulation import TRUTH_GROUP_ID, TRUTH_PREFERRED_CATEGORIES

HORIZON_DAYS = 30
N_TRAIN_CUTOFFS = 8
NDCG_10 = metric_key(NDCG, 10)
# Measured on the 1,000-customer fixture (test as_of 2025-12-01, 229 evaluated customers):
# ranker 0.562, EASE 0.150, item-kNN 0.136, popularity 0.057 (8 monthly training cutoffs). The margin
# leaves more than half of the measured gain (0.505) as headroom.
MIN_NDCG_GAIN_OVER_POPULARITY = 0.2


@pytest.fixture(scope="module")
def test_as_of(generated_data) -> pd.Timestamp:
    return generated_data.end.normalize() + pd.Timedelta(days=1) - 31 * pd.Timedelta(days=1)


@pytest.fixture(scope="module")
def train_cutoffs(test_as_of) -> list[pd.Timestamp]:
    return [test_as_of - i * HORIZON_DAYS * pd.Timedelta(days=1) for i in range(1, N_TRAIN_CUTOFFS + 1)]


@pytest.fixture(scope="module")
def fitted(generated_data, train_cutoffs) -> TwoStageRecommender:
    return TwoStageRecommender().fit(
        generated_data.transactions, generated_data.products, train_cutoffs, horizon_days=HORIZON_DAYS
    )


@pytest.fixture(scope="module")
def test_window(generated_data, test_as_of):
    """Customers with history and a purchase in the test window, with their relevant items.

    Relevant: products bought in [as_of, as_of + 30 days), minus durables already bought before as_of.
    """
    transactions, products = generated_data.transactions, generated_data.products
    history = transactions[(transactions[TIMESTAMP] < test_as_of) & (transactions[QUANTITY] > 0)]
    consumables = set(products.loc[products[REPLENISHMENT_DAYS] > 0, PRODUCT_ID])
    bought_before = history.groupby(CUSTOMER_ID)[PRODUCT_ID].agg(set)
    labels = make_product_sets(transactions, test_as_of, HORIZON_DAYS)
    labels = labels[labels[CUSTOMER_ID].isin(bought_before.index)]
    relevant = [
        {p for p in products_bought if p in consumables or p not in bought_before[customer]}
        for customer, products_bought in zip(labels[CUSTOMER_ID], labels[PRODUCTS_BOUGHT], strict=True)
    ]
    return history, labels[CUSTOMER_ID].tolist(), relevant


def _lists(recommendations: pd.DataFrame, customers: list[str]) -> list[list[str]]:
    grouped = recommendations.groupby(CUSTOMER_ID)[PRODUCT_ID].agg(list)
    return [grouped.get(customer, []) for customer in customers]


def _bought_before(recommendations: pd.DataFrame, bought: pd.Series) -> list[bool]:
    pairs = zip(recommendations[CUSTOMER_ID], recommendations[PRODUCT_ID], strict=True)
    return [product in bought[customer] for customer, product in pairs]


def _baseline_ndcg(model, history, products, customers, relevant) -> float:
    built = build_interaction_matrix(history, item_ids=np.sort(products[PRODUCT_ID].astype(object)))
    model.fit(built.matrix, built.user_ids, built.item_ids)
    items, _ = model.recommend(built.matrix[pd.Index(built.user_ids).get_indexer(customers)], k=10)
    lists = [[item for item in row if item is not None] for row in items]
    return evaluate_ranking(lists, relevant, (10,))[NDCG_10]


def test_ranker_beats_popularity_widely_and_matches_item_knn(generated_data, fitted, test_as_of, test_window):
    history, customers, relevant = test_window
    assert fitted.as_of_ == test_as_of
    assert sum(1 for items in relevant if items) > 100  # enough customers for the comparison to mean something
    ranker = evaluate_ranking(_lists(fitted.recommend(customers, k=10), customers), relevant, (10,))[NDCG_10]
    popularity = _baseline_ndcg(PopularityRecommender(), history, generated_data.products, customers, relevant)
    knn = _baseline_ndcg(ItemKNNRecommender(n_neighbours=50), history, generated_data.products, customers, relevant)
    assert ranker >= popularity + MIN_NDCG_GAIN_OVER_POPULARITY, (ranker, popularity)
    assert ranker >= knn, (ranker, knn)


def test_recommend_excludes_purchased_items_when_asked(generated_data, fitted, test_window):
    history, customers, _ = test_window
    customers = customers[:50]
    bought = history.groupby(CUSTOMER_ID)[PRODUCT_ID].agg(set)

    strict = fitted.recommend(customers, k=10, exclude_purchased=True, include_restock=False)
    assert not any(_bought_before(strict, bought))

    with_restock = fitted.recommend(customers, k=10, exclude_purchased=True)
    repeated = _bought_before(with_restock, bought)
    assert any(repeated)  # consumables come back when due...
    assert (with_restock.loc[repeated, RECOMMENDATION_REASON] == REASON_RESTOCK).all()  # ...and only as restocks

    everything = fitted.recommend(customers, k=10, exclude_purchased=False)
    assert any(_bought_before(everything, bought))


def test_unknown_customer_gets_popular_items(fitted, test_window):
    history, customers, _ = test_window
    recent = history[history[TIMESTAMP] >= fitted.as_of_ - 90 * pd.Timedelta(days=1)]
    most_bought = recent.groupby(PRODUCT_ID)[CUSTOMER_ID].nunique().sort_values(ascending=False)

    recommendations = fitted.recommend(["nobody-knows-me", customers[0]], k=5)
    cold = recommendations[recommendations[CUSTOMER_ID] == "nobody-knows-me"]
    assert cold[RECOMMENDATION_RANK].tolist() == [1, 2, 3, 4, 5]
    assert set(cold[PRODUCT_ID]) <= set(most_bought.index[:10])
    assert cold[RECOMMENDATION_REASON].str.startswith("popular in ").all()
    assert recommendations[CUSTOMER_ID].iloc[0] == "nobody-knows-me"  # customers come back in the order asked


def test_every_item_has_a_reason_and_lists_are_ranked(fitted, test_window):
    _, customers, _ = test_window
    recommendations = fitted.recommend(customers, k=10)
    reasons = recommendations[RECOMMENDATION_REASON]
    assert reasons.map(lambda reason: isinstance(reason, str) and len(reason) > 0).all()
    assert recommendations.groupby(CUSTOMER_ID).size().max() <= 10
    assert not recommendations.duplicated([CUSTOMER_ID, PRODUCT_ID]).any()
    for _, rows in recommendations.groupby(CUSTOMER_ID):
        assert rows[RECOMMENDATION_RANK].tolist() == list(range(1, len(rows) + 1))
        assert rows[RECOMMENDATION_SCORE].is_monotonic_decreasing


def test_same_inputs_give_the_same_lists(generated_data, fitted, train_cutoffs, test_window):
    _, customers, _ = test_window
    again = TwoStageRecommender().fit(
        generated_data.transactions, generated_data.products, train_cutoffs, horizon_days=HORIZON_DAYS
    )
    pd.testing.assert_frame_equal(fitted.recommend(customers, k=10), again.recommend(customers, k=10))


def test_fit_without_any_label_window_raises(generated_data):
    with pytest.raises(ValueError):
        TwoStageRecommender().fit(
            generated_data.transactions, generated_data.products, [pd.Timestamp("2030-01-01")], horizon_days=30
        )


# ---------------------------------------------------------------------------
# What the generated data hides, and the query-time rules.
# ---------------------------------------------------------------------------
# Measured on the fixture: every bought-together group mate is in its products' top 5 (1.0), and 74%
# of recommended products fall in the customer's three preferred categories out of 12 (chance: 25%).
MIN_GROUP_MATES_IN_TOP_5 = 0.8
MIN_SHARE_IN_PREFERRED_CATEGORIES = 0.5


def _category_of(generated_data) -> pd.Series:
    return generated_data.products.set_index(PRODUCT_ID)[CATEGORY]


def test_similar_items_recover_the_bought_together_groups(generated_data, fitted):
    recovered = []
    for _, group in generated_data.product_groups.groupby(TRUTH_GROUP_ID):
        members = set(group[PRODUCT_ID])
        for product in members:
            similar = fitted.similar_items(product, k=5)
            recovered.append(len(set(similar[PRODUCT_ID]) & (members - {product})) / (len(members) - 1))
            assert product not in set(similar[PRODUCT_ID])
            assert similar[SIMILARITY].is_monotonic_decreasing
    assert len(recovered) >= 20
    assert np.mean(recovered) >= MIN_GROUP_MATES_IN_TOP_5, np.mean(recovered)


def test_bought_together_completes_a_cart_and_names_the_anchor(generated_data, fitted):
    groups = generated_data.product_groups.groupby(TRUTH_GROUP_ID)[PRODUCT_ID].agg(sorted)
    members = next(group for group in groups if len(group) >= 3)
    cart, missing = members[:-1], members[-1]
    suggestions = fitted.bought_together(cart, k=5)
    assert not set(cart) & set(suggestions[PRODUCT_ID])
    assert missing in set(suggestions[PRODUCT_ID].head(len(members)))
    reason = suggestions.loc[suggestions[PRODUCT_ID] == missing, RECOMMENDATION_REASON].iloc[0]
    assert reason in {f"bought together with {product}" for product in cart}


def test_similar_items_of_an_unknown_product_is_an_error(fitted):
    with pytest.raises(KeyError, match="no-such-product"):
        fitted.similar_items("no-such-product")


def test_recommendations_follow_the_customers_preferred_categories(generated_data, fitted, test_window):
    _, customers, _ = test_window
    recommendations = fitted.recommend(customers, k=10)
    preferred = generated_data.customers_truth.set_index(CUSTOMER_ID)[TRUTH_PREFERRED_CATEGORIES].str.split("|")
    categories = _category_of(generated_data).reindex(recommendations[PRODUCT_ID]).to_numpy()
    pairs = zip(recommendations[CUSTOMER_ID], categories, strict=True)
    in_preferred = [category in preferred[customer] for customer, category in pairs]
    assert np.mean(in_preferred) >= MIN_SHARE_IN_PREFERRED_CATEGORIES, np.mean(in_preferred)


def test_category_rules_include_and_exclude(generated_data, fitted, test_window):
    history, customers, _ = test_window
    category_of = _category_of(generated_data)
    wanted = sorted(category_of.unique())[:2]
    customers = [*customers[:30], "nobody-knows-me"]

    included = fitted.recommend(customers, k=10, include_categories=wanted)
    assert set(category_of[included[PRODUCT_ID]]) <= set(wanted)
    # lists are full whenever the categories hold 10 products the customer never bought
    in_wanted = set(category_of.index[category_of.isin(wanted)])
    bought = history.groupby(CUSTOMER_ID)[PRODUCT_ID].agg(set)
    never_bought = [len(in_wanted - bought.get(customer, set())) for customer in customers]
    sizes = included.groupby(CUSTOMER_ID).size().reindex(customers, fill_value=0).to_numpy()
    assert (sizes >= np.minimum(10, never_bought)).all()

    excluded = fitted.recommend(customers, k=10, exclude_categories=wanted)
    assert not set(category_of[excluded[PRODUCT_ID]]) & set(wanted)

    with pytest.raises(ValueError, match="no-such-category"):
        fitted.recommend(customers, k=10, include_categories=["no-such-category"])


def test_excluded_products_never_come_back(fitted, test_window):
    _, customers, _ = test_window
    customers = [*customers[:30], "nobody-knows-me"]
    before = fitted.recommend(customers, k=10)
    banned = before[PRODUCT_ID].value_counts().index[:5].tolist()
    after = fitted.recommend(customers, k=10, exclude_product_ids=[*banned, "not-in-the-catalogue"])
    assert not set(after[PRODUCT_ID]) & set(banned)
    assert after.groupby(CUSTOMER_ID).size().min() >= before.groupby(CUSTOMER_ID).size().min() - 5


def test_at_most_n_items_per_category(generated_data, fitted, test_window):
    _, customers, _ = test_window
    customers = [*customers[:50], "nobody-knows-me"]
    category_of = _category_of(generated_data)
    free = fitted.recommend(customers, k=10)
    capped = fitted.recommend(customers, k=10, max_per_category=2)

    def per_category(frame: pd.DataFrame):
        return frame.assign(c=category_of[frame[PRODUCT_ID]].to_numpy()).groupby([CUSTOMER_ID, "c"])

    assert per_category(free).size().max() > 2  # without the rule, lists do repeat categories
    assert per_category(capped).size().max() <= 2
    assert (capped.groupby(CUSTOMER_ID).size() == 10).all()


def test_cold_start_gives_the_popular_items_of_the_asked_categories(generated_data, fitted):
    category_of = _category_of(generated_data)
    category = sorted(category_of.unique())[0]
    cold = fitted.recommend(["nobody-knows-me"], k=5, include_categories=[category])
    assert (category_of[cold[PRODUCT_ID]] == category).all()
    assert cold[RECOMMENDATION_SCORE].is_monotonic_decreasing
    assert (cold[RECOMMENDATION_REASON] == f"popular in {category}").all()


def test_a_new_product_enters_through_its_category(generated_data, train_cutoffs):
    products = generated_data.products
    category = products[CATEGORY].iloc[0]
    newcomer = products.iloc[[0]].assign(**{PRODUCT_ID: "P-NEW"})
    model = TwoStageRecommender().fit(
        generated_data.transactions, pd.concat([products, newcomer], ignore_index=True), train_cutoffs, HORIZON_DAYS
    )
    in_category = int((products[CATEGORY] == category).sum()) + 1
    cold = model.recommend(["nobody-knows-me"], k=in_category, include_categories=[category])
    assert "P-NEW" in set(cold[PRODUCT_ID])
    similar = model.similar_items("P-NEW", k=3)
    assert len(similar) == 3 and (similar[RECOMMENDATION_REASON] == f"popular in {category}").all()


def test_one_customer_alone_gets_the_same_list_as_in_a_batch(fitted, test_window):
    _, customers, _ = test_window
    batch = fitted.recommend(customers[:40], k=10, max_per_category=3)
    for customer in customers[:40:7]:
        alone = fitted.recommend([customer], k=10, max_per_category=3)
        expected = batch[batch[CUSTOMER_ID] == customer].reset_index(drop=True)
        pd.testing.assert_frame_equal(alone, expected)


def test_parallel_batch_gives_the_same_rows_as_one_call(fitted, test_window):
    _, customers, _ = test_window
    customers = [*customers[:60], "nobody-knows-me"]
    expected = fitted.recommend(customers, k=10, exclude_categories=["books"])
    in_parallel = recommend_in_parallel(fitted, customers, k=10, n_jobs=2, chunk_size=16, exclude_categories=["books"])
    pd.testing.assert_frame_equal(in_parallel, expected)


def test_lists_from_a_given_history_match_the_fit_and_follow_new_purchases(generated_data, fitted, test_window):
    transactions = generated_data.transactions
    _, customers, _ = test_window
    customer = customers[3]
    before_as_of = transactions[transactions[TIMESTAMP] < fitted.as_of_]
    pd.testing.assert_frame_equal(
        fitted.recommend_for_history(customer, before_as_of, as_of=fitted.as_of_, k=10),
        fitted.recommend([customer], k=10),
    )

    durable = set(generated_data.products.loc[generated_data.products[REPLENISHMENT_DAYS].isna(), PRODUCT_ID])
    listed = fitted.recommend([customer], k=10)
    bought_now = next(product for product in listed[PRODUCT_ID] if product in durable)
    purchase = before_as_of[before_as_of[CUSTOMER_ID] == customer].tail(1)
    purchase = purchase.assign(**{PRODUCT_ID: bought_now, TIMESTAMP: fitted.as_of_ + pd.Timedelta(hours=1)})
    after = fitted.recommend_for_history(customer, pd.concat([before_as_of, purchase], ignore_index=True), k=10)
    assert bought_now not in set(after[PRODUCT_ID])  # a durable just bought is not offered again

    newcomer = purchase.assign(**{CUSTOMER_ID: "brand-new"})
    first_list = fitted.recommend_for_history("brand-new", newcomer, k=10)
    assert len(first_list) == 10
    assert not first_list[RECOMMENDATION_REASON].str.startswith("popular in ").all()  # personal from one purchase


# ---------------------------------------------------------------------------
# The rules as one object, and the pickled model.
# ---------------------------------------------------------------------------
def _strict_rules(generated_data, banned: list[str]) -> dict:
    """Every rule away from its default, so a rule that got lost changes the lists."""
    categories = sorted(_category_of(generated_data).unique())
    return {
        "exclude_purchased": True,
        "include_restock": False,
        "include_categories": categories[:6],
        "exclude_categories": categories[5:6],
        "exclude_product_ids": banned,
        "max_per_category": 2,
    }


def test_a_rules_object_gives_the_same_lists_as_the_same_keywords(generated_data, fitted, test_window):
    _, customers, _ = test_window
    customers = [*customers[:40], "nobody-knows-me"]
    banned = fitted.recommend(customers, k=10)[PRODUCT_ID].value_counts().index[:3].tolist()
    values = _strict_rules(generated_data, banned)
    rules = RecommendationRules(**values)

    by_keywords = fitted.recommend(customers, k=10, **values)
    pd.testing.assert_frame_equal(fitted.recommend(customers, k=10, rules=rules), by_keywords)
    pd.testing.assert_frame_equal(fitted.recommend(customers, 10, rules), by_keywords)
    assert not by_keywords.equals(fitted.recommend(customers, k=10))  # the rules do change the lists
    assert not set(by_keywords[PRODUCT_ID]) & set(banned)

    in_parallel = recommend_in_parallel(fitted, customers, k=10, n_jobs=2, chunk_size=16, rules=rules)
    pd.testing.assert_frame_equal(in_parallel, by_keywords)
    history = generated_data.transactions[generated_data.transactions[TIMESTAMP] < fitted.as_of_]
    pd.testing.assert_frame_equal(
        fitted.recommend_for_history(customers[0], history, as_of=fitted.as_of_, k=10, rules=rules),
        fitted.recommend_for_history(customers[0], history, as_of=fitted.as_of_, k=10, **values),
    )


def test_rules_keep_the_old_defaults_and_cannot_change():
    assert RecommendationRules().model_dump() == {
        "exclude_purchased": True,
        "include_restock": True,
        "include_categories": None,
        "exclude_categories": None,
        "exclude_product_ids": None,
        "max_per_category": None,
    }
    rules = RecommendationRules(include_categories=["books", "toys"])
    assert rules.include_categories == ("books", "toys")  # stored as a tuple: the frozen object stays unchanged
    with pytest.raises(ValueError, match="frozen"):
        rules.max_per_category = 3
    with pytest.raises(ValueError, match="max_per_categories"):
        RecommendationRules(max_per_categories=3)


def test_every_rule_is_documented_for_the_service_schema():
    properties = RecommendationRules.model_json_schema()["properties"]
    assert list(properties) == [
        "exclude_purchased",
        "include_restock",
        "include_categories",
        "exclude_categories",
        "exclude_product_ids",
        "max_per_category",
    ]
    assert all(len(field.get("description", "")) > 10 for field in properties.values())
    assert properties["max_per_category"]["anyOf"][0] == {"minimum": 1, "type": "integer"}


def test_rules_and_rule_keywords_together_are_refused(fitted, test_window):
    _, customers, _ = test_window
    with pytest.raises(ValueError, match="not both.*max_per_category"):
        fitted.recommend(customers[:3], k=10, rules=RecommendationRules(), max_per_category=2)
    with pytest.raises(ValueError, match="not both"):
        recommend_in_parallel(fitted, customers[:3], rules=RecommendationRules(), exclude_purchased=False)


def test_an_unknown_rule_keyword_is_refused_by_name(fitted, test_window):
    _, customers, _ = test_window
    with pytest.raises(TypeError, match="'max_per_categories'"):
        fitted.recommend(customers[:3], k=10, max_per_categories=2)
    with pytest.raises(TypeError, match="'exclude_products'"):
        recommend_in_parallel(fitted, customers[:3], exclude_products=["P00001"])
    with pytest.raises(TypeError, match="RecommendationRules, got bool"):
        fitted.recommend(customers[:3], 10, False)  # the old positional exclude_purchased


def test_an_invalid_max_per_category_is_refused_in_one_line_naming_the_field(generated_data, fitted, test_window):
    _, customers, _ = test_window
    history = generated_data.transactions
    calls_and_messages = [
        (
            lambda: fitted.recommend(customers[:3], k=10, max_per_category=0),
            "invalid rule max_per_category=0: input should be greater than or equal to 1",
        ),
        (
            lambda: recommend_in_parallel(fitted, customers[:3], max_per_category=-1),
            "invalid rule max_per_category=-1: input should be greater than or equal to 1",
        ),
        (
            lambda: fitted.recommend_for_history(customers[0], history, max_per_category=2.5),
            "invalid rule max_per_category=2.5: input should be a valid integer, got a number with a fractional part",
        ),
    ]
    for call, message in calls_and_messages:
        with pytest.raises(ValueError) as refused:
            call()
        assert str(refused.value) == message
    with pytest.raises(ValueError, match="max_per_category"):
        RecommendationRules(max_per_category=0)


def test_a_pickled_model_names_its_classes_by_the_package_path(fitted, test_window):
    _, customers, _ = test_window
    stored = pickle.dumps(fitted)
    assert b"models.recommender" in stored
    assert b"models.recommender." not in stored  # no internal module: moving a class later keeps this loadable
    pd.testing.assert_frame_equal(
        pickle.loads(stored).recommend(customers[:20], k=10), fitted.recommend(customers[:20])
    )


@pytest.mark.parametrize("baseline", BASELINES)
def test_every_baseline_obeys_the_same_exclusion_rules_as_the_model(generated_data, fitted, test_window, baseline):
    history, customers, _ = test_window
    customers = customers[:40]
    bought = history.groupby(CUSTOMER_ID)[PRODUCT_ID].agg(set)
    durables = set(generated_data.products.loc[generated_data.products[REPLENISHMENT_DAYS].isna(), PRODUCT_ID])
    racer = fitted.as_baseline(baseline)
    lists = racer.recommend(customers, k=10)
    # never a durable the customer owns; a consumable they bought only as a restock
    owned = [
        product in bought[customer] for customer, product in zip(lists[CUSTOMER_ID], lists[PRODUCT_ID], strict=True)
    ]
    assert not any(product in durables for product, mine in zip(lists[PRODUCT_ID], owned, strict=True) if mine)
    assert (lists.loc[owned, RECOMMENDATION_REASON] == REASON_RESTOCK).all()
    assert not any(_bought_before(racer.recommend(customers, k=10, include_restock=False), bought))
    banned = lists[PRODUCT_ID].value_counts().index[:3].tolist()
    assert not set(racer.recommend(customers, k=10, exclude_product_ids=banned)[PRODUCT_ID]) & set(banned)
    assert lists.groupby(CUSTOMER_ID).size().eq(10).all()  # full lists, as the model gives
    # the same candidates and rules, a different order: the model's lists differ from the rule's
    assert _lists(lists, customers) != _lists(fitted.recommend(customers, k=10), customers)


def test_baselines_rank_by_their_rule(generated_data, fitted, test_window):
    _, customers, _ = test_window
    customer = customers[:1]
    popular = fitted.as_baseline(BASELINE_POPULARITY).recommend(customer, k=10)
    assert popular[RECOMMENDATION_SCORE].is_monotonic_decreasing
    again = fitted.as_baseline(BASELINE_BUY_AGAIN).recommend(customers[:40], k=10)
    restocks = again.assign(restock=again[RECOMMENDATION_REASON] == REASON_RESTOCK).groupby(CUSTOMER_ID)["restock"]
    assert restocks.any().sum() >= 10
    # own purchases first: in every list the restocks come before anything else
    assert restocks.apply(lambda flags: list(flags) == sorted(flags, reverse=True)).all()
    with pytest.raises(ValueError, match="unknown baseline 'oracle'"):
        fitted.as_baseline("oracle")


def test_the_recent_source_follows_the_latest_purchase_and_never_proposes_what_is_owned():
    # others buy A with X and B with Y; customer "c" bought A long ago and B yesterday
    rows = [(f"o{i}", pair, "2025-01-01") for i in range(10) for pair in ("A", "X")]
    rows += [(f"p{i}", pair, "2025-01-01") for i in range(10) for pair in ("B", "Y")]
    rows += [("c", "A", "2025-01-02"), ("c", "B", "2025-03-01")]
    transactions = pd.DataFrame(rows, columns=[CUSTOMER_ID, PRODUCT_ID, TIMESTAMP]).assign(**{QUANTITY: 1})
    transactions[TIMESTAMP] = pd.to_datetime(transactions[TIMESTAMP])
    products = pd.DataFrame({PRODUCT_ID: ["A", "B", "X", "Y"], CATEGORY: "all"})
    catalogue = build_catalogue(products)
    stage1 = fit_stage1(code_lines(transactions, catalogue), catalogue, pd.Timestamp("2025-03-02"), CandidateConfig())
    customer = stage1.codes_of(["c"])
    code = {product: catalogue.index.get_loc(product) for product in "ABXY"}

    similarity = recent_similarity(stage1, customer, half_life=1.0).toarray()[0]
    assert similarity[code["Y"]] == pytest.approx(2 * similarity[code["X"]])  # A is one purchase older: half
    flat = recent_similarity(stage1, customer, half_life=1e9).toarray()[0]
    assert flat[code["Y"]] == pytest.approx(flat[code["X"]])  # no decay: the two pairs are alike

    owned = stage1.user_items[customer]
    owner, item, score, rank = propose_recent(recent_similarity(stage1, customer, 1.0), owned, n=5)
    assert [catalogue.ids[i] for i in item] == ["Y", "X"] and list(rank) == [1.0, 2.0]
    assert (score > 0).all() and (owner == 0).all()
