"""Rendering dashboard pages: the context every page needs, the window picker, errors as pages."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from litestar import MediaType, Request, Response
from litestar.datastructures import ResponseHeader
from litestar.exceptions import HTTPException, NotFoundException, ValidationException
from litestar.response import Redirect, Template

from kilowatch import auth
from kilowatch.dashboard import csrf, session
from kilowatch.dashboard import window as windows
from kilowatch.errors import KilowatchError, NotFound

PRESET_LABELS = {"24h": "24 h", "7d": "7 d", "30d": "30 d"}
# Scripts, styles and images from this origin only; pages are never framed.
SECURITY_HEADERS = [
    ResponseHeader(
        name="Content-Security-Policy",
        value="default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    ),
    ResponseHeader(name="X-Content-Type-Options", value="nosniff"),
    ResponseHeader(name="Referrer-Policy", value="same-origin"),
]


def page(
    request: Request[Any, Any, Any],
    name: str,
    context: dict[str, Any],
    status_code: int = 200,
) -> Template:
    """Renders `name` with what every page needs: the CSRF token, sign-in state, the clock."""
    token, cookie = csrf.token(request)
    keys: auth.ApiKeys = request.route_handler.opt["dashboard_keys"]
    common = {
        "csrf_token": token,
        "csrf_field": csrf.FIELD,
        "auth_enabled": keys.enabled,
        "now": datetime.now(UTC),
        "path": request.url.path,
    }
    return Template(
        template_name=name,
        context={**common, **context},
        status_code=status_code,
        cookies=[cookie] if cookie else None,
        media_type=MediaType.HTML,
    )


def picker(window: windows.Window, **keep: str | None) -> dict[str, Any]:
    """The window picker's links (keeping `keep`, e.g. the sort) and hidden fields."""
    presets = []
    for key, label in PRESET_LABELS.items():
        link = windows.Window(key, window.from_, window.to).query(**keep)
        presets.append({"key": key, "label": label, "href": link, "current": window.preset == key})
    return {
        "window": window,
        "presets": presets,
        "keep": {k: v for k, v in keep.items() if v is not None},
    }


def error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    if isinstance(exc, session.LoginRequired):
        if request.headers.get("hx-request"):
            # A poll whose session ended: htmx sends the whole page to the login form.
            current = request.headers.get("hx-current-url", "/")
            target = "/login?next=" + session.local_path(_path_of(current))
            return Response(b"", status_code=401, headers={"HX-Redirect": target})
        return Redirect(path=f"/login?next={exc.next_path}", status_code=303)
    if isinstance(exc, KilowatchError):
        status_code, message, headers = exc.status_code, exc.message, exc.headers
        errors = exc.errors or []
    elif isinstance(exc, ValidationException):
        status_code, message, headers, errors = 422, "Invalid request", {}, []
    elif isinstance(exc, HTTPException):
        status_code, message, headers, errors = exc.status_code, exc.detail, {}, []
    else:
        raise exc
    if request.headers.get("hx-request"):
        # A failed poll keeps what it showed; htmx leaves the element alone on an error.
        return Response(message, status_code=status_code, headers=headers)
    context = {
        "status_code": status_code,
        "message": message,
        "errors": errors,
        "unknown_vehicle": isinstance(exc, NotFound) and exc.kind == "vehicle",
        "section": None,
    }
    response = page(request, "error.html", context, status_code)
    response.headers.update(headers)
    return response


def _path_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + ("?" + parts.query if parts.query else "")


EXCEPTION_HANDLERS: dict[type[Exception], Any] = {
    KilowatchError: error,
    HTTPException: error,
    NotFoundException: error,
}
