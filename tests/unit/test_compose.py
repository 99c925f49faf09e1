"""docker-compose.yml and the Dockerfile stay wired together (no Docker engine runs here)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(document, dict)
    return document


@pytest.fixture(scope="module")
def dockerfile() -> list[str]:
    # Joins continuation lines, drops comments: one instruction per item.
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    return [
        line.strip()
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def instruction(lines: list[str], name: str) -> list[str]:
    return [line[len(name) :].strip() for line in lines if line.upper().startswith(name + " ")]


def env(service: dict[str, Any]) -> dict[str, str]:
    environment = service.get("environment", {})
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    return {str(k): str(v) for k, v in environment.items()}


def test_database_url_points_at_the_postgres_service(compose: dict[str, Any]) -> None:
    services = compose["services"]
    url = urlsplit(env(services["kilowatch"])["DATABASE_URL"])
    pg = env(services["postgres"])
    assert url.scheme in ("postgresql", "postgres")
    assert url.hostname == "postgres" and "postgres" in services
    assert (url.port or 5432) == 5432
    assert url.username == pg["POSTGRES_USER"]
    assert url.password == pg["POSTGRES_PASSWORD"]
    assert url.path.lstrip("/") == pg["POSTGRES_DB"]
    assert services["postgres"]["image"] == "postgres:18"


def test_kilowatch_waits_for_a_healthy_postgres(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["kilowatch"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "pg_isready" in json.dumps(services["postgres"]["healthcheck"]["test"])


def test_kilowatch_healthcheck_probes_readyz(compose: dict[str, Any]) -> None:
    probe = json.dumps(compose["services"]["kilowatch"]["healthcheck"]["test"])
    assert "/readyz" in probe and ":8000/" in probe


def test_published_port_matches_the_dockerfile(
    compose: dict[str, Any], dockerfile: list[str]
) -> None:
    assert instruction(dockerfile, "EXPOSE") == ["8000"]
    assert compose["services"]["kilowatch"]["ports"] == ["8000:8000"]
    assert "build" in compose["services"]["kilowatch"]


def test_dockerfile_serves_on_all_interfaces_as_non_root(dockerfile: list[str]) -> None:
    assert instruction(dockerfile, "FROM") == ["python:3.12-slim"]
    (cmd,) = instruction(dockerfile, "CMD")
    args = json.loads(cmd)  # exec form, so SIGTERM reaches kilowatch itself
    assert args[:2] == ["kilowatch", "serve"]
    assert args[args.index("--host") + 1] == "0.0.0.0"
    assert args[args.index("--port") + 1] == instruction(dockerfile, "EXPOSE")[0]
    users = instruction(dockerfile, "USER")
    assert users and users[-1] not in ("root", "0")


def test_dockerfile_installs_with_constraints_and_checks_readyz(dockerfile: list[str]) -> None:
    assert any("-c constraints.txt" in run for run in instruction(dockerfile, "RUN"))
    copied = " ".join(instruction(dockerfile, "COPY"))
    for needed in ("pyproject.toml", "constraints.txt", "README.md", "kilowatch"):
        assert needed in copied
    (check,) = instruction(dockerfile, "HEALTHCHECK")
    assert "/readyz" in check and ":8000/" in check
