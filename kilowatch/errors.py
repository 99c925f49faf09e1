"""Kilowatch's errors and the one handler that turns every error into SPEC §7's shapes."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from litestar import Request, Response
from litestar.exceptions import HTTPException, InternalServerException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

log = logging.getLogger(__name__)


class KilowatchError(Exception):
    """Something went wrong."""

    status_code = 500
    headers: ClassVar[dict[str, str]] = {}

    def __init__(self, message: str | None = None, *, errors: list[dict[str, str]] | None = None):
        self.message = message or (self.__doc__ or "").strip()
        self.errors = errors
        super().__init__(self.message)


class InvalidInput(KilowatchError):
    """Invalid input."""

    status_code = 422


class RequestTimeout(KilowatchError):
    """The request body did not arrive: the client stopped sending it or went away."""

    status_code = 408


async def read_body(request: Request[Any, Any, Any]) -> bytes:
    """The request body, or RequestTimeout when the connection ended before all of it arrived.

    kilowatch.http closes a connection whose body stalls; Litestar reports that as a 500.
    """
    try:
        return await request.body()
    except InternalServerException:  # "client disconnected prematurely", the only one body() raises
        raise RequestTimeout() from None


class NotFound(KilowatchError):
    """Not found."""

    status_code = 404

    def __init__(self, kind: str, key: str):
        self.kind, self.key = kind, key
        super().__init__(f"{kind} {key!r} not found")


class Conflict(KilowatchError):
    """The request conflicts with existing data."""

    status_code = 409


class PayloadTooLarge(KilowatchError):
    """The request body is too large."""

    status_code = 413


class UnsupportedMediaType(KilowatchError):
    """Unsupported content type."""

    status_code = 415


class Unauthorized(KilowatchError):
    """A valid API key is required (Authorization: Bearer <key>)."""

    status_code = 401

    @property
    def headers(self) -> dict[str, str]:  # type: ignore[override]
        return {"WWW-Authenticate": "Bearer"}


class Forbidden(KilowatchError):
    """This API key may not use this route."""

    status_code = 403


class ServiceUnavailable(KilowatchError):
    """The service cannot take this request right now; retry later."""

    status_code = 503

    def __init__(self, message: str | None = None, *, retry_after: int = 1):
        self.retry_after = retry_after
        super().__init__(message)

    @property
    def headers(self) -> dict[str, str]:  # type: ignore[override]
        return {"Retry-After": str(self.retry_after)}


class Overloaded(ServiceUnavailable):
    """The ingest queue is full; retry later."""


class DatabaseUnavailable(ServiceUnavailable):
    """The database is unavailable; retry later."""


def _body(detail: str, errors: list[dict[str, str]] | None = None) -> dict[str, Any]:
    return {"detail": detail, "errors": errors} if errors else {"detail": detail}


def handle_kilowatch_error(_: Request[Any, Any, Any], exc: KilowatchError) -> Response[Any]:
    return Response(
        _body(exc.message, exc.errors), status_code=exc.status_code, headers=exc.headers
    )


def validation_errors(extra: Any) -> list[dict[str, str]]:
    """Litestar's validation `extra` as [{field, message}], fields named as sent."""
    errors = []
    for item in extra if isinstance(extra, list) else []:
        if isinstance(item, dict):
            errors.append(
                {
                    "field": str(item.get("key") or item.get("source") or "body"),
                    "message": str(item.get("message", "invalid value")),
                }
            )
    return errors


def handle_http_exception(_: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    if isinstance(exc, ValidationException):
        errors = validation_errors(exc.extra) or [{"field": "body", "message": exc.detail}]
        return Response(_body("Invalid request", errors), status_code=422)
    headers = {name.lower(): value for name, value in (exc.headers or {}).items()}
    if "allow" in headers:  # a 405: the path's methods, sorted as its OPTIONS answer lists them
        headers["allow"] = ", ".join(sorted(m.strip() for m in headers["allow"].split(",")))
    return Response(_body(exc.detail), status_code=exc.status_code, headers=headers)


def handle_unexpected(_: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("unhandled error", exc_info=exc)
    return Response(_body("Internal server error"), status_code=HTTP_500_INTERNAL_SERVER_ERROR)


exception_handlers: dict[type[Exception], Any] = {
    KilowatchError: handle_kilowatch_error,
    HTTPException: handle_http_exception,
    Exception: handle_unexpected,
}
