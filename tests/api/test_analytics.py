"""Performance analytics over HTTP: the response contract, window rules (422), 404, zeros."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from kilowatch.app import create_app
from kilowatch.settings import Settings
from tests.readings import at, meter, vehicle

PATH = "/v1/analytics/performance/{}"
FIELDS = {
    "vehicleId",
    "estimate",
    "estimateReason",
    "faultSuspected",
    "from",
    "to",
    "totalAcKwh",
    "totalDcKwh",
    "attachedDcKwh",
    "efficiency",
    "lossKwh",
    "coverage",
    "avgBatteryTemp",
    "minBatteryTemp",
    "maxBatteryTemp",
    "vehicleReadings",
    "meterReadings",
    "meters",
    "threshold",
    "belowThreshold",
}


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Any]:
    async with AsyncTestClient(app=create_app(settings)) as test_client:
        yield test_client


def z(minute: float) -> str:
    return at(minute).strftime("%Y-%m-%dT%H:%M:%SZ")


async def test_performance_contract(api: Any, conn: asyncpg.Connection) -> None:
    await vehicle(conn, "v1", 0.5, 8.5, meter="m1", temp=31.5)
    await meter(conn, "m1", 0.5, 10.0)
    response = await api.get(
        PATH.format("v1"),
        params={
            "from": at(0).isoformat(),
            "to": at(60).astimezone().isoformat(),
            "granularity": "hour",
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == FIELDS | {"hourly"}
    assert (body["from"], body["to"]) == (z(0), z(60))
    assert body["efficiency"] == pytest.approx(0.85)
    assert body["belowThreshold"] is False
    assert body["meters"] == [{"meterId": "m1", "acKwh": 10.0, "minutes": 1}]
    assert body["hourly"] == [
        {
            "hour": z(0),
            "totalAcKwh": 10.0,
            "totalDcKwh": 8.5,
            "attachedDcKwh": 8.5,
            "efficiency": pytest.approx(0.85),
        }
    ]
    assert (body["avgBatteryTemp"], body["vehicleReadings"], body["meterReadings"]) == (31.5, 1, 1)


async def test_no_hourly_unless_asked(api: Any, conn: asyncpg.Connection) -> None:
    await vehicle(conn, "v1", 0.5, 1.0)
    body = (await api.get(PATH.format("v1"), params={"from": z(0), "to": z(60)})).json()
    assert set(body) == FIELDS


async def test_known_vehicle_without_data_is_200_with_zeros_and_nulls(
    api: Any, conn: asyncpg.Connection
) -> None:
    await vehicle(conn, "v1", -600, 1.0)
    body = (await api.get(PATH.format("v1"), params={"from": z(0), "to": z(60)})).json()
    assert {
        k: body[k]
        for k in (
            "totalAcKwh",
            "totalDcKwh",
            "attachedDcKwh",
            "lossKwh",
            "vehicleReadings",
            "meterReadings",
        )
    } == dict.fromkeys(
        (
            "totalAcKwh",
            "totalDcKwh",
            "attachedDcKwh",
            "lossKwh",
            "vehicleReadings",
            "meterReadings",
        ),
        0,
    )
    assert body["efficiency"] is None and body["coverage"] is None
    assert body["avgBatteryTemp"] is None and body["meters"] == []
    assert body["belowThreshold"] is False


async def test_unknown_vehicle_is_404(api: Any) -> None:
    response = await api.get(PATH.format("ghost"))
    assert response.status_code == 404
    assert response.json() == {"detail": "vehicle 'ghost' not found"}


async def test_default_window_is_the_last_24_hours_floored(
    api: Any, conn: asyncpg.Connection
) -> None:
    await vehicle(conn, "v1", 0.5, 1.0)
    body = (await api.get(PATH.format("v1"))).json()
    from_, to = (at(0).fromisoformat(body[k].replace("Z", "+00:00")) for k in ("from", "to"))
    assert to - from_ == timedelta(hours=24)
    assert to.second == to.microsecond == 0
    only_to = (await api.get(PATH.format("v1"), params={"to": z(90.5)})).json()
    assert (only_to["from"], only_to["to"]) == (z(90 - 24 * 60), z(90))


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "not-a-time"}, "from"),
        ({"from": "2030-01-01T00:00:00", "to": "2030-01-01T10:00:00Z"}, "from"),
        ({"to": "2030-01-01 10:00"}, "to"),
        ({"from": "2030-01-01T10:00:00Z", "to": "2030-01-01T10:00:00Z"}, "from"),
        ({"from": "2030-01-01T10:00:10Z", "to": "2030-01-01T10:00:50Z"}, "from"),  # same minute
        ({"from": "2030-01-01T11:00:00Z", "to": "2030-01-01T10:00:00Z"}, "from"),
        ({"from": "2030-01-01T00:00:00Z", "to": "2030-02-01T00:01:00Z"}, "to"),  # over 31 days
        ({"granularity": "day"}, "granularity"),
    ],
)
async def test_invalid_window_is_422(
    api: Any, conn: asyncpg.Connection, params: dict[str, str], field: str
) -> None:
    await vehicle(conn, "v1", 0.5, 1.0)
    response = await api.get(PATH.format("v1"), params=params)
    assert response.status_code == 422
    body = response.json()
    assert body["detail"] and [e["field"] for e in body["errors"]] == [field]


async def test_window_of_exactly_max_days_is_accepted(api: Any, conn: asyncpg.Connection) -> None:
    await vehicle(conn, "v1", 0.5, 1.0)
    response = await api.get(
        PATH.format("v1"), params={"from": "2030-01-01T00:00:00Z", "to": "2030-02-01T00:00:59Z"}
    )
    assert response.status_code == 200
    assert (
        len(
            (
                await api.get(
                    PATH.format("v1"),
                    params={
                        "from": "2030-01-01T00:00:00Z",
                        "to": "2030-02-01T00:00:00Z",
                        "granularity": "hour",
                    },
                )
            ).json()["hourly"]
        )
        == 31 * 24
    )
