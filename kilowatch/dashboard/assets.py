"""Templates and static files shipped in the package: nothing is fetched from outside at run time.

Vendored files, each taken once with `npm pack <name>@<version>` and kept beside its LICENSE
(static/vendor/<name>/); no node_modules, no Node build. tests/unit/test_dashboard_assets.py
checks each file against the digest pinned here:

- htmx.org 2.0.11 (0BSD): dist/htmx.min.js
- uplot 1.6.32 (MIT): dist/uPlot.iife.min.js, dist/uPlot.min.css
- swagger-ui-dist 5.35.0 (Apache-2.0): swagger-ui-bundle.js, swagger-ui-standalone-preset.js,
  swagger-ui.css, favicon-32x32.png (for /docs, which Litestar would load from a CDN)
"""

from __future__ import annotations

import hashlib
from functools import cache
from importlib import resources
from pathlib import Path

from jinja2 import Environment, PackageLoader, StrictUndefined
from litestar import Router
from litestar.datastructures import CacheControlHeader
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.template import TemplateConfig

from kilowatch.dashboard import display

STATIC_PATH = "/static"
VENDORED: dict[str, str] = {  # path under static/ -> sha256 of the file as npm packed it
    "vendor/htmx/htmx.min.js": "d6fdc75f204e6bdefa99b69bf1e6d4ac69b8a364f77929f45c13476b4000f717",
    "vendor/uplot/uPlot.iife.min.js": (
        "19c8d4c6ad88929a79f4ae49d6f7161566dfd0ba3d15cc495e974f787eb78f1f"
    ),
    "vendor/uplot/uPlot.min.css": (
        "df630c6a8d6f8eeaff264b50f73ce5b114f646ffd9a0bb74f049b0a00135fa04"
    ),
    "vendor/swagger-ui/swagger-ui-bundle.js": (
        "e6a898692f2d768e807c3ba4626068a69a2c5dd960dd6c76f3e4d3a3de180af2"
    ),
    "vendor/swagger-ui/swagger-ui-standalone-preset.js": (
        "5243d492e14505e0cab87ac8b0195d0e615943e651743b2b698450a46eb470be"
    ),
    "vendor/swagger-ui/swagger-ui.css": (
        "5ed08757e53da3e026d6cbecc61fe5d43585c9560b302d534ad56692519a273d"
    ),
    "vendor/swagger-ui/favicon-32x32.png": (
        "3ed612f41e050ca5e7000cad6f1cbe7e7da39f65fca99c02e99e6591056e5837"
    ),
}


def static_dir() -> Path:
    # The package is installed as files (a wheel or an editable install), never zipped.
    return Path(str(resources.files("kilowatch.dashboard").joinpath("static")))


@cache
def static_url(name: str) -> str:
    """/static/<name>?v=<digest>: a changed file gets a new URL, so it may be cached for good."""
    digest = hashlib.sha256((static_dir() / name).read_bytes()).hexdigest()[:12]
    return f"{STATIC_PATH}/{name}?v={digest}"


def static_files() -> Router:
    return create_static_files_router(
        path=STATIC_PATH,
        directories=[static_dir()],
        cache_control=CacheControlHeader(max_age=365 * 86400, public=True),
        include_in_schema=False,
    )


def template_config() -> TemplateConfig[JinjaTemplateEngine]:
    environment = Environment(
        loader=PackageLoader("kilowatch.dashboard", "templates"),
        autoescape=True,
        undefined=StrictUndefined,  # a misspelt name fails the page (and its test), not blanks
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(display.FILTERS)
    environment.globals["static"] = static_url
    return TemplateConfig(instance=JinjaTemplateEngine.from_environment(environment))


def swagger_plugin() -> SwaggerRenderPlugin:
    """/docs from the vendored swagger-ui-dist: it renders on a closed network."""
    return SwaggerRenderPlugin(
        path="/",
        js_url=static_url("vendor/swagger-ui/swagger-ui-bundle.js"),
        css_url=static_url("vendor/swagger-ui/swagger-ui.css"),
        standalone_preset_js_url=static_url("vendor/swagger-ui/swagger-ui-standalone-preset.js"),
        favicon=(
            f"<link rel='icon' type='image/png' "
            f"href='{static_url('vendor/swagger-ui/favicon-32x32.png')}'>"
        ),
    )
