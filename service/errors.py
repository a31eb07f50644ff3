"""The one error a request can end in: the offending field, why, and the HTTP status to answer with."""

from __future__ import annotations


class RequestError(ValueError):
    """A request the service refuses (answered as a 4xx body naming the field, never a 5xx)."""

    def __init__(self, field: str, message: str, status: int = 400) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.status = status

    def as_dict(self) -> dict[str, str]:
        return {"error": str(self), "field": self.field}
