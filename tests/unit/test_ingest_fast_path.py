"""The ingest fast path agrees with the general path, and defers to it for anything unusual."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kilowatch.ingest import validate

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
LIMITS = validate.Limits(timedelta(seconds=300), timedelta(days=35))
MAX = 10_000
METER = {
    "meterId": "M-1",
    "kwhConsumedAc": 1.5,
    "voltage": 230,
    "timestamp": "2026-11-29T11:59:00Z",
}
VEHICLE = {
    "vehicleId": "V-1",
    "soc": 50,
    "kwhDeliveredDc": 1.2,
    "batteryTemp": 30.5,
    "timestamp": "2026-11-29T12:58:30+01:00",
}


def general(body: Any) -> validate.Parsed:
    return validate.parse_body(json.dumps(body).encode(), False, LIMITS, MAX, NOW)


def fast(body: Any) -> validate.Parsed | None:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return validate.fast_path(raw, LIMITS, MAX, NOW)


@pytest.mark.parametrize(
    "body",
    [
        METER,
        VEHICLE,
        {**VEHICLE, "meterId": "M-7"},
        {**VEHICLE, "meterId": None},
        [METER, VEHICLE, {**METER, "meterId": "M-2"}],
        # Every form of the one timestamp grammar (kilowatch.timestamps) both paths accept.
        {**METER, "timestamp": "2026-11-29t11:59:00z"},
        {**METER, "timestamp": "2026-11-29T12:59:00.5+01:00"},
        {**METER, "timestamp": "2026-11-29T11:59:00.123456789Z"},  # rounded to .123457
        {**METER, "timestamp": "2026-11-29T11:59:00.9999995-00:00"},  # rounded up a second
    ],
)
def test_valid_flat_bodies_give_the_general_paths_rows(body: Any) -> None:
    parsed = fast(body)
    assert parsed is not None
    expected = general(body)
    assert (parsed.rows, parsed.rejected, parsed.count) == (expected.rows, [], expected.count)


@pytest.mark.parametrize(
    "body",
    [
        {**METER, "extra": 1},  # unknown field
        {**VEHICLE, "soc": None},  # null
        {**VEHICLE, "soc": "50"},  # string number
        {**VEHICLE, "soc": True},  # boolean
        {**VEHICLE, "soc": 101},  # out of range
        {**VEHICLE, "vehicleId": "V-1\n"},  # id with a trailing newline
        {**VEHICLE, "meterId": "bad id"},  # bad attached meter id
        {**METER, "meterId": None},  # meter without an id
        {**VEHICLE, "voltage": 230},  # both kinds' fields
        {**METER, "soc": 50},
        {k: v for k, v in VEHICLE.items() if k != "batteryTemp"},  # missing field
        {**METER, "timestamp": "2026-11-29T11:59:00"},  # no offset
        {**METER, "timestamp": "2026-09-01T00:00:00Z"},  # too old
        {**METER, "timestamp": "2026-11-29T12:06:00Z"},  # beyond the clock skew
        [METER, {**VEHICLE, "soc": -1}],  # one bad event in a batch
        {"soc": 5},  # neither id
        [],  # holds no event: the general path names `body`
        # Forms msgspec's datetime decoding takes and the timestamp grammar refuses.
        {**METER, "timestamp": "2026-11-29 11:59:00Z"},
        {**METER, "timestamp": "2026-11-29T12:59:00+0100"},
        {**METER, "timestamp": "2026-11-29T11:59:00.1234567891Z"},
        {**METER, "timestamp": "2026-11-29T11:59Z"},
        {**METER, "timestamp": "0001-01-01T00:00:00+14:00"},  # would overflow in UTC
        {**METER, "timestamp": "9999-12-31T23:59:59-12:00"},
        {**METER, "timestamp": 1764417540},
    ],
)
def test_anything_unusual_is_left_to_the_general_path(body: Any) -> None:
    assert fast(body) is None
    assert general(body).rejected  # and the general path names what is wrong


def test_envelopes_are_left_to_the_general_path() -> None:
    body = [METER, {"type": "vehicle", "payload": VEHICLE}]
    assert fast(body) is None
    assert len(general(body).rows) == 2


@pytest.mark.parametrize(
    "body",
    [
        b"{nope",
        b'[{"meterId": "M-\xff", "kwhConsumedAc": 1, "voltage": 1, "timestamp": "x"}]',
        b"[" * 5000 + b"]" * 5000,
        b'{"meterId": "M-1", "junk": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        b'{"meterId": "M-1", "voltage": 1e400}',
    ],
)
def test_undecodable_bodies_are_left_to_the_general_path(body: bytes) -> None:
    assert fast(body) is None


def test_more_objects_than_the_batch_limit_are_left_to_the_general_path() -> None:
    # The general path counts elements exactly and answers 413; this decode never starts.
    body = json.dumps([METER] * 3).encode()
    assert validate.fast_path(body, LIMITS, 3, NOW) is not None
    assert validate.fast_path(body, LIMITS, 2, NOW) is None
