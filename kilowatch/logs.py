"""JSON logs, one object per line on stderr, with the request id of the request that logged.

Every record becomes `{"ts", "level", "logger", "msg", "pid", "request_id"?, <extra fields>,
"exc"?}` (tracebacks escaped inside the object). The same configuration serves Litestar's
`logging_config` and uvicorn's `log_config`, so uvicorn's own loggers write the same lines.
Lines are formatted by the thread that logs (where the request id is known) and written to
stderr by one thread per process, so a slow stderr never blocks the event loop.
"""

from __future__ import annotations

import atexit
import contextlib
import contextvars
import json
import logging
import os
import queue
import re
import sys
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the CLI uses config() without importing Litestar
    from litestar.logging.config import LoggingConfig
    from litestar.types import ASGIApp, Message, Receive, Scope, Send

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "kilowatch_request_id", default=None
)

# An incoming X-Request-ID is kept when it looks like an id, not arbitrary text for the logs.
_SANE_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")
_HEADER = b"x-request-id"
# Field names whose values never reach the log, whoever passes them in `extra=`.
_SECRET = re.compile(r"authorization|api_?key|password|passwd|secret|token|cookie", re.IGNORECASE)
# What every LogRecord carries; anything else on a record came from `extra=`.
_RECORD_FIELDS = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "request_id",
    "taskName",
    "color_message",
}
_QUEUED_LINES = 10_000


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not lose the line
            message = f"{record.msg!r} % {record.args!r}"
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "msg": message,
            "pid": record.process,
        }
        rid = getattr(record, "request_id", None)
        if rid:
            doc["request_id"] = rid
        for key, value in record.__dict__.items():
            if key in _RECORD_FIELDS or key.startswith("_"):
                continue
            doc[f"extra_{key}" if key in doc else key] = (
                "[redacted]" if _SECRET.search(key) else value
            )
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            doc["exc"] = record.exc_text
        if record.stack_info:
            doc["stack"] = self.formatStack(record.stack_info)
        return json.dumps(doc, default=str, ensure_ascii=False, separators=(",", ":"))


class RequestIdFilter(logging.Filter):
    """Puts the current request's id on the record, in the thread (and task) that logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id.get()
        return True


class _Writer:
    """The process's one writer thread: formatted lines in, stderr out."""

    _shared: _Writer | None = None
    _lock = threading.Lock()
    _exiting = False

    @classmethod
    def write(cls, line: str) -> None:
        with cls._lock:
            # Not alive: this is a forked child's copy of the object, without the thread.
            if cls._shared is None or not cls._shared._thread.is_alive():
                if cls._exiting:  # the interpreter is exiting: no new thread, write it now
                    sys.stderr.write(line + "\n")
                    return
                cls._shared = cls()
            writer = cls._shared
        try:
            writer._lines.put_nowait(line)
        except queue.Full:
            # Better a counted gap in the log than a request waiting for stderr.
            writer._dropped += 1

    @classmethod
    def flush(cls, timeout: float = 1.0) -> None:
        """Waits (at most `timeout`) until every line queued so far is written."""
        writer = cls._shared
        if writer is not None and writer._thread.is_alive():
            done = threading.Event()
            with contextlib.suppress(queue.Full):
                writer._lines.put(done, timeout=timeout)
                done.wait(timeout)

    @classmethod
    def _at_exit(cls) -> None:
        cls._exiting = True
        cls.flush()

    def __init__(self) -> None:
        self._lines: queue.Queue[str | threading.Event] = queue.Queue(maxsize=_QUEUED_LINES)
        self._dropped = 0
        self._thread = threading.Thread(target=self._run, name="kilowatch-logs", daemon=True)
        self._thread.start()
        atexit.register(_Writer._at_exit)

    def _run(self) -> None:
        while True:
            line = self._lines.get()
            if isinstance(line, threading.Event):
                line.set()
                continue
            if self._dropped:
                dropped, self._dropped = self._dropped, 0
                line = _dropped_line(dropped) + "\n" + line
            try:
                sys.stderr.write(line + "\n")
                if self._lines.empty():
                    sys.stderr.flush()
            except (OSError, ValueError):
                pass  # stderr is gone (closed pipe): nowhere left to say so


