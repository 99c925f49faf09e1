"""Hostile input through a real server (uvicorn + kilowatch.http): never a 500, never a hang, and
in ingest never a valid neighbour lost.

One server per database server for the module, with short connection bounds. Every case is a
row of a table: what is sent, the status, the field named, and for ingest that the valid events
beside it in the same request were stored. Timeouts only guard against hangs.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from kilowatch.bench import server

MAX_REQUESTS = 4
BOUNDS = {
    "header_timeout_s": 1,
    "body_timeout_s": 1.5,
    "keep_alive_timeout_s": 1,
    "max_concurrent_requests": MAX_REQUESTS,
}
GUARD_S = 10  # no answer within this is a hang
JSON, NDJSON = "application/json", "application/x-ndjson"


@pytest.fixture(scope="module")
def address(module_db_url: str) -> Iterator[str]:
    with server.running(module_db_url, workers=1, **BOUNDS) as address:
        yield address


@pytest.fixture
async def api(address: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"http://{address}", timeout=GUARD_S) as client:
        yield client


@pytest.fixture
async def conn(module_db_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(module_db_url)
    try:
        yield connection
    finally:
        await connection.close()


def stamp(**delta: float) -> str:
    return (datetime.now(UTC) - timedelta(minutes=1, **delta)).isoformat().replace("+00:00", "Z")


def meter(meter_id: str, timestamp: str | None = None) -> bytes:
    ts = timestamp or stamp()
    return b'{"meterId": "%s", "kwhConsumedAc": 1.5, "voltage": 230, "timestamp": "%s"}' % (
        meter_id.encode(),
        ts.encode(),
    )


# Within the accepted age for as long as the module runs.
RECENT = stamp(hours=1).split(".")[0].removesuffix("Z") + "Z"
YESTERDAY = stamp(days=1).split(".")[0].removesuffix("Z") + "Z"


def with_ts(item: bytes) -> bytes:
    return item.replace(b"@TS@", stamp().encode())


# (case, the hostile item, the field its rejection names). Each is sent between two valid events.
ITEMS: list[tuple[str, bytes, str]] = [
    (
        "invalid UTF-8 in a value",
        b'{"meterId": "M-\xff", "voltage": 1, "timestamp": "@TS@"}',
        "body",
    ),
    ("invalid UTF-8 in a key", b'{"meterId": "M-x", "\xc3\x28": 1}', "body"),
    ("invalid UTF-8 outside strings", b'{"meterId": "M-x", \xff: 1}', "body"),
    ("an overlong UTF-8 NUL", b'{"meterId": "M-\xc0\x80"}', "body"),
    ("a UTF-8-encoded surrogate", b'{"meterId": "M-\xed\xa0\x80"}', "body"),
    ("a lone surrogate escape", b'{"meterId": "M-\\ud800", "voltage": 1}', "body"),
    ("nested 1,000 deep in an unknown field", b'{"x": ' + b"[" * 1000 + b"]" * 1000 + b"}", "body"),
    ("nested 20,000 deep", b"[" * 20_000 + b"]" * 20_000, "body"),
    ("nested 40 deep", b'{"meterId": ' + b"[" * 40 + b"]" * 40 + b"}", "body"),
    ("objects nested 1,000 deep", b'{"a":' * 1000 + b"1" + b"}" * 1000, "body"),
    ("larger than 16 KiB", b'{"meterId": "M-x", "pad": "' + b"x" * 20_000 + b'"}', "body"),
    ("not JSON", b"{meterId: 1}", "body"),
    ("an infinity literal", b'{"meterId": "M-x", "voltage": Infinity}', "body"),
    ("a 5,000-digit integer", b'{"meterId": "M-x", "voltage": ' + b"9" * 5000 + b"}", "body"),
    ("not an object", b"42", "body"),
    ("a number beyond float range", meter("M-x").replace(b"1.5", b"1e400"), "kwhConsumedAc"),
    ("an id of 2^63 as a number", b'{"meterId": 9223372036854775808}', "meterId"),
    ("a NUL in an id", meter("M-\\u0000"), "meterId"),
    ("a line break in an id", meter("M-1\\n"), "meterId"),
    ("a NUL in an unknown field's name", b'{"meterId": "M-x", "x\\u0000": 1}', "x\x00"),
    ("year 1 at +14:00", meter("M-x", "0001-01-01T00:00:00+14:00"), "timestamp"),
    ("year 9999 at -12:00", meter("M-x", "9999-12-31T23:59:59-12:00"), "timestamp"),
    ("datetime.min", meter("M-x", "0001-01-01T00:00:00Z"), "timestamp"),
    ("datetime.max rounded up", meter("M-x", "9999-12-31T23:59:59.9999999Z"), "timestamp"),
    ("year 1999", meter("M-x", "1999-12-31T23:59:59Z"), "timestamp"),
    # Recent instants in forms outside the grammar (msgspec's own decoding takes the first three).
    ("a space for T", meter("M-x", RECENT.replace("T", " ")), "timestamp"),
    ("an offset without a colon", meter("M-x", RECENT.replace("Z", "+0000")), "timestamp"),
    ("ten fractional digits", meter("M-x", RECENT.replace("Z", ".0123456789Z")), "timestamp"),
    ("no offset", meter("M-x", RECENT.removesuffix("Z")), "timestamp"),
    ("a NUL in the timestamp", meter("M-x", RECENT.replace("Z", "\\u0000Z")), "timestamp"),
    (
        "an envelope with year 1 in its payload",
        b'{"type": "METER", "payload": %s}' % meter("M-x", "0001-01-01T00:00:00+14:00"),
        "payload.timestamp",
    ),
    (
        "an envelope with invalid UTF-8 in its payload",
        b'{"type": "METER", "payload": {"meterId": "\xff"}}',
        "body",
    ),
]


async def stored(conn: asyncpg.Connection, *meter_ids: str) -> set[str]:
    rows = await conn.fetch(
        "SELECT meter_id FROM meter_readings WHERE meter_id = ANY($1::text[])", list(meter_ids)
    )
    return {r["meter_id"] for r in rows}


async def assert_neighbours_stored(
    api: httpx.AsyncClient, conn: asyncpg.Connection, body: bytes, content_type: str, field: str
) -> None:
    response = await api.post("/v1/ingest", content=body, headers={"content-type": content_type})
    assert response.status_code == 201, response.text
    result = response.json()
    assert (result["accepted"], result["duplicates"]) == (2, 0), result
    [rejection] = result["rejected"]
    assert rejection["index"] == 1 and [e["field"] for e in rejection["errors"]] == [field]
    assert rejection["errors"][0]["message"]


@pytest.mark.parametrize(("case", "item", "field"), ITEMS, ids=[c for c, _, _ in ITEMS])
async def test_a_hostile_array_element_is_rejected_alone(
    api: httpx.AsyncClient, conn: asyncpg.Connection, case: str, item: bytes, field: str
) -> None:
    a, b = f"A-{uuid.uuid4().hex[:8]}", f"B-{uuid.uuid4().hex[:8]}"
    body = b"[" + b", ".join([meter(a), with_ts(item), meter(b)]) + b"]"
    await assert_neighbours_stored(api, conn, body, JSON, field)
    assert await stored(conn, a, b) == {a, b}


@pytest.mark.parametrize(("case", "item", "field"), ITEMS, ids=[c for c, _, _ in ITEMS])
async def test_a_hostile_ndjson_line_is_rejected_alone(
    api: httpx.AsyncClient, conn: asyncpg.Connection, case: str, item: bytes, field: str
) -> None:
    a, b = f"A-{uuid.uuid4().hex[:8]}", f"B-{uuid.uuid4().hex[:8]}"
    body = b"\n".join([meter(a), with_ts(item), meter(b)]) + b"\n"
    await assert_neighbours_stored(api, conn, body, NDJSON, field)
    assert await stored(conn, a, b) == {a, b}


async def test_a_stray_comma_is_an_element_rejected_alone(
    api: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    a, b = f"A-{uuid.uuid4().hex[:8]}", f"B-{uuid.uuid4().hex[:8]}"
    body = b"[" + meter(a) + b", ," + meter(b) + b"]"
    await assert_neighbours_stored(api, conn, body, JSON, "body")
    assert await stored(conn, a, b) == {a, b}


async def test_every_form_of_the_timestamp_grammar_is_stored(
    api: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=2)
    forms = {
        "lower-case t and z": at.isoformat().replace("+00:00", "z").replace("T", "t"),
        "nanoseconds": at.isoformat().replace("+00:00", ".000000400Z"),  # rounds down to `at`
        "-00:00": at.isoformat().replace("+00:00", "-00:00"),
        "+14:00": (at + timedelta(hours=14)).replace(tzinfo=None).isoformat() + "+14:00",
    }
    ids = {name: f"F-{uuid.uuid4().hex[:8]}" for name in forms}
    body = b"[" + b",".join(meter(ids[name], forms[name]) for name in forms) + b"]"
    response = await api.post("/v1/ingest", content=body, headers={"content-type": JSON})
    assert (response.status_code, response.json()["accepted"]) == (201, len(forms))
    rows = await conn.fetch(
        "SELECT recorded_at FROM meter_readings WHERE meter_id = ANY($1::text[])",
        list(ids.values()),
    )
    assert {r["recorded_at"] for r in rows} == {at}


# (case, body, content type): nothing valid in it, so 422 with one rejection at index 0, `body`.
BODIES: list[tuple[str, bytes, str]] = [
    ("an empty array", b"[]", JSON),
    ("an empty body", b"", JSON),
    ("only blank NDJSON lines", b"\n \r\n\t\n", NDJSON),
    ("one event that is not UTF-8", b'{"meterId": "\xff"}', JSON),
    ("one event nested 10,000 deep", b'{"a":' * 10_000 + b"1" + b"}" * 10_000, JSON),
    ("an array nested 100,000 deep", b"[" * 100_000 + b"]" * 100_000, JSON),
    ("an unterminated string", b'[{"meterId": "M-1"}, "abc', JSON),
    ("an unterminated array", b'[{"meterId": "M-1"}, {"meterId": "M-2"}', JSON),
    ("data after the array", b'[{"meterId": "M-1"}] {}', JSON),
]


@pytest.mark.parametrize(("case", "body", "content_type"), BODIES, ids=[c for c, _, _ in BODIES])
async def test_a_body_with_nothing_valid_is_422_naming_body(
    api: httpx.AsyncClient, case: str, body: bytes, content_type: str
) -> None:
    response = await api.post("/v1/ingest", content=body, headers={"content-type": content_type})
    assert response.status_code == 422, response.text
    result = response.json()
    assert (result["accepted"], result["duplicates"]) == (0, 0)
    assert [(r["index"], [e["field"] for e in r["errors"]]) for r in result["rejected"]] == [
        (0, ["body"])
    ]


@pytest.mark.parametrize(
    ("case", "body", "content_type"),
    [
        ("10,001 events", b"[" + b",".join([b"{}"] * 10_001) + b"]", JSON),
        ("4 M tiny elements", b"[" + b"0," * 4_000_000 + b"0]", JSON),
        ("10,001 NDJSON lines", b"{}\n" * 10_001, NDJSON),
        ("over 8 MiB", b"[" + b" " * (8 * 1024 * 1024) + b"]", JSON),
    ],
    ids=["10,001 events", "4 M tiny elements", "10,001 NDJSON lines", "over 8 MiB"],
)
async def test_too_many_events_or_bytes_are_413_and_store_nothing(
    api: httpx.AsyncClient, case: str, body: bytes, content_type: str
) -> None:
    response = await api.post("/v1/ingest", content=body, headers={"content-type": content_type})
    assert response.status_code == 413, response.text
    assert response.json()["detail"]


@pytest.fixture(scope="module")
def known_vehicle(address: str) -> str:
    """A vehicle the analytics routes know (one reading a minute ago)."""
    vehicle = {
        "vehicleId": "V-known",
        "soc": 50,
        "kwhDeliveredDc": 1,
        "batteryTemp": 20,
        "timestamp": stamp(),
    }
    response = httpx.post(f"http://{address}/v1/ingest", json=vehicle, timeout=GUARD_S)
    assert response.status_code in (200, 201), response.text
    return "V-known"


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode()


def a_cursor(vehicle: Any, from_: Any, id_: Any) -> str:
    """An assignments cursor as the API makes one, with whatever parts."""
    return b64(json.dumps([vehicle, from_, id_]).encode())


def assignment(**fields: Any) -> bytes:
    body = {"vehicleId": "v1", "meterId": "m1", "from": "2030-01-01T00:00:00Z", **fields}
    return json.dumps(body).encode()


PERF = "/v1/analytics/performance/V-known"
AS = "/v1/assignments"
CURSOR = f"{AS}?cursor="
T = "2030-01-01T00:00:00+00:00"
Y1, Y9999 = "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-12:00"
NUL_CURSOR, LONG_CURSOR = b64(b"a\x00b"), b64(b"x" * 65)
# (case, method, path, body or None, status, the field named or None)
REQUESTS: list[tuple[str, str, str, bytes | None, int, str | None]] = [
    ("status: NUL in the id", "GET", "/v1/vehicles/V%00x/status", None, 422, "vehicleId"),
    ("status: line break in the id", "GET", "/v1/meters/M-1%0A/status", None, 422, "meterId"),
    ("status: invalid UTF-8 in the id", "GET", "/v1/vehicles/%FF/status", None, 422, "vehicleId"),
    ("status: a surrogate in the id", "GET", "/v1/vehicles/%ED%A0%80/status", None, 422, "vehicleId"),
    ("status: a 65-character id", "GET", f"/v1/meters/{'m' * 65}/status", None, 422, "meterId"),
    ("status: an unknown id", "GET", "/v1/vehicles/V-nobody/status", None, 404, None),
    ("listing: NUL in meterId", "GET", "/v1/vehicles/status?meterId=a%00b", None, 422, "meterId"),
    ("listing: NUL in a cursor", "GET", f"/v1/vehicles/status?cursor={NUL_CURSOR}", None, 422, "cursor"),
    ("listing: a 65-char cursor", "GET", f"/v1/meters/status?cursor={LONG_CURSOR}", None, 422, "cursor"),
    ("listing: a cursor not base64", "GET", "/v1/meters/status?cursor=%FF%00", None, 422, "cursor"),
    ("listing: a limit of 10^30", "GET", "/v1/meters/status?limit=" + "9" * 30, None, 422, "limit"),
    ("assignments: NUL in vehicleId", "GET", f"{AS}?vehicleId=v%00", None, 422, "vehicleId"),
    ("assignments: line break in meterId", "GET", f"{AS}?meterId=m%0A", None, 422, "meterId"),
    ("assignments: cursor id 2^63", "GET", CURSOR + a_cursor("v1", T, 2**63), None, 422, "cursor"),
    ("assignments: cursor id 1e400", "GET", CURSOR + b64(b'["v", "%s", 1e400]' % T.encode()), None, 422, "cursor"),
    ("assignments: cursor from year 1", "GET", CURSOR + a_cursor("v1", Y1, 1), None, 422, "cursor"),
    ("assignments: NUL in a cursor", "GET", CURSOR + a_cursor("v\x00", T, 1), None, 422, "cursor"),
    ("assignments: cursor nested deep", "GET", CURSOR + b64(b"[" * 3000 + b"]" * 3000), None, 422, "cursor"),
    ("delete: id 2^63", "DELETE", f"{AS}/{2**63}", None, 422, "id"),
    ("delete: id 0", "DELETE", f"{AS}/0", None, 422, "id"),
    ("delete: id -1", "DELETE", f"{AS}/-1", None, 422, "id"),
    ("delete: id abc", "DELETE", f"{AS}/abc", None, 422, "id"),
    ("delete: NUL in the id", "DELETE", f"{AS}/1%00", None, 422, "id"),
    ("delete: a 5,000-digit id", "DELETE", f"{AS}/" + "1" * 5000, None, 422, "id"),
    ("delete: id 2^63 - 1, unknown", "DELETE", f"{AS}/{2**63 - 1}", None, 404, None),
    ("create: invalid UTF-8", "POST", AS, b'{"vehicleId": "\xff"}', 422, "body"),
    ("create: nested 3,000 deep", "POST", AS, b"[" * 3000 + b"]" * 3000, 422, "body"),
    ("create: larger than 16 KiB", "POST", AS, assignment(pad="x" * 20_000), 422, "body"),
    ("create: from year 1 at +14:00", "POST", AS, assignment(**{"from": Y1}), 422, "from"),
    ("create: to year 9999 at -12:00", "POST", AS, assignment(to=Y9999), 422, "to"),
    ("create: NUL in vehicleId", "POST", AS, assignment(vehicleId="v\x00"), 422, "vehicleId"),
    ("create: lower-case t and z", "POST", AS, assignment(**{"from": "2031-01-01t00:00:00z"}), 201, None),
    ("analytics: NUL in the id", "GET", "/v1/analytics/performance/V%00", None, 422, "vehicleId"),
    ("analytics: a window in year 1", "GET", f"{PERF}?from={Y1[:19]}Z&to=0001-01-02T00:00:00Z", None, 422, "from"),
    ("analytics: to in year 1, from defaulted", "GET", f"{PERF}?to={Y1[:19]}Z", None, 422, "to"),
    ("analytics: from year 1 at +14:00", "GET", f"{PERF}?from={Y1.replace('+', '%2B')}", None, 422, "from"),
    ("analytics: to year 9999 at -12:00", "GET", f"{PERF}?to={Y9999}", None, 422, "to"),
    ("analytics: to in 2100", "GET", f"{PERF}?from=2099-12-31T00:00:00Z&to=2100-01-01T00:00:00Z", None, 422, "to"),
    ("analytics: a space for T", "GET", f"{PERF}?from={YESTERDAY.replace('T', '%20')}", None, 422, "from"),
    ("analytics: an offset without a colon", "GET", f"{PERF}?from={YESTERDAY[:-1]}-0000", None, 422, "from"),
    ("analytics: NUL in from", "GET", f"{PERF}?from={YESTERDAY[:-1]}%00Z", None, 422, "from"),
    ("analytics: lower-case t and z", "GET", f"{PERF}?from={YESTERDAY.lower()}", None, 200, None),
    ("analytics: the first day of 2000", "GET", f"{PERF}?from=2000-01-01T00:00:00Z&to=2000-01-02T00:00:00Z", None, 200, None),
    ("analytics: to at 2000, from defaulted", "GET", f"{PERF}?to=2000-01-01T00:00:00Z", None, 200, None),
    ("analytics: December 2099, hourly", "GET", f"{PERF}?from=2099-12-01T00:00:00Z&to=2099-12-31T23:59:00Z&granularity=hour", None, 200, None),
]  # fmt: skip


@pytest.mark.usefixtures("known_vehicle")
@pytest.mark.parametrize(
    ("case", "method", "path", "body", "status", "field"), REQUESTS, ids=[r[0] for r in REQUESTS]
)
async def test_hostile_parameters_are_422_naming_them_quickly(
    api: httpx.AsyncClient,
    case: str,
    method: str,
    path: str,
    body: bytes | None,
    status: int,
    field: str | None,
) -> None:
    headers = {"content-type": JSON} if body is not None else {}
    response = await api.request(method, path, content=body, headers=headers)
    assert response.status_code == status, response.text
    if status >= 400:
        assert response.json()["detail"]
    if field is not None:
        assert field in [e["field"] for e in response.json()["errors"]]


def connect(address: str) -> socket.socket:
    host, port = address.split(":")
    return socket.create_connection((host, int(port)), timeout=GUARD_S)


def until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (a hang fails at GUARD_S)."""
    received = b""
    with sock:
        while chunk := sock.recv(65536):
            received += chunk
    return received


