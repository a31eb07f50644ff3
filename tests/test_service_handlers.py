"""Tier 1 of the service tests: the handler logic (`service.scorer.Scorer`) with small fitted models.

`service_workspace` (tests/conftest.py, `tests.workspace`; also used by the HTTP and server tiers)
fits small churn, propensity and recommender models on the generated 1,000-customer data, registers
them as champions in a temp MLflow store, and materialises the profiles into a temp SQLite store,
once per session. `register_champions` copies some of those champions into a store of their own: a
registry where the other models were never trained.
"""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features import schema as s
from features.customer import build_customer_features
from features.history import History
from models.due import build_due_products
from models.explanations import GroupedContributions, describe_feature, group_of
from models.names import CHURN, CLV, PROPENSITY, RECOMMENDER
from models.recommender import RecommendationRules
from pipelines import registry
from pipelines.errors import UserError
from pipelines.score import score_features
from pipelines.store.base import PROFILES_AS_OF_KEY
from service.errors import RequestError
from service.loading import ServiceSettings, build_scorer
from service.schemas import DueAnswer, ProfileAnswer
from service.scorer import RISK_TIERS, VALUE_ANSWER_COLUMNS, Scorer, risk_tier
from tests.workspace import in_population, lapsing_customer, purchase, register_champions, train_hint


@pytest.fixture
def scorer(service_workspace, tmp_path):
    store_path = service_workspace.copy_store(tmp_path / "profiles.sqlite")
    settings = ServiceSettings.from_env(service_workspace.environment(store_path, SCORING_MAX_BATCH="50"))
    scorer = build_scorer(settings)
    yield scorer
    scorer.store.close()


def scorer_on(workspace, mlflow_store: Path, root: Path):
    """A Scorer on its own copy of the profile store and on the given MLflow store."""
    store_path = workspace.copy_store(root / "profiles.sqlite")
    environment = {**workspace.environment(store_path), "SCORING_MLFLOW_STORE": str(mlflow_store)}
    return build_scorer(ServiceSettings.from_env(environment))


@pytest.fixture(scope="module")
def recommender_only(service_workspace, tmp_path_factory):
    root = tmp_path_factory.mktemp("recommender-only")
    scorer = scorer_on(service_workspace, register_champions(service_workspace, root / "mlruns", [RECOMMENDER]), root)
    yield scorer
    scorer.store.close()


@pytest.fixture(scope="module")
def churn_only(service_workspace, tmp_path_factory):
    root = tmp_path_factory.mktemp("churn-only")
    scorer = scorer_on(service_workspace, register_champions(service_workspace, root / "mlruns", [CHURN]), root)
    yield scorer
    scorer.store.close()


# ---------------------------------------------------------------------------
# Pure helpers
# ---------------------------------------------------------------------------
def _boosters_within(value, seen: set[int]) -> list:
    """Every LightGBM booster reachable from `value` through attributes, dicts and lists."""
    import lightgbm

    if id(value) in seen or isinstance(value, str | bytes | int | float | np.ndarray | pd.DataFrame):
        return []
    seen.add(id(value))
    if isinstance(value, lightgbm.Booster):
        return [value]
    children = value.values() if isinstance(value, dict) else value if isinstance(value, list | tuple) else ()
    if hasattr(value, "__dict__") and not isinstance(value, type):
        children = [*children, *vars(value).values()]
    return [booster for child in children for booster in _boosters_within(child, seen)]


def test_every_served_booster_predicts_on_one_thread(scorer):
    # OpenMP threads per one-row request cost milliseconds and spin against the other processes (the
    # recommender chooses its threads per call itself)
    models = scorer.models
    boosters = _boosters_within([models.churn, models.propensity, models.clv], set())
    assert len(boosters) >= 3  # churn, propensity and its category scorer (and the value model's, if it has any)
    for booster in boosters:
        assert booster.predict.keywords == {"num_threads": 1}


def test_risk_tiers_cover_every_probability():
    assert risk_tier(0.0) == "low"
    assert risk_tier(1.0) == "high"
    assert [risk_tier(floor) for floor, _ in RISK_TIERS] == [name for _, name in RISK_TIERS]


