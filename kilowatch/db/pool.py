"""asyncpg pool creation with the timeouts that keep requests from hanging on a dead database."""
from __future__ import annotations

import asyncpg

from kilowatch.settings import Settings


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
    )
    assert pool is not None
    return pool


async def connect(settings: Settings) -> asyncpg.Connection:
    assert settings.database_url, "database_url is set by the CLI or the environment"
    return await asyncpg.connect(settings.database_url, timeout=max(settings.connect_timeout_s, 5))
