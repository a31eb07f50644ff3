"""Due products: replenishment cycles and seasonal repeats, on hand-built frames and on generated data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features import schema as s
from models.due import (
    OUTPUT_COLUMNS,
    DueConfig,
    build_due_products,
    build_product_cycles,
    due_items,
    shrink_cycle,
)
from pipelines.simulation import TRUTH_REPLENISHMENT_PRODUCT_ID, generate_tables

AS_OF = pd.Timestamp("2025-07-01")
DAY = pd.Timedelta(days=1)

# product -> (category, replenishment_days); NaN: a durable good
CATALOGUE = {
    "FOOD": ("pet_food", 30.0),
    "LITTER": ("pet_food", 30.0),
    "TEA": ("tea", np.nan),
    "SOAP": ("beauty", 28.0),
    "SHIRT": ("shirts", np.nan),
    "TIE": ("shirts", np.nan),
    "LAMP": ("home", np.nan),
}


def make_products() -> pd.DataFrame:
    return pd.DataFrame(
        {
            s.PRODUCT_ID: list(CATALOGUE),
            s.CATEGORY: [category for category, _ in CATALOGUE.values()],
            s.PRICE: 10.0,
            s.REPLENISHMENT_DAYS: [days for _, days in CATALOGUE.values()],
        }
    )


def make_transactions(rows: list[tuple[str, str, pd.Timestamp, int]]) -> pd.DataFrame:
    """(customer, product, when, quantity) -> a transactions table, one order per row."""
    return pd.DataFrame(
        {
            s.ORDER_ID: [f"O{i}" for i in range(len(rows))],
            s.CUSTOMER_ID: [row[0] for row in rows],
            s.PRODUCT_ID: [row[1] for row in rows],
            s.QUANTITY: [row[3] for row in rows],
            s.UNIT_PRICE: 10.0,
            s.TIMESTAMP: pd.to_datetime([row[2] for row in rows]),
            s.CHANNEL: "web",
        }
    )


def every(customer: str, product: str, days: int, times: int, last: pd.Timestamp, quantity: int = 1) -> list:
    """`times` purchases `days` apart, the last one on `last`."""
    return [(customer, product, last - i * days * DAY, quantity) for i in range(times)]


def row_of(due: pd.DataFrame, customer: str, product: str, kind: str = s.DUE_REPLENISHMENT) -> pd.Series:
    rows = due[(due[s.CUSTOMER_ID] == customer) & (due[s.PRODUCT_ID] == product) & (due[s.DUE_KIND] == kind)]
    assert len(rows) == 1, f"expected one {kind} row for {customer}/{product}, got {len(rows)}"
    return rows.iloc[0]


def test_a_customer_on_a_28_day_cycle_last_seen_26_days_ago_is_due_in_two_days():
    transactions = make_transactions(every("A", "SOAP", 28, 6, AS_OF - 26 * DAY))
    due = build_due_products(transactions, make_products(), AS_OF)
    assert list(due.columns) == list(OUTPUT_COLUMNS)
    row = row_of(due, "A", "SOAP")
    assert abs((row[s.DUE_DATE] - (AS_OF + 2 * DAY)).days) <= 1
    assert row[s.DUE_LOW] <= row[s.DUE_DATE] <= row[s.DUE_HIGH]
    assert row[s.DUE_LOW] < AS_OF + 2 * DAY < row[s.DUE_HIGH]
    assert row[s.DUE_REASON] == "bought every 28 days, last 26 days ago"
    assert row[s.CATEGORY] == "beauty"
    assert row[s.EXPECTED_QUANTITY] == 1
    # due inside the 30-day window and regular: likely (the product's reorder share, (4 + 1) / (4 + 2)
    # from this one customer, times the chance of the next gap falling in the window)
    assert 0.6 < row[s.DUE_PROBABILITY] < 5 / 6


def test_shirts_bought_each_january_for_two_years_are_due_next_january():
    rows = [
        ("B", "SHIRT", pd.Timestamp("2024-01-10"), 5),
        ("B", "SHIRT", pd.Timestamp("2025-01-14"), 3),
        ("B", "TIE", pd.Timestamp("2025-01-14"), 2),
        ("B", "LAMP", pd.Timestamp("2024-06-01"), 1),  # other buying, in another category
    ]
    due = build_due_products(make_transactions(rows), make_products(), AS_OF)
    row = row_of(due, "B", "SHIRT", s.DUE_SEASONAL)
    assert row[s.CATEGORY] == "shirts"
    assert row[s.DUE_DATE].year == 2026 and row[s.DUE_DATE].month == 1
    assert row[s.DUE_LOW] <= row[s.DUE_DATE] <= row[s.DUE_HIGH]
    assert (row[s.DUE_HIGH] - row[s.DUE_LOW]).days >= 14  # at least +-7 days
    assert row[s.EXPECTED_QUANTITY] == 5  # five shirts each year
    assert row[s.DUE_REASON] == "bought 5 shirts each January for 2 years"
    # SHIRT (8 units in the windows) is the likely pick, not TIE (2); nothing else is seasonal
    assert (due[s.DUE_KIND] == s.DUE_SEASONAL).sum() == 1


@pytest.mark.parametrize(
    ("as_of", "bought_this_january", "due_year", "reason_starts"),
    [
        ("2025-01-20", False, 2025, "due now: "),  # in the season, not bought yet: due now
        ("2025-01-20", True, 2026, "bought"),  # already bought this season: next year's
        ("2024-12-01", False, 2025, "bought"),
    ],
)
def test_the_seasonal_due_date_is_the_next_season_not_over_and_not_yet_bought_in(
    as_of, bought_this_january, due_year, reason_starts
):
    rows = [
        ("B", "SHIRT", pd.Timestamp("2023-01-12"), 2),
        ("B", "SHIRT", pd.Timestamp("2024-01-12"), 2),
    ]
    if bought_this_january:
        rows.append(("B", "SHIRT", pd.Timestamp("2025-01-05"), 2))
    due = build_due_products(make_transactions(rows), make_products(), as_of)
    row = row_of(due, "B", "SHIRT", s.DUE_SEASONAL)
    assert row[s.DUE_DATE].year == due_year and row[s.DUE_DATE].month == 1
    assert row[s.DUE_HIGH] >= pd.Timestamp(as_of)
    assert row[s.DUE_REASON].startswith(reason_starts)


def test_a_category_bought_all_year_round_is_a_habit_not_a_season():
    # shirts every month for two and a half years: January holds no more than any other month
    rows = every("H", "SHIRT", 30, 30, AS_OF - 10 * DAY)
    due = build_due_products(make_transactions(rows), make_products(), AS_OF)
    assert not (due[s.DUE_KIND] == s.DUE_SEASONAL).any()
    # what rules it out is the chance test: without it every month would look like a season
    lax = build_due_products(make_transactions(rows), make_products(), AS_OF, config=DueConfig(max_seasonal_chance=1))
    assert (lax[s.DUE_KIND] == s.DUE_SEASONAL).sum() == 1


def test_a_single_purchase_of_a_consumable_is_due_a_catalogue_cycle_later_with_a_wider_interval():
    last = AS_OF - 10 * DAY
    rows = [("C", "FOOD", last, 1), *every("D", "FOOD", 30, 6, last)]
    due = build_due_products(make_transactions(rows), make_products(), AS_OF)
    once, regular = row_of(due, "C", "FOOD"), row_of(due, "D", "FOOD")
    assert once[s.DUE_DATE] == last + 30 * DAY
    assert regular[s.DUE_DATE] == last + 30 * DAY
    assert (once[s.DUE_HIGH] - once[s.DUE_LOW]) > 1.5 * (regular[s.DUE_HIGH] - regular[s.DUE_LOW])
    assert once[s.DUE_REASON] == "usually restocked every 30 days (never repeated yet), last 10 days ago"


def test_purchases_on_or_after_as_of_change_nothing():
    rows = [
        *every("A", "SOAP", 28, 6, AS_OF - 26 * DAY),
        ("B", "SHIRT", pd.Timestamp("2024-01-10"), 5),
        ("B", "SHIRT", pd.Timestamp("2025-01-14"), 5),
        ("C", "FOOD", AS_OF - 10 * DAY, 1),
    ]
    later = [
        ("A", "SOAP", AS_OF, 1),  # exactly at as_of
        ("A", "TEA", AS_OF + DAY, 2),
        ("B", "SHIRT", AS_OF + 3 * DAY, 1),
        ("C", "FOOD", AS_OF + 5 * DAY, 4),
        ("E", "FOOD", AS_OF + 2 * DAY, 1),  # a new customer
    ]
    products = make_products()
    before = build_due_products(make_transactions(rows), products, AS_OF)
    after = build_due_products(make_transactions(rows + later), products, AS_OF)
    assert len(before) >= 4
    pd.testing.assert_frame_equal(before, after)
    # and the product cycles too
    cycles_before = build_product_cycles(make_transactions(rows), products, AS_OF)
    cycles_after = build_product_cycles(make_transactions(rows + later), products, AS_OF)
    for name in ("typical_cycle_days", "gap_log_sd", "first_reorder_share", "reorder_share"):
        np.testing.assert_array_equal(getattr(cycles_before, name), getattr(cycles_after, name), err_msg=name)


def test_one_gap_lands_between_the_own_gap_and_the_catalogue_many_gaps_approach_the_own_gap():
    # exact shrinkage: (n * own + k * prior) / (n + k)
    assert shrink_cycle(20.0, 1, 30.0, 2.0) == pytest.approx(80 / 3)
    assert shrink_cycle(20.0, 12, 30.0, 2.0) == pytest.approx(300 / 14)
    assert shrink_cycle(np.nan, 0, 30.0, 2.0) == 30.0  # never repeated: the prior
    assert shrink_cycle(20.0, 3, np.nan, 2.0) == 20.0  # no prior: the own cycle
    assert np.isnan(shrink_cycle(np.nan, 0, np.nan, 2.0))

    last = AS_OF - 5 * DAY
    rows = [*every("F", "FOOD", 20, 2, last), *every("G", "LITTER", 20, 13, last)]
    due = build_due_products(make_transactions(rows), make_products(), AS_OF)
    one_gap = (row_of(due, "F", "FOOD")[s.DUE_DATE] - last).days
    many_gaps = (row_of(due, "G", "LITTER")[s.DUE_DATE] - last).days
    assert one_gap == 27  # 26.7: between 20 and 30
    assert many_gaps == 21  # 21.4: near 20
    assert (
        row_of(due, "F", "FOOD")[s.DUE_REASON] == "bought twice, 20 days apart (usually every 30 days), last 5 days ago"
    )


def test_within_days_keeps_what_falls_in_the_window_soonest_first_and_lapsed_pairs_are_dropped():
    rows = [
        *every("E", "FOOD", 30, 4, AS_OF - 20 * DAY),  # due in 10 days
        *every("E", "SOAP", 28, 4, AS_OF - 26 * DAY),  # due in 2 days
        *every("E", "TEA", 60, 4, AS_OF - 5 * DAY),  # due in 55 days
        *every("E", "LITTER", 30, 4, AS_OF - 45 * DAY),  # overdue by 15 days: kept, due now
        *every("E", "LAMP", 10, 4, AS_OF - 50 * DAY),  # overdue by 40 days, 4 cycles: lapsed
    ]
    transactions, products = make_transactions(rows), make_products()
    everything = build_due_products(transactions, products, AS_OF)
    assert everything[s.PRODUCT_ID].tolist() == ["LITTER", "SOAP", "FOOD", "TEA"]
    assert everything[s.DUE_DATE].is_monotonic_increasing
    overdue = row_of(everything, "E", "LITTER")
    assert overdue[s.DUE_REASON] == "overdue: bought every 30 days, last 45 days ago"
    assert overdue[s.DUE_DATE] == AS_OF - 15 * DAY

    soon = build_due_products(transactions, products, AS_OF, within_days=14)
    assert soon[s.PRODUCT_ID].tolist() == ["LITTER", "SOAP", "FOOD"]
    # the probability is for the query window: a wider window can only raise it
    wide = build_due_products(transactions, products, AS_OF, within_days=90)
    assert (
        wide.set_index(s.PRODUCT_ID)[s.DUE_PROBABILITY] >= everything.set_index(s.PRODUCT_ID)[s.DUE_PROBABILITY] - 1e-12
    ).all()

    with pytest.raises(ValueError, match="within_days"):
        build_due_products(transactions, products, AS_OF, within_days=0)


def test_rows_are_sorted_by_customer_then_due_date_and_nothing_is_due_without_purchases():
    rows = [*every("Z", "FOOD", 30, 3, AS_OF - 20 * DAY), *every("A", "SOAP", 28, 3, AS_OF - 2 * DAY)]
    due = build_due_products(make_transactions(rows), make_products(), AS_OF)
    assert due[s.CUSTOMER_ID].tolist() == ["A", "Z"]
    empty = build_due_products(make_transactions(rows), make_products(), pd.Timestamp("2020-01-01"))
    assert empty.empty and list(empty.columns) == list(OUTPUT_COLUMNS)


def test_one_customer_with_the_product_cycles_of_everyone_gets_their_rows_of_the_bulk_call():
    rows = [
        *every("A", "SOAP", 28, 6, AS_OF - 26 * DAY),
        ("B", "SHIRT", pd.Timestamp("2024-01-10"), 5),
        ("B", "SHIRT", pd.Timestamp("2025-01-14"), 5),
        ("C", "FOOD", AS_OF - 10 * DAY, 1),
        *every("D", "FOOD", 31, 6, AS_OF - 3 * DAY),
        *every("D", "TEA", 45, 3, AS_OF - 40 * DAY),
    ]
    transactions, products = make_transactions(rows), make_products()
    cycles = build_product_cycles(transactions, products, AS_OF)
    bulk = build_due_products(transactions, products, AS_OF)
    for customer in ("A", "B", "C", "D"):
        alone = build_due_products(
            transactions[transactions[s.CUSTOMER_ID] == customer], None, AS_OF, product_cycles=cycles
        )
        expected = bulk[bulk[s.CUSTOMER_ID] == customer].reset_index(drop=True)
        pd.testing.assert_frame_equal(alone, expected)
    with pytest.raises(ValueError, match="leak the future"):
        build_due_products(transactions, None, AS_OF - DAY, product_cycles=cycles)


def as_items(due: pd.DataFrame) -> list[dict]:
    """A frame's rows as the service answered them when it read the frame."""
    return [
        {
            s.PRODUCT_ID: str(row[s.PRODUCT_ID]),
            s.CATEGORY: str(row[s.CATEGORY]),
            s.DUE_DATE: row[s.DUE_DATE].date().isoformat(),
            s.DUE_LOW: row[s.DUE_LOW].date().isoformat(),
            s.DUE_HIGH: row[s.DUE_HIGH].date().isoformat(),
            s.DUE_PROBABILITY: float(row[s.DUE_PROBABILITY]),
            s.DUE_KIND: str(row[s.DUE_KIND]),
            s.EXPECTED_QUANTITY: float(row[s.EXPECTED_QUANTITY]),
            s.DUE_REASON: str(row[s.DUE_REASON]),
        }
        for row in due.to_dict("records")
    ]


