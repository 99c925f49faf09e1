"""Group-commit batcher with a recording sink: explicit triggers, no sleeps-then-assert."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from kilowatch.errors import DatabaseUnavailable, Overloaded
from kilowatch.ingest.batcher import Batcher
from kilowatch.ingest.schemas import MeterRow, Row

T0 = datetime(2026, 11, 23, tzinfo=UTC)


def rows(n: int, prefix: str = "M") -> list[Row]:
    return [MeterRow(f"{prefix}{i}", T0, 1.0, 230.0) for i in range(n)]


class RecordingSink:
    """Records each flush; holds it until released so tests control when COMMIT happens."""

    def __init__(self, *, fail: Exception | None = None) -> None:
        self.flushes: list[list[Row]] = []
        self.release = asyncio.Event()
        self.entered = asyncio.Event()
        self.fail = fail

    async def __call__(self, batch: Sequence[Row]) -> list[bool]:
        self.flushes.append(list(batch))
        self.entered.set()
        await self.release.wait()
        if self.fail:
            raise self.fail
        return [i % 2 == 0 for i in range(len(batch))]


async def test_each_submitter_gets_its_own_slice_after_the_flush() -> None:
    sink = RecordingSink()
    batcher = Batcher(sink, max_events=100, concurrency=1)
    batcher.start()
    first = asyncio.create_task(batcher.submit(rows(1, "A")))
    await sink.entered.wait()  # first flush in flight, holding the only slot
    second = asyncio.create_task(batcher.submit(rows(3, "B")))
    third = asyncio.create_task(batcher.submit(rows(2, "C")))
    await asyncio.sleep(0)
    assert not second.done()
    sink.release.set()
    assert await first == [True]
    # B and C shared one flush: results [T, F, T | F, T] split per submitter.
    assert await second == [True, False, True]
    assert await third == [False, True]
    assert [len(f) for f in sink.flushes] == [1, 5]
    await batcher.close()


async def test_full_batch_is_split_at_max_events() -> None:
    sink = RecordingSink()
    sink.release.set()
    batcher = Batcher(sink, max_events=4, concurrency=1)
    submits = [batcher.submit(rows(2, f"R{i}")) for i in range(4)]
    batcher.start()
    await asyncio.gather(*submits)
    assert [len(f) for f in sink.flushes] == [4, 4]
    await batcher.close()


async def test_queue_bound_raises_overloaded_with_retry_after() -> None:
    sink = RecordingSink()
    batcher = Batcher(sink, max_events=10, max_queued=5, concurrency=1, retry_after=3)
    batcher.start()
    held = asyncio.create_task(batcher.submit(rows(4)))
    await sink.entered.wait()
    with pytest.raises(Overloaded) as info:
        await batcher.submit(rows(2))
    assert info.value.retry_after == 3 and info.value.status_code == 503
    sink.release.set()
    await held
    assert batcher.queued == 0
    assert await batcher.submit(rows(5)) is not None  # room again once committed
    await batcher.close()


async def test_flush_failure_fails_every_waiter_and_requeues_nothing() -> None:
    boom = ConnectionError("database went away")
    sink = RecordingSink(fail=boom)
    batcher = Batcher(sink, max_events=100, concurrency=1)
    batcher.start()
    a = asyncio.create_task(batcher.submit(rows(2)))
    await sink.entered.wait()
    b = asyncio.create_task(batcher.submit(rows(1)))
    await asyncio.sleep(0)
    sink.release.set()
    for task in (a, b):
        with pytest.raises(ConnectionError):
            await task
    assert len(sink.flushes) == 2 and batcher.queued == 0
    assert batcher.stats.failures == 2
    await batcher.close()


async def test_an_unavailable_database_fails_the_rows_queued_behind_the_flush_at_once() -> None:
    # They would meet the same outage after a deadline of their own: 503 within one deadline.
    down = DatabaseUnavailable()
    sink = RecordingSink(fail=down)
    batcher = Batcher(sink, max_events=100, concurrency=1)
    batcher.start()
    a = asyncio.create_task(batcher.submit(rows(2)))
    await sink.entered.wait()
    b = asyncio.create_task(batcher.submit(rows(1)))
    c = asyncio.create_task(batcher.submit(rows(3)))
    await asyncio.sleep(0)
    sink.release.set()
    for task in (a, b, c):
        with pytest.raises(DatabaseUnavailable):
            await task
    assert len(sink.flushes) == 1 and batcher.queued == 0
    sink.fail = None  # back: the next rows are flushed as usual
    assert await batcher.submit(rows(1)) == [True]
    assert len(sink.flushes) == 2
    await batcher.close()


async def test_cancelled_submitter_does_not_break_the_shared_flush() -> None:
    sink = RecordingSink()
    batcher = Batcher(sink, max_events=100, concurrency=1)
    batcher.start()
    hold = asyncio.create_task(batcher.submit(rows(1, "H")))
    await sink.entered.wait()
    leaver = asyncio.create_task(batcher.submit(rows(1, "L")))
    stayer = asyncio.create_task(batcher.submit(rows(1, "S")))
    await asyncio.sleep(0)
    leaver.cancel()
    sink.release.set()
    await hold
    assert await stayer == [False]
    assert [r[0] for r in sink.flushes[1]] == ["L0", "S0"]  # the leaver's row is still written
    await batcher.close()


async def test_close_drains_pending_rows_then_refuses_new_ones() -> None:
    sink = RecordingSink()
    sink.release.set()
    batcher = Batcher(sink, max_events=100, concurrency=1)
    pending = asyncio.create_task(batcher.submit(rows(3)))
    await asyncio.sleep(0)
    batcher.start()
    await batcher.close()
    assert await pending == [True, False, True]
    with pytest.raises(Overloaded):
        await batcher.submit(rows(1))
