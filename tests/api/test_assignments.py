"""Assignments over HTTP: create, overlap rules (409), validation (422), listing, delete."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from kilowatch.app import create_app
from kilowatch.assignments import service
from kilowatch.errors import Conflict
from kilowatch.settings import Settings
from tests.readings import at, meter, vehicle


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Any]:
    async with AsyncTestClient(app=create_app(settings)) as test_client:
        yield test_client


def z(minute: float) -> str:
    return at(minute).strftime("%Y-%m-%dT%H:%M:%SZ")


async def post(
    api: Any, vehicle_id: str, meter_id: str, from_: float, to: float | None = None
) -> Any:
    body: dict[str, Any] = {"vehicleId": vehicle_id, "meterId": meter_id, "from": z(from_)}
    if to is not None:
        body["to"] = z(to)
    return await api.post("/v1/assignments", json=body)


async def test_create_returns_201_with_utc_timestamps(api: Any) -> None:
    response = await api.post(
        "/v1/assignments",
        json={"vehicleId": "v1", "meterId": "m1", "from": at(0).isoformat(), "to": z(60)},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert isinstance(body["id"], int)
    assert body == {"id": body["id"], "vehicleId": "v1", "meterId": "m1", "from": z(0), "to": z(60)}


async def test_offsets_are_converted_to_utc(api: Any) -> None:
    response = await api.post(
        "/v1/assignments",
        json={"vehicleId": "v1", "meterId": "m1", "from": "2030-01-01T12:30:00+02:00"},
    )
    assert response.status_code == 201
    assert response.json()["from"] == "2030-01-01T10:30:00Z"
    assert response.json()["to"] is None


async def test_overlapping_closed_assignments_conflict(api: Any) -> None:
    assert (await post(api, "v1", "m1", 0, 60)).status_code == 201
    response = await post(api, "v1", "m2", 30, 90)
    assert response.status_code == 409
    assert "overlaps" in response.json()["detail"]
    # Half-open: touching intervals do not overlap; another vehicle may overlap freely.
    assert (await post(api, "v1", "m2", 60, 90)).status_code == 201
    assert (await post(api, "v2", "m1", 30, 90)).status_code == 201


async def test_open_assignments_claim_only_their_start(api: Any) -> None:
    assert (await post(api, "v1", "m1", 0)).status_code == 201  # open
    assert (await post(api, "v1", "m2", 30)).status_code == 201  # open, ends the first
    assert (await post(api, "v1", "m3", 40, 50)).status_code == 201  # closed, inside an open one
    assert (await post(api, "v1", "m4", 30)).status_code == 409  # same start
    assert (await post(api, "v1", "m4", 45)).status_code == 409  # starts inside a closed one
    assert (await post(api, "v1", "m4", 20, 35)).status_code == 409  # closed one covers a start
    listed = (await api.get("/v1/assignments", params={"vehicleId": "v1"})).json()["items"]
    assert [a["meterId"] for a in listed] == ["m1", "m2", "m3"]


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"meterId": "m1", "from": "2030-01-01T00:00:00Z"}, {"vehicleId"}),
        ({"vehicleId": "bad id!", "meterId": "m1", "from": "2030-01-01T00:00:00Z"}, {"vehicleId"}),
        ({"vehicleId": "v1", "meterId": 7, "from": "2030-01-01T00:00:00Z"}, {"meterId"}),
        ({"vehicleId": "v1", "meterId": "m1", "from": "2030-01-01T00:00:00"}, {"from"}),
        ({"vehicleId": "v1", "meterId": "m1", "from": "yesterday"}, {"from"}),
        ({"vehicleId": "v1", "meterId": "m1"}, {"from"}),
        (
            {
                "vehicleId": "v1",
                "meterId": "m1",
                "from": "2030-01-01T00:00:00Z",
                "to": "2030-01-01T00:00:00Z",
            },
            {"to"},
        ),
        (
            {"vehicleId": "v1", "meterId": "m1", "from": "2030-01-01T00:00:00Z", "colour": "red"},
            {"colour"},
        ),
        ([1, 2], {"body"}),
    ],
)
async def test_invalid_bodies_are_422_naming_the_field(
    api: Any, body: Any, fields: set[str]
) -> None:
    response = await api.post("/v1/assignments", json=body)
    assert response.status_code == 422
    payload = response.json()
    assert payload["detail"]
    assert {e["field"] for e in payload["errors"]} == fields
    assert all(e["message"] for e in payload["errors"])


async def test_unparsable_body_is_422(api: Any) -> None:
    response = await api.post(
        "/v1/assignments", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert error["field"] == "body" and error["message"].startswith("is not valid JSON")


async def test_listing_filters_sorts_and_pages(api: Any) -> None:
    for vehicle_id, meter_id, from_ in (
        ("v2", "m1", 0),
        ("v1", "m2", 60),
        ("v1", "m1", 0),
        ("v3", "m2", 0),
    ):
        assert (await post(api, vehicle_id, meter_id, from_, from_ + 30)).status_code == 201
    everything = (await api.get("/v1/assignments")).json()
    assert [(a["vehicleId"], a["meterId"]) for a in everything["items"]] == [
        ("v1", "m1"),
        ("v1", "m2"),
        ("v2", "m1"),
        ("v3", "m2"),
    ]
    assert everything["nextCursor"] is None
    by_meter = (await api.get("/v1/assignments", params={"meterId": "m2"})).json()["items"]
    assert [a["vehicleId"] for a in by_meter] == ["v1", "v3"]
    both = (await api.get("/v1/assignments", params={"vehicleId": "v1", "meterId": "m1"})).json()
    assert [a["from"] for a in both["items"]] == [z(0)]
    first = (await api.get("/v1/assignments", params={"limit": 3})).json()
    assert len(first["items"]) == 3 and first["nextCursor"]
    rest = (
        await api.get("/v1/assignments", params={"limit": 3, "cursor": first["nextCursor"]})
    ).json()
    assert [(a["vehicleId"], a["meterId"]) for a in rest["items"]] == [("v3", "m2")]
    assert rest["nextCursor"] is None
    assert (await api.get("/v1/assignments", params={"limit": 0})).status_code == 422
    bad_cursor = await api.get("/v1/assignments", params={"cursor": "nope"})
    assert bad_cursor.status_code == 422
    assert bad_cursor.json()["errors"][0]["field"] == "cursor"


async def test_delete_is_204_then_404(api: Any) -> None:
    created = (await post(api, "v1", "m1", 0, 30)).json()
    assert (await api.delete(f"/v1/assignments/{created['id']}")).status_code == 204
    assert (await api.get("/v1/assignments")).json()["items"] == []
    again = await api.delete(f"/v1/assignments/{created['id']}")
    assert again.status_code == 404
    assert "not found" in again.json()["detail"]


async def test_assignment_changes_apply_when_analytics_are_read(
    api: Any, conn: asyncpg.Connection
) -> None:
    await vehicle(conn, "v1", 0.5, 4.0)  # no meterId: only an assignment can attach it
    await meter(conn, "m1", 0.5, 5.0)
    path, params = "/v1/analytics/performance/v1", {"from": z(0), "to": z(60)}
    assert (await api.get(path, params=params)).json()["totalAcKwh"] == 0
    created = (await post(api, "v1", "m1", -60)).json()  # back-dated, open
    assert (await api.get(path, params=params)).json()["efficiency"] == pytest.approx(0.8)
    await api.delete(f"/v1/assignments/{created['id']}")
    assert (await api.get(path, params=params)).json()["efficiency"] is None


async def test_concurrent_overlapping_inserts_for_one_vehicle_admit_one(db_url: str) -> None:
    conns = [await asyncpg.connect(db_url) for _ in range(6)]
    try:
        results = await asyncio.gather(
            *(service.create(c, "v1", f"m{n}", at(0), at(60)) for n, c in enumerate(conns)),
            return_exceptions=True,
        )
    finally:
        for c in conns:
            await c.close()
    assert sum(isinstance(r, dict) for r in results) == 1
    assert sum(isinstance(r, Conflict) for r in results) == 5


async def test_concurrent_overlapping_posts_to_a_real_server_admit_one(live_server: str) -> None:
    import httpx

    async with httpx.AsyncClient(base_url=f"http://{live_server}") as http:
        responses = await asyncio.gather(*(post(http, "v1", f"m{n}", 0, 60) for n in range(6)))
    assert sorted(r.status_code for r in responses) == [201, 409, 409, 409, 409, 409]
