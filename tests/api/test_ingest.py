"""POST /v1/ingest end to end on real PostgreSQL: shapes, counting, statuses, dedup, ordering."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from kilowatch.app import create_app
from kilowatch.bench import load
from kilowatch.settings import Settings

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(autouse=True)
def _now() -> None:
    # Clock-skew and age limits are judged against the server's clock: relative to each test.
    global NOW
    NOW = datetime.now(UTC).replace(microsecond=0)


def ts(minutes_ago: float = 1) -> str:
    return (NOW - timedelta(minutes=minutes_ago)).isoformat().replace("+00:00", "Z")


def meter(mid: str = "M-1", minutes_ago: float = 1, kwh: float = 1.5) -> dict[str, Any]:
    return {"meterId": mid, "kwhConsumedAc": kwh, "voltage": 230.0, "timestamp": ts(minutes_ago)}


def vehicle(
    vid: str = "V-1", minutes_ago: float = 1, soc: float = 50, **extra: Any
) -> dict[str, Any]:
    return {
        "vehicleId": vid,
        "soc": soc,
        "kwhDeliveredDc": 1.2,
        "batteryTemp": 30.0,
        "timestamp": ts(minutes_ago),
        **extra,
    }


async def post(
    client: Any, body: Any, content_type: str = "application/json"
) -> tuple[int, dict[str, Any]]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = await client.post("/v1/ingest", content=raw, headers={"content-type": content_type})
    return response.status_code, response.json()


async def count(conn: asyncpg.Connection, table: str) -> int:
    return int(await conn.fetchval(f"SELECT count(*) FROM {table}"))  # test-only, fixed names


async def test_single_flat_meter_is_stored_with_status(
    client: Any, conn: asyncpg.Connection
) -> None:
    status, body = await post(client, meter())
    assert (status, body) == (201, {"accepted": 1, "duplicates": 0, "rejected": []})
    assert await count(conn, "meter_readings") == 1
    row = await conn.fetchrow("SELECT * FROM meter_status WHERE meter_id = 'M-1'")
    assert row["kwh_consumed_ac"] == 1.5 and row["voltage"] == 230.0


async def test_single_envelope_vehicle_with_meter(client: Any, conn: asyncpg.Connection) -> None:
    status, body = await post(client, {"type": "Vehicle", "payload": vehicle(meterId="M-9")})
    assert status == 201 and body["accepted"] == 1
    assert await conn.fetchval("SELECT meter_id FROM vehicle_readings") == "M-9"


async def test_alias_route_ingests(client: Any, conn: asyncpg.Connection) -> None:
    response = await client.post("/v1/telemetry/ingest", json=meter())
    assert response.status_code == 201
    assert await count(conn, "meter_readings") == 1


async def test_batch_mixing_valid_invalid_and_duplicates(
    client: Any, conn: asyncpg.Connection
) -> None:
    await post(client, meter("M-1", 5))
    batch = [
        meter("M-1", 5),  # 0 duplicate of an earlier request
        {"type": "METER", "payload": meter("M-2")},  # 1 new
        vehicle("V-1", soc=101),  # 2 invalid soc
        vehicle("V-1"),  # 3 new
        vehicle("V-1"),  # 4 duplicate inside the batch
        {"type": "METER", "payload": vehicle("V-2")},  # 5 contradicting type
        "not an event",  # 6 not an object
    ]
    status, body = await post(client, batch)
    assert status == 201
    assert body["accepted"] == 2 and body["duplicates"] == 2
    assert [(r["index"], r["errors"][0]["field"]) for r in body["rejected"]] == [
        (2, "soc"),
        (5, "type"),
        (6, "body"),
    ]
    assert body["accepted"] + body["duplicates"] + len(body["rejected"]) == len(batch)
    assert await count(conn, "meter_readings") == 2 and await count(conn, "vehicle_readings") == 1


async def test_ndjson_indexes_non_blank_lines(client: Any, conn: asyncpg.Connection) -> None:
    lines = [
        json.dumps(meter("M-1")),
        "",
        json.dumps(vehicle(soc="x")),
        "   ",
        "{oops",
        json.dumps(vehicle()),
    ]
    status, body = await post(client, "\n".join(lines).encode(), "application/x-ndjson")
    assert status == 201 and body["accepted"] == 2
    assert [(r["index"], r["errors"][0]["field"]) for r in body["rejected"]] == [
        (1, "soc"),
        (2, "body"),
    ]


async def test_all_duplicates_answer_200(client: Any) -> None:
    assert (await post(client, [meter(), vehicle()]))[0] == 201
    status, body = await post(client, [vehicle(), meter()])
    assert (status, body) == (200, {"accepted": 0, "duplicates": 2, "rejected": []})


@pytest.mark.parametrize(
    ("body", "content_type", "rejected"),
    [
        (b"[]", "application/json", [(0, "body")]),  # holds no event: named, at index 0
        (b"", "application/json", [(0, "body")]),
        (b"\n  \n", "application/x-ndjson", [(0, "body")]),
        (b"{not json", "application/json", [(0, "body")]),
        (
            json.dumps([vehicle(soc=-1), meter(kwh=-1)]).encode(),
            "application/json",
            [
                (0, "soc"),
                (1, "kwhConsumedAc"),
            ],
        ),
    ],
)
async def test_nothing_valid_answers_422_in_the_ingest_shape(
    client: Any,
    conn: asyncpg.Connection,
    body: bytes,
    content_type: str,
    rejected: list[tuple[int, str]],
) -> None:
    status, result = await post(client, body, content_type)
    assert status == 422
    assert (result["accepted"], result["duplicates"]) == (0, 0)
    assert [(r["index"], r["errors"][0]["field"]) for r in result["rejected"]] == rejected
    assert all(r["errors"][0]["message"] for r in result["rejected"])
    assert await count(conn, "vehicle_readings") + await count(conn, "meter_readings") == 0


def test_empty_array_is_named_in_the_route_description() -> None:
    from kilowatch.ingest.routes import ingest

    assert "an empty array" in (ingest.description or "")


async def test_other_content_type_is_415(client: Any) -> None:
    response = await client.post("/v1/ingest", content=b"x", headers={"content-type": "text/plain"})
    assert response.status_code == 415 and "detail" in response.json()


async def test_oversized_body_and_batch_are_413_and_store_nothing(
    db_url: str, conn: asyncpg.Connection
) -> None:
    from litestar.testing import AsyncTestClient

    settings = Settings(database_url=db_url, max_batch=3, max_body_bytes=4096)
    async with AsyncTestClient(app=create_app(settings)) as client:
        status, body = await post(client, [meter(f"M-{i}") for i in range(4)])
        assert status == 413 and "detail" in body
        status, body = await post(
            client, [vehicle(f"V-{i}") for i in range(60)][:3] + [{"pad": "x" * 5000}]
        )
        assert status == 413
    assert await count(conn, "meter_readings") + await count(conn, "vehicle_readings") == 0


async def test_late_heartbeat_keeps_newer_status_and_enters_history(
    client: Any, conn: asyncpg.Connection
) -> None:
    await post(client, vehicle(minutes_ago=1, soc=80))
    status, _ = await post(client, vehicle(minutes_ago=10, soc=20))
    assert status == 201
    assert await conn.fetchval("SELECT soc FROM vehicle_status WHERE vehicle_id = 'V-1'") == 80
    assert await count(conn, "vehicle_readings") == 2


async def test_first_copy_wins_and_is_never_updated(client: Any, conn: asyncpg.Connection) -> None:
    await post(client, vehicle(soc=40))
    status, body = await post(client, vehicle(soc=99))
    assert (status, body["duplicates"]) == (200, 1)
    assert await conn.fetchval("SELECT soc FROM vehicle_readings") == 40
    assert await conn.fetchval("SELECT soc FROM vehicle_status") == 40


# Concurrency through a real server (uvicorn in its own process): Litestar's in-process test
# client handles one request at a time, so through it these would test nothing.


async def post_live(http: httpx.AsyncClient, body: Any) -> tuple[int, dict[str, Any]]:
    response = await http.post("/v1/ingest", json=body)
    return response.status_code, response.json()


async def test_same_event_from_many_clients_at_once_is_stored_once(
    live_server: str, conn: asyncpg.Connection
) -> None:
    limits = httpx.Limits(max_connections=32)
    async with httpx.AsyncClient(base_url=f"http://{live_server}", limits=limits) as http:
        results = await asyncio.gather(*(post_live(http, vehicle("V-race")) for _ in range(32)))
    assert sum(body["accepted"] for _, body in results) == 1
    assert sum(body["duplicates"] for _, body in results) == 31
    assert await count(conn, "vehicle_readings") == 1


async def test_concurrent_batches_over_the_same_devices_do_not_deadlock(
    live_server: str, conn: asyncpg.Connection
) -> None:
    devices = [f"V-{i:03d}" for i in range(200)]
    batches = [
        [vehicle(d, minutes_ago=m) for d in (devices if k % 2 else devices[::-1]) for m in (1, 2)]
        for k in range(8)
    ]
    async with httpx.AsyncClient(base_url=f"http://{live_server}", timeout=30) as http:
        results = await asyncio.gather(*(post_live(http, b) for b in batches))
    assert all(status in (200, 201) for status, _ in results)
    assert sum(body["accepted"] for _, body in results) == 400
    assert (
        await count(conn, "vehicle_readings") == 400 and await count(conn, "vehicle_status") == 200
    )


def test_20k_concurrent_single_events_are_stored_exactly_once(
    live_server: str, db_url: str
) -> None:
    # A real server and 64 real connections: the in-process test client serialises requests.
    def burst() -> load.Outcome:
        task = load.Task(
            workload="single",
            process=0,
            connections=64,
            start_at=0,
            total=20_000,
            target=live_server,
            params={"tag": "burst", "base": NOW.isoformat()},
        )
        return load.run(task)

    async def stored() -> tuple[int, int]:
        conn = await asyncpg.connect(db_url)
        try:
            return tuple(
                await conn.fetchrow(  # type: ignore[return-value]
                    "SELECT (SELECT count(*) FROM meter_readings) + (SELECT count(*) FROM vehicle_readings),"
                    " (SELECT count(*) FROM meter_status) + (SELECT count(*) FROM vehicle_status)"
                )
            )
        finally:
            await conn.close()

    first = burst()
    assert (first.units, dict(first.errors)) == (20_000, {})
    assert asyncio.run(stored()) == (20_000, 1_000)  # 1,000 devices, 20 heartbeats each
    retried = burst()  # the same 20,000 events again: all duplicates, nothing stored twice
    assert (retried.units, dict(retried.errors)) == (20_000, {})
    assert asyncio.run(stored()) == (20_000, 1_000)  # 1,000 devices, 20 heartbeats each
