"""POST /v1/ingest: one event, an array (flat and envelope mixed) or NDJSON (SPEC §2)."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

import msgspec
from litestar.di import NamedDependency
from litestar import Request, Response, post

from kilowatch.errors import PayloadTooLarge, UnsupportedMediaType
from kilowatch.ingest import validate
from kilowatch.ingest.schemas import IngestResult
from kilowatch.ingest.service import Ingestor

_encode = msgspec.json.Encoder().encode
_JSON = "application/json"
_NDJSON = "application/x-ndjson"


def _items(body: bytes, media_type: str) -> list[Any]:
    if media_type == _NDJSON:
        return validate.split_ndjson(body)
    try:
        decoded = validate.decode_json(body)
    except validate.NotJson as exc:
        return [exc]
    return decoded if isinstance(decoded, list) else [decoded]


@post(
    ["/v1/ingest", "/v1/telemetry/ingest"],
    tags=["ingest"],
    summary="Ingest meter and vehicle heartbeats",
    description=(
        "Body: one event (flat or `{type, payload}` envelope), a JSON array of them, or NDJSON. "
        "201 when something new was stored, 200 when all valid events were duplicates, 422 when "
        "nothing valid was sent. Acknowledged only after a durable commit."
    ),
    status_code=201,
)
async def ingest(request: Request[Any, Any, Any], ingestor: NamedDependency[Ingestor]) -> Response[bytes]:
    # One dependency: Litestar resolves two or more in an anyio task group, a task each, which
    # cost this route more CPU than validating a single event (cProfile of `writer=none`).
    settings = ingestor.settings
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in (_JSON, _NDJSON):
        raise UnsupportedMediaType(f"Content-Type must be {_JSON} or {_NDJSON}")
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > settings.max_body_bytes:
        raise PayloadTooLarge(f"body exceeds {settings.max_body_bytes} bytes")
    body = await request.body()
    limits = validate.Limits(timedelta(seconds=settings.clock_skew_s), timedelta(days=settings.max_event_age_days))
    parsed = validate.fast_path(body, limits) if media_type == _JSON else None
    if parsed is None:
        items = _items(body, media_type)
        if len(items) > settings.max_batch:
            raise PayloadTooLarge(f"batch of {len(items)} events exceeds the limit of {settings.max_batch}")
        parsed = validate.validate_items(items, limits)
    elif parsed.count > settings.max_batch:
        raise PayloadTooLarge(f"batch of {parsed.count} events exceeds the limit of {settings.max_batch}")
    new = await ingestor.store(parsed.rows) if parsed.rows else []
    accepted = sum(new)
    # From state, not a second dependency (see above).
    request.app.state.metrics.count_ingest(parsed.rows, new, accepted, parsed.rejected)
    result = IngestResult(accepted=accepted, duplicates=len(new) - accepted, rejected=parsed.rejected)
    status = 422 if not parsed.rows else 201 if accepted else 200
    return Response(_encode(result), status_code=status, media_type=_JSON)
