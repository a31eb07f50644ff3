"""features.row_checks and check_rows: the pandas engine gives exactly what Great Expectations gives.

Both engines evaluate the rules of `features.expectations.table_rules` on the same check frame, so
on any batch they must accept the same rows, typed the same, and quarantine the same rows for the
same reasons. Great Expectations takes a moment per run, so the random batches are few and small.
"""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features import expectations, row_checks
from features import schema as s
from features.validation import GREAT_EXPECTATIONS, ValidationResult, check_rows, type_table, validate_tables
from tests.test_validate import BAD_ROWS, NOW, NUMBER_LIKE_TEXT, clean_tables, reasons_by_row, with_bad_rows

KNOWN_IDS = {
    s.CUSTOMERS: pd.Index(["C1", "C2"], dtype="str"),
    s.PRODUCTS: pd.Index(["P1", "P2"], dtype="str"),
}


def assert_same_result(fast: ValidationResult, slow: ValidationResult) -> None:
    assert list(fast.accepted) == list(slow.accepted)
    for name in slow.accepted:
        pd.testing.assert_frame_equal(fast.accepted[name], slow.accepted[name])
        pd.testing.assert_frame_equal(fast.quarantined[name], slow.quarantined[name])
        assert fast.report[name] == slow.report[name], name


def test_every_kind_of_bad_row_gets_the_same_verdict_from_both_engines():
    tables, expected = with_bad_rows(clean_tables(), BAD_ROWS)
    fast = check_rows(tables, NOW)
    assert_same_result(fast, validate_tables(tables, NOW, engine=GREAT_EXPECTATIONS))
    for name in tables:
        assert reasons_by_row(fast, name) == expected[name], name
    assert fast.gx_results == {}


def test_supplied_reference_ids_and_a_timezone_aware_now_are_handled_alike():
    tables, _ = with_bad_rows({s.EVENTS: clean_tables()[s.EVENTS]}, [row for row in BAD_ROWS if row[0] == s.EVENTS])
    now = pd.Timestamp("2024-06-30 14:00", tz="Europe/Berlin")
    fast = check_rows(tables, now, KNOWN_IDS)
    assert_same_result(fast, validate_tables(tables, now, KNOWN_IDS))
    assert fast.report[s.EVENTS]["references_checked"] == [
        "customer_id -> customers.customer_id",
        "product_id -> products.product_id",
    ]


# Cells that break typing, required columns, ranges, sets and keys, mixed with ordinary values.
MESSY_CELL = st.one_of(
    NUMBER_LIKE_TEXT,
    st.sampled_from(["C1", "C2", "C9", "P1", "P2", "P9", "O1", "web", "fax", "nps_response", "support_ticket"]),
    st.sampled_from(["2024-06-30T12:00:00", "2024-06-30T12:00:01", "2023-12-31", "1800-01-01", "0", "11"]),
)


@st.composite
def messy_batch(draw, table_name: str) -> pd.DataFrame:
    """A few clean rows of the table, with random cells overwritten and random rows repeated."""
    clean = clean_tables()[table_name]
    rows = draw(st.lists(st.integers(0, len(clean) - 1), min_size=1, max_size=10))
    frame = clean.iloc[rows].reset_index(drop=True).astype(object)
    columns = list(clean.columns)
    for _ in range(draw(st.integers(0, 2 * len(frame)))):
        row = draw(st.integers(0, len(frame) - 1))
        frame.iat[row, columns.index(draw(st.sampled_from(columns)))] = draw(MESSY_CELL)
    return frame.astype("str")


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(
    transactions=messy_batch(s.TRANSACTIONS),
    events=messy_batch(s.EVENTS),
    with_ids=st.booleans(),
)
def test_random_messy_batches_get_identical_verdicts(transactions, events, with_ids):
    tables = {s.TRANSACTIONS: transactions, s.EVENTS: events}
    reference_ids = KNOWN_IDS if with_ids else None
    assert_same_result(check_rows(tables, NOW, reference_ids), validate_tables(tables, NOW, reference_ids))


def test_evaluate_rules_reports_every_rule_in_rule_order_without_a_gx_result():
    table = s.TRANSACTIONS_TABLE
    typed, unparsed = type_table(table, clean_tables()[s.TRANSACTIONS])
    check_frame = pd.concat([typed.astype({s.QUANTITY: "float64"}), unparsed], axis=1)
    check_frame[expectations.occurrence_column(table.unique_key)] = [0, 0, 0, 1]
    run = row_checks.evaluate_rules(table, check_frame, (), NOW)
    assert list(run.failed_rows) == [rule.reason for rule in expectations.table_rules(table)]
    assert run.gx_result is None
    failing = {reason: rows.tolist() for reason, rows in run.failed_rows.items() if len(rows)}
    assert failing == {"order_id+product_id: duplicate order line (first row kept)": [3]}


def test_an_unknown_engine_is_refused():
    with pytest.raises(ValueError, match="unknown validation engine 'spark'"):
        validate_tables(clean_tables(), NOW, engine="spark")
