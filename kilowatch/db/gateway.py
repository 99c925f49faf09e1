"""The one database gateway: every connection is held here, every use of one is bounded in time.

Routes, the ingest writer and the background tasks never see a pool or a raw asyncpg error:

- `read()` lends a pooled connection for one request's work; acquiring it and everything done
  with it share one deadline (`DB_TIMEOUT_S`), and the server enforces the same bound per
  statement (`statement_timeout`), so a frozen database answers 503 in about a second and a
  runaway query cannot outlive its request.
- `flush()` lends one of the group-commit writer's own connections (generic plans, no pool
  round trips) under the flush deadline (`FLUSH_TIMEOUT_S`).
- `background()` lends a connection of the small pool of maintenance and the rollup refresher,
  under a deadline its caller chooses, with a short `lock_timeout`.

A connection whose link failed, timed out or was cancelled mid-statement is terminated, never
reused (its state is unknown). PostgreSQL errors become Kilowatch errors by SQLSTATE class
(`translate`), are logged once here with their SQLSTATE, and an outage is logged when it starts,
at most every `_OUTAGE_LOG_EVERY_S` while it lasts, and when it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from kilowatch import errors
from kilowatch.db.memo import Memo
from kilowatch.settings import Settings

log = logging.getLogger(__name__)

Conn: TypeAlias = asyncpg.Connection | PoolConnectionProxy
Role = Literal["read", "write", "background"]

# The link to the database failed or did not answer: what the server did with the last
# statement, and what state the connection is in, are unknown.
LINK_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    asyncpg.PostgresConnectionError,
)
# The server is there but refuses work for now (starting, shutting down, out of connections).
_REFUSING = (
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
)
_OUTAGE_LOG_EVERY_S = 10.0
# The background role's connections serve a refresher pass every ROLLUP_INTERVAL_S (kept warm)
# and a maintenance pass an hour (closed soon after): idle servers hold none of them for long
# (a bench's dozen servers held a third of PostgreSQL 15's 100 connections that way).
BACKGROUND_IDLE_S = 30.0
_CUT_GRACE_S = 0.1


class RowsRefused(errors.InvalidInput):
    """The database refused the data (a check or range it enforces)."""

    def __init__(self, sqlstate: str, message: str) -> None:
        self.sqlstate = sqlstate
        super().__init__(f"the database refused the data ({sqlstate}): {message}")


def translate(exc: BaseException) -> errors.KilowatchError | None:
    """The Kilowatch error a database failure means, or None when it is not a database error."""
    if isinstance(exc, (*LINK_ERRORS, *_REFUSING)):
        return errors.DatabaseUnavailable()
    if not isinstance(exc, asyncpg.PostgresError):
        return None
    state = exc.sqlstate or ""
    if isinstance(exc, asyncpg.QueryCanceledError):  # statement_timeout (or a cancel)
        return errors.ServiceUnavailable("the database did not finish in time; retry later")
    if state.startswith(("40", "55", "53")):  # serialization, lock timeout, resources
        return errors.ServiceUnavailable(f"the database is busy ({state}); retry later")
    if state.startswith(("22", "23")):  # data exception, integrity violation
        return RowsRefused(state, exc.args[0] if exc.args else type(exc).__name__)
    return errors.KilowatchError(f"database error {state}")


@dataclass(frozen=True)
class _RoleConfig:
    application_name: str
    deadline_s: float
    lock_timeout_ms: int
    generic_plans: bool = False

    def server_settings(self) -> dict[str, str]:
        settings = {
            "application_name": self.application_name,
            # The server gives up at the same bound as the client, so nothing outlives a request
            # whose client gave up (a terminated connection's backend runs on until it writes).
            "statement_timeout": str(int(self.deadline_s * 1000)),
            "lock_timeout": str(self.lock_timeout_ms),
            "idle_in_transaction_session_timeout": str(int(max(self.deadline_s, 10) * 1000)),
        }
        if self.generic_plans:
            # The writer's statement is the same every time; re-planning it cost more than
            # executing a small batch.
            settings["plan_cache_mode"] = "force_generic_plan"
        return settings


class _Outage:
    """Logs an outage once when it starts, rarely while it lasts, and once when it ends."""

    def __init__(self, observer: Callable[[str], None] | None) -> None:
        self._observer = observer
        self._since: float | None = None
        self._failures = 0
        self._last_log = 0.0

    def failed(self, exc: BaseException, role: Role) -> None:
        if self._observer:
            self._observer(type(exc).__name__)
        now = time.monotonic()
        self._failures += 1
        if self._since is None:
            self._since, self._last_log = now, now
            log.error("database unavailable", extra={"role": role, "cause": _cause(exc)})
        elif now - self._last_log >= _OUTAGE_LOG_EVERY_S:
            self._last_log = now
            log.error(
                "database still unavailable",
                extra={
                    "role": role,
                    "cause": _cause(exc),
                    "failures": self._failures,
                    "seconds": round(now - self._since, 1),
                },
            )

    def succeeded(self) -> None:
        if self._since is not None:
            log.warning(
                "database available again",
                extra={
                    "failures": self._failures,
                    "seconds": round(time.monotonic() - self._since, 1),
                },
            )
            self._since, self._failures = None, 0

    @property
    def down(self) -> bool:
        return self._since is not None


def _terminate(conn: Conn) -> None:
    """Closes the connection's socket now (idempotent; a released proxy is left alone)."""
    with contextlib.suppress(asyncpg.InterfaceError):
        conn.terminate()


