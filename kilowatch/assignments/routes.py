"""HTTP routes for assignments: create, list, delete."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import HttpMethod, Request, Response, delete, get, post, route
from litestar.di import NamedDependency
from litestar.openapi.spec import OpenAPIType, RequestBody
from litestar.params import PathParameter

from kilowatch import openapi
from kilowatch.assignments import service
from kilowatch.db.gateway import Gateway
from kilowatch.errors import InvalidInput, read_body
from kilowatch.ingest import framing
from kilowatch.ingest.schemas import DeviceId, Timestamp, check_device_id


# The shapes (SPEC §5), for the document; assignments.service validates and builds them.
class NewAssignment(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    """A vehicle attached to a meter over [from, to); `to` absent or null: open-ended."""

    vehicle_id: DeviceId
    meter_id: DeviceId
    from_: Timestamp = msgspec.field(name="from")
    to: Timestamp | None = None


class Assignment(msgspec.Struct, rename="camel"):
    """A recorded assignment; `to` null: open-ended (it ends where the vehicle's next begins)."""

    id: Annotated[int, msgspec.Meta(ge=1, le=service.MAX_ID)]
    vehicle_id: str
    meter_id: str
    from_: datetime = msgspec.field(name="from")
    to: datetime | None


class AssignmentPage(msgspec.Struct, rename="camel"):
    """A page by vehicle, then `from`; `nextCursor` is null on the last page."""

    items: list[Assignment]
    next_cursor: str | None


_NEW = openapi.json_schemas(NewAssignment)[0]
_RULES = (
    "`to` must be later than `from` (else 422 naming `to`). Closed assignments of one vehicle may "
    "not overlap, and none may start inside a closed one or at the same instant as another "
    "(409). The body is one JSON object of at most 16 KiB, nested at most 32 levels; any "
    "Content-Type is read as JSON."
)


@post(
    "/v1/assignments",
    tags=["assignments"],
    status_code=201,
    summary="Record that a vehicle is attached to a meter over [from, to)",
    description=_RULES,
    operation_class=openapi.operation(
        request_body=RequestBody(content={"application/json": openapi.media(_NEW)}, required=True)
    ),
    responses={
        201: openapi.body(Assignment, "Recorded"),
        **openapi.problems(
            408, 409, 413, 422, 503, s409="Overlaps an assignment of the same vehicle"
        ),
    },
)
async def create_assignment(
    request: Request[Any, Any, Any], gateway: NamedDependency[Gateway]
) -> dict[str, Any]:
    try:
        # Within an ingest item's bounds: UTF-8, at most 16 KiB and 32 levels deep.
        body = framing.decode_value(await read_body(request))
    except framing.NotJson as exc:
        raise InvalidInput(
            "Invalid assignment", errors=[{"field": "body", "message": f"is {exc}"}]
        ) from None
    vehicle_id, meter_id, from_, to = service.validate(body)
    async with gateway.read() as conn:
        return await service.create(conn, vehicle_id, meter_id, from_, to)


@get(
    "/v1/assignments",
    tags=["assignments"],
    summary="List assignments, by vehicle and from, optionally filtered",
    operation_class=openapi.operation(),
    responses={
        200: openapi.body(AssignmentPage, "A page of assignments"),
        **openapi.problems(422, 503),
    },
)
async def list_assignments(
    gateway: NamedDependency[Gateway],
    vehicle_id: Annotated[
        str | None, openapi.query_id("vehicleId", "Only this vehicle's assignments")
    ] = None,
    meter_id: Annotated[
        str | None, openapi.query_id("meterId", "Only assignments to this meter")
    ] = None,
    limit: Annotated[int, openapi.limit()] = 100,
    cursor: Annotated[str | None, openapi.cursor()] = None,
) -> dict[str, Any]:
    for name, value in (("vehicleId", vehicle_id), ("meterId", meter_id)):
        if value is not None:
            check_device_id(value, name)
    async with gateway.read() as conn:
        return await service.list_(conn, vehicle_id, meter_id, limit, cursor)


@delete(
    "/v1/assignments/{assignment_id:str}",
    tags=["assignments"],
    status_code=204,
    summary="Delete an assignment",
    operation_class=openapi.operation(),
    responses=openapi.problems(404, 422, 503, s404="No assignment has this id"),
)
async def delete_assignment(
    assignment_id: Annotated[
        str,
        PathParameter(
            description=(
                "An id this API issued: an integer from 1 to 2^63 - 1 (anything else is 422 "
                "naming `id`)"
            ),
            # A str, parsed by the route: as `:int`, "abc" would be a 404 of the router and
            # 2^63 a database error; every id the bigint cannot hold is the same 422.
            schema_extra={
                "type": OpenAPIType.INTEGER,
                "format": "int64",
                "minimum": 1,
                "maximum": service.MAX_ID,
            },
        ),
    ],
    gateway: NamedDependency[Gateway],
) -> None:
    id_ = service.parse_id(assignment_id)
    async with gateway.read() as conn:
        await service.delete(conn, id_)


# Litestar 2 answers OPTIONS with the methods of the first handler registered on a path only
# (litestar#4169, fixed in 3): this one, registered first, lists both.
_ALLOW = ", ".join(
    sorted({"OPTIONS", *create_assignment.http_methods, *list_assignments.http_methods})
)


@route(
    "/v1/assignments",
    http_method=[HttpMethod.OPTIONS],
    include_in_schema=False,
    sync_to_thread=False,
)
def assignments_options() -> Response[None]:
    return Response(None, status_code=204, headers={"Allow": _ALLOW})


handlers = [assignments_options, create_assignment, list_assignments, delete_assignment]
