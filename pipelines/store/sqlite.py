"""The profile store in one SQLite file, WAL mode: the embedded default behind `ProfileStore`.

Thread and process safety: each thread (and each process, after a fork) opens its own connection;
writes take SQLite's write lock up front (`BEGIN IMMEDIATE`) and wait up to `busy_timeout_s` for it,
so concurrent writers from several threads or processes queue instead of failing or losing rows;
one that waited longer gets `StoreBusyError`, with nothing written.
A read-modify-write of some customers (read their history, append, write their rebuilt profiles)
runs inside `guarded(customer_ids)`, so that two workers cannot interleave and lose an update.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

from features import schema as s
from features.history import HISTORY_TABLES
from pipelines.store.base import (
    PROFILE_COLUMNS_KEY,
    PROFILES_AS_OF_KEY,
    AppendResult,
    Profile,
    ProfileStore,
    StoreBusyError,
    StoreSchemaError,
)
from pipelines.store.codec import (
    PACKED_DTYPE,
    decode_column,
    decode_value,
    dtype_name,
    encode_column,
    history_frame,
    history_rows,
    is_packed,
    packed_positions,
    profile_ids,
)

# Bump when the layout of the file changes; a file of another version is refused, not guessed at.
STORE_SCHEMA_VERSION = 1
SCHEMA_VERSION_KEY = "schema_version"
CONTRACT_KEY = "contract_columns"  # the contract columns the appended-row tables were made for

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
# SQLite's answers when another connection holds the lock it needs (primary result codes)
_BUSY_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})


class SQLiteProfileStore(ProfileStore):
    """The store in one SQLite file, WAL mode; one connection per thread and process.

    `create=False` opens an existing store only: the file is first read, never written, and refused
    (StoreSchemaError naming it) when it is not a SQLite file, is another application's SQLite file,
    or is a store of another schema version or data contract.
    """

    def __init__(self, path: str | Path, busy_timeout_s: float = 30.0, create: bool = True) -> None:
        self.path = Path(path)
        self.busy_timeout_s = busy_timeout_s
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False
        if not create:
            # before any connection of ours: one would switch a foreign file to WAL, and the schema
            # check would add tables to it
            self._check_stored_schema(self._read_meta_read_only())
            return
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
        self._begin(connection)
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
        self._begin(connection)
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
        except sqlite3.OperationalError as error:
            _roll_back(connection)
            if error.sqlite_errorcode & 0xFF in _BUSY_CODES:
                raise StoreBusyError(self._busy_message(), self.busy_timeout_s) from error
            raise
        except BaseException:
            _roll_back(connection)
            raise

    def _begin(self, connection: sqlite3.Connection) -> None:
        """Take the write lock, waiting up to `busy_timeout_s`; StoreBusyError when another writer kept it."""
        try:
            connection.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as error:
            if error.sqlite_errorcode & 0xFF in _BUSY_CODES:
                raise StoreBusyError(self._busy_message(), self.busy_timeout_s) from error
            raise

    def _busy_message(self) -> str:
        return f"{self.path}: another writer has held the profile store for more than {self.busy_timeout_s:g} s"

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
            self._check_stored_schema(stored)

    def _check_stored_schema(self, stored: Mapping[str, str]) -> None:
        """StoreSchemaError unless `stored` (the meta table) is that of this schema version and contract."""
        contract = json.dumps(_contract_columns())
        if stored[SCHEMA_VERSION_KEY] != str(STORE_SCHEMA_VERSION):
            raise StoreSchemaError(
                f"{self.path}: profile store schema version {stored[SCHEMA_VERSION_KEY]}, but this code reads "
                f"version {STORE_SCHEMA_VERSION}; materialise the profiles into a new store file"
            )
        if stored.get(CONTRACT_KEY) != contract:
            raise StoreSchemaError(
                f"{self.path}: the appended-row tables were made for other contract columns than "
                f"features.schema has now ({_contract_change(stored.get(CONTRACT_KEY))}); materialise the "
                f"profiles into a new store file: move this one away, then run `python -m pipelines.materialize "
                f"--data DIR --profiles {self.path}` (`make train` does it too)"
            )

    def _read_meta_read_only(self) -> dict[str, str]:
        """The meta table of an existing store file, read on a read-only connection; StoreSchemaError
        when the file is not a SQLite database or not a profile store."""
        if not self.path.is_file():
            raise StoreSchemaError(f"{self.path}: no such profile store file")
        reader = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, timeout=self.busy_timeout_s)
        try:
            tables = {row[0] for row in reader.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            stored = dict(reader.execute("SELECT key, value FROM meta").fetchall()) if "meta" in tables else {}
        except sqlite3.DatabaseError as error:
            raise StoreSchemaError(f"{self.path}: not a readable SQLite database ({error})") from None
        finally:
            reader.close()
        if SCHEMA_VERSION_KEY not in stored:
            raise StoreSchemaError(
                f"{self.path}: a SQLite database but not a profile store (no {SCHEMA_VERSION_KEY} in a meta table)"
            )
        return stored

    # -- appended rows ------------------------------------------------------------------------
    def append_rows(self, tables: Mapping[str, pd.DataFrame]) -> AppendResult:
        rows = {name: history_rows(name, frame) for name, frame in tables.items()}
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

    def histories(self, customer_ids: Iterable[str], tables: Sequence[str] = HISTORY_TABLES) -> dict[str, pd.DataFrame]:
        wanted = json.dumps([str(customer_id) for customer_id in customer_ids])
        connection = self._connection()
        history: dict[str, pd.DataFrame] = {}
        for name in tables:
            table = s.TABLES[name]
            columns = ", ".join(f'"{c}"' for c in table.column_names)
            records = connection.execute(
                f'SELECT {columns} FROM "{name}" WHERE "{s.CUSTOMER_ID}" IN (SELECT value FROM json_each(?)) '
                f"ORDER BY {_SEQUENCE}",
                (wanted,),
            ).fetchall()
            history[name] = history_frame(table, records)
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
        ids = profile_ids(profiles)
        # dtypes read once: a column lookup per column costs milliseconds on a one-row frame
        dtypes = {
            column: dtype_name(dtype)
            # tolist: iterating an index of Arrow strings costs about a microsecond per label
            for column, dtype in zip(profiles.columns.tolist(), profiles.dtypes.tolist(), strict=True)
            if column != s.CUSTOMER_ID
        }
        layout = json.dumps([[column, dtype] for column, dtype in dtypes.items()])
        numbers = [c for c, dtype in dtypes.items() if is_packed(dtype)]
        packed = set(numbers)
        others = [encode_column(profiles[c]) for c in dtypes if c not in packed]
        block = _float_block(profiles, numbers) if numbers else np.zeros((len(ids), 0), PACKED_DTYPE)
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
            # the layout is written when it changes only: a rebuild after an event writes no 4 kB of it
            meta = {
                **({} if stored is not None and stored[0] == layout else {PROFILE_COLUMNS_KEY: layout}),
                **(metadata or {}),
            }
            # the store's as_of is that of a full write (or the first): a customer's rebuild after an
            # event has an as_of of its own, kept on that customer's row
            has_as_of = connection.execute("SELECT 1 FROM meta WHERE key = ?", (PROFILES_AS_OF_KEY,)).fetchone()
            if replace or has_as_of is None:
                meta[PROFILES_AS_OF_KEY] = as_of_text
            if meta:
                _upsert_meta(connection, meta)
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
        numbers = iter(np.frombuffer(found[1], dtype=PACKED_DTYPE).tolist())
        others = iter(json.loads(found[2]))
        values = {
            column: next(numbers) if is_packed(dtype) else decode_value(next(others), dtype) for column, dtype in layout
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
        packed = [column for column, dtype in layout if is_packed(dtype)]
        block = np.frombuffer(b"".join(by_id[i][0] for i in found), dtype=PACKED_DTYPE).reshape(len(found), len(packed))
        other_rows = [json.loads(by_id[i][1]) for i in found]
        other_columns = iter(zip(*other_rows, strict=True) if other_rows else [()] * (len(layout) - len(packed)))
        frame = {s.CUSTOMER_ID: pd.array(found, dtype=s.pandas_dtype_of("str"))}
        for column, dtype in layout:
            if is_packed(dtype):
                frame[column] = block[:, packed.index(column)].astype("float64")
            else:
                frame[column] = decode_column(next(other_columns), dtype)
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
        positions, width = packed_positions(layout[0] if layout else "[]", tuple(columns))
        by_id = {record[0]: record[1:] for record in records}
        found = [customer_id for customer_id in dict.fromkeys(wanted) if customer_id in by_id]
        block = np.frombuffer(b"".join(by_id[i][1] for i in found), dtype=PACKED_DTYPE).reshape(len(found), width)
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
# Tables
# ---------------------------------------------------------------------------
def _contract_columns() -> dict[str, list[list[str]]]:
    return {name: [[c.name, c.dtype] for c in s.TABLES[name].columns] for name in HISTORY_TABLES}


def _contract_change(stored: str | None) -> str:
    """How the stored contract columns (JSON) differ from the current ones, in a few words for one line
    (both lists in full run to a thousand characters): 'events: event_id is new'."""
    try:
        before = {name: [tuple(column) for column in columns] for name, columns in json.loads(stored or "{}").items()}
    except (ValueError, TypeError, AttributeError):
        return "the stored list is unreadable"
    changes = []
    for name, columns in _contract_columns().items():
        now = [tuple(column) for column in columns]
        new = [column[0] for column in now if column not in before.get(name, [])]
        gone = [column[0] for column in before.get(name, []) if column not in now]
        words = [f"{', '.join(new)} {'is' if len(new) == 1 else 'are'} new"] if new else []
        words += [f"{', '.join(gone)} {'is' if len(gone) == 1 else 'are'} gone"] if gone else []
        if words:
            changes.append(f"{name}: {' and '.join(words)}")
    return "; ".join(changes) or "the same columns in another order"


def _create_history_table_sql(name: str) -> str:
    columns = ", ".join(f'"{c.name}" {_SQL_TYPES[c.dtype]}' for c in s.TABLES[name].columns)
    return (
        f'CREATE TABLE IF NOT EXISTS "{name}" ({_SEQUENCE} INTEGER PRIMARY KEY AUTOINCREMENT, '
        f"{_BATCH} INTEGER NOT NULL REFERENCES batches ({_BATCH}), {columns})"
    )


def _float_block(profiles: pd.DataFrame, numbers: list[str]) -> np.ndarray:
    """The float64 columns `numbers` (every float64 column, in order) as a rows x columns array."""
    # select_dtypes takes the float block whole: selecting ~80 columns by name costs ~0.25 ms a call
    floats = profiles.select_dtypes(include=[np.float64])
    if floats.columns.tolist() != numbers:  # another float column (an id?) among them: by name
        floats = profiles[numbers]
    return floats.to_numpy(dtype=PACKED_DTYPE)


def _upsert_meta(connection: sqlite3.Connection, values: Mapping[str, str]) -> None:
    connection.executemany(
        "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [(str(key), str(value)) for key, value in values.items()],
    )


def _roll_back(connection: sqlite3.Connection) -> None:
    # SQLite rolls some failed statements' transactions back itself; a second ROLLBACK would raise
    # and hide the original error
    if connection.in_transaction:
        connection.execute("ROLLBACK")
