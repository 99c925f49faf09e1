"""Migrations: applied once, idempotent, safe from concurrent processes; is_current."""

from __future__ import annotations

import asyncio
import os
import sys

import asyncpg

from kilowatch.db import migrate


async def _versions(conn: asyncpg.Connection) -> list[int]:
    rows = await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")
    return [row["version"] for row in rows]


async def test_second_run_applies_nothing(empty_db_url: str) -> None:
    conn = await asyncpg.connect(empty_db_url)
    try:
        known = [m.version for m in migrate.migrations()]
        assert await migrate.migrate(conn) == known
        assert await migrate.migrate(conn) == []
        assert await _versions(conn) == known
        assert await conn.fetchval("SELECT to_regclass('vehicle_readings') IS NOT NULL")
    finally:
        await conn.close()


def test_migrations_are_numbered_without_gaps() -> None:
    versions = [m.version for m in migrate.migrations()]
    assert versions == list(range(1, len(versions) + 1))
    assert migrate.latest_version() == versions[-1]
    assert all(m.sql.strip() for m in migrate.migrations())


async def test_concurrent_processes_apply_each_version_once(empty_db_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "KILOWATCH_DATABASE_URL"}
    env["DATABASE_URL"] = empty_db_url
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "kilowatch",
            "migrate",
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        for _ in range(2)
    ]
    async with asyncio.timeout(120):  # hang guard only
        outputs = [await proc.communicate() for proc in procs]
    for proc, (out, _) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, out.decode()
    conn = await asyncpg.connect(empty_db_url)
    try:
        versions = await _versions(conn)
        assert versions == [m.version for m in migrate.migrations()]
        assert len(versions) == len(set(versions))
        # Both processes also created partitions; each day exists once per table.
        parts = await conn.fetchval(
            "SELECT count(*) FROM pg_inherits WHERE inhparent = 'meter_readings'::regclass"
        )
        assert parts > 0
    finally:
        await conn.close()


async def test_is_current_false_before_and_true_after(empty_db_url: str) -> None:
    conn = await asyncpg.connect(empty_db_url)
    try:
        assert await migrate.is_current(conn) is False
        await migrate.migrate(conn)
        assert await migrate.is_current(conn) is True
    finally:
        await conn.close()


async def test_is_current_false_when_a_version_is_missing(conn: asyncpg.Connection) -> None:
    assert await migrate.is_current(conn) is True
    await conn.execute("DELETE FROM schema_migrations WHERE version = $1", migrate.latest_version())
    assert await migrate.is_current(conn) is False


async def test_is_current_false_with_empty_migrations_table(empty_db_url: str) -> None:
    conn = await asyncpg.connect(empty_db_url)
    try:
        await conn.execute("CREATE TABLE schema_migrations (version integer PRIMARY KEY)")
        assert await migrate.is_current(conn) is False
    finally:
        await conn.close()
