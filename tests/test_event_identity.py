"""Event identity: one rule (`schema.identify_rows`) for the batch pipeline and POST /events.

An event with an `event_id` is that id within its customer, whatever else it says (a retry may carry
a new timestamp); an event without one is everything it says. A repeat is kept once and counted as a
duplicate: in a file (`features.validation.drop_repeated_rows`, run by `pipelines.validate`) and
against a customer's stored history (`service.events._drop_repeats`). Rows are hand-written text, as a
CSV file or a JSON body gives them.
"""

from __future__ import annotations

import json
import sqlite3

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features import schema as s
from features.small_batches import check_rows
from features.validation import ValidationResult, drop_repeated_rows, validate_tables
from pipelines import io
from pipelines.errors import UserError
from pipelines.store import SQLiteProfileStore, StoreSchemaError
from pipelines.store.sqlite import CONTRACT_KEY
from pipelines.validate import REPORT_DIR_NAME, REPORT_FILE_NAME, load_valid_tables, main
from service.events import _drop_repeats

NOW = pd.Timestamp("2024-06-30 12:00:00")
WHEN = "2024-01-01T10:00:00"
LATER = "2024-01-01T10:00:05"


def event(
    event_id: str | None = None,
    customer: str = "C1",
    when: str = WHEN,
    kind: str = s.EVENT_PRODUCT_VIEW,
    product: str | None = "P1",
) -> dict[str, str | None]:
    return {
        s.EVENT_ID: event_id,
        s.CUSTOMER_ID: customer,
        s.TIMESTAMP: when,
        s.EVENT_TYPE: kind,
        s.PRODUCT_ID: product,
        s.VALUE: None,
    }


def events_file(rows: list[dict[str, str | None]], with_ids: bool = True) -> pd.DataFrame:
    """The rows as a CSV file reads: text, blank cells empty; without the event_id column if asked."""
    frame = pd.DataFrame(rows, dtype="str")
    return frame if with_ids else frame.drop(columns=[s.EVENT_ID])


def validated(rows: list[dict[str, str | None]], with_ids: bool = True) -> ValidationResult:
    """What the batch pipeline makes of an events file: validation, then repeats kept once."""
    return drop_repeated_rows(validate_tables({s.EVENTS: events_file(rows, with_ids)}, NOW))


def typed(rows: list[dict[str, str | None]]) -> pd.DataFrame:
    """The rows as POST /events accepts them (every row here is valid)."""
    result = check_rows({s.EVENTS: events_file(rows)}, NOW)
    assert result.quarantined[s.EVENTS].empty
    return result.accepted[s.EVENTS]


def counts(result: ValidationResult) -> tuple[int, int, int, int]:
    report = result.report[s.EVENTS]
    return report["rows_in"], report["accepted"], report["quarantined"], report["duplicates"]


# ---------------------------------------------------------------------------
# The rule
# ---------------------------------------------------------------------------
def test_an_event_with_an_id_is_identified_by_customer_and_id_one_without_by_all_it_says():
    frame = typed([event("e1"), event(None)])
    with_id, without_id = s.identify_rows(s.EVENTS, frame)
    assert with_id.key == (s.CUSTOMER_ID, s.EVENT_ID)
    assert without_id.key == (s.CUSTOMER_ID, s.TIMESTAMP, s.EVENT_TYPE, s.PRODUCT_ID, s.VALUE)
    assert with_id.rows.tolist() == [True, False]
    assert without_id.rows.tolist() == [False, True]
    # a frame without the optional column has no ids: every row is identified by what it says
    groups = s.identify_rows(s.EVENTS, frame.drop(columns=[s.EVENT_ID]))
    assert [group.rows.tolist() for group in groups] == [[False, False], [True, True]]
    # an order line by its natural key
    (lines,) = s.identify_rows(s.TRANSACTIONS, pd.DataFrame({s.ORDER_ID: ["o1"], s.PRODUCT_ID: ["P1"]}))
    assert lines.key == (s.ORDER_ID, s.PRODUCT_ID) and lines.rows.tolist() == [True]


