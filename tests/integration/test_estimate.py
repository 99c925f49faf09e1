"""The per-vehicle efficiency estimate (SPEC §5.3), case by case, on hand-made charging sessions.

Each meter reports (standby + Σ DC / η) × (1 + a deterministic error within ±0.3 %), so the
truth is known exactly; the rule (§5) blends sharers, the estimate must not.
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import timedelta

import asyncpg

from kilowatch.analytics import fleet, vehicle
from kilowatch.settings import Settings
from tests.readings import at
from tests.rollups import check_window, refresh

STANDBY = 0.001  # kWh per minute (60 W)
START, END = at(0), at(6 * 60)


def power(minute: int, start: int, peak: float) -> float:
    """A session's DC per minute: full power, then a taper over its last part."""
    elapsed = minute - start
    return peak * (1.0 if elapsed < 60 else max(0.15, 1.0 - (elapsed - 60) / 120))


async def load(
    conn: asyncpg.Connection,
    sessions: list[tuple[str, str, int, int, float, float]],
    meters: dict[str, range],
) -> None:
    """`sessions`: (vehicle, meter, first minute, end minute, peak kWh/min, η); each meter
    reports every minute of its range, a vehicle every minute of its sessions."""
    ac: dict[tuple[str, int], float] = defaultdict(float)
    vehicle_rows = []
    for vehicle_id, meter_id, first, end, peak, eta in sessions:
        for minute in range(first, end):
            dc = power(minute, first, peak)
            vehicle_rows.append((vehicle_id, at(minute + 0.2), 50.0, dc, 30.0, meter_id))
            ac[meter_id, minute] += dc / eta
    meter_rows = []
    for meter_id, minutes in meters.items():
        for minute in minutes:
            error = 1 + 0.003 * math.sin(minute * 1.7 + len(meter_id))
            drawn = (STANDBY + ac[meter_id, minute]) * error
            meter_rows.append((meter_id, at(minute + 0.5), drawn, 400.0))
    await conn.executemany(
        "INSERT INTO vehicle_readings (vehicle_id, recorded_at, soc, kwh_delivered_dc,"
        " battery_temp, meter_id) VALUES ($1, $2, $3, $4, $5, $6)",
        vehicle_rows,
    )
    await conn.executemany(
        "INSERT INTO vehicle_status (vehicle_id, recorded_at, soc, kwh_delivered_dc,"
        " battery_temp, meter_id) VALUES ($1, $2, 50, 0, 30, NULL) ON CONFLICT DO NOTHING",
        [(v, at(0)) for v in {s[0] for s in sessions}],
    )
    await conn.executemany(
        "INSERT INTO meter_readings (meter_id, recorded_at, kwh_consumed_ac, voltage)"
        " VALUES ($1, $2, $3, $4)",
        meter_rows,
    )


async def performance(conn: asyncpg.Connection, settings: Settings, vehicle_id: str) -> dict:
    return await vehicle.performance(conn, settings, vehicle_id, START, END, False)


def assert_found(body: dict, truth: float, within: float = 0.01) -> None:
    estimate = body["estimate"]
    assert estimate is not None, body["estimateReason"]
    assert abs(estimate["efficiency"] - truth) <= within, estimate
    assert estimate["low"] <= truth <= estimate["high"], estimate
    assert body["estimateReason"] is None


async def test_two_staggered_sharers_are_told_apart(
    conn: asyncpg.Connection, settings: Settings
) -> None:
    await load(
        conn,
        [("V-faulty", "M-1", 0, 180, 0.18, 0.80), ("V-good", "M-1", 60, 240, 0.15, 0.93)],
        {"M-1": range(0, 300)},
    )
    faulty = await performance(conn, settings, "V-faulty")
    good = await performance(conn, settings, "V-good")
    assert_found(faulty, 0.80)
    assert_found(good, 0.93)
    # The rule blends them: the faulty one looks better than it is, the good one worse.
    assert faulty["efficiency"] > 0.805 and good["efficiency"] < 0.925
    assert faulty["faultSuspected"] is True and good["faultSuspected"] is False
    assert faulty["estimate"]["minutes"] == 180 and faulty["estimate"]["sharedMinutes"] == 120
    assert good["estimate"]["minutes"] == 180 and good["estimate"]["sharedMinutes"] == 120


