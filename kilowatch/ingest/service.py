"""The ingest writer behind the route: group commit, or a baseline the benchmark compares with."""
from __future__ import annotations

import asyncio
from collections.abc import Sequence

import asyncpg

from kilowatch.errors import DatabaseUnavailable
from kilowatch.ingest.batcher import Batcher
from kilowatch.ingest.schemas import Row
from kilowatch.ingest.writer import write_batch
from kilowatch.settings import Settings

# Errors that mean "the database is not there (now)": answered with 503, retried by clients.
DB_DOWN = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


class Ingestor:
    def __init__(self, pool: asyncpg.Pool, settings: Settings) -> None:
        self._pool = pool
        self._settings = settings
        self.batcher = Batcher(
            self._write,
            max_events=settings.flush_max_events,
            max_queued=settings.max_queued_events,
            concurrency=settings.flush_concurrency,
            linger_s=settings.flush_linger_ms / 1000,
            retry_after=settings.retry_after_s,
        )

    def start(self) -> None:
        self.batcher.start()

    async def close(self) -> None:
        await self.batcher.close()

    async def _write(self, rows: Sequence[Row]) -> list[bool]:
        timeout = self._settings.flush_timeout_s
        try:
            async with self._pool.acquire(timeout=timeout) as conn:
                async with asyncio.timeout(timeout):
                    return await write_batch(conn, rows)
        except DB_DOWN as exc:
            raise DatabaseUnavailable(retry_after=self._settings.retry_after_s) from exc

    async def store(self, rows: Sequence[Row]) -> list[bool]:
        """Durably stores rows; True for each that was new. Raises ServiceUnavailable (503)."""
        mode = self._settings.writer
        if mode == "group":
            return await self.batcher.submit(rows)
        if mode == "per_event":
            return [new for row in rows for new in await self._write([row])]
        return [True] * len(rows)
