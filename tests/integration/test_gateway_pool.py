"""The gateway's pools give idle connections back to the database (POOL_IDLE_S)."""

from __future__ import annotations

import asyncio
import time

import asyncpg

from kilowatch.db.gateway import Gateway
from kilowatch.settings import Settings

DEADLINE_S = 30.0  # for the pool to close them; never reached when things work


async def _readers(conn: asyncpg.Connection, database: str) -> int:
    count: int = await conn.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND application_name = $2",
        database,
        "kilowatch",
    )
    return count


async def test_a_burst_of_reads_leaves_no_connection_open_after_pool_idle_s(db_url: str) -> None:
    gateway = Gateway(Settings(database_url=db_url, pool_size=4, pool_idle_s=0.5))
    watcher = await asyncpg.connect(db_url)
    database: str = await watcher.fetchval("SELECT current_database()")
    await gateway.start()
    try:
        held = asyncio.Event()

        async def read() -> None:
            async with gateway.read() as conn:
                await conn.fetchval("SELECT 1")
                await held.wait()

        burst = [asyncio.create_task(read()) for _ in range(4)]
        deadline = time.monotonic() + DEADLINE_S
        while await _readers(watcher, database) < 4 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert await _readers(watcher, database) == 4
        held.set()
        await asyncio.gather(*burst)
        while await _readers(watcher, database) > 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert await _readers(watcher, database) == 0
        # The pool opens one again when asked.
        async with gateway.read() as conn:
            assert await conn.fetchval("SELECT 2") == 2
    finally:
        await gateway.close()
        await watcher.close()
