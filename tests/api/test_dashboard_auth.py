"""With API keys the dashboard asks for an operator key once, then trusts its session cookie."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from kilowatch.app import create_app
from kilowatch.dashboard import csrf, routes, session
from kilowatch.settings import Settings

DEVICE, OPERATOR = "dev-key-0123456789", "op-key-9876543210"


@pytest.fixture
async def keyed(db_url: str) -> AsyncIterator[Any]:
    settings = Settings(database_url=db_url, device_api_keys=DEVICE, operator_api_keys=OPERATOR)
    async with AsyncTestClient(app=create_app(settings)) as test_client:
        yield test_client


def guarded_paths() -> list[tuple[str, str]]:
    """Every guarded dashboard route, with a concrete path."""
    found = []
    for handler in routes.GUARDED:
        for path in handler.paths:
            for method in handler.http_methods:
                found.append((method, path.replace("{vehicle_id:str}", "V-1")))
    return found


async def sign_in_form(client: Any, next_path: str = "/") -> str:
    response = await client.get("/login", params={"next": next_path})
    assert response.status_code == 200
    found = re.search(rf'name="{csrf.FIELD}" value="([^"]+)"', response.text)
    assert found
    return found.group(1)


async def test_every_page_without_a_session_goes_to_the_sign_in_form(keyed: Any) -> None:
    for method, path in guarded_paths():
        response = await keyed.request(method, path, follow_redirects=False)
        if method == "GET" or not path.startswith("/logout"):
            assert response.status_code == 303, (method, path, response.status_code)
            assert response.headers["location"].startswith("/login?next=")
    response = await keyed.get("/vehicles?sort=loss", follow_redirects=False)
    assert response.headers["location"] == "/login?next=/vehicles?sort=loss"


async def test_a_poll_without_a_session_sends_the_page_to_sign_in(keyed: Any) -> None:
    response = await keyed.get(
        "/fragments/live",
        headers={"HX-Request": "true", "HX-Current-URL": "http://testserver.local/chargers"},
    )
    assert response.status_code == 401
    assert response.headers["hx-redirect"] == "/login?next=/chargers"


async def test_an_operator_signs_in_once_and_gets_a_strict_httponly_cookie(keyed: Any) -> None:
    token = await sign_in_form(keyed, "/chargers")
    response = await keyed.post(
        "/login",
        data={"key": OPERATOR, "next": "/chargers", csrf.FIELD: token},
        follow_redirects=False,
    )
    assert response.status_code == 303 and response.headers["location"] == "/chargers"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{session.COOKIE}=") and OPERATOR not in cookie
    assert "httponly" in cookie.lower() and "samesite=strict" in cookie.lower()
    assert "Path=/" in cookie
    for _, path in guarded_paths():
        if path.startswith(("/vehicles/V-1", "/vehicles/find", "/logout")):
            continue  # an unknown vehicle (a 404 page), a form's target, POSTs
        page = await keyed.get(path)
        assert page.status_code == 200, (path, page.text[:200])
    assert "Sign out" in (await keyed.get("/")).text

    # The cookie opens the dashboard only: the API still wants its bearer key.
    assert (await keyed.get("/v1/vehicles/status")).status_code == 401

    out = await keyed.post(
        "/logout", data={csrf.FIELD: keyed.cookies[csrf.COOKIE]}, follow_redirects=False
    )
    assert out.status_code == 303 and 'kilowatch_session=""' in out.headers["set-cookie"]
    keyed.cookies.delete(session.COOKIE)
    assert (await keyed.get("/", follow_redirects=False)).status_code == 303


async def test_a_device_key_or_a_wrong_key_is_refused(keyed: Any) -> None:
    token = await sign_in_form(keyed)
    device = await keyed.post("/login", data={"key": DEVICE, csrf.FIELD: token})
    assert device.status_code == 403 and "That is a device key" in device.text
    wrong = await keyed.post("/login", data={"key": "guess", csrf.FIELD: token})
    assert wrong.status_code == 401 and "not an operator key" in wrong.text
    for response in (device, wrong):
        assert session.COOKIE not in response.headers.get("set-cookie", "")
        assert DEVICE not in response.text and "guess" not in response.text.split("<form")[1]
    no_token = await keyed.post("/login", data={"key": OPERATOR})
    assert no_token.status_code == 403 and session.COOKIE not in no_token.headers.get(
        "set-cookie", ""
    )


async def test_bearer_keys_work_as_for_the_api(keyed: Any) -> None:
    assert (
        await keyed.get("/", headers={"Authorization": f"Bearer {OPERATOR}"})
    ).status_code == 200
    device = await keyed.get("/", headers={"Authorization": f"Bearer {DEVICE}"})
    assert device.status_code == 403 and "device key" in device.text


async def test_a_forged_session_cookie_is_refused(keyed: Any) -> None:
    keyed.cookies.set(session.COOKIE, "99999999999.0123456789abcdef")
    assert (await keyed.get("/", follow_redirects=False)).status_code == 303


async def test_without_keys_there_is_no_sign_in(client: Any) -> None:
    response = await client.get("/login", params={"next": "/chargers"}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/chargers"
    assert "Sign out" not in (await client.get("/")).text
