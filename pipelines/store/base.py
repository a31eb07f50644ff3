"""The online profile store's interface: appended contract rows and materialised customer profiles.

`ProfileStore` is the interface the service and the pipelines use; `SQLiteProfileStore`
(`pipelines.store.sqlite`) is the embedded default, and a Redis store can follow behind the same
methods. The store sits in `pipelines` because both sides use it: `pipelines.materialize` writes it,
the service reads it and appends what POST /events accepts.

What it holds:
- appended rows: accepted contract rows of the history tables (customers, transactions, events):
  the batch history written by `pipelines.materialize`, then the rows sent to POST /events, in typed
  columns derived from `features.schema`, each with an append-only sequence number and the number of
  the batch (one `append_rows` call) it came in;
- profiles: one row per customer (customer_id -> the values of a feature or score frame), with the
  `as_of` they were built for; the frame's columns and dtypes are kept in `meta`, so frames read back
  have the dtypes written with;
- meta: string key -> string value (schema version, profile columns, the materialised state of
  `pipelines.store.state`).
"""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features import schema as s
from features.history import HISTORY_TABLES
from pipelines.errors import UserError

# Where the service and `pipelines.materialize` find the store unless told otherwise.
STORE_PATH_ENV = "SCORING_STORE_PATH"
DEFAULT_STORE_PATH = Path("data/profiles.sqlite")

PROFILE_COLUMNS_KEY = "profile_columns"  # [[column, dtype], ...] of the profile frames
PROFILES_AS_OF_KEY = "profiles_as_of"  # as_of of the last full put_profiles


def default_store_path() -> Path:
    return Path(os.environ.get(STORE_PATH_ENV) or DEFAULT_STORE_PATH)


class StoreSchemaError(UserError, RuntimeError):
    """The store file was written by another store schema version or for another data contract.

    A UserError: the commands that open the store (materialise, train) say so in one line.
    """


class StoreBusyError(TimeoutError):
    """Another writer held the store longer than the store waits for it (`waited_s`); nothing was written."""

    def __init__(self, message: str, waited_s: float) -> None:
        super().__init__(message)
        self.waited_s = waited_s


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
        When another writer holds the store longer than the store waits, it raises StoreBusyError
        before anything is written.

        A Redis store would take one lock key per customer (`SET lock:{id} token NX PX ttl`, in sorted
        id order so two sections cannot deadlock, released by token), queue the writes in one
        MULTI/EXEC pipeline sent at exit (or dropped on error), and overlay the queued writes on its
        reads; WATCH on the customers' keys with a retry is the lock-free alternative.
        """

    @abstractmethod
    def append_rows(self, tables: Mapping[str, pd.DataFrame]) -> AppendResult:
        """Append accepted contract rows (all tables in one transaction: all stored or none)."""

    @abstractmethod
    def histories(self, customer_ids: Iterable[str], tables: Sequence[str] = HISTORY_TABLES) -> dict[str, pd.DataFrame]:
        """The appended rows of these customers per history table (of `tables`), in append order,
        contract dtypes."""

    def history(self, customer_id: str, tables: Sequence[str] = HISTORY_TABLES) -> dict[str, pd.DataFrame]:
        """The appended rows of one customer per history table (empty frames when there are none)."""
        return self.histories([customer_id], tables)

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
