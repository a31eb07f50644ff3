"""Column builders for assembly: integer codes -> Arrow strings, ids, timestamps and nullable ints."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
import pyarrow as pa

from pipelines.simulation.blocks import Block
from pipelines.simulation.window import Window


def make_ids(prefix: str, count: int, min_digits: int) -> pa.Array:
    """prefix + zero-padded 1-based numbers, built straight into an Arrow string buffer."""
    digits = max(min_digits, len(str(count)))
    width = len(prefix) + digits
    chars = np.empty((count, width), dtype=np.uint8)
    chars[:, : len(prefix)] = np.frombuffer(prefix.encode("ascii"), dtype=np.uint8)
    numbers = np.arange(1, count + 1, dtype=np.int64)
    for position in range(width - 1, len(prefix) - 1, -1):
        chars[:, position] = ord("0") + numbers % 10
        numbers //= 10
    offsets = np.arange(0, count * width + 1, width, dtype=np.int64)
    return pa.LargeStringArray.from_buffers(count, pa.py_buffer(offsets), pa.py_buffer(chars.reshape(-1)))


def take_strings(values: pa.Array, codes: np.ndarray) -> pd.Series:
    """A pandas "str" column of values[codes]; negative codes become missing."""
    missing = codes < 0
    indices = pa.array(np.where(missing, 0, codes), mask=missing if missing.any() else None)
    return pd.Series(pd.array(values.take(indices), dtype="str"))


def string_values(values: Iterable[str]) -> pa.Array:
    return pa.array(list(values), type=pa.large_string())


def seconds_to_timestamps(second: np.ndarray, window: Window, missing: np.ndarray | None = None) -> pd.Series:
    """Seconds from window start to tz-naive datetime64[us] (the pandas 3 default unit)."""
    stamps = (window.start_microseconds + second.astype(np.int64) * 1_000_000).view("datetime64[us]")
    if missing is not None:
        stamps[missing] = np.datetime64("NaT")
    return pd.Series(stamps)


def concat_field(blocks: list[Block], name: str) -> np.ndarray:
    return np.concatenate([getattr(block, name) for block in blocks])


def concat_profile(blocks: list[Block], name: str) -> np.ndarray:
    return np.concatenate([getattr(block.profiles, name) for block in blocks])


def nullable_ints(values: np.ndarray, missing: np.ndarray) -> pd.arrays.IntegerArray:
    """An Int64 column: what a Parquet reader returns for an integer column with gaps."""
    return pd.arrays.IntegerArray(np.where(missing, 0, values).astype(np.int64), missing.copy())
