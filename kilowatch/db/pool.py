"""asyncpg pool creation with the timeouts that keep requests from hanging on a dead database."""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import asyncpg

from kilowatch.settings import Settings

# The link to the database failed or did not answer: what the server did with the last statement,
# and what state the connection is in, are unknown.
LINK_ERRORS = (OSError, TimeoutError, asyncpg.InterfaceError, asyncpg.InternalClientError,
               asyncpg.PostgresConnectionError)


async def create(settings: Settings, *, min_size: int = 0) -> asyncpg.Pool:
    """A pool that connects lazily, so the app starts (and /readyz says 503) while the DB is down."""
    assert settings.database_url, "database_url is set by the CLI or the environment"
    pool = await asyncpg.create_pool(
        settings.database_url,
        min_size=min_size,
        max_size=settings.pool_size,
        timeout=settings.connect_timeout_s,
        max_inactive_connection_lifetime=300,
        server_settings={"application_name": "kilowatch"},
        reset=_keep_session,
    )
    assert pool is not None
    return pool


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Replaces asyncpg's reset query on release (one more round trip per borrow).

    asyncpg still rolls back an open transaction first. The reset query itself (unlisten, close
    cursors, reset settings, release session advisory locks) has nothing to undo here: the app
    never LISTENs, holds cursors past a transaction, SETs session settings or takes session
    locks (its advisory locks are transaction-scoped).
    """


@contextlib.asynccontextmanager
async def borrowed(pool: asyncpg.Pool, *, timeout: float) -> AsyncIterator[asyncpg.Connection]:
    """A pooled connection for one job; getting it and handing it back are bounded by `timeout`.

    When the job fails on the link (timed out, cancelled, connection lost) the connection is
    terminated, not released: release() would cancel the statement and reset the session over
    the same dead link, and make the caller wait a second time.
    """
    conn = await pool.acquire(timeout=timeout)
    try:
        yield conn
    except (*LINK_ERRORS, asyncio.CancelledError):
        # InterfaceError: asyncpg saw the link die first and has already taken the connection back.
        with contextlib.suppress(asyncpg.InterfaceError):
            conn.terminate()
        raise
    except BaseException:
        await _release(pool, conn)
        raise
    await _release(pool, conn)


async def _release(pool: asyncpg.Pool, conn: asyncpg.Connection) -> None:
    release = asyncio.ensure_future(pool.release(conn))
    # If our caller is cancelled (its deadline passed) the hand-back goes on, bounded by its own
    # timeout, as asyncpg shields it; its outcome is then retrieved here, not logged as lost.
    release.add_done_callback(_retrieve)
    # The job is over (a write has committed): a reset that fails costs only the connection,
    # which release() then terminates, and must not turn the job's result into an error.
    with contextlib.suppress(*LINK_ERRORS, asyncpg.PostgresError):
        await asyncio.shield(release)


def _retrieve(task: asyncio.Future[None]) -> None:
    if not task.cancelled():
        task.exception()


async def connect(settings: Settings) -> asyncpg.Connection:
    assert settings.database_url, "database_url is set by the CLI or the environment"
    return await asyncpg.connect(settings.database_url, timeout=max(settings.connect_timeout_s, 5))
