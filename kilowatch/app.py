"""The Litestar application factory and its lifespan (pool, background tasks)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
from collections.abc import AsyncIterator, Coroutine
from typing import Any

from litestar import Litestar, Router
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components

from kilowatch import auth, errors, health, lifetime, logs, metrics, openapi
from kilowatch.analytics import routes as analytics_routes
from kilowatch.assignments import routes as assignment_routes
from kilowatch.dashboard import assets as dashboard_assets
from kilowatch.dashboard import routes as dashboard_routes
from kilowatch.db import partitions
from kilowatch.db.gateway import Gateway
from kilowatch.ingest import routes as ingest_routes
from kilowatch.ingest.service import Ingestor
from kilowatch.rollups import refresher
from kilowatch.settings import Settings
from kilowatch.status import routes as status_routes

log = logging.getLogger(__name__)


def _gateway(state: State, settings: NamedDependency[Settings]) -> Gateway:
    # `settings` is unused: depending on it puts `gateway` in a later dependency batch than
    # `settings`, so a route taking both resolves them one after the other. Litestar resolves
    # the dependencies of one batch in an anyio task group, a task each: more CPU than a
    # status lookup's own work.
    return state.gateway  # type: ignore[no-any-return]


def _settings(state: State) -> Settings:
    return state.settings  # type: ignore[no-any-return]


def _ingestor(state: State) -> Ingestor:
    return state.ingestor  # type: ignore[no-any-return]


def _metrics(state: State) -> metrics.Metrics:
    return state.metrics  # type: ignore[no-any-return]


def _guarded(keys: auth.ApiKeys, role: auth.Role, handlers: list[Any]) -> list[Any]:
    if not keys.enabled:
        return handlers  # an open API runs no check at all
    return [
        Router(
            "/",
            route_handlers=handlers,
            middleware=[auth.middleware(keys, role)],
            security=auth.security(),
        )
    ]


def _background_jobs(app: Litestar, gateway: Gateway) -> dict[str, Coroutine[Any, Any, None]]:
    """Each worker's long-running jobs, by name: started once the gateway is up, cancelled
    before it closes. Each one must survive its own errors (log, back off, retry)."""
    settings: Settings = app.state.settings
    jobs = {
        "partition-maintenance": partitions.run_forever(
            gateway, settings, observer=app.state.metrics, before_drop=refresher.before_drop
        ),
    }
    if settings.rollup_refresh:
        jobs["rollup-refresher"] = refresher.run_forever(
            gateway, settings, observer=app.state.metrics
        )
    return jobs


def _ended(job: asyncio.Task[None]) -> None:
    if not job.cancelled():
        # Jobs handle their own errors; ending at all, before shutdown, is a bug.
        log.error("background job ended", exc_info=job.exception(), extra={"job": job.get_name()})


@contextlib.asynccontextmanager
async def lifespan(app: Litestar) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    app_metrics: metrics.Metrics = app.state.metrics
    app_metrics.forget_dead_workers()
    gateway = app.state.gateway = Gateway(settings, observer=app_metrics.database_error)
    await gateway.start()
    app.state.ingestor = Ingestor(gateway, settings, observer=app_metrics)
    app.state.ingestor.start()
    jobs = [
        asyncio.create_task(job, name=f"kilowatch-{name}")
        for name, job in _background_jobs(app, gateway).items()
    ]
    for job in jobs:
        job.add_done_callback(_ended)
    try:
        yield
    finally:
        await app.state.ingestor.close()
        for job in jobs:
            job.cancel()
        # A job cancelled on a frozen link can be stuck in its rollback: closing the gateway
        # cuts its connection, and the job ends.
        if jobs:
            await asyncio.wait(jobs, timeout=1.0)
        await gateway.close()
        await asyncio.gather(*jobs, return_exceptions=True)
        app_metrics.forget_this_worker()


def create_app(settings: Settings | None = None) -> Litestar:
    """Builds the app from the environment, so every uvicorn worker gets the same settings."""
    settings = settings or Settings()
    parent = multiprocessing.parent_process()
    if parent is not None and parent.pid is not None:
        # A uvicorn worker: it must not outlive the uvicorn process that supervises it.
        lifetime.die_with_parent(parent.pid)
    keys = auth.ApiKeys.from_settings(settings)
    operator_handlers: list[Any] = [
        *status_routes.handlers,
        *assignment_routes.handlers,
        *analytics_routes.handlers,
    ]
    handlers: list[Any] = [
        health.healthz,
        health.readyz,
        metrics.scrape,  # always open
        *_guarded(keys, "device", [ingest_routes.ingest]),
        *_guarded(keys, "operator", operator_handlers),
        *dashboard_routes.routers(keys),  # its own sign-in: operator key, then a cookie
        dashboard_assets.static_files(),
    ]
    app_metrics = metrics.Metrics()
    return Litestar(
        route_handlers=handlers,
        state=State({"settings": settings, "metrics": app_metrics}),
        lifespan=[lifespan],
        dependencies={
            "gateway": Provide(_gateway, sync_to_thread=False),
            "settings": Provide(_settings, sync_to_thread=False),
            "ingestor": Provide(_ingestor, sync_to_thread=False),
            "metrics": Provide(_metrics, sync_to_thread=False),
        },
        before_send=[app_metrics.count_response],
        middleware=[logs.request_ids],
        logging_config=logs.litestar_config(),
        exception_handlers=errors.exception_handlers,  # type: ignore[arg-type]
        request_max_body_size=settings.max_body_bytes,
        template_config=dashboard_assets.template_config(),
        openapi_config=OpenAPIConfig(
            title="Kilowatch",
            version="0.1.0",
            description=openapi.DESCRIPTION,
            tags=openapi.TAGS,
            path="/docs",
            render_plugins=[dashboard_assets.swagger_plugin()],  # served from the package
            components=auth.openapi_components() if keys.enabled else Components(),
        ),
    )
