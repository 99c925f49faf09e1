"""Live status: single lookups and filtered, cursor-paged listings (SPEC §4)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(autouse=True)
def _now() -> None:
    # Staleness is judged against the server's clock: "1 minute ago" must mean it in every test.
    global NOW
    NOW = datetime.now(UTC).replace(microsecond=0)


def ts(minutes_ago: float) -> str:
    return (NOW - timedelta(minutes=minutes_ago)).isoformat().replace("+00:00", "Z")


async def ingest(client: Any, events: list[dict[str, Any]]) -> None:
    response = await client.post("/v1/ingest", json=events)
    assert response.status_code == 201, response.text


def vehicle(vid: str, minutes_ago: float, dc: float = 1.0, **extra: Any) -> dict[str, Any]:
    return {
        "vehicleId": vid,
        "soc": 60,
        "kwhDeliveredDc": dc,
        "batteryTemp": 25,
        "timestamp": ts(minutes_ago),
        **extra,
    }


def meter(mid: str, minutes_ago: float, ac: float = 1.0) -> dict[str, Any]:
    return {"meterId": mid, "kwhConsumedAc": ac, "voltage": 400, "timestamp": ts(minutes_ago)}


async def test_vehicle_status_has_every_field(client: Any) -> None:
    await ingest(client, [vehicle("V-1", 1, meterId="M-1")])
    body = (await client.get("/v1/vehicles/V-1/status")).json()
    assert body == {
        "vehicleId": "V-1",
        "soc": 60,
        "kwhDeliveredDc": 1.0,
        "batteryTemp": 25,
        "meterId": "M-1",
        "recordedAt": ts(1),
        "charging": True,
        "stale": False,
    }


async def test_vehicle_meter_comes_from_assignment_when_heartbeat_has_none(
    client: Any, conn: asyncpg.Connection
) -> None:
    await ingest(client, [vehicle("V-1", 1), vehicle("V-2", 1)])
    await conn.execute(
        "INSERT INTO assignments (vehicle_id, meter_id, valid_from) VALUES ('V-1', 'M-A', now() - interval '1 hour')"
    )
    await conn.execute(
        "INSERT INTO assignments (vehicle_id, meter_id, valid_from, valid_to)"
        " VALUES ('V-2', 'M-B', now() - interval '1 hour', now() - interval '30 minutes')"
    )
    assert (await client.get("/v1/vehicles/V-1/status")).json()["meterId"] == "M-A"
    assert (await client.get("/v1/vehicles/V-2/status")).json()[
        "meterId"
    ] is None  # assignment ended
    listing = (await client.get("/v1/vehicles/status", params={"meterId": "M-A"})).json()
    assert [v["vehicleId"] for v in listing["items"]] == ["V-1"]


async def test_stale_devices_are_neither_charging_nor_active(client: Any) -> None:
    await ingest(client, [vehicle("V-old", 10), meter("M-old", 10), meter("M-idle", 1, ac=0.005)])
    old = (await client.get("/v1/vehicles/V-old/status")).json()
    assert (old["stale"], old["charging"]) == (True, False)
    assert (await client.get("/v1/meters/M-old/status")).json()["active"] is False
    idle = (await client.get("/v1/meters/M-idle/status")).json()
    assert (idle["stale"], idle["active"]) == (False, False)


async def test_listing_filters(client: Any) -> None:
    await ingest(
        client,
        [
            vehicle("V-a", 1),
            vehicle("V-b", 1, dc=0),
            vehicle("V-c", 10),
            meter("M-a", 1),
            meter("M-b", 10),
        ],
    )
    ids = lambda r: [i.get("vehicleId") or i.get("meterId") for i in r.json()["items"]]  # noqa: E731
    assert ids(await client.get("/v1/vehicles/status", params={"charging": "true"})) == ["V-a"]
    assert ids(await client.get("/v1/vehicles/status", params={"charging": "false"})) == [
        "V-b",
        "V-c",
    ]
    assert ids(await client.get("/v1/vehicles/status", params={"stale": "true"})) == ["V-c"]
    assert ids(await client.get("/v1/meters/status", params={"active": "true"})) == ["M-a"]
    assert ids(await client.get("/v1/meters/status", params={"stale": "true"})) == ["M-b"]


async def test_cursor_pages_through_every_device_once_in_id_order(client: Any) -> None:
    names = [f"V-{i:02d}" for i in range(25)]
    await ingest(client, [vehicle(n, 1) for n in names])
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "10", **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/v1/vehicles/status", params=params)).json()
        seen += [v["vehicleId"] for v in page["items"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert seen == names


async def test_bad_parameters_are_422_naming_the_field(client: Any) -> None:
    for params, field in (
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"cursor": "%%%"}, "cursor"),
    ):
        response = await client.get("/v1/vehicles/status", params=params)
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == field


async def test_unknown_device_is_404(client: Any) -> None:
    for path in ("/v1/vehicles/nope/status", "/v1/meters/nope/status"):
        response = await client.get(path)
        assert response.status_code == 404 and "nope" in response.json()["detail"]


async def test_reads_answer_503_when_the_database_is_unreachable() -> None:
    from litestar.testing import AsyncTestClient

    from kilowatch.app import create_app
    from kilowatch.settings import Settings

    # Nothing listens on port 1: every connection attempt is refused.
    app = create_app(Settings(database_url="postgresql://postgres@127.0.0.1:1/none"))
    async with AsyncTestClient(app=app) as client:
        for path in (
            "/v1/vehicles/V-1/status",
            "/v1/meters/status",
            "/v1/analytics/performance/V-1",
            "/v1/assignments?vehicleId=V-1",
        ):
            response = await client.get(path)
            assert response.status_code == 503, (path, response.text)
            assert response.headers["retry-after"] == "1"
            assert response.json() == {"detail": "The database is unavailable; retry later."}
