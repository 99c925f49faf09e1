"""The OpenAPI document's own promises, read from the app (no server): statuses, headers, shapes,
and patterns the API's parsers accept. test_openapi_contract.py holds the API to them."""

from __future__ import annotations

import re
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kilowatch import errors, openapi, timestamps
from kilowatch.app import create_app
from kilowatch.ingest.schemas import TIMESTAMP_JSON_PATTERN, check_device_id
from kilowatch.settings import Settings

URL = "postgresql://unused@127.0.0.1:1/x"  # the document is built without a database
METHODS = {"get", "post", "put", "patch", "delete"}


def document(**keys: str) -> dict[str, Any]:
    return create_app(Settings(database_url=URL, **keys)).openapi_schema.to_schema()


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in doc["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


@pytest.fixture(scope="module")
def open_doc() -> dict[str, Any]:
    return document()


@pytest.fixture(scope="module")
def keyed_doc() -> dict[str, Any]:
    return document(device_api_keys="device-key", operator_api_keys="operator-key")


def test_every_operation_documents_its_errors_in_the_problem_shape(
    open_doc: dict[str, Any],
) -> None:
    assert len(operations(open_doc)) == 15
    for method, path, operation in operations(open_doc):
        responses = operation["responses"]
        assert "400" not in responses, (method, path)  # Litestar's shape; ours is 422
        # The request cap (kilowatch.http) answers 503 on any route.
        assert "Retry-After" in responses["503"]["headers"], (method, path)
        if operation.get("parameters") or operation.get("requestBody"):
            assert "422" in responses, (method, path)
        for status, response in responses.items():
            assert response["description"], (method, path, status)
            if status >= "400" and not (path.endswith("ingest") and status == "422"):
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Problem"}, (method, path, status)
    problem = open_doc["components"]["schemas"]["Problem"]
    assert problem["required"] == ["detail"] and set(problem["properties"]) == {"detail", "errors"}
    assert "securitySchemes" not in open_doc["components"]


def test_errors_are_rendered_in_the_documented_shape() -> None:
    for body in (errors._body("x"), errors._body("x", [{"field": "limit", "message": "why"}])):
        msgspec.convert(body, openapi.Problem)


def test_with_keys_guarded_operations_document_401_and_operator_ones_403(
    keyed_doc: dict[str, Any],
) -> None:
    assert keyed_doc["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
    for method, path, operation in operations(keyed_doc):
        responses = operation["responses"]
        if path in ("/healthz", "/readyz"):
            assert "security" not in operation and "401" not in responses
            continue
        assert operation["security"] == [{"apiKey": []}], (method, path)
        assert responses["401"]["headers"]["WWW-Authenticate"]["required"], (method, path)
        assert ("403" in responses) == (not path.endswith("ingest")), (method, path)


def test_the_ingest_body_has_every_shape(open_doc: dict[str, Any]) -> None:
    for path in ("/v1/ingest", "/v1/telemetry/ingest"):
        content = open_doc["paths"][path]["post"]["requestBody"]["content"]
        shapes = content["application/json"]["schema"]["oneOf"]
        titles = [shape.get("title") for shape in shapes]
        assert titles == ["MeterEvent", "VehicleEvent", "MeterEnvelope", "VehicleEnvelope", None]
        batch, ndjson = shapes[-1], content["application/x-ndjson"]["schema"]
        for array in (batch, ndjson):
            assert array["type"] == "array" and array["minItems"] == 1
            assert array["maxItems"] == Settings(database_url=URL).max_batch
            assert [item["title"] for item in array["items"]["oneOf"]] == titles[:-1]
        for shape in shapes[:4]:
            assert shape["additionalProperties"] is False  # unknown fields are rejected
        assert shapes[0]["properties"]["timestamp"]["format"] == "date-time"
        assert shapes[2]["properties"]["payload"]["title"] == "MeterEvent"


def test_parameters_state_their_patterns_and_bounds(open_doc: dict[str, Any]) -> None:
    found: dict[str, dict[str, Any]] = {}
    for _, _, operation in operations(open_doc):
        for parameter in operation.get("parameters", []):
            found.setdefault(parameter["name"], parameter["schema"])
    assert (
        found["vehicle_id"]["pattern"]
        == found["meterId"]["pattern"]
        == "^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"
    )
    assert found["from"]["format"] == found["to"]["format"] == "date-time"
    assert found["from"]["pattern"] == TIMESTAMP_JSON_PATTERN
    assert (found["limit"]["minimum"], found["limit"]["maximum"]) == (1, 1000)
    assert found["cursor"]["pattern"] == openapi.CURSOR_PATTERN
    assert found["assignment_id"] == {
        "type": "integer",
        "format": "int64",
        "minimum": 1,
        "maximum": 2**63 - 1,
        "description": found["assignment_id"]["description"],
    }
    assert found["sort"]["enum"] and found["granularity"]["enum"]
    assert found["charging"]["type"] == ["boolean", "null"]


@settings(max_examples=300, derandomize=True, database=None)
@given(st.from_regex(TIMESTAMP_JSON_PATTERN.removesuffix("$") + r"\Z"))
def test_every_timestamp_the_pattern_admits_is_in_the_grammar(value: str) -> None:
    # The pattern is the grammar within its years; what parse() may still refuse is an impossible
    # date (format: date-time excludes it) or an instant outside the range through its offset.
    try:
        timestamps.parse(value)
    except ValueError as exc:
        assert str(exc) == "is not a valid date and time" or str(exc).startswith(
            "must be from 2000-01-01T00:00:00Z"
        ), (value, exc)


@settings(max_examples=300, derandomize=True, database=None)
@given(st.from_regex(openapi.DEVICE_ID_JSON_PATTERN.removesuffix("$") + r"\Z"))
def test_every_id_the_pattern_admits_is_a_device_id(value: str) -> None:
    assert check_device_id(value, "vehicleId") == value
    assert re.fullmatch(openapi.DEVICE_ID_JSON_PATTERN.removesuffix("$"), value)


# SPEC §2, §4, §5, §5.2, §5.3 and §7's field lists, as the spec writes them.
SPEC_FIELDS = {
    "IngestResult": "accepted duplicates rejected",
    "Rejection": "index errors",
    "FieldError": "field message",
    "VehicleStatus": "vehicleId soc kwhDeliveredDc batteryTemp meterId recordedAt charging stale",
    "MeterStatus": "meterId kwhConsumedAc voltage recordedAt active stale",
    "VehicleStatusPage": "items nextCursor",
    "Assignment": "id vehicleId meterId from to",
    "Performance": "vehicleId from to totalAcKwh totalDcKwh attachedDcKwh efficiency lossKwh "
    "coverage avgBatteryTemp minBatteryTemp maxBatteryTemp vehicleReadings meterReadings meters "
    "threshold belowThreshold estimate estimateReason faultSuspected hourly",
    "MeterUse": "meterId acKwh minutes",
    "VehicleHour": "hour totalAcKwh totalDcKwh attachedDcKwh efficiency",
    "FleetSummary": "from to vehicles meters totalAcKwh totalDcKwh attachedDcKwh efficiency "
    "coverage lossKwh meterAcKwh unattributedAcKwh belowThreshold faultSuspected threshold hourly",
    "FleetHour": "hour totalAcKwh totalDcKwh attachedDcKwh efficiency meterAcKwh",
    "FleetVehicle": "vehicleId totalAcKwh totalDcKwh attachedDcKwh efficiency coverage lossKwh "
    "vehicleReadings meterReadings belowThreshold estimate estimateReason faultSuspected",
    "FleetMeter": "meterId acKwh attributedAcKwh unattributedAcKwh meterReadings matchedMinutes "
    "vehicles",
    "Estimate": "efficiency low high minutes sharedMinutes",
}
OPTIONAL = {"hourly"}  # only with granularity=hour


def test_response_shapes_have_the_spec_fields(open_doc: dict[str, Any]) -> None:
    schemas = open_doc["components"]["schemas"]
    for name, fields in SPEC_FIELDS.items():
        assert set(schemas[name]["properties"]) == set(fields.split()), name
        assert set(schemas[name]["required"]) == set(fields.split()) - OPTIONAL, name
    estimate = schemas["Performance"]["properties"]["estimate"]["oneOf"]
    assert estimate == [{"$ref": "#/components/schemas/Estimate"}, {"type": "null"}]
