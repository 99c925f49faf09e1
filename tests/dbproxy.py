"""A TCP proxy in front of PostgreSQL that plays a stopped or a hung server, for outage tests.

Neither the shared PostgreSQL 15 nor the session's embedded server may be stopped by one test,
so the app is pointed at this proxy instead: `stop()` cuts every link and closes new ones on
accept, `stall()` lets nothing through either way, `start()` forwards again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit


def upstream(url: str) -> str | tuple[str, int]:
    """Where a libpq-style URL connects: a Unix socket path or (host, port)."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    port = parts.port or int(query.get("port", "5432"))
    host = query.get("host") or parts.hostname or "localhost"
    return f"{host}/.s.PGSQL.{port}" if host.startswith("/") else (host, port)


class DatabaseProxy:
    def __init__(self, database_url: str) -> None:
        self._database_url = database_url
        self._target = upstream(database_url)
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._down = False
        self._stalled = False

    @property
    def url(self) -> str:
        """The database URL with the proxy as its server (same user, password and database)."""
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        parts = urlsplit(self._database_url)
        user = parts.netloc.rpartition("@")[0]
        query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k not in ("host", "port")])
        netloc = f"{user}@127.0.0.1:{port}" if user else f"127.0.0.1:{port}"
        return urlunsplit(parts._replace(netloc=netloc, query=query))

    async def __aenter__(self) -> DatabaseProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        self.stop()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    def stop(self) -> None:
        """The server stops: every link is cut, and new connections are closed on accept."""
        self._down = True
        for writer in self._links:
            writer.close()
        self._links.clear()

    def stall(self) -> None:
        """The server hangs (frozen, or the network lost): open links carry nothing more, either
        way, and new connections are accepted but never answered."""
        self._stalled = True

    def start(self) -> None:
        """The server is back. Links that hung are cut, as a restarted server's would be."""
        if self._stalled:
            self.stop()
        self._down = self._stalled = False

    async def _accept(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        if self._down:
            client_writer.close()
            return
        self._links.add(client_writer)
        if self._stalled:
            self._spawn(self._pipe(client_reader, None))
            return
        try:
            if isinstance(self._target, str):
                server_reader, server_writer = await asyncio.open_unix_connection(self._target)
            else:
                server_reader, server_writer = await asyncio.open_connection(*self._target)
        except OSError:
            client_writer.close()
            return
        if self._down:  # stopped while we were connecting
            server_writer.close()
            return
        self._links.add(server_writer)
        self._spawn(self._pipe(client_reader, server_writer))
        self._spawn(self._pipe(server_reader, client_writer))

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter | None
    ) -> None:
        """Copies reader to writer; while stalled, or with no writer, swallows what it reads."""
        try:
            while data := await reader.read(65536):
                if writer is not None and not self._stalled:
                    writer.write(data)
                    await writer.drain()
        except OSError:
            pass  # the link was cut under us: how a stopped server looks
        finally:
            if writer is not None:
                self._links.discard(writer)
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
