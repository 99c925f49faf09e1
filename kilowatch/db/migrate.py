"""Versioned SQL migrations, each in one transaction under an advisory lock."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources

import asyncpg

from kilowatch.db.gateway import Conn

# Any constant works; it only has to be the same in every process that migrates.
_LOCK_KEY = 0x6B696C6F  # "kilo"
_FILE = re.compile(r"^(\d{4})_(\w+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations() -> list[Migration]:
    found = []
    for entry in resources.files("kilowatch.db.migrations").iterdir():
        match = _FILE.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    return sorted(found, key=lambda m: m.version)


def latest_version() -> int:
    return migrations()[-1].version


def fingerprint() -> str:
    """A short digest of every migration's text: what a database made by them looks like."""
    digest = hashlib.sha256()
    for migration in migrations():
        digest.update(migration.sql.encode())
    return digest.hexdigest()[:8]


async def migrate(conn: asyncpg.Connection) -> list[int]:
    """Applies pending migrations; safe when several processes run it at once."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version    integer PRIMARY KEY,
                   name       text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
    applied: list[int] = []
    for migration in migrations():
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
            done = await conn.fetchval(
                "SELECT true FROM schema_migrations WHERE version = $1", migration.version
            )
            if done:
                continue
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                migration.version,
                migration.name,
            )
            applied.append(migration.version)
    return applied


async def is_current(conn: Conn) -> bool:
    """True when every migration this code knows is applied."""
    if await conn.fetchval("SELECT to_regclass('schema_migrations') IS NULL"):
        return False
    version = await conn.fetchval("SELECT max(version) FROM schema_migrations")
    return version is not None and version >= latest_version()
