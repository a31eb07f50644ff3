"""Processes of their own for the calls that hold the interpreter for milliseconds.

A worker's event loop and its threads share one interpreter lock. A /recommend on a thread (a
customer's candidates and ranking: a few milliseconds of Python) or an /events (the checks and a
profile rebuild: about ten) takes the lock for up to the switch interval (5 ms) each time the loop
lets it go, and the loop lets it go at every wait for the network, so a /churn arriving meanwhile
waits several such turns. Measured with `make soak` (200 requests/s of the issue's mix, one worker,
a quiet machine; docs/BENCHMARKS.md): scoring p99 162 and 342 ms with those calls on threads, 13.7
and 13.9 ms with them here.

So each worker starts two processes, each holding its own `Scorer` on the same profile store:
"reads" answers the calls that read a customer's whole history (/recommend, /due, and /profile,
which holds every model's answer), and "writes" answers /events (the store guards each customer's
read-rebuild-write across processes, as across workers), so that a recommendation never waits
behind a profile rebuild. Their cost grows with the history (a customer with thousands of lines,
a busy disk), so even now that one customer's /recommend or /due costs one or two milliseconds of
CPU they stay off the event loop: there, one long history would stall every other request of the
worker. (On the loop, the soak's scoring p99 was lower: 8.3 and 9.5 ms against 13.0 and 10.9 ms
in 1.5-minute runs alternated on a quiet machine; docs/BENCHMARKS.md. Not kept, for that stall.)
The event loop writes a call into the process's pipe and is woken when the answer can be read: no
thread of the worker takes part, so none waits for the lock while the loop is busy (a process
pool's feeder threads did, and cost a few milliseconds at the tail).
The writes process runs at a lower CPU priority (`PROCESS_NICENESS`): when the cores are busy, a
rebuild gives way to the scoring calls.

- Models: each call carries what the worker serves (`Served`), and a process serving something else
  loads those versions first (`load_changed_champions`: the worker has already refused what it
  cannot serve). At start-up the worker has them loaded before it serves (`warm`); after a reload
  the first call to each process loads them.
- Faults: a call whose process died answers 503 with Retry-After, and the process is started
  again (a retried /events adds nothing). A call given up while its process works on it (the
  request timed out, `service.request_timeout`) leaves its answer owed: the process finishes the
  call, and the next call reads that answer and drops it before its own. A process whose worker
  is gone exits within a second.
- Errors a call raises (`RequestError`: a 4xx, or a 503 when the store is busy) come back as
  raised; any other error comes back as a RuntimeError (a 500), its traceback logged where it arose.
- `SCORING_PROCESSES=0` runs the same calls on the worker's thread pool instead (two processes fewer,
  a few hundred MB less memory, and the latency above).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from service.collector import collect_fully_less_often, keep_out_of_collections
from service.errors import RequestError, retry_after
from service.loading import ServiceSettings, load_changed_champions, open_store
from service.logs import REQUEST_ID, install_request_id_prefix, logger
from service.scorer import Scorer, ServingModels

# Which process answers which Scorer method.
PROCESS_GROUPS: dict[str, tuple[str, ...]] = {"reads": ("recommend", "profile", "due"), "writes": ("events",)}
# When the cores are busy, a profile rebuild (tens of milliseconds, its client waits for it alone)
# gives way to the scoring calls (a few milliseconds, many clients waiting): a lower CPU priority.
PROCESS_NICENESS = {"writes": 10}
_PARENT_CHECK_S = 1.0


@dataclass(frozen=True)
class Served:
    """What the worker serves: the champions' versions and the registry they come from."""

    mlflow_store: Path
    versions: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, mlflow_store: Path, versions: Mapping[str, str]) -> Served:
        return cls(Path(mlflow_store), tuple(sorted(versions.items())))


# In a helper process: its settings, the Scorer it answers with, and what that Scorer serves.
_SETTINGS: ServiceSettings | None = None
_SCORER: Scorer | None = None
_SERVED: Served | None = None


class ScorerProcesses:
    """The worker's side: one `HelperProcess` per group of PROCESS_GROUPS."""

    def __init__(self, settings: ServiceSettings) -> None:
        self._group_of = {method: group for group, methods in PROCESS_GROUPS.items() for method in methods}
        self._helpers = {group: HelperProcess(group, settings) for group in PROCESS_GROUPS}

    async def call(self, method: str, served: Served, *args: Any, **kwargs: Any) -> Any:
        """`Scorer.<method>(*args, **kwargs)` in its process, on the models the worker serves."""
        return await self._helpers[self._group_of[method]].call((method, args, kwargs, served, REQUEST_ID.get()))

    def warm(self, served: Served) -> None:
        """Have every process load these models now, waiting for them: before any request is served
        (a call after a reload loads them itself, once)."""
        for helper in self._helpers.values():
            try:
                helper.call_now((None, (), {}, served, None))
            except Exception as error:  # noqa: BLE001 -- the first call loads them instead
                logger.warning("the %s process could not load the models yet: %s", helper.group, error)

    def pids(self) -> dict[str, int]:
        return {group: helper.process.pid for group, helper in self._helpers.items()}

    def close(self) -> None:
        for helper in self._helpers.values():
            helper.stop()


