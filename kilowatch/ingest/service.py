"""The ingest writer behind the route: group commit, or a baseline the benchmark compares with."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from kilowatch.db.gateway import Gateway, RowsRefused
from kilowatch.ingest.batcher import Batcher, FlushObserver
from kilowatch.ingest.schemas import Outcome, Refused, Row
from kilowatch.ingest.writer import write_batch
from kilowatch.settings import Settings

log = logging.getLogger(__name__)


class Ingestor:
    def __init__(
        self, gateway: Gateway, settings: Settings, observer: FlushObserver | None = None
    ) -> None:
        self._gateway = gateway
        self._settings = settings
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

    async def _flush(self, rows: Sequence[Row]) -> list[Outcome]:
        """Group commit's sink: one statement on a writer connection, under FLUSH_TIMEOUT_S.

        When the database refuses the data (a check, a day without a partition), the batch is
        split and each half written again until the refused rows are alone: the write is
        idempotent (the failed statement stored nothing) and the first copy of a key still
        wins, because the halves are written in order. Their flush-mates are stored.
        """
        try:
            async with self._gateway.flush() as conn:
                return list(await write_batch(conn, rows))
        except RowsRefused as exc:
            if len(rows) == 1:
                log.warning(
                    "row refused by the database",
                    extra={
                        "sqlstate": exc.sqlstate,
                        "cause": exc.message,
                        "row": _describe(rows[0]),
                    },
                )
                return [Refused(exc.message)]
        half = len(rows) // 2
        return [*await self._flush(rows[:half]), *await self._flush(rows[half:])]

    async def _write(self, rows: Sequence[Row]) -> list[bool]:
        """The per_event baseline's write: one transaction on a pooled writer connection."""
        async with self._gateway.write() as conn:
            return await write_batch(conn, rows)

    async def store(self, rows: Sequence[Row]) -> list[Outcome]:
        """Durably stores rows; True for each that was new. Raises ServiceUnavailable (503)."""
        mode = self._settings.writer
        if mode == "group":
            return await self.batcher.submit(rows)
        if mode == "per_event":
            return [new for row in rows for new in await self._write([row])]
        return [True] * len(rows)


def _describe(row: Row) -> str:
    return f"{type(row).__name__}({row[0]!r}, {row[1].isoformat()})"
