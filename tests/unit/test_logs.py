"""JSON log lines and request ids (kilowatch.logs), without a database."""

from __future__ import annotations

import json
import logging
import logging.config
from typing import Any

import pytest

from kilowatch import logs


def record(msg: str = "hello %s", *args: Any, **extra: Any) -> logging.LogRecord:
    made = logging.LogRecord("kilowatch.test", logging.WARNING, __file__, 1, msg, args, None)
    made.__dict__.update(extra)
    return made


def formatted(made: logging.LogRecord) -> dict[str, Any]:
    line = logs.JsonFormatter().format(made)
    assert "\n" not in line
    return json.loads(line)  # type: ignore[no-any-return]


def test_a_line_has_the_core_fields_and_every_extra() -> None:
    doc = formatted(record("hello %s", "world", role="read", failures=3, seconds=1.5))
    assert doc["msg"] == "hello world"
    assert (doc["level"], doc["logger"]) == ("WARNING", "kilowatch.test")
    assert doc["ts"].endswith("Z") and "T" in doc["ts"]
    assert (doc["role"], doc["failures"], doc["seconds"]) == ("read", 3, 1.5)
    assert "request_id" not in doc  # logged outside any request


def test_tracebacks_stay_inside_the_object() -> None:
    try:
        raise ValueError("line one\nline two")
    except ValueError:
        made = logging.LogRecord(
            "k", logging.ERROR, "", 1, "failed", None, __import__("sys").exc_info()
        )
    doc = formatted(made)
    assert "Traceback" in doc["exc"] and "line one\nline two" in doc["exc"]


def test_secrets_in_extra_fields_are_redacted() -> None:
    doc = formatted(record(authorization="Bearer s3cr3t", api_key="k1", device_token="t"))
    assert "s3cr3t" not in json.dumps(doc)
    assert doc["authorization"] == doc["api_key"] == doc["device_token"] == "[redacted]"


def test_an_extra_named_like_a_core_field_does_not_replace_it() -> None:
    doc = formatted(record("real", level="fake", ts="fake"))
    assert doc["level"] == "WARNING" and doc["extra_level"] == "fake"


def test_values_json_cannot_encode_become_text() -> None:
    doc = formatted(record(where={1, 2}.__class__.__name__, obj=object()))
    assert doc["obj"].startswith("<object object")


def test_a_broken_format_string_still_gives_a_line() -> None:
    doc = formatted(record("%d apples", "not a number"))
    assert "apples" in doc["msg"]


def test_the_request_id_is_taken_in_the_logging_context() -> None:
    made = record()
    token = logs.request_id.set("req-1")
    try:
        logs.RequestIdFilter().filter(made)
    finally:
        logs.request_id.reset(token)
    assert formatted(made)["request_id"] == "req-1"


def test_config_routes_uvicorn_and_root_through_one_json_handler(
    capfd: pytest.CaptureFixture[str],
) -> None:
    logging.config.dictConfig(logs.config())
    logging.getLogger("uvicorn.error").warning("from uvicorn")
    logging.getLogger("kilowatch.x").warning("from us", extra={"n": 1})
    logs._Writer.flush()
    lines = [json.loads(line) for line in capfd.readouterr().err.splitlines()]
    assert [(d["logger"], d["msg"]) for d in lines] == [
        ("uvicorn.error", "from uvicorn"),
        ("kilowatch.x", "from us"),
    ]
    assert lines[1]["n"] == 1


async def call(headers: list[tuple[bytes, bytes]]) -> tuple[str | None, list[Any]]:
    seen: list[str | None] = []
    sent: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(logs.request_id.get())
        await send({"type": "http.response.start", "status": 200, "headers": []})

    async def send(message: Any) -> None:
        sent.append(message)

    await logs.request_ids(app)({"type": "http", "headers": headers}, None, send)  # type: ignore[arg-type]
    assert logs.request_id.get() is None  # reset after the request
    return seen[0], sent[0]["headers"]


@pytest.mark.parametrize("incoming", [b"abc-123", b"trace:7f.e_1"])
async def test_a_sane_incoming_request_id_is_kept_and_returned(incoming: bytes) -> None:
    rid, headers = await call([(b"x-request-id", incoming)])
    assert rid == incoming.decode()
    assert (b"x-request-id", incoming) in headers


@pytest.mark.parametrize("incoming", [None, b"", b"has space", b"x" * 129, b'{"json": 1}'])
async def test_otherwise_a_new_request_id_is_made(incoming: bytes | None) -> None:
    rid, headers = await call([] if incoming is None else [(b"x-request-id", incoming)])
    assert rid and len(rid) == 16 and rid.encode() != incoming
    assert (b"x-request-id", rid.encode()) in headers
