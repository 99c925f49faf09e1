"""Real-PostgreSQL fixtures: embedded 18 (or DATABASE_URL) and the local 15 when it answers.

Each test gets a fresh database cloned from a migrated template, dropped afterwards.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest

from kilowatch import cli
from kilowatch.bench.datasets import with_database
from kilowatch.db import embedded
from kilowatch.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
PG15_URL = os.environ.get("KILOWATCH_TEST_PG15_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _answers(url: str) -> bool:
    async def probe() -> bool:
        try:
            conn = await asyncpg.connect(url, timeout=2)
        except (TimeoutError, OSError, asyncpg.PostgresError):
            return False
        await conn.close()
        return True

    return asyncio.run(probe())


@pytest.fixture(autouse=True)
def _logs_land_in_their_test() -> Iterator[None]:
    # Log lines are written by a thread (kilowatch.logs): flushed before the test's output
    # capture ends, so they show with the test that logged them, not between tests.
    yield
    from kilowatch import logs

    logs._Writer.flush()


@pytest.fixture(scope="session")
def embedded_url() -> Iterator[str]:
    if os.environ.get("DATABASE_URL"):
        yield os.environ["DATABASE_URL"]
        return
    # One server per session: concurrent pytest runs must not stop each other's database.
    with (
        tempfile.TemporaryDirectory(prefix="kilowatch-test-") as tmp,
        embedded.used(Path(tmp)) as url,
    ):
        yield url


@pytest.fixture(scope="session", params=["pg18", "pg15"])
def server_url(request: pytest.FixtureRequest) -> str:
    if request.param == "pg15":
        if not _answers(PG15_URL):
            pytest.skip(f"PostgreSQL 15 does not answer at {PG15_URL}")
        return PG15_URL
    return str(request.getfixturevalue("embedded_url"))


@pytest.fixture(scope="session")
async def template_url(server_url: str) -> AsyncIterator[str]:
    name = f"kw_tpl_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        url = with_database(server_url, name)
        await cli.prepare(Settings(database_url=url))  # migrations and partitions, as `serve`
        yield url
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def _fresh_database(server_url: str, template: str | None) -> AsyncIterator[str]:
    name = f"t_{uuid.uuid4().hex}"
    admin = await asyncpg.connect(server_url)
    try:
        clause = f' TEMPLATE "{template}"' if template else ""
        await admin.execute(f'CREATE DATABASE "{name}"{clause}')
        yield with_database(server_url, name)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def db_url(server_url: str, template_url: str) -> AsyncIterator[str]:
    """A fresh, migrated database with the accepted range's partitions."""
    async for url in _fresh_database(server_url, urlsplit(template_url).path.lstrip("/")):
        yield url


@pytest.fixture(scope="module")
async def module_db_url(server_url: str, template_url: str) -> AsyncIterator[str]:
    """A fresh, migrated database for a whole module (one server process serves its tests)."""
    async for url in _fresh_database(server_url, urlsplit(template_url).path.lstrip("/")):
        yield url


@pytest.fixture
async def empty_db_url(server_url: str) -> AsyncIterator[str]:
    """A fresh database with no migrations applied."""
    async for url in _fresh_database(server_url, None):
        yield url


@pytest.fixture
async def conn(db_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(db_url)
    try:
        yield connection
    finally:
        await connection.close()


@pytest.fixture
def settings(db_url: str) -> Settings:
    return Settings(database_url=db_url)


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[Any]:
    """The app on a fresh database, through Litestar's test client (lifespan included)."""
    from litestar.testing import AsyncTestClient

    from kilowatch.app import create_app

    async with AsyncTestClient(app=create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def live_server(db_url: str) -> Iterator[str]:
    """The app under uvicorn in its own process on the test's database: "127.0.0.1:port"."""
    from kilowatch.bench import server

    with server.running(db_url, workers=1) as address:
        yield address
