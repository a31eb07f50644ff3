"""POST /events: check contract rows, store the new ones, rebuild the affected profiles at once.

Rows pass `features.small_batches.check_rows`: the batch pipeline's rules and reasons, evaluated
cell by cell. A customer id first seen in transactions or events becomes a customer (a `customers`
row may come with it, and then must pass validation too, or its rows are rejected with it). A row
already stored, or repeated in the same call, is counted as a duplicate and not stored again
(`schema.ROW_IDENTITY`), so a retried call adds nothing. Accepted rows are appended to
the store and the affected customers' profiles are rebuilt with `build_customer_features`, from
their full stored history, at `as_of` = the materialised as_of, or just after their latest record
when that is later.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from features import schema as s
from features.customer import build_customer_features
from features.history import HISTORY_TABLES, History
from features.small_batches import check_rows
from features.validation import ContractError
from pipelines.store import ProfileStore, StoreBusyError
from pipelines.store.state import MaterializedState
from service.errors import RequestError, retry_after


class EventWriter:
    """Writes what POST /events sends into the profile store (thread-safe; safe across worker processes)."""

    def __init__(
        self,
        store: ProfileStore,
        state: MaterializedState,
        max_batch: int,
        now: Callable[[], pd.Timestamp],
    ) -> None:
        self.store = store
        self.state = state
        self.max_batch = max_batch
        self._now = now
        self._product_ids = state.reference.product_index.astype("str")  # reference ids for validation
        # one /events at a time per process, on top of the store's guard (which alone would be correct):
        # threads queued on this lock start the moment it is free, while SQLite's busy handler polls with
        # sleeps growing to 100 ms; other worker processes still queue on the store's guard
        self._lock = threading.Lock()

    def write(self, tables: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[str, Any]:
        """Validate, store and apply contract rows: {"accepted": n, "rejected": [{table, index, reason}],
        "duplicates": n, "customers_updated": [...]}; every row sent is counted in exactly one of the three."""
        if not tables:
            raise RequestError("body", f"send at least one of {', '.join(HISTORY_TABLES)} (a list of rows)")
        sizes = {name: len(rows) for name, rows in tables.items() if rows}
        if sum(sizes.values()) > self.max_batch:
            counts = ", ".join(f"{name} {size}" for name, size in sizes.items())
            raise RequestError(
                "body", f"at most {self.max_batch} rows per request in all, got {sum(sizes.values())} ({counts})", 413
            )
        raw = {name: _with_contract_columns(name, rows) for name, rows in tables.items() if rows}
        if not raw:
            return {"accepted": 0, "rejected": [], "duplicates": 0, "customers_updated": []}
        result = self._validate(raw)
        rejected = [
            {"table": name, "index": int(index), "reason": str(reason)}
            for name, frame in result.quarantined.items()
            for index, reason in zip(frame[s.ROW_NUMBER], frame[s.REASONS], strict=True)
        ]
        accepted = {name: frame for name, frame in result.accepted.items() if len(frame)}
        affected = _customer_ids(accepted)
        duplicates = 0
        if affected:
            # from reading their history to writing their profiles no other worker touches these
            # customers (no lost update, no order line stored twice); the append and the profiles
            # commit together, or not at all
            try:
                with self._lock, self.store.guarded(affected):
                    stored = self.store.histories(affected)
                    accepted, duplicates = _drop_repeats(accepted, stored)
                    if accepted:
                        self.store.append_rows(accepted)
                        self._rebuild(affected, stored, accepted)
            except StoreBusyError as error:
                # the section never started (or rolled back whole): the client may send the same body again
                raise RequestError(
                    "body",
                    f"{error}; nothing of this request was stored, send it again",
                    503,
                    retry_after(error.waited_s),
                ) from None
        rejected.sort(key=lambda item: (item["table"], item["index"]))
        return {
            "accepted": sum(len(frame) for frame in accepted.values()),
            "rejected": rejected,
            "duplicates": duplicates,
            "customers_updated": affected if accepted else [],
        }

    def _validate(self, raw: dict[str, pd.DataFrame]):
        unknown = sorted(set(raw) - set(HISTORY_TABLES))
        if unknown:
            raise RequestError(unknown[0], f"not a table that /events accepts ({', '.join(HISTORY_TABLES)})")
        # A customer id seen first in transactions or events becomes a customer; one sent with a
        # customers row must have that row accepted.
        sent_customers = set(raw[s.CUSTOMERS][s.CUSTOMER_ID].astype(str)) if s.CUSTOMERS in raw else set()
        referenced = {
            str(value)
            for name in (s.TRANSACTIONS, s.EVENTS)
            if name in raw and s.CUSTOMER_ID in raw[name]
            for value in raw[name][s.CUSTOMER_ID].tolist()  # a list: a pandas dropna costs more than the few rows
            if not _is_missing(value)
        }
        reference_ids = {
            s.CUSTOMERS: frozenset(referenced - sent_customers),  # text already: no index to build
            s.PRODUCTS: self._product_ids,
        }
        try:
            return check_rows(raw, self._now(), reference_ids)
        except ContractError as error:
            raise RequestError(error.table or "body", error.problem) from None

    def _rebuild(
        self, customer_ids: list[str], stored: dict[str, pd.DataFrame], accepted: dict[str, pd.DataFrame]
    ) -> None:
        """Rebuild and store the profiles of these customers from their stored plus newly accepted rows."""
        tables = {
            name: _stored_and_accepted(stored.get(name), accepted.get(name))
            for name in HISTORY_TABLES
            if name in stored or name in accepted
        }
        history = History(tables[s.CUSTOMERS], tables[s.TRANSACTIONS], tables[s.EVENTS])
        latest = _latest_record(history)
        floor = self.state.as_of
        as_of_by_customer = {
            customer_id: max(floor, just_after(latest[customer_id])) if customer_id in latest else floor
            for customer_id in customer_ids
        }
        as_ofs = sorted(set(as_of_by_customer.values()))
        for as_of in as_ofs:
            group = [customer_id for customer_id, value in as_of_by_customer.items() if value == as_of]
            # the history holds these customers only: with one as_of for all, no need to select them
            records = history if len(as_ofs) == 1 else history.for_customers(group)
            profiles = build_customer_features(records, as_of, self.state.reference, self.state.windows)
            if len(profiles):
                self.store.put_profiles(profiles, as_of)


def _with_contract_columns(name: str, rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """The rows as a frame with every column of the table's contract: a key a row leaves out is a
    missing value of that row (rejected with the reason, like any other), not a refused request."""
    rows = list(rows)
    frame = pd.DataFrame(rows, index=pd.RangeIndex(len(rows)))  # `{}` is a row too (from_records drops it)
    if name not in s.TABLES:
        return frame  # refused by name in `_validate`
    # an absent optional column is read as empty by validation already; only required ones are added
    absent = [column for column in s.TABLES[name].required_columns if column not in frame.columns]
    return frame.assign(**dict.fromkeys(absent)) if absent else frame


def just_after(moment: pd.Timestamp) -> pd.Timestamp:
    """The next whole second after `moment`: an as_of that includes it (records strictly before as_of
    count) and reads as a time, not as `10:00:00.000000001`."""
    # in integer nanoseconds (Python's % floors, like `floor("s")`): pandas' floor costs ~50 us a call
    nanoseconds = pd.Timestamp(moment).as_unit("ns").value
    next_second = pd.Timestamp(nanoseconds - nanoseconds % _NS_PER_SECOND + _NS_PER_SECOND, tz=moment.tz)
    # the unit the sum `floor + Timedelta` has: the finer of the two
    return next_second.as_unit(max(moment.unit, _ONE_SECOND.unit, key=_UNITS.index))


_NS_PER_SECOND = 10**9
_ONE_SECOND = pd.Timedelta(seconds=1)
_UNITS = ("s", "ms", "us", "ns")


def _customer_ids(tables: Mapping[str, pd.DataFrame]) -> list[str]:
    ids: set[str] = set()
    for frame in tables.values():
        ids.update(str(value) for value in frame[s.CUSTOMER_ID].tolist())
    return sorted(ids)


def _drop_repeats(
    accepted: dict[str, pd.DataFrame], stored: Mapping[str, pd.DataFrame]
) -> tuple[dict[str, pd.DataFrame], int]:
    """(the accepted rows that are new, how many were repeats): a row is a repeat when a row with
    its identity (`schema.identify_rows`: an event by customer and event_id, else by all it says) is
    stored or came earlier in this batch, so a retried call adds nothing and answers how many of its
    rows were already there."""
    kept, repeats = {}, 0
    for name, rows in accepted.items():
        seen = set(_key_tuples(stored[name], name)) if name in stored else set()
        is_new = []
        for identity in _key_tuples(rows, name):
            is_new.append(identity not in seen)
            seen.add(identity)
        new_rows = rows[np.array(is_new, dtype=bool)]
        repeats += len(rows) - len(new_rows)
        if len(new_rows):
            kept[name] = new_rows
    return kept, repeats


def _key_tuples(frame: pd.DataFrame, name: str) -> list[tuple[int | str | None, ...]]:
    """Each row's identity (`schema.identify_rows`) as a tuple: the number of its group, so that rows
    of two groups never match, then its values of the group's key as strings (None for a missing value)."""
    # plain tuples of strings: a customer's history is small, and pandas index builds cost milliseconds
    identities: list[tuple[int | str | None, ...]] = [()] * len(frame)
    for number, group in enumerate(s.identify_rows(name, frame)):
        if not group.rows.any():
            continue  # nor are its columns read: most bodies send every event with an id, or none
        columns = [[None if _is_missing(value) else str(value) for value in frame[c].tolist()] for c in group.key]
        if group.rows.all():
            return [(number, *values) for values in zip(*columns, strict=True)]
        for position in np.flatnonzero(group.rows).tolist():
            identities[position] = (number, *(values[position] for values in columns))
    return identities


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NaT or value is pd.NA