@pytest.mark.parametrize(
    ("case", "sent"),
    [
        ("nothing at all", b""),
        ("half a request line", b"POST /v1/ing"),
        ("headers without their end", b"POST /v1/ingest HTTP/1.1\r\nHost: x\r\n"),
    ],
    ids=["nothing at all", "half a request line", "headers without their end"],
)
def test_a_client_that_never_finishes_its_headers_is_answered_408_and_dropped(
    address: str, case: str, sent: bytes
) -> None:
    sock = connect(address)
    sock.sendall(sent)
    reply = until_closed(sock)
    assert reply.startswith(b"HTTP/1.1 408 ")
    assert json.loads(reply.partition(b"\r\n\r\n")[2])["detail"]


def test_trickled_headers_are_dropped_at_the_header_timeout(address: str) -> None:
    # The header timeout counts from the start, not between bytes: trickling does not extend it.
    sock = connect(address)
    deadline = time.monotonic() + GUARD_S
    with pytest.raises(OSError):  # a send into the closed connection, sooner or later
        for byte in b"GET /healthz HTTP/1.1\r\nX-Slow: " + b"a" * 1000:
            sock.send(bytes([byte]))
            time.sleep(0.05)
            assert time.monotonic() < deadline
    sock.close()


def test_a_client_that_stops_mid_body_is_dropped_and_counted_as_408(address: str) -> None:
    sock = connect(address)
    sock.sendall(
        b"POST /v1/ingest HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
        b"content-length: 1000\r\n\r\n[" + meter("M-half")
    )
    assert until_closed(sock) == b""
    # The app saw its body end early: a 408 in the metrics, not Litestar's 500.
    _until(lambda: 'kilowatch_http_requests_total{status="408"}' in _metrics(address), "408")
    assert 'kilowatch_http_requests_total{status="500"}' not in _metrics(address)


