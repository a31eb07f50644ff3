"""The online profile store: appended contract rows and materialised customer profiles.

`ProfileStore` is the interface the service and the pipelines use; `SQLiteProfileStore` is the
embedded default (one SQLite file in WAL mode), and a Redis store can follow behind the same methods.

What it holds:
- appended rows: accepted contract rows of the tables in `HISTORY_TABLES` (customers, transactions,
  events): the batch history written by `pipelines.materialize`, then the rows sent to POST /events,
  in typed columns derived from `features.schema`, each with an append-only sequence number and the
  number of the batch (one `append_rows` call) it came in;
- profiles: one row per customer (customer_id -> the values of a feature or score frame), with the
  `as_of` they were built for; float64 columns are packed into one little-endian float64 blob per
  row (exact, and cheap to write and read in bulk), the other columns into a JSON array; the
  frame's columns and dtypes are kept in `meta`, so frames read back have the dtypes written with;
- meta: string key -> string value (schema version, profile columns, model or feature versions).

Thread and process safety: each thread (and each process, after a fork) opens its own connection;
writes take SQLite's write lock up front (`BEGIN IMMEDIATE`) and wait up to `busy_timeout_s` for it,
so concurrent writers from several threads or processes queue instead of failing or losing rows.
A read-modify-write of some customers (read their history, append, write their rebuilt profiles)
runs inside `guarded(customer_ids)`, so that two workers cannot interleave and lose an update.
"""

from __future__ import annotations

import functools
import json
import os
import sqlite3
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pandas.api.types import pandas_dtype

from features import schema as s
from features.validation import accepted_dtypes

# Bump when the layout of the file changes; a file of another version is refused, not guessed at.
STORE_SCHEMA_VERSION = 1
# The contract tables whose rows are stored (materialised batch history, then POST /events) and read
# back as a customer's history; customers, so that a customer first seen through /events is known.
HISTORY_TABLES = (s.CUSTOMERS, s.TRANSACTIONS, s.EVENTS)

# Where the service and `pipelines.materialize` find the store unless told otherwise.
STORE_PATH_ENV = "SCORING_STORE_PATH"
DEFAULT_STORE_PATH = Path("data/profiles.sqlite")


def default_store_path() -> Path:
    return Path(os.environ.get(STORE_PATH_ENV) or DEFAULT_STORE_PATH)


SCHEMA_VERSION_KEY = "schema_version"
CONTRACT_KEY = "contract_columns"  # the contract columns the appended-row tables were made for
PROFILE_COLUMNS_KEY = "profile_columns"  # [[column, dtype], ...] of the profile frames
PROFILES_AS_OF_KEY = "profiles_as_of"  # as_of of the last put_profiles

# SQLite column types per contract dtype; timestamps are nanoseconds since the epoch (exact).
_SQL_TYPES = {
    "id": "TEXT",
    "string": "TEXT",
    "timestamp": "INTEGER",
    "int": "INTEGER",
    "float": "REAL",
    "bool": "INTEGER",
}
_SEQUENCE = "seq"
_BATCH = "batch"
_NAT = np.iinfo(np.int64).min  # numpy's NaT as int64


class StoreSchemaError(RuntimeError):
    """The store file was written by another store schema version or for another data contract."""


@dataclass(frozen=True)
class AppendResult:
    """What one `append_rows` call stored: its batch number, and the rows per table."""

    batch: int
    rows: dict[str, int]


@dataclass(frozen=True)
class Profile:
    """One customer's materialised row: the values by column (as written), and the as_of they hold for."""

    customer_id: str
    as_of: pd.Timestamp
    values: dict[str, Any]