def _broken(exc: BaseException) -> bool:
    return isinstance(exc, (*LINK_ERRORS, asyncio.CancelledError))


def _cause(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Gateway:
    """Owns the pools and the writer's connections of one process (one per app)."""

    def __init__(self, settings: Settings, *, observer: Callable[[str], None] | None = None):
        assert settings.database_url, "database_url is set by the CLI or the environment"
        self.settings = settings
        self._url = settings.database_url
        self._roles: dict[Role, _RoleConfig] = {
            "read": _RoleConfig("kilowatch", settings.db_timeout_s, 1000),
            "write": _RoleConfig("kilowatch-writer", settings.flush_timeout_s, 1000, True),
            "background": _RoleConfig("kilowatch-background", settings.background_timeout_s, 1000),
        }
        self._pools: dict[Role, asyncpg.Pool] = {}
        self._idle_writers: list[asyncpg.Connection] = []
        self._lent: set[Conn] = set()  # connections a caller holds right now
        self._outage = _Outage(observer)
        self._closed = False
        # Fleet-wide results of windows read from rollup rows alone (kilowatch/db/memo.py).
        self.memo = Memo(settings.read_memo_size)

    async def start(self) -> None:
        """Creates the pools; they connect lazily, so this succeeds while the database is down."""
        sizes = {"read": self.settings.pool_size, "write": self.settings.pool_size, "background": 2}
        for role, size in sizes.items():
            config = self._roles[role]  # type: ignore[index]
            self._pools[role] = await asyncpg.create_pool(  # type: ignore[index]
                self._url,
                min_size=0,
                max_size=size,
                timeout=self.settings.connect_timeout_s,
                max_inactive_connection_lifetime=(
                    min(self.settings.pool_idle_s, BACKGROUND_IDLE_S)
                    if role == "background"
                    else self.settings.pool_idle_s
                ),
                server_settings=config.server_settings(),
                reset=_keep_session,
                # Each statement gives up client-side at its server's statement_timeout: a
                # request with a longer deadline (the fleet-wide reads) still learns of a frozen
                # link at its first statement.
                command_timeout=config.deadline_s,
            )

    @property
    def down(self) -> bool:
        """True from a failure that means the database is unreachable until the next success."""
        return self._outage.down

    @contextlib.asynccontextmanager
    async def read(self, deadline_s: float | None = None) -> AsyncIterator[Conn]:
        """A connection for one request's reads (and small writes), under DB_TIMEOUT_S or a
        longer `deadline_s` for the request (each statement stays under DB_TIMEOUT_S)."""
        async with self._lend("read", deadline_s or self._roles["read"].deadline_s) as conn:
            yield conn

    @contextlib.asynccontextmanager
    async def write(self) -> AsyncIterator[Conn]:
        """A pooled writer connection (the per-event baseline), under FLUSH_TIMEOUT_S."""
        async with self._lend("write", self._roles["write"].deadline_s) as conn:
            yield conn

    @contextlib.asynccontextmanager
    async def background(self, deadline_s: float | None = None) -> AsyncIterator[Conn]:
        """A connection for maintenance or the refresher, under `deadline_s`."""
        deadline = deadline_s or self._roles["background"].deadline_s
        async with self._lend("background", deadline) as conn:
            yield conn

    @contextlib.asynccontextmanager
    async def flush(self) -> AsyncIterator[asyncpg.Connection]:
        """One of the group-commit writer's own connections, under FLUSH_TIMEOUT_S.

        Holding them, rather than borrowing from a pool per flush, saves the acquire/release
        work (a third of a small flush's client CPU here).
        """
        config = self._roles["write"]
        conn: asyncpg.Connection | None = None
        try:
            with self._cut_at(config.deadline_s) as hold:
                async with asyncio.timeout(config.deadline_s):
                    conn = await self._take_writer(config)
                    hold(conn)
                    yield conn
        except BaseException as exc:
            replacement = self._failed(exc, "write", conn)
            if replacement is exc:
                raise
            raise replacement from exc
        else:
            self._outage.succeeded()
            if self._closed:
                conn.terminate()
            else:
                self._idle_writers.append(conn)

    async def _take_writer(self, config: _RoleConfig) -> asyncpg.Connection:
        while self._idle_writers:
            conn = self._idle_writers.pop()
            if not conn.is_closed():
                return conn
        return await asyncpg.connect(
            self._url,
            timeout=self.settings.connect_timeout_s,
            server_settings=config.server_settings(),
        )

    @contextlib.contextmanager
    def _cut_at(self, deadline_s: float) -> Iterator[Callable[[Conn], None]]:
        """Yields `hold(conn)`: a held connection is terminated when `deadline_s` passes, or
        the gateway closes, while it is still lent.

        The deadline's cancellation alone is not enough: a statement cancelled on a frozen
        link leaves asyncpg waiting for its cancel request to be answered, and the ROLLBACK of
        the caller's `async with conn.transaction()` waits for that, unbounded. Cut, every
        wait on the connection ends at once (with a link error).
        """
        held: list[Conn] = []

        def hold(conn: Conn) -> None:
            held.append(conn)
            self._lent.add(conn)

        def cut() -> None:
            for conn in held:
                _terminate(conn)

        # Just after the deadline's own cancellation, so that stays what a caller sees unless
        # the connection is stuck.
        timer = asyncio.get_running_loop().call_later(deadline_s + _CUT_GRACE_S, cut)
        try:
            yield hold
        finally:
            timer.cancel()
            self._lent.difference_update(held)

    @contextlib.asynccontextmanager
    async def _lend(self, role: Role, deadline_s: float) -> AsyncIterator[Conn]:
        pool = self._pools[role]
        conn: PoolConnectionProxy | None = None
        try:
            with self._cut_at(deadline_s) as hold:
                async with asyncio.timeout(deadline_s):
                    # Waiting for a connection is waiting for the database: a request with a
                    # longer deadline for its work still waits at most its role's deadline.
                    conn = await pool.acquire(timeout=min(deadline_s, self._roles[role].deadline_s))
                    hold(conn)
                    yield conn
        except BaseException as exc:
            replacement = self._failed(exc, role, conn, pool)
            if conn is not None and not _broken(exc):
                await _release(pool, conn)  # the statement failed, the session is fine
            if replacement is exc:
                raise
            raise replacement from exc
        else:
            self._outage.succeeded()
            await _release(pool, conn)

    def _failed(
        self, exc: BaseException, role: Role, conn: Conn | None, pool: asyncpg.Pool | None = None
    ) -> BaseException:
        """What to raise instead of `exc`, after dealing with the connection it leaves behind."""
        if conn is not None:
            if _broken(exc):
                # release() would cancel the statement and reset the session over the same
                # dead link, and make the caller wait a second time.
                _terminate(conn)
            elif pool is None and not conn.is_closed():
                self._idle_writers.append(conn)  # type: ignore[arg-type]
        if isinstance(exc, asyncio.CancelledError):
            return exc
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            # The caller was cancelled (shutdown) and the connection was cut under its
            # rollback: the cancellation, not the link error it caused, is what it must see.
            return asyncio.CancelledError()
        translated = translate(exc)
        if translated is None:
            return exc  # not a database error: the caller's own (NotFound, a bug, ...)
        if isinstance(translated, errors.DatabaseUnavailable):
            if isinstance(exc, TimeoutError):
                # No answer in time: the idle connections to the same server are suspect too;
                # replaced, the next requests learn within CONNECT_TIMEOUT_S if it is back.
                self._expire()
            self._outage.failed(exc, role)
            translated.retry_after = self.settings.retry_after_s
        elif isinstance(translated, errors.ServiceUnavailable):
            log.warning("database busy", extra={"role": role, "cause": _cause(exc)})
            translated.retry_after = self.settings.retry_after_s
        elif not isinstance(translated, RowsRefused):  # refused data: its caller reports it
            log.error(
                "database error",
                extra={
                    "role": role,
                    "sqlstate": getattr(exc, "sqlstate", None),
                    "cause": _cause(exc),
                },
            )
        return translated

    def _expire(self) -> None:
        while self._idle_writers:
            self._idle_writers.pop().terminate()
        for pool in self._pools.values():
            _spawn(pool.expire_connections())

    async def close(self, timeout: float = 2.0) -> None:
        """Closes everything at once; connections that do not close within `timeout` (a frozen
        link: each would wait for the server's goodbye) are cut."""
        self._closed = True
        writers, self._idle_writers = self._idle_writers, []
        # Whoever still holds one was cancelled and is stuck on it (a frozen link): cut.
        for conn in list(self._lent):
            _terminate(conn)

        async def close(closable: asyncpg.Connection | asyncpg.Pool) -> None:
            try:
                await asyncio.wait_for(closable.close(), timeout=timeout)
            except (Exception, asyncio.CancelledError):
                closable.terminate()

        closables: list[asyncpg.Connection | asyncpg.Pool] = [*writers, *self._pools.values()]
        await asyncio.gather(*map(close, closables))


async def _keep_session(conn: Any) -> None:
    """Replaces asyncpg's reset query on release (one more round trip per borrow).

    asyncpg still rolls back an open transaction first. The reset query itself (unlisten, close
    cursors, reset settings, release session advisory locks) has nothing to undo here: the app
    never LISTENs, holds cursors past a transaction, SETs session settings or takes session
    locks (its advisory locks are transaction-scoped).
    """


async def _release(pool: asyncpg.Pool, conn: PoolConnectionProxy) -> None:
    release = asyncio.ensure_future(pool.release(conn))
    # If our caller is cancelled now, the hand-back goes on, bounded by asyncpg's own timeout.
    release.add_done_callback(_retrieve)
    # The job is over (a write has committed): a reset that fails costs only the connection,
    # which release() then terminates, and must not turn the job's result into an error.
    with contextlib.suppress(*LINK_ERRORS, asyncpg.PostgresError):
        await asyncio.shield(release)


_background: set[asyncio.Future[Any]] = set()


def _spawn(awaitable: Any) -> None:
    task = asyncio.ensure_future(awaitable)
    _background.add(task)
    task.add_done_callback(_background.discard)
    task.add_done_callback(_retrieve)


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


async def connect(settings: Settings) -> asyncpg.Connection:
    """A plain connection for the CLI's one-off jobs (migrate, backfill), not for the app."""
    assert settings.database_url, "database_url is set by the CLI or the environment"
    return await asyncpg.connect(settings.database_url, timeout=max(settings.connect_timeout_s, 5))
