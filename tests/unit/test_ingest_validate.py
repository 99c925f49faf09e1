"""Validation and classification of telemetry events (SPEC §2), no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kilowatch.ingest import validate
from kilowatch.ingest.schemas import FieldError, MeterRow, VehicleRow

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
LIMITS = validate.Limits(clock_skew=timedelta(seconds=300), max_age=timedelta(days=35))
TS = "2026-11-23T11:59:00Z"


def meter(**extra: Any) -> dict[str, Any]:
    return {"meterId": "M-1", "kwhConsumedAc": 1.5, "voltage": 230.0, "timestamp": TS, **extra}


def vehicle(**extra: Any) -> dict[str, Any]:
    return {
        "vehicleId": "V-1",
        "soc": 55,
        "kwhDeliveredDc": 1.2,
        "batteryTemp": 31.5,
        "timestamp": TS,
        **extra,
    }


def check(item: Any) -> MeterRow | VehicleRow | FieldError:
    return validate.validate_item(item, NOW, LIMITS)


def error_of(item: Any) -> tuple[str, str]:
    result = check(item)
    assert isinstance(result, FieldError), result
    return result.field, result.message


def test_flat_meter_is_classified_by_shape() -> None:
    assert check(meter()) == MeterRow("M-1", datetime(2026, 11, 23, 11, 59, tzinfo=UTC), 1.5, 230.0)


def test_flat_vehicle_with_meter_id_is_a_vehicle() -> None:
    row = check(vehicle(meterId="M-7"))
    assert isinstance(row, VehicleRow) and row.meter_id == "M-7" and row.soc == 55.0


def test_envelope_type_is_case_insensitive() -> None:
    assert isinstance(check({"type": "vehicle", "payload": vehicle()}), VehicleRow)
    assert isinstance(check({"type": "METER", "payload": meter()}), MeterRow)


def test_envelope_contradicting_type_is_rejected_on_type() -> None:
    assert error_of({"type": "METER", "payload": vehicle()})[0] == "type"
    assert error_of({"type": "VEHICLE", "payload": meter()})[0] == "type"


def test_envelope_unknown_type_is_rejected() -> None:
    assert error_of({"type": "CHARGER", "payload": meter()})[0] == "type"


def test_envelope_errors_name_payload_fields() -> None:
    assert error_of({"type": "VEHICLE", "payload": vehicle(soc=101)})[0] == "payload.soc"


def test_event_without_any_id_is_rejected() -> None:
    assert error_of({"soc": 1, "timestamp": TS})[0] == "vehicleId"


def test_non_object_is_rejected_as_body() -> None:
    assert error_of([1, 2])[0] == "body"


@pytest.mark.parametrize(
    ("item", "field"),
    [
        (meter(meterId="-bad"), "meterId"),
        (meter(meterId="x" * 65), "meterId"),
        (vehicle(vehicleId="has space"), "vehicleId"),
        (vehicle(soc="55"), "soc"),
        (vehicle(soc=True), "soc"),
        (vehicle(soc=-0.1), "soc"),
        (vehicle(soc=100.1), "soc"),
        (vehicle(kwhDeliveredDc=-1), "kwhDeliveredDc"),
        (vehicle(kwhDeliveredDc=1000.5), "kwhDeliveredDc"),
        (meter(kwhConsumedAc=float("inf")), "kwhConsumedAc"),
        (meter(kwhConsumedAc=float("nan")), "kwhConsumedAc"),
        (meter(voltage=0), "voltage"),
        (meter(voltage=1500.1), "voltage"),
        (vehicle(batteryTemp=-50.5), "batteryTemp"),
        (vehicle(batteryTemp=100.5), "batteryTemp"),
        (vehicle(timestamp="2026-11-23T11:59:00"), "timestamp"),
        (vehicle(timestamp="yesterday"), "timestamp"),
        (vehicle(timestamp=1700000000), "timestamp"),
        (vehicle(timestamp="2026-11-23T12:05:01Z"), "timestamp"),
        (vehicle(timestamp="2026-10-18T11:59:00Z"), "timestamp"),
        (vehicle(meterId="bad id"), "meterId"),
        (vehicle(colour="red"), "colour"),
        ({"vehicleId": "V-1", "timestamp": TS}, "soc"),
        ({"type": "VEHICLE", "payload": vehicle(), "extra": 1}, "extra"),
    ],
)
def test_invalid_field_is_named(item: dict[str, Any], field: str) -> None:
    name, message = error_of(item)
    assert name == field
    assert message


def test_offsets_are_normalised_to_utc() -> None:
    row = check(meter(timestamp="2026-11-23T17:29:00+05:30"))
    assert isinstance(row, MeterRow) and row.recorded_at == datetime(
        2026, 11, 23, 11, 59, tzinfo=UTC
    )
    assert row.recorded_at.utcoffset() == timedelta(0)


def test_clock_skew_inside_the_limit_is_accepted() -> None:
    assert isinstance(check(vehicle(timestamp="2026-11-23T12:04:59Z")), VehicleRow)


def test_seed_examples_pass() -> None:
    examples = [
        {"meterId": "M123", "kwhConsumedAc": 45.2, "voltage": 230.1, "timestamp": TS},
        {
            "vehicleId": "V456",
            "soc": 82.5,
            "kwhDeliveredDc": 38.1,
            "batteryTemp": 32.2,
            "timestamp": TS,
        },
        {
            "vehicleId": "EV_002",
            "soc": 72.5,
            "kwhDeliveredDc": 4.25,
            "batteryTemp": 38.6,
            "timestamp": TS,
        },
        {"meterId": "METER_001", "kwhConsumedAc": 5.10, "voltage": 231.5, "timestamp": TS},
        {"meterId": "MTR-001", "kwhConsumedAc": 125.5, "voltage": 240.2, "timestamp": TS},
    ]
    assert all(not isinstance(check(e), FieldError) for e in examples)


def parse(body: bytes, ndjson: bool = False) -> validate.Parsed:
    return validate.parse_body(body, ndjson, LIMITS, 10_000, NOW)


def test_huge_number_rejects_only_its_event() -> None:
    parsed = parse(
        b'[{"meterId":"M","kwhConsumedAc":1e400,"voltage":1,"timestamp":"%s"}, 7]' % TS.encode()
    )
    assert [r.index for r in parsed.rejected] == [0, 1]
    assert parsed.rejected[0].errors[0].field == "kwhConsumedAc"


def test_ndjson_skips_blank_lines_and_marks_bad_lines() -> None:
    parsed = parse(b'{"a":1}\n\n   \nnot json\n{"b":2}\n', ndjson=True)
    assert parsed.count == 3
    assert [(r.index, r.errors[0].field) for r in parsed.rejected] == [
        (0, "vehicleId"),
        (1, "body"),
        (2, "vehicleId"),
    ]


def test_unparsable_body_is_one_rejection_on_body() -> None:
    parsed = parse(b"{nope")
    assert parsed.count == 1 and parsed.rows == []
    assert parsed.rejected[0].errors[0].field == "body"


@pytest.mark.parametrize(
    "timestamp",
    [
        "2026-11-23 11:59:00Z",  # a space for T
        "2026-11-23T11:59:00+0000",  # no colon in the offset
        "2026-11-23T11:59Z",  # no seconds
        "2026-11-23T11:59:00.1234567890Z",  # ten fractional digits
        "0001-01-01T00:00:00+14:00",  # before year 1 in UTC
        "9999-12-31T23:59:59-12:00",  # after year 9999 in UTC
        "2026-11-23T11:59:00\u0000Z",
    ],
)
def test_timestamps_outside_the_grammar_or_range_are_named(timestamp: str) -> None:
    assert error_of(vehicle(timestamp=timestamp))[0] == "timestamp"
    assert error_of({"type": "VEHICLE", "payload": vehicle(timestamp=timestamp)})[0] == (
        "payload.timestamp"
    )


def test_lower_case_t_and_z_and_nanoseconds_are_accepted() -> None:
    row = check(vehicle(timestamp="2026-11-23t11:59:00.123456789z"))
    assert isinstance(row, VehicleRow)
    assert row.recorded_at == datetime(2026, 11, 23, 11, 59, 0, 123457, tzinfo=UTC)
