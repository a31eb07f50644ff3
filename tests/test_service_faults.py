"""Faults the service survives, each with real processes: a `bentoml serve` subprocess, a real
`mlflow server`, a second process holding the store's write lock, SIGKILL, and broken store files.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import psutil
import pytest

from features import schema as s
from tests.server_process import ServerProcess, free_port
from tests.workspace import purchase

pytestmark = pytest.mark.slow
# retries in tenths of a second instead of seconds, and MLflow's own HTTP retries off
FAST_RETRIES = {
    "SCORING_REGISTRY_RETRY_S": "0.5",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
}


def call(server: ServerProcess, method: str, path: str, body: Any = None) -> tuple[int, dict[str, str], Any]:
    """(status, headers, parsed JSON) of one request; 4xx and 5xx are returned, not raised."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"{server.url}{path}", data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, headers, raw = response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        status, headers, raw = error.code, error.headers, error.read()
    return status, dict(headers), json.loads(raw)


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {timeout_s:.0f} s")
        time.sleep(0.2)


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def stored_order_lines(store_path: Path, order_prefix: str) -> dict[tuple[str, str], int]:
    """How many times each (order_id, product_id) starting with the prefix is in the store's history."""
    with sqlite3.connect(store_path) as connection:
        rows = connection.execute(
            f'SELECT "{s.ORDER_ID}", "{s.PRODUCT_ID}", COUNT(*) FROM "{s.TRANSACTIONS}" '
            f'WHERE "{s.ORDER_ID}" LIKE ? GROUP BY 1, 2',
            (f"{order_prefix}%",),
        ).fetchall()
    return {(order, product): count for order, product, count in rows}


def stored_customers(store_path: Path, id_prefix: str) -> dict[str, int]:
    with sqlite3.connect(store_path) as connection:
        rows = connection.execute(
            f'SELECT "{s.CUSTOMER_ID}", COUNT(*) FROM "{s.CUSTOMERS}" WHERE "{s.CUSTOMER_ID}" LIKE ? GROUP BY 1',
            (f"{id_prefix}%",),
        ).fetchall()
    return dict(rows)


def new_customer_batch(workspace, name: str) -> dict[str, list[dict]]:
    """A new customer and two order lines of theirs: rows in two tables, stored all together or not at all."""
    products = workspace.tables[s.PRODUCTS][s.PRODUCT_ID].astype(str)
    when = workspace.as_of - pd.Timedelta(hours=2)
    return {
        "customers": [{s.CUSTOMER_ID: name, s.SIGNUP_DATE: "2025-06-01"}],
        "transactions": [purchase(name, products.iloc[i], when, f"{name}-order") for i in (1, 2)],
    }


