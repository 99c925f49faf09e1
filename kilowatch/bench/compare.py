"""Do a bench's ratios hold from one run to the next? Runs' `--json` reports side by side (pure).

A ratio holds when its spreads (min–max over a run's rounds) overlap in every pair of runs: a
spread that misses another run's is a drift between runs, or rounds too few to show the ratio's
range (two runs of 3 rounds each from one distribution miss each other 1 time in 10, of 5
rounds 1 in 126: `miss_chance`).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from math import comb
from pathlib import Path
from typing import Any

from kilowatch.bench.results import Spread


@dataclass(frozen=True)
class Row:
    """One ratio over the runs: its target and each run's spread (None: not in that run)."""

    name: str
    target: str
    runs: list[Spread | None]

    def misses(self) -> list[tuple[int, int]]:
        """The pairs of runs (0-based) whose spreads do not overlap."""
        return [
            (i, j)
            for (i, a), (j, b) in itertools.combinations(enumerate(self.runs), 2)
            if a is not None and b is not None and (a.max < b.min or b.max < a.min)
        ]

    def holds(self) -> bool | None:
        """Every pair of runs overlaps; None when fewer than two runs have the ratio."""
        if sum(1 for s in self.runs if s is not None) < 2:
            return None
        return not self.misses()


def miss_chance(rounds: int) -> float:
    """The chance that two runs of `rounds` rounds each, drawn from one continuous distribution,
    have disjoint min–max spreads: all of one run's values below all of the other's, either
    way round, is 2 of the C(2n, n) equally likely orders."""
    return 2 / comb(2 * rounds, rounds)


def load(path: Path) -> dict[str, Any]:
    """A `kilowatch bench --json` report; ValueError naming the file when it is not one."""
    try:
        report = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a `kilowatch bench --json` report ({exc})") from exc
    if not (
        isinstance(report, dict)
        and isinstance(report.get("ratios"), list)
        and isinstance(report.get("options"), dict)
        and "rounds" in report["options"]
    ):
        raise ValueError(f"{path}: not a `kilowatch bench --json` report (no ratios, rounds)")
    return report


def rows(reports: Sequence[dict[str, Any]]) -> list[Row]:
    """Every ratio of any report, in the order they first appear."""
    found: dict[str, Row] = {}
    for k, report in enumerate(reports):
        for r in report["ratios"]:
            row = found.setdefault(r["name"], Row(r["name"], r["target"], [None] * len(reports)))
            v = r["value"]
            row.runs[k] = Spread(v["median"], v["min"], v["max"])
    return list(found.values())


def as_markdown(reports: Sequence[dict[str, Any]]) -> str:
    """The runs' ratios as a Markdown table, with the verdict and a summary line."""
    table = rows(reports)
    heads = " | ".join(f"run {k + 1}" for k in range(len(reports)))
    lines = [
        f"| ratio | target | {heads} | spreads overlap |",
        "|---|---|" + "--:|" * len(reports) + "---|",
    ]
    for row in table:
        runs = " | ".join(
            "–" if s is None else f"{s.median:.2f} [{s.min:.2f}–{s.max:.2f}]" for s in row.runs
        )
        verdict = {None: "–", True: "✔"}.get(row.holds())
        if verdict is None:
            verdict = "✘ " + ", ".join(f"run {i + 1} vs {j + 1}" for i, j in row.misses())
        lines.append(f"| {row.name} | {row.target} | {runs} | {verdict} |")
    judged = [row for row in table if row.holds() is not None]
    rounds = sorted({int(r["options"]["rounds"]) for r in reports})
    chance = ", ".join(f"{miss_chance(n):.1%} at {n} rounds" for n in rounds)
    held = sum(1 for row in judged if row.holds())
    lines.append("")
    lines.append(
        f"{held} of {len(judged)} ratios overlap in every pair of runs (two runs from one "
        f"distribution miss each other by chance: {chance})."
    )
    return "\n".join(lines)