# ---------------------------------------------------------------------------
# Scores
# ---------------------------------------------------------------------------
def test_churn_matches_the_batch_model_and_gives_raw_contributions(scorer, service_workspace):
    ids = in_population(service_workspace)[s.CUSTOMER_ID].head(20).tolist()
    answer = scorer.churn(ids)["results"]
    assert [r[s.CUSTOMER_ID] for r in answer] == ids
    frame = service_workspace.profiles.set_index(s.CUSTOMER_ID).loc[ids].reset_index()
    expected = scorer.models.churn.predict_frame(frame)[s.CHURN_PROBABILITY].to_numpy()
    assert [r[s.CHURN_PROBABILITY] for r in answer] == pytest.approx(expected, rel=1e-9)
    first = answer[0]
    assert first["known_customer"] is True
    assert first["model_version"] == "1"
    assert first["risk_tier"] == risk_tier(first[s.CHURN_PROBABILITY])
    assert len(first["contributions"]) == 5
    assert all(set(item) == {"feature", "column", "value", "impact"} for item in first["contributions"])
    assert first["contributions"][0]["feature"] == describe_feature(first["contributions"][0]["column"])
    impacts = [abs(item["impact"]) for item in first["contributions"]]
    assert impacts == sorted(impacts, reverse=True)
    # every customer's contributions are their own: their values, their 5 largest SHAP contributions
    model = scorer.models.churn
    contributions = model.classifiers[model.primary_output].contributions(model.matrix(frame))
    for row, result in enumerate(answer):
        columns = [model.feature_names.index(item["column"]) for item in result["contributions"]]
        assert [item["impact"] for item in result["contributions"]] == pytest.approx(contributions[row, columns])
        assert sorted(np.abs(contributions[row]))[-5:][::-1] == pytest.approx(np.abs(contributions[row, columns]))
        values = [np.nan if item["value"] is None else item["value"] for item in result["contributions"]]
        assert values == pytest.approx(
            frame.loc[row, [item["column"] for item in result["contributions"]]].tolist(), nan_ok=True
        )


def test_churn_reasons_are_themes_whose_words_agree_with_their_effect(scorer, service_workspace):
    ids = in_population(service_workspace)[s.CUSTOMER_ID].head(30).tolist()
    answer = scorer.churn(ids)["results"]
    frame = service_workspace.profiles.set_index(s.CUSTOMER_ID).loc[ids].reset_index()
    model = scorer.models.churn
    contributions = model.contributions_matrix(model.matrix(frame))
    grouped = GroupedContributions.of(model.feature_names)
    sums = grouped.sums(contributions)
    compared = 0
    for row, result in enumerate(answer):
        reasons = result["reasons"]
        assert 1 <= len(reasons) <= 3
        by_group = dict(zip(grouped.groups, sums[row], strict=True))
        # the themes with the largest summed effect, largest first, each with its own sum
        assert [r["group"] for r in reasons] == sorted(by_group, key=lambda g: -abs(by_group[g]))[: len(reasons)]
        for reason in reasons:
            assert reason["impact"] == pytest.approx(by_group[reason["group"]])
            assert reason["direction"] == ("raises" if reason["impact"] > 0 else "lowers")
            assert reason["text"].startswith(f"{reason['group'].capitalize()} {reason['direction']} the churn risk")
            lead = model.feature_names.index(reason["column"])
            assert np.sign(contributions[row, lead]) == np.sign(reason["impact"])  # told by a feature pushing that way
            assert group_of(reason["column"]) == reason["group"]
            if reason["typical"] is not None:
                compared += 1
                assert "customers like them" in reason["text"]
    assert compared > 0  # the segment medians were found for these customers


def test_unknown_customers_get_a_cold_start_answer_not_an_error(scorer):
    churn_answer = scorer.churn(["nobody"])["results"][0]
    assert churn_answer["known_customer"] is False
    assert 0 < churn_answer[s.CHURN_PROBABILITY] < 1
    assert churn_answer["reasons"] == []
    propensity_answer = scorer.propensity(["nobody"])["results"][0]
    assert propensity_answer["known_customer"] is False
    assert 0 < propensity_answer[s.PURCHASE_PROBABILITY] < 1
    recommended = scorer.recommend("nobody", k=5)
    assert recommended["known_customer"] is False
    assert len(recommended["items"]) == 5
    profile = scorer.profile("nobody")
    assert profile["known_customer"] is False and profile["features"] == {}


def test_customers_outside_the_churn_population_get_no_churn_score(scorer, service_workspace):
    profiles = service_workspace.profiles
    outside = profiles[profiles[s.ORDERS_COUNT_TOTAL] == 0][s.CUSTOMER_ID]
    if outside.empty:
        pytest.skip("every generated customer bought")
    answer = scorer.churn([outside.iloc[0]])["results"][0]
    assert answer["known_customer"] is True
    assert answer[s.CHURN_PROBABILITY] is None and answer["risk_tier"] == "not_applicable"