class ProfileStore(ABC):
    """Appended contract rows, materialised customer profiles and metadata, safe across threads."""

    @abstractmethod
    def guarded(self, customer_ids: Iterable[str]) -> AbstractContextManager[None]:
        """A section no other thread or process can run a guarded section for these customers in.

        The store writes made inside it (`append_rows`, `put_profiles`, `set_meta`, ...) join it:
        they commit together when the section exits normally and roll back together when it raises;
        reads inside it see its own writes. Use it for a read-modify-write of these customers (read
        the history, append rows, write the profiles rebuilt from both), which would otherwise lose an
        update when two workers do it at once. Sections do not nest (a clear error, not a deadlock).

        A Redis store would take one lock key per customer (`SET lock:{id} token NX PX ttl`, in sorted
        id order so two sections cannot deadlock, released by token), queue the writes in one
        MULTI/EXEC pipeline sent at exit (or dropped on error), and overlay the queued writes on its
        reads; WATCH on the customers' keys with a retry is the lock-free alternative.
        """

    @abstractmethod
    def append_rows(self, tables: Mapping[str, pd.DataFrame]) -> AppendResult:
        """Append accepted contract rows (all tables in one transaction: all stored or none)."""

    @abstractmethod
    def histories(self, customer_ids: Iterable[str]) -> dict[str, pd.DataFrame]:
        """The appended rows of these customers per history table, in append order, contract dtypes."""

    def history(self, customer_id: str) -> dict[str, pd.DataFrame]:
        """The appended rows of one customer per history table (empty frames when there are none)."""
        return self.histories([customer_id])

    @abstractmethod
    def clear_history(self) -> None:
        """Delete every stored history row (a full re-materialisation starts from the batch data)."""

    @abstractmethod
    def count_rows(self, table: str) -> int:
        """How many rows of a history table have been appended."""

    @abstractmethod
    def put_profiles(
        self,
        profiles: pd.DataFrame,
        as_of: pd.Timestamp,
        metadata: Mapping[str, str] | None = None,
        replace: bool = False,
    ) -> int:
        """Insert or overwrite one profile per customer_id (with `metadata` in meta, atomically).

        `replace` deletes every stored profile first (a full re-materialisation, whose columns may
        differ from the stored ones). Returns the number of profiles written.
        """

    @abstractmethod
    def get_profile(self, customer_id: str) -> Profile | None:
        """One customer's profile, or None if there is none."""

    @abstractmethod
    def get_profiles(self, customer_ids: Iterable[str]) -> pd.DataFrame:
        """The profiles of the known ids among these, in the order asked, with the dtypes written."""

    def get_numbers(
        self, customer_ids: Iterable[str], columns: list[str]
    ) -> tuple[list[str], np.ndarray, list[pd.Timestamp]]:
        """(the known ids among these in the order asked, their values of the float64 `columns` as one
        matrix, each profile's as_of): the service's per-request path, no DataFrame on the way."""
        profiles = self.get_profiles(customer_ids)
        found = profiles[s.CUSTOMER_ID].astype(str).tolist()
        as_of = [pd.Timestamp(value) for value in profiles[s.AS_OF]] if s.AS_OF in profiles else []
        return found, profiles[columns].to_numpy(dtype=np.float64), as_of

    @abstractmethod
    def profile_ids(self, limit: int | None = None) -> list[str]:
        """Customer ids with a profile, sorted (the first `limit` when given)."""

    def profile_columns(self) -> list[tuple[str, str]]:
        """(column, dtype) of the stored profiles, customer_id excluded."""
        stored = self.get_meta(PROFILE_COLUMNS_KEY)
        return [tuple(pair) for pair in json.loads(stored)] if stored else []

    @abstractmethod
    def get_meta(self, key: str) -> str | None: ...

    @abstractmethod
    def set_meta(self, values: Mapping[str, str]) -> None: ...

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> ProfileStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class SQLiteProfileStore(ProfileStore):
    """The store in one SQLite file, WAL mode; one connection per thread and process."""

    def __init__(self, path: str | Path, busy_timeout_s: float = 30.0) -> None:
        self.path = Path(path)
        self.busy_timeout_s = busy_timeout_s
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._create_or_check_schema()
        except BaseException:
            self.close()
            raise

    # -- connections --------------------------------------------------------------------------
    def _connection(self) -> sqlite3.Connection:
        if self._closed:
            raise ValueError(f"{self.path}: the profile store is closed")
        local = self._local
        # A connection must not cross a fork: a forked child opens its own.
        if getattr(local, "pid", None) != os.getpid():
            connection = sqlite3.connect(
                self.path, timeout=self.busy_timeout_s, isolation_level=None, check_same_thread=False
            )
            connection.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_s * 1000)}")
            connection.execute("PRAGMA journal_mode = WAL")
            # WAL + NORMAL: a commit survives a crash of the process (not of the machine) without an
            # fsync per commit, which would cost milliseconds on every POST /events
            connection.execute("PRAGMA synchronous = NORMAL")
            local.connection, local.pid = connection, os.getpid()
            with self._lock:
                self._connections.append(connection)
        return local.connection

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction holding the write lock from its start (no upgrade deadlocks).

        Inside this thread's guarded section it is a savepoint of the section's transaction instead:
        it commits with the section, and a failed write is undone at once even if the caller goes on.
        """
        connection = self._connection()
        if self._guarding(connection):
            connection.execute("SAVEPOINT store_write")
            try:
                yield connection
            except BaseException:
                if connection.in_transaction:  # else SQLite has rolled the whole section back already
                    connection.execute("ROLLBACK TO store_write")
                    connection.execute("RELEASE store_write")
                raise
            connection.execute("RELEASE store_write")
            return
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield connection
        except BaseException:
            _roll_back(connection)
            raise
        connection.execute("COMMIT")

    @contextmanager
    def guarded(self, customer_ids: Iterable[str]) -> Iterator[None]:
        """One `BEGIN IMMEDIATE` transaction on this thread's connection, for any customers.

        SQLite has a single write lock per file, so the section excludes every other writer (every
        other guarded section, and plain writes too), not only those of these customers: coarser
        than the promise, never weaker. Readers are not blocked (WAL) and see the section's writes
        only once it commits. Another thread or process waits up to `busy_timeout_s` to enter.
        """
        connection = self._connection()
        if self._guarding(connection):
            raise RuntimeError(
                f"{self.path}: a guarded section is already open on this thread; guarded sections do not nest"
            )
        connection.execute("BEGIN IMMEDIATE")
        # per thread: the writes of this thread join the section, other threads' connections do not
        self._local.guarded = connection
        try:
            yield
        except BaseException:
            self._local.guarded = None
            _roll_back(connection)
            raise
        self._local.guarded = None
        try:
            connection.execute("COMMIT")
        except BaseException:
            _roll_back(connection)
            raise

    def _guarding(self, connection: sqlite3.Connection) -> bool:
        """Whether this thread's connection is inside a guarded section (not one inherited over a fork)."""
        return getattr(self._local, "guarded", None) is connection

    def close(self) -> None:
        """Close every connection this object opened in this process."""
        with self._lock:
            self._closed = True
            for connection in self._connections:
                connection.close()
            self._connections.clear()

    @property
    def journal_mode(self) -> str:
        return self._connection().execute("PRAGMA journal_mode").fetchone()[0]

    # -- schema -------------------------------------------------------------------------------
    def _create_or_check_schema(self) -> None:
        with self._write() as connection:
            connection.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            stored = dict(connection.execute("SELECT key, value FROM meta").fetchall())
            contract = json.dumps(_contract_columns())
            if SCHEMA_VERSION_KEY not in stored:
                for name in HISTORY_TABLES:
                    connection.execute(_create_history_table_sql(name))
                    connection.execute(
                        f'CREATE INDEX IF NOT EXISTS "{name}_by_customer" ON "{name}" ("{s.CUSTOMER_ID}", {_SEQUENCE})'
                    )
                connection.execute(
                    f"CREATE TABLE IF NOT EXISTS batches ({_BATCH} INTEGER PRIMARY KEY AUTOINCREMENT, appended_at TEXT)"
                )
                connection.execute(
                    f'CREATE TABLE IF NOT EXISTS profiles ("{s.CUSTOMER_ID}" TEXT PRIMARY KEY, '
                    f'"{s.AS_OF}" TEXT NOT NULL, numbers BLOB NOT NULL, others TEXT NOT NULL) WITHOUT ROWID'
                )
                _upsert_meta(connection, {SCHEMA_VERSION_KEY: str(STORE_SCHEMA_VERSION), CONTRACT_KEY: contract})
                return
            if stored[SCHEMA_VERSION_KEY] != str(STORE_SCHEMA_VERSION):
                raise StoreSchemaError(
                    f"{self.path}: profile store schema version {stored[SCHEMA_VERSION_KEY]}, but this code reads "
                    f"version {STORE_SCHEMA_VERSION}; materialise the profiles into a new store file"
                )
            if stored.get(CONTRACT_KEY) != contract:
                raise StoreSchemaError(
                    f"{self.path}: the appended-row tables were made for other contract columns "
                    f"({stored.get(CONTRACT_KEY)}) than features.schema has now ({contract}); "
                    "materialise the profiles into a new store file"
                )

    # -- appended rows ------------------------------------------------------------------------
    def append_rows(self, tables: Mapping[str, pd.DataFrame]) -> AppendResult:
        rows = {name: _history_rows(name, frame) for name, frame in tables.items()}
        with self._write() as connection:
            cursor = connection.execute(
                "INSERT INTO batches (appended_at) VALUES (?)", (pd.Timestamp.now("UTC").isoformat(),)
            )
            batch = int(cursor.lastrowid)
            for name, values in rows.items():
                columns = ", ".join(f'"{c}"' for c in (_BATCH, *s.TABLES[name].column_names))
                marks = ", ".join("?" * (len(s.TABLES[name].columns) + 1))
                connection.executemany(
                    f'INSERT INTO "{name}" ({columns}) VALUES ({marks})', ((batch, *row) for row in values)
                )
        return AppendResult(batch=batch, rows={name: len(values) for name, values in rows.items()})

    def histories(self, customer_ids: Iterable[str]) -> dict[str, pd.DataFrame]:
        wanted = json.dumps([str(customer_id) for customer_id in customer_ids])
        connection = self._connection()
        history: dict[str, pd.DataFrame] = {}
        for name in HISTORY_TABLES:
            table = s.TABLES[name]
            columns = ", ".join(f'"{c}"' for c in table.column_names)
            records = connection.execute(
                f'SELECT {columns} FROM "{name}" WHERE "{s.CUSTOMER_ID}" IN (SELECT value FROM json_each(?)) '
                f"ORDER BY {_SEQUENCE}",
                (wanted,),
            ).fetchall()
            history[name] = _history_frame(table, records)
        return history

    def clear_history(self) -> None:
        with self._write() as connection:
            for name in HISTORY_TABLES:
                connection.execute(f'DELETE FROM "{name}"')

    def count_rows(self, table: str) -> int:
        if table not in HISTORY_TABLES:
            raise ValueError(f"{table!r} is not a history table (expected one of {', '.join(HISTORY_TABLES)})")
        return int(self._connection().execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0])

    # -- profiles -----------------------------------------------------------------------------
    def put_profiles(
        self,
        profiles: pd.DataFrame,
        as_of: pd.Timestamp,
        metadata: Mapping[str, str] | None = None,
        replace: bool = False,
    ) -> int:
        ids = _profile_ids(profiles)
        # dtypes read once: a column lookup per column costs milliseconds on a one-row frame
        dtypes = {
            column: _dtype_name(dtype)
            for column, dtype in zip(profiles.columns, profiles.dtypes.tolist(), strict=True)
            if column != s.CUSTOMER_ID
        }
        layout = json.dumps([[column, dtype] for column, dtype in dtypes.items()])
        numbers = [c for c, dtype in dtypes.items() if _is_packed(dtype)]
        packed = set(numbers)
        others = [_encode_column(profiles[c]) for c in dtypes if c not in packed]
        block = profiles[numbers].to_numpy(dtype=_PACKED_DTYPE) if numbers else np.zeros((len(ids), 0), _PACKED_DTYPE)
        block = np.ascontiguousarray(block)
        other_rows = zip(*others, strict=True) if others else ([] for _ in ids)
        as_of_text = pd.Timestamp(as_of).isoformat()
        rows = [
            (customer_id, as_of_text, block[i].tobytes(), json.dumps(list(values)))
            for i, (customer_id, values) in enumerate(zip(ids, other_rows, strict=True))
        ]
        with self._write() as connection:
            stored = connection.execute("SELECT value FROM meta WHERE key = ?", (PROFILE_COLUMNS_KEY,)).fetchone()
            if replace:
                connection.execute("DELETE FROM profiles")
            elif stored is not None and stored[0] != layout:
                raise ValueError(
                    "the profile columns differ from the stored ones; write the full set with replace=True"
                )
            connection.executemany(
                f'INSERT OR REPLACE INTO profiles ("{s.CUSTOMER_ID}", "{s.AS_OF}", numbers, others) '
                "VALUES (?, ?, ?, ?)",
                rows,
            )
            _upsert_meta(connection, {PROFILE_COLUMNS_KEY: layout, PROFILES_AS_OF_KEY: as_of_text, **(metadata or {})})
        return len(rows)

    def get_profile(self, customer_id: str) -> Profile | None:
        found = (
            self._connection()
            .execute(
                f'SELECT "{s.AS_OF}", numbers, others FROM profiles WHERE "{s.CUSTOMER_ID}" = ?', (str(customer_id),)
            )
            .fetchone()
        )
        if found is None:
            return None
        layout = self._profile_layout()
        numbers = iter(np.frombuffer(found[1], dtype=_PACKED_DTYPE).tolist())
        others = iter(json.loads(found[2]))
        values = {
            column: next(numbers) if _is_packed(dtype) else _decode_value(next(others), dtype)
            for column, dtype in layout
        }
        return Profile(customer_id=str(customer_id), as_of=pd.Timestamp(found[0]), values=values)

    def get_profiles(self, customer_ids: Iterable[str]) -> pd.DataFrame:
        wanted = [str(customer_id) for customer_id in customer_ids]
        records = (
            self._connection()
            .execute(
                f'SELECT "{s.CUSTOMER_ID}", numbers, others FROM profiles '
                f'WHERE "{s.CUSTOMER_ID}" IN (SELECT value FROM json_each(?))',
                (json.dumps(wanted),),
            )
            .fetchall()
        )
        by_id = {record[0]: record[1:] for record in records}
        found = [customer_id for customer_id in dict.fromkeys(wanted) if customer_id in by_id]
        layout = self._profile_layout()
        packed = [column for column, dtype in layout if _is_packed(dtype)]
        block = np.frombuffer(b"".join(by_id[i][0] for i in found), dtype=_PACKED_DTYPE).reshape(
            len(found), len(packed)
        )
        other_rows = [json.loads(by_id[i][1]) for i in found]
        other_columns = iter(zip(*other_rows, strict=True) if other_rows else [()] * (len(layout) - len(packed)))
        frame = {s.CUSTOMER_ID: pd.array(found, dtype="str")}
        for column, dtype in layout:
            if _is_packed(dtype):
                frame[column] = block[:, packed.index(column)].astype("float64")
            else:
                frame[column] = _decode_column(next(other_columns), dtype)
        return pd.DataFrame(frame, index=pd.RangeIndex(len(found)))

    def _profile_layout(self) -> list[tuple[str, str]]:
        return self.profile_columns()

    def get_numbers(
        self, customer_ids: Iterable[str], columns: list[str]
    ) -> tuple[list[str], np.ndarray, list[pd.Timestamp]]:
        wanted = [str(customer_id) for customer_id in customer_ids]
        connection = self._connection()
        if len(wanted) == 1:  # the common case, and the cheapest query
            records = connection.execute(
                f'SELECT "{s.CUSTOMER_ID}", "{s.AS_OF}", numbers FROM profiles WHERE "{s.CUSTOMER_ID}" = ?', wanted
            ).fetchall()
        else:
            records = connection.execute(
                f'SELECT "{s.CUSTOMER_ID}", "{s.AS_OF}", numbers FROM profiles '
                f'WHERE "{s.CUSTOMER_ID}" IN (SELECT value FROM json_each(?))',
                (json.dumps(wanted),),
            ).fetchall()
        layout = connection.execute("SELECT value FROM meta WHERE key = ?", (PROFILE_COLUMNS_KEY,)).fetchone()
        positions, width = _packed_positions(layout[0] if layout else "[]", tuple(columns))
        by_id = {record[0]: record[1:] for record in records}
        found = [customer_id for customer_id in dict.fromkeys(wanted) if customer_id in by_id]
        block = np.frombuffer(b"".join(by_id[i][1] for i in found), dtype=_PACKED_DTYPE).reshape(len(found), width)
        return found, block[:, positions], [pd.Timestamp(by_id[i][0]) for i in found]

    def profile_ids(self, limit: int | None = None) -> list[str]:
        query = f'SELECT "{s.CUSTOMER_ID}" FROM profiles ORDER BY "{s.CUSTOMER_ID}"'
        if limit is not None:
            query += f" LIMIT {int(limit)}"
        return [row[0] for row in self._connection().execute(query).fetchall()]

    # -- meta ---------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        found = self._connection().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if found is None else found[0]

    def set_meta(self, values: Mapping[str, str]) -> None:
        with self._write() as connection:
            _upsert_meta(connection, values)


