"""Load test: POST /clv and POST /due for one customer, each paced at 100 requests/s, under `bentoml serve`.

    python -m bench.value_serving [--profiles data/profiles.sqlite --mlflow-store mlruns] [--seconds 60] [--rate 100]

A real server (one worker) on a private copy of the profile store, as in `bench.load_test` (without
--profiles, a small generated workspace whose clv champion is Pareto/NBD x Gamma-Gamma). After a
warm-up, each endpoint gets its own paced run of random known customers; latency counts from the
scheduled send time. Target (issue 14): p99 under 10 ms for each at 100 requests/s. /clv
is answered by the worker itself, on its event loop; /due by its reads process (it reads the
customer's whole history, `service.processes`).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import tempfile
from pathlib import Path

import numpy as np

from bench.load_test import paced
from bench.serving import (
    OPEN_LOOP,
    Client,
    add_client_argument,
    add_workspace_arguments,
    client_name,
    prepare_store,
    read_targets,
    run_open_loop,
    server_environment,
)
from tests.server_process import ServerProcess

P99_TARGET_MS = 10.0
WARM_UP = 100


def bodies(path: str, ids: list[str], count: int, rng: random.Random) -> list[dict]:
    if path == "/clv":
        return [{"customer_ids": [rng.choice(ids)]} for _ in range(count)]
    return [{"customer_id": rng.choice(ids), "within_days": 30} for _ in range(count)]


def open_loop(port: int, path: str, sent: list[dict], rate: float) -> np.ndarray:
    """`sent` POSTed to `path` at `rate` by the open-loop client: latencies in ms from each scheduled time."""
    latencies, statuses = run_open_loop(port, len(sent), rate, lambda i: (path, sent[i]))
    failed = statuses[statuses != 200]
    if failed.size:
        raise RuntimeError(f"{failed.size} requests to {path} failed, e.g. HTTP {failed[0]} (0: no answer)")
    return latencies


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.value_serving", description=__doc__.split("\n")[0])
    add_workspace_arguments(parser)
    parser.add_argument("--seconds", type=float, default=60.0, help="duration of each paced run")
    parser.add_argument("--rate", type=float, default=100.0, help="requests/s")
    add_client_argument(parser)
    args = parser.parse_args(argv)
    load_before = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="value_serving_"))
    rng = random.Random(11)
    results = {}
    try:
        store_path, mlflow_store = prepare_store(work, args.profiles, args.mlflow_store, args.customers)
        ids, _, _ = read_targets(store_path)
        with ServerProcess(
            server_environment(work, store_path, mlflow_store, 1), log_path=work / "server.log"
        ) as server:
            client = Client(server.port)
            for path in ("/clv", "/due"):
                for body in bodies(path, ids, WARM_UP, rng):
                    status, answer = client.post(path, body)
                    if status != 200:
                        raise SystemExit(f"{path} answered {status}: {answer}")
                sent = bodies(path, ids, int(args.rate * args.seconds), rng)
                if args.client == OPEN_LOOP:
                    results[path] = open_loop(server.port, path, sent, args.rate)
                else:
                    results[path] = paced(client, path, sent, args.rate)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"\n/clv and /due, one customer, {args.rate:g} req/s paced for {args.seconds:g} s each "
        f"({len(ids):,} profiles, 1 worker, {client_name(args.client)}, load average {load_before:.2f} before)\n"
    )
    print("| call | requests | p50 ms | p99 ms | max ms | p99 < 10 ms |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    for path, latencies in results.items():
        p50, p99 = np.percentile(latencies, [50, 99])
        verdict = "met" if p99 < P99_TARGET_MS else "**not met**"
        print(f"| {path} | {len(latencies):,} | {p50:.2f} | {p99:.2f} | {latencies.max():.2f} | {verdict} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