def test_propensity_lists_categories_most_likely_first(scorer, service_workspace):
    answer = scorer.propensity([service_workspace.profiles[s.CUSTOMER_ID].iloc[0]])["results"][0]
    probabilities = [item["probability"] for item in answer["top_categories"]]
    assert probabilities and probabilities == sorted(probabilities, reverse=True)
    categories = set(service_workspace.tables[s.PRODUCTS][s.CATEGORY])
    assert {item["category"] for item in answer["top_categories"]} <= categories


def test_propensity_gives_every_category_the_same_probability_as_the_batch_and_the_training_rows(
    scorer, service_workspace
):
    ids = service_workspace.profiles[s.CUSTOMER_ID].head(30).tolist()
    answer = scorer.propensity(ids)["results"]
    model = scorer.models.propensity
    categories = model.category_scorer.categories
    # training scores the feature rows as built (predict_frame); the batch through score_features;
    # the service from the stored rows: one conversion to (customer, category) rows for all three
    rows = service_workspace.profiles.set_index(s.CUSTOMER_ID).loc[ids].reset_index()
    training = model.predict_frame(rows)
    batch = score_features(rows, {PROPENSITY: model}, 365)
    for i, result in enumerate(answer):
        assert set(result["category_probabilities"]) == set(categories)
        for category, output in zip(categories, model.category_scorer.outputs, strict=True):
            assert result["category_probabilities"][category] == pytest.approx(training[output].iloc[i], rel=1e-9)
            assert batch[output].iloc[i] == pytest.approx(training[output].iloc[i], rel=1e-12)
        top = [item["category"] for item in result["top_categories"]]
        assert top == batch[s.TOP_CATEGORIES].iloc[i]
        assert len(top) == model.category_scorer.top_k == 5
        assert all(0.0 <= item["probability"] <= 1.0 for item in result["top_categories"])


def test_propensity_answers_an_unknown_customer_with_the_average_customer_s_categories(scorer):
    answer = scorer.propensity(["nobody-we-know"])["results"][0]
    assert answer["known_customer"] is False
    assert 0.0 < answer[s.PURCHASE_PROBABILITY] < 1.0
    categories = scorer.models.propensity.category_scorer.categories
    assert set(answer["category_probabilities"]) == set(categories)
    top = answer["top_categories"]
    assert (
        len(top) == 5
        and [item["probability"] for item in top] == sorted(answer["category_probabilities"].values(), reverse=True)[:5]
    )
    # the base rates: the mean over the stored customers, so every probability is strictly inside (0, 1)
    assert all(0.0 < p < 1.0 for p in answer["category_probabilities"].values())


def test_batches_above_the_limit_are_refused(scorer):
    with pytest.raises(RequestError) as refused:
        scorer.churn([f"c{i}" for i in range(51)])
    assert refused.value.status == 413 and refused.value.field == "customer_ids"


# ---------------------------------------------------------------------------
# Recommendations
# ---------------------------------------------------------------------------
def test_recommend_respects_categories_and_names_bad_ones(scorer, service_workspace):
    customer = lapsing_customer(service_workspace)
    products = service_workspace.tables[s.PRODUCTS].set_index(s.PRODUCT_ID)[s.CATEGORY]
    category = products.iloc[0]
    answer = scorer.recommend(customer, k=4, rules=RecommendationRules(include_categories=[category]))
    assert answer["known_customer"] is True and answer["model_version"] == "1"
    assert 0 < len(answer["items"]) <= 4
    assert {products[item["product_id"]] for item in answer["items"]} == {category}
    with pytest.raises(RequestError) as refused:
        scorer.recommend(customer, rules=RecommendationRules(exclude_categories=["no such category"]))
    assert refused.value.field == "exclude_categories"


def test_similar_items_and_unknown_products(scorer, service_workspace):
    product = service_workspace.tables[s.TRANSACTIONS][s.PRODUCT_ID].value_counts().index[0]
    answer = scorer.similar_items(product, 3)
    assert answer["product_id"] == product and len(answer["items"]) == 3
    assert product not in {item["product_id"] for item in answer["items"]}
    with pytest.raises(RequestError) as refused:
        scorer.similar_items("no-such-product")
    assert refused.value.status == 404 and refused.value.field == "product_id"