# ---------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------
def test_in_a_file_an_event_repeated_with_its_id_and_another_timestamp_is_a_duplicate():
    result = validated([event("e1"), event("e1", when=LATER)])
    assert counts(result) == (2, 1, 0, 1)
    kept = result.accepted[s.EVENTS]
    assert kept[s.TIMESTAMP].tolist() == [pd.Timestamp(WHEN)]  # the first row is the one kept


def test_in_a_file_two_events_alike_but_for_their_ids_are_both_kept():
    # and an event without an id is never the repeat of one with an id
    result = validated([event("e1"), event("e2"), event(None)])
    assert counts(result) == (3, 3, 0, 0)
    assert result.accepted[s.EVENTS][s.EVENT_ID].fillna("none").tolist() == ["e1", "e2", "none"]


def test_in_a_file_the_same_id_for_another_customer_is_another_event():
    result = validated([event("e1", customer="C1"), event("e1", customer="C2")])
    assert counts(result) == (2, 2, 0, 0)


def test_in_a_file_an_event_without_an_id_repeats_only_an_event_that_says_the_same():
    rows = [
        event(),
        event(),  # the same: a duplicate
        event(when=LATER),
        event(kind=s.EVENT_ADD_TO_CART),
        event(product=None, kind=s.EVENT_SEARCH),
        event(product=None, kind=s.EVENT_SEARCH),  # an empty product equals an empty product
    ]
    result = validated(rows, with_ids=False)
    assert counts(result) == (6, 4, 0, 2)


def test_rows_in_is_accepted_plus_quarantined_plus_duplicates_and_a_file_sent_twice_adds_nothing():
    rows = [event("e1"), event("e1", when=LATER), event(None), event("e2", kind="teleport"), event("e3")]
    once, twice = validated(rows), validated(rows + rows)
    for result in (once, twice):
        rows_in, accepted, quarantined, duplicates = counts(result)
        assert rows_in == accepted + quarantined + duplicates
    assert counts(once) == (5, 3, 1, 1)
    pd.testing.assert_frame_equal(twice.accepted[s.EVENTS], once.accepted[s.EVENTS])
    # the second copy: its broken row quarantined again, every other row a duplicate
    assert counts(twice) == (10, 3, 2, 1 + 4)


def test_a_file_without_the_event_id_column_is_read_and_validated(tmp_path):
    io.write_tables({s.EVENTS: events_file([event(), event(), event(when=LATER)], with_ids=False)}, tmp_path, "csv")
    assert s.EVENT_ID not in io.read_table(tmp_path / "events.csv").columns
    accepted, report = load_valid_tables(tmp_path, NOW)
    events = accepted[s.EVENTS]
    assert list(events.columns) == list(s.EVENTS_TABLE.column_names)
    assert events[s.EVENT_ID].isna().all() and len(events) == 2
    table_report = report["tables"][s.EVENTS]
    assert s.EVENT_ID in table_report["missing_optional_columns"]
    assert (table_report["rows_in"], table_report["accepted"], table_report["duplicates"]) == (3, 2, 1)


def test_the_validate_command_reports_and_prints_the_duplicates(tmp_path, capsys):
    io.write_tables({s.EVENTS: events_file([event("e1"), event("e1", when=LATER)])}, tmp_path, "csv")
    assert main(["--data", str(tmp_path), "--now", NOW.isoformat()]) == 0
    report = json.loads((tmp_path / REPORT_DIR_NAME / REPORT_FILE_NAME).read_text())
    table_report = report["tables"][s.EVENTS]
    assert (table_report["accepted"], table_report["quarantined"], table_report["duplicates"]) == (1, 0, 1)
    assert report["ok"] is True  # a repeat is not a broken row
    assert "events: 1 repeated row(s) counted as duplicates" in capsys.readouterr().out


def test_generated_events_carry_an_id_each(generated_data):
    ids = generated_data.events[s.EVENT_ID]
    assert ids.notna().all() and ids.is_unique
    assert ids.str.fullmatch(r"E\d{9,}").all()
    assert ids.is_monotonic_increasing  # numbered in time order, as the events are sorted