def _stored_and_accepted(stored: pd.DataFrame | None, accepted: pd.DataFrame | None) -> pd.DataFrame:
    """A table's stored rows followed by its accepted ones, on a fresh 0..n-1 index.

    The stored frame alone is returned as it is (read for this call, on a RangeIndex already): most
    batches touch one table, and a concat of the others would cost about a quarter of a millisecond each.
    """
    if accepted is None or (stored is not None and accepted.empty):
        return stored
    if stored is None or stored.empty:
        # accepted frames keep the input's row positions as their index
        return accepted.reset_index(drop=True)
    return pd.concat([stored, accepted], ignore_index=True)


def _latest_record(history: History) -> dict[str, pd.Timestamp]:
    """Each customer's latest transaction, event or signup time.

    Per table, the times in increasing order fill a dict (the last, the latest, stays); in numpy and
    integer nanoseconds: a Timestamp and a pandas missing-value check per row cost more than the rest.
    """
    latest_ns: dict[str, int] = {}
    for frame, column in (
        (history.customers, s.SIGNUP_DATE),
        (history.transactions, s.TIMESTAMP),
        (history.events, s.TIMESTAMP),
    ):
        times = frame[column].to_numpy(dtype="datetime64[ns]")
        present = ~np.isnat(times)
        ids = frame[s.CUSTOMER_ID].to_numpy(dtype=object)[present]
        oldest_first = np.argsort(times[present], kind="stable")
        in_table = dict(
            zip(ids[oldest_first].tolist(), times[present][oldest_first].view(np.int64).tolist(), strict=True)
        )
        for customer_id, moment in in_table.items():
            customer_id = str(customer_id)
            if customer_id not in latest_ns or moment > latest_ns[customer_id]:
                latest_ns[customer_id] = moment
    return {customer_id: pd.Timestamp(moment) for customer_id, moment in latest_ns.items()}
