"""Optional API keys over HTTP: device keys ingest, operator keys do everything, the rest is open."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from kilowatch.app import create_app
from kilowatch.dashboard import routes as dashboard
from kilowatch.settings import Settings

DEVICE, OPERATOR = "dev-key-0123456789", "op-key-9876543210"
INGEST = ["/v1/ingest", "/v1/telemetry/ingest"]
# Every operator route, with a concrete path and body (its answer only has to be past auth).
OPERATOR_ROUTES: dict[tuple[str, str], tuple[str, dict[str, Any] | None]] = {
    ("GET", "/v1/vehicles/{vehicle_id:str}/status"): ("/v1/vehicles/V-1/status", None),
    ("GET", "/v1/meters/{meter_id:str}/status"): ("/v1/meters/M-1/status", None),
    ("GET", "/v1/vehicles/status"): ("/v1/vehicles/status", None),
    ("GET", "/v1/meters/status"): ("/v1/meters/status", None),
    ("GET", "/v1/analytics/performance/{vehicle_id:str}"): ("/v1/analytics/performance/V-1", None),
    ("GET", "/v1/analytics/fleet"): ("/v1/analytics/fleet", None),
    ("GET", "/v1/analytics/vehicles"): ("/v1/analytics/vehicles", None),
    ("GET", "/v1/analytics/meters"): ("/v1/analytics/meters", None),
    ("POST", "/v1/assignments"): (
        "/v1/assignments",
        {"vehicleId": "V-1", "meterId": "M-1", "from": "2026-01-01T00:00:00Z"},
    ),
    ("GET", "/v1/assignments"): ("/v1/assignments", None),
    ("DELETE", "/v1/assignments/{assignment_id:str}"): ("/v1/assignments/1", None),
}
OPEN = ["/healthz", "/readyz", "/metrics", "/docs/openapi.json"]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def event() -> dict[str, Any]:
    ts = (datetime.now(UTC) - timedelta(minutes=1)).isoformat().replace("+00:00", "Z")
    return {"meterId": "M-1", "kwhConsumedAc": 1.5, "voltage": 230.0, "timestamp": ts}


@pytest.fixture
async def api(db_url: str) -> AsyncIterator[Any]:
    settings = Settings(
        database_url=db_url, device_api_keys=f"other-device, {DEVICE}", operator_api_keys=OPERATOR
    )
    async with AsyncTestClient(app=create_app(settings)) as test_client:
        yield test_client


async def send(
    api: Any,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    headers: dict[str, str] | None = None,
) -> Any:
    return await api.request(method, path, json=body, headers=headers or {})


def assert_401(response: Any) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    assert set(response.json()) == {"detail"}


def test_every_route_is_open_on_purpose_or_needs_a_key() -> None:
    # A route added later lands in no key group unless app.py puts it in one: fail here, not in
    # production with an open read route.
    app = create_app(Settings(database_url="postgresql://unused/x", operator_api_keys=OPERATOR))
    found = {
        (method, route.path)
        for route in app.routes
        for method in route.methods
        if method not in ("HEAD", "OPTIONS")
    }

    # The dashboard signs operators in itself (tests/api/test_dashboard_auth.py); its sign-in
    # form and its static files are open on purpose.
    def routes_of(handlers: Any) -> set[tuple[str, str]]:
        return {(m, p) for h in handlers for p in h.paths for m in h.http_methods}

    protected = (
        found
        - {("GET", path) for path in OPEN}
        - {(m, p) for m, p in found if p.startswith(("/docs", "/static"))}
        - routes_of(dashboard.OPEN)
    )
    expected = {("POST", path) for path in INGEST} | set(OPERATOR_ROUTES)
    assert protected == expected | routes_of(dashboard.GUARDED)


async def test_ingest_takes_a_device_or_an_operator_key(api: Any, conn: asyncpg.Connection) -> None:
    body, statuses = event(), []
    for path in INGEST:
        for key in (DEVICE, OPERATOR):
            statuses.append((await api.post(path, json=body, headers=bearer(key))).status_code)
    assert statuses == [201, 200, 200, 200]  # stored once, then duplicates
    assert await conn.fetchval("SELECT count(*) FROM meter_readings") == 1


INVALID = [
    {},
    bearer("wrong"),
    bearer(DEVICE[:-1]),
    bearer(DEVICE + "x"),
    bearer(""),
    {"Authorization": DEVICE},
    {"Authorization": f"Basic {DEVICE}"},
]


async def test_ingest_without_a_valid_key_is_401_and_stores_nothing(
    api: Any, conn: asyncpg.Connection
) -> None:
    for headers in INVALID:
        for path in INGEST:
            assert_401(await api.post(path, json=event(), headers=headers))
    # Checked before the body: an invalid body without a key is 401 too, not 415 or 422.
    assert_401(await api.post(INGEST[0], content=b"{", headers={"content-type": "text/plain"}))
    assert await conn.fetchval("SELECT count(*) FROM meter_readings") == 0


async def test_operator_routes_need_an_operator_key(api: Any) -> None:
    for (method, _), (path, body) in OPERATOR_ROUTES.items():
        for headers in INVALID:
            assert_401(await send(api, method, path, body, headers))
        response = await send(api, method, path, body, bearer(DEVICE))
        assert response.status_code == 403, (method, path, response.text)
        assert set(response.json()) == {"detail"}
        response = await send(api, method, path, body, bearer(OPERATOR))
        assert response.status_code not in (401, 403), (method, path, response.text)


async def test_health_metrics_and_docs_stay_open(api: Any) -> None:
    for path in [*OPEN, "/docs"]:
        assert (await api.get(path)).status_code == 200, path


async def test_openapi_documents_the_bearer_scheme(api: Any) -> None:
    schema = (await api.get("/docs/openapi.json")).json()
    scheme = next(iter(schema["components"]["securitySchemes"].values()))
    assert scheme["type"] == "http" and scheme["scheme"] == "bearer"
    paths = schema["paths"]
    assert paths["/v1/ingest"]["post"]["security"]
    assert paths["/v1/vehicles/status"]["get"]["security"]
    assert "security" not in paths["/healthz"]["get"]
    assert "/metrics" not in paths


async def test_keys_are_never_logged_or_echoed(api: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    responses = [
        await api.post(INGEST[0], json=event(), headers=bearer("secret-guess-1")),
        await api.get("/v1/vehicles/status", headers=bearer(DEVICE)),
    ]
    for response in responses:
        assert "secret-guess-1" not in response.text and DEVICE not in response.text
    assert "secret-guess-1" not in caplog.text and DEVICE not in caplog.text


async def test_without_keys_the_api_is_open(client: Any) -> None:
    assert (await client.post(INGEST[0], json=event())).status_code == 201
    assert (await client.get("/v1/vehicles/status")).status_code == 200
    schema = (await client.get("/docs/openapi.json")).json()
    assert "securitySchemes" not in schema.get("components", {})
