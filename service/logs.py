"""What the service logs about requests: a client's mistake is one INFO line, a fault keeps its traceback,
and every line logged while a request is handled starts with its request id.

BentoML logs every request body that fails its pydantic validation at ERROR with a full
traceback, which buries the service's real faults among client typos. Those records are dropped
(`DropValidationTracebacks`), and `service.requests` logs every 4xx answer, BentoML's and the
service's own, as one INFO line: status, endpoint, field and why.

The request id (`REQUEST_ID`, set by `service.requests.RequestIds` for each request, the client's
X-Request-ID when it sends a usable one) is a context variable: it follows the request into the
thread pool and, sent with the call, into the worker's processes (`service.processes`), and
`RequestIdPrefix` puts it in front of every line logged meanwhile.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from contextvars import ContextVar

from pydantic import ValidationError

# the service's logger: a child of "bentoml", so it goes where BentoML's logging config sends it
logger = logging.getLogger("bentoml.customer_intelligence")

# the logger BentoML's `log_exception` writes to
BENTOML_REQUEST_LOGGER = "bentoml._internal.server.http_app"


# the id of the request being handled (None outside a request)
REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)
PREFIXED = "prefixed_request_id"  # the record attribute that says it has been prefixed


def client_error_line(status: int, endpoint: str, error: str) -> str:
    """The one line of a refused request: `400 POST /churn customer_ids[0]: input should be...`."""
    return f"{status} {endpoint} {error}"


def log_client_error(status: int, endpoint: str, error: str) -> None:
    logger.info(client_error_line(status, endpoint, error))


def with_request_id(message: str, request_id: str) -> str:
    """`[ab12cd] message`: how a line logged during a request reads."""
    return f"[{request_id}] {message}"


class RequestIdPrefix(logging.Filter):
    """On a handler: every record logged while a request is handled starts with the request's id."""

    def filter(self, record: logging.LogRecord) -> bool:
        request_id = REQUEST_ID.get()
        # a record may pass several handlers: prefixed once (ids hold no `%`: see `service.requests`)
        if request_id is not None and getattr(record, PREFIXED, None) != request_id:
            record.msg = with_request_id(str(record.msg), request_id)
            setattr(record, PREFIXED, request_id)
        return True


def install_request_id_prefix(handlers: Iterable[logging.Handler] | None = None) -> None:
    """Once per process, on BentoML's log handlers (those of its logger and the root logger) or on the
    given ones."""
    if handlers is None:
        handlers = [*logging.getLogger("bentoml").handlers, *logging.getLogger().handlers]
    for handler in handlers:
        if not any(isinstance(existing, RequestIdPrefix) for existing in handler.filters):
            handler.addFilter(RequestIdPrefix())


class DropValidationTracebacks(logging.Filter):
    """Drops BentoML's ERROR-with-traceback for a body that failed validation: `service.requests`
    answers it in the API's error shape and logs it in one line with the request id."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], ValidationError))


def install_client_error_filter() -> None:
    """Once per process: BentoML's validation errors are not logged as faults."""
    request_logger = logging.getLogger(BENTOML_REQUEST_LOGGER)
    if not any(isinstance(existing, DropValidationTracebacks) for existing in request_logger.filters):
        request_logger.addFilter(DropValidationTracebacks())
