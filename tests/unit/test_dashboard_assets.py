"""The dashboard's files ship in the package, vendored files are the ones pinned, none is remote."""

from __future__ import annotations

import fnmatch
import hashlib
import re
import tomllib
from pathlib import Path

from kilowatch.dashboard import assets

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "kilowatch" / "dashboard"


def test_vendored_files_are_the_pinned_ones_with_their_licenses() -> None:
    static = assets.static_dir()
    for name, digest in assets.VENDORED.items():
        path = static / name
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, name
        assert (path.parent / "LICENSE").is_file(), f"{name}: LICENSE missing beside it"
    vendored = {p.relative_to(static).as_posix() for p in (static / "vendor").rglob("*.*")}
    code = {name for name in vendored if name.endswith((".js", ".css", ".png"))}
    assert code == set(assets.VENDORED)  # nothing unpinned slipped in


def test_package_data_covers_every_template_and_static_file() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["kilowatch.dashboard"]
    for path in [*(PACKAGE / "templates").rglob("*"), *(PACKAGE / "static").rglob("*")]:
        if path.is_file():
            name = path.relative_to(PACKAGE).as_posix()
            assert any(
                fnmatch.fnmatch(name, p) and name.count("/") == p.count("/") for p in patterns
            ), f"{name} would not be installed"


def test_pages_load_nothing_from_another_origin() -> None:
    remote = re.compile(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", re.IGNORECASE)
    for path in [*(PACKAGE / "templates").rglob("*.html"), *(PACKAGE / "static").glob("*.*")]:
        assert not remote.search(path.read_text()), path
    plugin = assets.swagger_plugin()
    urls = [plugin.js_url, plugin.css_url, plugin.standalone_preset_js_url, plugin.favicon]
    assert all("//" not in url for url in urls), urls


def test_static_urls_change_with_the_content() -> None:
    url = assets.static_url("dashboard.css")
    digest = hashlib.sha256((assets.static_dir() / "dashboard.css").read_bytes()).hexdigest()
    assert url == f"/static/dashboard.css?v={digest[:12]}"
