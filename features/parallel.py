"""Run the one feature builder on customer shards, one process per core.

Because a customer's row depends only on their own records plus the reference tables, the
shards are independent and their rows concatenate into exactly the bulk result. A distributed
engine can later partition by the same `shard_of` and call the same function.

Memory matters at a million customers: the parent computes, per table, the row positions of
each shard (cheap integer arrays) and forked workers take their own rows, so the parent never
holds a second copy of the history.
"""

from __future__ import annotations

import math
import multiprocessing
from collections.abc import Callable

import numpy as np
import pandas as pd

from features import schema as s
from features.customer import DEFAULT_WINDOWS, FEATURE_INPUT_COLUMNS, FeatureWindows, build_customer_features
from features.history import HISTORY_TABLES, History
from features.reference import ReferenceTables

# Records per shard task: more, smaller shards than workers keep each worker's peak memory low
# (at a million customers, two half-size shards needed ~8 GB of working arrays at once).
ROWS_PER_SHARD = 4_000_000
# What forked workers read through the parent's memory (copy-on-write), instead of pickles.
_WORK: dict = {}


def shard_of(customer_ids: pd.Series, n_shards: int) -> np.ndarray:
    """A stable shard number per row (the same id always lands in the same shard)."""
    codes, uniques = pd.factorize(customer_ids, use_na_sentinel=False)
    # hash each distinct id once (a million, not every one of tens of millions of rows)
    hashes = pd.util.hash_array(np.asarray(uniques, dtype=object))
    return (hashes % np.uint64(n_shards)).astype(np.int64)[codes]


def shard_positions(history: History, n_shards: int, as_of: pd.Timestamp | None = None) -> dict[str, list[np.ndarray]]:
    """For each table, the row positions of each shard (only rows before as_of, if given)."""
    positions = {}
    for name in HISTORY_TABLES:
        frame = getattr(history, name)
        shard = shard_of(frame[s.CUSTOMER_ID], n_shards)
        if as_of is not None:
            shard = np.where((frame[s.TABLES[name].time_column] < as_of).to_numpy(), shard, -1)
        order = np.argsort(shard, kind="stable")
        bounds = np.searchsorted(shard[order], np.arange(n_shards + 1) - 0.5)
        positions[name] = [order[bounds[k] : bounds[k + 1]] for k in range(n_shards)]
    return positions


def take_shard(history: History, positions: dict[str, list[np.ndarray]], shard: int) -> History:
    """One shard's rows, with only the columns the feature builder reads."""
    return History(
        **{name: _take_columns(getattr(history, name), positions[name][shard], name) for name in HISTORY_TABLES}
    )


def _take_columns(frame: pd.DataFrame, rows: np.ndarray, table: str) -> pd.DataFrame:
    columns = [column for column in FEATURE_INPUT_COLUMNS[table] if column in frame]
    return frame[columns].take(rows)


def build_customer_features_sharded(
    history: History,
    as_of: pd.Timestamp,
    reference: ReferenceTables,
    windows: FeatureWindows = DEFAULT_WINDOWS,
    n_jobs: int = 2,
    builder: Callable[..., pd.DataFrame] = build_customer_features,
) -> pd.DataFrame:
    """The same rows as build_customer_features(history, ...), computed on n_jobs processes."""
    as_of = pd.Timestamp(as_of)
    if n_jobs <= 1:
        return builder(history, as_of, reference, windows)
    n_shards = n_jobs * max(1, math.ceil((len(history.transactions) + len(history.events)) / ROWS_PER_SHARD))
    _WORK.update(history=history, positions=shard_positions(history, n_shards, as_of))
    try:
        context = multiprocessing.get_context("fork")
        with context.Pool(n_jobs) as pool:
            tasks = [(k, as_of, reference, windows, builder) for k in range(n_shards)]
            parts = pool.starmap(_build_shard, tasks, chunksize=1)
    finally:
        _WORK.clear()
    non_empty = [part for part in parts if len(part)]
    if not non_empty:
        return parts[0]
    return pd.concat(non_empty, ignore_index=True).sort_values(s.CUSTOMER_ID, ignore_index=True)


def _build_shard(shard, as_of, reference, windows, builder) -> pd.DataFrame:
    return builder(take_shard(_WORK["history"], _WORK["positions"], shard), as_of, reference, windows)
