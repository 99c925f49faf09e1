"""The ingest writer behind the route: group commit, or a baseline the benchmark compares with."""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

import asyncpg

from kilowatch.db import pool
from kilowatch.errors import DatabaseUnavailable
from kilowatch.ingest.batcher import Batcher, FlushObserver
from kilowatch.ingest.schemas import Row
from kilowatch.ingest.writer import write_batch
from kilowatch.settings import Settings

# Errors that mean "the database is not there (now)": answered with 503, retried by clients.
DB_DOWN = (*pool.LINK_ERRORS, asyncpg.PostgresError)


class FlushConnections:
    """The group-commit writer's own connections, at most one per flush slot.

    Holding them, rather than borrowing from the pool per flush, saves the acquire/release work
    (a third of a small flush's client CPU here), and lets them use generic plans: the writer's
    statement is the same every time, and re-planning it cost more than executing a small batch.
    A connection whose statement failed on the link, timed out or was cancelled is terminated,
    never reused: its state is unknown.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._idle: list[asyncpg.Connection] = []

    async def take(self) -> asyncpg.Connection:
        while self._idle:
            conn = self._idle.pop()
            if not conn.is_closed():
                return conn
        assert self._settings.database_url
        return await asyncpg.connect(
            self._settings.database_url, timeout=self._settings.connect_timeout_s,
            server_settings={"application_name": "kilowatch-writer",
                             "plan_cache_mode": "force_generic_plan"})

    def give_back(self, conn: asyncpg.Connection) -> None:
        self._idle.append(conn)

    def discard_idle(self) -> None:
        while self._idle:
            self._idle.pop().terminate()

    async def close(self) -> None:
        while self._idle:
            with contextlib.suppress(*pool.LINK_ERRORS):
                await self._idle.pop().close(timeout=self._settings.connect_timeout_s)


class Ingestor:
    def __init__(self, pool: asyncpg.Pool, settings: Settings,
                 observer: FlushObserver | None = None) -> None:
        self._pool = pool
        self._settings = settings
        self._connections = FlushConnections(settings)
        self.batcher = Batcher(
            self._flush,
            max_events=settings.flush_max_events,
            max_queued=settings.max_queued_events,
            concurrency=settings.flush_concurrency,
            linger_s=settings.flush_linger_ms / 1000,
            retry_after=settings.retry_after_s,
            observer=observer,
        )

    @property
    def settings(self) -> Settings:
        return self._settings

    def start(self) -> None:
        self.batcher.start()

    async def close(self) -> None:
        await self.batcher.close()
        await self._connections.close()

    async def _flush(self, rows: Sequence[Row]) -> list[bool]:
        """Group commit's sink: one statement on a flush connection, bounded by flush_timeout_s."""
        try:
            conn = await self._connections.take()
        except DB_DOWN as exc:
            raise DatabaseUnavailable(retry_after=self._settings.retry_after_s) from exc
        try:
            async with asyncio.timeout(self._settings.flush_timeout_s):
                result = await write_batch(conn, rows)
        except (*pool.LINK_ERRORS, asyncio.CancelledError) as exc:
            conn.terminate()
            if isinstance(exc, TimeoutError):
                # No answer in time: the idle connections to the same server are suspect too;
                # the next flushes learn in connect_timeout_s whether it is back.
                self._connections.discard_idle()
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise DatabaseUnavailable(retry_after=self._settings.retry_after_s) from exc
        except asyncpg.PostgresError as exc:
            self._connections.give_back(conn)  # the statement failed, the session is fine
            raise DatabaseUnavailable(retry_after=self._settings.retry_after_s) from exc
        self._connections.give_back(conn)
        return result

    async def _write(self, rows: Sequence[Row]) -> list[bool]:
        """The per_event baseline's write: one transaction on a pooled connection."""
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