def _dropped_line(count: int) -> str:
    record = logging.LogRecord("kilowatch.logs", logging.WARNING, "", 0, "", None, None)
    record.msg, record.dropped = "log lines dropped: stderr did not keep up", count
    return JsonFormatter().format(record)


class _QueueHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        _Writer.write(line)


def handler() -> logging.Handler:
    """The handler both configurations name; all of a process's handlers share one writer."""
    return _QueueHandler()


_HANDLER = {"()": "kilowatch.logs.handler", "formatter": "json", "filters": ["request_id"]}
_OWN = {"handlers": ["queue_listener"], "propagate": False}
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")


def config(level: str = "INFO") -> dict[str, Any]:
    """A `logging.config.dictConfig` dictionary: uvicorn's `log_config`."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "kilowatch.logs.JsonFormatter"}},
        "filters": {"request_id": {"()": "kilowatch.logs.RequestIdFilter"}},
        "handlers": {"queue_listener": dict(_HANDLER)},
        "loggers": {
            **{name: {**_OWN, "level": level} for name in UVICORN_LOGGERS},
            "litestar": {**_OWN, "level": level},
            # Its INFO line per request is the test client's (and the simulator's) chatter.
            "httpx": {"level": "WARNING"},
        },
        "root": {"handlers": ["queue_listener"], "level": level},
    }


def litestar_config(level: str = "INFO") -> LoggingConfig:
    """The same configuration as Litestar's `logging_config` (Litestar applies it at app
    creation, replacing whatever was there; its default handler would print plain text).

    uvicorn configured its own loggers before it built the app: their levels (`--log-level`)
    stay as they are, and those it gave a handler (not the access log when it is off) get ours.
    Outside uvicorn (tests) they are configured as they stand, which changes nothing.
    """
    from litestar.logging.config import LoggingConfig

    base = config(level)
    loggers = {name: dict(spec) for name, spec in base["loggers"].items()}
    for name in (*UVICORN_LOGGERS, "uvicorn.asgi"):
        # Each one named explicitly: dictConfig resets the children of a logger it configures
        # (the access log, turned off, would come back).
        current = logging.getLogger(name)
        loggers[name] = {
            "handlers": ["queue_listener"] if current.handlers else [],
            "propagate": current.propagate,
            "level": logging.getLevelName(current.level),
        }
    return LoggingConfig(
        logging_module="logging",
        formatters=base["formatters"],
        filters=base["filters"],
        # "console" is a name Litestar defines when missing: defined here, it builds no handler
        # of its own.
        handlers={"queue_listener": dict(_HANDLER), "console": dict(_HANDLER)},
        loggers=loggers,
        root={"handlers": ["queue_listener"], "level": level},
        # Unhandled errors are logged by kilowatch.errors, once, with their traceback.
        log_exceptions="never",
    )


def request_ids(app: ASGIApp) -> ASGIApp:
    """ASGI middleware: the request's id (a sane incoming X-Request-ID, else a new one) in the
    `request_id` context variable while it is handled, and in the response's X-Request-ID."""
    from litestar.enums import ScopeType

    async def with_request_id(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        rid: str | None = None
        for name, value in scope["headers"]:
            if name == _HEADER:
                if _SANE_ID.fullmatch(value):
                    rid = value.decode("ascii")
                break
        if rid is None:
            rid = os.urandom(8).hex()
        header = (_HEADER, rid.encode("ascii"))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        token = request_id.set(rid)
        try:
            await app(scope, receive, send_with_id)
        finally:
            request_id.reset(token)

    return with_request_id