# ---------------------------------------------------------------------------
# Events and profiles
# ---------------------------------------------------------------------------
def test_an_accepted_purchase_rebuilds_the_profile_and_lowers_churn(scorer, service_workspace):
    customer = lapsing_customer(service_workspace)
    product = str(service_workspace.tables[s.PRODUCTS][s.PRODUCT_ID].iloc[0])
    before = scorer.churn([customer])["results"][0][s.CHURN_PROBABILITY]
    profile_before = scorer.profile(customer)
    when = service_workspace.as_of - pd.Timedelta(hours=2)
    answer = scorer.events({"transactions": [purchase(customer, product, when)]})
    assert answer["accepted"] == 1 and answer["rejected"] == []
    after = scorer.churn([customer])["results"][0][s.CHURN_PROBABILITY]
    assert after < before
    profile_after = scorer.profile(customer)
    assert profile_after["features"][s.ORDERS_COUNT_TOTAL] == profile_before["features"][s.ORDERS_COUNT_TOTAL] + 1
    assert profile_after["features"][s.DAYS_SINCE_LAST_PURCHASE] < 1
    # the same order line again is a duplicate: a retried call adds nothing
    again = scorer.events({"transactions": [purchase(customer, product, when)]})
    assert (again["accepted"], again["duplicates"], again["rejected"]) == (0, 1, [])


def test_events_reject_bad_rows_with_reasons_and_keep_the_good_ones(scorer, service_workspace):
    customer = lapsing_customer(service_workspace)
    when = (service_workspace.as_of - pd.Timedelta(hours=1)).isoformat()
    good = {s.CUSTOMER_ID: customer, s.TIMESTAMP: when, s.EVENT_TYPE: "session_start"}
    bad_type = {s.CUSTOMER_ID: customer, s.TIMESTAMP: when, s.EVENT_TYPE: "teleport"}
    bad_product = purchase(customer, "no-such-product", service_workspace.as_of - pd.Timedelta(hours=1), "live-2")
    answer = scorer.events({"events": [good, bad_type], "transactions": [bad_product]})
    assert answer["accepted"] == 1
    rejected = {(r["table"], r["index"]): r["reason"] for r in answer["rejected"]}
    assert set(rejected) == {(s.EVENTS, 1), (s.TRANSACTIONS, 0)}
    assert s.EVENT_TYPE in rejected[(s.EVENTS, 1)]
    assert s.PRODUCT_ID in rejected[(s.TRANSACTIONS, 0)]
    # a row alone that lacks columns is rejected like a row beside good ones, not a refused request
    alone = scorer.events({"events": [{s.CUSTOMER_ID: customer}]})
    assert alone["accepted"] == 0 and alone["rejected"][0]["index"] == 0
    assert f"{s.TIMESTAMP}: missing" in alone["rejected"][0]["reason"]
    with pytest.raises(RequestError) as refused:
        scorer.events({})
    assert refused.value.field == "body"


def test_a_new_customer_becomes_known_through_events(scorer, service_workspace):
    product = str(service_workspace.tables[s.PRODUCTS][s.PRODUCT_ID].iloc[0])
    when = service_workspace.as_of - pd.Timedelta(hours=3)
    signup = {s.CUSTOMER_ID: "new-1", s.SIGNUP_DATE: (when - pd.Timedelta(days=1)).isoformat(), s.REGION: "north"}
    answer = scorer.events({"customers": [signup], "transactions": [purchase("new-1", product, when, "new-order")]})
    assert answer["accepted"] == 2 and answer["customers_updated"] == ["new-1"]
    churn_answer = scorer.churn(["new-1"])["results"][0]
    assert churn_answer["known_customer"] is True and churn_answer[s.CHURN_PROBABILITY] is not None
    profile = scorer.profile("new-1")
    assert profile["features"][s.REGION] == "north"
    assert profile["features"][s.ORDERS_COUNT_TOTAL] == 1
    assert profile["recommendations"]
    # and a customer seen only in an event is known too
    scorer.events({"events": [{s.CUSTOMER_ID: "new-2", s.TIMESTAMP: when.isoformat(), s.EVENT_TYPE: "search"}]})
    assert scorer.propensity(["new-2"])["results"][0]["known_customer"] is True


def test_profile_holds_features_segments_scores_and_recommendations(scorer, service_workspace):
    customer = lapsing_customer(service_workspace)
    profile = scorer.profile(customer)
    expected = service_workspace.profiles.set_index(s.CUSTOMER_ID).loc[customer]
    assert profile["known_customer"] is True
    assert pd.Timestamp(profile[s.AS_OF]) == service_workspace.as_of
    assert profile[s.RFM_SEGMENT] == expected[s.RFM_SEGMENT]
    assert profile[s.LIFECYCLE_STAGE] == expected[s.LIFECYCLE_STAGE]
    assert profile["features"][s.SPEND_SUM_TOTAL] == pytest.approx(expected[s.SPEND_SUM_TOTAL])
    assert set(profile["scores"]) >= {s.CHURN_PROBABILITY, s.PURCHASE_PROBABILITY, "top_categories"}
    assert len(profile["recommendations"]) == 5
    assert np.isfinite(profile["scores"][s.PURCHASE_PROBABILITY])


