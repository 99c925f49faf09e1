"""Per-vehicle performance on hand-built data: attachment, sharing, matching, windows (SPEC §5)."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from kilowatch.analytics import service
from kilowatch.errors import NotFound
from kilowatch.settings import Settings
from tests.readings import T0, assign, at, meter, vehicle

approx = pytest.approx


async def perf(
    conn: asyncpg.Connection,
    settings: Settings,
    vehicle_id: str,
    from_minute: float = 0,
    to_minute: float = 60,
    hourly: bool = False,
) -> dict[str, Any]:
    return await service.performance(
        conn, settings, vehicle_id, at(from_minute), at(to_minute), hourly
    )


async def test_one_vehicle_on_one_meter(conn: asyncpg.Connection, settings: Settings) -> None:
    for minute, temp in ((0, 20.0), (1, 30.0), (2, 40.0)):
        await vehicle(conn, "v1", minute + 0.1, 10.0, meter="m1", temp=temp)
        await meter(conn, "m1", minute + 0.3, 12.0)
    result = await perf(conn, settings, "v1")
    assert result["totalAcKwh"] == approx(36.0)
    assert result["totalDcKwh"] == approx(30.0)
    assert result["attachedDcKwh"] == approx(30.0)
    assert result["efficiency"] == approx(30 / 36)
    assert result["lossKwh"] == approx(6.0)
    assert result["coverage"] == approx(1.0)
    assert (result["avgBatteryTemp"], result["minBatteryTemp"], result["maxBatteryTemp"]) == (
        approx(30.0),
        20.0,
        40.0,
    )
    assert result["vehicleReadings"] == 3
    assert result["meterReadings"] == 3
    assert result["meters"] == [{"meterId": "m1", "acKwh": approx(36.0), "minutes": 3}]
    assert result["threshold"] == 0.85
    assert result["belowThreshold"] is True
    assert "hourly" not in result


async def test_two_vehicles_one_after_the_other_on_a_meter(
    conn: asyncpg.Connection, settings: Settings
) -> None:
    for minute in range(4):
        await meter(conn, "m1", minute, 10.0)
    await meter(conn, "m1", 5, 10.0)  # nobody attached: attributed to no one
    for minute in (0, 1):
        await vehicle(conn, "vA", minute + 0.5, 9.0, meter="m1")
    for minute in (2, 3):
        await vehicle(conn, "vB", minute + 0.5, 8.0, meter="m1")
    a, b = await perf(conn, settings, "vA"), await perf(conn, settings, "vB")
    assert (a["totalAcKwh"], a["efficiency"], a["belowThreshold"]) == (
        approx(20.0),
        approx(0.9),
        False,
    )
    assert (b["totalAcKwh"], b["efficiency"], b["belowThreshold"]) == (
        approx(20.0),
        approx(0.8),
        True,
    )
    assert a["meters"] == [{"meterId": "m1", "acKwh": approx(20.0), "minutes": 2}]


async def test_dual_port_meter_splits_ac_by_dc_and_equally_at_zero_dc(
    conn: asyncpg.Connection, settings: Settings
) -> None:
    await meter(conn, "m1", 0, 5.0)
    await vehicle(conn, "vA", 0.2, 3.0, meter="m1")
    await vehicle(conn, "vB", 0.4, 1.0, meter="m1")
    # vC carried m1 earlier in minute 0 but its latest heartbeat there names m2: not a sharer.
    await vehicle(conn, "vC", 0.1, 100.0, meter="m1")
    await vehicle(conn, "vC", 0.6, 0.0, meter="m2")
    # Minute 1: both report zero DC, so the meter's standby AC is split equally.
    await meter(conn, "m1", 1, 0.4)
    await vehicle(conn, "vA", 1.2, 0.0, meter="m1")
    await vehicle(conn, "vB", 1.4, 0.0, meter="m1")
    a, b = await perf(conn, settings, "vA"), await perf(conn, settings, "vB")
    assert a["totalAcKwh"] == approx(5.0 * 3 / 4 + 0.2)
    assert b["totalAcKwh"] == approx(5.0 * 1 / 4 + 0.2)
    assert a["efficiency"] == approx(3.0 / 3.95)
    assert a["meters"] == [{"meterId": "m1", "acKwh": approx(3.95), "minutes": 2}]
    assert a["meterReadings"] == 2


async def test_assignment_attaches_a_vehicle_without_meter_id_and_open_one_ends_at_the_next(
    conn: asyncpg.Connection, settings: Settings
) -> None:
    await assign(conn, "vC", "m1", 0)  # open: ends where the next one begins (minute 3)
    await assign(conn, "vC", "m2", 3, 5)  # closed; the open one does not resume after it
    for minute in range(7):
        await vehicle(conn, "vC", minute + 0.5, 1.0)
        await meter(conn, "m1", minute + 0.5, 2.0)
        await meter(conn, "m2", minute + 0.5, 4.0)
    result = await perf(conn, settings, "vC")
    assert result["meters"] == [
        {"meterId": "m1", "acKwh": approx(6.0), "minutes": 3},
        {"meterId": "m2", "acKwh": approx(8.0), "minutes": 2},
    ]
    assert result["totalDcKwh"] == approx(7.0)
    assert result["attachedDcKwh"] == approx(5.0)
    assert result["totalAcKwh"] == approx(14.0)
    assert result["coverage"] == approx(5 / 7)
    assert result["efficiency"] == approx(5 / 14)


async def test_assigned_vehicle_shares_a_meter_with_a_heartbeat_vehicle(
    conn: asyncpg.Connection, settings: Settings
) -> None:
    await assign(conn, "vD", "m1", 0, 10)
    await vehicle(conn, "vD", 0.3, 2.0)
    await vehicle(conn, "vE", 0.6, 6.0, meter="m1")
    await meter(conn, "m1", 0.9, 10.0)
    assert (await perf(conn, settings, "vE"))["totalAcKwh"] == approx(7.5)
    assert (await perf(conn, settings, "vD"))["totalAcKwh"] == approx(2.5)


async def test_heartbeat_meter_id_overrides_the_assignment(
    conn: asyncpg.Connection, settings: Settings
) -> None:
    await assign(conn, "vF", "m1", 0)
    await vehicle(conn, "vF", 0.5, 2.4, meter="m2")
    # vH is assigned to m2, but its heartbeat says m1: it does not share m2 with vF.
    await assign(conn, "vH", "m2", 0)
    await vehicle(conn, "vH", 0.5, 2.4, meter="m1")
    await meter(conn, "m1", 0.5, 5.0)
    await meter(conn, "m2", 0.5, 3.0)
    result = await perf(conn, settings, "vF")
    assert result["meters"] == [{"meterId": "m2", "acKwh": approx(3.0), "minutes": 1}]
    assert result["efficiency"] == approx(0.8)
    assert (await perf(conn, settings, "vH"))["meters"] == [
        {"meterId": "m1", "acKwh": approx(5.0), "minutes": 1}
    ]


async def test_latest_meter_carrying_heartbeat_in_the_minute_wins(
    conn: asyncpg.Connection, settings: Settings
) -> None:
    await vehicle(conn, "v1", 0.2, 1.0, meter="m1")
    await vehicle(conn, "v1", 0.5, 1.0, meter="m2")
    await vehicle(conn, "v1", 0.8, 1.0)  # carries none: the minute stays on m2
    await meter(conn, "m1", 0.5, 9.0)
    await meter(conn, "m2", 0.5, 4.0)
    result = await perf(conn, settings, "v1")
    assert result["meters"] == [{"meterId": "m2", "acKwh": approx(4.0), "minutes": 1}]
    assert result["attachedDcKwh"] == approx(3.0)


async def test_dc_without_a_meter_lowers_coverage(
    conn: asyncpg.Connection, settings: Settings
) -> None:
    await vehicle(conn, "v1", 0.5, 5.0, meter="m1")
    await meter(conn, "m1", 0.5, 6.0)
    await vehicle(conn, "v1", 1.5, 5.0)  # no meterId, no assignment: attached to none
    result = await perf(conn, settings, "v1")
    assert result["totalDcKwh"] == approx(10.0)
    assert result["attachedDcKwh"] == approx(5.0)
    assert result["coverage"] == approx(0.5)
    assert result["efficiency"] == approx(5 / 6)


async def test_minute_without_meter_data_is_not_matched_and_does_not_inflate_efficiency(
    conn: asyncpg.Connection, settings: Settings
) -> None:
    await vehicle(conn, "v1", 0.5, 5.0, meter="m1")
    await meter(conn, "m1", 0.5, 6.0)
    await vehicle(conn, "v1", 1.98, 5.0, meter="m1")
    await meter(conn, "m1", 2.02, 6.0)  # seconds later, but the next minute: never matched across
    result = await perf(conn, settings, "v1")
    assert result["attachedDcKwh"] == approx(5.0)
    assert result["totalAcKwh"] == approx(6.0)
    assert result["efficiency"] == approx(5 / 6)
    assert result["coverage"] == approx(0.5)
    assert result["meterReadings"] == 1
    assert result["meters"] == [{"meterId": "m1", "acKwh": approx(6.0), "minutes": 1}]


async def test_readings_of_one_minute_add_up(conn: asyncpg.Connection, settings: Settings) -> None:
    await vehicle(conn, "v1", 0.1, 2.0, meter="m1")  # 10:00:06
    await vehicle(conn, "v1", 0.9, 3.0, meter="m1")  # 10:00:54
    await meter(conn, "m1", 0.05, 3.0)
    await meter(conn, "m1", 0.95, 3.0)
    result = await perf(conn, settings, "v1")
    assert result["totalAcKwh"] == approx(6.0)
    assert result["attachedDcKwh"] == approx(5.0)
    assert result["vehicleReadings"] == 2
    assert result["meterReadings"] == 2
    assert result["meters"] == [{"meterId": "m1", "acKwh": approx(6.0), "minutes": 1}]


async def test_window_boundary_cuts_a_session(conn: asyncpg.Connection, settings: Settings) -> None:
    for minute in range(10):
        await vehicle(conn, "v1", minute + 0.5, 1.0, meter="m1")
        await meter(conn, "m1", minute + 0.5, 1.25)
    # from 10:03:30 and to 10:07:30 floor to 10:03 and 10:07: minutes 3, 4, 5, 6.
    result = await perf(conn, settings, "v1", 3.5, 7.5)
    assert (result["from"], result["to"]) == (
        at(3).strftime("%Y-%m-%dT%H:%M:%SZ"),
        at(7).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    assert result["totalDcKwh"] == approx(4.0)
    assert result["totalAcKwh"] == approx(5.0)
    assert result["vehicleReadings"] == 4


async def test_hourly_buckets_cover_every_overlapping_hour(
    conn: asyncpg.Connection, settings: Settings
) -> None:
    await vehicle(conn, "v1", 5.5, 8.0, meter="m1")
    await meter(conn, "m1", 5.5, 10.0)
    await vehicle(conn, "v1", 65.5, 9.0, meter="m1")  # m1 silent in that minute
    result = await perf(conn, settings, "v1", -30, 90, hourly=True)
    hour = "%Y-%m-%dT%H:00:00Z"
    assert result["hourly"] == [
        {
            "hour": at(-60).strftime(hour),
            "totalAcKwh": 0,
            "totalDcKwh": 0,
            "attachedDcKwh": 0,
            "efficiency": None,
        },
        {
            "hour": at(0).strftime(hour),
            "totalAcKwh": approx(10.0),
            "totalDcKwh": approx(8.0),
            "attachedDcKwh": approx(8.0),
            "efficiency": approx(0.8),
        },
        {
            "hour": at(60).strftime(hour),
            "totalAcKwh": 0,
            "totalDcKwh": approx(9.0),
            "attachedDcKwh": 0,
            "efficiency": None,
        },
    ]
    assert result["totalDcKwh"] == approx(17.0)


async def test_known_vehicle_without_data_gets_zeros_and_nulls(
    conn: asyncpg.Connection, settings: Settings
) -> None:
    await assign(conn, "vNew", "m1", 0)  # named in an assignment only: known
    result = await perf(conn, settings, "vNew", hourly=True)
    assert result["totalAcKwh"] == result["totalDcKwh"] == result["attachedDcKwh"] == 0
    assert result["lossKwh"] == 0
    assert result["efficiency"] is result["coverage"] is None
    assert result["avgBatteryTemp"] is result["minBatteryTemp"] is result["maxBatteryTemp"] is None
    assert (result["vehicleReadings"], result["meterReadings"], result["meters"]) == (0, 0, [])
    assert result["belowThreshold"] is False
    assert [h["totalAcKwh"] for h in result["hourly"]] == [0]


async def test_vehicle_with_only_older_readings_is_known(
    conn: asyncpg.Connection, settings: Settings
) -> None:
    await vehicle(conn, "v1", -120, 1.0)
    result = await perf(conn, settings, "v1")
    assert result["vehicleReadings"] == 0


async def test_unknown_vehicle_is_not_found(conn: asyncpg.Connection, settings: Settings) -> None:
    await vehicle(conn, "v1", 0.5, 1.0)
    with pytest.raises(NotFound):
        await perf(conn, settings, "nobody")


async def test_window_is_read_in_utc_whatever_the_session_time_zone(
    conn: asyncpg.Connection, settings: Settings
) -> None:
    # Kathmandu is UTC+05:45: a session-zone date_trunc('hour') would shift every bucket.
    await conn.execute("SET TIME ZONE 'Asia/Kathmandu'")
    await vehicle(conn, "v1", 50.5, 1.0, meter="m1")
    await meter(conn, "m1", 50.5, 2.0)
    result = await perf(conn, settings, "v1", 0, 120, hourly=True)
    assert [h["hour"] for h in result["hourly"]] == [
        at(0).strftime("%Y-%m-%dT%H:00:00Z"),
        at(60).strftime("%Y-%m-%dT%H:00:00Z"),
    ]
    assert result["hourly"][0]["totalAcKwh"] == approx(2.0)
    assert T0.minute == 0
