"""A real server of the scoring service for the load benches (`bench.load_test`, `bench.soak`), and
the client side that loads it.

- `prepare_store` makes a private copy of a profile store (or first builds a small workspace like the
  service tests do: generated customers, small fitted models registered in a temp MLflow store);
  `server_environment` is what `tests.server_process.ServerProcess` needs to serve it.
- `Client` keeps one keep-alive connection per thread; `run_paced` sends requests at scheduled
  times from a small thread pool and counts each latency from its scheduled time, so a late send
  is not hidden.
- `run_open_loop` sends the same schedule from one asyncio thread, each request on an idle
  keep-alive connection or a new one, so every request leaves on time however slow the ones
  before it are. With `run_paced`'s four threads, a few slow calls in flight (an /events behind
  a busy writer) hold every thread, and the calls scheduled meanwhile wait in the load generator:
  their latency then measures the generator as much as the server. Both count from the
  scheduled time.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import shutil
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from features import schema as s
from pipelines.store import SQLiteProfileStore
from pipelines.store.state import MaterializedState, read_materialized_state

THREADS = 4
OPEN_LOOP, THREADS_CLIENT = "open-loop", "threads"  # the load generators, by --client


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


OPEN_LOOP_MAX_CONNECTIONS = 256  # more in flight than this and the server is far past any target


def run_open_loop(
    port: int,
    count: int,
    rate: float,
    request: Callable[[int], tuple[str, Mapping]],
    answered: Callable[[int, int, dict], None] | None = None,
    start: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """POST `request(i)` = (path, JSON body) for i in 0..count-1 at `start + i / rate`
    (`time.perf_counter()` seconds; default 0.2 s from now), each as soon as it is due, on an idle
    keep-alive connection or a new one: (latencies in ms from each scheduled time, statuses, 0 for
    no answer). `answered(i, status, answer)` sees each JSON answer as it arrives."""
    start = time.perf_counter() + 0.2 if start is None else start
    return asyncio.run(_open_loop(port, count, rate, request, answered, start))


async def _open_loop(port, count, rate, request, answered, start) -> tuple[np.ndarray, np.ndarray]:
    latencies = np.zeros(count)
    statuses = np.zeros(count, dtype=int)
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    in_flight: set[asyncio.Task] = set()
    slots = asyncio.Semaphore(OPEN_LOOP_MAX_CONNECTIONS)

    async def send(i: int, scheduled: float) -> None:
        path, body = request(i)
        payload = json.dumps(body).encode()
        message = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n"
        ).encode() + payload
        async with slots:
            status, answer = await _exchange(port, idle, message)
        latencies[i] = (time.perf_counter() - scheduled) * 1000
        statuses[i] = status
        if answered is not None and status:
            answered(i, status, answer)

    for i in range(count):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(send(i, scheduled))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
    while in_flight:
        await asyncio.gather(*list(in_flight))
    for _, writer in idle:
        writer.close()
    return latencies, statuses


async def _exchange(port: int, idle: list, message: bytes) -> tuple[int, dict]:
    """One request and its answer; a kept-alive connection the server closed meanwhile is replaced
    by a new one, once. (0, {}) when no answer came."""
    while idle and idle[-1][0].at_eof():  # closed by the server while idle (its keep-alive timeout)
        idle.pop()[1].close()
    for attempt in (1, 2):
        reused = attempt == 1 and bool(idle)
        try:
            reader, writer = idle.pop() if reused else await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            return 0, {}
        try:
            writer.write(message)
            status_line = await reader.readline()
            if not status_line:
                raise ConnectionResetError("closed before answering")
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            body = await reader.readexactly(length)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            writer.close()
            if reused and attempt == 1:
                continue
            return 0, {}
        idle.append((reader, writer))
        try:
            return int(status_line.split()[1]), json.loads(body) if body else {}
        except (ValueError, IndexError):
            return 0, {}
    return 0, {}


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


def add_client_argument(parser: argparse.ArgumentParser) -> None:
    """--client: which load generator sends the paced requests."""
    parser.add_argument(
        "--client",
        choices=(OPEN_LOOP, THREADS_CLIENT),
        default=OPEN_LOOP,
        help="the load generator: every request sent when due, on a new connection if none is idle "
        f"(open-loop, `run_open_loop`), or {THREADS} threads of one connection each (threads, `run_paced`)",
    )


def client_name(client: str) -> str:
    """The load generator, in words."""
    return "open-loop client (one asyncio thread)" if client == OPEN_LOOP else f"{THREADS} client threads"


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