def assert_items_are_the_frames_rows(transactions: pd.DataFrame, cycles, as_of: pd.Timestamp, customers) -> int:
    """due_items of each customer == their rows of the bulk frame, in order; how many rows were compared."""
    compared = 0
    for within in (30, None):
        bulk = build_due_products(transactions, None, as_of, within, product_cycles=cycles)
        for customer in customers:
            own = transactions[transactions[s.CUSTOMER_ID] == customer]
            expected = as_items(bulk[bulk[s.CUSTOMER_ID] == customer])
            items = due_items(own, as_of, within, cycles)
            assert [item[s.PRODUCT_ID] for item in items] == [item[s.PRODUCT_ID] for item in expected]
            for item, wanted in zip(items, expected, strict=True):
                assert item[s.DUE_PROBABILITY] == pytest.approx(wanted.pop(s.DUE_PROBABILITY), rel=1e-12, abs=1e-15)
                assert {k: v for k, v in item.items() if k != s.DUE_PROBABILITY} == wanted
            compared += len(items)
    return compared


def test_the_services_items_are_the_rows_of_the_frame_for_hand_built_customers():
    rows = [
        *every("A", "SOAP", 28, 6, AS_OF - 26 * DAY),  # replenishment on its own cycle
        ("B", "SHIRT", pd.Timestamp("2024-01-10"), 5),  # seasonal
        ("B", "SHIRT", pd.Timestamp("2025-01-14"), 5),
        ("B", "TIE", pd.Timestamp("2025-01-12"), 1),
        ("C", "FOOD", AS_OF - 10 * DAY, 1),  # a single purchase of a consumable
        *every("D", "FOOD", 31, 6, AS_OF - 3 * DAY),  # several rows: their order matters
        *every("D", "TEA", 45, 3, AS_OF - 40 * DAY),
        *every("D", "LITTER", 30, 2, AS_OF - 100 * DAY),  # overdue
        ("E", "LAMP", AS_OF - 5 * DAY, 1),  # nothing due
    ]
    transactions = make_transactions(rows)
    cycles = build_product_cycles(transactions, make_products(), AS_OF)
    assert assert_items_are_the_frames_rows(transactions, cycles, AS_OF, "ABCDE") >= 6


