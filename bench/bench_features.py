"""Benchmark: customer features on a large generated data set, beside DuckDB for the RFM core.

    python -m bench.bench_features --data DIR [--as-of 2025-10-01] [--n-jobs 2]

Generate the data first (`python -m pipelines.generate --customers 1000000 --seed 1 --out DIR`).
Prints: rows/s of the full feature build (both cores), peak memory, the RFM aggregates in the
pandas/numpy path and in DuckDB on the same frames, their ratio, and one customer's rebuild time
(the service's path after an event). Results go to docs/BENCHMARKS.md by hand.
"""

from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

from features import schema as s
from features.customer import FeatureWindows, build_customer_features
from features.history import History
from features.parallel import build_customer_features_sharded
from pipelines.io import read_tables
from pipelines.profiles import build_reference
from pipelines.settings import PropensitySettings

TOP_CATEGORIES = PropensitySettings().top_categories

RFM_WINDOWS = (30, 90, 365)


def used_memory_gb() -> float:
    """Memory in use on the whole machine (MemTotal - MemAvailable), in GB."""
    info = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
    kilobytes = int(info["MemTotal"].split()[0]) - int(info["MemAvailable"].split()[0])
    return kilobytes / 1024**2


class MemoryWatch:
    """Samples machine-wide memory in a thread: the peak above the level at start is what this
    job (parent and forked workers together, shared pages counted once) needed."""

    def __init__(self, interval: float = 0.2):
        self.interval, self.baseline, self.peak = interval, used_memory_gb(), 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, used_memory_gb() - self.baseline)
            time.sleep(self.interval)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak


def rfm_numpy(transactions: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """The RFM core (recency, orders, spend; all time and per window) the way the builder does it:
    integer customer codes and bincount over window masks."""
    # as the builder does: arrays and masks, never a filtered copy of the frame
    timestamps = transactions[s.TIMESTAMP].to_numpy()
    quantity = transactions[s.QUANTITY].to_numpy(dtype=float)
    bought = (timestamps < as_of.to_datetime64()) & (quantity > 0)
    all_codes, ids = pd.factorize(transactions[s.CUSTOMER_ID])
    codes, n = all_codes[bought], len(ids)
    days_ago = (as_of.to_datetime64() - timestamps[bought]) / np.timedelta64(1, "D")
    value = quantity[bought] * transactions[s.UNIT_PRICE].to_numpy(dtype=float)[bought]
    recency = np.full(n, np.inf)
    np.minimum.at(recency, codes, days_ago)
    columns = {"recency": recency, "lines": np.bincount(codes, minlength=n), "spend": np.bincount(codes, value, n)}
    for days in RFM_WINDOWS:
        mask = days_ago < days
        columns[f"lines_{days}d"] = np.bincount(codes[mask], minlength=n)
        columns[f"spend_{days}d"] = np.bincount(codes[mask], value[mask], n)
    summary = pd.DataFrame(columns, index=ids)
    return summary[summary["lines"] > 0]  # buyers only, as DuckDB's GROUP BY returns


def as_arrow(transactions: pd.DataFrame):
    """The columns DuckDB needs as an Arrow table (zero-copy for Arrow-backed string columns)."""
    import pyarrow as pa

    columns = [s.CUSTOMER_ID, s.TIMESTAMP, s.QUANTITY, s.UNIT_PRICE]
    return pa.Table.from_pandas(transactions[columns], preserve_index=False)


def rfm_duckdb(transactions, as_of: pd.Timestamp, threads: int = 2) -> pd.DataFrame:
    """The same aggregates in one DuckDB GROUP BY with FILTER clauses, over an Arrow table."""
    import duckdb

    connection = duckdb.connect()
    connection.execute(f"SET threads = {threads}")
    connection.register("transactions", transactions)
    cutoff = as_of.strftime("%Y-%m-%d %H:%M:%S")
    windows = ",\n".join(
        f"count(*) FILTER (WHERE ts >= TIMESTAMP '{cutoff}' - INTERVAL {d} DAY) AS lines_{d}d, "
        f"sum(value) FILTER (WHERE ts >= TIMESTAMP '{cutoff}' - INTERVAL {d} DAY) AS spend_{d}d"
        for d in RFM_WINDOWS
    )
    query = f"""
        WITH purchases AS (
            SELECT {s.CUSTOMER_ID} AS customer, "{s.TIMESTAMP}" AS ts, {s.QUANTITY} * {s.UNIT_PRICE} AS value
            FROM transactions WHERE "{s.TIMESTAMP}" < TIMESTAMP '{cutoff}' AND {s.QUANTITY} > 0)
        SELECT customer, date_diff('second', max(ts), TIMESTAMP '{cutoff}') / 86400.0 AS recency,
               count(*) AS lines, sum(value) AS spend, {windows}
        FROM purchases GROUP BY customer
    """
    return connection.execute(query).df().set_index("customer")


def timed(function, *args, **kwargs):
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--as-of", default="2025-10-01")
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="repeats of the RFM comparison (best kept)")
    args = parser.parse_args(argv)
    as_of = pd.Timestamp(args.as_of)

    watch = MemoryWatch()
    tables, read_seconds = timed(read_tables, args.data)
    sizes = {name: len(frame) for name, frame in tables.items()}
    print(f"read {sizes} in {read_seconds:.1f} s")
    history = History.from_tables(tables)

    reference, reference_seconds = timed(build_reference, tables, as_of, TOP_CATEGORIES)
    features, feature_seconds = timed(
        build_customer_features_sharded, history, as_of, reference, FeatureWindows(), n_jobs=args.n_jobs
    )
    print(
        f"features: {len(features):,} customers x {features.shape[1]} columns in {feature_seconds:.1f} s "
        f"(+ reference tables {reference_seconds:.1f} s) = {len(features) / feature_seconds:,.0f} rows/s "
        f"on {args.n_jobs} processes; peak memory above start so far {watch.peak:.1f} GB "
        f"(data as read: {sum(f.memory_usage(deep=True).sum() for f in tables.values()) / 1024**3:.1f} GB)"
    )

    transactions = tables[s.TRANSACTIONS]
    numpy_best = min(timed(rfm_numpy, transactions, as_of)[1] for _ in range(args.repeats))
    arrow_transactions, arrow_seconds = timed(as_arrow, transactions)
    duck_result, _ = timed(rfm_duckdb, arrow_transactions, as_of)
    duck_best = min(timed(rfm_duckdb, arrow_transactions, as_of)[1] for _ in range(args.repeats))
    print(f"(handing the frame to DuckDB as Arrow took {arrow_seconds:.2f} s, not counted)")
    ours = rfm_numpy(transactions, as_of)
    same = np.allclose(ours.loc[duck_result.index, "spend"].to_numpy(), duck_result["spend"].to_numpy())
    print(
        f"RFM core on {len(transactions):,} lines: numpy/pandas {numpy_best:.2f} s, DuckDB {duck_best:.2f} s "
        f"(2 threads), ratio {numpy_best / duck_best:.2f}x; results agree: {same}"
    )

    one = features[s.CUSTOMER_ID].iloc[len(features) // 2]
    alone = history.for_customers([one])
    build_customer_features(alone, as_of, reference)  # warm
    runs = [timed(build_customer_features, alone, as_of, reference)[1] for _ in range(50)]
    median, p95 = np.median(runs) * 1000, np.percentile(runs, 95) * 1000
    print(f"one customer's row rebuilt from its history: median {median:.1f} ms, p95 {p95:.1f} ms")
    print(f"peak memory above start (machine-wide): {watch.stop():.1f} GB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