def test_clv_matches_the_batch_model_with_dates_and_reasons_and_nulls_for_who_never_bought(scorer, service_workspace):
    profiles = service_workspace.profiles
    buyers = profiles.loc[profiles[s.PURCHASE_DAYS_TOTAL] > 1, s.CUSTOMER_ID].head(3).tolist()
    prospect = profiles.loc[profiles[s.PURCHASE_DAYS_TOTAL] == 0, s.CUSTOMER_ID].iloc[0]
    answer = scorer.clv([*buyers, prospect, "nobody"])["results"]
    expected = scorer.models.clv.predict_frame(profiles.set_index(s.CUSTOMER_ID).loc[buyers].reset_index())
    for result, (_, row) in zip(answer[:3], expected.iterrows(), strict=False):
        assert result["known_customer"] is True and result["model_version"] == "1"
        for column in (s.EXPECTED_ORDERS, s.P_ACTIVE, s.NEXT_PURCHASE_DAYS):
            assert result[column] == pytest.approx(row[column])
        assert result[s.CLV_LOW] <= result[s.CLV] <= result[s.CLV_HIGH]
        assert result[s.NEXT_PURCHASE_DATE] == row[s.NEXT_PURCHASE_DATE].date().isoformat()
        assert result["horizon_days"] == 365
        assert result["reasons"][0].startswith("bought on ") and "likely still a customer" in result["reasons"][1]
    never, unknown = answer[3], answer[4]
    assert never["known_customer"] is True and never[s.CLV] is None
    assert never["reasons"] == ["no purchase yet: nothing to extrapolate from"]
    assert unknown["known_customer"] is False and unknown[s.CLV] is None and unknown["reasons"] == []
    profile = ProfileAnswer.model_validate(scorer.profile(buyers[0]))
    assert profile.scores.clv == pytest.approx(answer[0][s.CLV]) and profile.scores.value_reasons


def test_a_purchase_sent_to_events_moves_the_customers_value_at_once(scorer, service_workspace):
    customer = lapsing_customer(service_workspace)
    product = str(service_workspace.tables[s.PRODUCTS][s.PRODUCT_ID].iloc[0])
    before = scorer.clv([customer])["results"][0]
    when = service_workspace.as_of - pd.Timedelta(hours=2)
    assert scorer.events({"transactions": [purchase(customer, product, when)]})["accepted"] == 1
    after = scorer.clv([customer])["results"][0]
    assert after[s.P_ACTIVE] > before[s.P_ACTIVE] and after[s.EXPECTED_ORDERS] > before[s.EXPECTED_ORDERS]


def test_concurrent_events_lose_nothing(scorer, service_workspace):
    customers = in_population(service_workspace)[s.CUSTOMER_ID].head(4).tolist()
    product = str(service_workspace.tables[s.PRODUCTS][s.PRODUCT_ID].iloc[0])
    when = service_workspace.as_of - pd.Timedelta(hours=1)
    before = {c: scorer.profile(c)["features"][s.ORDERS_COUNT_TOTAL] for c in customers}
    calls = [
        {"transactions": [purchase(customer, product, when, f"burst-{customer}-{n}")]}
        for customer in customers
        for n in range(3)
    ]
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(scorer.events, calls))
    assert all(answer["accepted"] == 1 for answer in answers)
    for customer in customers:
        # three new orders each, every one in the stored history and in the rebuilt profile
        assert scorer.profile(customer)["features"][s.ORDERS_COUNT_TOTAL] == before[customer] + 3
        stored = scorer.store.history(customer)[s.TRANSACTIONS]
        assert stored[s.ORDER_ID].str.startswith(f"burst-{customer}-").sum() == 3


