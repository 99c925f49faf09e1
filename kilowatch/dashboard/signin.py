"""Signing in to the dashboard with an operator key (see session.py), and out."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Response, get, post
from litestar.params import QueryParameter
from litestar.response import Redirect

from kilowatch import auth
from kilowatch.dashboard import csrf, session
from kilowatch.dashboard.pages import page


@get("/login", name="dashboard:login")
async def login_form(
    request: Request[Any, Any, Any],
    next_path: Annotated[str | None, QueryParameter(name="next")] = None,
) -> Response[Any]:
    if not request.route_handler.opt["dashboard_keys"].enabled:
        return Redirect(path=session.local_path(next_path), status_code=303)
    context = {"next": session.local_path(next_path), "section": None}
    return page(request, "login.html", {**context, "session_hours": session.LIFETIME_S // 3600})


@post("/login", name="dashboard:sign_in", status_code=303)
async def sign_in(request: Request[Any, Any, Any]) -> Response[Any]:
    keys: auth.ApiKeys = request.route_handler.opt["dashboard_keys"]
    form = dict(await request.form())
    csrf.verify(request, form)
    next_path = session.local_path(form.get("next"))
    sent = str(form.get("key") or "")
    key = session.operator_key(keys, sent) if sent.strip() else None
    if key is None:
        device = bool(sent.strip()) and keys.role(f"Bearer {sent.strip()}".encode()) == "device"
        message = (
            "That is a device key: devices may only send telemetry. Sign in with an operator key."
            if device
            else "That is not an operator key."
        )
        context: dict[str, Any] = {"next": next_path, "error": message, "section": None}
        context["session_hours"] = session.LIFETIME_S // 3600
        return page(request, "login.html", context, 403 if device else 401)
    secure = request.url.scheme == "https"
    return Redirect(
        path=next_path, status_code=303, cookies=[session.cookie(session.issue(key), secure)]
    )


@post("/logout", name="dashboard:sign_out", status_code=303)
async def sign_out(request: Request[Any, Any, Any]) -> Response[Any]:
    csrf.verify(request, dict(await request.form()))
    secure = request.url.scheme == "https"
    return Redirect(path="/login", status_code=303, cookies=[session.cleared(secure)])
