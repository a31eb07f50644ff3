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
import re
import uuid
from collections.abc import Mapping
from typing import Any

from service.errors import RequestError
from service.logs import REQUEST_ID, log_client_error

BODY = "body"
CONTENT_TYPE = "Content-Type"
REQUEST_ID_HEADER = b"x-request-id"
# a client's request id is kept when it is a short token of these characters (it goes into log lines)
USABLE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


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


class HttpMiddleware:
    """An ASGI middleware that handles HTTP requests (`handle`) and passes anything else (the server's
    lifespan messages) on as it is."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.handle(scope, receive, send)

    async def handle(self, scope, receive, send) -> None:
        raise NotImplementedError


class RequestIds(HttpMiddleware):
    """Each HTTP request gets an id (the client's X-Request-ID when usable), which every answer carries
    as a header and every line logged while the request is handled starts with."""

    async def handle(self, scope, receive, send) -> None:
        request_id = request_id_of(header_value(scope, REQUEST_ID_HEADER))
        REQUEST_ID.set(request_id)  # this request's task (and the threads it hands work to) only
        header = (REQUEST_ID_HEADER, request_id.encode())

        async def send_with_id(message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), header]}
            await send(message)

        await self.app(scope, receive, send_with_id)


def header_value(scope, name: bytes) -> bytes:
    """The request's first header of this (lower-case) name, or b"" (ASGI gives names in lower case)."""
    return next((value for header, value in scope.get("headers") or [] if header == name), b"")


def request_id_of(sent: bytes) -> str:
    """The client's X-Request-ID when it is a short token of letters, digits and `._:-`, else a new one."""
    text = sent.decode("latin-1")
    return text if USABLE_REQUEST_ID.fullmatch(text) else uuid.uuid4().hex[:16]


class RequestShape(HttpMiddleware):
    """For each POST to an endpoint in `fields_by_path` (path -> its top-level keys): checks the body,
    and puts every 4xx answer in the API's error shape and logs it in one line."""

    def __init__(self, app, fields_by_path: Mapping[str, frozenset[str]]) -> None:
        super().__init__(app)
        self.fields_by_path = dict(fields_by_path)

    async def handle(self, scope, receive, send) -> None:
        path = scope.get("path")
        if scope.get("method") != "POST" or path not in self.fields_by_path:
            await self.app(scope, receive, send)
            return
        answer = _answering(send, f"POST {path}")
        body = await _read_body(receive)
        problem = check_content_type(header_value(scope, b"content-type").decode("latin-1"))
        problem = problem or check_body(body, self.fields_by_path[path])
        if problem is not None:
            await send_error(answer, problem)
            return
        await self.app(scope, _replay(body, receive), answer)


async def send_error(send, error: RequestError) -> None:
    """Answer with the error's status, headers and body: the one error shape of the API."""
    await send_json(send, error.status, error.as_dict(), error.headers)


async def send_json(send, status: int, body: dict, extra_headers: Mapping[str, str] | None = None) -> None:
    payload = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    for name, value in (extra_headers or {}).items():
        headers.append((name.lower().encode("latin-1"), value.encode("latin-1")))
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


def _answering(send, endpoint: str):
    """A send that, for a 4xx, puts the body in the API's error shape (BentoML's pydantic detail
    rewritten) and logs it in one line."""
    held: dict[str, Any] = {}

    async def answer(message) -> None:
        if message["type"] == "http.response.start" and 400 <= message["status"] < 500:
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
        log_client_error(start["status"], endpoint, _error_text(body))
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
