"""The shape of a request before BentoML reads it: a JSON object with known keys, one error shape out.

Left to itself BentoML answers a body it cannot parse, or a field of the wrong type, with its own
400 (a list of pydantic errors under `detail`), a multipart content type with a 500, and ignores
keys it does not know, so a typo in a key (`{"transaction": [...]}`) is accepted as nothing.
`RequestShape` checks the content type, the JSON and the top-level keys of every POST to an
endpoint, hands the body on unchanged, and rewrites BentoML's validation errors, so that every
refusal has the one shape of `service.errors.RequestError`: {"error": "...", "field": "..."}.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

from service.errors import RequestError
from service.logs import log_client_error

BODY = "body"
CONTENT_TYPE = "Content-Type"
REQUEST_ID_HEADER = b"x-request-id"
MAX_REQUEST_ID = 64


def check_content_type(content_type: str | None) -> RequestError | None:
    """None when the body may be JSON: no content type, application/json or a +json type."""
    if not content_type:
        return None
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type == "application/json" or media_type.endswith("+json"):
        return None
    return RequestError(CONTENT_TYPE, f"send the body as application/json, not {media_type}", 415)


def check_body(body: bytes, fields: frozenset[str]) -> RequestError | None:
    """None when `body` is a JSON object whose keys are all among `fields` (or empty, with no fields)."""
    expected = f"a JSON object with any of {', '.join(sorted(fields))}" if fields else "an empty body or {}"
    if not body.strip():
        return None if not fields else RequestError(BODY, f"empty; expected {expected}")
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        return RequestError(BODY, f"not valid JSON ({_first_line(error)}); expected {expected}")
    if not isinstance(value, dict):
        return RequestError(BODY, f"expected {expected}, got a JSON {_json_type(value)}")
    unknown = sorted(set(value) - fields)
    if unknown:
        return RequestError(unknown[0], f"unknown field; expected {expected}")
    return None


def validation_error(body: bytes) -> RequestError | None:
    """BentoML's 400 body (pydantic errors under `detail`) as a RequestError naming the first field."""
    try:
        detail = json.loads(body).get("detail")
        first = detail[0]
        location, message = list(first.get("loc") or []), str(first["msg"])
    except (ValueError, AttributeError, TypeError, LookupError):
        return None
    field = _field_name(location)
    return RequestError(field, message[0].lower() + message[1:] if message else "not valid")


def _field_name(location: list[Any]) -> str:
    """["customer_ids", 0] -> "customer_ids[0]"; [] -> "body"."""
    if not location:
        return BODY
    name = str(location[0])
    return name + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in location[1:])


def _first_line(error: Exception) -> str:
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def _json_type(value: Any) -> str:
    names = {list: "array", str: "string", bool: "boolean", int: "number", float: "number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


class RequestShape:
    """ASGI middleware for each POST to an endpoint in `fields_by_path` (path -> its top-level keys):
    checks the body, gives every answer an `x-request-id` header, and logs each 4xx in one line."""

    def __init__(self, app, fields_by_path: Mapping[str, frozenset[str]]) -> None:
        self.app = app
        self.fields_by_path = dict(fields_by_path)

    async def __call__(self, scope, receive, send) -> None:
        path = scope.get("path")
        if scope["type"] != "http" or scope.get("method") != "POST" or path not in self.fields_by_path:
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        request_id = request_id_of(headers.get(REQUEST_ID_HEADER, b""))
        answer = _answering(send, request_id, f"POST {path}")
        body = await _read_body(receive)
        problem = check_content_type(headers.get(b"content-type", b"").decode("latin-1"))
        problem = problem or check_body(body, self.fields_by_path[path])
        if problem is not None:
            await send_error(answer, problem)
            return
        await self.app(scope, _replay(body, receive), answer)


def request_id_of(sent: bytes) -> str:
    """The client's X-Request-ID when it is a short printable token, else a new one."""
    text = sent.decode("latin-1")
    if 0 < len(text) <= MAX_REQUEST_ID and text.isprintable() and " " not in text:
        return text
    return uuid.uuid4().hex[:16]


async def send_error(send, error: RequestError) -> None:
    """Answer with the error's status and body: the one error shape of the API."""
    await send_json(send, error.status, error.as_dict())


async def send_json(send, status: int, body: dict) -> None:
    payload = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


async def _read_body(receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client went away: nothing to answer
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive):
    """A receive that yields the body already read once, then whatever the server sends next (a disconnect)."""
    sent = False

    async def replay():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _answering(send, request_id: str, endpoint: str):
    """A send that adds the request id to the answer's headers and, for a 4xx, puts the body in the
    API's error shape (BentoML's pydantic detail rewritten) and logs it in one line."""
    held: dict[str, Any] = {}

    async def answer(message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), (REQUEST_ID_HEADER, request_id.encode())]}
            if 400 <= message["status"] < 500:
                held["start"], held["body"] = message, b""
                return
        if "start" not in held:
            await send(message)
            return
        held["body"] += message.get("body", b"")
        if message.get("more_body"):
            return
        start, body = held.pop("start"), held.pop("body")
        error = validation_error(body)
        if error is not None:
            body = json.dumps(error.as_dict()).encode()
            start = {**start, "headers": _with_length(start["headers"], len(body))}
        log_client_error(start["status"], endpoint, request_id, _error_text(body))
        await send(start)
        await send({"type": "http.response.body", "body": body})

    return answer


def _with_length(headers: list[tuple[bytes, bytes]], length: int) -> list[tuple[bytes, bytes]]:
    kept = [(name, value) for name, value in headers if name.lower() not in (b"content-length", b"content-type")]
    return [*kept, (b"content-type", b"application/json"), (b"content-length", str(length).encode())]


def _error_text(body: bytes) -> str:
    try:
        return str(json.loads(body)["error"])
    except (ValueError, TypeError, LookupError):
        return body[:200].decode("utf-8", "replace")
