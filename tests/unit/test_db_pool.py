"""pool.borrowed with a fake pool: link failures drop the connection, finished jobs keep their result."""
from __future__ import annotations

import asyncio
import gc
from typing import Any

import asyncpg
import pytest

from kilowatch.db import pool


class FakeConnection:
    def __init__(self, *, detached: bool = False) -> None:
        self.terminated = False
        self.detached = detached

    def terminate(self) -> None:
        if self.detached:  # what a pool proxy does once asyncpg has taken the connection back
            raise asyncpg.InterfaceError("connection has been released back to the pool")
        self.terminated = True


class FakePool:
    """Hands out one connection; release() can fail, or wait until the test lets it finish."""

    def __init__(self, conn: FakeConnection | None = None, *, release_error: BaseException | None = None) -> None:
        self.conn = conn or FakeConnection()
        self.released = False
        self.release_error = release_error
        self.release_started = asyncio.Event()
        self.release_may_finish = asyncio.Event()
        self.release_may_finish.set()

    async def acquire(self, *, timeout: float | None = None) -> FakeConnection:
        return self.conn

    async def release(self, conn: FakeConnection) -> None:
        # As asyncpg does: the hand-back goes on when its caller is cancelled.
        await asyncio.shield(self._release())

    async def _release(self) -> None:
        self.release_started.set()
        await self.release_may_finish.wait()
        if self.release_error is not None:
            raise self.release_error
        self.released = True


def borrowed(fake: FakePool) -> Any:
    return pool.borrowed(fake, timeout=1)  # type: ignore[arg-type]


async def test_connection_goes_back_to_the_pool_after_the_job() -> None:
    fake = FakePool()
    async with borrowed(fake) as conn:
        assert conn is fake.conn
    assert fake.released and not fake.conn.terminated


@pytest.mark.parametrize("error", [TimeoutError(), ConnectionResetError(), asyncpg.InterfaceError("x"),
                                   asyncpg.ConnectionDoesNotExistError("x")])
async def test_link_failure_terminates_the_connection_instead_of_resetting_it(error: Exception) -> None:
    fake = FakePool()
    with pytest.raises(type(error)):
        async with borrowed(fake):
            raise error
    assert fake.conn.terminated and not fake.released


async def test_cancelled_job_terminates_the_connection() -> None:
    fake = FakePool()
    entered = asyncio.Event()

    async def job() -> None:
        async with borrowed(fake):
            entered.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(job())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert fake.conn.terminated and not fake.released


async def test_connection_already_taken_back_by_asyncpg_keeps_the_original_error() -> None:
    fake = FakePool(FakeConnection(detached=True))
    with pytest.raises(TimeoutError):
        async with borrowed(fake):
            raise TimeoutError


@pytest.mark.parametrize("error", [ValueError("app"), asyncpg.UniqueViolationError("sql")])
async def test_errors_that_leave_the_link_usable_release_the_connection(error: Exception) -> None:
    fake = FakePool()
    with pytest.raises(type(error)):
        async with borrowed(fake):
            raise error
    assert fake.released and not fake.conn.terminated


async def test_failed_hand_back_does_not_fail_a_finished_job() -> None:
    fake = FakePool(release_error=TimeoutError())
    async with borrowed(fake):
        result = "committed"
    assert result == "committed" and not fake.released


async def test_caller_cancelled_during_hand_back_leaves_no_unretrieved_error() -> None:
    unretrieved: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: unretrieved.append(context))
    try:
        fake = FakePool(release_error=TimeoutError())
        fake.release_may_finish.clear()

        async def job() -> None:
            async with borrowed(fake):
                pass

        task = asyncio.create_task(job())
        await fake.release_started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        fake.release_may_finish.set()  # the hand-back goes on after the caller left, then fails
        for _ in range(5):
            await asyncio.sleep(0)
        gc.collect()
    finally:
        loop.set_exception_handler(previous)
    assert unretrieved == []
