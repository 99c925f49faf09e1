"""Rollups, case by case: late data, assignment changes, concurrent recomputes, days, retention."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from kilowatch.analytics import fleet, vehicle
from kilowatch.assignments import service as assignments
from kilowatch.db.memo import Memo
from kilowatch.rollups import refresher
from kilowatch.settings import Settings
from tests.readings import T0, assign, at, meter
from tests.readings import vehicle as heartbeat
from tests.rollups import check_window, refresh, start_at

HOUR_START, HOUR_END = at(0), at(60)
approx = pytest.approx


async def charging(
    conn: asyncpg.Connection,
    vehicle_id: str,
    minutes: range,
    dc: float,
    meter_id: str | None = None,
) -> None:
    for m in minutes:
        await heartbeat(conn, vehicle_id, m + 0.2, dc, meter=meter_id)


async def metered(conn: asyncpg.Connection, meter_id: str, minutes: range, ac: float) -> None:
    for m in minutes:
        await meter(conn, meter_id, m + 0.5, ac)


async def marks(conn: asyncpg.Connection) -> int:
    count: int = await conn.fetchval("SELECT count(*) FROM rollup_dirty")
    return count


async def test_a_late_heartbeat_is_exact_before_and_after_the_refresh(
    conn: asyncpg.Connection, settings: Settings
) -> None:
    await start_at(conn, T0)
    await charging(conn, "v1", range(0, 30), 1.0, "m1")
    await charging(conn, "v2", range(0, 30), 1.0, "m1")
    await metered(conn, "m1", range(0, 30), 2.5)
    await refresh(conn, HOUR_END)
    assert await marks(conn) == 0  # on-time rows of a minute not yet materialized: no marks
    # A late v2 heartbeat on m1 at minute 40, when m1 reported and v1 charged alone.
    await charging(conn, "v1", range(40, 41), 1.0, "m1")
    await metered(conn, "m1", range(40, 41), 1.2)
    await refresh(conn, HOUR_END)
    await charging(conn, "v2", range(40, 41), 1.0, "m1")
    assert await marks(conn) == 1
    await check_window(conn, settings, ["v1", "v2"], HOUR_START, HOUR_END)
    shared = await vehicle.performance(conn, settings, "v1", HOUR_START, HOUR_END, False)
    assert shared["totalAcKwh"] == approx(30 * 1.25 + 0.6)  # minute 40 split in half now
    await refresh(conn, HOUR_END)
    assert await marks(conn) == 0
    await check_window(conn, settings, ["v1", "v2"], HOUR_START, HOUR_END)


async def test_a_late_meter_reading_matches_minutes_that_had_none(
    conn: asyncpg.Connection, settings: Settings
) -> None:
    await start_at(conn, T0)
    await charging(conn, "v1", range(0, 10), 1.0, "m1")
    await metered(conn, "m1", range(0, 5), 1.1)
    await refresh(conn, HOUR_END)
    await metered(conn, "m1", range(5, 10), 1.2)  # late: minutes 5-9 become matched
    result = await vehicle.performance(conn, settings, "v1", HOUR_START, HOUR_END, False)
    assert result["attachedDcKwh"] == approx(10.0)
    await check_window(conn, settings, ["v1"], HOUR_START, HOUR_END)


async def test_a_backdated_assignment_changes_the_sharers_split_at_once(
    conn: asyncpg.Connection, settings: Settings
) -> None:
    await start_at(conn, T0)
    await charging(conn, "v1", range(0, 20), 1.0, "m1")
    await charging(conn, "v2", range(0, 20), 3.0)  # no meterId: attached only by assignment
    await metered(conn, "m1", range(0, 20), 4.4)
    await refresh(conn, HOUR_END)
    before = await fleet.vehicles(conn, settings, HOUR_START, HOUR_END)
    assert before["items"][0]["totalAcKwh"] == approx(20 * 4.4)  # v1 alone on m1
    await assignments.create(conn, "v2", "m1", at(-30), None)
    after = await fleet.vehicles(conn, settings, HOUR_START, HOUR_END)
    assert [i["totalAcKwh"] for i in after["items"]] == approx([20 * 1.1, 20 * 3.3])
    await check_window(conn, settings, ["v1", "v2"], HOUR_START, HOUR_END)
    await refresh(conn, HOUR_END)
    await check_window(conn, settings, ["v1", "v2"], HOUR_START, HOUR_END)


async def test_a_deleted_assignment_leaves_no_stale_share(
    conn: asyncpg.Connection, settings: Settings
) -> None:
    await start_at(conn, T0)
    await charging(conn, "v1", range(0, 20), 1.0, "m1")
    await charging(conn, "v2", range(0, 20), 3.0)
    await metered(conn, "m1", range(0, 20), 4.4)
    created = await assignments.create(conn, "v2", "m1", at(-30), None)
    await refresh(conn, HOUR_END)
    await assignments.delete(conn, created["id"])
    listing = await fleet.vehicles(conn, settings, HOUR_START, HOUR_END)
    assert [i["totalAcKwh"] for i in listing["items"]] == approx([20 * 4.4, 0.0])
    meters = await fleet.meters(conn, HOUR_START, HOUR_END)
    assert meters["items"][0]["vehicles"] == 1
    await check_window(conn, settings, ["v1", "v2"], HOUR_START, HOUR_END)


async def test_a_row_committed_during_a_recompute_keeps_its_hour_dirty(
    conn: asyncpg.Connection, db_url: str, settings: Settings
) -> None:
    await start_at(conn, T0)
    await charging(conn, "v1", range(0, 10), 1.0, "m1")
    await metered(conn, "m1", range(0, 10), 1.1)
    await refresh(conn, HOUR_END)
    await charging(conn, "v1", range(10, 11), 1.0, "m1")  # a late row: one mark
    writer = await asyncpg.connect(db_url)

    async def late_row_now() -> None:  # commits while the refresher's snapshot is open
        await writer.execute(
            "INSERT INTO meter_readings (meter_id, recorded_at, kwh_consumed_ac, voltage)"
            " VALUES ('m1', $1, 1.1, 400)",
            at(10.5),
        )

    try:
        cleared, _ = await refresher.repair(conn, paused=late_row_now)
    finally:
        await writer.close()
    assert cleared == 1
    assert await marks(conn) == 1  # the meter's mark, made after the snapshot, survived
    await check_window(conn, settings, ["v1"], HOUR_START, HOUR_END)
    await refresh(conn, HOUR_END)
    result = await vehicle.performance(conn, settings, "v1", HOUR_START, HOUR_END, False)
    assert result["attachedDcKwh"] == approx(11.0)
    await check_window(conn, settings, ["v1"], HOUR_START, HOUR_END)


async def test_a_refresher_cancelled_mid_step_leaves_nothing_half_written(
    conn: asyncpg.Connection, db_url: str, settings: Settings
) -> None:
    await start_at(conn, T0)
    await charging(conn, "v1", range(0, 10), 1.0, "m1")
    await metered(conn, "m1", range(0, 10), 1.1)
    await refresh(conn, HOUR_END)
    await charging(conn, "v1", range(10, 20), 1.0, "m1")
    other = await asyncpg.connect(db_url)
    stuck = asyncio.Event()

    async def crash() -> None:
        stuck.set()
        await asyncio.sleep(60)

    task = asyncio.create_task(refresher.repair(other, paused=crash))
    await asyncio.wait_for(stuck.wait(), timeout=30)  # guards a hang: the marks must be there
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    other.terminate()  # the process died with its transaction open
    assert await marks(conn) == 10
    await check_window(conn, settings, ["v1"], HOUR_START, HOUR_END)
    await refresh(conn, HOUR_END)
    assert await marks(conn) == 0
    await check_window(conn, settings, ["v1"], HOUR_START, HOUR_END)


async def test_many_marked_devices_recompute_the_hour_whole(
    conn: asyncpg.Connection, settings: Settings
) -> None:
    await start_at(conn, T0)
    await metered(conn, "m1", range(0, 60), 1.0)
    await refresh(conn, HOUR_END)
    await conn.execute(
        "INSERT INTO vehicle_readings (vehicle_id, recorded_at, soc, kwh_delivered_dc,"
        " battery_temp, meter_id) SELECT 'late-' || n, $1, 50, 0.004, 20, 'm1'"
        " FROM generate_series(1, $2::int) n",
        at(30.5),
        refresher.WHOLE_HOUR_DEVICES + 50,
    )
    _, hours = await refresher.repair(conn)
    assert hours == 1
    listing = await fleet.vehicles(conn, settings, HOUR_START, HOUR_END, limit=1000)
    assert len(listing["items"]) == refresher.WHOLE_HOUR_DEVICES + 50
    same_window = await fleet.vehicles(conn, settings, HOUR_START, HOUR_END, limit=1000, raw=True)
    assert listing == same_window


async def test_a_day_is_read_from_its_day_rows_and_stays_exact_when_late_data_lands(
    conn: asyncpg.Connection, settings: Settings
) -> None:
    day = T0.replace(hour=0)
    await start_at(conn, day)
    for hour in (1, 11, 23):  # minutes of three hours of that day
        await charging(conn, "v1", range(hour * 60 - 600, hour * 60 - 590), 1.0, "m1")
        await metered(conn, "m1", range(hour * 60 - 600, hour * 60 - 590), 1.2)
    await refresh(conn, day + timedelta(days=1, hours=1))
    assert await conn.fetchval("SELECT count(*) FROM rollup_vehicle_day") == 1
    await check_window(conn, settings, ["v1"], day, day + timedelta(days=1))
    await metered(conn, "m1", range(11 * 60 - 590, 11 * 60 - 589), 1.2)  # late, no vehicle
    await check_window(conn, settings, ["v1"], day, day + timedelta(days=1))
    await refresh(conn, day + timedelta(days=1, hours=1))
    await check_window(conn, settings, ["v1"], day, day + timedelta(days=1))
    summary = await fleet.summary(conn, settings, day, day + timedelta(days=1), False)
    assert summary["unattributedAcKwh"] == approx(1.2)


async def test_raising_the_floor_drops_rollups_and_reads_raw_below_it(
    conn: asyncpg.Connection, settings: Settings
) -> None:
    await start_at(conn, T0)
    await charging(conn, "v1", range(0, 90), 1.0, "m1")
    await metered(conn, "m1", range(0, 90), 1.2)
    await assign(conn, "v2", "m1", 0)
    await refresh(conn, at(120))
    await conn.execute(refresher.queries()["drop_below_floor"], at(60))
    assert await conn.fetchval("SELECT min(hour) FROM rollup_vehicle_hour") == at(60)
    await check_window(conn, settings, ["v1", "v2"], at(0), at(120))


async def test_late_events_racing_the_refresher_are_never_lost(
    conn: asyncpg.Connection, db_url: str, settings: Settings
) -> None:
    await start_at(conn, T0)
    await charging(conn, "v1", range(0, 60), 0.5, "m1")
    await charging(conn, "v2", range(0, 60), 0.3, "m1")
    await charging(conn, "v3", range(0, 1), 0.3, "m1")
    await metered(conn, "m1", range(0, 60), 1.0)
    await refresh(conn, HOUR_END)
    writers = [await asyncpg.connect(db_url) for _ in range(2)]
    refresher_conn = await asyncpg.connect(db_url)
    stop = asyncio.Event()

    async def write(w: asyncpg.Connection, vehicle_id: str) -> None:
        for second in range(1, 59):  # late heartbeats at new instants of the same hour
            await w.execute(
                "INSERT INTO vehicle_readings (vehicle_id, recorded_at, soc, kwh_delivered_dc,"
                " battery_temp, meter_id) VALUES ($1, $2, 50, 0.01, 20, 'm1')",
                vehicle_id,
                at(second + 0.37),
            )
        stop.set()

    async def refresh_all_along() -> None:
        while not stop.is_set():
            await refresher.repair(refresher_conn, max_marks=3)

    try:
        await asyncio.gather(write(writers[0], "v1"), write(writers[1], "v3"), refresh_all_along())
    finally:
        for c in (*writers, refresher_conn):
            await c.close()
    await check_window(conn, settings, ["v1", "v2", "v3"], HOUR_START, HOUR_END)
    await refresh(conn, HOUR_END)
    assert await marks(conn) == 0
    await check_window(conn, settings, ["v1", "v2", "v3"], HOUR_START, HOUR_END)


async def generation(conn: asyncpg.Connection) -> int:
    value: int = await conn.fetchval("SELECT generation FROM rollup_state")
    return value


async def test_a_kept_fleet_result_is_served_only_while_its_rollup_rows_last(
    conn: asyncpg.Connection, settings: Settings
) -> None:
    await start_at(conn, T0)
    await charging(conn, "v1", range(0, 30), 1.0, "m1")
    await charging(conn, "v2", range(10, 40), 2.0, "m1")
    await metered(conn, "m1", range(0, 40), 2.9)
    await refresh(conn, HOUR_END + timedelta(minutes=5))
    memo = Memo()
    first = await fleet.summary(conn, settings, HOUR_START, HOUR_END, True, memo=memo)
    assert (memo.hits, memo.misses, len(memo)) == (0, 2, 2)  # the summary and the fits, kept
    assert await fleet.summary(conn, settings, HOUR_START, HOUR_END, True, memo=memo) == first
    assert memo.hits == 1
    # A late heartbeat marks its hour dirty: the window now reads raw minutes, nothing kept
    # is used, and the answer changes at once.
    await charging(conn, "v1", range(35, 36), 1.0, "m1")
    late = await fleet.summary(conn, settings, HOUR_START, HOUR_END, True, memo=memo)
    assert late["totalDcKwh"] == approx(first["totalDcKwh"] + 1.0)
    assert memo.hits == 1
    # The refresher's recompute changes the generation: the old entry can never match again.
    before = await generation(conn)
    await refresh(conn, HOUR_END + timedelta(minutes=5))
    assert await generation(conn) > before
    again = await fleet.summary(conn, settings, HOUR_START, HOUR_END, True, memo=memo)
    assert again == late and memo.hits == 1
    await check_window(conn, settings, ["v1", "v2"], HOUR_START, HOUR_END, memo)
    # A window with a partial edge hour reads raw minutes: computed every time, never kept.
    kept = len(memo)
    await fleet.summary(conn, settings, at(5), HOUR_END, False, memo=memo)
    assert len(memo) == kept


async def test_the_fleet_pages_reads_share_one_fit_of_the_fleet(
    db_url: str, conn: asyncpg.Connection, settings: Settings
) -> None:
    """The hourly summary (24 hour units) and a listing filtered by the estimate's verdict (one
    day unit) need the same fits: computed once, side by side or one after the other, and the
    same as computed alone."""
    day = T0.replace(hour=0)
    start, end = day, day + timedelta(days=1)
    await start_at(conn, day)
    await charging(conn, "v1", range(0, 30), 1.0, "m1")
    await charging(conn, "v2", range(10, 40), 2.0, "m1")
    await metered(conn, "m1", range(0, 40), 2.9)
    await refresh(conn, end + timedelta(hours=1))

    async def page(memo: Memo | None) -> list[Any]:
        async def summary() -> Any:
            other = await asyncpg.connect(db_url)
            try:
                return await fleet.summary(other, settings, start, end, True, memo=memo)
            finally:
                await other.close()

        listing = fleet.vehicles(conn, settings, start, end, fault_suspected=False, memo=memo)
        return list(await asyncio.gather(summary(), listing))

    alone = await page(None)
    side_by_side = Memo()
    assert await page(side_by_side) == alone
    # Two results kept and one fit: the second read of the fits joined the first or found it.
    assert len(side_by_side) == 3 and side_by_side.hits + side_by_side.joined == 1
    one_after = Memo()
    await fleet.summary(conn, settings, start, end, True, memo=one_after)
    listed = await fleet.vehicles(conn, settings, start, end, fault_suspected=False, memo=one_after)
    assert listed == alone[1] and one_after.hits == 1


async def test_every_write_to_a_rollup_table_changes_the_generation(
    conn: asyncpg.Connection,
) -> None:
    await start_at(conn, T0)
    await charging(conn, "v1", range(0, 3), 1.0, "m1")
    await metered(conn, "m1", range(0, 3), 1.1)
    seen = [await generation(conn)]
    await refresh(conn, HOUR_END)  # materializes
    seen.append(await generation(conn))
    await refresher.rewind(conn, HOUR_START)  # forgets
    seen.append(await generation(conn))
    for table in ("rollup_vehicle_hour", "rollup_config_day", "rollup_presence"):
        await conn.execute(f"DELETE FROM {table}")  # any writer at all, even by hand
        seen.append(await generation(conn))
    assert seen == sorted(set(seen)), seen  # strictly increasing
