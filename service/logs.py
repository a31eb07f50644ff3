"""What the service logs about requests: a client's mistake is one INFO line, a fault keeps its traceback.

BentoML logs every request body that fails its pydantic validation at ERROR with a full
traceback, which buries the service's real faults among client typos. Those records are dropped
(`DropValidationTracebacks`), and `service.requests` logs every 4xx answer, BentoML's and the
service's own, as one INFO line: status, endpoint, request id, field and why.
"""

from __future__ import annotations

import logging

from pydantic import ValidationError

# the service's logger: a child of "bentoml", so it goes where BentoML's logging config sends it
logger = logging.getLogger("bentoml.customer_intelligence")

# the logger BentoML's `log_exception` writes to
BENTOML_REQUEST_LOGGER = "bentoml._internal.server.http_app"


def client_error_line(status: int, endpoint: str, request_id: str, error: str) -> str:
    """The one line of a refused request: `400 POST /churn [ab12cd] customer_ids[0]: input should be...`."""
    return f"{status} {endpoint} [{request_id}] {error}"


def log_client_error(status: int, endpoint: str, request_id: str, error: str) -> None:
    logger.info(client_error_line(status, endpoint, request_id, error))


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