# ---------------------------------------------------------------------------
# POST /events: repeats against the stored history, by the same rule
# ---------------------------------------------------------------------------
def test_the_service_finds_an_event_resent_with_its_id_in_the_stored_history():
    stored = typed([event("e1"), event(None)])
    sent = typed([event("e1", when=LATER), event("e2"), event(None), event("e1", customer="C2")])
    kept, repeats = _drop_repeats({s.EVENTS: sent}, {s.EVENTS: stored})
    assert repeats == 2  # e1 with a new timestamp, and the event without an id that says the same
    assert kept[s.EVENTS][s.EVENT_ID].tolist() == ["e2", "e1"]
    assert kept[s.EVENTS][s.CUSTOMER_ID].tolist() == ["C1", "C2"]


ROW = st.fixed_dictionaries(
    {
        s.EVENT_ID: st.sampled_from([None, "e1", "e2"]),
        s.CUSTOMER_ID: st.sampled_from(["C1", "C2"]),
        s.TIMESTAMP: st.sampled_from([WHEN, LATER]),
        s.EVENT_TYPE: st.sampled_from([s.EVENT_PRODUCT_VIEW, s.EVENT_SEARCH]),
        s.PRODUCT_ID: st.sampled_from([None, "P1"]),
        s.VALUE: st.sampled_from([None, "1", "1.0", "2"]),
    }
)


@settings(max_examples=150, deadline=None)
@given(rows=st.lists(ROW, min_size=1, max_size=12), split=st.integers(0, 12))
def test_a_file_and_the_same_rows_posted_in_two_bodies_keep_the_same_events(rows, split):
    """The batch pipeline on one file, and POST /events on its first rows then the rest (the second
    body checked against what the first stored), keep the same rows in the same order."""
    in_file = drop_repeated_rows(check_rows({s.EVENTS: events_file(rows)}, NOW)).accepted[s.EVENTS]
    accepted = typed(rows)
    first, _ = _drop_repeats({s.EVENTS: accepted.iloc[:split]}, {})
    stored = first.get(s.EVENTS, accepted.iloc[:0])
    second, repeats = _drop_repeats({s.EVENTS: accepted.iloc[split:]}, {s.EVENTS: stored})
    posted = pd.concat([stored, second.get(s.EVENTS, accepted.iloc[:0])], ignore_index=True)
    pd.testing.assert_frame_equal(posted, in_file)


# ---------------------------------------------------------------------------
# The profile store
# ---------------------------------------------------------------------------
def test_the_store_keeps_event_ids(tmp_path):
    rows = typed([event("e1"), event(None, when=LATER)])
    with SQLiteProfileStore(tmp_path / "profiles.sqlite") as store:
        store.append_rows({s.EVENTS: rows})
        stored = store.histories(["C1"])[s.EVENTS]
    pd.testing.assert_frame_equal(stored, rows)
    assert stored[s.EVENT_ID].fillna("none").tolist() == ["e1", "none"]


def test_a_store_made_before_events_had_ids_is_refused_in_one_line_saying_what_to_run(tmp_path):
    path = tmp_path / "profiles.sqlite"
    SQLiteProfileStore(path).close()
    with sqlite3.connect(path) as connection:
        (contract,) = connection.execute("SELECT value FROM meta WHERE key = ?", (CONTRACT_KEY,)).fetchone()
        before = json.loads(contract)
        before[s.EVENTS] = [column for column in before[s.EVENTS] if column[0] != s.EVENT_ID]
        connection.execute("UPDATE meta SET value = ? WHERE key = ?", (json.dumps(before), CONTRACT_KEY))
    with pytest.raises(StoreSchemaError) as refused:
        SQLiteProfileStore(path)
    message = str(refused.value)
    assert isinstance(refused.value, UserError)  # the commands print it as one line, exit code 2
    assert len(message.splitlines()) == 1 and "[[" not in message  # what changed, not both column lists
    assert message.startswith(f"{path}: ") and "events: event_id is new" in message
    assert "python -m pipelines.materialize" in message and "make train" in message
