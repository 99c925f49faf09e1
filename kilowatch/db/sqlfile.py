"""Loads named SQL blocks (`-- name: foo` headers) from a capability's queries.sql."""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

_HEADER = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)


def parse(text: str) -> dict[str, str]:
    parts = _HEADER.split(text)
    blocks: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        sql = "\n".join(
            line for line in body.strip().splitlines() if not line.lstrip().startswith("--")
        )
        if name in blocks:
            raise ValueError(f"duplicate query name {name!r}")
        blocks[name] = sql.strip().rstrip(";")
    return blocks


@cache
def load(package: str, filename: str = "queries.sql") -> dict[str, str]:
    return parse(resources.files(package).joinpath(filename).read_text(encoding="utf-8"))