def test_two_workers_on_one_store_lose_no_event_and_store_a_repeated_line_once(service_workspace, tmp_path):
    # two Scorers, each with its own store object on the same file: what two worker processes have
    store_path = service_workspace.copy_store(tmp_path / "profiles.sqlite")
    settings = ServiceSettings.from_env(service_workspace.environment(store_path))
    workers = [build_scorer(settings), build_scorer(settings)]
    customer = lapsing_customer(service_workspace)
    product = str(service_workspace.tables[s.PRODUCTS][s.PRODUCT_ID].iloc[0])
    when = service_workspace.as_of - pd.Timedelta(hours=1)
    orders_before = workers[0].profile(customer)["features"][s.ORDERS_COUNT_TOTAL]
    calls = [(workers[n % 2], {"transactions": [purchase(customer, product, when, f"two-{n}")]}) for n in range(6)]
    # the same order line, retried at both workers at once
    calls += [(worker, {"transactions": [purchase(customer, product, when, "retried")]}) for worker in workers]
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda call: call[0].events(call[1]), calls))

    assert [answer["accepted"] for answer in answers[:6]] == [1] * 6
    assert sorted(answer["accepted"] for answer in answers[6:]) == [0, 1]
    assert sorted(answer["duplicates"] for answer in answers[6:]) == [0, 1]
    assert not any(answer["rejected"] for answer in answers)
    store = workers[0].store
    stored = store.history(customer)[s.TRANSACTIONS]
    sent = {f"two-{n}" for n in range(6)} | {"retried"}
    assert sorted(order for order in stored[s.ORDER_ID] if order in sent) == sorted(sent)  # each exactly once
    # the stored profile is the one a rebuild from the full stored history gives: no update was lost
    profile = store.get_profiles([customer])
    assert profile[s.ORDERS_COUNT_TOTAL].iloc[0] == orders_before + 7
    state = workers[0].state
    history = History.from_tables(store.history(customer))
    rebuilt = build_customer_features(history, store.get_profile(customer).as_of, state.reference, state.windows)
    pd.testing.assert_frame_equal(profile, rebuilt[profile.columns])
    for worker in workers:
        worker.store.close()


# ---------------------------------------------------------------------------
# A registry holding only some champions
# ---------------------------------------------------------------------------
def test_a_recommender_alone_is_served_and_the_outcome_endpoints_say_how_to_train(recommender_only, service_workspace):
    scorer = recommender_only
    assert scorer.models.missing == [CHURN, PROPENSITY, CLV]
    assert scorer.models.versions == {RECOMMENDER: "1"} and scorer.base_rates == {}
    for call, model_name in ((scorer.churn, CHURN), (scorer.propensity, PROPENSITY), (scorer.clv, CLV)):
        with pytest.raises(RequestError) as refused:
            call(["nobody"])
        assert refused.value.status == 503
        assert refused.value.as_dict() == {"error": f"customer_ids: {train_hint(model_name)}", "field": "customer_ids"}
    customer = lapsing_customer(service_workspace)
    assert len(scorer.recommend(customer, k=3)["items"]) == 3

    profile = scorer.profile(customer)
    ProfileAnswer.model_validate(profile)  # still the wire contract
    assert profile["known_customer"] is True and profile[s.RFM_SEGMENT]
    assert profile["scores"] == {
        s.CHURN_PROBABILITY: None,
        "risk_tier": "not_applicable",
        "churn_reasons": [],
        s.PURCHASE_PROBABILITY: None,
        "top_categories": [],
        **dict.fromkeys(VALUE_ANSWER_COLUMNS),
        "value_reasons": [],
    }
    assert len(profile["recommendations"]) == 5
    assert profile["model_versions"] == {RECOMMENDER: "1"}


def test_churn_alone_is_served_with_its_cold_start_and_the_rest_answer_503(churn_only, service_workspace):
    scorer = churn_only
    assert scorer.models.missing == [PROPENSITY, RECOMMENDER, CLV]
    assert set(scorer.base_rates) == {s.CHURN_PROBABILITY}
    customer = lapsing_customer(service_workspace)
    known, unknown = scorer.churn([customer, "nobody"])["results"]
    assert known["known_customer"] is True and len(known["contributions"]) == 5 and known["reasons"]
    assert unknown[s.CHURN_PROBABILITY] == pytest.approx(scorer.base_rates[s.CHURN_PROBABILITY])
    for call, model_name, field in (
        (lambda: scorer.propensity([customer]), PROPENSITY, "customer_ids"),
        (lambda: scorer.recommend(customer), RECOMMENDER, "customer_id"),
        (lambda: scorer.similar_items("P00001"), RECOMMENDER, "product_id"),
    ):
        with pytest.raises(RequestError) as refused:
            call()
        assert refused.value.status == 503
        assert refused.value.as_dict() == {"error": f"{field}: {train_hint(model_name)}", "field": field}

    profile = scorer.profile(customer)
    ProfileAnswer.model_validate(profile)
    assert profile["scores"][s.CHURN_PROBABILITY] == pytest.approx(known[s.CHURN_PROBABILITY])
    assert profile["scores"][s.PURCHASE_PROBABILITY] is None and profile["scores"]["top_categories"] == []
    assert profile["recommendations"] == []