class HelperProcess:
    """One process and the pipe to it, one call at a time: the event loop writes a call and waits
    for the answer to become readable (no thread of the worker takes part, so none of them waits
    for the interpreter lock while the loop is busy)."""

    def __init__(self, group: str, settings: ServiceSettings) -> None:
        self.group = group
        self.settings = settings
        self._turn: asyncio.Lock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._start()

    def _start(self) -> None:
        context = multiprocessing.get_context("spawn")  # not a fork of a worker whose threads run
        self.connection, theirs = context.Pipe()
        self.process = context.Process(
            target=_serve,
            args=(theirs, self.settings, os.getpid(), PROCESS_NICENESS.get(self.group, 0)),
            name=f"scoring-{self.group}",
            daemon=True,
        )
        self.process.start()
        theirs.close()
        self._answer_owed = False

    async def call(self, message: tuple) -> Any:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # the first call, or a new loop (tests run one per call)
            self._loop, self._turn = loop, asyncio.Lock()
        async with self._turn:
            try:
                if self._answer_owed:  # a call given up (its request timed out) before its answer came
                    await self._read_answer(loop)  # read and dropped, so that this call reads its own
                self.connection.send(message)  # the process is between calls: it reads at once
                answered, value = await self._read_answer(loop)
            except (EOFError, OSError):
                self._restart()
                message = f"the service's {self.group} process stopped and was started again; send the request again"
                raise RequestError("body", message, 503, retry_after(1)) from None
        if not answered:
            raise value
        return value

    async def _read_answer(self, loop: asyncio.AbstractEventLoop) -> tuple[bool, Any]:
        """The process's answer to the call sent last, read when the pipe is readable. Owed until read:
        a call cancelled while waiting leaves it for the next call to read first."""
        self._answer_owed = True
        readable = loop.create_future()
        descriptor = self.connection.fileno()
        loop.add_reader(descriptor, lambda: readable.done() or readable.set_result(None))
        try:
            await readable
        finally:
            loop.remove_reader(descriptor)
        answer = self.connection.recv()
        self._answer_owed = False
        return answer

    def call_now(self, message: tuple) -> Any:
        """A call made before the event loop serves requests (start-up)."""
        self.connection.send(message)
        answered, value = self.connection.recv()
        if not answered:
            raise value
        return value

    def _restart(self) -> None:
        self.stop()
        self._start()

    def stop(self) -> None:
        self.connection.close()
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=5)


# ---------------------------------------------------------------------------
# In the helper process.
# ---------------------------------------------------------------------------
def _serve(connection, settings: ServiceSettings, parent: int, niceness: int) -> None:
    """The helper process: answer the worker's calls, one at a time, until the pipe closes."""
    os.nice(niceness)
    name_process(multiprocessing.current_process().name)
    _start_process(settings, parent)
    while True:
        try:
            method, args, kwargs, served, request_id = connection.recv()
        except (EOFError, OSError):
            return  # the worker closed the pipe: it is stopping
        token = REQUEST_ID.set(request_id)  # every line logged for this call starts with its id
        try:
            reply = (True, _answer(method, args, kwargs, served))
        except RequestError as error:
            reply = (False, error)
        except Exception as error:  # noqa: BLE001 -- a fault: the worker answers it as a 500, logged there
            logger.exception("%s failed in the %s process", method, multiprocessing.current_process().name)
            reply = (False, RuntimeError(f"{method} failed in its process: {error!r}"))
        finally:
            REQUEST_ID.reset(token)
        connection.send(reply)


def name_process(name: str) -> None:
    """Show the process as `name` in ps and top (/proc/PID/comm, at most 15 characters) rather than as
    one more python, so that a reader of those tools sees which process costs what."""
    with contextlib.suppress(OSError):  # not Linux: only those tools would show it
        Path("/proc/self/comm").write_text(name[:15])


def _start_process(settings: ServiceSettings, parent: int) -> None:
    """The process's Scorer on the profile store (models come with the first call), and a watch on
    its worker."""
    global _SETTINGS, _SCORER, _SERVED
    # lines logged here go to the worker's stderr, each with its request's id, like the worker's own
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s [%(processName)s] %(message)s")
    install_request_id_prefix()
    store, state = open_store(settings.store_path, settings.store_busy_timeout_s)
    _SETTINGS = settings
    _SCORER = Scorer(ServingModels.of({}, {}), store, state, max_batch=settings.max_batch)
    _SERVED = Served.of(settings.mlflow_store, {})
    threading.Thread(target=_exit_with, args=(parent,), name="worker-watch", daemon=True).start()
    keep_out_of_collections()
    collect_fully_less_often()


def _exit_with(parent: int) -> None:
    """End this process when its worker is gone (killed, even by SIGKILL): it would serve no one."""
    while os.getppid() == parent:
        time.sleep(_PARENT_CHECK_S)
    os._exit(0)


def _answer(method: str | None, args: tuple, kwargs: dict, served: Served) -> Any:
    """Serve the worker's models, then answer `method` (None: only load them)."""
    global _SCORER, _SERVED
    if served != _SERVED:
        first_models = not _SCORER.models.versions
        loaded = load_changed_champions(served.mlflow_store, dict(served.versions), _SCORER.models)
        _SCORER = Scorer(loaded.models, _SCORER.store, _SCORER.state, max_batch=_SETTINGS.max_batch)
        if first_models:  # they live as long as the process (replaced ones, after a reload, must not)
            keep_out_of_collections()
        # a family that failed to load (the registry went away meanwhile) is tried again next call
        _SERVED = served if not loaded.failures else Served.of(served.mlflow_store, loaded.models.versions)
    return None if method is None else getattr(_SCORER, method)(*args, **kwargs)
