"""Group commit: concurrent submitters share one flush; each learns its own result after COMMIT.

No SQL or HTTP here: the sink does the writing. Flushes start as soon as a flush slot is free
(natural batching: while one transaction waits for fsync, the next batch accumulates), or when
`max_events` are pending; `linger_s` optionally waits a little longer for company.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from kilowatch.errors import DatabaseUnavailable, Overloaded
from kilowatch.ingest.schemas import Outcome, Row

log = logging.getLogger(__name__)


class Sink(Protocol):
    def __call__(self, rows: Sequence[Row]) -> Awaitable[list[Outcome]]: ...


class FlushObserver(Protocol):
    """Told about queue depth and flushes (kilowatch.metrics); called per request and per flush."""

    def queue_depth(self, events: int) -> None: ...
    def flushed(self, events: int, seconds: float) -> None: ...
    def flush_failed(self, events: int) -> None: ...


@dataclass
class _Pending:
    rows: Sequence[Row]
    future: asyncio.Future[list[Outcome]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


@dataclass
class FlushStats:
    flushes: int = 0
    rows: int = 0
    failures: int = 0


class Batcher:
    def __init__(
        self,
        sink: Sink,
        *,
        max_events: int = 2000,
        max_queued: int = 50_000,
        concurrency: int = 2,
        linger_s: float = 0.0,
        retry_after: int = 1,
        observer: FlushObserver | None = None,
    ) -> None:
        self._sink = sink
        self._observer = observer
        self._max_events = max_events
        self._max_queued = max_queued
        self._linger_s = linger_s
        self._retry_after = retry_after
        self._slots = asyncio.Semaphore(concurrency)
        self._pending: deque[_Pending] = deque()
        self._pending_rows = 0
        self._queued = 0  # rows submitted and not yet resolved (pending + in flight)
        self._wakeup = asyncio.Event()
        self._full = asyncio.Event()
        self._closing = False
        self._flushes: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self.stats = FlushStats()

    @property
    def queued(self) -> int:
        return self._queued

    def start(self) -> None:
        self._loop_task = asyncio.create_task(self._run(), name="kilowatch-batcher")

    async def submit(self, rows: Sequence[Row]) -> list[Outcome]:
        """Queues rows; returns, after their COMMIT, which were new. Raises Overloaded when full."""
        if not rows:
            return []
        if self._closing:
            raise Overloaded("the service is shutting down", retry_after=self._retry_after)
        if self._queued + len(rows) > self._max_queued:
            raise Overloaded(retry_after=self._retry_after)
        item = _Pending(rows)
        self._pending.append(item)
        self._queued += len(rows)
        self._pending_rows += len(rows)
        if self._observer:
            self._observer.queue_depth(self._queued)
        if self._pending_rows >= self._max_events:
            self._full.set()
        self._wakeup.set()
        # Each submitter has its own future: if the client goes away and its task is cancelled,
        # only that future is cancelled; the rows stay in the flush and _flush skips it.
        return await item.future

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            if self._linger_s and not self._full.is_set() and not self._closing:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._linger_s):
                        await self._full.wait()
            await self._slots.acquire()
            batch = self._take()
            if not batch:
                self._slots.release()
                continue
            task = asyncio.create_task(self._flush(batch))
            self._flushes.add(task)
            task.add_done_callback(self._flushes.discard)

    def _take(self) -> list[_Pending]:
        batch: list[_Pending] = []
        size = 0
        while self._pending and (
            not batch or size + len(self._pending[0].rows) <= self._max_events
        ):
            item = self._pending.popleft()
            batch.append(item)
            size += len(item.rows)
        self._pending_rows -= size
        if not self._pending:
            self._wakeup.clear()
            self._full.clear()
        return batch

    async def _flush(self, batch: list[_Pending]) -> None:
        rows = [row for item in batch for row in item.rows]
        started = time.perf_counter()
        try:
            results = await self._sink(rows)
        except (Exception, asyncio.CancelledError) as exc:
            self.stats.failures += 1
            if self._observer:
                self._observer.flush_failed(len(rows))
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(exc)
            if isinstance(exc, DatabaseUnavailable):
                # Rows that queued behind it would only meet the same outage after a deadline
                # of their own: told now, each request has its 503 within one FLUSH_TIMEOUT_S.
                self._fail_pending(exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
        else:
            self.stats.flushes += 1
            self.stats.rows += len(rows)
            if self._observer:
                self._observer.flushed(len(rows), time.perf_counter() - started)
            start = 0
            for item in batch:
                end = start + len(item.rows)
                if not item.future.done():
                    item.future.set_result(results[start:end])
                start = end
        finally:
            self._queued -= len(rows)
            if self._observer:
                self._observer.queue_depth(self._queued)
            self._slots.release()

    def _fail_pending(self, exc: BaseException) -> None:
        failed, self._pending = self._pending, deque()
        for item in failed:
            self._queued -= len(item.rows)
            self._pending_rows -= len(item.rows)
            if not item.future.done():
                item.future.set_exception(exc)
        self._wakeup.clear()
        self._full.clear()

    async def close(self, timeout: float = 10.0) -> None:
        """Stops taking rows, flushes what is queued (up to `timeout`), then stops."""
        self._closing = True
        self._full.set()
        try:
            async with asyncio.timeout(timeout):
                while self._pending or self._flushes:
                    self._wakeup.set()
                    if self._flushes:
                        await asyncio.wait(set(self._flushes))
                    else:
                        await asyncio.sleep(0.005)  # let the loop take what is pending
        except TimeoutError:
            log.warning("batcher closed with %d rows unflushed", self._queued)
        finally:
            if self._loop_task:
                self._loop_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._loop_task
            self._fail_pending(Overloaded("the service is shutting down"))
