"""Benchmark: the CPU of POST /recommend for one known customer, k = 10, in process (no server).

    python -m bench.recommend_request [--profiles data/profiles.sqlite --mlflow-store mlruns] [--calls 400]

Builds the service's `Scorer` on a private copy of the profile store (without --profiles, a
generated workspace of --customers customers) and calls `Scorer.recommend(customer_id, 10)` for
random customers with a profile, as the reads process does. Prints p50/p99 over `--calls` calls in
each of `--repeats` rounds (the machine is shared: the best round is the least disturbed), the CPU
time per call, and the split into the store's reads and the recommender's ranking for the
customers that have appended history (the ranking is `recommend_lists_for_history`, the same call
the scorer makes).
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.serving import add_workspace_arguments, prepare_store, read_targets
from features import schema as s
from service.loading import ServiceSettings, build_scorer
from service.scorer import predict_on_one_thread


def milliseconds(call, arguments: list) -> np.ndarray:
    elapsed = []
    for argument in arguments:
        started = time.perf_counter()
        call(argument)
        elapsed.append(time.perf_counter() - started)
    return np.asarray(elapsed) * 1000


def median_interval(elapsed: np.ndarray, draws: int = 2000) -> tuple[float, float]:
    """A 95% bootstrap interval of the median call."""
    resampled = np.random.default_rng(0).choice(elapsed, size=(draws, len(elapsed)))
    low, high = np.percentile(np.median(resampled, axis=1), [2.5, 97.5])
    return float(low), float(high)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.recommend_request", description=__doc__.split("\n")[0])
    add_workspace_arguments(parser)
    for option, default, meaning in (("--calls", 400, "calls per round"), ("--repeats", 3, "rounds")):
        parser.add_argument(option, type=int, default=default, help=meaning)
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="recommend-request-"))
    store_path, mlflow_store = prepare_store(work, args.profiles, args.mlflow_store, args.customers)
    settings = ServiceSettings.from_env(
        {"SCORING_STORE_PATH": str(store_path), "SCORING_MLFLOW_STORE": str(mlflow_store)}
    )
    scorer = build_scorer(settings)
    predict_on_one_thread(scorer.models)
    ids, _, _ = read_targets(store_path)
    rng = random.Random(1)
    sample = [rng.choice(ids) for _ in range(args.calls)]
    milliseconds(lambda customer: scorer.recommend(customer, 10), sample[:50])  # warm-up

    rounds = []
    for number in range(args.repeats):
        cpu = time.process_time()
        elapsed = milliseconds(lambda customer: scorer.recommend(customer, 10), sample)
        cpu_ms = (time.process_time() - cpu) / len(sample) * 1000
        low, high = median_interval(elapsed)
        rounds.append((float(np.percentile(elapsed, 50)), low, high, float(np.percentile(elapsed, 99)), cpu_ms))
        print(f"round {number}: p50 {rounds[-1][0]:.2f} ms, p99 {rounds[-1][3]:.2f} ms, CPU {cpu_ms:.2f} ms per call")
    p50, low, high, p99, cpu_ms = min(rounds)
    print(
        f"Scorer.recommend(customer, 10), best round: p50 {p50:.2f} ms [95% {low:.2f}, {high:.2f}], "
        f"p99 {p99:.2f} ms, CPU {cpu_ms:.2f} ms per call"
    )

    store, recommender = scorer.store, scorer.models.recommender
    histories = {customer: store.history(customer, (s.TRANSACTIONS,))[s.TRANSACTIONS] for customer in set(sample)}
    with_history = [customer for customer in sample if len(histories[customer])]
    steps = {
        "store.get_numbers (has a profile?)": lambda c: store.get_numbers([c], [s.ORDERS_COUNT_TOTAL]),
        "store.history (appended rows)": lambda c: store.history(c, (s.TRANSACTIONS,)),
        "recommend_lists_for_history": lambda c: recommender.recommend_lists_for_history(c, histories[c], k=10),
    }
    print(f"split over the {len(with_history)} calls of customers with appended history (median of each step):")
    for name, call in steps.items():
        print(f"  {name:40s} {np.median(milliseconds(call, with_history)):.3f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
