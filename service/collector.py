"""The garbage collector in a serving process (a worker and its helper processes).

A collection's pause is part of some request's latency. What lives as long as the process (models,
reference tables, imported modules) is moved out of the collector's scans once loaded, and a full
collection, which scans everything else, runs a hundred times less often than CPython's default.
"""

from __future__ import annotations

import gc

# gen-2 threshold (CPython's default is 10): a full pass waits for 1,000 gen-1 passes instead of 10.
# While BentoML kept every request's context alive for a minute (`service.request_timeout`), a full
# pass over those objects took 20-30 ms every second or two, which was most of the p99.
FULL_COLLECTION_THRESHOLD = 1000


def keep_out_of_collections() -> None:
    """What is alive now lives as long as the process: out of the collector's scans. Not after a
    reload: a replaced model's objects must stay collectable."""
    gc.collect()
    gc.freeze()


def collect_fully_less_often() -> None:
    """Young collections as they are; a full one after FULL_COLLECTION_THRESHOLD gen-1 passes."""
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_COLLECTION_THRESHOLD)