# ---------------------------------------------------------------------------
# The registry is unreachable at start-up
# ---------------------------------------------------------------------------
@pytest.fixture
def tracking_server(service_workspace, tmp_path):
    """A real `mlflow server` backed by a copy of the workspace's registry (the champions' artifacts stay
    where they were logged), on a port picked now; started by calling the fixture's value, stopped after."""
    backend = shutil.copy(service_workspace.mlflow_store / "mlflow.db", tmp_path / "registry.db")
    port = free_port()
    started: list[subprocess.Popen] = []
    log = open(tmp_path / "mlflow-server.log", "ab")  # noqa: SIM115

    def start() -> None:
        mlflow = Path(sys.executable).with_name("mlflow")
        command = [str(mlflow), "server", "--backend-store-uri", f"sqlite:///{backend}", "--host", "127.0.0.1"]
        command += ["--port", str(port), "--workers", "1", "--artifacts-destination", str(tmp_path / "artifacts")]
        started.append(
            subprocess.Popen(command, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        )
        wait_for(lambda: answers(f"http://127.0.0.1:{port}/health"), 60, "mlflow server did not answer")

    def stop() -> None:
        for process in started:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait(20)
        started.clear()

    start.port, start.stop = port, stop  # type: ignore[attr-defined]
    yield start
    stop()
    log.close()


def test_a_registry_down_at_start_leaves_the_service_unready_until_it_answers(
    service_workspace, tracking_server, tmp_path
):
    registry_url = f"http://127.0.0.1:{tracking_server.port}"  # nothing listens there yet
    store_path = service_workspace.copy_store(tmp_path / "profiles.sqlite")
    environment = service_workspace.environment(
        store_path, MLFLOW_TRACKING_URI=registry_url, BENTOML_HOME=str(tmp_path / "bentoml"), **FAST_RETRIES
    )
    with ServerProcess(environment, log_path=tmp_path / "server.log", ready_path="/livez") as server:
        status, _, ready = call(server, "GET", "/readyz")
        assert status == 503 and ready["ready"] is False and ready["model_versions"] == {}
        assert ready["registry"]["ok"] is False and registry_url in ready["registry"]["error"]
        assert "no model is loaded yet" in ready["reason"] and "every 0.5 s" in ready["reason"]
        status, headers, refused = call(server, "POST", "/churn", {"customer_ids": ["C0000001"]})
        assert status == 503 and refused["field"] == "customer_ids" and registry_url in refused["error"]
        assert headers["retry-after"] == "1"
        for path, body in (("/recommend", {"customer_id": "C1"}), ("/profile", {"customer_id": "C1"})):
            status, _, refused = call(server, "POST", path, body)
            assert status == 503 and set(refused) == {"error", "field"} and "no model is loaded yet" in refused["error"]
        # the store needs no model: events are taken meanwhile
        status, _, stored = call(server, "POST", "/events", new_customer_batch(service_workspace, "early-1"))
        assert status == 200 and stored["accepted"] == 3

        tracking_server()  # the registry comes back: the service becomes ready by itself
        wait_for(lambda: call(server, "GET", "/readyz")[0] == 200, 60, "the service was not ready")
        status, _, ready = call(server, "GET", "/readyz")
        assert ready["model_versions"] == {"churn": "1", "propensity": "1", "recommender": "1", "clv": "1"}
        assert ready["registry"]["ok"] is True and ready["reason"] is None
        status, _, scored = call(server, "POST", "/churn", {"customer_ids": ["early-1"]})
        assert status == 200 and scored["results"][0]["known_customer"] is True

        tracking_server.stop()  # down again: a reload fails and the loaded models keep serving
        status, _, reloaded = call(server, "POST", "/reload", {})
        assert status == 503 and registry_url in reloaded["error"]
        assert reloaded["model_versions"] == {"churn": "1", "propensity": "1", "recommender": "1", "clv": "1"}
        status, _, ready = call(server, "GET", "/readyz")
        assert status == 200 and ready["registry"]["ok"] is False and ready["reason"] is None
        assert call(server, "POST", "/churn", {"customer_ids": ["early-1"]})[0] == 200
    log = (tmp_path / "server.log").read_text()
    assert "Traceback" not in log
    # one line per new failure, not one per retry
    assert log.count("champion reload failed") <= 3


# ---------------------------------------------------------------------------
# Another writer holds the store's lock longer than the busy timeout
# ---------------------------------------------------------------------------
LOCK_HOLDER = """
import sqlite3, sys
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.read()  # until the test closes our stdin
connection.execute("ROLLBACK")
"""


def test_a_store_locked_by_another_writer_answers_503_and_stores_nothing(service_workspace, tmp_path):
    store_path = service_workspace.copy_store(tmp_path / "profiles.sqlite")
    environment = service_workspace.environment(
        store_path, SCORING_STORE_BUSY_TIMEOUT_S="1", BENTOML_HOME=str(tmp_path / "bentoml")
    )
    batch = new_customer_batch(service_workspace, "locked-1")
    with ServerProcess(environment, log_path=tmp_path / "server.log") as server:
        holder = subprocess.Popen(
            [sys.executable, "-c", LOCK_HOLDER, str(store_path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        try:
            assert holder.stdout.readline().strip() == b"locked"
            started = time.monotonic()
            status, headers, refused = call(server, "POST", "/events", batch)
            assert status == 503 and 1 <= time.monotonic() - started < 10
            assert headers["retry-after"] == "1" and refused["field"] == "body"
            assert str(store_path) in refused["error"] and "nothing of this request was stored" in refused["error"]
            # readers are not blocked by a writer (WAL)
            assert call(server, "POST", "/churn", {"customer_ids": ["locked-1"]})[0] == 200
        finally:
            holder.stdin.close()
            holder.wait(10)
        assert stored_order_lines(store_path, "locked-1") == {} and stored_customers(store_path, "locked-1") == {}

        status, _, stored = call(server, "POST", "/events", batch)  # the client's retry
        assert status == 200 and (stored["accepted"], stored["duplicates"]) == (3, 0)
        status, _, again = call(server, "POST", "/events", batch)
        assert status == 200 and (again["accepted"], again["duplicates"]) == (0, 3)
    assert set(stored_order_lines(store_path, "locked-1").values()) == {1}
    assert len(stored_order_lines(store_path, "locked-1")) == 2
    assert stored_customers(store_path, "locked-1") == {"locked-1": 1}


# ---------------------------------------------------------------------------
# SIGKILL while a client streams /events
# ---------------------------------------------------------------------------
def kill_server(server: ServerProcess) -> None:
    """SIGKILL `bentoml serve` and its workers at once: the workers run in sessions of their own, so a
    signal to the server's process group alone would leave them serving."""
    server_process = psutil.Process(server.process.pid)  # psutil: a dependency of BentoML's
    processes = [server_process, *server_process.children(recursive=True)]
    for process in processes:  # the server first: it would start a new worker for a killed one
        process.send_signal(signal.SIGKILL)
    psutil.wait_procs(processes, timeout=10)


def test_a_server_killed_mid_stream_keeps_every_acknowledged_row_once(service_workspace, tmp_path):
    store_path = service_workspace.copy_store(tmp_path / "profiles.sqlite")
    environment = service_workspace.environment(store_path, BENTOML_HOME=str(tmp_path / "bentoml"))
    batches = [new_customer_batch(service_workspace, f"kill-{n:03d}") for n in range(300)]
    acknowledged: list[int] = []
    unacknowledged: list[int] = []  # sent, but no answer came back

    def stream(server: ServerProcess) -> None:
        for n, batch in enumerate(batches):
            try:
                status, _, answer = call(server, "POST", "/events", batch)
            except (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError, ValueError):
                # refused, reset, or cut off in the middle of the answer (the batch may be stored: then whole)
                unacknowledged.append(n)
                return
            assert status == 200 and answer["accepted"] == 3, answer
            acknowledged.append(n)

    server = ServerProcess(environment, log_path=tmp_path / "server.log").start()
    try:
        client = threading.Thread(target=stream, args=(server,))
        client.start()
        wait_for(lambda: len(acknowledged) >= 10 or not client.is_alive(), 60, "the client was not acknowledged")
        kill_server(server)
        client.join(30)
    finally:
        server.stop()
    assert len(acknowledged) >= 10 and len(unacknowledged) == 1
    sent = [*acknowledged, *unacknowledged]
    assert sent == list(range(len(sent)))

    with ServerProcess(environment, log_path=tmp_path / "restart.log") as restarted:
        lines = stored_order_lines(store_path, "kill-")
        customers = stored_customers(store_path, "kill-")
        for n in acknowledged:
            name = f"kill-{n:03d}"
            assert customers.get(name) == 1
            assert [lines.get((f"{name}-order", row[s.PRODUCT_ID])) for row in batches[n]["transactions"]] == [1, 1]
        # the batch in flight at the kill is all there or not at all
        (lost,) = unacknowledged
        name = f"kill-{lost:03d}"
        order_lines = [(f"{name}-order", row[s.PRODUCT_ID]) for row in batches[lost]["transactions"]]
        present = [customers.get(name, 0), *(lines.get(line, 0) for line in order_lines)]
        assert present in ([0, 0, 0], [1, 1, 1])
        assert len(customers) == len(acknowledged) + present[0]
        # the client sends it again: stored once either way
        status, _, answer = call(restarted, "POST", "/events", batches[lost])
        assert status == 200 and answer["accepted"] + answer["duplicates"] == 3
        assert answer["duplicates"] == (3 if present == [1, 1, 1] else 0)
        status, _, profile = call(restarted, "POST", "/profile", {"customer_id": f"kill-{acknowledged[-1]:03d}"})
        assert status == 200 and profile["known_customer"] is True
    assert set(stored_order_lines(store_path, "kill-").values()) == {1}
    assert len(stored_customers(store_path, "kill-")) == len(sent)


# ---------------------------------------------------------------------------
# A corrupt or foreign store file
# ---------------------------------------------------------------------------
def write_random_bytes(path: Path, workspace) -> None:
    path.write_bytes(os.urandom(8192))


def write_foreign_sqlite(path: Path, workspace) -> None:
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        connection.execute("INSERT INTO notes (body) VALUES ('not a profile store')")
    connection.close()


def write_other_schema_version(path: Path, workspace) -> None:
    workspace.copy_store(path)
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE meta SET value = '999' WHERE key = 'schema_version'")
    connection.close()


@pytest.mark.parametrize(
    ("write_file", "problem"),
    [
        (write_random_bytes, "not a readable SQLite database"),
        (write_foreign_sqlite, "not a profile store"),
        (write_other_schema_version, "schema version 999"),
    ],
    ids=["random-bytes", "foreign-sqlite", "other-schema-version"],
)
def test_a_corrupt_or_foreign_store_stops_the_server_with_one_line(service_workspace, tmp_path, write_file, problem):
    store_path = tmp_path / "profiles.sqlite"
    write_file(store_path, service_workspace)
    before = store_path.read_bytes()
    environment = service_workspace.environment(store_path, BENTOML_HOME=str(tmp_path / "bentoml"))
    log_path = tmp_path / "server.log"
    with pytest.raises(RuntimeError, match="exited with 2"):
        ServerProcess(environment, log_path=log_path).start(timeout_s=60)
    log = log_path.read_text()
    (line,) = [line for line in log.splitlines() if line.strip()]
    assert line.startswith(f"error: {store_path}: ") and problem in line
    assert "make train" in line and "python -m pipelines.materialize" in line
    assert "Traceback" not in log
    assert store_path.read_bytes() == before  # read, never written (not even switched to WAL)
