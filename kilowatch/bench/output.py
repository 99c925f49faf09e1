"""The bench report as a Rich table (for people) or JSON (for machines and the README)."""
from __future__ import annotations

import dataclasses
import json

from rich.console import Console
from rich.table import Table

from kilowatch.bench.runner import Report


def as_json(report: Report) -> str:
    return json.dumps(dataclasses.asdict(report), indent=2, default=str)


def as_markdown(report: Report) -> str:
    """The tables as Markdown, for the README: numbers exactly as measured."""
    m = report.machine
    lines = [f"{m['cpus']} CPUs, {m['platform']}, Python {m['python']}, PostgreSQL "
             f"{m['postgres']} (fsync={m['fsync']}, synchronous_commit={m['synchronous_commit']})",
             "", "| figure | rate | p50 ms | p99 ms | requests | errors | client CPU | setup |",
             "|---|--:|--:|--:|--:|--:|--:|---|"]
    for f in report.figures:
        setup = f.note + (f"; absorbed in {f.seconds:.2f} s" if f.name.startswith("ingest.burst")
                          else "")
        lines.append(f"| `{f.name}` | {f.rate:,.0f} {f.unit} | {_ms(f.p50_ms)} | {_ms(f.p99_ms)} "
                     f"| {f.count:,} | {f.errors:,} | {f.client_cpu:.0%} | {setup} |")
    lines += ["", "| ratio (same run) | value | target |", "|---|--:|---|"]
    for r in report.ratios:
        met = "" if r.target == "context" else (" ✔" if r.ok else " ✘ not met")
        lines.append(f"| {r.name} | {r.value:.2f} | {r.target}{met} |")
    return "\n".join(lines)


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:,.1f}"


def print_table(report: Report, console: Console) -> None:
    machine = report.machine
    table = Table(title=f"kilowatch bench — {machine['cpus']} CPUs, PostgreSQL "
                        f"{machine['postgres']} (fsync={machine['fsync']}, synchronous_commit="
                        f"{machine['synchronous_commit']}), Python {machine['python']}")
    for column, justify in (("figure", "left"), ("rate", "right"), ("unit", "left"),
                            ("p50 ms", "right"), ("p99 ms", "right"), ("requests", "right"),
                            ("errors", "right"), ("client CPU", "right"), ("setup", "left")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for f in report.figures:
        errors = f"{f.errors:,}" + (f" {f.error_kinds}" if f.errors else "")
        setup = f.note + (f"; {f.seconds:.2f} s" if f.name.startswith("ingest.burst") else "")
        table.add_row(f.name, f"{f.rate:,.0f}", f.unit, _ms(f.p50_ms), _ms(f.p99_ms),
                      f"{f.count:,}", errors, f"{f.client_cpu:.0%}", setup)
    console.print(table)
    ratios = Table(title="ratios (same run)")
    for column in ("ratio", "value", "target", "met"):
        ratios.add_column(column)
    for r in report.ratios:
        met = "–" if r.target == "context" else ("yes" if r.ok else "[red]no[/]")
        ratios.add_row(r.name, f"{r.value:.2f}" if r.value is not None else "–", r.target, met)
    console.print(ratios)
