"""The ingest fast path agrees with the general path, and defers to it for anything unusual."""
from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kilowatch.ingest import validate

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
LIMITS = validate.Limits(timedelta(seconds=300), timedelta(days=35))
METER = {"meterId": "M-1", "kwhConsumedAc": 1.5, "voltage": 230, "timestamp": "2026-11-29T11:59:00Z"}
VEHICLE = {"vehicleId": "V-1", "soc": 50, "kwhDeliveredDc": 1.2, "batteryTemp": 30.5,
           "timestamp": "2026-11-29T12:58:30+01:00"}


def general(body: Any) -> validate.Parsed:
    items = body if isinstance(body, list) else [body]
    return validate.validate_items(items, LIMITS, NOW)


@pytest.mark.parametrize("body", [
    METER, VEHICLE, {**VEHICLE, "meterId": "M-7"}, {**VEHICLE, "meterId": None}, [],
    [METER, VEHICLE, {**METER, "meterId": "M-2"}],
])
def test_valid_flat_bodies_give_the_general_paths_rows(body: Any) -> None:
    fast = validate.fast_path(json.dumps(body).encode(), LIMITS, NOW)
    assert fast is not None
    expected = general(body)
    assert (fast.rows, fast.rejected, fast.count) == (expected.rows, [], expected.count)


@pytest.mark.parametrize("body", [
    {**METER, "extra": 1},                                      # unknown field
    {**VEHICLE, "soc": None},                                   # null
    {**VEHICLE, "soc": "50"},                                   # string number
    {**VEHICLE, "soc": True},                                   # boolean
    {**VEHICLE, "soc": 101},                                    # out of range
    {**VEHICLE, "vehicleId": "V-1\n"},                          # id with a trailing newline
    {**VEHICLE, "meterId": "bad id"},                           # bad attached meter id
    {**METER, "meterId": None},                                 # meter without an id
    {**VEHICLE, "voltage": 230},                                # both kinds' fields
    {**METER, "soc": 50},
    {k: v for k, v in VEHICLE.items() if k != "batteryTemp"},  # missing field
    {**METER, "timestamp": "2026-11-29T11:59:00"},              # no offset
    {**METER, "timestamp": "2026-09-01T00:00:00Z"},             # too old
    {**METER, "timestamp": "2026-11-29T12:06:00Z"},             # beyond the clock skew
    [METER, {**VEHICLE, "soc": -1}],                            # one bad event in a batch
    {"soc": 5},                                                 # neither id
])
def test_anything_unusual_is_left_to_the_general_path(body: Any) -> None:
    assert validate.fast_path(json.dumps(body).encode(), LIMITS, NOW) is None
    assert general(body).rejected  # and the general path names what is wrong


def test_envelopes_are_left_to_the_general_path() -> None:
    body = [METER, {"type": "vehicle", "payload": VEHICLE}]
    assert validate.fast_path(json.dumps(body).encode(), LIMITS, NOW) is None
    assert len(general(body).rows) == 2


def test_non_json_is_left_to_the_general_path() -> None:
    assert validate.fast_path(b"{nope", LIMITS, NOW) is None
