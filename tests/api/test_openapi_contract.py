"""The OpenAPI document keeps its word: schemathesis against a real server, bounded and seeded.

The schemathesis CLI runs every operation of /docs/openapi.json (examples, coverage, fuzzing and
stateful phases; positive and negative data; EXAMPLES cases per operation and phase; a fixed
seed) against the app under uvicorn on a fresh migrated database that holds the document's
example devices, an assignment and recent readings, so 200s happen. All its checks run: no 5xx,
documented statuses, headers and content types, bodies conforming to their schemas,
schema-valid requests accepted and schema-violating ones refused, 405 with `Allow`, OPTIONS
listing the documented methods. This module is also its hooks file (SCHEMATHESIS_HOOKS), adding
what JSON Schema cannot say:

- a response has no field its schema does not name;
- a schema-valid request is refused (422) only for a rule the document states in prose: an
  analytics window's order and span, an assignment's `to` after `from`, a cursor the API did
  not issue, an instant outside 2000-2099 reached through an offset;
- ingest judges each event on its own: schema-valid events, their timestamps set just before
  sending (the accepted window is relative to now), are all stored; a schema-violating body is
  refused or has its invalid events reported (their neighbours are stored);
- every operation answers 2xx at least once.

Run on the embedded PostgreSQL only: the contract does not depend on the server's version, and
the hostile-input suite covers both.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jsonschema_rs
import pytest
import schemathesis

from kilowatch import timestamps
from kilowatch.bench import server

SEED = 20260131
EXAMPLES = 10  # per operation, in the fuzzing and stateful phases
RUN_GUARD_S = 300  # a hang, not a slow run
GUARD_S = 10
INGEST = ("/v1/ingest", "/v1/telemetry/ingest")
NDJSON = "application/x-ndjson"
FRESH_MAX = 100  # events; see fresh()
# A busy shared machine must not turn a slow read into a 503: deadlines are not what this
# tests (the frozen-database tests are about them).
DEADLINES = {"db_timeout_s": 15, "flush_timeout_s": 15, "connect_timeout_s": 5}
CONFIG = """
[checks.positive_data_acceptance]
# A 422 of a schema-valid request is judged by `refused_only_for_stated_rules`.
expected-statuses = ["2xx", "404", "409", "422"]

[checks.negative_data_rejection]
# More events than maxItems is 413, and a body without a Content-Type 415, as documented.
expected-statuses = ["404", "413", "415", "422"]

[[operations]]
# A batch with invalid events stores the valid ones: `ingest_judges_each_event` checks it.
include-path-regex = "ingest$"
checks.negative_data_rejection.enabled = false

