"""Health routes, OpenAPI docs and the error shape, through the ASGI app."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar.testing import AsyncTestClient

from kilowatch.app import create_app
from kilowatch.settings import Settings

# Nothing listens on port 1: connections are refused at once.
DEAD_URL = "postgresql://postgres@127.0.0.1:1/x"


@asynccontextmanager
async def client(database_url: str) -> AsyncIterator[AsyncTestClient]:  # type: ignore[type-arg]
    async with AsyncTestClient(app=create_app(Settings(database_url=database_url))) as c:
        yield c


async def test_healthz_answers_without_a_database() -> None:
    async with client(DEAD_URL) as c:
        response = await c.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_ok_on_a_migrated_database(db_url: str) -> None:
    async with client(db_url) as c:
        response = await c.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ready"}


async def test_readyz_503_on_an_unmigrated_database(empty_db_url: str) -> None:
    async with client(empty_db_url) as c:
        response = await c.get("/readyz")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert "migrations" in response.json()["detail"]


async def test_readyz_503_without_hanging_when_the_database_is_gone() -> None:
    async with asyncio.timeout(30):  # hang guard only, not a timing assertion
        async with client(DEAD_URL) as c:
            response = await c.get("/readyz")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert "database unavailable" in response.json()["detail"]


async def test_readyz_recovers_after_repeated_failures() -> None:
    async with client(DEAD_URL) as c:
        statuses = [(await c.get("/readyz")).status_code for _ in range(3)]
        assert (await c.get("/healthz")).status_code == 200
    assert statuses == [503, 503, 503]


async def test_docs_ui_and_openapi_schema() -> None:
    async with client(DEAD_URL) as c:
        ui = await c.get("/docs")
        schema = await c.get("/docs/openapi.json")
    assert ui.status_code == 200
    assert "html" in ui.headers["content-type"]
    assert schema.status_code == 200
    document = json.loads(schema.text)
    assert document["openapi"].startswith("3.")
    assert {"/healthz", "/readyz"} <= set(document["paths"])


async def test_unknown_route_is_404_with_detail() -> None:
    async with client(DEAD_URL) as c:
        response = await c.get("/no/such/route")
    assert response.status_code == 404
    body = response.json()
    assert set(body) == {"detail"}
    assert isinstance(body["detail"], str) and body["detail"]


async def test_wrong_method_is_405_with_detail() -> None:
    async with client(DEAD_URL) as c:
        response = await c.delete("/healthz")
    assert response.status_code == 405
    assert "detail" in response.json()