def test_the_services_items_are_the_rows_of_the_frame_on_generated_customers():
    tables, _ = generate_tables(300, 7)
    as_of = pd.Timestamp("2025-03-01")
    transactions = tables[s.TRANSACTIONS]
    cycles = build_product_cycles(transactions, tables[s.PRODUCTS], as_of)
    customers = sorted(transactions[s.CUSTOMER_ID].unique())[:120]
    kinds = build_due_products(transactions, None, as_of, product_cycles=cycles)[s.DUE_KIND]
    assert set(kinds) == {s.DUE_REPLENISHMENT, s.DUE_SEASONAL}
    assert assert_items_are_the_frames_rows(transactions, cycles, as_of, customers) >= 100


# ---------------------------------------------------------------------------
# Measurement on generated data: predicted due dates against the true replenishers' next purchases.
# ---------------------------------------------------------------------------
MEASURE_CUSTOMERS = 800
MEASURE_SEED = 20_240_601
MEASURE_AS_OF = pd.Timestamp("2025-06-01")
# Measured 0.892 here (120 replenishers with a later purchase), 0.84-0.90 over seven other seeds; last
# purchase + the catalogue's replenishment_days gives 0.81-0.90 on the same seeds.
WITHIN_7_DAYS_FLOOR = 0.75


