"""Real servers for tests that run an event loop beside them, and a small raw HTTP client."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from kilowatch.bench import server


@contextlib.asynccontextmanager
async def serving(
    database_url: str, workers: int = 1, *, log: Path | None = None, **settings: object
) -> AsyncIterator[server.Server]:
    """The app under uvicorn, started from this (the main) thread, so it dies with the test run;
    its readiness is awaited, so a database proxy on this event loop keeps running meanwhile."""
    started = server.Server(database_url, workers, log=log, **settings)
    try:
        await started.ready()
        yield started
    finally:
        # Stopping blocks until the process exits: off the loop, whose proxy it may still need.
        await asyncio.to_thread(started.stop)


class Http:
    """One keep-alive HTTP/1.1 connection, speaking just enough for small JSON requests."""

    def __init__(self, address: str) -> None:
        self.host, port = address.rsplit(":", 1)
        self.port = int(port)
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def request(
        self, method: str, path: str, body: bytes | Any = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        """Status, headers (lower-cased names) and body."""
        if not isinstance(body, bytes):
            body = json.dumps(body).encode()
        if self.streams is None:
            self.streams = await asyncio.open_connection(self.host, self.port)
        reader, writer = self.streams
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        writer.write(
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json"
            f"\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode()
            + body
        )
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            fields = dict(line.split(": ", 1) for line in head[1:] if line)
            found = {k.lower(): v for k, v in fields.items()}
            content = await reader.readexactly(int(found.get("content-length", "0")))
        except BaseException:
            self.close()  # a half-read answer: the next request starts on a new connection
            raise
        return int(head[0].split()[1]), found, content

    def close(self) -> None:
        if self.streams is not None:
            self.streams[1].close()
            self.streams = None
