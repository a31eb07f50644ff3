"""Point-in-time customer features: exact values, defaults, leakage, parity and sharding."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features import schema as s
from features.customer import FEATURE_DEFAULTS, build_customer_features, feature_columns
from features.history import History
from features.labels import make_purchase_labels
from features.parallel import build_customer_features_sharded
from models.affinity import CategoryLayout
from models.names import PROPENSITY
from pipelines.profiles import build_reference
from pipelines.settings import load_settings
from pipelines.training.outcome import outcome_families
from tests.builders import customers_table, events_table, products_table, random_tables, transactions_table

TOP_CATEGORIES = 5

AS_OF = pd.Timestamp("2024-06-01")


@pytest.fixture(scope="module")
def three_customers() -> dict[str, pd.DataFrame]:
    """a buys every 30 days; b bought once and returned it; c only browses."""
    return {
        s.CUSTOMERS: customers_table(["a", "b", "c"], ["2024-01-01", "2024-01-01", "2024-05-01"]),
        s.PRODUCTS: products_table(),
        s.TRANSACTIONS: transactions_table(
            [
                ("o1", "a", "p1", 1, 10.0, "2024-03-02"),
                ("o2", "a", "p1", 2, 10.0, "2024-04-01"),
                ("o2", "a", "p3", 1, 40.0, "2024-04-01"),
                ("o3", "a", "lens", 1, 30.0, "2024-05-01"),
                ("o4", "b", "p3", 1, 40.0, "2024-01-10"),
                ("o5", "b", "p3", -1, 40.0, "2024-01-20"),
                # at and after as_of: never seen by the features
                ("o6", "a", "p1", 5, 10.0, "2024-06-01"),
                ("o7", "b", "p1", 5, 10.0, "2024-07-01"),
            ]
        ),
        s.EVENTS: events_table(
            [
                ("c", "2024-05-28", s.EVENT_SESSION_START, None, np.nan),
                ("c", "2024-05-29", s.EVENT_ADD_TO_CART, "p1", np.nan),
                ("c", "2024-05-30", s.EVENT_NPS_RESPONSE, None, 3.0),
                ("b", "2024-05-30", s.EVENT_SUPPORT_TICKET, None, 4.0),
                ("b", "2024-06-01", s.EVENT_SUPPORT_TICKET, None, 5.0),
            ]
        ),
    }


def features_of(tables: dict[str, pd.DataFrame], as_of: pd.Timestamp = AS_OF) -> pd.DataFrame:
    reference = build_reference(tables, as_of, TOP_CATEGORIES)
    return build_customer_features(History.from_tables(tables), as_of, reference).set_index(s.CUSTOMER_ID)


def test_exact_values_for_hand_built_customers(three_customers):
    features = features_of(three_customers)
    a, b = features.loc["a"], features.loc["b"]
    assert a[s.DAYS_SINCE_LAST_PURCHASE] == pytest.approx(31.0)
    assert a[s.DAYS_SINCE_FIRST_PURCHASE] == pytest.approx(91.0)
    assert a[s.ORDERS_COUNT_TOTAL] == 3
    assert a[s.orders_count(30)] == 0 and a[s.orders_count(90)] == 2
    assert a[s.spend_sum(90)] == pytest.approx(90.0)  # 20 + 40 + 30
    assert a[s.GAP_MEAN_DAYS] == pytest.approx(30.0)
    assert a[s.OVERDUE_RATIO] == pytest.approx(31.0 / 30.0)
    assert a[s.ITEMS_PER_ORDER_MEAN] == pytest.approx(5 / 3)
    assert a[s.category_share("shirts")] == pytest.approx(0.5)
    assert a[s.DAYS_UNTIL_REPLENISHMENT] == pytest.approx(30.0 - 31.0)
    assert a[s.FAVOURITE_CATEGORY] == "shirts"
    assert b[s.RETURN_SHARE] == pytest.approx(1.0)
    assert b[s.SUPPORT_TICKETS_90D] == 1  # the ticket at as_of is not counted
    assert b[s.SUPPORT_SEVERITY_MAX_90D] == 4


def test_customer_with_events_only_gets_a_prospect_row_with_defaults(three_customers):
    c = features_of(three_customers).loc["c"]
    assert c[s.ORDERS_COUNT_TOTAL] == 0
    assert c[s.LIFECYCLE_STAGE] == "prospect"
    assert c[s.RFM_SEGMENT] == "Prospect"
    assert c[s.GAP_MEAN_DAYS] == FEATURE_DEFAULTS[s.GAP_MEAN_DAYS]
    assert c[s.DAYS_SINCE_LAST_PURCHASE] == c[s.TENURE_DAYS] == pytest.approx(31.0)
    assert c[s.NPS_LATEST] == 3 and c[s.windowed("cart_adds", 7)] == 1
    assert c[s.windowed(s.ABANDONED_CARTS, 7)] == 1


def test_customers_who_appear_only_at_or_after_as_of_have_no_row(three_customers):
    late = {**three_customers, s.CUSTOMERS: customers_table(["a", "b", "c", "z"], ["2024-01-01"] * 3 + ["2024-06-01"])}
    assert "z" not in features_of(late).index


def test_numeric_features_never_missing_on_random_histories():
    tables = random_tables(seed=3)
    features = features_of(tables, pd.Timestamp("2024-03-01"))
    numeric = features[feature_columns(features.reset_index())]
    assert len(numeric.columns) > 60
    assert not numeric.isna().any().any()


def _records_at_or_after(as_of: pd.Timestamp, seed: int, n: int) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    times = [as_of + pd.Timedelta(hours=int(h)) for h in rng.integers(0, 2000, n)]
    times[0] = as_of  # exactly at the cutoff is the future too
    customers = rng.choice(["c000", "c001", "c002", "c999"], n)
    return {
        s.TRANSACTIONS: transactions_table(
            (f"late{i}", customers[i], "p1", int(rng.integers(-1, 3)) or 1, 10.0, times[i]) for i in range(n)
        ),
        s.EVENTS: events_table((customers[i], times[i], s.EVENT_NPS_RESPONSE, None, 0.0) for i in range(n)),
    }


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    as_of_day=st.integers(30, 700),
    n_late=st.integers(1, 20),
    drop_share=st.floats(0.0, 1.0),
)
def test_records_at_or_after_as_of_never_change_features(seed, as_of_day, n_late, drop_share):
    """Adding, removing or changing any record at or after as_of leaves every row unchanged."""
    tables = random_tables(seed, n_customers=12)
    as_of = pd.Timestamp("2023-01-01") + pd.Timedelta(days=as_of_day)
    reference = build_reference(tables, as_of, TOP_CATEGORIES)
    before = build_customer_features(History.from_tables(tables), as_of, reference)

    late = _records_at_or_after(as_of, seed, n_late)
    changed = {}
    for name in (s.TRANSACTIONS, s.EVENTS):
        frame = tables[name]
        future = frame[s.TIMESTAMP] >= as_of
        rng = np.random.default_rng(seed + 1)
        dropped = future & (rng.random(len(frame)) < drop_share)
        kept = frame[~dropped].copy()
        # change what is left in the future: quantities, values, timestamps (still in the future)
        still_future = kept[s.TIMESTAMP] >= as_of
        kept.loc[still_future, s.TIMESTAMP] = kept.loc[still_future, s.TIMESTAMP] + pd.Timedelta(days=3)
        changed[name] = pd.concat([kept, late[name]], ignore_index=True)
    changed_tables = {**tables, **changed}
    after = build_customer_features(History.from_tables(changed_tables), as_of, reference)
    pd.testing.assert_frame_equal(before, after)


@pytest.mark.parametrize("seed", [1, 2])
def test_a_customer_alone_gets_the_same_row_as_in_bulk(seed):
    tables = random_tables(seed)
    as_of = pd.Timestamp("2023-12-01")
    reference = build_reference(tables, as_of, TOP_CATEGORIES)
    history = History.from_tables(tables)
    bulk = build_customer_features(history, as_of, reference).set_index(s.CUSTOMER_ID)
    for customer_id in bulk.index:
        alone = build_customer_features(history.for_customers([customer_id]), as_of, reference)
        pd.testing.assert_frame_equal(alone.set_index(s.CUSTOMER_ID), bulk.loc[[customer_id]], check_names=False)


def test_any_subset_and_the_sharded_build_give_the_same_rows():
    tables = random_tables(seed=7, n_customers=60)
    as_of = pd.Timestamp("2023-10-15")
    reference = build_reference(tables, as_of, TOP_CATEGORIES)
    history = History.from_tables(tables)
    bulk = build_customer_features(history, as_of, reference)
    subset_ids = bulk[s.CUSTOMER_ID].sample(frac=0.4, random_state=0)
    subset = build_customer_features(history.for_customers(subset_ids), as_of, reference)
    expected = bulk[bulk[s.CUSTOMER_ID].isin(subset_ids)].reset_index(drop=True)
    pd.testing.assert_frame_equal(subset, expected)
    sharded = build_customer_features_sharded(history, as_of, reference, n_jobs=2)
    pd.testing.assert_frame_equal(sharded, bulk)


def test_feature_columns_do_not_depend_on_which_categories_were_popular_at_the_cutoff():
    """Training stacks cutoffs and scores later ones: the columns must be the same at all of them."""
    tables = random_tables(seed=4)
    early, late = pd.Timestamp("2023-03-01"), pd.Timestamp("2024-06-01")
    transactions = tables[s.TRANSACTIONS]
    # before the early cutoff only shirts sell, so the most bought categories differ between the two
    shirts_only = transactions[s.PRODUCT_ID].isin(["p1", "p2"]) | (transactions[s.TIMESTAMP] >= early)
    tables = {**tables, s.TRANSACTIONS: transactions[shirts_only]}
    columns = []
    for as_of in (early, late):
        reference = build_reference(tables, as_of, 1)
        columns.append(list(build_customer_features(History.from_tables(tables), as_of, reference).columns))
    assert columns[0] == columns[1]
    assert s.category_share("lenses") in columns[0]


def _tables_with_categories(categories: list[str], purchases: list[tuple[str, str]]) -> dict[str, pd.DataFrame]:
    """products_table() with its four products recategorised; purchases: (customer_id, product_id)."""
    products = products_table().assign(**{s.CATEGORY: pd.array(categories, dtype="str")})
    customer_ids = sorted({customer_id for customer_id, _ in purchases})
    return {
        s.CUSTOMERS: customers_table(customer_ids, ["2024-01-01"] * len(customer_ids)),
        s.PRODUCTS: products,
        s.TRANSACTIONS: transactions_table(
            (f"o{i}", customer_id, product_id, 1, 10.0, "2024-05-01")
            for i, (customer_id, product_id) in enumerate(purchases)
        ),
        s.EVENTS: events_table([]),
    }


def test_categories_with_the_same_slug_get_their_own_share_columns():
    """'Pet Food' and 'pet-food' both slug to 'pet_food': neither share may overwrite the other."""
    tables = _tables_with_categories(
        ["Pet Food", "pet-food", "shoes", "lenses"],
        [("only_pet_food", "p1"), ("only_pet_dash_food", "p2"), ("both", "p1"), ("both", "p2"), ("both", "p2")],
    )
    reference = build_reference(tables, AS_OF, TOP_CATEGORIES)
    features = build_customer_features(History.from_tables(tables), AS_OF, reference).set_index(s.CUSTOMER_ID)
    assert len(features.filter(regex=r"^category_share_pet_food").columns) == 2
    pet_food = s.category_share("Pet Food", reference.categories)
    pet_dash_food = s.category_share("pet-food", reference.categories)

    assert pet_food != pet_dash_food
    assert {pet_food, pet_dash_food} <= set(features.columns)
    assert features.loc["only_pet_food", [pet_food, pet_dash_food]].tolist() == [1.0, 0.0]
    assert features.loc["only_pet_dash_food", [pet_food, pet_dash_food]].tolist() == [0.0, 1.0]
    assert features.loc["both", pet_food] == pytest.approx(1 / 3)
    assert features.loc["both", pet_dash_food] == pytest.approx(2 / 3)
    # categories that clash with nothing keep the names trained models were fitted on
    assert {"category_share_shoes", "category_share_lenses", "category_share_unknown"} <= set(features.columns)


def test_clashing_categories_get_their_own_propensity_labels_outputs_and_share_inputs():
    tables = _tables_with_categories(
        ["Pet Food", "pet-food", "shoes", "lenses"], [("only_pet_food", "p1"), ("only_pet_dash_food", "p2")]
    )
    reference = build_reference(tables, AS_OF, TOP_CATEGORIES)
    features = build_customer_features(History.from_tables(tables), AS_OF, reference)
    family = outcome_families(load_settings(), tables, ("Pet Food", "pet-food"))[PROPENSITY]
    # two outputs, each with its own label, each fed by its own category's share column
    layout = CategoryLayout.of(feature_columns(features), family.categories, reference.categories)
    assert len(set(layout.outputs)) == 2 and len(set(family.category_labels)) == 2
    shares = [layout.feature_names[i] for i in layout.share_positions]
    assert shares == [s.category_share(c, reference.categories) for c in ("Pet Food", "pet-food")]
    before = pd.Timestamp("2024-04-15")  # the purchases are on 2024-05-01
    labels = make_purchase_labels(
        tables[s.TRANSACTIONS], features[s.CUSTOMER_ID], before, 60, ("Pet Food", "pet-food"), tables[s.PRODUCTS]
    ).set_index(s.CUSTOMER_ID)
    pet_food, pet_dash_food = (s.category_purchase_label(c, reference.categories) for c in ("Pet Food", "pet-food"))
    assert pet_food != pet_dash_food and {pet_food, pet_dash_food} <= set(labels.columns)
    assert labels.loc["only_pet_food", [pet_food, pet_dash_food]].tolist() == [1, 0]
    assert labels.loc["only_pet_dash_food", [pet_food, pet_dash_food]].tolist() == [0, 1]
    # the service names the outputs the same way from the stored reference tables
    assert s.category_purchase_probability("pet-food", reference.categories) in layout.outputs


def test_column_parts_change_only_clashing_names_whatever_their_order():
    names = ["Pet Food", "pet-food", "pet_food", "Shoes", "lenses"]
    parts = s.column_parts(names)

    assert parts == s.column_parts(reversed(names))
    assert len(set(parts.values())) == len(names)
    # the name spelled as its slug keeps the slug; a non-clashing name keeps its slug however spelled
    assert parts["pet_food"] == "pet_food" and parts["Shoes"] == "shoes" and parts["lenses"] == "lenses"
    assert parts["Pet Food"].startswith("pet_food_") and parts["pet-food"].startswith("pet_food_")
    # labels and probabilities of a category use the same part as its share column
    assert s.category_purchase_probability("Pet Food", names) == f"purchase_probability_{parts['Pet Food']}"
    assert s.category_purchase_label("pet-food", names) == f"purchased_{parts['pet-food']}"
    assert s.category_share("Shoes") == s.category_share("Shoes", names) == "category_share_shoes"


def test_categories_that_cannot_be_told_apart_fail_the_reference_build_naming_both():
    spelled_like_a_suffixed_part = s.column_parts(["Pet Food", "pet-food"])["Pet Food"]
    tables = _tables_with_categories(["Pet Food", "pet-food", spelled_like_a_suffixed_part, "lenses"], [("a", "p1")])
    with pytest.raises(ValueError, match=rf"products table.*'Pet Food'.*'{spelled_like_a_suffixed_part}'"):
        build_reference(tables, AS_OF, TOP_CATEGORIES)
