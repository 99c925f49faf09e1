"""The maintenance loop: a pass at once, survives any error, logs failures and the recovery."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from litestar.testing import AsyncTestClient
from prometheus_client.parser import text_string_to_metric_families

from kilowatch.app import create_app
from kilowatch.db import partitions
from kilowatch.db.gateway import Gateway
from kilowatch.settings import Settings
from tests.dbproxy import DatabaseProxy

HANG_S = 60  # hang guard only


class Recorder:
    def __init__(self) -> None:
        self.events: list[str] = []
        self.changed = asyncio.Event()

    def maintenance_succeeded(self, created: int, dropped: int) -> None:
        self.events.append(f"ok {created} {dropped}")
        self.changed.set()

    def maintenance_failed(self) -> None:
        self.events.append("failed")
        self.changed.set()

    async def wait_for(self, event: str) -> None:
        async with asyncio.timeout(HANG_S):
            while not any(e.startswith(event) for e in self.events):
                self.changed.clear()
                await self.changed.wait()


@contextlib.asynccontextmanager
async def looping(
    settings: Settings, recorder: Recorder, **kwargs: Any
) -> AsyncIterator[asyncio.Task[None]]:
    gateway = Gateway(settings)
    await gateway.start()
    task = asyncio.create_task(
        partitions.run_forever(gateway, settings, observer=recorder, retry_first_s=0.05, **kwargs)
    )
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await gateway.close()


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "kilowatch.db.partitions"]


async def test_loop_outlives_a_database_outage_and_logs_the_recovery(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    recorder = Recorder()
    async with DatabaseProxy(db_url) as proxy:
        proxy.stop()
        settings = Settings(database_url=proxy.url, partition_days_ahead=9)
        async with looping(settings, recorder):
            await recorder.wait_for("failed")  # the first pass runs at once, not in an hour
            proxy.start()
            await recorder.wait_for("ok")
    assert recorder.events[0] == "failed" and recorder.events[-1] == "ok 4 0"  # 2 days x 2 tables
    logged = messages(caplog)
    assert "partition maintenance failed" in logged
    assert logged.index("partition maintenance recovered") > logged.index(
        "partition maintenance failed"
    )
    failed = next(r for r in caplog.records if r.getMessage() == "partition maintenance failed")
    assert failed.levelno == logging.ERROR and failed.failures >= 1  # type: ignore[attr-defined]


async def test_loop_outlives_a_bug_and_logs_its_traceback(
    db_url: str, conn: asyncpg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    today = datetime.now(UTC).date()
    old = today - timedelta(days=50)
    await conn.fetchval("SELECT kilowatch_create_partition('meter_readings', $1)", old)
    calls = []

    async def before_drop(_: Any, table: str, day: date) -> None:
        calls.append((table, day))
        if len(calls) == 1:
            raise ZeroDivisionError("a bug in a hook")

    recorder = Recorder()
    settings = Settings(database_url=db_url, retention_days=40)
    async with looping(settings, recorder, before_drop=before_drop):
        await recorder.wait_for("ok")
    assert recorder.events == ["failed", "ok 0 1"]
    assert calls == [("meter_readings", old)] * 2
    failed = next(r for r in caplog.records if r.getMessage() == "partition maintenance failed")
    assert failed.exc_info and failed.exc_info[0] is ZeroDivisionError
    assert "partition maintenance recovered" in messages(caplog)


def samples(text: str) -> dict[str, float]:
    return {
        s.name: s.value for family in text_string_to_metric_families(text) for s in family.samples
    }


async def test_the_app_runs_a_pass_at_start_and_exposes_it(
    db_url: str, conn: asyncpg.Connection
) -> None:
    # The template has PARTITION_DAYS_AHEAD (7) days ahead; the app's own pass adds 3 more per
    # table at once, although the next pass is an hour away.
    ahead = datetime.now(UTC).date() + timedelta(days=10)
    settings = Settings(database_url=db_url, partition_days_ahead=10)
    async with AsyncTestClient(app=create_app(settings)) as client:
        async with asyncio.timeout(HANG_S):
            while True:
                found = samples((await client.get("/metrics")).text)
                if found.get("kilowatch_partition_maintenance_last_success_timestamp_seconds"):
                    break
                await asyncio.sleep(0.05)
    assert found["kilowatch_partitions_created_total"] >= 2
    assert found["kilowatch_partition_maintenance_failures_total"] == 0
    for table in partitions.HISTORY_TABLES:
        name = f"{table}_p{ahead:%Y%m%d}"
        assert await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", name), name
