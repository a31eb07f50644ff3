"""service.processes: the heavy calls answered in processes of their own, exactly as in the worker,
on the worker's models, surviving the death of a process and ending with their worker."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from features import schema as s
from service.errors import RequestError
from service.loading import ServiceSettings, build_scorer
from service.logs import REQUEST_ID
from service.processes import ScorerProcesses, Served
from tests.workspace import lapsing_customer, purchase


@pytest.fixture(scope="module")
def settings(service_workspace, tmp_path_factory) -> ServiceSettings:
    store_path = service_workspace.copy_store(tmp_path_factory.mktemp("processes") / "profiles.sqlite")
    return ServiceSettings.from_env(service_workspace.environment(store_path))


@pytest.fixture(scope="module")
def processes(settings):
    started = ScorerProcesses(settings)
    yield started
    started.close()


def run(coroutine):
    return asyncio.run(coroutine)


def test_a_process_answers_as_the_worker_would_on_the_worker_s_models(processes, settings, service_workspace):
    scorer = build_scorer(settings)
    served = Served.of(settings.mlflow_store, scorer.models.versions)
    customer = lapsing_customer(service_workspace)
    answer = run(processes.call("profile", served, customer))
    assert answer == scorer.profile(customer) and answer["recommendations"]
    # the models are the worker's: served nothing, the process answers with no model either
    bare = run(processes.call("profile", Served.of(settings.mlflow_store, {}), customer))
    assert bare["model_versions"] == {} and bare["recommendations"] == []
    assert bare["scores"][s.CHURN_PROBABILITY] is None and bare["features"] == answer["features"]
    scorer.store.close()


def test_events_written_by_the_process_are_read_by_the_worker(processes, settings, service_workspace):
    scorer = build_scorer(settings)
    customer = lapsing_customer(service_workspace)
    product = str(service_workspace.tables[s.PRODUCTS][s.PRODUCT_ID].iloc[2])
    row = purchase(customer, product, scorer.state.as_of + pd.Timedelta(hours=3), "from-a-process")
    served = Served.of(settings.mlflow_store, {})  # /events needs no model
    answer = run(processes.call("events", served, {"transactions": [row]}))
    assert answer["accepted"] == 1 and answer["customers_updated"] == [customer]
    assert run(processes.call("events", served, {"transactions": [row]}))["duplicates"] == 1
    stored = scorer.store.history(customer, (s.TRANSACTIONS,))[s.TRANSACTIONS]
    assert (stored[s.ORDER_ID] == "from-a-process").sum() == 1
    scorer.store.close()


def test_a_process_that_dies_answers_503_once_and_is_started_again(processes, settings, service_workspace):
    served = Served.of(settings.mlflow_store, {})
    customer = lapsing_customer(service_workspace)
    pid = processes.pids()["reads"]
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.5)
    with pytest.raises(RequestError, match="started again") as refused:
        run(processes.call("profile", served, customer))
    assert refused.value.status == 503 and refused.value.headers["Retry-After"] == "1"
    assert run(processes.call("profile", served, customer))[s.CUSTOMER_ID] == customer
    assert processes.pids()["reads"] != pid


def test_the_call_after_one_given_up_gets_its_own_answer(processes, settings, service_workspace):
    """A request whose timeout cancels it leaves its answer to come in the pipe: the next call reads
    it first and answers with its own, from the same process."""
    served = Served.of(settings.mlflow_store, {})
    customer = lapsing_customer(service_workspace)
    pid = processes.pids()["reads"]

    async def give_up_once_sent() -> None:
        call = asyncio.create_task(processes.call("profile", served, customer))
        await asyncio.sleep(0)  # the call is sent and waits for its answer
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call

    run(give_up_once_sent())
    assert run(processes.call("profile", served, "nobody"))[s.CUSTOMER_ID] == "nobody"
    assert run(processes.call("profile", served, customer))[s.CUSTOMER_ID] == customer
    assert processes.pids()["reads"] == pid


def test_the_processes_end_with_their_worker(settings, tmp_path):
    """A worker killed with SIGKILL leaves no process behind: each notices within a second or so."""
    script = tmp_path / "worker.py"
    script.write_text(
        "import time\n"
        "from pathlib import Path\n"
        "from service.loading import ServiceSettings\n"
        "from service.processes import ScorerProcesses, Served\n"
        "if __name__ == '__main__':  # the processes are spawned: they import this file\n"
        f"    settings = ServiceSettings(Path({str(settings.store_path)!r}), Path({str(settings.mlflow_store)!r}))\n"
        "    processes = ScorerProcesses(settings)\n"
        "    processes.warm(Served.of(settings.mlflow_store, {}))  # both processes answer\n"
        "    print(' '.join(str(pid) for pid in processes.pids().values()), flush=True)\n"
        "    time.sleep(600)\n"
    )
    worker = subprocess.Popen(
        [sys.executable, str(script)], cwd=Path(__file__).resolve().parent.parent, stdout=subprocess.PIPE, text=True
    )
    helpers = [int(pid) for pid in worker.stdout.readline().split()]
    assert len(helpers) == 2 and all(_alive(pid) for pid in helpers)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in helpers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(pid) for pid in helpers)


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "State:\tZ" not in status  # a zombie has ended; its parent is gone and init reaps it


def test_a_fault_in_a_process_is_a_runtime_error_logged_there_with_the_request_id(settings, capfd):
    processes = ScorerProcesses(settings)  # started under capfd: their stderr is captured
    token = REQUEST_ID.set("req-fault-1")
    try:
        with pytest.raises(RuntimeError, match="profile failed in its process"):
            run(processes.call("profile", Served.of(settings.mlflow_store, {}), "C0000001", "an argument too many"))
    finally:
        REQUEST_ID.reset(token)
        processes.close()
    logged = capfd.readouterr().err
    assert "[req-fault-1] profile failed in the scoring-reads process" in logged
    assert "Traceback" in logged  # the fault's own traceback, where it arose