async def test_three_on_a_three_port_meter(conn: asyncpg.Connection, settings: Settings) -> None:
    truth = {"V-a": 0.78, "V-b": 0.90, "V-c": 0.94}
    await load(
        conn,
        [
            ("V-a", "M-3", 0, 200, 0.12, truth["V-a"]),
            ("V-b", "M-3", 40, 260, 0.18, truth["V-b"]),
            ("V-c", "M-3", 100, 330, 0.10, truth["V-c"]),
        ],
        {"M-3": range(0, 345)},
    )
    for vehicle_id, eta in truth.items():
        assert_found(await performance(conn, settings, vehicle_id), eta)


async def test_identical_sessions_give_no_estimate_rather_than_a_wrong_one(
    conn: asyncpg.Connection, settings: Settings
) -> None:
    await load(
        conn,
        [("V-x", "M-2", 10, 200, 0.15, 0.80), ("V-y", "M-2", 10, 200, 0.15, 0.94)],
        {"M-2": range(0, 240)},
    )
    for vehicle_id in ("V-x", "V-y"):
        body = await performance(conn, settings, vehicle_id)
        assert body["estimate"] is None
        assert "not identifiable" in body["estimateReason"]
        assert body["efficiency"] is not None
        assert body["faultSuspected"] is body["belowThreshold"]


async def test_a_vehicle_that_moves_between_two_shared_meters(
    conn: asyncpg.Connection, settings: Settings
) -> None:
    await load(
        conn,
        [
            ("V-moves", "M-east", 0, 120, 0.16, 0.82),
            ("V-east", "M-east", 50, 200, 0.14, 0.92),
            ("V-moves", "M-west", 210, 330, 0.16, 0.82),
            ("V-west", "M-west", 180, 300, 0.12, 0.95),
        ],
        {"M-east": range(0, 220), "M-west": range(170, 345)},
    )
    moves = await performance(conn, settings, "V-moves")
    assert_found(moves, 0.82)
    assert moves["estimate"]["minutes"] == 240
    assert moves["estimate"]["sharedMinutes"] == 70 + 90
    assert {m["meterId"] for m in moves["meters"]} == {"M-east", "M-west"}
    assert_found(await performance(conn, settings, "V-east"), 0.92)
    assert_found(await performance(conn, settings, "V-west"), 0.95)


async def test_the_listing_sorts_and_filters_by_the_estimate_and_the_fleet_counts_it(
    conn: asyncpg.Connection, settings: Settings
) -> None:
    await load(
        conn,
        [
            ("V-1", "M-1", 0, 180, 0.18, 0.80),
            ("V-2", "M-1", 60, 240, 0.15, 0.93),
            ("V-3", "M-2", 10, 200, 0.15, 0.80),
            ("V-4", "M-2", 10, 200, 0.15, 0.94),
            ("V-5", "M-3", 0, 150, 0.10, 0.90),
        ],
        {"M-1": range(0, 300), "M-2": range(0, 240), "M-3": range(0, 200)},
    )
    for materialized in (False, True):
        if materialized:
            await refresh(conn, END + timedelta(hours=2))
        listing = await fleet.vehicles(conn, settings, START, END, sort="estimate", limit=2)
        ids = [i["vehicleId"] for i in listing["items"]]
        assert ids == ["V-1", "V-5"]  # lowest estimates first; V-3 and V-4 (null) last
        rest = await fleet.vehicles(
            conn, settings, START, END, sort="estimate", limit=10, cursor=listing["nextCursor"]
        )
        assert [i["vehicleId"] for i in rest["items"]] == ["V-2", "V-3", "V-4"]
        assert rest["nextCursor"] is None
        suspected = await fleet.vehicles(conn, settings, START, END, fault_suspected=True)
        expected = {"V-1"} | {
            i["vehicleId"] for i in rest["items"] if i["estimate"] is None and i["belowThreshold"]
        }
        assert {i["vehicleId"] for i in suspected["items"]} == expected
        summary = await fleet.summary(conn, settings, START, END, False)
        assert summary["faultSuspected"] == len(expected)
        await check_window(conn, settings, [f"V-{n}" for n in range(1, 6)], START, END)
