"""The one error a request can end in: the offending field, why, and the HTTP status to answer with."""

from __future__ import annotations


class RequestError(ValueError):
    """A request the service refuses: a 4xx body naming the field (a 503 when the model it needs is not
    registered), never a traceback."""

    def __init__(self, field: str, message: str, status: int = 400) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.status = status

    def as_dict(self) -> dict[str, str]:
        return {"error": str(self), "field": self.field}
