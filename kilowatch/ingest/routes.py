"""POST /v1/ingest: one event, an array (flat and envelope mixed) or NDJSON (SPEC §2)."""

from __future__ import annotations

from datetime import timedelta
from operator import countOf
from typing import Any, cast

import msgspec
from litestar import Request, Response, post
from litestar.di import NamedDependency
from litestar.openapi.spec import OpenAPIType, RequestBody, Schema

from kilowatch import openapi
from kilowatch.errors import PayloadTooLarge, UnsupportedMediaType, read_body
from kilowatch.ingest import framing, validate
from kilowatch.ingest.schemas import (
    FieldError,
    IngestResult,
    MeterEnvelope,
    MeterEvent,
    Outcome,
    Refused,
    Rejection,
    Row,
    VehicleEnvelope,
    VehicleEvent,
)
from kilowatch.ingest.service import Ingestor
from kilowatch.settings import Settings

_encode = msgspec.json.Encoder().encode
_JSON = "application/json"
_NDJSON = "application/x-ndjson"

# The request body's shapes (SPEC §2), from the Structs that validate each event. The document
# is built at import, so the batch bound is the setting's default.
_MAX_BATCH: int = Settings.model_fields["max_batch"].default
_EVENTS = openapi.json_schemas(MeterEvent, VehicleEvent, MeterEnvelope, VehicleEnvelope)
_EVENT = Schema(
    one_of=_EVENTS,
    description="Flat, classified by its fields (`vehicleId`: a vehicle, else `meterId`: a "
    "meter), or an envelope `{type, payload}`",
)
_LIMITS = (
    f"At most MAX_BATCH ({_MAX_BATCH:,}) events and MAX_BODY_BYTES (8 MiB), else 413 and "
    "nothing is stored"
)
_BODY = RequestBody(
    required=True,
    description=(
        "Each event is judged on its own. Beyond its schema, a `timestamp` must be no later than "
        "now + CLOCK_SKEW_S (300 s) and no older than MAX_EVENT_AGE_DAYS (35), or the event is "
        "rejected naming it."
    ),
    content={
        _JSON: openapi.media(
            Schema(
                one_of=[
                    *_EVENTS,
                    Schema(
                        type=OpenAPIType.ARRAY,
                        items=_EVENT,
                        min_items=1,
                        max_items=_MAX_BATCH,
                        description=f"A batch, flat and envelope mixed. {_LIMITS}.",
                    ),
                ],
            ),
            examples={
                "meter": {
                    "meterId": "M-17",
                    "kwhConsumedAc": 1.9,
                    "voltage": 231.5,
                    "timestamp": "2026-01-31T12:00:00Z",
                },
                "vehicle": {
                    "vehicleId": "V-42",
                    "soc": 63.5,
                    "kwhDeliveredDc": 1.7,
                    "batteryTemp": 28.0,
                    "timestamp": "2026-01-31T12:00:00Z",
                    "meterId": "M-17",
                },
                "envelope": {
                    "type": "METER",
                    "payload": {
                        "meterId": "M-17",
                        "kwhConsumedAc": 1.9,
                        "voltage": 231.5,
                        "timestamp": "2026-01-31T13:00:00+01:00",
                    },
                },
            },
        ),
        _NDJSON: openapi.media(
            Schema(
                type=OpenAPIType.ARRAY,
                items=_EVENT,
                min_items=1,
                max_items=_MAX_BATCH,
                description=(
                    "One event per line, in any of the JSON shapes; blank lines are skipped and "
                    "`index` counts the others. The schema is the sequence read as an array, as "
                    f"OpenAPI 3.2 reads sequential media types. {_LIMITS}."
                ),
            )
        ),
    },
)


