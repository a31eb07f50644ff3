"""Load test: the scoring service under `bentoml serve`, against the issue's latency targets.

    python -m bench.load_test [--profiles data/profiles.sqlite --mlflow-store mlruns] [--seconds 10]

Starts a real server (one worker, 127.0.0.1, free port) on a private copy of the profile store.
Without --profiles it first builds a small workspace like the service tests do (generated customers,
small fitted models registered in a temp MLflow store, profiles materialised). The load generator
runs on the same 2-core machine, with a small thread pool and one keep-alive connection per thread
(`bench.serving`, shared with the soak, `bench.soak`).

Measured:
- /churn for one customer at a paced 200 requests/s (p50, p99; latency counts from the scheduled
  send time, so a late send is not hidden);
- /churn for 100 customers per request at a paced 20 requests/s (p50, p99);
- POST /events (one purchase) then /churn for that customer, sequentially: end-to-end time and
  whether the score changed;
- the bare model time for the same calls in this process: the booster prediction plus the SHAP
  reasons on the same feature rows (`OutcomeModel.predict_matrix` + `explain_matrix`);
- /events throughput: the client threads send one-purchase events for random customers as fast
  as the server takes them, for `--burst-seconds`; events stored per second (with `--workers N`,
  N worker processes share the store, whose guard serialises /events).
Targets (issue): one customer p50 < 5 ms, p99 < 15 ms; 100 customers p99 < 50 ms; event reflected < 100 ms.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from bench.serving import (
    THREADS,
    Client,
    add_workspace_arguments,
    prepare_store,
    purchase_row,
    read_targets,
    run_paced,
    server_environment,
)
from pipelines.store import SQLiteProfileStore
from service.loading import champion_versions, load_serving_models
from service.scorer import predict_on_one_thread
from tests.server_process import ServerProcess


def paced(client: Client, path: str, bodies: list[dict], rate: float) -> np.ndarray:
    """Send the bodies at `rate` per second from a thread pool; latencies in ms from the scheduled time."""
    latencies, statuses = run_paced(len(bodies), rate, lambda i: client.post(path, bodies[i])[0])
    errors = statuses[statuses != 200]
    if errors.size:
        raise RuntimeError(f"{errors.size} requests failed, e.g. HTTP {errors[0]}")
    return latencies


def events_burst(client: Client, ids: list[str], products: list[str], when: str, seconds: float) -> float:
    """One-purchase events for random customers from every client thread, back to back, for
    `seconds`: events stored per second."""
    stop_at = time.perf_counter() + seconds
    counter = iter(range(10**9))  # next() on a shared iterator is atomic under the GIL
    stored = []

    def send(thread: int) -> None:
        rng = random.Random(thread)
        while time.perf_counter() < stop_at:
            row = purchase_row(f"burst-{next(counter)}", rng.choice(ids), rng.choice(products), when)
            status, body = client.post("/events", {"transactions": [row]})
            if status != 200:
                raise RuntimeError(f"/events answered HTTP {status}: {body}")
            stored.append(body["accepted"])

    started = time.perf_counter()
    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(send, range(THREADS)))
    return sum(stored) / (time.perf_counter() - started)


def bare_model_ms(mlflow_store: Path, store_path: Path, ids: list[str], repeats: int) -> float:
    """Median time of the churn model's own work for these customers: prediction + SHAP reasons."""
    models = load_serving_models(mlflow_store, champion_versions(mlflow_store))
    predict_on_one_thread(models)  # as the service does
    model = models.churn
    with SQLiteProfileStore(store_path) as store:
        _, matrix, _ = store.get_numbers(ids, model.feature_names)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        model.predict_matrix(matrix)
        model.explain_matrix(matrix, 5)
        times.append((time.perf_counter() - started) * 1000)
    return float(np.median(times))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load_test", description=__doc__.split("\n")[0])
    add_workspace_arguments(parser)
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of the paced one-customer run")
    parser.add_argument("--rate", type=float, default=200.0, help="requests/s of the paced one-customer run")
    parser.add_argument("--events", type=int, default=200, help="/events + /churn round trips")
    parser.add_argument("--burst-seconds", type=float, default=5.0, help="duration of the /events throughput run")
    parser.add_argument("--workers", type=int, default=1, help="BentoML worker processes (SCORING_WORKERS)")
    args = parser.parse_args(argv)

    load_before = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="load_test_"))
    try:
        store_path, mlflow_store = prepare_store(work, args.profiles, args.mlflow_store, args.customers)
        ids, products, state = read_targets(store_path)
        rng = random.Random(7)
        environment = server_environment(work, store_path, mlflow_store, args.workers)
        with ServerProcess(environment, log_path=work / "server.log") as server:
            client = Client(server.port)
            for _ in range(200):  # warm up: connections, caches, lazy imports
                client.post("/churn", {"customer_ids": [rng.choice(ids)]})
            sequential = []
            for _ in range(500):  # one at a time: the service's own latency, no queueing
                started = time.perf_counter()
                client.post("/churn", {"customer_ids": [rng.choice(ids)]})
                sequential.append((time.perf_counter() - started) * 1000)
            sequential = np.array(sequential)
            one_rate = args.rate
            single = paced(
                client,
                "/churn",
                [{"customer_ids": [rng.choice(ids)]} for _ in range(int(one_rate * args.seconds))],
                one_rate,
            )
            hundred = paced(client, "/churn", [{"customer_ids": rng.sample(ids, 100)} for _ in range(200)], 20.0)
            round_trips, changed = [], 0
            when = (state.as_of - pd.Timedelta(minutes=1)).isoformat()
            for i in range(args.events):
                customer = rng.choice(ids)
                before = client.post("/churn", {"customer_ids": [customer]})[1]["results"][0]["churn_probability"]
                row = purchase_row(f"load-{i}", customer, rng.choice(products), when)
                started = time.perf_counter()
                status, body = client.post("/events", {"transactions": [row]})
                after = client.post("/churn", {"customer_ids": [customer]})[1]["results"][0]["churn_probability"]
                round_trips.append((time.perf_counter() - started) * 1000)
                changed += status == 200 and body["accepted"] == 1 and after != before
            stored_per_second = events_burst(client, ids, products, when, args.burst_seconds)
        bare_one = bare_model_ms(mlflow_store, store_path, ids[:1], 200)
        bare_hundred = bare_model_ms(mlflow_store, store_path, ids[:100], 50)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def p(values: np.ndarray, q: float) -> float:
        return float(np.percentile(values, q))

    print()
    print(
        f"Scoring service load test ({len(ids):,} profiles, {args.workers} BentoML worker(s), "
        f"{THREADS} client threads, same host)"
    )
    print()
    print("| call | load | p50 ms | p99 ms | target | bare model ms (p50) | p50 / bare |")
    print("| --- | --- | ---: | ---: | --- | ---: | ---: |")
    print(
        f"| /churn, 1 customer | sequential, {len(sequential)} requests | {p(sequential, 50):.2f} | "
        f"{p(sequential, 99):.2f} | | {bare_one:.3f} | {p(sequential, 50) / bare_one:.0f}x |"
    )
    print(
        f"| /churn, 1 customer | {one_rate:.0f} req/s paced, {len(single):,} requests | {p(single, 50):.2f} | "
        f"{p(single, 99):.2f} | p50 < 5, p99 < 15 | {bare_one:.3f} | {p(single, 50) / bare_one:.0f}x |"
    )
    print(
        f"| /churn, 100 customers | 20 req/s paced, {len(hundred):,} requests | {p(hundred, 50):.2f} | "
        f"{p(hundred, 99):.2f} | p99 < 50 | {bare_hundred:.3f} | {p(hundred, 50) / bare_hundred:.0f}x |"
    )
    trips = np.array(round_trips)
    print(
        f"| /events (1 purchase) then /churn | sequential, {len(trips)} round trips | {p(trips, 50):.2f} | "
        f"{p(trips, 99):.2f} | < 100 | | |"
    )
    print()
    print(f"The churn score changed after the event in {changed} of {len(trips)} round trips.")
    print(
        f"/events throughput ({THREADS} threads, {args.burst_seconds:g} s): "
        f"{stored_per_second:.1f} events stored per second."
    )
    print(
        f"Machine load average (1 min) before / after: {load_before:.2f} / {os.getloadavg()[0]:.2f} "
        f"on {os.cpu_count()} cores (other work on the machine shares them with server and load generator)."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
