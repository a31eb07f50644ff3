"""Benchmark: what validation costs, and why the service has an evaluator of its own.

    python -m bench.bench_validation [--customers 1150000] [--write-docs]

Two measurements of the same rules (`features.expectations.table_rules`):
- one POST /events batch (one order line and one behaviour event, as the service gets them from
  JSON, with the known customer and product ids passed in): `validate_tables` (typing in pandas,
  then the Great Expectations suites) against `check_rows` (the service's cell-by-cell typing and
  numpy evaluation), median of repeated calls after a warm-up;
- a batch of 200,000 order lines both ways: where cell-by-cell stops paying;
- files at scale: `validate_tables` on generated customers, products and about 20 million
  transactions (`--customers 1150000`), wall time and peak memory above the start, and the part
  of it spent typing the cells. The generated frames come typed, as Parquet files do; CSV cells
  are text, which the typing reads too.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bench.bench_features import MemoryWatch
from bench.report import replace_section
from features import schema as s
from features.small_batches import check_rows
from features.validation import type_table, validate_tables
from pipelines import simulation

NOW = pd.Timestamp("2026-01-01")
SEED = 20_240_601


def median_ms(call, repeats: int, warmup: int = 2) -> tuple[float, float]:
    """(median, 95th percentile) milliseconds of `call()` over `repeats` calls after `warmup` calls."""
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return float(np.median(times)), float(np.percentile(times, 95))


def one_event_batch(tables: dict[str, pd.DataFrame]) -> tuple[dict[str, pd.DataFrame], dict[str, pd.Index]]:
    """An order line and an event for a known customer, as the service builds them from JSON."""
    customer = str(tables[s.CUSTOMERS][s.CUSTOMER_ID].iloc[0])
    product = str(tables[s.PRODUCTS][s.PRODUCT_ID].iloc[0])
    when = (NOW - pd.Timedelta(hours=1)).isoformat()
    line = {
        s.ORDER_ID: "bench-1",
        s.CUSTOMER_ID: customer,
        s.PRODUCT_ID: product,
        s.QUANTITY: 1,
        s.UNIT_PRICE: 12.5,
        s.TIMESTAMP: when,
        s.CHANNEL: "web",
    }
    event = {s.CUSTOMER_ID: customer, s.TIMESTAMP: when, s.EVENT_TYPE: "add_to_cart", s.PRODUCT_ID: product}
    raw = {s.TRANSACTIONS: pd.DataFrame.from_records([line]), s.EVENTS: pd.DataFrame.from_records([event])}
    known = {
        s.CUSTOMERS: pd.Index(tables[s.CUSTOMERS][s.CUSTOMER_ID], dtype="str"),
        s.PRODUCTS: pd.Index(tables[s.PRODUCTS][s.PRODUCT_ID], dtype="str"),
    }
    return raw, known


def measure_one_batch(repeats: int) -> dict[str, tuple[float, float]]:
    tables, _ = simulation.generate_tables(1000, SEED)
    raw, known = one_event_batch(tables)
    assert check_rows(raw, NOW, known).report == validate_tables(raw, NOW, known).report  # same verdicts
    return {
        "validate_tables": median_ms(lambda: validate_tables(raw, NOW, known), max(repeats // 10, 5)),
        "check_rows": median_ms(lambda: check_rows(raw, NOW, known), repeats),
    }


def measure_large_batch(rows: int = 200_000) -> dict[str, float]:
    """Seconds for `rows` order lines (typed, with the referenced ids passed in), each way."""
    tables, _ = simulation.generate_tables(max(rows // 15, 1000), SEED)
    lines = {s.TRANSACTIONS: tables[s.TRANSACTIONS].head(rows)}
    known = one_event_batch(tables)[1]
    seconds = {}
    for name, validate in (("validate_tables", validate_tables), ("check_rows", check_rows)):
        started = time.perf_counter()
        validate(lines, NOW, known)
        seconds[name] = time.perf_counter() - started
    return {"rows": len(lines[s.TRANSACTIONS]), **seconds}


def measure_files(customers: int) -> dict[str, float]:
    started = time.perf_counter()
    tables, _ = simulation.generate_tables(customers, SEED)
    files = {name: tables[name] for name in (s.CUSTOMERS, s.PRODUCTS, s.TRANSACTIONS)}
    del tables
    generated = time.perf_counter() - started
    watch = MemoryWatch()
    started = time.perf_counter()
    result = validate_tables(files, NOW)
    seconds = time.perf_counter() - started
    peak = watch.stop()
    started = time.perf_counter()
    type_table(s.TRANSACTIONS_TABLE, files[s.TRANSACTIONS])
    typing = time.perf_counter() - started
    return {
        "customers": len(files[s.CUSTOMERS]),
        "transactions": len(files[s.TRANSACTIONS]),
        "accepted": result.report[s.TRANSACTIONS]["accepted"],
        "generated_s": generated,
        "validate_s": seconds,
        "typing_transactions_s": typing,
        "peak_gb": peak,
    }


def to_markdown(small: dict[str, tuple[float, float]], batch: dict[str, float], large: dict[str, float]) -> str:
    gx, fast = small["validate_tables"], small["check_rows"]
    rate = large["transactions"] / large["validate_s"]
    return "\n".join(
        [
            "`python -m bench.bench_validation`: the same contract rules, validated two ways.",
            "",
            "| what | `validate_tables` (pandas typing + Great Expectations) | `check_rows` (cell by cell + numpy) |",
            "| --- | ---: | ---: |",
            f"| one POST /events batch (1 order line + 1 event), median / p95 | {gx[0]:.0f} / {gx[1]:.0f} ms "
            f"| {fast[0]:.1f} / {fast[1]:.1f} ms |",
            f"| {batch['rows']:,.0f} order lines, one call | {batch['validate_tables']:.1f} s "
            f"| {batch['check_rows']:.1f} s |",
            "",
            f"Files: {large['customers']:,.0f} customers, {large['transactions']:,.0f} transactions and the products "
            f"validated by `validate_tables` in {large['validate_s']:.0f} s ({rate:,.0f} "
            f"transactions/s), peak memory {large['peak_gb']:.1f} GB above the start; typing the transactions' "
            f"cells alone took {large['typing_transactions_s']:.0f} s.",
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_validation", description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=1_150_000, help="generated customers for the files run")
    parser.add_argument("--repeats", type=int, default=200, help="calls of check_rows (a tenth of that for GX)")
    parser.add_argument("--write-docs", action="store_true", help="write the table into docs/BENCHMARKS.md")
    args = parser.parse_args(argv)
    small = measure_one_batch(args.repeats)
    print(f"one batch: validate_tables {small['validate_tables']}, check_rows {small['check_rows']} (ms)", flush=True)
    batch = measure_large_batch()
    print(f"a large batch: {batch}", flush=True)
    large = measure_files(args.customers)
    print(large, flush=True)
    markdown = to_markdown(small, batch, large)
    print(markdown)
    if args.write_docs:
        replace_section(Path("docs/BENCHMARKS.md"), "validation", markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