@post(
    ["/v1/ingest", "/v1/telemetry/ingest"],
    tags=["ingest"],
    summary="Ingest meter and vehicle heartbeats",
    description=(
        "Body: one event (flat or `{type, payload}` envelope), a JSON array of them, or NDJSON. "
        "201 when something new was stored, 200 when all valid events were duplicates, 422 when "
        "nothing valid was sent. Acknowledged only after a durable commit.\n\n"
        "Each array element and NDJSON line is judged on its own: one that is not UTF-8, not "
        f"JSON, larger than {framing.MAX_ITEM_BYTES} bytes or nested deeper than "
        f"{framing.MAX_DEPTH} levels is rejected on its index with field `body`, and its valid "
        "neighbours are stored. A body that holds no event (an empty array, only blank NDJSON "
        "lines, an empty body) or cannot be split (an unterminated string or array, data after "
        "the array) is one rejection at index 0, field `body`. Timestamps: RFC 3339 with `Z` "
        "or ±hh:mm, up to 9 fractional digits (rounded to the microsecond)."
    ),
    status_code=201,
    operation_class=openapi.operation(request_body=_BODY, operator_route=False),
    responses={
        201: openapi.body(IngestResult, "Something new was stored; invalid events are listed"),
        200: openapi.body(IngestResult, "Every valid event was a duplicate"),
        422: openapi.body(IngestResult, "Nothing valid was sent: every event is in `rejected`"),
        **openapi.problems(
            408,
            413,
            415,
            503,
            s413="More than MAX_BATCH events or MAX_BODY_BYTES (8 MiB); nothing was stored",
        ),
    },
)
async def ingest(
    request: Request[Any, Any, Any], ingestor: NamedDependency[Ingestor]
) -> Response[bytes]:
    # One dependency: Litestar resolves two or more in an anyio task group, a task each, which
    # cost this route more CPU than validating a single event (cProfile of `writer=none`).
    settings = ingestor.settings
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in (_JSON, _NDJSON):
        raise UnsupportedMediaType(f"Content-Type must be {_JSON} or {_NDJSON}")
    length = request.headers.get("content-length")
    if length and length.isascii() and length.isdigit() and int(length) > settings.max_body_bytes:
        raise PayloadTooLarge(f"body exceeds {settings.max_body_bytes} bytes")
    body = await read_body(request)
    limits = validate.Limits(
        timedelta(seconds=settings.clock_skew_s), timedelta(days=settings.max_event_age_days)
    )
    parsed = validate.fast_path(body, limits, settings.max_batch) if media_type == _JSON else None
    if parsed is None:
        try:
            parsed = validate.parse_body(body, media_type == _NDJSON, limits, settings.max_batch)
        except framing.TooMany:
            raise PayloadTooLarge(
                f"more than {settings.max_batch} events in one request (MAX_BATCH)"
            ) from None
    outcomes = await ingestor.store(parsed.rows) if parsed.rows else []
    if countOf(map(type, outcomes), Refused):  # rare: the database refused some rows
        rows, new, rejected = _without_refused(parsed, outcomes)
    else:
        rows, new, rejected = parsed.rows, cast(list[bool], outcomes), parsed.rejected
    accepted = sum(new)
    # From state, not a second dependency (see above).
    request.app.state.metrics.count_ingest(rows, new, accepted, rejected)
    result = IngestResult(accepted=accepted, duplicates=len(new) - accepted, rejected=rejected)
    status = 422 if not rows else 201 if accepted else 200
    return Response(_encode(result), status_code=status, media_type=_JSON)


def _without_refused(
    parsed: validate.Parsed, outcomes: list[Outcome]
) -> tuple[list[Row], list[bool], list[Rejection]]:
    """The stored rows and their outcomes, and the refused ones added to the rejections."""
    indices = parsed.indices if parsed.indices is not None else range(len(parsed.rows))
    rows: list[Row] = []
    new: list[bool] = []
    rejected = list(parsed.rejected)
    for row, outcome, index in zip(parsed.rows, outcomes, indices, strict=True):
        if isinstance(outcome, Refused):
            # A day's partition is what the database checks a valid row against.
            name = "timestamp" if "partition" in outcome.message else "body"
            rejected.append(Rejection(index, [FieldError(name, outcome.message)]))
        else:
            rows.append(row)
            new.append(outcome)
    rejected.sort(key=lambda r: r.index)
    return rows, new, rejected
