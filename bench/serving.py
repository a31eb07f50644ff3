"""A real server of the scoring service for the load benches (`bench.load_test`, `bench.soak`), and
the client side that loads it.

- `prepare_store` makes a private copy of a profile store (or first builds a small workspace like the
  service tests do: generated customers, small fitted models registered in a temp MLflow store);
  `server_environment` is what `tests.server_process.ServerProcess` needs to serve it.
- `Client` keeps one keep-alive connection per thread; `run_paced` sends requests at scheduled
  times from a small thread pool and counts each latency from its scheduled time, so a late send
  is not hidden.
"""

from __future__ import annotations

import argparse
import http.client
import json
import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from features import schema as s
from pipelines.store import SQLiteProfileStore
from pipelines.store.state import MaterializedState, read_materialized_state

THREADS = 4


class Client:
    """One keep-alive HTTP connection per thread."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.local = threading.local()

    def post(self, path: str, body: dict) -> tuple[int, dict]:
        payload = json.dumps(body)
        for attempt in (1, 2):
            connection = getattr(self.local, "connection", None)
            if connection is None:
                connection = self.local.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            try:
                connection.request("POST", path, payload, {"Content-Type": "application/json"})
                response = connection.getresponse()
                return response.status, json.loads(response.read())
            except (ConnectionError, http.client.HTTPException):
                # the server closed an idle keep-alive connection: reconnect once
                connection.close()
                self.local.connection = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Close this thread's connection (the next request opens a new one)."""
        connection = getattr(self.local, "connection", None)
        if connection is not None:
            connection.close()
            self.local.connection = None


def run_paced(
    count: int, rate: float, send: Callable[[int], int], start: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Call `send(i)`, which returns an HTTP status, for i in 0..count-1 at `start + i / rate`
    (`time.perf_counter()` seconds; default 0.2 s from now) from THREADS threads: (latencies in ms
    counted from each scheduled time, statuses). An exception in `send` is raised once every
    request has been sent."""
    start = time.perf_counter() + 0.2 if start is None else start
    latencies = np.zeros(count)
    statuses = np.zeros(count, dtype=int)
    indices = iter(range(count))  # next() on a shared iterator is atomic under the GIL

    def work() -> None:
        for i in indices:
            scheduled = start + i / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            statuses[i] = send(i)
            latencies[i] = (time.perf_counter() - scheduled) * 1000

    with ThreadPoolExecutor(THREADS) as pool:
        for thread in [pool.submit(work) for _ in range(THREADS)]:
            thread.result()
    return latencies, statuses


def purchase_row(order_id: str, customer_id: str, product_id: str, when: str) -> dict:
    """One transactions row for POST /events: one unit at 10.0 on the web."""
    return {
        s.ORDER_ID: order_id,
        s.CUSTOMER_ID: customer_id,
        s.PRODUCT_ID: product_id,
        s.QUANTITY: 1,
        s.UNIT_PRICE: 10.0,
        s.TIMESTAMP: when,
        s.CHANNEL: "web",
    }


def build_workspace(root: Path, customers: int):
    from pipelines import simulation
    from tests.workspace import build_service_workspace

    tables, _ = simulation.generate_tables(customers, 20_240_601)
    return build_service_workspace(root, tables)


def add_workspace_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that say which profiles and champions the server runs on (or how many customers to
    generate a workspace for), shared by the service benches."""
    parser.add_argument("--profiles", type=Path, default=None, help="materialised profile store (default: build one)")
    parser.add_argument("--mlflow-store", type=Path, default=Path("mlruns"), help="MLflow store folder with champions")
    parser.add_argument("--customers", type=int, default=1000, help="customers to generate when building a workspace")


def prepare_store(work: Path, profiles: Path | None, mlflow_store: Path, customers: int) -> tuple[Path, Path]:
    """(a private copy of the profile store in `work`, the MLflow store with its champions). Without
    `profiles`, both come from a workspace of `customers` generated customers built under `work`."""
    if profiles is None:
        print(f"building a workspace with {customers:,} generated customers ...", flush=True)
        workspace = build_workspace(work / "workspace", customers)
        profiles, mlflow_store = workspace.store_path, workspace.mlflow_store
    store_path = work / "profiles.sqlite"
    shutil.copy(profiles, store_path)
    return store_path, mlflow_store


def read_targets(store_path: Path) -> tuple[list[str], list[str], MaterializedState]:
    """(customer ids with a profile, the reference's product ids, the materialised state) of a store."""
    with SQLiteProfileStore(store_path) as store:
        ids = store.profile_ids()
        state = read_materialized_state(store)
    return ids, state.reference.products[s.PRODUCT_ID].astype(str).tolist(), state


def server_environment(work: Path, store_path: Path, mlflow_store: Path, workers: int) -> dict[str, str]:
    """The environment of `bentoml serve` for the benches: this store, these champions, no API key."""
    return {
        "SCORING_STORE_PATH": str(store_path),
        "SCORING_MLFLOW_STORE": str(mlflow_store),
        "BENTOML_HOME": str(work / "bentoml"),
        "SCORING_MAX_BATCH": "1000",
        "SCORING_WORKERS": str(workers),
        # empty turns the key check off: a key set in the shell would answer every request with 401
        "SCORING_API_KEY": "",
    }
