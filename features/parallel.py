"""Run the one feature builder on customer shards, one process per core.

Because a customer's row depends only on their own records plus the reference tables, the
shards are independent and their rows concatenate into exactly the bulk result. A distributed
engine can later partition by the same `shard_of` and call the same function.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable

import numpy as np
import pandas as pd

from features import schema as s
from features.customer import FeatureWindows, History, ReferenceTables, build_customer_features

# Shards handed to forked workers through the parent's memory (copy-on-write), not pickles.
_SHARDS: list[History] = []


def shard_of(customer_ids: pd.Series, n_shards: int) -> np.ndarray:
    """A stable shard number per customer id (the same id always lands in the same shard)."""
    hashes = pd.util.hash_array(customer_ids.astype("str").to_numpy(dtype=object))
    return (hashes % np.uint64(n_shards)).astype(np.int64)


def split_history(history: History, n_shards: int) -> list[History]:
    """The history cut into n_shards by customer."""
    parts = {
        name: frame.groupby(shard_of(frame[s.CUSTOMER_ID], n_shards), sort=False)
        for name, frame in (
            ("customers", history.customers),
            ("transactions", history.transactions),
            ("events", history.events),
        )
    }

    def piece(name: str, frame: pd.DataFrame, shard: int) -> pd.DataFrame:
        groups = parts[name]
        return groups.get_group(shard) if shard in groups.groups else frame.iloc[0:0]

    return [
        History(
            customers=piece("customers", history.customers, shard),
            transactions=piece("transactions", history.transactions, shard),
            events=piece("events", history.events, shard),
        )
        for shard in range(n_shards)
    ]


def build_customer_features_sharded(
    history: History,
    as_of: pd.Timestamp,
    reference: ReferenceTables,
    windows: FeatureWindows = FeatureWindows(),
    n_jobs: int = 2,
    builder: Callable[..., pd.DataFrame] = build_customer_features,
) -> pd.DataFrame:
    """The same rows as build_customer_features(history, ...), computed on n_jobs processes."""
    as_of = pd.Timestamp(as_of)
    if n_jobs <= 1:
        return builder(history.before(as_of), as_of, reference, windows)
    global _SHARDS
    _SHARDS = split_history(history.before(as_of), n_jobs)
    try:
        context = multiprocessing.get_context("fork")
        with context.Pool(n_jobs) as pool:
            parts = pool.starmap(
                _build_shard, [(i, as_of, reference, windows, builder) for i in range(n_jobs)]
            )
    finally:
        _SHARDS = []
    features = pd.concat([part for part in parts if len(part)], ignore_index=True)
    return features.sort_values(s.CUSTOMER_ID, ignore_index=True) if len(features) else parts[0]


def _build_shard(index, as_of, reference, windows, builder) -> pd.DataFrame:
    return builder(_SHARDS[index], as_of, reference, windows)
