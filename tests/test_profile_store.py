"""pipelines.store: the SQLite profile store keeps what it is given, across restarts, threads and processes."""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest

from features import schema as s
from features.customer import build_customer_features
from features.history import HISTORY_TABLES, History
from features.small_batches import check_rows
from models.due import build_product_cycles
from pipelines.cli import data_end
from pipelines.profiles import build_reference, materialize
from pipelines.settings import load_settings
from pipelines.simulation import generate_tables
from pipelines.store import SQLiteProfileStore, StoreSchemaError
from pipelines.store.base import PROFILES_AS_OF_KEY
from pipelines.store.sqlite import SCHEMA_VERSION_KEY
from pipelines.store.state import STATE_KEY, read_materialized_state
from tests.builders import random_tables
from tests.test_validate import NOW, clean_tables

TOP_CATEGORIES = 5
AS_OF = pd.Timestamp("2024-07-01")


def accepted_rows() -> dict[str, pd.DataFrame]:
    """The clean transactions and events, validated: what POST /events would store."""
    tables = clean_tables()
    result = check_rows({name: tables[name] for name in HISTORY_TABLES}, NOW)
    return {name: result.accepted[name] for name in HISTORY_TABLES}


def customer_rows(tables: dict[str, pd.DataFrame], customer_id: str) -> dict[str, pd.DataFrame]:
    return {name: frame[frame[s.CUSTOMER_ID] == customer_id].reset_index(drop=True) for name, frame in tables.items()}


@pytest.fixture
def store(tmp_path):
    with SQLiteProfileStore(tmp_path / "profiles.sqlite") as opened:
        yield opened


def test_the_file_is_in_wal_mode(store):
    assert store.journal_mode == "wal"
    with sqlite3.connect(store.path) as other:
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_appended_rows_come_back_per_customer_with_contract_dtypes(store):
    rows = accepted_rows()
    result = store.append_rows(rows)
    assert result.rows == {name: len(frame) for name, frame in rows.items()}
    for customer_id in ("C1", "C2"):
        history = store.history(customer_id)
        assert list(history) == list(HISTORY_TABLES)
        for name, expected in customer_rows(rows, customer_id).items():
            pd.testing.assert_frame_equal(history[name], expected)
    nobody = store.history("nobody")
    for name in HISTORY_TABLES:
        assert nobody[name].empty
        assert nobody[name].dtypes.to_dict() == rows[name].dtypes.to_dict()


def test_history_feeds_the_feature_builder(store):
    rows = accepted_rows()
    store.append_rows(rows)
    tables = clean_tables()
    customers = check_rows({s.CUSTOMERS: tables[s.CUSTOMERS], s.PRODUCTS: tables[s.PRODUCTS]}, NOW).accepted
    reference = build_reference({**customers, **rows}, AS_OF, TOP_CATEGORIES)
    from_store = History.from_tables({s.CUSTOMERS: customers[s.CUSTOMERS], **store.history("C1")})
    from_store = build_customer_features(from_store, AS_OF, reference)
    full = History.from_tables({s.CUSTOMERS: customers[s.CUSTOMERS], **rows})
    expected = build_customer_features(full, AS_OF, reference)
    expected = expected[expected[s.CUSTOMER_ID] == "C1"].reset_index(drop=True)
    pd.testing.assert_frame_equal(from_store[from_store[s.CUSTOMER_ID] == "C1"].reset_index(drop=True), expected)


def test_append_refuses_frames_that_are_not_accepted_contract_rows(store):
    rows = accepted_rows()
    with pytest.raises(ValueError, match="not a history table"):
        store.append_rows({s.PRODUCTS: rows[s.TRANSACTIONS]})
    with pytest.raises(ValueError, match="expected the contract columns"):
        store.append_rows({s.EVENTS: rows[s.EVENTS].drop(columns=[s.VALUE])})
    assert store.count_rows(s.EVENTS) == 0


