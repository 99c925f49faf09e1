"""Operator sign-in for the dashboard: an operator key once, then an HttpOnly SameSite cookie.

With no API keys configured the dashboard is as open as the API. With keys, every page needs
either `Authorization: Bearer <operator key>` (as the API) or the session cookie the login form
sets. The cookie holds no key: it is `<expiry>.<HMAC-SHA256(operator key, expiry)>`, so every
uvicorn worker can check it with the keys alone (no session store), removing a key from
OPERATOR_API_KEYS ends its sessions, and a device key never gets one.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any
from urllib.parse import quote

from litestar.connection import ASGIConnection
from litestar.datastructures import Cookie
from litestar.handlers import BaseRouteHandler
from litestar.types import Guard

from kilowatch import auth
from kilowatch.errors import Forbidden, KilowatchError

COOKIE = "kilowatch_session"
LIFETIME_S = 12 * 3600  # one operator shift; then the login form again


class LoginRequired(KilowatchError):
    """Sign in with an operator key to see the dashboard."""

    status_code = 401

    def __init__(self, next_path: str):
        self.next_path = next_path
        super().__init__()


def _mac(key: bytes, expires: int) -> str:
    return hmac.new(key, b"kilowatch-dashboard-session:%d" % expires, hashlib.sha256).hexdigest()


def operator_key(keys: auth.ApiKeys, sent: str) -> bytes | None:
    """The operator key equal to `sent`, compared in constant time against every key."""
    token, found = sent.strip().encode(), None
    for key in keys.operator:
        if hmac.compare_digest(token, key):
            found = key
    return found


def issue(key: bytes, now: float | None = None) -> str:
    expires = int(now if now is not None else time.time()) + LIFETIME_S
    return f"{expires}.{_mac(key, expires)}"


def valid(keys: auth.ApiKeys, token: str | None, now: float | None = None) -> bool:
    expires_text, _, mac = (token or "").partition(".")
    if not expires_text.isdigit() or int(expires_text) <= (now if now is not None else time.time()):
        return False
    expires, found = int(expires_text), False
    for key in keys.operator:
        found |= hmac.compare_digest(mac.encode(), _mac(key, expires).encode())
    return found


def cookie(token: str, secure: bool) -> Cookie:
    return Cookie(
        key=COOKIE,
        value=token,
        max_age=LIFETIME_S,
        path="/",
        httponly=True,
        samesite="strict",
        secure=secure,
    )


def cleared(secure: bool) -> Cookie:
    return Cookie(
        key=COOKIE, value="", max_age=0, path="/", httponly=True, samesite="strict", secure=secure
    )


def local_path(path: str | None) -> str:
    """Where to go after signing in: a path on this site only (no open redirect)."""
    if not path or not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/"
    return path


def guard(keys: auth.ApiKeys) -> Guard:
    """Admits operators (cookie or bearer key); a device key is refused, anyone else signs in."""

    def check(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        if valid(keys, connection.cookies.get(COOKIE)):
            return
        role = keys.role(connection.headers.get("authorization", "").encode())
        if role == "operator":
            return
        if role == "device":
            raise Forbidden("A device key cannot open the dashboard: it needs an operator key")
        target = connection.url.path
        if connection.url.query:
            target += "?" + connection.url.query
        raise LoginRequired(quote(target, safe="/?=&%-._~"))

    return check
