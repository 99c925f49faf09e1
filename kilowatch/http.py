"""uvicorn's HTTP protocol with the bounds it lacks: header and body read timeouts, a request cap.

uvicorn waits forever for a client that opens a connection and sends nothing, or half a request
(`timeout_keep_alive` only covers the idle time after a response), and its `limit_concurrency`
counts open connections, idle keep-alive ones included, and answers a plain-text 503 without
Retry-After. `BoundedProtocol` (select it with `--http kilowatch.http:BoundedProtocol`, as
`kilowatch serve` does) adds, per connection, from the KILOWATCH_* settings:

- HEADER_TIMEOUT_S: from the connection's start, or from the first byte of a later request,
  until its headers are complete; then 408 and close;
- BODY_TIMEOUT_S: the longest wait for the next piece of a request body (not counted while the
  app has not asked for more, or before it asked for a `100-continue` body); then close;
- MAX_CONCURRENT_REQUESTS per worker process: a request beyond it is answered 503 + Retry-After
  in SPEC §7's shape, before the app reads its body;
- KEEP_ALIVE_TIMEOUT_S: uvicorn's own keep-alive timeout, from the settings.

Timers are only armed when a request's headers or body did not all arrive in one read, which
for a small request is never.
"""

from __future__ import annotations

import asyncio
import functools
import json
from dataclasses import dataclass
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from kilowatch.settings import Settings

_JSON = b"content-type: application/json\r\n"


@dataclass(frozen=True)
class Bounds:
    header_timeout_s: float
    body_timeout_s: float
    keep_alive_timeout_s: float
    max_concurrent_requests: int
    retry_after_s: int

    @classmethod
    def from_settings(cls, settings: Settings) -> Bounds:
        return cls(
            settings.header_timeout_s,
            settings.body_timeout_s,
            settings.keep_alive_timeout_s,
            settings.max_concurrent_requests,
            settings.retry_after_s,
        )


@functools.cache
def _bounds() -> Bounds:
    # Once per worker process, at its first connection: every worker reads the same environment.
    return Bounds.from_settings(Settings())


def _response(status: bytes, detail: str, extra: bytes = b"") -> bytes:
    body = json.dumps({"detail": detail}).encode()
    length = b"content-length: %d\r\n" % len(body)
    return b"HTTP/1.1 " + status + b"\r\n" + _JSON + length + extra + b"\r\n" + body


class BoundedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol plus the module's bounds."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        bounds: Bounds | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.bounds = bounds or _bounds()
        self.timeout_keep_alive = self.bounds.keep_alive_timeout_s  # type: ignore[assignment]
        self.app = _capped(self.app, server_state.tasks, self.bounds)
        self._waiting: str | None = "headers"  # or "body", or None: what the client owes us
        self._timer: asyncio.TimerHandle | None = None
        self._last_body = 0.0

    # The parser's callbacks, within data_received: only note what the client still owes.
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._waiting = "headers"

    def on_headers_complete(self) -> None:
        self._waiting = "body"
        self._cancel()
        self._last_body = self.loop.time()
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        self._last_body = self.loop.time()
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._waiting = None
        self._cancel()
        super().on_message_complete()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.bounds.header_timeout_s)  # a client that sends nothing at all

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        # A request still incomplete after this read starts its clock (if it is not running).
        if self._waiting is not None and self._timer is None and not self.transport.is_closing():
            self._arm(self._timeout())

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        # uvicorn's own is text/plain; SPEC §7 wants {"detail"} for every 4xx.
        self.transport.write(_response(b"400 Bad Request", msg, b"connection: close\r\n"))
        self.transport.close()

    def _arm(self, delay: float) -> None:
        self._cancel()
        self._timer = self.loop.call_later(delay, self._expired)

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expired(self) -> None:
        self._timer = None
        if self.transport.is_closing() or self._waiting is None:
            return
        cycle = self.cycle
        if self.flow.read_paused or (
            self._waiting == "body" and cycle is not None and cycle.waiting_for_100_continue
        ):
            # Not the client's fault: uvicorn stopped reading (the app has not consumed what it
            # has, or a pipelined request waits its turn), or the app has not yet asked for a
            # 100-continue body.
            self._last_body = self.loop.time()
            self._arm(self._timeout())
            return
        if self._waiting == "headers":
            # No response is under way (its headers are what we wait for): a 408 can be sent.
            if cycle is None or cycle.response_complete:
                detail = f"request headers not received within {self.bounds.header_timeout_s} s"
                self.transport.write(
                    _response(b"408 Request Timeout", detail, b"connection: close\r\n")
                )
            self.transport.close()
            return
        idle = self.loop.time() - self._last_body
        if idle < self.bounds.body_timeout_s:  # body bytes came since the timer was armed
            self._arm(self.bounds.body_timeout_s - idle)
        else:
            # The app's receive() then sees a disconnect (kilowatch.errors.read_body: 408).
            self.transport.close()

    def _timeout(self) -> float:
        return (
            self.bounds.header_timeout_s
            if self._waiting == "headers"
            else self.bounds.body_timeout_s
        )


@functools.cache
def _busy(bounds: Bounds) -> tuple[list[tuple[bytes, bytes]], bytes]:
    body = json.dumps(
        {"detail": f"more than {bounds.max_concurrent_requests} requests in progress; retry later"}
    ).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", str(bounds.retry_after_s).encode()),
    ]
    return headers, body


def _capped(app: Any, tasks: set[asyncio.Task[None]], bounds: Bounds) -> Any:
    """`app` behind a cap on the worker's requests in flight (`tasks` holds one per request)."""
    limit = bounds.max_concurrent_requests
    headers, body = _busy(bounds)

    async def capped(scope: Any, receive: Any, send: Any) -> None:
        # This request's task is already in `tasks`.
        if scope["type"] == "http" and len(tasks) > limit:
            await send({"type": "http.response.start", "status": 503, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await app(scope, receive, send)

    return capped
