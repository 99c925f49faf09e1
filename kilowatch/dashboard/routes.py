"""The dashboard's pages, live fragments (htmx) and forms; `routers(keys)` wires them."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from litestar import Request, Response, Router, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter
from litestar.response import Redirect, Template

from kilowatch import auth
from kilowatch.assignments import service as assignments
from kilowatch.dashboard import csrf, pages, session, signin, views
from kilowatch.dashboard import window as windows
from kilowatch.db.gateway import Gateway
from kilowatch.errors import Conflict, InvalidInput
from kilowatch.metrics import Metrics
from kilowatch.settings import Settings

From = Annotated[str | None, QueryParameter(name="from")]
To = Annotated[str | None, QueryParameter(name="to")]
Preset = Annotated[str | None, QueryParameter(name="window")]
Text = Annotated[str | None, QueryParameter()]


def vehicle_path(vehicle_id: str) -> str:
    return "/vehicles/" + quote(vehicle_id, safe="")


def _window(settings: Settings, preset: str | None, from_: str | None, to: str | None) -> Any:
    return windows.resolve(preset, from_, to, settings)


def _status(window: windows.Window) -> int:
    return 422 if window.errors else 200


# -- fleet -----------------------------------------------------------------------------------


@get("/", name="dashboard:fleet")
async def fleet_view(
    request: Request[Any, Any, Any],
    gateway: NamedDependency[Gateway],
    settings: NamedDependency[Settings],
    metrics: NamedDependency[Metrics],
    preset: Preset = None,
    from_: From = None,
    to: To = None,
) -> Template:
    window = _window(settings, preset, from_, to)
    data = await views.fleet_page(gateway, settings, metrics, window)
    context = {
        **pages.picker(window),
        **data,
        "chart": views.chart(data["summary"]["hourly"], settings.efficiency_threshold),
    }
    context["table"] = _table(window, data["summary"]["hourly"])
    return pages.page(request, "fleet.html", {**context, "section": "fleet"}, _status(window))


@get("/fragments/live", name="dashboard:live")
async def live_fragment(
    request: Request[Any, Any, Any],
    gateway: NamedDependency[Gateway],
    settings: NamedDependency[Settings],
    metrics: NamedDependency[Metrics],
) -> Template:
    live = await views.live_tiles(gateway, settings, metrics)
    return pages.page(request, "partials/live_tiles.html", {"live": live})


def _table(window: windows.Window, hours: list[dict[str, Any]]) -> dict[str, Any]:
    """The chart's figures as a table: per hour up to two days, per UTC day beyond."""
    if window.minutes <= 48 * 60:
        return {"per": "hour", "rows": hours}
    return {"per": "day", "rows": views.daily(hours)}


# -- vehicles --------------------------------------------------------------------------------


@get("/vehicles", name="dashboard:vehicles")
async def vehicles_view(
    request: Request[Any, Any, Any],
    gateway: NamedDependency[Gateway],
    settings: NamedDependency[Settings],
    preset: Preset = None,
    from_: From = None,
    to: To = None,
    sort: Text = None,
    cursor: Text = None,
    faulty_cursor: Annotated[str | None, QueryParameter(name="faultyCursor")] = None,
) -> Template:
    window = _window(settings, preset, from_, to)
    chosen = sort if sort in views.SORTS else "efficiency"
    data = await views.vehicles_page(gateway, settings, window, chosen, faulty_cursor, cursor)
    context = {**pages.picker(window, sort=chosen), **data, "sort": chosen, "page_size": views.PAGE}
    return pages.page(request, "vehicles.html", {**context, "section": "vehicles"}, _status(window))


@get("/vehicles/find", name="dashboard:find")
async def find_vehicle(vehicle_id: Annotated[str, QueryParameter(name="vehicleId")]) -> Redirect:
    return Redirect(path=vehicle_path(vehicle_id.strip()), status_code=303)


async def _vehicle(
    request: Request[Any, Any, Any],
    gateway: Gateway,
    settings: Settings,
    vehicle_id: str,
    window: windows.Window,
    status_code: int = 200,
    form: dict[str, Any] | None = None,
) -> Template:
    data = await views.vehicle_page(gateway, settings, window, vehicle_id)
    hours = data["performance"]["hourly"]
    context = {
        **pages.picker(window),
        **data,
        "vehicle_id": vehicle_id,
        "chart": views.chart(hours, settings.efficiency_threshold),
        "table": _table(window, hours),
        "form": form or {},
        "section": "vehicles",
    }
    return pages.page(request, "vehicle.html", context, status_code)


