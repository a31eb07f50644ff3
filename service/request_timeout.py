"""BentoML's request timeout, without keeping every finished request alive until the timeout.

BentoML 1.4's `TimeoutMiddleware` (the service's `traffic.timeout`, which BentoML requires to be
positive) starts a timer per request and never cancels it. The timer holds a copy of the request's
context, and with it the request's OpenTelemetry span (attributes, lists, a lock: about 25
objects), until it fires. At 200 requests/s and a 60 s timeout that kept some 12,000 finished
requests alive. Once the first of them expired, a minute into the run, old objects died as fast as
new ones were made, so the garbage collector's allocation count hovered near zero; its young
collections came rarely and each scanned tens of thousands of objects: gen-1 passes of 20-30 ms
every few seconds in the worker, measured during `make soak` (scoring p99 8 ms in the first minute,
11-16 ms after; docs/BENCHMARKS.md).

`cancel_request_timers` gives `TimeoutMiddleware` a `__call__` that behaves the same (a 504 when no
answer has started within the timeout, the request's work cancelled), except that its timer holds
none of the request's context and is cancelled when the answer starts, and that an app which ends
without answering is not waited for until the timeout. The 504 has the API's one error shape.
"""

from __future__ import annotations

import asyncio
import contextvars

from bentoml._internal.server.http.traffic import TimeoutMiddleware

from service.errors import RequestError
from service.requests import send_error


def cancel_request_timers() -> None:
    """Install `answer_within_timeout` as BentoML's TimeoutMiddleware.__call__ (idempotent)."""
    TimeoutMiddleware.__call__ = answer_within_timeout


async def answer_within_timeout(self: TimeoutMiddleware, scope, receive, send) -> None:
    """Run the app on the request; when no answer has started within `self.timeout` seconds, cancel
    it and answer 504."""
    if scope["type"] not in ("http", "websocket"):
        return await self.app(scope, receive, send)
    loop = asyncio.get_running_loop()
    started = loop.create_future()  # done when the answer starts, the app ends, or the time is up

    def start(_=None) -> None:
        if not started.done():
            started.set_result(True)

    def time_out() -> None:
        if not started.done():
            started.set_result(False)

    async def sending(message) -> None:
        start()
        await send(message)

    # an empty context: the timer needs nothing of the request's, and keeps nothing of it alive
    timer = loop.call_later(self.timeout, time_out, context=contextvars.Context())
    answering = asyncio.ensure_future(self.app(scope, receive, sending))
    answering.add_done_callback(start)
    try:
        in_time = await started
    finally:
        timer.cancel()
    if in_time:
        await answering  # the rest of the answer, or the app's own error
    elif answering.cancel():
        await send_error(send, RequestError("body", f"not answered within {self.timeout:g} s; try again later", 504))