def test_with_no_champion_at_all_the_service_refuses_to_start(service_workspace, tmp_path):
    empty = tmp_path / "mlruns"
    registry.use_experiment(empty)
    with pytest.raises(UserError) as refused:
        scorer_on(service_workspace, empty, tmp_path)
    message = str(refused.value)
    assert "make train" in message and CHURN in message and RECOMMENDER in message
    assert len(message.splitlines()) == 1


def test_a_retried_body_stores_nothing_new_and_counts_its_rows_as_duplicates(scorer, service_workspace):
    customer = lapsing_customer(service_workspace)
    product = str(service_workspace.tables[s.PRODUCTS][s.PRODUCT_ID].iloc[4])
    when = service_workspace.as_of - pd.Timedelta(hours=5)
    session = {s.CUSTOMER_ID: customer, s.TIMESTAMP: when.isoformat(), s.EVENT_TYPE: "session_start"}
    cart = {s.CUSTOMER_ID: customer, s.TIMESTAMP: when.isoformat(), s.EVENT_TYPE: "add_to_cart", s.PRODUCT_ID: product}
    nps = {s.CUSTOMER_ID: customer, s.TIMESTAMP: when.isoformat(), s.EVENT_TYPE: "nps_response", s.VALUE: 9}
    body = {"events": [session, cart, nps], "transactions": [purchase(customer, product, when, "retry-order")]}

    first = scorer.events(body)
    assert (first["accepted"], first["duplicates"], first["rejected"]) == (4, 0, [])
    stored_before = {name: len(frame) for name, frame in scorer.store.history(customer).items()}
    profile_before = scorer.profile(customer)
    churn_before = scorer.churn([customer])["results"][0][s.CHURN_PROBABILITY]

    again = scorer.events(body)
    assert (again["accepted"], again["duplicates"], again["rejected"]) == (0, 4, [])
    assert {name: len(frame) for name, frame in scorer.store.history(customer).items()} == stored_before
    assert scorer.profile(customer)["features"] == profile_before["features"]
    assert scorer.churn([customer])["results"][0][s.CHURN_PROBABILITY] == churn_before
    # a repeat inside one body counts once; a changed value is a new event
    changed = {**nps, s.VALUE: 3}
    mixed = scorer.events({"events": [changed, changed, session]})
    assert (mixed["accepted"], mixed["duplicates"]) == (1, 2)


def test_an_event_id_makes_a_resent_event_a_duplicate_and_keeps_two_look_alike_events(scorer, service_workspace):
    customer = lapsing_customer(service_workspace)
    product = str(service_workspace.tables[s.PRODUCTS][s.PRODUCT_ID].iloc[2])
    when = service_workspace.as_of - pd.Timedelta(hours=6)
    view = {
        s.EVENT_ID: "view-7f3a",
        s.CUSTOMER_ID: customer,
        s.TIMESTAMP: when.isoformat(),
        s.EVENT_TYPE: "product_view",
        s.PRODUCT_ID: product,
    }

    def stored_events() -> pd.DataFrame:
        return scorer.store.history(customer)[s.EVENTS]

    assert scorer.events({"events": [view]})["accepted"] == 1
    before = len(stored_events())
    # the client rebuilt the event for its retry, with a new timestamp: the id says it is the same one
    resent = scorer.events({"events": [{**view, s.TIMESTAMP: (when + pd.Timedelta(seconds=3)).isoformat()}]})
    assert (resent["accepted"], resent["duplicates"], resent["rejected"]) == (0, 1, [])
    assert len(stored_events()) == before
    assert stored_events().loc[stored_events()[s.EVENT_ID] == "view-7f3a", s.TIMESTAMP].tolist() == [when]
    # two real views in the same second, told apart by their ids; without ids they would be one event
    later = (when + pd.Timedelta(minutes=1)).isoformat()
    twins = [{**view, s.EVENT_ID: f"view-twin-{n}", s.TIMESTAMP: later} for n in (1, 2)]
    both = scorer.events({"events": twins})
    assert (both["accepted"], both["duplicates"]) == (2, 0)
    no_ids = [{key: value for key, value in twin.items() if key != s.EVENT_ID} for twin in twins]
    one = scorer.events({"events": no_ids})
    assert (one["accepted"], one["duplicates"]) == (1, 1)
    assert len(stored_events()) == before + 3