def test_true_replenishers_are_predicted_within_a_week_of_their_next_purchase():
    tables, truth = generate_tables(MEASURE_CUSTOMERS, MEASURE_SEED)
    transactions = tables[s.TRANSACTIONS]
    history = transactions[transactions[s.TIMESTAMP] < MEASURE_AS_OF]
    due = build_due_products(history, tables[s.PRODUCTS], MEASURE_AS_OF)

    replenishers = truth["customers_truth"].dropna(subset=[TRUTH_REPLENISHMENT_PRODUCT_ID])
    pairs = replenishers.rename(columns={TRUTH_REPLENISHMENT_PRODUCT_ID: s.PRODUCT_ID})[[s.CUSTOMER_ID, s.PRODUCT_ID]]
    predicted = pairs.merge(due[due[s.DUE_KIND] == s.DUE_REPLENISHMENT], on=[s.CUSTOMER_ID, s.PRODUCT_ID])
    later = transactions[(transactions[s.TIMESTAMP] >= MEASURE_AS_OF) & s.is_purchase(transactions[s.QUANTITY])]
    next_purchase = later.groupby([s.CUSTOMER_ID, s.PRODUCT_ID])[s.TIMESTAMP].min().dt.normalize().rename("next")
    checked = predicted.join(next_purchase, on=[s.CUSTOMER_ID, s.PRODUCT_ID]).dropna(subset=["next"])
    error_days = (checked["next"] - checked[s.DUE_DATE]).dt.days
    share = float((error_days.abs() <= 7).mean())
    print(f"\ntrue replenishers with a later purchase: {len(checked)}; due date within +-7 days: {share:.3f}")
    assert len(checked) >= 60
    assert share >= WITHIN_7_DAYS_FLOOR
