"""Memo.shared: a result is computed once for the reads that want it at the same time."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from kilowatch.db.memo import Memo


class Computation:
    """A computation that runs until released, counting how often it was started."""

    def __init__(self, value: Any = None, error: Exception | None = None) -> None:
        self.value, self.error = value, error
        self.started = 0
        self.release = asyncio.Event()

    async def __call__(self) -> Any:
        self.started += 1
        await self.release.wait()
        if self.error is not None:
            raise self.error
        return self.value


async def test_concurrent_reads_of_a_key_share_one_computation_then_it_is_kept() -> None:
    memo, computation = Memo(4), Computation({"v": 1})
    reads = [asyncio.create_task(memo.shared("k", computation)) for _ in range(3)]
    await asyncio.sleep(0)
    computation.release.set()
    assert await asyncio.gather(*reads) == [{"v": 1}] * 3
    assert computation.started == 1 and memo.joined == 2
    assert await memo.shared("k", computation) == {"v": 1}
    assert computation.started == 1 and memo.hits == 1


async def test_waiters_compute_on_their_own_when_the_first_computation_fails() -> None:
    memo = Memo(4)
    failing, own = Computation(error=RuntimeError("boom")), Computation("mine")
    first = asyncio.create_task(memo.shared("k", failing))
    await asyncio.sleep(0)
    second = asyncio.create_task(memo.shared("k", own))
    await asyncio.sleep(0)
    assert own.started == 0  # waiting for the first
    failing.release.set()
    with pytest.raises(RuntimeError):
        await first
    own.release.set()
    assert await second == "mine"
    assert own.started == 1 and memo.joined == 0


async def test_a_cancelled_computation_leaves_its_waiters_to_compute() -> None:
    memo = Memo(4)
    stuck, own = Computation("never"), Computation("mine")
    first = asyncio.create_task(memo.shared("k", stuck))
    await asyncio.sleep(0)
    second = asyncio.create_task(memo.shared("k", own))
    await asyncio.sleep(0)
    first.cancel()
    own.release.set()
    assert await second == "mine"
    assert first.cancelled()


async def test_a_cancelled_waiter_does_not_cancel_the_computation() -> None:
    memo, computation = Memo(4), Computation(7)
    first = asyncio.create_task(memo.shared("k", computation))
    await asyncio.sleep(0)
    waiter = asyncio.create_task(memo.shared("k", computation))
    await asyncio.sleep(0)
    waiter.cancel()
    await asyncio.sleep(0)
    computation.release.set()
    assert await first == 7
    assert waiter.cancelled()


@pytest.mark.parametrize(("key", "size"), [(None, 4), ("k", 0)])
async def test_an_unkeyed_read_or_a_memo_of_size_0_computes_every_time(
    key: str | None, size: int
) -> None:
    memo, computation = Memo(size), Computation(1)
    computation.release.set()
    assert [await memo.shared(key, computation) for _ in range(2)] == [1, 1]
    assert computation.started == 2 and len(memo) == 0