def test_a_purchase_after_as_of_gives_its_customer_a_readable_as_of_and_leaves_the_stores(scorer, service_workspace):
    customer = lapsing_customer(service_workspace)
    product = str(service_workspace.tables[s.PRODUCTS][s.PRODUCT_ID].iloc[3])
    store_as_of = scorer.store.get_meta(PROFILES_AS_OF_KEY)
    when = scorer.state.as_of + pd.Timedelta(hours=10, milliseconds=250)  # after the materialised as_of
    answer = scorer.events({"transactions": [purchase(customer, product, when, "after-as-of")]})
    assert answer["accepted"] == 1
    # just after the purchase, to the whole second: it counts, and the time reads as a time
    expected = scorer.state.as_of + pd.Timedelta(hours=10, seconds=1)
    assert scorer.store.get_profile(customer).as_of == expected
    assert scorer.profile(customer)["as_of"] == expected.isoformat()
    assert scorer.store.get_meta(PROFILES_AS_OF_KEY) == store_as_of  # one customer does not move the store's


# ---------------------------------------------------------------------------
# /due: what a customer is due to buy next
# ---------------------------------------------------------------------------
def _due_customer(workspace) -> tuple[str, pd.DataFrame]:
    """A customer with something due within a year of the workspace's as_of, and everyone's due rows."""
    everyone = build_due_products(workspace.tables[s.TRANSACTIONS], workspace.tables[s.PRODUCTS], workspace.as_of, 365)
    replenishments = everyone[everyone[s.DUE_KIND] == s.DUE_REPLENISHMENT]
    return str(replenishments[s.CUSTOMER_ID].iloc[0]), everyone


def test_due_lists_what_the_batch_rule_gives_for_the_customer(scorer, service_workspace):
    customer, everyone = _due_customer(service_workspace)
    answer = scorer.due(customer, within_days=365)
    DueAnswer.model_validate(answer)  # the wire contract
    assert answer["known_customer"] is True and answer[s.AS_OF] == service_workspace.as_of.isoformat()
    expected = everyone[everyone[s.CUSTOMER_ID] == customer]
    assert [item[s.PRODUCT_ID] for item in answer["items"]] == expected[s.PRODUCT_ID].astype(str).tolist()
    assert [item[s.DUE_DATE] for item in answer["items"]] == [d.date().isoformat() for d in expected[s.DUE_DATE]]
    assert [item[s.DUE_PROBABILITY] for item in answer["items"]] == pytest.approx(expected[s.DUE_PROBABILITY].tolist())
    assert all(item[s.DUE_REASON] for item in answer["items"])
    dates = [item[s.DUE_DATE] for item in answer["items"]]
    assert dates == sorted(dates)  # soonest first
    assert len(scorer.due(customer, within_days=1)["items"]) <= len(answer["items"])


def test_a_purchase_sent_to_events_changes_the_due_list_at_once(scorer, service_workspace):
    customer, _ = _due_customer(service_workspace)
    before = scorer.due(customer, within_days=365)
    product = next(item[s.PRODUCT_ID] for item in before["items"] if item[s.DUE_KIND] == s.DUE_REPLENISHMENT)
    when = scorer.state.as_of + pd.Timedelta(hours=2)
    assert scorer.events({"transactions": [purchase(customer, product, when, "restocked")]})["accepted"] == 1
    after = scorer.due(customer, within_days=365)
    assert after[s.AS_OF] == (when + pd.Timedelta(seconds=1)).isoformat()  # counted from the new purchase
    assert after["items"] != before["items"]
    # the same rule as the batch over the history with the purchase, on the materialised product cycles
    history = scorer.store.history(customer, (s.TRANSACTIONS,))[s.TRANSACTIONS]
    assert (history[s.TIMESTAMP] == when).any()
    expected = build_due_products(
        history, None, pd.Timestamp(after[s.AS_OF]), 365, product_cycles=scorer.state.product_cycles
    )
    assert [(i[s.PRODUCT_ID], i[s.DUE_DATE]) for i in after["items"]] == [
        (str(p), d.date().isoformat()) for p, d in zip(expected[s.PRODUCT_ID], expected[s.DUE_DATE], strict=True)
    ]


def test_due_for_an_unknown_customer_is_empty_and_an_old_store_says_what_to_run(scorer):
    assert scorer.due("nobody") == {s.CUSTOMER_ID: "nobody", "known_customer": False, s.AS_OF: None, "items": []}
    without_cycles = Scorer(
        scorer.models, scorer.store, dataclasses.replace(scorer.state, product_cycles=None), max_batch=50
    )
    with pytest.raises(RequestError, match="pipelines.materialize") as raised:
        without_cycles.due("nobody")
    assert raised.value.status == 503
