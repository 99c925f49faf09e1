"""The Litestar application factory and its lifespan (pool, background tasks)."""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
from litestar import Litestar, Router
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import Components

from kilowatch import auth, errors, health, metrics
from kilowatch.analytics import routes as analytics_routes
from kilowatch.assignments import routes as assignment_routes
from kilowatch.db import partitions, pool
from kilowatch.ingest import routes as ingest_routes
from kilowatch.ingest.service import Ingestor
from kilowatch.status import routes as status_routes
from kilowatch.settings import Settings


def _pool(state: State, settings: NamedDependency[Settings]) -> asyncpg.Pool:
    # `settings` is unused: depending on it puts `pool` in a later dependency batch than
    # `settings`, so a route taking both resolves them one after the other. Litestar resolves
    # the dependencies of one batch in an anyio task group, a task each: more CPU than a
    # status lookup's own work.
    return state.pool  # type: ignore[no-any-return]


def _settings(state: State) -> Settings:
    return state.settings  # type: ignore[no-any-return]


def _ingestor(state: State) -> Ingestor:
    return state.ingestor  # type: ignore[no-any-return]


def _metrics(state: State) -> metrics.Metrics:
    return state.metrics  # type: ignore[no-any-return]


def _guarded(keys: auth.ApiKeys, role: auth.Role, handlers: list[Any]) -> list[Any]:
    if not keys.enabled:
        return handlers  # an open API runs no check at all
    return [Router("/", route_handlers=handlers, middleware=[auth.middleware(keys, role)],
                   security=auth.security())]


@contextlib.asynccontextmanager
async def lifespan(app: Litestar) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    app.state.pool = await pool.create(settings)
    app.state.ingestor = Ingestor(app.state.pool, settings, observer=app.state.metrics)
    app.state.ingestor.start()
    maintenance = asyncio.create_task(partitions.run_forever(app.state.pool, settings))
    try:
        yield
    finally:
        await app.state.ingestor.close()
        maintenance.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await maintenance
        await app.state.pool.close()


def create_app(settings: Settings | None = None) -> Litestar:
    """Builds the app from the environment, so every uvicorn worker gets the same settings."""
    settings = settings or Settings()
    logging.basicConfig(level=logging.INFO, format='{"ts":"%(asctime)s","level":"%(levelname)s",'
                        '"logger":"%(name)s","msg":"%(message)s"}')
    keys = auth.ApiKeys.from_settings(settings)
    operator_handlers: list[Any] = [*status_routes.handlers,
                                    assignment_routes.create_assignment,
                                    assignment_routes.list_assignments,
                                    assignment_routes.delete_assignment,
                                    analytics_routes.vehicle_performance]
    handlers: list[Any] = [health.healthz, health.readyz, metrics.scrape,  # always open
                           *_guarded(keys, "device", [ingest_routes.ingest]),
                           *_guarded(keys, "operator", operator_handlers)]
    app_metrics = metrics.Metrics()
    return Litestar(
        route_handlers=handlers,
        state=State({"settings": settings, "metrics": app_metrics}),
        lifespan=[lifespan],
        dependencies={"pool": Provide(_pool, sync_to_thread=False),
                      "settings": Provide(_settings, sync_to_thread=False),
                      "ingestor": Provide(_ingestor, sync_to_thread=False),
                      "metrics": Provide(_metrics, sync_to_thread=False)},
        before_send=[app_metrics.count_response],
        exception_handlers=errors.exception_handlers,  # type: ignore[arg-type]
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="Kilowatch", version="0.1.0", path="/docs",
            render_plugins=[SwaggerRenderPlugin(path="/")],
            components=auth.openapi_components() if keys.enabled else Components(),
        ),
    )
