"""features.validation, features.expectations and pipelines.validate: validation that loses nothing.

The data sets are a few hand-written rows of text, as `pipelines.io.read_table` returns a CSV file.
Every bad row is a copy of a good row with one thing broken, so its reasons are known exactly.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features import rules
from features import schema as s
from features.validation import (
    ContractError,
    ValidationResult,
    type_table,
    validate_tables,
)
from pipelines import io
from pipelines.errors import EXIT_USER_ERROR, UserError
from pipelines.validate import (
    DATA_DOCS_DIR_NAME,
    REPORT_DIR_NAME,
    REPORT_FILE_NAME,
    load_valid_tables,
    main,
    quarantine_file_name,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
NOW = pd.Timestamp("2024-06-30 12:00:00")
CHANNELS_TEXT = ", ".join(s.CHANNELS)
GENDERS_TEXT = ", ".join(s.GENDERS)
EVENT_TYPES_TEXT = ", ".join(s.EVENT_TYPES)


# ---------------------------------------------------------------------------
# A small clean data set, as text (the way CSV cells are read).
# ---------------------------------------------------------------------------
def text_frame(columns: dict[str, list[str | None]]) -> pd.DataFrame:
    return pd.DataFrame({name: pd.array(values, dtype="str") for name, values in columns.items()})


def clean_tables() -> dict[str, pd.DataFrame]:
    """Three customers, three products, four order lines, four events; C3 and P3 are unused."""
    return {
        s.CUSTOMERS: text_frame(
            {
                s.CUSTOMER_ID: ["C1", "C2", "C3"],
                s.SIGNUP_DATE: ["2023-01-05", "2023-02-10T08:30:00", "2023-03-01 09:00:00"],
                s.BIRTH_YEAR: ["1980", None, "1999"],
                s.GENDER: ["female", "male", None],
                s.MARKETING_OPT_IN: ["true", "no", None],
                # region is absent: an optional column may be missing from a file
            }
        ),
        s.PRODUCTS: text_frame(
            {
                s.PRODUCT_ID: ["P1", "P2", "P3"],
                s.CATEGORY: ["shirts", "lenses", "shoes"],
                s.PRICE: ["10", "29.5", "40.0"],
                s.BRAND: ["acme", None, "zed"],
                s.REPLENISHMENT_DAYS: [None, "30", None],
            }
        ),
        s.TRANSACTIONS: text_frame(
            {
                s.ORDER_ID: ["O1", "O1", "O2", "O3"],
                s.CUSTOMER_ID: ["C1", "C1", "C2", "C1"],
                s.PRODUCT_ID: ["P1", "P2", "P1", "P2"],
                s.QUANTITY: ["2", "1", "-1", "3"],
                s.UNIT_PRICE: ["10", "29.5", "10", "0"],
                s.TIMESTAMP: [
                    "2024-01-02 10:00:00",
                    "2024-01-02T10:00:00",
                    "2024-02-03T11:00:00+02:00",
                    "2024-06-30",
                ],
                s.CHANNEL: ["web", "web", "store", "app"],
                s.DISCOUNT: [None, "0.1", "0", "1"],
            }
        ),
        s.EVENTS: text_frame(
            {
                s.CUSTOMER_ID: ["C1", "C2", "C1", "C2"],
                s.TIMESTAMP: ["2024-01-01", "2024-01-03", "2024-02-01", "2024-03-01"],
                s.EVENT_TYPE: [
                    s.EVENT_SESSION_START,
                    s.EVENT_PRODUCT_VIEW,
                    s.EVENT_NPS_RESPONSE,
                    s.EVENT_SUPPORT_TICKET,
                ],
                s.PRODUCT_ID: [None, "P1", None, None],
                s.VALUE: [None, None, "9", "3"],
            }
        ),
    }


# Each bad row: (table, changes to a copy of the table's first row, the reasons it must get).
# Copies get fresh unique keys (unless the change is the key) so they do not also duplicate row 0.
BAD_ROWS: list[tuple[str, dict[str, str | None], list[str]]] = [
    (s.TRANSACTIONS, {s.UNIT_PRICE: "-1"}, ["unit_price: below minimum 0"]),
    (s.TRANSACTIONS, {s.UNIT_PRICE: "12,50"}, ["unit_price: not a valid number"]),
    (s.TRANSACTIONS, {s.QUANTITY: "0"}, ["quantity: must not be 0"]),
    (s.TRANSACTIONS, {s.QUANTITY: "2.5"}, ["quantity: not a valid integer"]),
    (s.TRANSACTIONS, {s.QUANTITY: None}, ["quantity: missing (required)"]),
    (s.TRANSACTIONS, {s.TIMESTAMP: "2024-02-30"}, ["timestamp: not a valid timestamp"]),
    (s.TRANSACTIONS, {s.TIMESTAMP: "03/01/2024"}, ["timestamp: not a valid timestamp"]),
    (s.TRANSACTIONS, {s.TIMESTAMP: "2024-06-30T12:00:01"}, ["timestamp: in the future"]),
    (s.TRANSACTIONS, {s.CHANNEL: "fax"}, [f"channel: not one of {CHANNELS_TEXT}"]),
    (s.TRANSACTIONS, {s.CHANNEL: "  "}, ["channel: missing (required)"]),
    (s.TRANSACTIONS, {s.DISCOUNT: "1.5"}, ["discount: above maximum 1"]),
    (s.TRANSACTIONS, {s.DISCOUNT: "-0.1"}, ["discount: below minimum 0"]),
    (s.TRANSACTIONS, {s.DISCOUNT: "lots"}, ["discount: not a valid number"]),
    (s.TRANSACTIONS, {s.CUSTOMER_ID: "C9"}, ["customer_id: unknown customer (not in customers)"]),
    (s.TRANSACTIONS, {s.PRODUCT_ID: "P9"}, ["product_id: unknown product (not in products)"]),
    (
        s.TRANSACTIONS,
        {s.ORDER_ID: "O1"},  # same order and product as row 0
        ["order_id+product_id: duplicate order line (first row kept)"],
    ),
    (
        s.TRANSACTIONS,
        {s.QUANTITY: "0", s.UNIT_PRICE: "-2", s.CHANNEL: "fax", s.CUSTOMER_ID: "C9"},
        [
            "quantity: must not be 0",
            "unit_price: below minimum 0",
            f"channel: not one of {CHANNELS_TEXT}",
            "customer_id: unknown customer (not in customers)",
        ],
    ),
    (s.CUSTOMERS, {s.CUSTOMER_ID: None}, ["customer_id: missing (required)"]),
    (s.CUSTOMERS, {s.CUSTOMER_ID: "C1"}, ["customer_id: duplicate customer (first row kept)"]),
    (s.CUSTOMERS, {s.SIGNUP_DATE: "yesterday"}, ["signup_date: not a valid timestamp"]),
    (s.CUSTOMERS, {s.SIGNUP_DATE: "2099-01-01"}, ["signup_date: in the future"]),
    (s.CUSTOMERS, {s.BIRTH_YEAR: "1850"}, ["birth_year: below minimum 1900"]),
    (s.CUSTOMERS, {s.BIRTH_YEAR: "nineteen"}, ["birth_year: not a valid integer"]),
    (s.CUSTOMERS, {s.GENDER: "Female"}, [f"gender: not one of {GENDERS_TEXT}"]),
    (s.CUSTOMERS, {s.MARKETING_OPT_IN: "maybe"}, ["marketing_opt_in: not a valid boolean"]),
    (s.PRODUCTS, {s.CATEGORY: None}, ["category: missing (required)"]),
    (s.PRODUCTS, {s.PRICE: "-5"}, ["price: below minimum 0"]),
    (s.PRODUCTS, {s.PRICE: "free"}, ["price: not a valid number"]),
    (s.PRODUCTS, {s.REPLENISHMENT_DAYS: "-1"}, ["replenishment_days: below minimum 0"]),
    (s.PRODUCTS, {s.PRODUCT_ID: "P2"}, ["product_id: duplicate product (first row kept)"]),
    (s.PRODUCTS, {s.PRODUCT_ID: None}, ["product_id: missing (required)"]),
    (s.PRODUCTS, {s.PRICE: None}, ["price: missing (required)"]),
    (s.PRODUCTS, {s.REPLENISHMENT_DAYS: "soon"}, ["replenishment_days: not a valid number"]),
    (s.CUSTOMERS, {s.SIGNUP_DATE: None}, ["signup_date: missing (required)"]),
    (s.TRANSACTIONS, {s.ORDER_ID: None}, ["order_id: missing (required)"]),
    (s.TRANSACTIONS, {s.CUSTOMER_ID: None}, ["customer_id: missing (required)"]),
    (s.TRANSACTIONS, {s.PRODUCT_ID: None}, ["product_id: missing (required)"]),
    (s.TRANSACTIONS, {s.UNIT_PRICE: None}, ["unit_price: missing (required)"]),
    (s.TRANSACTIONS, {s.TIMESTAMP: None}, ["timestamp: missing (required)"]),
    (s.EVENTS, {s.CUSTOMER_ID: None}, ["customer_id: missing (required)"]),
    (s.EVENTS, {s.TIMESTAMP: None}, ["timestamp: missing (required)"]),
    (s.EVENTS, {s.EVENT_TYPE: None}, ["event_type: missing (required)"]),
    # a quarantined customer and product, and rows that reference them
    (
        s.CUSTOMERS,
        {s.CUSTOMER_ID: "C-bad", s.BIRTH_YEAR: "1066"},
        ["birth_year: below minimum 1900"],
    ),
    (s.PRODUCTS, {s.PRODUCT_ID: "P-bad", s.PRICE: "-1"}, ["price: below minimum 0"]),
    (
        s.TRANSACTIONS,
        {s.CUSTOMER_ID: "C-bad"},
        ["customer_id: customer was quarantined in customers"],
    ),
    (s.TRANSACTIONS, {s.PRODUCT_ID: "P-bad"}, ["product_id: product was quarantined in products"]),
    (s.EVENTS, {s.CUSTOMER_ID: "C-bad"}, ["customer_id: customer was quarantined in customers"]),
    (s.EVENTS, {s.PRODUCT_ID: "P-bad"}, ["product_id: product was quarantined in products"]),
    (s.EVENTS, {s.EVENT_TYPE: "login"}, [f"event_type: not one of {EVENT_TYPES_TEXT}"]),
    (s.EVENTS, {s.CUSTOMER_ID: "C9"}, ["customer_id: unknown customer (not in customers)"]),
    (s.EVENTS, {s.PRODUCT_ID: "P9"}, ["product_id: unknown product (not in products)"]),
    (s.EVENTS, {s.TIMESTAMP: "2024-07-01"}, ["timestamp: in the future"]),
    (s.EVENTS, {s.TIMESTAMP: "2024-01-01 25:00"}, ["timestamp: not a valid timestamp"]),
    (s.EVENTS, {s.VALUE: "high"}, ["value: not a valid number"]),
    (
        s.EVENTS,
        {s.EVENT_TYPE: s.EVENT_NPS_RESPONSE, s.VALUE: "11"},
        ["value: outside 0 to 10 for nps_response"],
    ),
    (
        s.EVENTS,
        {s.EVENT_TYPE: s.EVENT_SUPPORT_TICKET, s.VALUE: "0"},
        ["value: outside 1 to 5 for support_ticket"],
    ),
]
FRESH_KEYS = {s.TRANSACTIONS: s.ORDER_ID, s.CUSTOMERS: s.CUSTOMER_ID, s.PRODUCTS: s.PRODUCT_ID}


def with_bad_rows(
    tables: dict[str, pd.DataFrame], bad_rows: list[tuple[str, dict, list[str]]]
) -> tuple[dict[str, pd.DataFrame], dict[str, dict[int, str]]]:
    """Append each bad row to its table; return the tables and {table: {row_number: reasons}}."""
    tables = dict(tables)
    expected: dict[str, dict[int, str]] = {name: {} for name in tables}
    for number, (table_name, changes, reasons) in enumerate(bad_rows):
        frame = tables[table_name]
        row = frame.iloc[[0]].copy()
        if table_name in FRESH_KEYS:
            row[FRESH_KEYS[table_name]] = f"X{number}"
        for column, value in changes.items():
            row[column] = value
        expected[table_name][len(frame)] = "; ".join(reasons)
        tables[table_name] = pd.concat([frame, row], ignore_index=True)
    return tables, expected


EXPECTED_DTYPES = {
    "id": "str",
    "string": "str",
    "timestamp": "datetime64[ns]",
    "float": "float64",
    "bool": "boolean",
}


def assert_contract_dtypes(result: ValidationResult) -> None:
    for name, frame in result.accepted.items():
        table = s.TABLES[name]
        assert list(frame.columns) == list(table.column_names), name
        for column in table.columns:
            if column.dtype == "int":
                expected = "int64" if column.required else "Int64"
            else:
                expected = EXPECTED_DTYPES[column.dtype]
            assert frame[column.name].dtype == expected, (name, column.name)
            if column.required:
                assert frame[column.name].notna().all(), (name, column.name)


def reasons_by_row(result: ValidationResult, table_name: str) -> dict[int, str]:
    frame = result.quarantined[table_name]
    return dict(zip(frame[s.ROW_NUMBER].tolist(), frame[s.REASONS].tolist(), strict=True))


@pytest.fixture(scope="module")
def clean_run() -> tuple[dict[str, pd.DataFrame], ValidationResult]:
    """The clean tables and their validation, shared: each suite run takes a moment."""
    tables = clean_tables()
    return tables, validate_tables(tables, NOW)


@pytest.fixture(scope="module")
def clean_result(clean_run) -> ValidationResult:
    return clean_run[1]


# ---------------------------------------------------------------------------
# Clean data
# ---------------------------------------------------------------------------
def test_clean_data_set_is_accepted_in_full_with_contract_dtypes(clean_result):
    for name, raw in clean_tables().items():
        report = clean_result.report[name]
        assert report["rows_in"] == report["accepted"] == len(raw), name
        assert report["quarantined"] == 0 and report["ok"] and report["failures"] == {}
        assert clean_result.quarantined[name].empty
        assert list(clean_result.quarantined[name].columns)[-2:] == [s.ROW_NUMBER, s.REASONS]
    assert_contract_dtypes(clean_result)


def test_the_generated_data_set_passes_in_full(generated_data):
    """The generator and the contract agree: every generated row is accepted, typed."""
    after_last_day = generated_data.end + pd.Timedelta(days=1)
    accepted, report = load_valid_tables(generated_data.data_dir, after_last_day)
    for name, raw in generated_data.tables.items():
        assert report["tables"][name]["quarantined"] == 0, report["tables"][name]["failures"]
        assert len(accepted[name]) == len(raw)
        assert list(accepted[name].columns) == list(s.TABLES[name].column_names)


def test_values_are_typed_exactly(clean_result):
    customers = clean_result.accepted[s.CUSTOMERS]
    assert customers[s.REGION].isna().all()  # absent optional column added as nulls
    assert clean_result.report[s.CUSTOMERS]["missing_optional_columns"] == [s.REGION]
    assert customers[s.BIRTH_YEAR].tolist() == [1980, pd.NA, 1999]
    assert customers[s.MARKETING_OPT_IN].tolist() == [True, False, pd.NA]
    assert customers[s.SIGNUP_DATE].tolist() == [
        pd.Timestamp("2023-01-05"),
        pd.Timestamp("2023-02-10 08:30"),
        pd.Timestamp("2023-03-01 09:00"),
    ]
    transactions = clean_result.accepted[s.TRANSACTIONS]
    # an offset is converted to UTC, then dropped
    assert transactions[s.TIMESTAMP][2] == pd.Timestamp("2024-02-03 09:00")
    assert transactions[s.QUANTITY].tolist() == [2, 1, -1, 3]
    assert transactions[s.UNIT_PRICE].tolist() == pytest.approx([10.0, 29.5, 10.0, 0.0])
    assert transactions[s.DISCOUNT].isna().tolist() == [True, False, False, False]


def test_input_frames_are_not_modified(clean_run):
    tables, _ = clean_run
    for name, frame in clean_tables().items():
        pd.testing.assert_frame_equal(tables[name], frame)


# ---------------------------------------------------------------------------
# Row-level rules
# ---------------------------------------------------------------------------
def test_quarantine_keeps_the_original_raw_values():
    only_transactions = {s.TRANSACTIONS: clean_tables()[s.TRANSACTIONS]}
    tables, _ = with_bad_rows(only_transactions, [(s.TRANSACTIONS, {s.UNIT_PRICE: " 12,50 "}, [])])
    tables[s.TRANSACTIONS]["note"] = "kept"  # an extra column travels with the raw row
    result = validate_tables(tables, NOW)
    quarantined = result.quarantined[s.TRANSACTIONS]
    assert quarantined[s.UNIT_PRICE].tolist() == [" 12,50 "]
    assert quarantined["note"].tolist() == ["kept"]
    assert list(quarantined.columns) == [*tables[s.TRANSACTIONS].columns, s.ROW_NUMBER, s.REASONS]
    assert result.report[s.TRANSACTIONS]["extra_columns"] == ["note"]
    assert "note" not in result.accepted[s.TRANSACTIONS].columns


def test_duplicates_keep_the_first_row_in_input_order():
    transactions = clean_tables()[s.TRANSACTIONS]
    repeated = transactions.iloc[[0]].assign(**{s.QUANTITY: "5"})
    tables = {s.TRANSACTIONS: pd.concat([transactions, repeated, repeated], ignore_index=True)}
    result = validate_tables(tables, NOW)
    reason = "order_id+product_id: duplicate order line (first row kept)"
    assert reasons_by_row(result, s.TRANSACTIONS) == {4: reason, 5: reason}
    assert result.accepted[s.TRANSACTIONS][s.QUANTITY].tolist() == [2, 1, -1, 3]


def test_references_are_checked_against_accepted_rows_so_a_quarantined_customer_cascades():
    tables = clean_tables()
    tables[s.CUSTOMERS] = tables[s.CUSTOMERS].assign(**{s.SIGNUP_DATE: ["2023-01-05", "not a date", "2023-03-01"]})
    result = validate_tables(tables, NOW)
    assert reasons_by_row(result, s.CUSTOMERS) == {1: "signup_date: not a valid timestamp"}
    cascaded = "customer_id: customer was quarantined in customers"
    assert reasons_by_row(result, s.TRANSACTIONS) == {2: cascaded}
    assert reasons_by_row(result, s.EVENTS) == {1: cascaded, 3: cascaded}
    for name in (s.TRANSACTIONS, s.EVENTS):
        accepted_ids = set(result.accepted[name][s.CUSTOMER_ID])
        assert accepted_ids <= set(result.accepted[s.CUSTOMERS][s.CUSTOMER_ID])


def test_a_duplicate_customer_does_not_cascade_because_the_first_row_is_accepted():
    customers_and_transactions = {name: frame for name, frame in clean_tables().items() if name != s.EVENTS}
    tables, expected = with_bad_rows(customers_and_transactions, [(s.CUSTOMERS, {s.CUSTOMER_ID: "C1"}, [])])
    result = validate_tables(tables, NOW)
    assert list(reasons_by_row(result, s.CUSTOMERS)) == list(expected[s.CUSTOMERS])
    assert result.report[s.TRANSACTIONS]["quarantined"] == 0


def test_references_use_supplied_ids_when_the_referenced_table_is_not_in_the_batch():
    events = clean_tables()[s.EVENTS]
    known = {s.CUSTOMERS: {"C1"}, s.PRODUCTS: pd.Index(["P1"], dtype="str")}
    result = validate_tables({s.EVENTS: events}, NOW, reference_ids=known)
    unknown = "customer_id: unknown customer (not in customers)"
    assert reasons_by_row(result, s.EVENTS) == {1: unknown, 3: unknown}
    assert len(result.report[s.EVENTS]["references_checked"]) == 2


def test_references_are_not_checked_without_the_referenced_table_or_ids():
    events = clean_tables()[s.EVENTS].assign(**{s.CUSTOMER_ID: "nobody"})
    result = validate_tables({s.EVENTS: events}, NOW)
    assert result.report[s.EVENTS]["quarantined"] == 0
    assert result.report[s.EVENTS]["references_checked"] == []


def test_now_may_be_timezone_aware():
    tables = {s.TRANSACTIONS: clean_tables()[s.TRANSACTIONS]}
    # 2024-06-30 14:00+02:00 is 12:00 UTC: the 2024-06-30 transaction is not in the future
    result = validate_tables(tables, pd.Timestamp("2024-06-30 14:00", tz="Europe/Berlin"))
    assert result.report[s.TRANSACTIONS]["ok"]
    early = validate_tables(tables, pd.Timestamp("2024-06-29 23:00", tz="UTC"))
    assert reasons_by_row(early, s.TRANSACTIONS) == {3: "timestamp: in the future"}


# ---------------------------------------------------------------------------
# Every kind of bad row at once
# ---------------------------------------------------------------------------
def test_every_kind_of_bad_row_at_once_loses_nothing(clean_result):
    """Each rule of the contract, broken once on its own row: exact reasons, exact counts."""
    tables, expected = with_bad_rows(clean_tables(), BAD_ROWS)
    result = validate_tables(tables, NOW)
    for name, frame in tables.items():
        report = result.report[name]
        assert report["rows_in"] == len(frame) == report["accepted"] + report["quarantined"]
        assert reasons_by_row(result, name) == expected[name], name
        assert len(result.accepted[name]) == len(frame) - len(expected[name])
        broken = Counter(r for reasons in expected[name].values() for r in reasons.split("; "))
        assert report["failures"] == dict(broken), name
    # every rule of every table (with its references checked) was broken at least once
    for name, table in s.TABLES.items():
        table_rules = rules.table_rules(table, table.references)
        missed = {r.reason for r in table_rules} - set(result.report[name]["failures"])
        assert not missed, (name, missed)
    assert_contract_dtypes(result)
    # the good rows are exactly the clean data set, typed
    for name in tables:
        pd.testing.assert_frame_equal(result.accepted[name], clean_result.accepted[name])


# ---------------------------------------------------------------------------
# Table-level failures
# ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda t: t.update({s.TRANSACTIONS: t[s.TRANSACTIONS].drop(columns=[s.UNIT_PRICE])}),
            "transactions: missing required column(s) unit_price",
        ),
        (
            lambda t: t.update({s.EVENTS: t[s.EVENTS].iloc[:0]}),
            "events: empty table (no rows)",
        ),
        (lambda t: t.update({"orders": t[s.TRANSACTIONS]}), "orders: not a contract table"),
        (lambda t: t.update({s.PRODUCTS: [1, 2, 3]}), "products: not a table (got list)"),
        (lambda t: t.clear(), "no contract tables given"),
    ],
    ids=["missing-column", "empty", "unknown-table", "not-a-frame", "nothing"],
)
def test_table_level_problems_raise_contract_error(mutate, message):
    tables = clean_tables()
    mutate(tables)
    with pytest.raises(ContractError) as error:
        validate_tables(tables, NOW)
    assert str(error.value).startswith(message)
    assert "\n" not in str(error.value)


# ---------------------------------------------------------------------------
# Typing, and the rules as data
# ---------------------------------------------------------------------------
def test_typing_parquet_style_values_matches_typing_text():
    """Numbers stored as numbers and ids stored as whole floats type like their text."""
    raw = pd.DataFrame(
        {
            s.PRODUCT_ID: [101.0, 102.0],
            s.CATEGORY: ["a", "b"],
            s.PRICE: [1.5, np.inf],
            s.REPLENISHMENT_DAYS: [np.nan, 30],
        }
    )
    typed, unparsed = type_table(s.PRODUCTS_TABLE, raw)
    assert typed[s.PRODUCT_ID].tolist() == ["101", "102"]
    assert typed[s.PRICE].isna().tolist() == [False, True]
    assert unparsed[rules.unparsed_column(s.PRICE)].tolist()[1] == "inf"


def test_rules_are_generated_from_the_schema():
    reasons = [rule.reason for rule in rules.table_rules(s.TRANSACTIONS_TABLE)]
    assert "quantity: must not be 0" in reasons
    assert "discount: above maximum 1" in reasons
    assert not any("unknown customer" in reason for reason in reasons)  # no reference checked
    with_refs = rules.table_rules(s.TRANSACTIONS_TABLE, s.TRANSACTIONS_TABLE.references)
    assert len(with_refs) == len(reasons) + 2 * len(s.TRANSACTIONS_TABLE.references)
    # one type rule per parsed column, one missing rule per required column
    parsed = [c for c in s.TRANSACTIONS_TABLE.columns if c.dtype in rules.PARSED_DTYPES]
    assert sum(r.endswith(("valid number", "valid integer", "valid timestamp")) for r in reasons) == len(parsed)
    assert sum(r.endswith("missing (required)") for r in reasons) == len(s.TRANSACTIONS_TABLE.required_columns)


NUMBER_LIKE_TEXT = st.one_of(
    st.none(),
    st.sampled_from(["0", "1", "-3", "2.5", "1e2", "x", " 7 ", "", "nan", "inf", "-0.0", "1,5"]),
    st.sampled_from(["true", "No", "2024-02-29", "2024-02-30", "2024-01-01T10:00:00+01:00"]),
    st.text(max_size=5),
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cells=st.lists(NUMBER_LIKE_TEXT, min_size=1, max_size=8))
def test_typing_any_text_gives_a_value_or_keeps_the_text_never_neither(cells):
    """Typing loses nothing: a non-blank cell is either read or kept as unreadable text."""
    n = len(cells)
    raw = text_frame(
        {
            s.CUSTOMER_ID: cells,
            s.SIGNUP_DATE: cells,
            s.BIRTH_YEAR: cells,
            s.MARKETING_OPT_IN: list(reversed(cells)),
        }
    )
    typed, unparsed = type_table(s.CUSTOMERS_TABLE, raw)
    assert len(typed) == len(unparsed) == n
    for column in (s.CUSTOMER_ID, s.SIGNUP_DATE, s.BIRTH_YEAR, s.MARKETING_OPT_IN):
        blank = np.array([c is None or not c.strip() for c in raw[column].fillna("")])
        value_read = typed[column].notna().to_numpy(dtype=bool)
        if column == s.CUSTOMER_ID:  # text is always readable
            assert (value_read == ~blank).all()
            continue
        kept_as_text = unparsed[rules.unparsed_column(column)].notna().to_numpy(dtype=bool)
        assert not (value_read & kept_as_text).any(), column
        assert ((value_read | kept_as_text) == ~blank).all(), column
    whole = typed[s.BIRTH_YEAR].dropna()
    assert (whole == whole.round()).all()


# ---------------------------------------------------------------------------
# Files: CSV and parquet, the command line
# ---------------------------------------------------------------------------
TYPEABLE_BAD_ROWS = [
    row
    for row in BAD_ROWS
    if not any(
        r.endswith(
            (
                "not a valid number",
                "not a valid integer",
                "not a valid timestamp",
                "not a valid boolean",
                "missing (required)",
            )
        )
        for r in row[2]
    )
]


def typed_tables() -> dict[str, pd.DataFrame]:
    """The data set with every bad row a typed file can hold, as typed frames (as parquet holds)."""
    tables, _ = with_bad_rows(clean_tables(), TYPEABLE_BAD_ROWS)
    return {name: type_table(s.TABLES[name], raw)[0] for name, raw in tables.items()}


def test_csv_and_parquet_inputs_give_the_same_result(tmp_path):
    tables = typed_tables()
    io.write_tables(tables, tmp_path / "csv", file_format="csv")
    io.write_tables(tables, tmp_path / "parquet", file_format="parquet")
    from_csv = validate_tables(io.read_tables(tmp_path / "csv"), NOW)
    from_parquet = validate_tables(io.read_tables(tmp_path / "parquet"), NOW)
    assert from_csv.report == from_parquet.report
    for name in tables:
        pd.testing.assert_frame_equal(from_csv.accepted[name], from_parquet.accepted[name])
        assert reasons_by_row(from_csv, name) == reasons_by_row(from_parquet, name)
    assert sum(r["quarantined"] for r in from_csv.report.values()) == len(TYPEABLE_BAD_ROWS)


def write_csv_tables(folder: Path, tables: dict[str, pd.DataFrame]) -> Path:
    io.write_tables(tables, folder, file_format="csv")
    return folder


def test_command_writes_report_quarantine_and_data_docs(tmp_path, capsys):
    tables, expected = with_bad_rows(clean_tables(), BAD_ROWS[:3] + BAD_ROWS[-3:])
    data = write_csv_tables(tmp_path / "data", tables)
    assert main(["--data", str(data), "--now", NOW.isoformat()]) == 0
    out_dir = data / REPORT_DIR_NAME
    report = json.loads((out_dir / REPORT_FILE_NAME).read_text())
    assert report["ok"] is False and report["now"] == NOW.isoformat()
    for name, frame in tables.items():
        table_report = report["tables"][name]
        assert table_report["rows_in"] == len(frame)
        assert table_report["quarantined"] == len(expected[name])
        assert table_report["file"] == str(data / f"{name}.csv")
        quarantine = io.read_table(out_dir / quarantine_file_name(name))
        assert list(quarantine[s.REASONS].fillna("")) == list(expected[name].values())
    index = out_dir / DATA_DOCS_DIR_NAME / "index.html"
    assert index.exists() and "transactions" in index.read_text()
    printed = capsys.readouterr().out
    assert "rows_in" in printed and str(out_dir / REPORT_FILE_NAME) in printed
    assert printed.splitlines()[1].split() == ["customers", "3", "3", "0"]


def test_command_on_clean_data_reports_ok_and_honours_out(tmp_path, capsys):
    data = write_csv_tables(tmp_path / "data", clean_tables())
    out_dir = tmp_path / "elsewhere"
    assert main(["--data", str(data), "--out", str(out_dir), "--now", NOW.isoformat()]) == 0
    report = json.loads((out_dir / REPORT_FILE_NAME).read_text())
    assert report["ok"] is True
    assert not (data / REPORT_DIR_NAME).exists()
    assert (out_dir / quarantine_file_name(s.EVENTS)).read_text().strip().endswith(s.REASONS)
    assert "all rows accepted" in capsys.readouterr().out


def test_command_accepts_a_relative_data_folder(tmp_path, monkeypatch):
    """`make validate` passes data/sample, a relative path: the Data Docs must still build."""
    write_csv_tables(tmp_path / "data", clean_tables())
    monkeypatch.chdir(tmp_path)
    assert main(["--data", "data", "--now", NOW.isoformat()]) == 0
    assert (tmp_path / "data" / REPORT_DIR_NAME / "data_docs" / "index.html").exists()


def test_load_valid_tables_returns_typed_accepted_tables_and_the_report(tmp_path):
    tables, _ = with_bad_rows({s.TRANSACTIONS: clean_tables()[s.TRANSACTIONS]}, BAD_ROWS[:1])
    data = write_csv_tables(tmp_path / "data", tables)
    accepted, report = load_valid_tables(data, NOW)
    assert len(accepted[s.TRANSACTIONS]) == len(tables[s.TRANSACTIONS]) - 1
    assert accepted[s.TRANSACTIONS][s.TIMESTAMP].dtype == "datetime64[ns]"
    assert report["tables"][s.TRANSACTIONS]["quarantined"] == 1
    with pytest.raises(UserError, match="customers.*missing file"):
        load_valid_tables(
            write_csv_tables(tmp_path / "few", {s.EVENTS: clean_tables()[s.EVENTS]}),
            NOW,
            required_tables=[s.CUSTOMERS],
        )


def break_missing_column(folder: Path) -> str:
    tables = clean_tables()
    tables[s.TRANSACTIONS] = tables[s.TRANSACTIONS].drop(columns=[s.CHANNEL])
    write_csv_tables(folder, tables)
    return f"{folder / 'transactions.csv'}: missing required column(s) channel"


def break_empty_table(folder: Path) -> str:
    tables = clean_tables()
    tables[s.EVENTS] = tables[s.EVENTS].iloc[:0]
    write_csv_tables(folder, tables)
    return f"{folder / 'events.csv'}: empty table (no rows)"


def break_unreadable(folder: Path) -> str:
    write_csv_tables(folder, {s.CUSTOMERS: clean_tables()[s.CUSTOMERS]})
    (folder / "products.parquet").write_bytes(b"not parquet at all")
    return f"{folder / 'products.parquet'}: unreadable parquet file"


def break_no_tables(folder: Path) -> str:
    folder.mkdir(parents=True)
    (folder / "notes.txt").write_text("hello")
    return f"{folder}: no contract tables found"


def break_no_folder(folder: Path) -> str:
    return f"{folder}: no such data folder"


@pytest.mark.parametrize(
    "break_data",
    [break_missing_column, break_empty_table, break_unreadable, break_no_tables, break_no_folder],
)
def test_command_exits_2_with_one_line_naming_the_file(tmp_path, capsys, break_data):
    folder = tmp_path / "data"
    message = break_data(folder)
    assert main(["--data", str(folder), "--now", NOW.isoformat()]) == EXIT_USER_ERROR
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {message}")
    assert "Traceback" not in captured.err
    assert not (folder / REPORT_DIR_NAME).exists()


def test_command_exit_code_and_stderr_in_a_real_process(tmp_path):
    folder = tmp_path / "data"
    message = break_missing_column(folder)
    completed = subprocess.run(
        [sys.executable, "-m", "pipelines.validate", "--data", str(folder)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == EXIT_USER_ERROR
    assert completed.stderr.strip().splitlines() == [f"error: {message}"]
    assert completed.stdout == ""


def test_a_nullable_number_column_is_read_as_booleans_with_its_gaps_empty():
    customers = clean_tables()[s.CUSTOMERS].head(3).copy()
    customers[s.MARKETING_OPT_IN] = pd.array([1, None, 2], dtype="Int64")
    result = validate_tables({s.CUSTOMERS: customers}, NOW)
    assert result.accepted[s.CUSTOMERS][s.MARKETING_OPT_IN].tolist() == [True, pd.NA]
    assert result.quarantined[s.CUSTOMERS][s.REASONS].tolist() == ["marketing_opt_in: not a valid boolean"]