@get("/vehicles/{vehicle_id:str}", name="dashboard:vehicle")
async def vehicle_view(
    request: Request[Any, Any, Any],
    vehicle_id: FromPath[str],
    gateway: NamedDependency[Gateway],
    settings: NamedDependency[Settings],
    preset: Preset = None,
    from_: From = None,
    to: To = None,
    recorded: Text = None,
) -> Template:
    window = _window(settings, preset, from_, to)
    form = {"recorded": recorded} if recorded else None
    return await _vehicle(request, gateway, settings, vehicle_id, window, _status(window), form)


@get("/vehicles/{vehicle_id:str}/live", name="dashboard:vehicle_live")
async def vehicle_live_fragment(
    request: Request[Any, Any, Any],
    vehicle_id: FromPath[str],
    gateway: NamedDependency[Gateway],
    settings: NamedDependency[Settings],
) -> Template:
    live = await views.vehicle_live(gateway, settings, vehicle_id)
    return pages.page(
        request, "partials/vehicle_live.html", {"live": live, "vehicle_id": vehicle_id}
    )


def _form_time(value: Any) -> str | None:
    text = str(value or "").strip()
    return windows.with_offset(text) if text else None


@post("/vehicles/{vehicle_id:str}/assignments", name="dashboard:assign", status_code=303)
async def record_assignment(
    request: Request[Any, Any, Any],
    vehicle_id: FromPath[str],
    gateway: NamedDependency[Gateway],
    settings: NamedDependency[Settings],
) -> Response[Any]:
    form = dict(await request.form())
    csrf.verify(request, form)
    window = _window(settings, form.get("window"), form.get("wfrom"), form.get("wto"))
    body = {"vehicleId": vehicle_id, "meterId": str(form.get("meterId") or "").strip() or None}
    body["from"] = _form_time(form.get("from"))
    if _form_time(form.get("to")):
        body["to"] = _form_time(form.get("to"))
    try:
        fields = assignments.validate(body)
        async with gateway.read() as conn:
            created = await assignments.create(conn, *fields)
    except (InvalidInput, Conflict) as exc:
        failed = {**form, "errors": exc.errors or [], "message": exc.message}
        return await _vehicle(
            request, gateway, settings, vehicle_id, window, exc.status_code, failed
        )
    return Redirect(
        path=vehicle_path(vehicle_id) + window.query(recorded=str(created["id"])),
        status_code=303,
    )


# -- chargers --------------------------------------------------------------------------------


@get("/chargers", name="dashboard:chargers")
async def chargers_view(
    request: Request[Any, Any, Any],
    gateway: NamedDependency[Gateway],
    settings: NamedDependency[Settings],
    preset: Preset = None,
    from_: From = None,
    to: To = None,
    sort: Text = None,
    cursor: Text = None,
    board_cursor: Annotated[str | None, QueryParameter(name="boardCursor")] = None,
) -> Template:
    window = _window(settings, preset, from_, to)
    chosen = sort if sort in ("meterId", "-unattributedAcKwh") else "meterId"
    data = await views.chargers_page(gateway, settings, window, chosen, cursor, board_cursor)
    context = {
        **pages.picker(window, sort=chosen),
        **data,
        "sort": chosen,
        "board_cursor": board_cursor,
        "utilisation": views.utilisation,
        "page_size": views.PAGE,
        "section": "chargers",
    }
    return pages.page(request, "chargers.html", context, _status(window))


@get("/chargers/board", name="dashboard:board")
async def board_fragment(
    request: Request[Any, Any, Any],
    gateway: NamedDependency[Gateway],
    settings: NamedDependency[Settings],
    board_cursor: Annotated[str | None, QueryParameter(name="boardCursor")] = None,
) -> Template:
    data = await views.board(gateway, settings, board_cursor)
    return pages.page(request, "partials/board.html", {"board": data, "board_cursor": board_cursor})


# Behind the operator guard when keys are set; the sign-in form is open (as are /static files).
GUARDED = (
    fleet_view,
    live_fragment,
    vehicles_view,
    find_vehicle,
    vehicle_view,
    vehicle_live_fragment,
    record_assignment,
    chargers_view,
    board_fragment,
    signin.sign_out,
)
OPEN = (signin.login_form, signin.sign_in)


def routers(keys: auth.ApiKeys) -> list[Router]:
    """The dashboard's routers: GUARDED behind `session.guard` (with keys), OPEN as they are."""
    common: dict[str, Any] = {
        "opt": {"dashboard_keys": keys},
        "include_in_schema": False,
        "exception_handlers": pages.EXCEPTION_HANDLERS,
        "response_headers": pages.SECURITY_HEADERS,
    }
    guards = [session.guard(keys)] if keys.enabled else []
    return [
        Router("/", route_handlers=list(GUARDED), guards=guards, **common),
        Router("/", route_handlers=list(OPEN), **common),
    ]