# ---------------------------------------------------------------------------
# Tables and rows
# ---------------------------------------------------------------------------
def _contract_columns() -> dict[str, list[list[str]]]:
    return {name: [[c.name, c.dtype] for c in s.TABLES[name].columns] for name in HISTORY_TABLES}


def _create_history_table_sql(name: str) -> str:
    columns = ", ".join(f'"{c.name}" {_SQL_TYPES[c.dtype]}' for c in s.TABLES[name].columns)
    return (
        f'CREATE TABLE IF NOT EXISTS "{name}" ({_SEQUENCE} INTEGER PRIMARY KEY AUTOINCREMENT, '
        f"{_BATCH} INTEGER NOT NULL REFERENCES batches ({_BATCH}), {columns})"
    )


def _upsert_meta(connection: sqlite3.Connection, values: Mapping[str, str]) -> None:
    connection.executemany(
        "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [(str(key), str(value)) for key, value in values.items()],
    )


def _history_rows(name: str, frame: pd.DataFrame) -> list[tuple[Any, ...]]:
    """Accepted contract rows as SQLite values, in contract column order."""
    if name not in HISTORY_TABLES:
        raise ValueError(f"{name!r} is not a history table (expected one of {', '.join(HISTORY_TABLES)})")
    table = s.TABLES[name]
    if list(frame.columns) != list(table.column_names):
        raise ValueError(f"{name}: expected the contract columns {', '.join(table.column_names)} (accepted rows)")
    typed = _as_accepted_dtypes(name, frame)
    columns = []
    for column in table.columns:
        values = typed[column.name]
        if column.dtype == "timestamp":
            array = values.to_numpy()
            columns.append(_none_where(array.view(np.int64).tolist(), np.isnat(array)))
            continue
        # one conversion with None for the missing values: a pandas isna per column costs more than
        # the few rows of a POST /events
        cells = values.to_numpy(dtype=object, na_value=None).tolist()
        columns.append([None if v is None else int(v) for v in cells] if column.dtype == "bool" else cells)
    return list(zip(*columns, strict=True))


