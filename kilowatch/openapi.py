"""Shared pieces of the OpenAPI document: the error shape, responses, parameters, request bodies.

Schemas come from code: response bodies from msgspec Structs through Litestar's `ResponseSpec`,
request bodies from msgspec's own JSON Schema of the Structs that validate them (so the bounds,
patterns and `additionalProperties: false` are the ones enforced), parameters from `Parameter`
metadata. Each route lists its statuses next to its decorator; `Documented` (every route's
`operation_class`) drops Litestar's default 400, which errors.py never sends, and adds what
`ResponseSpec` cannot say: headers, and 401/403 where the route needs a key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import msgspec
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import (
    Example,
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    RequestBody,
    Schema,
    Tag,
)
from litestar.params import ParameterKwarg, PathParameter, QueryParameter

from kilowatch.ingest.schemas import (
    DEVICE_ID_PATTERN,
    DEVICE_ID_RULE,
    TIMESTAMP_JSON_PATTERN,
    TIMESTAMP_RULE,
    FieldError,
)


def ecma(pattern: str) -> str:
    r"""A Python pattern ending in `\Z` in JSON Schema's dialect (ECMA 262), where `$` is the end
    of the string (Python's `$` also matches before a final newline, hence the `\Z`)."""
    return pattern.removesuffix(r"\Z") + "$" if pattern.endswith(r"\Z") else pattern


DEVICE_ID_JSON_PATTERN = ecma(DEVICE_ID_PATTERN)
# Cursors are base64url (padded or not) of what the API issued; the longest it issues is about
# 170 characters (an assignments cursor: a 64-character id, a timestamp and a bigint).
CURSOR_PATTERN = r"^[A-Za-z0-9_-]*={0,2}$"
CURSOR_MAX_LENGTH = 256
MAX_LIMIT = 1000


class Problem(msgspec.Struct):
    """Every error but ingest's results (SPEC §7): what went wrong and, for invalid input, each
    field named as sent (`body` for the body as a whole) with why."""

    detail: str
    errors: list[FieldError] = msgspec.field(default_factory=list)


BUSY = "The worker has MAX_CONCURRENT_REQUESTS in progress; retry after `Retry-After` seconds"
_PROBLEMS = {
    401: "No valid API key: send `Authorization: Bearer <key>`",
    403: "A device key on a route that needs an operator key",
    404: "No such resource; `detail` names it",
    408: "The request body stopped arriving (BODY_TIMEOUT_S); the connection is then closed",
    409: "The request conflicts with existing data",
    413: "The body is larger than MAX_BODY_BYTES (8 MiB); nothing was stored",
    415: "Content-Type is neither application/json nor application/x-ndjson",
    422: "Invalid parameters or body: `errors` names each field as sent and says why",
    503: (
        "The database is unavailable, the ingest queue is full or the worker has "
        "MAX_CONCURRENT_REQUESTS in progress; retry after `Retry-After` seconds"
    ),
}
_HEADERS = {
    "401": {
        "WWW-Authenticate": OpenAPIHeader(
            schema=Schema(type=OpenAPIType.STRING, const="Bearer"), required=True
        )
    },
    "503": {
        "Retry-After": OpenAPIHeader(
            schema=Schema(type=OpenAPIType.INTEGER, minimum=1),
            required=True,
            description="Whole seconds to wait before retrying (RETRY_AFTER_S)",
        )
    },
}


def body(container: Any, description: str) -> ResponseSpec:
    """A JSON response of `container`'s shape."""
    return ResponseSpec(container, description=description, generate_examples=False)


def problems(*statuses: int, **descriptions: str) -> dict[int, ResponseSpec]:
    """Problem-shaped responses for `statuses`; a keyword `s404="…"` replaces one description."""
    return {
        status: body(Problem, descriptions.get(f"s{status}", _PROBLEMS[status]))
        for status in statuses
    }


@dataclass
class Documented(Operation):
    """Litestar's operation with SPEC §7's errors. Make one per route with `operation()`."""

    # Set per route by operation(); class attributes, not dataclass fields.
    doc_request_body: ClassVar[RequestBody | None] = None
    doc_operator_route: ClassVar[bool] = True

    def __post_init__(self) -> None:
        responses = dict(self.responses or {})
        # Litestar documents a 400 of its own shape for any route with parameters or a body;
        # errors.py answers every validation error 422 (SPEC §7).
        responses.pop("400", None)
        problem = responses.get("503")
        if self.security and isinstance(problem, OpenAPIResponse):
            # Keys are configured (app._guarded): every guarded route may answer 401; 403 is a
            # device key on an operator route.
            responses["401"] = OpenAPIResponse(_PROBLEMS[401], content=problem.content)
            if self.doc_operator_route:
                responses["403"] = OpenAPIResponse(_PROBLEMS[403], content=problem.content)
        for status, headers in _HEADERS.items():
            if isinstance(response := responses.get(status), OpenAPIResponse):
                response.headers = {**(response.headers or {}), **headers}
        self.responses = dict(sorted(responses.items()))
        if self.doc_request_body is not None:
            self.request_body = self.doc_request_body


def operation(
    *, request_body: RequestBody | None = None, operator_route: bool = True
) -> type[Operation]:
    """The `operation_class` of one route: its request body, and whether it needs an operator key
    (when keys are configured) rather than any key."""
    attributes = {"doc_request_body": request_body, "doc_operator_route": operator_route}
    return type("Documented", (Documented,), attributes)


def path_id(description: str, example: str) -> ParameterKwarg:
    """A device id in the path (checked by ingest.schemas.check_device_id)."""
    return PathParameter(
        description=f"{description}: {DEVICE_ID_RULE}",
        examples=[Example(value=example)],
        schema_extra={"pattern": DEVICE_ID_JSON_PATTERN, "maxLength": 64},
    )


def _optional(name: str | None, description: str, **schema: Any) -> ParameterKwarg:
    # A query parameter is absent or a string: not Litestar's `oneOf [T, null]` for `T | None`.
    return QueryParameter(
        name=name, description=description, schema_extra={"oneOf": None, **schema}
    )


def query_id(name: str, description: str) -> ParameterKwarg:
    return _optional(
        name,
        f"{description}: {DEVICE_ID_RULE}",
        type=OpenAPIType.STRING,
        pattern=DEVICE_ID_JSON_PATTERN,
        maxLength=64,
    )


def timestamp(name: str | None, description: str) -> ParameterKwarg:
    return _optional(
        name,
        f"{description}. {TIMESTAMP_RULE}",
        type=OpenAPIType.STRING,
        format="date-time",
        pattern=TIMESTAMP_JSON_PATTERN,
    )


def cursor() -> ParameterKwarg:
    return _optional(
        None,
        "`nextCursor` of the previous page, as issued (any other value is 422 naming `cursor`); "
        "absent or empty for the first page",
        type=OpenAPIType.STRING,
        pattern=CURSOR_PATTERN,
        maxLength=CURSOR_MAX_LENGTH,
    )


def limit() -> ParameterKwarg:
    return QueryParameter(ge=1, le=MAX_LIMIT, description=f"Page size, 1 to {MAX_LIMIT}")


def choice(name: str | None, values: tuple[str, ...], description: str) -> ParameterKwarg:
    return _optional(name, description, type=OpenAPIType.STRING, enum=list(values))


def flag(name: str | None, description: str) -> ParameterKwarg:
    return _optional(
        name,
        f"{description}: `true` or `false` (any case, or 1 or 0); `null` (any case) or absent, "
        "no filter",
        type=[OpenAPIType.BOOLEAN, OpenAPIType.NULL],
    )


def json_schemas(*types: Any) -> list[Schema]:
    """msgspec's JSON Schema of each type (the rules its decoding enforces), inline, as
    Litestar's schema objects (Litestar replaces any `components.schemas` it is given)."""
    refs, definitions = msgspec.json.schema_components(types)
    return [_schema(ref, definitions) for ref in refs]


def _schema(node: Mapping[str, Any], definitions: Mapping[str, Any]) -> Schema:
    if "$ref" in node:
        return _schema(definitions[node["$ref"].rsplit("/", 1)[1]], definitions)
    aliases = Schema.field_aliases()
    return Schema(
        **{
            aliases.get(key) or re.sub(r"(?<!^)([A-Z])", r"_\1", key).lower(): _value(
                key, value, definitions
            )
            for key, value in node.items()
        }
    )


def _value(key: str, value: Any, definitions: Mapping[str, Any]) -> Any:
    if key == "properties":
        return {name: _schema(item, definitions) for name, item in value.items()}
    if key in ("anyOf", "oneOf", "allOf", "prefixItems"):
        return [_schema(item, definitions) for item in value]
    if key in ("items", "additionalProperties") and isinstance(value, dict):
        return _schema(value, definitions)
    return ecma(value) if key == "pattern" else value


def media(schema: Schema, examples: Mapping[str, Any] | None = None) -> OpenAPIMediaType:
    return OpenAPIMediaType(
        schema=schema,
        examples={name: Example(value=value) for name, value in (examples or {}).items()} or None,
    )


DESCRIPTION = """\
Energy telemetry from EV fleets: meter (AC) and vehicle (DC) heartbeats in, live status and
correlated efficiency analytics out.

- **Errors.** Ingest answers its own result (`accepted`, `duplicates`, `rejected` by index and
  field), also with 422. Every other 4xx/5xx body is `{detail, errors?}`: invalid parameters and
  bodies are 422 with `errors: [{field, message}]`, fields named as sent; never a 400 of another
  shape. 503 always carries `Retry-After` (whole seconds).
- **Identifiers** are 1 to 64 letters, digits, `.`, `_`, `:` or `-`, the first a letter or
  digit, compared case-sensitively.
- **Timestamps** in: RFC 3339 with `Z` or ±hh:mm, from 2000-01-01T00:00:00Z to before
  2100-01-01T00:00:00Z; out: UTC with `Z`.
- **Listings** are ordered and paged by an opaque `cursor`; pass `nextCursor` back unchanged.
- **Connections.** Headers not received within HEADER_TIMEOUT_S get 408 and a body that stalls
  for BODY_TIMEOUT_S is dropped; an unparsable HTTP request gets 400 `{detail}` from the HTTP
  layer before any route; each worker answers 503 + `Retry-After` beyond
  MAX_CONCURRENT_REQUESTS requests in progress. OPTIONS lists a path's methods in `Allow`, as
  does a 405.
- **API keys** (when configured): `Authorization: Bearer <key>`; device keys may ingest, operator
  keys may use every route; `/healthz`, `/readyz` and `/metrics` stay open.
"""
TAGS = [
    Tag("ingest", description="Heartbeats in: one event, a batch, or NDJSON (SPEC §2)"),
    Tag("status", description="Live status from each device's newest heartbeat (SPEC §4)"),
    Tag("assignments", description="Operator-recorded vehicle ↔ meter attachments (SPEC §5)"),
    Tag("analytics", description="Energy and efficiency over a window, correlated (SPEC §5)"),
    Tag("operations", description="Liveness and readiness probes"),
]
