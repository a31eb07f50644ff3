"""The OpenAPI document as the service really behaves: what BentoML generates, corrected.

BentoML writes an OpenAPI 3.0 document from the pydantic types, with three gaps a strict
validator or a client generator trips over: an optional value is written `anyOf [..., {"type":
"null"}]` (or only as `default: null`), which 3.0 does not know (it says `nullable: true`); a
request body allows any extra key, while the service refuses unknown keys; and the error answers
are BentoML's shapes, not the one the service sends (`ErrorAnswer`), with 401, 413, 415, 503 and 504
not declared at all. `describe_api` fixes the document once per process; it is a pure function of
BentoML's document, so a test can check it without a server.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, get_args

from pydantic import BaseModel

from service import schemas as wire
from service.schemas import ErrorAnswer

# The service's pydantic models by name (BentoML titles a schema after its model, + "IODescriptor").
WIRE_MODELS: dict[str, type[BaseModel]] = {
    name: value
    for name, value in vars(wire).items()
    if isinstance(value, type) and issubclass(value, BaseModel) and value is not BaseModel
}

ERROR_SCHEMA = "ErrorAnswer"
ERROR_REF = {"$ref": f"#/components/schemas/{ERROR_SCHEMA}"}
# Every status a client's request can end in besides 200, with what it means.
ERROR_STATUSES = {
    "400": "the body or a field is not valid; `field` names it",
    "401": "missing or wrong X-API-Key header (when SCORING_API_KEY is set)",
    "404": "an unknown product",
    "413": "more ids or rows than SCORING_MAX_BATCH",
    "415": "the body is not sent as application/json",
    "503": "not now: the endpoint's model has no champion (yet), or the profile store is busy (see Retry-After)",
    "504": "no answer started within the service's request timeout (`traffic.timeout`); send the request again later",
}
# Bodies with no required key that still must say something: POST /events needs one of its lists.
AT_LEAST_ONE_KEY = frozenset({"events"})


def request_examples(customer_id: str, product_id: str, rows: Mapping[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """A request body per endpoint (by BentoML's endpoint name) made of served data: a stored customer,
    a product the recommender knows, and that customer's stored rows (so trying the /events example
    adds nothing: it answers them as duplicates)."""
    return {
        "churn": {"customer_ids": [customer_id]},
        "propensity": {"customer_ids": [customer_id]},
        "clv": {"customer_ids": [customer_id]},
        "recommend": {"customer_id": customer_id, "k": 5, "exclude_purchased": True},
        "similar_items": {"product_id": product_id, "k": 5},
        "profile": {"customer_id": customer_id},
        "due": {"customer_id": customer_id, "within_days": 30},
        "events": {name: list(table_rows) for name, table_rows in rows.items() if table_rows},
    }


def describe_api(document: dict[str, Any], examples: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """BentoML's OpenAPI document with nullable values, closed request bodies, the error answers and,
    when given, a request example per endpoint (`request_examples`)."""
    described = copy.deepcopy(document)
    schemas = described.setdefault("components", {}).setdefault("schemas", {})
    schemas[ERROR_SCHEMA] = ErrorAnswer.model_json_schema()
    for operation in _api_operations(described):
        body = _request_schema(operation, schemas)
        if body is None:
            continue
        body["additionalProperties"] = False
        if body.get("properties"):
            operation["requestBody"]["required"] = True  # a missing body is a 400, like a missing field
        if operation.get("x-bentoml-name") in AT_LEAST_ONE_KEY:
            body["minProperties"] = 1
        example = (examples or {}).get(operation.get("x-bentoml-name"))
        if example:  # BentoML's own are placeholders ("string")
            operation["requestBody"]["content"]["application/json"]["example"] = example
        operation["responses"] = {
            **{code: answer for code, answer in operation.get("responses", {}).items() if code.startswith("2")},
            **{code: _error_answer(meaning) for code, meaning in ERROR_STATUSES.items()},
        }
    _mark_optional_fields(described)
    return _nullable(described)


def _mark_optional_fields(document: dict[str, Any]) -> None:
    """`nullable: true` on the fields the wire models declare `X | None`: BentoML drops the null
    from a required field's schema (`as_of: str | None` becomes a plain string)."""
    for schema in _object_schemas(document):
        model = WIRE_MODELS.get(str(schema.get("title", "")).removesuffix("IODescriptor"))
        if model is None:
            continue
        for name, field in model.model_fields.items():
            if name in schema.get("properties", {}) and type(None) in get_args(field.annotation):
                schema["properties"][name]["nullable"] = True


def _object_schemas(document: dict[str, Any]):
    """Every schema with a title: the components and the schemas written inline in the operations."""
    yield from document.get("components", {}).get("schemas", {}).values()
    for operation in _api_operations(document):
        for answer in operation.get("responses", {}).values():
            schema = answer.get("content", {}).get("application/json", {}).get("schema", {})
            if "title" in schema:
                yield schema
        schema = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
        if "title" in schema:
            yield schema


def _api_operations(document: dict[str, Any]):
    """The operations BentoML made from the service's endpoints (not its health and metrics routes)."""
    for item in document.get("paths", {}).values():
        for operation in item.values():
            if isinstance(operation, dict) and "x-bentoml-name" in operation:
                yield operation


def _request_schema(operation: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any] | None:
    schema = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
    if schema and "$ref" in schema:
        return schemas.get(schema["$ref"].rsplit("/", 1)[-1])
    return schema


def _error_answer(meaning: str) -> dict[str, Any]:
    return {"description": meaning, "content": {"application/json": {"schema": dict(ERROR_REF)}}}


def _nullable(node: Any) -> Any:
    """OpenAPI 3.0's spelling of an optional value, everywhere in the document."""
    if isinstance(node, list):
        return [_nullable(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _nullable(value) for key, value in node.items()}
    options = node.get("anyOf")
    if isinstance(options, list) and {"type": "null"} in options:
        rest = [option for option in options if option != {"type": "null"}]
        del node["anyOf"]
        if len(rest) == 1 and "$ref" not in rest[0]:
            node.update(rest[0])
        else:  # a $ref cannot take siblings in 3.0: keep it inside allOf
            node["anyOf" if len(rest) > 1 else "allOf"] = rest
        node["nullable"] = True
    if "default" in node and node["default"] is None and not node.get("nullable"):
        del node["default"]  # "absent" in Python, but null is not a value of this field on the wire
    return node
