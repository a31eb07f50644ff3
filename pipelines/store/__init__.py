"""The online profile store and the materialised state it carries (see `pipelines.store.base`).

`pipelines.materialize` fills it (history, profiles, reference tables); the service reads profiles
from it and appends what POST /events accepts.
"""

from pipelines.store.base import (
    DEFAULT_STORE_PATH,
    STORE_PATH_ENV,
    AppendResult,
    Profile,
    ProfileStore,
    StoreBusyError,
    StoreSchemaError,
    default_store_path,
)
from pipelines.store.sqlite import SQLiteProfileStore

__all__ = [
    "DEFAULT_STORE_PATH",
    "STORE_PATH_ENV",
    "AppendResult",
    "Profile",
    "ProfileStore",
    "SQLiteProfileStore",
    "StoreBusyError",
    "StoreSchemaError",
    "default_store_path",
]
