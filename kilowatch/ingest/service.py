"""The ingest writer behind the route: group commit, or a baseline the benchmark compares with."""
from __future__ import annotations

import asyncio
from collections.abc import Sequence

import asyncpg

from kilowatch.db import pool
from kilowatch.errors import DatabaseUnavailable
from kilowatch.ingest.batcher import Batcher
from kilowatch.ingest.schemas import Row
from kilowatch.ingest.writer import write_batch
from kilowatch.settings import Settings

# Errors that mean "the database is not there (now)": answered with 503, retried by clients.
DB_DOWN = (*pool.LINK_ERRORS, asyncpg.PostgresError)


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

    @property
    def settings(self) -> Settings:
        return self._settings

    def start(self) -> None:
        self.batcher.start()

    async def close(self) -> None:
        await self.batcher.close()

    async def _write(self, rows: Sequence[Row]) -> list[bool]:
        # Connecting is bounded more tightly (connect_timeout_s) by the pool itself, so a database
        # that refuses or drops us fails fast. The deadline covers the statement, not the hand-back
        # after it: once committed, the batch is acknowledged even if the reset stalls.
        timeout = self._settings.flush_timeout_s
        try:
            async with pool.borrowed(self._pool, timeout=timeout) as conn:
                async with asyncio.timeout(timeout):
                    return await write_batch(conn, rows)
        except TimeoutError as exc:
            # No answer in time: the pool's idle connections to the same server are suspect too.
            # Replaced, the next flushes learn in connect_timeout_s whether it is back, instead of
            # each waiting out flush_timeout_s on another dead link.
            await self._pool.expire_connections()
            raise DatabaseUnavailable(retry_after=self._settings.retry_after_s) from exc
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