def test_a_slow_but_steady_body_is_read(address: str) -> None:
    body = b"[" + meter(f"S-{uuid.uuid4().hex[:8]}") + b"]"
    sock = connect(address)
    sock.sendall(
        b"POST /v1/ingest HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body)
    )
    for start in range(0, len(body), 20):  # each piece well within BODY_TIMEOUT_S of the last
        sock.sendall(body[start : start + 20])
        time.sleep(0.2)
    assert until_closed(sock).startswith(b"HTTP/1.1 201 ")


def test_an_idle_keep_alive_connection_is_closed(address: str) -> None:
    sock = connect(address)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert until_closed(sock).startswith(b"HTTP/1.1 200 ")  # then closed after KEEP_ALIVE


def test_an_unparsable_request_is_400_in_the_detail_shape(address: str) -> None:
    sock = connect(address)
    sock.sendall(b"GET /v1/vehicles/\xff/status HTTP/1.1\r\nHost: x\r\n\r\n")
    reply = until_closed(sock)
    assert reply.startswith(b"HTTP/1.1 400 ")
    assert json.loads(reply.partition(b"\r\n\r\n")[2])["detail"]


def test_requests_beyond_the_cap_are_503_with_retry_after(address: str) -> None:
    # Requests whose body has not arrived are in progress: hold as many as the cap allows.
    held = [connect(address) for _ in range(MAX_REQUESTS)]
    for sock in held:
        sock.sendall(
            b"POST /v1/ingest HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
            b"content-length: 2\r\n\r\n"
        )

    def one_more() -> httpx.Response:
        return httpx.get(f"http://{address}/healthz", timeout=GUARD_S)

    # The server sees the held requests' headers in its own time: ask until it has.
    refused = _until(lambda: (r := one_more()).status_code == 503 and r, "a 503")
    assert refused.headers["retry-after"] == "1"
    assert "retry later" in refused.json()["detail"]
    held[0].sendall(b"[]")  # one finishes: its answer, then room for another
    assert until_closed_or_answer(held[0]).startswith(b"HTTP/1.1 422 ")
    for sock in held:
        sock.close()
    _until(lambda: one_more().status_code == 200, "room again")


def until_closed_or_answer(sock: socket.socket) -> bytes:
    received = b""
    while b"\r\n\r\n" not in received and (chunk := sock.recv(65536)):
        received += chunk
    return received


def _metrics(address: str) -> str:
    return httpx.get(f"http://{address}/metrics", timeout=GUARD_S).text


def _until(check: Any, what: str) -> Any:
    deadline = time.monotonic() + GUARD_S
    while not (result := check()):
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.05)
    return result


async def test_ingest_answers_quickly_after_hostile_connections(api: httpx.AsyncClient) -> None:
    # The worker is not tied up by what came before: a fresh ingest is served at once.
    a = f"Z-{uuid.uuid4().hex[:8]}"
    response = await asyncio.wait_for(
        api.post("/v1/ingest", content=meter(a), headers={"content-type": JSON}), GUARD_S
    )
    assert response.status_code == 201


def test_no_hostile_input_reached_a_500(address: str) -> None:
    # Run last in the module: every case above went through this server.
    metrics = _metrics(address)
    assert "kilowatch_http_requests_total" in metrics
    assert 'kilowatch_http_requests_total{status="500"}' not in metrics
