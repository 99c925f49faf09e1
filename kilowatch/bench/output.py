"""The bench report as a Rich table (for people), Markdown (README) or JSON (every round)."""

from __future__ import annotations

import dataclasses
import json

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from kilowatch.bench.results import Figure, Ratio, Report, Spread


def as_json(report: Report) -> str:
    return json.dumps(dataclasses.asdict(report), indent=2, default=str)


def machine_line(report: Report) -> str:
    m = report.machine
    load = ""
    if "load_before" in m:
        after = m.get("load_after", ["–"])[0]
        load = f"; load average {m['load_before'][0]} before, {after} after"
    return (
        f"{m['cpus']} CPUs ({m['cpu_model']}), {m['platform']}, Python {m['python']}, "
        f"PostgreSQL {m['postgres']} (fsync={m['fsync']}, "
        f"synchronous_commit={m['synchronous_commit']}){load}"
    )


def method_line(report: Report) -> str:
    o, c = report.options, report.clients
    if c["single_events"] == c["other"]:
        clients = f"every figure driven by {c['other']}"
    else:
        clients = (
            f"single-event and status figures driven by {c['single_events']}, "
            f"the others by {c['other']}"
        )
    return (
        f"{o['rounds']} rounds of {o['duration_s']:g} s per figure (after {o['warmup_s']:g} s of "
        f"warm-up), figures interleaved in each round; {clients}. Rates: median [min–max] over "
        f"rounds; p50, p99 and client CPU: medians over rounds; requests and errors: summed."
    )


def _num(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.1f}"


def _spread(s: Spread, digits: int | None = None) -> str:
    fmt = _num if digits is None else (lambda v: f"{v:.{digits}f}")
    return f"{fmt(s.median)} [{fmt(s.min)}–{fmt(s.max)}]"


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:,.1f}"


def _setup(f: Figure) -> str:
    if f.total is None:
        return f.note
    return f"{f.note}; absorbed in {_spread(f.seconds, 2)} s"


def _met(r: Ratio) -> str:
    if r.ok is None:
        return ""
    rounds = f" ({r.rounds_met}/{len(r.rounds)} rounds)"
    return (" ✔" if r.ok else " ✘ not met") + rounds


def as_markdown(report: Report) -> str:
    """The tables as Markdown, for the README: numbers exactly as measured."""
    lines = [
        machine_line(report),
        "",
        method_line(report),
        "",
        "| figure | rate | p50 ms | p99 ms | requests | errors | client | client CPU | setup |",
        "|---|--:|--:|--:|--:|--:|---|--:|---|",
    ]
    for f in report.figures:
        lines.append(
            f"| `{f.name}` | {_spread(f.rate)} {f.unit} | {_ms(f.p50_ms)} | {_ms(f.p99_ms)} "
            f"| {f.count:,} | {f.errors:,} | {f.client} | {f.client_cpu:.0%} | {_setup(f)} |"
        )
    lines += ["", "| ratio (per round) | median [min–max] | target |", "|---|--:|---|"]
    for r in report.ratios:
        lines.append(f"| {r.name} | {_spread(r.value, 2)} | {r.target}{_met(r)} |")
    for name, found in report.accuracy.items():
        lines += ["", f"Estimate against the simulator's truth, {name}:", ""]
        lines += [f"- {line}" for line in found]
    return "\n".join(lines)


def print_table(report: Report, console: Console) -> None:
    table = Table(
        title=escape(f"kilowatch bench — {machine_line(report)}"),
        caption=escape(method_line(report)),
    )
    for column, justify in (
        ("figure", "left"),
        ("rate", "right"),
        ("min–max", "right"),
        ("unit", "left"),
        ("p50 ms", "right"),
        ("p99 ms", "right"),
        ("requests", "right"),
        ("errors", "right"),
        ("client", "left"),
        ("client CPU", "right"),
        ("setup", "left"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for f in report.figures:
        errors = f"{f.errors:,}" + (f" {f.error_kinds}" if f.errors else "")
        table.add_row(
            f.name,
            _num(f.rate.median),
            f"{_num(f.rate.min)}–{_num(f.rate.max)}",
            f.unit,
            _ms(f.p50_ms),
            _ms(f.p99_ms),
            f"{f.count:,}",
            escape(errors),
            f.client,
            f"{f.client_cpu:.0%}",
            escape(_setup(f)),
        )
    console.print(table)
    ratios = Table(title="ratios (each round's figures, median [min–max] over rounds)")
    for column in ("ratio", "median", "min–max", "rounds", "target", "met"):
        ratios.add_column(column)
    for r in report.ratios:
        met = "–"
        if r.ok is not None:
            met = ("yes" if r.ok else "[red]no[/]") + f" ({r.rounds_met}/{len(r.rounds)} rounds)"
        ratios.add_row(
            r.name,
            f"{r.value.median:.2f}",
            f"{r.value.min:.2f}–{r.value.max:.2f}",
            ", ".join("–" if v is None else f"{v:.2f}" for v in r.rounds),
            r.target,
            met,
        )
    console.print(ratios)
    for name, found in report.accuracy.items():
        console.print(f"[bold]estimate against the simulator's truth, {name}[/]")
        for line in found:
            console.print(f"  {line}")
