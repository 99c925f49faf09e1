"""The dashboard's pages over HTTP (in-process): empty states, errors as pages, the assignment form,
and its hot-table queries against the API's listings. The browser tests (tests/browser) check
the figures a person sees against the API's."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from kilowatch.dashboard import csrf

PAGES = ["/", "/vehicles", "/vehicles?sort=coverage", "/chargers", "/?window=7d"]


def ts(minutes_ago: float) -> str:
    moment = datetime.now(UTC).replace(second=5, microsecond=0) - timedelta(minutes=minutes_ago)
    return moment.isoformat().replace("+00:00", "Z")


async def ingest(client: Any, events: list[dict[str, Any]]) -> None:
    response = await client.post("/v1/ingest", json=events)
    assert response.status_code == 201, response.text


def charging(vehicle_id: str, minutes_ago: float, meter_id: str | None, dc: float = 1.0) -> Any:
    event = {
        "vehicleId": vehicle_id,
        "soc": 55.0,
        "kwhDeliveredDc": dc,
        "batteryTemp": 30.0,
        "timestamp": ts(minutes_ago),
    }
    return {**event, "meterId": meter_id} if meter_id else event


def metered(meter_id: str, minutes_ago: float, ac: float = 1.1) -> dict[str, Any]:
    return {
        "meterId": meter_id,
        "kwhConsumedAc": ac,
        "voltage": 400.0,
        "timestamp": ts(minutes_ago),
    }


def token_of(html: str) -> str:
    found = re.search(rf'name="{csrf.FIELD}" value="([^"]+)"', html)
    assert found, "no CSRF field on the page"
    return found.group(1)


async def test_an_empty_database_says_how_to_fill_it(client: Any) -> None:
    response = await client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "No telemetry yet" in response.text
    assert "kilowatch simulate --backfill" in response.text
    for path in PAGES[1:]:
        response = await client.get(path)
        assert response.status_code == 200, (path, response.text[:300])
    assert "No charger has reported yet" in (await client.get("/chargers")).text
    assert "No vehicle reported in this window" in (await client.get("/vehicles")).text


async def test_pages_render_with_data_and_send_a_strict_csp(client: Any) -> None:
    await ingest(client, [metered("M-1", 2), charging("V-1", 2, "M-1"), charging("V-2", 2, None)])
    for path in [*PAGES, "/vehicles/V-1", "/vehicles/V-2", "/fragments/live", "/chargers/board"]:
        response = await client.get(path)
        assert response.status_code == 200, (path, response.text[:300])
        assert "script-src 'self'" in response.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    fleet = (await client.get("/")).text
    assert "No telemetry yet" not in fleet and 'data-field="charging" data-value="2"' in fleet


async def test_an_unknown_vehicle_is_a_404_page(client: Any) -> None:
    response = await client.get("/vehicles/nobody")
    assert response.status_code == 404
    assert "Unknown vehicle" in response.text and response.headers["content-type"].startswith(
        "text/html"
    )


async def test_a_refused_custom_window_shows_why_and_the_last_24h(client: Any) -> None:
    response = await client.get(
        "/", params={"window": "custom", "from": "2026-01-02T00:00", "to": "2026-01-01T00:00"}
    )
    assert response.status_code == 422
    assert "That window cannot be shown" in response.text
    assert "must be earlier than" in response.text


async def test_the_assignment_form_needs_its_csrf_token(
    client: Any, conn: asyncpg.Connection
) -> None:
    await ingest(client, [charging("V-9", 3, None)])
    page = await client.get("/vehicles/V-9")
    token = token_of(page.text)
    form = {
        "meterId": "M-7",
        "from": (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"),
    }

    refused = await client.post("/vehicles/V-9/assignments", data=form)
    assert refused.status_code == 403 and "reload the page" in refused.text
    forged = await client.post("/vehicles/V-9/assignments", data={**form, csrf.FIELD: "x" * 43})
    assert forged.status_code == 403
    assert await conn.fetchval("SELECT count(*) FROM assignments") == 0

    done = await client.post(
        "/vehicles/V-9/assignments", data={**form, csrf.FIELD: token}, follow_redirects=False
    )
    assert done.status_code == 303, done.text
    assert done.headers["location"].startswith("/vehicles/V-9?window=24h&recorded=")
    listed = (await client.get("/v1/assignments", params={"vehicleId": "V-9"})).json()["items"]
    assert [(a["meterId"], a["to"]) for a in listed] == [("M-7", None)]
    shown = await client.get(done.headers["location"])
    assert "M-7" in shown.text and "recorded." in shown.text

    clash = await client.post(
        "/vehicles/V-9/assignments", data={**form, csrf.FIELD: token}, follow_redirects=False
    )
    assert clash.status_code == 409 and "overlaps" in clash.text  # the form again, with why
    invalid = await client.post(
        "/vehicles/V-9/assignments",
        data={"meterId": "bad id!", "from": "", csrf.FIELD: token},
        follow_redirects=False,
    )
    assert invalid.status_code == 422 and "meterId" in invalid.text


async def test_the_csrf_cookie_is_httponly_and_strict(client: Any) -> None:
    client.cookies.clear()
    response = await client.get("/vehicles")
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{csrf.COOKIE}=")
    assert "httponly" in cookie.lower() and "samesite=strict" in cookie.lower()


async def test_live_counts_equal_the_status_listings(client: Any) -> None:
    await ingest(
        client,
        [
            metered("M-1", 1, ac=2.0),
            metered("M-2", 1, ac=0.0),  # idle
            metered("M-3", 10),  # stale
            charging("V-1", 1, "M-1"),
            charging("V-2", 1, "M-1", dc=0.0),  # attached, not charging
            charging("V-3", 10, "M-2"),  # stale
        ],
    )
    html = (await client.get("/fragments/live")).text

    def shown(field: str) -> int:
        found = re.search(rf'data-field="{field}" data-value="(\d+)"', html)
        assert found, field
        return int(found.group(1))

    async def listed(path: str, **params: str) -> int:
        return len((await client.get(path, params={**params, "limit": "1000"})).json()["items"])

    assert shown("charging") == await listed("/v1/vehicles/status", charging="true") == 1
    assert shown("vehiclesStale") == await listed("/v1/vehicles/status", stale="true") == 1
    assert shown("metersActive") == await listed("/v1/meters/status", active="true") == 1


async def test_attached_vehicles_on_the_board_equal_the_status_listing(client: Any) -> None:
    await ingest(
        client,
        [
            metered("M-1", 1),
            metered("M-2", 1),
            charging("V-1", 1, "M-1"),
            charging("V-2", 1, None),  # on M-2 by assignment
            charging("V-3", 1, None),  # its assignment ended before its heartbeat
            charging("V-4", 10, "M-1"),  # stale: not attached now
        ],
    )
    hour_ago = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    for vehicle_id, to in (("V-2", None), ("V-3", ts(5))):
        body = {"vehicleId": vehicle_id, "meterId": "M-2", "from": hour_ago, "to": to}
        assert (await client.post("/v1/assignments", json=body)).status_code == 201
    html = (await client.get("/chargers/board")).text
    for meter_id in ("M-1", "M-2"):
        row = re.search(rf'<tr data-meter="{meter_id}".*?</tr>', html, re.DOTALL)
        assert row, meter_id
        shown = re.findall(r'data-vehicle="([^"]+)"', row.group(0))
        api = (
            await client.get("/v1/vehicles/status", params={"meterId": meter_id, "stale": "false"})
        ).json()["items"]
        assert shown == [item["vehicleId"] for item in api]
    assert re.findall(r'data-vehicle="([^"]+)"', html) == ["V-1", "V-2"]
