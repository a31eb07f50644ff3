"""How the store keeps values: contract rows as SQL cells, profiles as a float blob plus JSON.

- history rows: accepted contract rows, in contract column order; timestamps are nanoseconds since
  the epoch (exact), booleans 0/1, missing values NULL;
- profiles: float64 columns are packed into one little-endian float64 blob per row (exact, and cheap
  to write and read in bulk), the other columns into a JSON array in the stored column order; NaN and
  NA are null, timestamps nanoseconds since the epoch, floats written exactly (shortest round-trip repr).
"""

from __future__ import annotations

import functools
import json
import math
from typing import Any

import numpy as np
import pandas as pd

from features import schema as s
from features.frames import frame_of_arrays
from features.history import HISTORY_TABLES

NAT = np.iinfo(np.int64).min  # numpy's NaT as int64
PACKED_DTYPE = np.dtype("<f8")


def history_rows(name: str, frame: pd.DataFrame) -> list[tuple[Any, ...]]:
    """Accepted contract rows as SQLite values, in contract column order."""
    if name not in HISTORY_TABLES:
        raise ValueError(f"{name!r} is not a history table (expected one of {', '.join(HISTORY_TABLES)})")
    table = s.TABLES[name]
    if frame.columns.tolist() != list(table.column_names):
        raise ValueError(f"{name}: expected the contract columns {', '.join(table.column_names)} (accepted rows)")
    typed = _as_accepted_dtypes(name, frame)
    columns = []
    for column in table.columns:
        values = typed[column.name]
        if column.dtype == "timestamp":
            array = values.to_numpy()
            columns.append(none_where(array.view(np.int64).tolist(), np.isnat(array)))
            continue
        # one conversion with None for the missing values: a pandas isna per column costs more than
        # the few rows of a POST /events
        cells = values.to_numpy(dtype=object, na_value=None).tolist()
        columns.append([None if v is None else int(v) for v in cells] if column.dtype == "bool" else cells)
    return list(zip(*columns, strict=True))


@functools.lru_cache(maxsize=len(HISTORY_TABLES))
def _accepted_dtype_list(name: str) -> tuple[tuple[str, ...], tuple[Any, ...]]:
    """(columns, pandas dtype objects) of a history table's accepted frames, built once."""
    dtypes = s.accepted_dtypes(s.TABLES[name])
    return tuple(dtypes), tuple(s.pandas_dtype_of(dtype) for dtype in dtypes.values())


def _as_accepted_dtypes(name: str, frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with the accepted dtypes; as given when it has them already (validation's frames do),
    because an astype costs milliseconds on every POST /events."""
    columns, dtypes = _accepted_dtype_list(name)
    if tuple(frame.dtypes.tolist()) == dtypes:
        return frame
    return frame.astype(dict(zip(columns, dtypes, strict=True)))


def none_where(values: list[Any], missing: np.ndarray) -> list[Any]:
    if not missing.any():
        return values
    return [None if gone else value for value, gone in zip(values, missing, strict=True)]


def history_frame(table: s.Table, records: list[tuple[Any, ...]]) -> pd.DataFrame:
    """Rows read back as a frame with the dtypes of validation's accepted frames."""
    columns = list(zip(*records, strict=True)) if records else [()] * len(table.columns)
    _, dtypes = _accepted_dtype_list(table.name)
    frame = {}
    for column, dtype, values in zip(table.columns, dtypes, columns, strict=True):
        if column.dtype == "timestamp":
            frame[column.name] = np.array([NAT if v is None else v for v in values], dtype=np.int64).view(
                "datetime64[ns]"
            )
        elif column.dtype == "float":
            frame[column.name] = np.array(values, dtype=np.float64)  # None is NaN
        elif column.dtype == "bool":
            frame[column.name] = pd.array([None if v is None else bool(v) for v in values], dtype=dtype)
        else:
            # the dtype object, not its name: pandas looks a name up anew per call
            frame[column.name] = pd.array(list(values), dtype=dtype)
    # every column is built with its accepted dtype already (no astype: it costs milliseconds per call)
    return frame_of_arrays(frame, len(records))


# ---------------------------------------------------------------------------
PACKED_DTYPE = np.dtype("<f8")


def is_packed(dtype: str) -> bool:
    """Whether a profile column of this dtype goes into the float64 blob."""
    return dtype == "float64"


@functools.lru_cache(maxsize=32)
def packed_positions(layout: str, columns: tuple[str, ...]) -> tuple[np.ndarray, int]:
    """Where each wanted column sits in a profile's float64 blob, and the blob's width."""
    packed = [column for column, dtype in json.loads(layout) if is_packed(dtype)]
    where = {column: position for position, column in enumerate(packed)}
    missing = [column for column in columns if column not in where]
    if missing:
        raise KeyError(f"the stored profiles have no float column(s) {', '.join(missing[:5])}")
    return np.array([where[column] for column in columns], dtype=np.int64), len(packed)


@functools.lru_cache(maxsize=64)
def dtype_name(dtype: Any) -> str:
    # str() of a numpy dtype costs about 15 microseconds: over a profile's ~90 columns, a millisecond
    return str(dtype)


def profile_ids(profiles: pd.DataFrame) -> list[str]:
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


def encode_column(values: pd.Series) -> list[Any]:
    # numpy on the arrays, one to_numpy for the others: pandas' astype and isna cost a few tenths of
    # a millisecond per column, which POST /events pays for every text column of a one-row profile
    dtype = values.dtype
    if isinstance(dtype, np.dtype) and dtype.kind in "iub":
        return values.to_numpy().tolist()
    if isinstance(dtype, np.dtype) and dtype.kind == "f":  # float32: float64 is packed
        array = values.to_numpy()
        return none_where(array.tolist(), np.isnan(array))
    if isinstance(dtype, np.dtype) and dtype.kind == "M":
        array = values.to_numpy().astype("datetime64[ns]")
        return none_where(array.view(np.int64).tolist(), np.isnat(array))
    if pd.api.types.is_string_dtype(dtype) or isinstance(dtype, (pd.Int64Dtype, pd.BooleanDtype, pd.Float64Dtype)):
        return values.to_numpy(dtype=object, na_value=None).tolist()
    raise ValueError(f"profiles: column {values.name!r} has dtype {dtype}, which the store cannot keep")


def decode_column(values: tuple[Any, ...], dtype: str) -> Any:
    if dtype.startswith("datetime64"):
        return np.array([NAT if v is None else v for v in values], dtype=np.int64).view("datetime64[ns]").astype(dtype)
    if dtype in ("float64", "float32"):
        return np.array([np.nan if v is None else v for v in values], dtype=dtype)
    return pd.array(list(values), dtype=s.pandas_dtype_of(dtype))


def decode_value(value: Any, dtype: str) -> Any:
    if value is None:
        return np.nan if dtype.startswith("float") else None
    if dtype.startswith("datetime64"):
        return pd.Timestamp(value)
    return value


def json_value(value: Any) -> Any:
    """A JSON-safe scalar: NaN, NA and NaT become None, numpy numbers plain Python, timestamps ISO text."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value