[[operations]]
# The alias is the same route: fuzzed, not walked through every boundary a second time.
include-path = "/v1/telemetry/ingest"
phases.coverage.enabled = false
"""

pytestmark = pytest.mark.parametrize("server_url", ["pg18"], indirect=True)


def stamp(minutes: float) -> str:
    return timestamps.format_z(datetime.now(UTC) - timedelta(minutes=minutes))


# -- The run ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def address(module_db_url: str) -> Iterator[str]:
    with server.running(module_db_url, workers=1, **DEADLINES) as address:
        seed(f"http://{address}")
        yield address


def seed(base: str) -> None:
    """The document's example devices and `0` (hypothesis's first pick), and assignment 1."""
    events: list[dict[str, Any]] = []
    for minute in range(1, 120, 7):
        for meter in ("M-17", "0"):
            events.append(
                {"meterId": meter, "kwhConsumedAc": 0.8, "voltage": 230, "timestamp": stamp(minute)}
            )
        for vehicle, meter in (("V-42", "M-17"), ("0", None)):
            event = {"vehicleId": vehicle, "soc": 50, "kwhDeliveredDc": 0.7, "batteryTemp": 25}
            events.append(
                {**event, "timestamp": stamp(minute), **({"meterId": meter} if meter else {})}
            )
    assert httpx.post(f"{base}/v1/ingest", json=events, timeout=GUARD_S).status_code == 201
    assignment = {"vehicleId": "0", "meterId": "0", "from": stamp(24 * 60)}
    response = httpx.post(f"{base}/v1/assignments", json=assignment, timeout=GUARD_S)
    assert response.status_code == 201 and response.json()["id"] == 1


def test_schemathesis_finds_no_mismatch(address: str, tmp_path: Path) -> None:
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    report = tmp_path / "report.json"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "schemathesis.cli",
            f"--config-file={config}",
            "run",
            f"http://{address}/docs/openapi.json",
            # Every check is on by default (naming them here would override CONFIG's per-operation
            # choices).
            f"--seed={SEED}",
            f"--max-examples={EXAMPLES}",
            "--workers=1",
            "--generation-database=none",
            f"--request-timeout={GUARD_S}",
            "--report=json",
            f"--report-json-path={report}",
            "--no-color",
        ],
        env={**os.environ, "SCHEMATHESIS_HOOKS": __file__},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=RUN_GUARD_S,
        check=False,
    )
    # The report's end holds the failures and the summary.
    assert run.returncode == 0, run.stdout[-30_000:] + run.stderr[-5_000:]
    summary = json.loads(report.read_text())
    assert summary["operations"]["tested"] == summary["operations"]["total"] == 15, summary
    assert summary["test_cases"]["generated"] > 1000, summary["test_cases"]


async def test_tiny_energies_are_stored_as_zero_and_analytics_still_answer(address: str) -> None:
    # Found by the run above: PostgreSQL raises on a float8 product that underflows, so one
    # stored 5e-324 kWh made every analytics read of its window a 422.
    base, at = f"http://{address}", stamp(3)
    events = [
        {"meterId": "M-tiny", "kwhConsumedAc": 5e-324, "voltage": 230, "timestamp": at},
        {
            "vehicleId": "V-tiny",
            "soc": 50,
            "kwhDeliveredDc": 1e-300,
            "batteryTemp": 20,
            "timestamp": at,
            "meterId": "M-tiny",
        },
        {"meterId": "M-tiny", "kwhConsumedAc": 2.5e-10, "voltage": 230, "timestamp": stamp(2)},
    ]
    async with httpx.AsyncClient(base_url=base, timeout=GUARD_S) as api:
        assert (await api.post("/v1/ingest", json=events)).json()["accepted"] == 3
        status = (await api.get("/v1/meters/M-tiny/status")).json()
        assert status["kwhConsumedAc"] == 0.0 and status["active"] is False
        vehicle = (await api.get("/v1/vehicles/V-tiny/status")).json()
        assert vehicle["kwhDeliveredDc"] == 0.0 and vehicle["charging"] is False
        for path in (
            "/v1/analytics/fleet?granularity=hour",
            "/v1/analytics/vehicles",
            "/v1/analytics/meters",
            "/v1/analytics/performance/V-tiny?granularity=hour",
        ):
            response = await api.get(path)
            assert response.status_code == 200, (path, response.text)


def test_options_and_405_list_the_documented_methods(address: str) -> None:
    document = httpx.get(f"http://{address}/docs/openapi.json", timeout=GUARD_S).json()
    for template, item in document["paths"].items():
        path = template.replace("{vehicle_id}", "V-42").replace("{meter_id}", "M-17")
        path = path.replace("{assignment_id}", "99")
        allowed = ", ".join(sorted({"OPTIONS", *(method.upper() for method in item)}))
        options = httpx.options(f"http://{address}{path}", timeout=GUARD_S)
        assert (options.status_code, options.headers["allow"]) == (204, allowed), template
        refused = httpx.request("PATCH", f"http://{address}{path}", timeout=GUARD_S)
        assert (refused.status_code, refused.headers["allow"]) == (405, allowed), template
        assert refused.json()["detail"]


# -- Hooks and checks for the run (loaded by schemathesis from this file) -------------------


@schemathesis.serializer(NDJSON)
def ndjson(ctx: Any, value: Any) -> bytes:
    # The document reads the stream as an array, as OpenAPI 3.2 does: an element a line.
    items = value if isinstance(value, list) else [value]
    return b"".join(json.dumps(item).encode() + b"\n" for item in items)


def positive(case: schemathesis.Case) -> bool:
    return case.meta is None or case.meta.generation.mode.is_positive


def fresh(case: schemathesis.Case) -> list[dict[str, Any]] | None:
    """A schema-valid ingest body's events, to be sent with timestamps just before now; None for
    other cases and for the largest batches, whose events are judged (and refused as too old)
    but not stored, so the database stays small and reads stay quick."""
    if case.path not in INGEST or not positive(case) or case.body is None:
        return None
    events = case.body if isinstance(case.body, list) else [case.body]
    return events if len(events) <= FRESH_MAX else None


@schemathesis.hook
def before_call(context: Any, case: schemathesis.Case, kwargs: dict[str, Any]) -> None:
    for index, event in enumerate(fresh(case) or []):
        event.get("payload", event)["timestamp"] = stamp(1 + index / 1000)


def _closed(node: Any) -> Any:
    """`node` with `additionalProperties: false` on every object schema that has properties."""
    if isinstance(node, dict):
        node = {key: _closed(value) for key, value in node.items()}
        if "properties" in node:
            node.setdefault("additionalProperties", False)
    elif isinstance(node, list):
        node = [_closed(item) for item in node]
    return node


@schemathesis.check
def no_undocumented_fields(ctx: Any, response: Any, case: schemathesis.Case) -> None:
    documented = case.operation.definition.raw["responses"].get(str(response.status_code), {})
    schema = documented.get("content", {}).get("application/json", {}).get("schema")
    if schema is None or not response.content:
        return
    components = _closed(case.operation.schema.raw_schema.get("components", {}))
    validator = jsonschema_rs.validator_for({**_closed(schema), "components": components})
    errors = [error.message for error in validator.iter_errors(response.json())]
    assert not errors, f"fields the document does not name: {errors}"


# (field, a phrase of the message): refusals of schema-valid requests for rules the document
# states in prose. A cursor is opaque: any refusal of one is of that kind.
STATED_RULES = [
    ("from", "must be earlier than `to`"),
    ("to", "window exceeds"),
    ("to", "must be later than `from`"),
    ("from", "must be from 2000-01-01T00:00:00Z to before 2100-01-01T00:00:00Z"),
    ("to", "must be from 2000-01-01T00:00:00Z to before 2100-01-01T00:00:00Z"),
]


@schemathesis.check
def refused_only_for_stated_rules(ctx: Any, response: Any, case: schemathesis.Case) -> None:
    if not positive(case) or response.status_code != 422 or case.path in INGEST:
        return
    body = response.json()
    assert body.get("errors"), f"a schema-valid request refused: {body}"
    for error in body["errors"]:
        field, message = error["field"], error["message"]
        assert field == "cursor" or any(
            field == name and phrase in message for name, phrase in STATED_RULES
        ), f"a schema-valid request refused: {error}"


@schemathesis.check
def ingest_judges_each_event(ctx: Any, response: Any, case: schemathesis.Case) -> None:
    if case.path not in INGEST or response.status_code not in (200, 201, 422):
        return
    result = response.json()
    if positive(case):
        fields = {error["field"] for r in result["rejected"] for error in r["errors"]}
        messages = {error["message"] for r in result["rejected"] for error in r["errors"]}
        if fresh(case) is not None:
            assert response.status_code in (200, 201) and not fields, result
        else:  # valid but for the window relative to now
            assert fields <= {"timestamp", "payload.timestamp"}, fields
            assert all(m.startswith(("is older than", "is in the future")) for m in messages)
    elif response.status_code != 422 and not (
        # A body that is not an array has no NDJSON spelling but one line: it is not invalid.
        case.media_type == NDJSON and not isinstance(case.body, list)
    ):
        assert result["rejected"], "a schema-violating body was stored whole"


@schemathesis.check
class EveryOperationAnswers2xx:
    """Fail if any tested operation never answered 2xx: its success schema went unchecked."""

    def __init__(self) -> None:
        self.tested: set[str] = set()
        self.reached: set[str] = set()

    def after_response(self, ctx: Any, response: Any, case: schemathesis.Case) -> None:
        self.tested.add(case.operation.label)
        if 200 <= response.status_code < 300:
            self.reached.add(case.operation.label)

    def after_run(self, ctx: Any) -> None:
        missing = self.tested - self.reached
        assert not missing, "never answered 2xx: " + ", ".join(sorted(missing))
