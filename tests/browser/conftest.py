"""Browser fixtures: one headless Chromium, one simulated fleet behind a real server.

Module-scoped (the browser tests are one module): the browser and the servers end with the
module, not with the whole session, so they cost nothing while the other tests run.

Debian's chromium (python3 dev.py test installs it as root) driven by Playwright's own driver,
which its wheel carries; Playwright's browser download is never used. Chromium resolves no host
but this machine's (--host-resolver-rules), so a page that needed the internet would show it as
a failed request: the dashboard and /docs are tested as on a closed network.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from kilowatch import cli
from kilowatch.bench import server
from kilowatch.bench.datasets import with_database
from kilowatch.settings import Settings
from kilowatch.simulate.backfill import backfill
from kilowatch.simulate.fleet import window_end
from tests import rollups
from tests.browser.fleet import (
    ARGS,
    CHROMIUM,
    DEVICE,
    HOURS,
    METERS,
    OPERATOR,
    SEED,
    STALE_AFTER_S,
    VEHICLES,
)


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Any]:
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        pytest.skip("Playwright for Python is not installed (python3 dev.py test installs it)")
    if not CHROMIUM.exists():
        pytest.skip(
            f"no browser: {CHROMIUM} is missing (Debian's chromium package; python3 dev.py test "
            "installs it when run as root with apt-get)"
        )
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture(scope="module")
async def fleet_url(browser: Any, request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """A database with the simulated fleet, its rollups already caught up.

    On the embedded server (or DATABASE_URL's), asked for only once there is a browser: without
    one, the tests skip before any database is started.
    """
    embedded_url: str = request.getfixturevalue("embedded_url")
    name = f"kw_browser_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(embedded_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        url = with_database(embedded_url, name)
        await cli.prepare(Settings(database_url=url))
        end = window_end()
        await backfill(url, VEHICLES, METERS, HOURS, SEED, end)
        conn = await asyncpg.connect(url)
        try:
            # The region starts where the data does (not 37 days back), so the server's first
            # pages read rollups, not raw history, while its refresher is still catching up.
            start = (end - timedelta(hours=HOURS)).replace(minute=0)
            await rollups.start_at(conn, start)
            await rollups.refresh(conn)
        finally:
            await conn.close()
        yield url
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture(scope="module")
def site(fleet_url: str) -> Iterator[str]:
    """The open dashboard (no API keys): "http://127.0.0.1:port"."""
    with server.running(fleet_url, workers=1, stale_after_s=STALE_AFTER_S) as address:
        yield f"http://{address}"


@pytest.fixture(scope="module")
def keyed_site(fleet_url: str) -> Iterator[str]:
    """The same fleet with API keys: the dashboard asks for an operator key."""
    with server.running(
        fleet_url,
        workers=1,
        stale_after_s=STALE_AFTER_S,
        operator_api_keys=OPERATOR,
        device_api_keys=DEVICE,
    ) as address:
        yield f"http://{address}"


@pytest.fixture
async def api(site: str) -> AsyncIterator[Callable[..., Awaitable[Any]]]:
    """GET a JSON endpoint of the same server."""
    async with httpx.AsyncClient(base_url=site, timeout=10) as client:

        async def get(path: str, **params: Any) -> Any:
            response = await client.get(path, params=params)
            assert response.status_code == 200, (path, params, response.text)
            return response.json()

        yield get


class Watch:
    """What went wrong on a page: console errors, uncaught exceptions, failed requests."""

    def __init__(self, page: Any) -> None:
        self.problems: list[str] = []
        self.finished: list[Any] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.problems.append(f"uncaught: {error}"))
        page.on("requestfailed", self._failed)
        page.on("requestfinished", self._finished)
        page.on("response", self._response)

    def _finished(self, request: Any) -> None:
        # A method, not list.append: Playwright cannot wrap a builtin as a listener.
        self.finished.append(request)

    def _console(self, message: Any) -> None:
        if message.type == "error":
            self.problems.append(f"console error: {message.text} at {message.location}")

    def _failed(self, request: Any) -> None:
        # A poll still in flight when the page navigates away is cancelled, not failed.
        if request.failure == "net::ERR_ABORTED" and request.resource_type in ("xhr", "fetch"):
            return
        self.problems.append(f"failed request: {request.url} ({request.failure})")

    def _response(self, response: Any) -> None:
        if response.status >= 400:
            self.problems.append(f"HTTP {response.status}: {response.url}")

    async def weight(self) -> int:
        """Bytes transferred for the requests finished so far (headers and encoded bodies)."""
        total = 0
        for request in self.finished:
            sizes = await request.sizes()
            total += sizes["responseHeadersSize"] + max(sizes["responseBodySize"], 0)
        return total


@pytest.fixture
async def browse(browser: Any) -> AsyncIterator[Callable[..., Awaitable[tuple[Any, Watch]]]]:
    """Opens pages in fresh contexts (no cache, no cookies); each must end with no problem."""
    contexts: list[Any] = []
    watches: list[Watch] = []

    async def open_page(url: str, width: int = 1280, height: int = 900, **options: Any) -> Any:
        context = await browser.new_context(viewport={"width": width, "height": height}, **options)
        contexts.append(context)
        page = await context.new_page()
        watch = Watch(page)
        watches.append(watch)
        await page.goto(url, wait_until="networkidle")
        return page, watch

    try:
        yield open_page
        problems = [problem for watch in watches for problem in watch.problems]
        assert not problems, "\n".join(problems)
    finally:
        for context in contexts:
            await context.close()
