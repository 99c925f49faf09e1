"""Bench results over rounds: samples, medians with min–max, ratios taken per round (pure)."""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Metric = Literal["rate", "p50_ms", "p99_ms"]


@dataclass
class Sample:
    """One figure measured once (one round)."""

    rate: float  # units per second
    p50_ms: float | None
    p99_ms: float | None
    count: int  # requests answered or failed
    errors: int  # non-2xx answers and failed requests
    seconds: float  # measured interval; for a fixed total, the time to absorb it
    client_cpu: float  # the client's CPU time / (elapsed × cores)
    client: str  # what sent the load: "wrk" or "python"
    error_kinds: dict[str, int] = field(default_factory=dict)
    total: int | None = None  # a fixed number of requests, or None for a timed figure
    note: str = ""


@dataclass(frozen=True)
class Spread:
    median: float
    min: float
    max: float


def spread(values: Sequence[float | None]) -> Spread | None:
    """Median and extremes of the values that exist; None when there are none."""
    known = [v for v in values if v is not None]
    if not known:
        return None
    return Spread(statistics.median(known), min(known), max(known))


def percentile_ms(latencies_s: Sequence[float], q: float) -> float | None:
    """The q-quantile (nearest rank, 0 < q < 1) of latencies in seconds, in milliseconds."""
    if not latencies_s:
        return None
    ordered = sorted(latencies_s)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


@dataclass
class Figure:
    """One figure over every round: rate median [min–max], latency medians, errors summed."""

    name: str
    unit: str
    note: str
    client: str
    rate: Spread
    p50_ms: float | None
    p99_ms: float | None
    count: int
    errors: int
    error_kinds: dict[str, int]
    seconds: Spread
    client_cpu: float
    total: int | None
    rounds: list[Sample]


def summarize(name: str, unit: str, rounds: Sequence[Sample]) -> Figure:
    if not rounds:
        raise ValueError(f"{name}: no rounds measured")
    kinds: Counter[str] = Counter()
    for sample in rounds:
        kinds.update(sample.error_kinds)
    clients = sorted({s.client for s in rounds})
    rate, seconds = spread([s.rate for s in rounds]), spread([s.seconds for s in rounds])
    assert rate is not None and seconds is not None
    p50, p99 = spread([s.p50_ms for s in rounds]), spread([s.p99_ms for s in rounds])
    return Figure(
        name=name,
        unit=unit,
        note=rounds[0].note,
        client="+".join(clients),
        rate=rate,
        p50_ms=p50.median if p50 else None,
        p99_ms=p99.median if p99 else None,
        count=sum(s.count for s in rounds),
        errors=sum(s.errors for s in rounds),
        error_kinds=dict(kinds),
        seconds=seconds,
        client_cpu=statistics.median(s.client_cpu for s in rounds),
        total=rounds[0].total,
        rounds=list(rounds),
    )


@dataclass(frozen=True)
class Target:
    """What a ratio should be: at least or at most a bound."""

    op: Literal["≥", "≤"]
    bound: float

    def met(self, value: float) -> bool:
        return value >= self.bound if self.op == "≥" else value <= self.bound

    def __str__(self) -> str:
        return f"{self.op} {self.bound:g}"


def at_least(bound: float) -> Target:
    return Target("≥", bound)


def at_most(bound: float) -> Target:
    return Target("≤", bound)


@dataclass(frozen=True)
class RatioSpec:
    """A ratio of two figures' metric, taken in each round; `target` None: context only."""

    name: str
    numerator: str
    denominator: str
    metric: Metric
    target: Target | None


@dataclass
class Ratio:
    name: str
    numerator: str
    denominator: str
    metric: str
    target: str  # "≥ 3", or "context"
    value: Spread  # over rounds
    ok: bool | None  # the median against the target; None for context
    rounds_met: int | None  # rounds whose own ratio met the target
    rounds: list[float | None]  # per round, in round order


def per_round(a: Sequence[Sample], b: Sequence[Sample], metric: Metric) -> list[float | None]:
    """a / b in each round (rounds paired by position); None where either side is missing or 0.

    A figure measured once (too slow to repeat: the raw references) pairs its one sample with
    every round of the other.
    """
    if len(a) == 1 < len(b):
        a = [a[0]] * len(b)
    elif len(b) == 1 < len(a):
        b = [b[0]] * len(a)
    values: list[float | None] = []
    for sa, sb in zip(a, b, strict=False):
        va, vb = getattr(sa, metric), getattr(sb, metric)
        values.append(va / vb if va is not None and vb else None)
    return values


def ratio(spec: RatioSpec, figures: dict[str, Figure]) -> Ratio | None:
    """The spec's ratio from the figures, per round; None when either figure was not measured."""
    fa, fb = figures.get(spec.numerator), figures.get(spec.denominator)
    if fa is None or fb is None:
        return None
    rounds = per_round(fa.rounds, fb.rounds, spec.metric)
    value = spread(rounds)
    if value is None:
        return None
    target = spec.target
    return Ratio(
        name=spec.name,
        numerator=spec.numerator,
        denominator=spec.denominator,
        metric=spec.metric,
        target=str(target) if target else "context",
        value=value,
        ok=target.met(value.median) if target else None,
        rounds_met=sum(1 for r in rounds if r is not None and target.met(r)) if target else None,
        rounds=rounds,
    )


@dataclass
class Report:
    machine: dict[str, Any]
    options: dict[str, Any]
    clients: dict[str, Any] = field(default_factory=dict)
    figures: list[Figure] = field(default_factory=list)
    ratios: list[Ratio] = field(default_factory=list)
    # The estimate's accuracy on the simulated data sets (not timings): lines by data set.
    accuracy: dict[str, list[str]] = field(default_factory=dict)

    def get(self, name: str) -> Figure | None:
        return next((f for f in self.figures if f.name == name), None)
