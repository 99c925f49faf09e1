"""The rollup refresher: materializes new minutes and recomputes dirty hours (SPEC §5.1).

It never runs inside ingest: ingest only appends a dirty mark for a late row, in the row's own
transaction (kilowatch/ingest/queries.sql). Each step here is one short REPEATABLE READ
transaction under an advisory lock (one refresher at a time across processes), so a crash
leaves nothing half-written, and every mark a step deletes is one its snapshot has seen: a mark
committed during a recompute survives it, and its hour is recomputed again.

- `advance`: moves the frontier by at most one hour, to where no running transaction could
  still insert an unmarked row (`target`), adding those minutes of every device to the hour
  rows; when it passes midnight, the day's rows are summed from its hours.
- `repair`: takes the oldest marks of materialized hours; an hour with many marked devices is
  recomputed whole, otherwise only its closure (the marked vehicles' own figures, and the
  ledgers of every meter they touch), and the day rows of those keys are summed again.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg

from kilowatch.db import sqlfile
from kilowatch.db.gateway import Conn, Gateway
from kilowatch.errors import KilowatchError
from kilowatch.settings import Settings

log = logging.getLogger(__name__)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
# Past this many marked devices in one hour, recomputing the hour whole costs less than
# finding and recomputing each one's closure.
WHOLE_HOUR_DEVICES = 200


def queries() -> dict[str, str]:
    return sqlfile.load("kilowatch.rollups")


@dataclass
class Pass:
    """What one refresh pass did."""

    advanced_to: datetime | None = None
    readings: int = 0
    marks: int = 0
    hours_recomputed: int = 0

    @property
    def busy(self) -> bool:
        return self.readings > 0 or self.marks > 0 or self.advanced_to is not None


def _next_hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0) + HOUR


def _day(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


async def advance(conn: Conn, until: datetime | None = None) -> tuple[datetime, int] | None:
    """One frontier step (at most to the next hour); None when there is nothing to do.

    `until` caps the step (tests and the bench); the safe target caps it always.
    """
    sql = queries()
    target_row = await conn.fetchrow(sql["target"])
    assert target_row is not None
    if target_row["hidden"]:
        log.warning(
            "rollup frontier held: sessions of other roles are not visible to this one "
            "(grant pg_read_all_stats to see when their transactions started)"
        )
        return None
    target: datetime = target_row["target"]
    if until is not None:
        target = min(target, until)
    try:
        return await _advance(conn, target)
    except asyncpg.SerializationError:
        # Another refresher committed a step between this transaction's snapshot and its lock:
        # that step is done; the next pass goes on from there.
        return None


async def _advance(conn: Conn, target: datetime) -> tuple[datetime, int] | None:
    sql = queries()
    async with conn.transaction(isolation="repeatable_read"):
        if not await conn.fetchval(sql["lock"]):
            return None
        state = await conn.fetchrow(sql["state"])
        assert state is not None
        frontier: datetime = state["frontier"]
        if target <= frontier:
            return None
        step_to = min(target, _next_hour(frontier))
        done = await conn.fetchrow(sql["advance"], frontier, step_to)
        assert done is not None
        if step_to == _day(step_to) and step_to - DAY >= state["floor"]:
            await _roll_days(conn, [step_to - DAY])
        return step_to, int(done["readings"])


async def repair(
    conn: Conn, max_marks: int = 5000, *, paused: Callable[[], Awaitable[None]] | None = None
) -> tuple[int, int]:
    """Recomputes the oldest dirty hours; returns (marks cleared, hours touched).

    `paused` is awaited once the marks are read, inside the transaction (tests use it to commit
    a late row while a recompute is under way).
    """
    try:
        return await _repair(conn, max_marks, paused)
    except asyncpg.SerializationError:
        return 0, 0  # another refresher got there first (see advance)


async def _repair(
    conn: Conn, max_marks: int, paused: Callable[[], Awaitable[None]] | None
) -> tuple[int, int]:
    sql = queries()
    async with conn.transaction(isolation="repeatable_read"):
        if not await conn.fetchval(sql["lock"]):
            return 0, 0
        state = await conn.fetchrow(sql["state"])
        assert state is not None
        floor: datetime = state["floor"]
        frontier: datetime = state["frontier"]
        marks = await conn.fetch(sql["marks"], frontier, max_marks)
        if not marks:
            return 0, 0
        if paused is not None:
            await paused()
        by_hour: dict[datetime, set[tuple[str | None, str | None]]] = defaultdict(set)
        for mark in marks:
            if mark["hour"] >= floor:
                by_hour[mark["hour"]].add((mark["vehicle_id"], mark["meter_id"]))
        whole = sorted(h for h, devices in by_hour.items() if len(devices) > WHOLE_HOUR_DEVICES)
        partial = [(h, d) for h, devices in by_hour.items() if h not in whole for d in devices]
        closure = await conn.fetch(
            sql["closure"],
            [h for h, _ in partial],
            [d[0] for _, d in partial],
            [d[1] for _, d in partial],
        )
        dv = [(r["hour"], r["vehicle_id"]) for r in closure if r["vehicle_id"] is not None]
        dm = [(r["hour"], r["meter_id"]) for r in closure if r["meter_id"] is not None]

        def end(hour: datetime) -> datetime:
            return min(hour + HOUR, frontier)

        if whole:
            await conn.execute(sql["clear_hours"], whole)
        await conn.execute(sql["clear_closure"], *_columns(dv), *_columns(dm))
        await conn.execute(
            sql["recompute"],
            whole,
            [end(h) for h in whole],
            [v for _, v in dv],
            [h for h, _ in dv],
            [end(h) for h, _ in dv],
            [m for _, m in dm],
            [h for h, _ in dm],
            [end(h) for h, _ in dm],
        )
        await conn.execute(
            sql["roll_fleet_hours"], [*whole, *(h for h, _ in dv), *(h for h, _ in dm)]
        )
        # Day rows of complete days follow their hours, in this same transaction.
        complete = _day(frontier)
        whole_days = sorted({_day(h) for h in whole if floor <= _day(h) < complete})
        if whole_days:
            await _roll_days(conn, whole_days)
        keep = set(whole_days)
        dv_days = [
            (_day(h), v) for h, v in dv if floor <= _day(h) < complete and _day(h) not in keep
        ]
        dm_days = [
            (_day(h), m) for h, m in dm if floor <= _day(h) < complete and _day(h) not in keep
        ]
        if dv_days or dm_days:
            keys = (*_columns(dv_days), *_columns(dm_days))
            await conn.execute(sql["clear_day_keys"], *keys)
            await conn.execute(sql["roll_day_keys"], *keys)
        await conn.execute(sql["drop_marks"], [mark["id"] for mark in marks])
        return len(marks), len(by_hour)


async def _roll_days(conn: Conn, days: list[datetime]) -> None:
    await conn.execute(queries()["clear_days"], days)
    await conn.execute(queries()["roll_days"], days)


def _columns(pairs: list[tuple[datetime, Any]]) -> tuple[list[datetime], list[Any]]:
    return [a for a, _ in pairs], [b for _, b in pairs]


async def refresh(
    gateway: Gateway, *, until: datetime | None = None, budget_s: float = 10.0
) -> Pass:
    """Advances and repairs until caught up or `budget_s` has passed; each step on its own."""
    done = Pass()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + budget_s
    while loop.time() < deadline:
        async with gateway.background() as conn:
            step = await advance(conn, until)
        if step is None:
            break
        done.advanced_to, readings = step
        done.readings += readings
    while loop.time() < deadline:
        async with gateway.background() as conn:
            marks, hours = await repair(conn)
        if not marks:
            break
        done.marks += marks
        done.hours_recomputed += hours
    return done


async def rewind(conn: Conn, to: datetime) -> None:
    """Forgets what is materialized from the hour `to` on; the refresher redoes it."""
    async with conn.transaction():
        if not await conn.fetchval(queries()["lock"]):
            raise RuntimeError("another refresher holds the rollups")
        await conn.execute(queries()["rewind"], to)


async def before_drop(conn: Conn, table: str, day: date) -> None:
    """Retention's hook, in the transaction that drops `day`'s partition of `table`: the
    rollups' floor moves past that day and its rollup rows go with it (SPEC §3)."""
    await conn.execute(queries()["wait_lock"])  # bounded by the connection's lock_timeout
    floor = datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    await conn.execute(queries()["drop_below_floor"], floor)


async def lag(conn: Conn) -> tuple[float, int]:
    """(seconds the frontier trails now, dirty marks waiting)."""
    row = await conn.fetchrow(queries()["lag"])
    assert row is not None
    return float(row["lag_s"]), int(row["dirty_marks"])


async def run_forever(gateway: Gateway, settings: Settings, observer: Any = None) -> None:
    """Background task of every app: refreshes, then sleeps while there is nothing to do."""
    failing = False
    while True:
        try:
            done = await refresh(gateway)
            if observer is not None:
                async with gateway.background() as conn:
                    observer.rollup_lag(*await lag(conn))
            if failing:
                log.warning("rollup refresher running again")
                failing = False
        except KilowatchError as exc:
            if not failing:
                log.error("rollup refresher failed; retrying", extra={"cause": exc.message})
            failing = True
            done = Pass()
        except Exception:
            # A bug must not stop rollups for good: say so loudly, then keep trying.
            log.exception("rollup refresher failed unexpectedly; retrying")
            failing = True
            done = Pass()
        if not done.busy:
            await asyncio.sleep(settings.rollup_interval_s)
