"""service.request_timeout: BentoML's request timeout, answering as before, keeping nothing alive."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import json
import weakref

import pytest
from bentoml._internal.server.http.traffic import TimeoutMiddleware

from service.request_timeout import cancel_request_timers

# stands for what an outer middleware puts in the request's context (BentoML's OpenTelemetry span)
REQUEST_STATE: contextvars.ContextVar[object] = contextvars.ContextVar("request_state")


class RequestState:
    """An object only the request's context refers to."""


def http_scope() -> dict:
    return {"type": "http", "method": "POST", "path": "/churn", "headers": []}


async def answer_ok(scope, receive, send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


async def call(app, timeout: float) -> list[dict]:
    """One request through the timeout middleware; the messages it sent."""
    cancel_request_timers()
    sent: list[dict] = []

    async def send(message) -> None:
        sent.append(message)

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    await TimeoutMiddleware(app, timeout=timeout)(http_scope(), receive, send)
    return sent


def test_a_finished_request_leaves_nothing_of_its_context_alive():
    """BentoML's own timer kept the request's context (its span) alive for the whole timeout."""

    async def main() -> bool:
        async def one_request() -> weakref.ref:
            state = RequestState()
            REQUEST_STATE.set(state)
            assert (await call(answer_ok, timeout=60))[0]["status"] == 200
            return weakref.ref(state)

        # the request runs in a task of its own, as uvicorn runs each one: its context ends with it
        request = asyncio.create_task(one_request())
        left = await request
        del request
        await asyncio.sleep(0)  # the loop runs what the request's end scheduled
        gc.collect()
        return left() is None  # asked while the loop, and any timer on it, is still alive

    assert asyncio.run(main())


def test_an_answer_not_started_within_the_timeout_is_a_504_and_its_work_is_cancelled():
    async def main() -> tuple[list[dict], bool]:
        gave_up = asyncio.Event()

        async def slow(scope, receive, send) -> None:
            try:
                await asyncio.sleep(5)
            except asyncio.CancelledError:
                gave_up.set()
                raise
            await answer_ok(scope, receive, send)

        sent = await call(slow, timeout=0.05)
        await asyncio.wait_for(gave_up.wait(), timeout=1)
        return sent, gave_up.is_set()

    sent, was_cancelled = asyncio.run(main())
    assert sent[0]["status"] == 504 and was_cancelled
    body = json.loads(sent[1]["body"])
    assert body["field"] == "body" and "not answered within 0.05 s" in body["error"]


def test_an_app_that_fails_before_answering_is_not_waited_for_until_the_timeout():
    async def failing(scope, receive, send) -> None:
        raise RuntimeError("a fault before any answer")

    async def main() -> None:
        await asyncio.wait_for(call(failing, timeout=60), timeout=2)

    with pytest.raises(RuntimeError, match="a fault before any answer"):
        asyncio.run(main())