def feature_frame(n_customers: int, seed: int = 7) -> pd.DataFrame:
    """A real feature frame (float, str, int and timestamp columns), repeated to n_customers rows."""
    tables = random_tables(seed)
    history = History.from_tables(tables)
    as_of = pd.Timestamp("2025-01-01")
    features = build_customer_features(history, as_of, build_reference(tables, as_of, TOP_CATEGORIES))
    copies = -(-n_customers // len(features))
    frame = pd.concat([features] * copies, ignore_index=True).iloc[:n_customers]
    return frame.assign(**{s.CUSTOMER_ID: pd.array([f"c{i:07d}" for i in range(len(frame))], dtype="str")})


def test_profiles_round_trip_with_equal_values_and_dtypes(store):
    profiles = feature_frame(500)
    profiles.loc[3, s.GENDER] = np.nan  # a missing text value
    assert store.put_profiles(profiles, AS_OF, metadata={"feature_version": "abc"}) == 500
    pd.testing.assert_frame_equal(store.get_profiles(profiles[s.CUSTOMER_ID]), profiles)
    # in the order asked, unknown ids left out
    wanted = ["c0000010", "nobody", "c0000002"]
    picked = store.get_profiles(wanted)
    expected = profiles.set_index(s.CUSTOMER_ID).loc[["c0000010", "c0000002"]].reset_index()
    pd.testing.assert_frame_equal(picked, expected)
    one = store.get_profile("c0000003")
    assert one.as_of == AS_OF and one.customer_id == "c0000003"
    row = profiles.iloc[3]
    assert list(one.values) == [c for c in profiles.columns if c != s.CUSTOMER_ID]
    for column, value in one.values.items():
        if pd.isna(row[column]):
            assert pd.isna(value), column
        else:
            assert value == row[column], column
    assert store.get_meta("feature_version") == "abc"
    assert store.get_meta(PROFILES_AS_OF_KEY) == AS_OF.isoformat()


def test_profiles_without_a_usable_id_or_with_an_unstorable_column_are_refused(store):
    profiles = feature_frame(3)
    with pytest.raises(ValueError, match="missing in some rows"):
        store.put_profiles(profiles.assign(**{s.CUSTOMER_ID: ["c1", None, "c3"]}), AS_OF)
    with pytest.raises(ValueError, match="repeated customer_id 'c1'"):
        store.put_profiles(profiles.assign(**{s.CUSTOMER_ID: ["c1", "c2", "c1"]}), AS_OF)
    with pytest.raises(ValueError, match="cannot keep"):
        store.put_profiles(profiles.assign(when=pd.Timestamp("2024-01-01", tz="UTC")), AS_OF)
    assert store.get_profiles(["c1", "c2", "c3", *profiles[s.CUSTOMER_ID]]).empty


def test_unknown_customer_has_no_profile(store):
    assert store.get_profile("nobody") is None
    assert store.get_profiles(["nobody"]).empty
    store.put_profiles(feature_frame(5), AS_OF)
    assert store.get_profile("nobody") is None


def test_profiles_are_overwritten_and_other_columns_need_replace(store):
    profiles = feature_frame(20)
    store.put_profiles(profiles, AS_OF)
    later = pd.Timestamp("2024-08-01")
    changed = profiles.iloc[[0]].assign(**{s.TENURE_DAYS: 999.0})
    store.put_profiles(changed, later)
    assert store.get_profile(profiles[s.CUSTOMER_ID][0]).values[s.TENURE_DAYS] == 999.0
    assert store.get_profile(profiles[s.CUSTOMER_ID][0]).as_of == later
    assert store.get_profile(profiles[s.CUSTOMER_ID][1]).as_of == AS_OF
    # one customer's rebuild keeps its own as_of; the store's stays that of the full write
    assert store.get_meta(PROFILES_AS_OF_KEY) == AS_OF.isoformat()
    with pytest.raises(ValueError, match="replace=True"):
        store.put_profiles(profiles.drop(columns=[s.TENURE_DAYS]), later)
    store.put_profiles(profiles.drop(columns=[s.TENURE_DAYS]).iloc[:3], later, replace=True)
    assert len(store.get_profiles(profiles[s.CUSTOMER_ID])) == 3
    assert store.get_meta(PROFILES_AS_OF_KEY) == later.isoformat()
    with pytest.raises(ValueError, match="repeated customer_id"):
        store.put_profiles(pd.concat([profiles.iloc[:2]] * 2), later, replace=True)


def test_data_survives_closing_and_reopening(tmp_path):
    path = tmp_path / "profiles.sqlite"
    rows, profiles = accepted_rows(), feature_frame(50)
    with SQLiteProfileStore(path) as store:
        store.append_rows(rows)
        store.put_profiles(profiles, AS_OF)
        store.set_meta({"model_version": "3"})
    with SQLiteProfileStore(path) as reopened:
        pd.testing.assert_frame_equal(reopened.get_profiles(profiles[s.CUSTOMER_ID]), profiles)
        for name, expected in customer_rows(rows, "C1").items():
            pd.testing.assert_frame_equal(reopened.history("C1")[name], expected)
        assert reopened.get_meta("model_version") == "3"
    with pytest.raises(ValueError, match="closed"):
        reopened.get_profile("c0000000")


def test_a_store_of_another_schema_version_is_refused_clearly(tmp_path):
    path = tmp_path / "profiles.sqlite"
    SQLiteProfileStore(path).close()
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE meta SET value = '0' WHERE key = ?", (SCHEMA_VERSION_KEY,))
    with pytest.raises(StoreSchemaError, match=r"schema version 0, but this code reads version 1"):
        SQLiteProfileStore(path)


APPENDS_PER_WORKER = 15


def append_many(path: str, worker: int) -> int:
    """Append the clean rows APPENDS_PER_WORKER times, one call each (what POST /events does)."""
    rows = accepted_rows()
    with SQLiteProfileStore(path) as store:
        for _ in range(APPENDS_PER_WORKER):
            store.append_rows(rows)
    return worker


def test_concurrent_appends_from_threads_and_processes_lose_nothing(tmp_path):
    path = str(tmp_path / "profiles.sqlite")
    rows = accepted_rows()
    shared = SQLiteProfileStore(path)  # threads share one store object, each with its own connection
    context = multiprocessing.get_context("spawn")
    with context.Pool(3) as processes, ThreadPoolExecutor(4) as threads:
        in_processes = processes.starmap_async(append_many, [(path, worker) for worker in range(3)])
        in_threads = [
            threads.submit(lambda: [shared.append_rows(rows) for _ in range(APPENDS_PER_WORKER)]) for _ in range(4)
        ]
        assert sorted(in_processes.get(timeout=120)) == [0, 1, 2]
        for future in in_threads:
            future.result(timeout=120)
    appends = (3 + 4) * APPENDS_PER_WORKER
    for name in HISTORY_TABLES:
        assert shared.count_rows(name) == appends * len(rows[name])
    c1_transactions = (rows[s.TRANSACTIONS][s.CUSTOMER_ID] == "C1").sum()
    assert len(shared.history("C1")[s.TRANSACTIONS]) == appends * c1_transactions
    shared.close()


def test_frames_with_other_dtypes_are_still_typed_before_storing(store):
    # validation's frames skip the conversion; anything else must still be converted, not stored raw
    rows = accepted_rows()
    narrower = rows[s.TRANSACTIONS].astype({s.QUANTITY: "int32", s.TIMESTAMP: "datetime64[us]"})
    store.append_rows({s.TRANSACTIONS: narrower})
    expected = customer_rows({s.TRANSACTIONS: rows[s.TRANSACTIONS]}, "C1")[s.TRANSACTIONS]
    pd.testing.assert_frame_equal(store.history("C1")[s.TRANSACTIONS], expected)


# ---------------------------------------------------------------------------
# Guarded sections: one customer's read-modify-write, atomic and exclusive
# ---------------------------------------------------------------------------
def test_a_guarded_section_commits_its_appends_and_profiles_together(store):
    rows, profiles = accepted_rows(), feature_frame(3)
    other = SQLiteProfileStore(store.path)  # another worker's view of the same file
    with store.guarded(["C1", "C2"]):
        store.append_rows(rows)
        store.put_profiles(profiles, AS_OF)
        # the section reads its own writes; nobody else sees them before it ends
        assert store.count_rows(s.TRANSACTIONS) == len(rows[s.TRANSACTIONS])
        assert store.get_profile("c0000001") is not None
        assert other.count_rows(s.TRANSACTIONS) == 0
        assert other.get_profile("c0000001") is None
    assert other.count_rows(s.TRANSACTIONS) == len(rows[s.TRANSACTIONS])
    pd.testing.assert_frame_equal(other.get_profiles(profiles[s.CUSTOMER_ID]), profiles)
    other.close()


def test_an_error_in_a_guarded_section_rolls_back_every_write(store):
    rows, profiles = accepted_rows(), feature_frame(3)
    store.put_profiles(profiles, AS_OF)
    changed = profiles.assign(**{s.TENURE_DAYS: 999.0})
    with pytest.raises(RuntimeError, match="rebuild failed"), store.guarded(["C1"]):
        store.append_rows(rows)
        store.put_profiles(changed, pd.Timestamp("2024-08-01"))
        store.set_meta({"model_version": "9"})
        raise RuntimeError("rebuild failed")
    for name in HISTORY_TABLES:
        assert store.count_rows(name) == 0
    pd.testing.assert_frame_equal(store.get_profiles(profiles[s.CUSTOMER_ID]), profiles)
    assert store.get_meta("model_version") is None
    assert store.get_meta(PROFILES_AS_OF_KEY) == AS_OF.isoformat()
    # and the thread's connection is usable again: a plain write commits on its own
    store.append_rows(rows)
    with SQLiteProfileStore(store.path) as reader:
        assert reader.count_rows(s.TRANSACTIONS) == len(rows[s.TRANSACTIONS])


def test_a_failed_write_inside_a_guarded_section_undoes_only_itself(store):
    rows = accepted_rows()
    with store.guarded(["C1"]):
        store.append_rows(rows)
        with pytest.raises(ValueError, match="contract columns"):
            store.append_rows({s.EVENTS: rows[s.EVENTS].drop(columns=[s.VALUE])})
        store.set_meta({"model_version": "4"})
    assert store.count_rows(s.TRANSACTIONS) == len(rows[s.TRANSACTIONS])
    assert store.get_meta("model_version") == "4"


def test_guarded_sections_do_not_nest(store):
    with store.guarded(["C1"]):
        with pytest.raises(RuntimeError, match="do not nest"), store.guarded(["C2"]):
            pass
        store.set_meta({"model_version": "5"})
    with SQLiteProfileStore(store.path) as reader:
        assert reader.get_meta("model_version") == "5"


def test_another_worker_waits_until_a_guarded_section_ends(tmp_path):
    path = tmp_path / "profiles.sqlite"
    rows = accepted_rows()
    first, second = SQLiteProfileStore(path), SQLiteProfileStore(path)
    order: list[str] = []
    trying = threading.Event()

    def second_worker() -> int:
        trying.set()
        with second.guarded(["C1"]):
            order.append("second entered")
            return len(second.history("C1")[s.TRANSACTIONS])

    with ThreadPoolExecutor(1) as pool, first.guarded(["C1"]):
        seen_by_second = pool.submit(second_worker)
        trying.wait(timeout=30)
        time.sleep(0.3)  # room for the second to enter too early, if it could; the order below decides
        first.append_rows(rows)
        order.append("first leaves")
    assert seen_by_second.result(timeout=60) == (rows[s.TRANSACTIONS][s.CUSTOMER_ID] == "C1").sum()
    assert order == ["first leaves", "second entered"]
    first.close()
    second.close()


def test_the_materialised_state_round_trips_with_its_product_cycles(tmp_path):
    tables, _ = generate_tables(80, 7)  # accepted contract rows, event ids included
    as_of = data_end(tables) - pd.Timedelta(days=60)
    path = tmp_path / "profiles.sqlite"
    materialize(tables, as_of, load_settings(overrides=["features.n_jobs=1"]), path)
    with SQLiteProfileStore(path) as opened:
        state = read_materialized_state(opened)
        data = json.loads(opened.get_meta(STATE_KEY))
        expected = build_product_cycles(tables[s.TRANSACTIONS], tables[s.PRODUCTS], as_of)
        cycles = state.product_cycles
        assert cycles.as_of == as_of
        assert cycles.lookup.product_index.tolist() == expected.lookup.product_index.tolist()
        for name in ("typical_cycle_days", "gap_log_sd", "first_reorder_share", "reorder_share"):
            np.testing.assert_array_equal(getattr(cycles, name), getattr(expected, name))
        assert np.isfinite(cycles.typical_cycle_days).any()  # the catalogue has consumables
        # a store of this state version written before the cycles existed reads without them
        opened.set_meta({STATE_KEY: json.dumps({**data, "product_cycles": None})})
        assert read_materialized_state(opened).product_cycles is None
        assert read_materialized_state(opened).reference.top_categories == state.reference.top_categories
