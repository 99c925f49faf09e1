"""A window's reading plan, made in the reader's snapshot: rollup units, dirty closure, raw ranges.

Callers run `read()` and the statement that uses its lists inside one REPEATABLE READ
transaction, so the frontier, the dirty marks and the rollup rows all come from one snapshot:
the refresher's commits are either wholly visible to a read or not at all.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kilowatch.db import sqlfile
from kilowatch.db.gateway import LINK_ERRORS, Conn
from kilowatch.rollups.plan import HOUR, Plan, plan

Pair = tuple[datetime, str]


@contextlib.asynccontextmanager
async def snapshot(conn: Conn) -> AsyncIterator[None]:
    """One REPEATABLE READ, read-only transaction for a window's statements, in one round trip.

    Generic plans: these statements are large and run with different arrays each time;
    planning them afresh cost more (2-3 ms) than executing them from the rollups (under 1 ms).
    """
    await conn.execute(
        "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; "
        "SET LOCAL plan_cache_mode = force_generic_plan"
    )
    try:
        yield
    except BaseException as exc:
        # A link that failed or timed out gets no ROLLBACK: it would wait on the same link;
        # the gateway drops the connection.
        if not conn.is_closed() and not isinstance(exc, LINK_ERRORS):
            with contextlib.suppress(Exception):
                await conn.execute("ROLLBACK")
        raise
    await conn.execute("COMMIT")


@dataclass
class Window:
    plan: Plan
    dirty_vehicles: list[Pair] = field(default_factory=list)  # (hour, vehicle): own figures raw
    dirty_meters: list[Pair] = field(default_factory=list)  # (hour, meter): ledger raw
    generation: int | None = None  # the rollups' generation in the snapshot (migration 0006)

    def version(self) -> tuple[Any, ...] | None:
        """What a read of this window from rollup rows alone depends on: its units and the
        rollups' generation; None when it reads raw minutes too (edges, above the frontier,
        dirty hours), which change without the generation (kilowatch/db/memo.py)."""
        p = self.plan
        if self.generation is None or p.raw or self.dirty_vehicles or self.dirty_meters:
            return None
        return (tuple(p.days), tuple(p.hours), self.generation)

    def span(self) -> tuple[Any, ...] | None:
        """What a result that depends only on the window's minutes, not on how its units split
        them (the estimator's fits), depends on: where the units start and end, and the
        generation; None as for version(). The units of such a window are contiguous."""
        if self.version() is None:
            return None
        p = self.plan
        starts = [*p.days, *p.hours]
        ends = [*(d + 24 * HOUR for d in p.days), *(p.hour_end(h) for h in p.hours)]
        return (min(starts, default=None), max(ends, default=None), self.generation)

    def fleet_args(self) -> list[Any]:
        """The fleet statements' first fourteen parameters (see analytics/queries.sql)."""
        p = self.plan
        dirty = {h for h, _ in self.dirty_vehicles} | {h for h, _ in self.dirty_meters}
        clean = [h for h in p.hours if h not in dirty]
        every_hour = [d + HOUR * i for d in p.days for i in range(24)]
        masks: dict[datetime, int] = dict.fromkeys(p.days, (1 << 24) - 1)
        for h in p.hours:
            day = h.replace(hour=0)
            masks[day] = masks.get(day, 0) | 1 << h.hour
        return [
            p.days,
            clean,
            [*every_hour, *clean],
            list(masks),
            list(masks.values()),
            sorted(dirty),
            [lo for lo, _ in p.raw],
            [hi for _, hi in p.raw],
            [h for h, _ in self.dirty_vehicles],
            [v for _, v in self.dirty_vehicles],
            [p.hour_end(h) for h, _ in self.dirty_vehicles],
            [h for h, _ in self.dirty_meters],
            [m for _, m in self.dirty_meters],
            [p.hour_end(h) for h, _ in self.dirty_meters],
        ]

    def config_args(self, meters: list[str] | None = None) -> list[Any]:
        """Parameters of `fleet_configs` (every meter) or, with `meters`, of `meter_configs`."""
        p = self.plan
        dirty = [
            [h for h, _ in self.dirty_meters],
            [m for _, m in self.dirty_meters],
            [p.hour_end(h) for h, _ in self.dirty_meters],
        ]
        raw = [[lo for lo, _ in p.raw], [hi for _, hi in p.raw]]
        if meters is not None:
            return [meters, p.days, p.hours, *raw, *dirty]
        marked = {h for h, _ in self.dirty_vehicles} | {h for h, _ in self.dirty_meters}
        clean = [h for h in p.hours if h not in marked]
        return [p.days, clean, sorted(marked), *raw, *dirty]


def raw(start: datetime, end: datetime) -> Window:
    """The whole window from raw history: the reference the rollup reads are compared with."""
    return Window(Plan(raw=[(start, end)], frontier=start))


async def read(
    conn: Conn, start: datetime, end: datetime, *, vehicle: str | None = None, days: bool = True
) -> Window:
    """The plan of [start, end); for `vehicle`, its dirty hours are moved to the raw ranges."""
    state = await conn.fetchrow(
        sqlfile.load("kilowatch.analytics")["window_state"], start, end, vehicle
    )
    assert state is not None
    result = Window(
        plan(
            start, end, state["floor"], state["frontier"], dirty_days=state["dirty_days"], days=days
        ),
        generation=state["generation"],
    )
    if vehicle is not None:
        result.plan.read_raw(state["vehicle_hours"])
    units = set(result.plan.hours)
    result.dirty_meters = [
        (h, m) for h, m in zip(state["dm_hours"], state["dm_ids"], strict=True) if h in units
    ]
    if vehicle is not None:
        # Its own figures need no other closure; its estimate reads its meters' ledgers, whose
        # dirty hours the meters' pairs name.
        return result
    result.dirty_vehicles = [
        (h, v) for h, v in zip(state["dv_hours"], state["dv_ids"], strict=True) if h in units
    ]
    return result
