"""Benchmark: the two-stage recommender's fit, one customer's top 10, and a batch over everyone.

    python -m bench.bench_recommender --data DIR [--cutoffs 6] [--latency-customers 1000] [--write-docs]

Generate the data first (`python -m pipelines.generate --customers 1000000 --seed 1 --out DIR`:
1,000,000 customers, about 20 million transactions, 50,000 products). The fit uses the default
`CandidateConfig` / `RankerConfig` and monthly training cutoffs ending where the data ends, as
`pipelines.train` does. One customer's top 10 is timed in this process (the service's path:
`recommend([customer_id], k=10)` returning the frame); the batch scores every customer in chunks.
Peak memory is this process's maximum resident set size. Targets from the recommender issue: fit
within 15 minutes, one customer within 5 ms, the batch within 10 minutes.
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bench.report import replace_section
from features import schema as s
from models.recommender import TwoStageRecommender, recommend_in_parallel
from pipelines.io import find_table_files, read_table

HORIZON_DAYS = 30
DOCS_PATH = Path(__file__).resolve().parents[1] / "docs" / "BENCHMARKS.md"
TARGETS = {"fit": 15 * 60.0, "one_ms": 5.0, "batch": 10 * 60.0}


def peak_memory_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def training_cutoffs(transactions: pd.DataFrame, n_cutoffs: int) -> list[pd.Timestamp]:
    """Monthly cutoffs whose label windows end at the day after the last record."""
    data_end = transactions[s.TIMESTAMP].max().normalize() + pd.Timedelta(days=1)
    return [data_end - (i + 1) * HORIZON_DAYS * pd.Timedelta(days=1) for i in range(n_cutoffs)]


def time_one_customer(model: TwoStageRecommender, customer_ids: np.ndarray) -> np.ndarray:
    """Milliseconds per `recommend([customer], k=10)` call, after a short warm-up."""
    for customer in customer_ids[:20]:
        model.recommend([customer], k=10)
    elapsed = []
    for customer in customer_ids:
        started = time.perf_counter()
        model.recommend([customer], k=10)
        elapsed.append(time.perf_counter() - started)
    return np.asarray(elapsed) * 1000


def time_batch(model: TwoStageRecommender, customer_ids: np.ndarray, n_jobs: int) -> tuple[float, int]:
    started = time.perf_counter()
    rows = len(recommend_in_parallel(model, customer_ids, k=10, n_jobs=n_jobs, progress=True))
    return time.perf_counter() - started, rows


def report_markdown(numbers: dict) -> str:
    one, cold = numbers["one_ms"], numbers["cold_ms"]
    measured = {"fit": numbers["fit"], "one_ms": float(np.median(one)), "batch": numbers["batch"]}
    verdict = {name: "met" if measured[name] <= target else "**missed**" for name, target in TARGETS.items()}
    return "\n".join(
        [
            f"Data: {numbers['data']}: {numbers['customers']:,} customers ({numbers['buyers']:,} with "
            f"purchases; the batch scores all of them), {numbers['transactions']:,} "
            f"transactions, {numbers['products']:,} products. Default configs, {numbers['cutoffs']} monthly "
            f"training cutoffs ({numbers['groups']:,} training groups, {numbers['rows']:,} candidate rows). "
            "Machine: 2 cores, 24 GB. Produced by `python -m bench.bench_recommender --data DIR --write-docs`.",
            "",
            "| step | measured | target | |",
            "| --- | --- | --- | --- |",
            f"| fit (stage 1 per cutoff, ranker, serving stage 1) | {numbers['fit']:.0f} s | 15 min "
            f"| {verdict['fit']} |",
            f"| top 10 for one known customer, in process | median {np.median(one):.2f} ms, "
            f"p95 {np.percentile(one, 95):.2f} ms, p99 {np.percentile(one, 99):.2f} ms "
            f"({len(one):,} customers) | 5 ms | {verdict['one_ms']} |",
            f"| top 10 for one unknown customer (cold start) | median {np.median(cold):.2f} ms | | |",
            f"| batch top 10 for every customer, {numbers['n_jobs']} processes | {numbers['batch']:.0f} s "
            f"({numbers['batch_rows']:,} rows) "
            f"| 10 min | {verdict['batch']} |",
            f"| peak memory of the process | {numbers['peak_gb']:.1f} GB | | |",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_recommender", description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="folder written by pipelines.generate")
    parser.add_argument("--cutoffs", type=int, default=6, help="monthly training cutoffs")
    parser.add_argument("--latency-customers", type=int, default=1000)
    parser.add_argument("--n-jobs", type=int, default=2, help="processes for the batch run")
    parser.add_argument("--write-docs", action="store_true", help="rewrite the section in docs/BENCHMARKS.md")
    args = parser.parse_args(argv)

    files = find_table_files(args.data)
    transactions, products = read_table(files[s.TRANSACTIONS]), read_table(files[s.PRODUCTS])
    # every customer of the data set, buyers or not: those without purchases get the cold-start list
    everyone = read_table(files[s.CUSTOMERS])[s.CUSTOMER_ID].to_numpy(dtype=object)
    cutoffs = training_cutoffs(transactions, args.cutoffs)
    print(f"{len(transactions):,} transactions, {len(products):,} products; cutoffs {cutoffs[-1].date()}..")

    started = time.perf_counter()
    model = TwoStageRecommender().fit(transactions, products, cutoffs, horizon_days=HORIZON_DAYS)
    fit_seconds = time.perf_counter() - started
    print(f"fit: {fit_seconds:.0f} s, {model.training_groups_:,} groups, peak {peak_memory_gb():.1f} GB")

    customers = model.stage1_.customers.to_numpy()
    sample = np.random.default_rng(0).choice(customers, min(args.latency_customers, len(customers)), replace=False)
    one_ms = time_one_customer(model, sample)
    cold_ms = time_one_customer(model, np.asarray([f"unknown-{i}" for i in range(200)], dtype=object))
    print(f"one customer: median {np.median(one_ms):.2f} ms, p99 {np.percentile(one_ms, 99):.2f} ms")
    batch_seconds, batch_rows = time_batch(model, everyone, args.n_jobs)
    print(f"batch: {batch_seconds:.0f} s for {len(everyone):,} customers")

    numbers = {
        "data": args.data.name,
        "customers": len(everyone),
        "buyers": len(customers),
        "transactions": len(transactions),
        "products": len(products),
        "cutoffs": len(cutoffs),
        "groups": model.training_groups_,
        "rows": model.training_rows_,
        "fit": fit_seconds,
        "one_ms": one_ms,
        "cold_ms": cold_ms,
        "batch": batch_seconds,
        "batch_rows": batch_rows,
        "n_jobs": args.n_jobs,
        "peak_gb": peak_memory_gb(),
    }
    markdown = report_markdown(numbers)
    print(markdown)
    if args.write_docs:
        replace_section(DOCS_PATH, "recommender-speed", markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