def _roll_back(connection: sqlite3.Connection) -> None:
    # SQLite rolls some failed statements' transactions back itself; a second ROLLBACK would raise
    # and hide the original error
    if connection.in_transaction:
        connection.execute("ROLLBACK")


@functools.lru_cache(maxsize=len(HISTORY_TABLES))
def _accepted_dtype_list(name: str) -> tuple[tuple[str, ...], tuple[Any, ...]]:
    """(columns, pandas dtype objects) of a history table's accepted frames, built once."""
    dtypes = accepted_dtypes(s.TABLES[name])
    return tuple(dtypes), tuple(pandas_dtype(dtype) for dtype in dtypes.values())


def _as_accepted_dtypes(name: str, frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with the accepted dtypes; as given when it has them already (validation's frames do),
    because an astype costs milliseconds on every POST /events."""
    columns, dtypes = _accepted_dtype_list(name)
    if tuple(frame.dtypes.tolist()) == dtypes:
        return frame
    return frame.astype(dict(zip(columns, dtypes, strict=True)))


def _none_where(values: list[Any], missing: np.ndarray) -> list[Any]:
    if not missing.any():
        return values
    return [None if gone else value for value, gone in zip(values, missing, strict=True)]


def _history_frame(table: s.Table, records: list[tuple[Any, ...]]) -> pd.DataFrame:
    """Rows read back as a frame with the dtypes of validation's accepted frames."""
    columns = list(zip(*records, strict=True)) if records else [()] * len(table.columns)
    dtypes = accepted_dtypes(table)
    frame = {}
    for column, values in zip(table.columns, columns, strict=True):
        if column.dtype == "timestamp":
            frame[column.name] = np.array([_NAT if v is None else v for v in values], dtype=np.int64).view(
                "datetime64[ns]"
            )
        elif column.dtype == "float":
            frame[column.name] = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
        elif column.dtype == "bool":
            frame[column.name] = pd.array([None if v is None else bool(v) for v in values], dtype="boolean")
        else:
            frame[column.name] = pd.array(list(values), dtype=dtypes[column.name])
    # every column is built with its accepted dtype already (no astype: it costs milliseconds per call)
    return pd.DataFrame(frame, index=pd.RangeIndex(len(records)), copy=False)


# ---------------------------------------------------------------------------
# Profile values: JSON arrays in the stored column order; NaN and NA are null, timestamps are
# nanoseconds since the epoch, floats are written exactly (shortest round-trip repr).
# ---------------------------------------------------------------------------
_PACKED_DTYPE = np.dtype("<f8")


def _is_packed(dtype: str) -> bool:
    """Whether a profile column of this dtype goes into the float64 blob."""
    return dtype == "float64"


@functools.lru_cache(maxsize=32)
def _packed_positions(layout: str, columns: tuple[str, ...]) -> tuple[np.ndarray, int]:
    """Where each wanted column sits in a profile's float64 blob, and the blob's width."""
    packed = [column for column, dtype in json.loads(layout) if _is_packed(dtype)]
    where = {column: position for position, column in enumerate(packed)}
    missing = [column for column in columns if column not in where]
    if missing:
        raise KeyError(f"the stored profiles have no float column(s) {', '.join(missing[:5])}")
    return np.array([where[column] for column in columns], dtype=np.int64), len(packed)


@functools.lru_cache(maxsize=64)
def _dtype_name(dtype: Any) -> str:
    # str() of a numpy dtype costs about 15 microseconds: over a profile's ~90 columns, a millisecond
    return str(dtype)


def _profile_ids(profiles: pd.DataFrame) -> list[str]:
    if s.CUSTOMER_ID not in profiles.columns:
        raise ValueError(f"profiles need a {s.CUSTOMER_ID} column")
    # plain Python: pandas' isna, duplicated and astype cost half a millisecond on a one-row frame
    ids = profiles[s.CUSTOMER_ID].tolist()
    if any(value is None or value is pd.NA or value != value for value in ids):  # NaN != NaN
        raise ValueError(f"profiles: {s.CUSTOMER_ID} is missing in some rows")
    texts = [str(value) for value in ids]
    seen: set[str] = set()
    for text in texts:
        if text in seen:
            raise ValueError(f"profiles: repeated {s.CUSTOMER_ID} {text!r}")
        seen.add(text)
    return texts


def _encode_column(values: pd.Series) -> list[Any]:
    # numpy on the arrays, one to_numpy for the others: pandas' astype and isna cost a few tenths of
    # a millisecond per column, which POST /events pays for every text column of a one-row profile
    dtype = values.dtype
    if isinstance(dtype, np.dtype) and dtype.kind in "iub":
        return values.to_numpy().tolist()
    if isinstance(dtype, np.dtype) and dtype.kind == "f":  # float32: float64 is packed
        array = values.to_numpy()
        return _none_where(array.tolist(), np.isnan(array))
    if isinstance(dtype, np.dtype) and dtype.kind == "M":
        array = values.to_numpy().astype("datetime64[ns]")
        return _none_where(array.view(np.int64).tolist(), np.isnat(array))
    if pd.api.types.is_string_dtype(dtype) or isinstance(dtype, (pd.Int64Dtype, pd.BooleanDtype, pd.Float64Dtype)):
        return values.to_numpy(dtype=object, na_value=None).tolist()
    raise ValueError(f"profiles: column {values.name!r} has dtype {dtype}, which the store cannot keep")


def _decode_column(values: tuple[Any, ...], dtype: str) -> Any:
    if dtype.startswith("datetime64"):
        return np.array([_NAT if v is None else v for v in values], dtype=np.int64).view("datetime64[ns]").astype(dtype)
    if dtype in ("float64", "float32"):
        return np.array([np.nan if v is None else v for v in values], dtype=dtype)
    return pd.array(list(values), dtype=dtype)


def _decode_value(value: Any, dtype: str) -> Any:
    if value is None:
        return np.nan if dtype.startswith("float") else None
    if dtype.startswith("datetime64"):
        return pd.Timestamp(value)
    return value
