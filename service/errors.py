"""The one error a request can end in: the offending field, why, and the HTTP status to answer with."""

from __future__ import annotations

import math
from collections.abc import Mapping


class RequestError(ValueError):
    """A request the service refuses: a 4xx body naming the field (a 503 when the model it needs is not
    loaded or the store is busy), never a traceback. `headers` go with the answer (a 503's Retry-After)."""

    def __init__(self, field: str, message: str, status: int = 400, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.status = status
        self.headers = dict(headers or {})

    def __reduce__(self):
        # rebuilt from its parts where it is unpickled (a call answered in `service.processes`)
        return (RequestError, (self.field, self.message, self.status, self.headers))

    def as_dict(self) -> dict[str, str]:
        return {"error": str(self), "field": self.field}


def retry_after(seconds: float) -> dict[str, str]:
    """The Retry-After header of a 503: whole seconds, at least one."""
    return {"Retry-After": str(max(1, math.ceil(seconds)))}
