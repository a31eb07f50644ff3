"""features.row_checks and check_rows: the service's validation gives exactly what Great Expectations gives.

Both evaluate the rules of `features.rules.table_rules` on the same check columns, so on any
batch they must accept the same rows, typed the same, and quarantine the same rows for the same
reasons. `check_rows` (cell by cell, `features.small_batches`) is compared with `validate_tables`
(Great Expectations) on random messy batches and on batches built like the service builds them from
JSON (mixed cell types, natural dtypes). A Great Expectations run takes a moment, so the batches are
small and a few dozen.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features import row_checks, rules
from features import schema as s
from features.small_batches import check_rows
from features.validation import ValidationResult, type_table, validate_tables
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
    assert_same_result(fast, validate_tables(tables, NOW))
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
    check_frame[rules.occurrence_column(table.unique_key)] = [0, 0, 0, 1]
    run = row_checks.evaluate_rules(table, check_frame, (), NOW)
    assert list(run.failed_rows) == [rule.reason for rule in rules.table_rules(table)]
    assert run.gx_result is None
    failing = {reason: rows.tolist() for reason, rows in run.failed_rows.items() if len(rows)}
    assert failing == {"order_id+product_id: duplicate order line (first row kept)": [3]}


# What JSON can put in a cell, plus numbers that break typing in every way.
JSON_CELL = st.one_of(
    MESSY_CELL,
    st.booleans(),
    st.integers(-3, 3),
    st.integers(-(2**60), 2**60),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, 1.0, -1.0, 0.5, 2.0**53, 1e16, 1e20, 0.1]),
    st.lists(st.integers(0, 2), max_size=2),
)

WHOLE_COLUMN_CELL = st.one_of(
    st.integers(-5, 5), st.sampled_from([0.0, 1.0, 17.0, 2.5, 2.0**53, 1e20, float("nan"), float("inf")]), st.none()
)


@st.composite
def json_batch(draw, table_name: str) -> pd.DataFrame:
    """Rows as the service gets them: dicts from JSON (some keys left out, cells of any JSON type),
    made into a frame by `DataFrame.from_records`, so columns come out str, int64, float64, bool or
    object, as the cells fall. Some columns are then given other dtypes a caller might pass."""
    clean = clean_tables()[table_name]
    rows = draw(st.lists(st.integers(0, len(clean) - 1), min_size=1, max_size=8))
    records = [dict(clean.iloc[row].dropna()) for row in rows]
    columns = list(clean.columns) + ([s.REGION] if table_name == s.CUSTOMERS else [])
    for _ in range(draw(st.integers(0, 3 * len(records)))):
        record = records[draw(st.integers(0, len(records) - 1))]
        column = draw(st.sampled_from(columns))
        if draw(st.booleans()) and column in record and column not in TABLE_KEYS[table_name]:
            del record[column]
        else:
            record[column] = draw(JSON_CELL)
    if draw(st.booleans()):  # a whole column of numbers (ids sent as numbers, ints with gaps -> float64)
        column = draw(st.sampled_from(columns))
        for record in records:
            record[column] = draw(WHOLE_COLUMN_CELL)
    frame = pd.DataFrame.from_records(records)
    for column in frame.columns:
        recast = draw(st.sampled_from(["keep", "keep", "category", "datetime", "Int64", "boolean", "float32"]))
        frame[column] = _recast(frame[column], recast)
    return frame


TABLE_KEYS = {name: set(table.required_columns) for name, table in s.TABLES.items()}


def _recast(column: pd.Series, dtype: str) -> pd.Series:
    """The column in another dtype where that cast works, else unchanged."""
    if dtype == "keep":
        return column
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):  # lossy casts are the point here
            warnings.simplefilter("ignore")
            if dtype == "datetime":
                return pd.to_datetime(column, format="ISO8601", utc=True)
            return column.astype(dtype)
    except (TypeError, ValueError, OverflowError):
        return column


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(
    customers=st.none() | json_batch(s.CUSTOMERS),
    products=st.none() | json_batch(s.PRODUCTS),
    transactions=json_batch(s.TRANSACTIONS),
    events=st.none() | json_batch(s.EVENTS),
    with_ids=st.booleans(),
)
def test_check_rows_matches_gx_on_json_like_batches(customers, products, transactions, events, with_ids):
    tables = {
        name: frame
        for name, frame in (
            (s.CUSTOMERS, customers),
            (s.PRODUCTS, products),
            (s.TRANSACTIONS, transactions),
            (s.EVENTS, events),
        )
        if frame is not None
    }
    reference_ids = KNOWN_IDS if with_ids else None
    expected = validate_tables(tables, NOW, reference_ids)
    assert_same_result(check_rows(tables, NOW, reference_ids), expected)


def test_check_rows_reads_a_batch_of_json_rows_like_the_batch_pipeline():
    records = [
        {
            s.ORDER_ID: 17,
            s.CUSTOMER_ID: "C1",
            s.PRODUCT_ID: "P1",
            s.QUANTITY: 2,
            s.UNIT_PRICE: 10,
            s.TIMESTAMP: "2024-01-02T10:00:00+01:00",
            s.CHANNEL: "web",
        },
        {
            s.ORDER_ID: "17",
            s.CUSTOMER_ID: "C1",
            s.PRODUCT_ID: "P1",
            s.QUANTITY: 1.5,
            s.UNIT_PRICE: "x",
            s.TIMESTAMP: "2024-01-02",
            s.CHANNEL: "web",
        },
        {
            s.ORDER_ID: "18",
            s.CUSTOMER_ID: " C9 ",
            s.PRODUCT_ID: "P2",
            s.QUANTITY: 1,
            s.UNIT_PRICE: 3.5,
            s.TIMESTAMP: "2030-01-01",
            s.CHANNEL: "web",
            s.DISCOUNT: None,
        },
    ]
    result = check_rows({s.TRANSACTIONS: pd.DataFrame.from_records(records)}, NOW, KNOWN_IDS)
    accepted = result.accepted[s.TRANSACTIONS]
    assert accepted[s.ORDER_ID].tolist() == ["17"]
    assert accepted[s.TIMESTAMP].tolist() == [pd.Timestamp("2024-01-02 09:00")]  # converted to UTC
    assert accepted[s.QUANTITY].dtype == np.int64 and accepted[s.DISCOUNT].isna().all()
    quarantined = result.quarantined[s.TRANSACTIONS]
    reasons = dict(zip(quarantined[s.ROW_NUMBER], quarantined[s.REASONS], strict=True))
    assert reasons[1] == (
        "quantity: not a valid integer; unit_price: not a valid number; "
        "order_id+product_id: duplicate order line (first row kept)"
    )
    assert reasons[2] == "timestamp: in the future; customer_id: unknown customer (not in customers)"


def test_a_batch_of_thousands_of_rows_gets_the_same_verdicts():
    tables, _ = with_bad_rows(clean_tables(), BAD_ROWS)
    many = {name: pd.concat([frame] * 400, ignore_index=True) for name, frame in tables.items()}
    assert sum(len(frame) for frame in many.values()) > 5000
    assert_same_result(check_rows(many, NOW), validate_tables(many, NOW))
