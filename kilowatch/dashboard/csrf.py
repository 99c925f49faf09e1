"""CSRF protection for the dashboard's forms: a double-submit token, dashboard routes only.

Not Litestar's CSRFConfig: that is app-wide middleware, which would stand in front of the
ingest hot path and set cookies on API responses. Here every page carries a random token both
in an HttpOnly, SameSite=Strict cookie and in its forms; a POST must send both, equal. Another
site can neither read the token nor make the browser send the cookie with its request.
"""

from __future__ import annotations

import hmac
import re
import secrets
from typing import Any

from litestar import Request
from litestar.datastructures import Cookie

from kilowatch.errors import KilowatchError

COOKIE = "kilowatch_csrf"
FIELD = "csrf_token"
_SHAPE = re.compile(r"^[A-Za-z0-9_-]{32,64}$")


class CsrfRefused(KilowatchError):
    """This form has expired or was sent from another site: reload the page and try again."""

    status_code = 403


def token(request: Request[Any, Any, Any]) -> tuple[str, Cookie | None]:
    """The request's token, and the cookie to set when it had none yet."""
    held = request.cookies.get(COOKIE, "")
    if _SHAPE.match(held):
        return held, None
    fresh = secrets.token_urlsafe(32)
    return fresh, Cookie(
        key=COOKIE,
        value=fresh,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def verify(request: Request[Any, Any, Any], form: dict[str, Any]) -> None:
    held = request.cookies.get(COOKIE, "")
    sent = form.get(FIELD)
    if not isinstance(sent, str) or not _SHAPE.match(held):
        raise CsrfRefused()
    if not hmac.compare_digest(sent.encode(), held.encode()):
        raise CsrfRefused()
