"""Daily history partitions: attached ahead, detached and dropped past retention, never blocking.

No step takes an exclusive lock on a history table (migration 0003): a partition is created as
a standalone table and attached, and an expired one is detached concurrently, then dropped.
Those hold the parent in SHARE UPDATE EXCLUSIVE mode, which reads and inserts never wait for.
Each step is its own short transaction (or, for a detach, its own statement) under the
connection's `lock_timeout`, retried with backoff while another step or a long read holds it up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Protocol, TypeAlias, TypeVar

import asyncpg

from kilowatch import errors
from kilowatch.db import sqlfile
from kilowatch.db.gateway import Conn, Gateway
from kilowatch.settings import Settings

HISTORY_TABLES = ("meter_readings", "vehicle_readings")
log = logging.getLogger(__name__)
T = TypeVar("T")

# Called with (connection, parent table, day) inside the transaction that drops that day's
# partition, after it is detached: e.g. to delete the rollup rows of that day, atomically with
# the drop. If it raises, nothing is dropped and the next pass tries again.
BeforeDrop: TypeAlias = Callable[[Conn, str, date], Awaitable[None]]

# A step that cannot get its locks within this is given up; the pass fails and is retried.
STEP_BUDGET_S = 30.0
_BACKOFF_FIRST_S, _BACKOFF_MAX_S = 0.05, 2.0
# Another step holds the lock (lock_timeout), the partition is mid-detach by another process,
# or a deadlock: the next attempt, which looks at the state again, may well succeed.
_CONTENDED = (
    asyncpg.LockNotAvailableError,
    asyncpg.ObjectNotInPrerequisiteStateError,
    asyncpg.DeadlockDetectedError,
)


class MaintenanceObserver(Protocol):
    """Told about each pass of the background loop (kilowatch.metrics)."""

    def maintenance_succeeded(self, created: int, dropped: int) -> None: ...
    def maintenance_failed(self) -> None: ...


@dataclass
class Pass:
    """What one pass changed: partitions created (attached) and dropped, as "table/day"."""

    created: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)


class _Contended(Exception):
    """A step lost a race for a lock; raised inside a borrowed connection to end the borrow."""


def accepted_days(settings: Settings, today: date) -> list[date]:
    """Every UTC day an accepted event can fall on (max age back, partition_days_ahead forward)."""
    first = today - timedelta(days=settings.max_event_age_days + 1)
    last = today + timedelta(days=settings.partition_days_ahead)
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


async def maintain(
    db: Gateway | Conn,
    settings: Settings,
    *,
    today: date | None = None,
    retention: bool = True,
    before_drop: BeforeDrop | None = None,
) -> Pass:
    """Creates the accepted range's missing partitions, then (with RETENTION_DAYS and
    `retention`) detaches and drops expired ones, calling `before_drop` before each drop.

    `db` is the app's gateway (each step borrows a background connection) or one connection
    on autocommit, which should carry a short `lock_timeout`.
    """
    queries = sqlfile.load("kilowatch.db")
    lend = _lender(db, settings)
    today = today or datetime.now(UTC).date()
    done = Pass()
    existing: dict[str, list[date]] = {}
    # Every table's creations first: a drop may wait a long time for old reads.
    for table in HISTORY_TABLES:
        async with lend() as conn:
            rows = await conn.fetch(queries["list_partitions"], table)
        existing[table] = [r["day"] for r in rows]
        attached = {r["day"] for r in rows if r["attached"]}
        for day in accepted_days(settings, today):
            if day not in attached and await _retrying(
                f"{table}/{day}", partial(_create, lend, table, day)
            ):
                done.created.append(f"{table}/{day}")
    if retention and settings.retention_days is not None:
        cutoff = today - timedelta(days=settings.retention_days)
        for table in HISTORY_TABLES:
            for day in sorted(d for d in existing[table] if d < cutoff):
                await _retrying(f"{table}/{day}", partial(_drop, lend, table, day, before_drop))
                done.dropped.append(f"{table}/{day}")
                log.info("dropped expired partition", extra={"table": table, "day": str(day)})
    if done.created:
        log.info(
            "partitions created",
            extra={"count": len(done.created), "first": done.created[0], "last": done.created[-1]},
        )
    return done


Lender: TypeAlias = Callable[[], AbstractAsyncContextManager[Conn]]


def _lender(db: Gateway | Conn, settings: Settings) -> Lender:
    if isinstance(db, Gateway):
        return lambda: db.background(settings.background_timeout_s)
    return lambda: contextlib.nullcontext(db)


async def _create(lend: Lender, table: str, day: date) -> bool:
    queries = sqlfile.load("kilowatch.db")
    async with lend() as conn:
        try:
            return bool(await conn.fetchval(queries["create_partition"], table, day))
        except _CONTENDED as exc:
            raise _Contended(str(exc)) from exc


async def _drop(lend: Lender, table: str, day: date, before_drop: BeforeDrop | None) -> None:
    """Moves that day's partition one state on (attached -> detaching -> detached -> gone),
    until it is gone; each move looks at the state first, so an interrupted detach, or another
    process working on the same partition, is picked up where it stands."""
    queries = sqlfile.load("kilowatch.db")
    while True:
        async with lend() as conn:
            try:
                state = await conn.fetchrow(queries["partition_state"], table, day)
                if state is None:
                    return
                if state["attached"]:
                    # CONCURRENTLY commits the detach in two steps and waits in between for the
                    # transactions that may still read the partition. If that wait is cut short
                    # (lock_timeout), the detach stays pending and FINALIZE completes it.
                    mode = "FINALIZE" if state["detaching"] else "CONCURRENTLY"
                    statement = await conn.fetchval(
                        queries["detach_partition_statement"], table, day, mode
                    )
                    await conn.execute(statement)
                    continue
                async with conn.transaction():
                    if before_drop is not None:
                        await before_drop(conn, table, day)
                    await conn.fetchval(queries["drop_partition"], table, day)
                return
            except _CONTENDED as exc:
                raise _Contended(str(exc)) from exc


async def _retrying(what: str, step: Callable[[], Awaitable[T]]) -> T:
    deadline = time.monotonic() + STEP_BUDGET_S
    delay = _BACKOFF_FIRST_S
    while True:
        try:
            return await step()
        except _Contended as exc:
            if time.monotonic() + delay > deadline:
                raise errors.ServiceUnavailable(
                    f"partition {what}: locks still taken after {STEP_BUDGET_S:.0f} s ({exc})"
                ) from exc
            log.info(
                "partition step is waiting for a lock; retrying",
                extra={"partition": what, "cause": str(exc), "retry_in_s": round(delay, 2)},
            )
            await asyncio.sleep(delay * random.uniform(0.5, 1.5))
            delay = min(2 * delay, _BACKOFF_MAX_S)


# After a failed pass the loop retries sooner than the interval: 5 s, 10 s, 20 s, ...
RETRY_FIRST_S = 5.0


async def run_forever(
    gateway: Gateway,
    settings: Settings,
    *,
    observer: MaintenanceObserver | None = None,
    before_drop: BeforeDrop | None = None,
    retry_first_s: float = RETRY_FIRST_S,
) -> None:
    """Background task: a pass at once, then every PARTITION_CHECK_INTERVAL_S.

    Survives any error: each failure is logged (with its traceback when it is not a database
    error) and retried with backoff; the first success after failures is logged as recovery.
    """
    failures = 0
    while True:
        try:
            done = await maintain(gateway, settings, before_drop=before_drop)
        except Exception as exc:
            failures += 1
            delay = min(settings.partition_check_interval_s, retry_first_s * 2 ** (failures - 1))
            if observer:
                observer.maintenance_failed()
            log.error(
                "partition maintenance failed",
                exc_info=None if isinstance(exc, errors.KilowatchError) else exc,
                extra={
                    "cause": f"{type(exc).__name__}: {exc}",
                    "failures": failures,
                    "retry_in_s": delay,
                },
            )
        else:
            if failures:
                log.warning("partition maintenance recovered", extra={"failures": failures})
            failures = 0
            delay = settings.partition_check_interval_s
            if observer:
                observer.maintenance_succeeded(len(done.created), len(done.dropped))
        await asyncio.sleep(delay)
