"""Bench round maths: medians with min–max, summed errors, ratios taken per round, wrk's done()."""

from __future__ import annotations

import pytest

from kilowatch.bench import figures, runner, wrk
from kilowatch.bench.results import (
    RatioSpec,
    Sample,
    Spread,
    at_least,
    at_most,
    per_round,
    percentile_ms,
    ratio,
    spread,
    summarize,
)


def sample(rate: float, p99: float | None = 10.0, errors: int = 0, **extra: object) -> Sample:
    return Sample(
        rate=rate,
        p50_ms=p99 / 2 if p99 is not None else None,
        p99_ms=p99,
        count=100 + errors,
        errors=errors,
        seconds=1.0,
        client_cpu=0.1,
        client="wrk",
        **extra,  # type: ignore[arg-type]
    )


def test_spread_is_the_median_and_extremes_of_known_values() -> None:
    assert spread([3.0, 1.0, 2.0]) == Spread(2.0, 1.0, 3.0)
    assert spread([4.0, 1.0]) == Spread(2.5, 1.0, 4.0)  # even count: mean of the middle two
    assert spread([None, 5.0, None]) == Spread(5.0, 5.0, 5.0)
    assert spread([]) is None and spread([None]) is None


def test_percentile_is_nearest_rank_in_milliseconds() -> None:
    latencies = [i / 1000 for i in range(1, 101)]  # 1 ms … 100 ms
    assert percentile_ms(latencies, 0.5) == pytest.approx(51.0)
    assert percentile_ms(latencies, 0.99) == pytest.approx(100.0)
    assert percentile_ms([], 0.5) is None


def test_summary_takes_medians_over_rounds_and_sums_errors() -> None:
    rounds = [
        sample(100, p99=30, errors=1, error_kinds={"503": 1}),
        sample(300, p99=10),
        sample(200, p99=20, errors=2, error_kinds={"503": 1, "read": 1}),
    ]
    figure = summarize("ingest.group_commit", "events/s", rounds)
    assert figure.rate == Spread(200, 100, 300)
    assert (figure.p50_ms, figure.p99_ms) == (10.0, 20.0)
    assert figure.errors == 3 and figure.error_kinds == {"503": 2, "read": 1}
    assert figure.count == 303
    assert figure.rounds == rounds and figure.client == "wrk"


def test_summary_of_no_rounds_is_an_error() -> None:
    with pytest.raises(ValueError, match="no rounds"):
        summarize("x", "req/s", [])


def test_ratio_is_taken_in_each_round_not_from_the_medians() -> None:
    # Medians 200 / 100 would say 2.0; per round the ratios are 4, 1 and 0.5.
    a = summarize("a", "req/s", [sample(400), sample(200), sample(100)])
    b = summarize("b", "req/s", [sample(100), sample(200), sample(200)])
    found = ratio(RatioSpec("a / b", "a", "b", "rate", at_least(1)), {"a": a, "b": b})
    assert found is not None
    assert found.rounds == [4.0, 1.0, 0.5]
    assert found.value == Spread(1.0, 0.5, 4.0)
    assert found.ok is True and found.rounds_met == 2
    assert found.target == "≥ 1"


def test_latency_ratio_and_upper_target() -> None:
    a = summarize("a", "req/s", [sample(1, p99=30), sample(1, p99=50)])
    b = summarize("b", "req/s", [sample(1, p99=10), sample(1, p99=10)])
    found = ratio(RatioSpec("p99", "a", "b", "p99_ms", at_most(2)), {"a": a, "b": b})
    assert found is not None and found.rounds == [3.0, 5.0]
    assert found.ok is False and found.rounds_met == 0


def test_context_ratio_has_no_verdict() -> None:
    a = summarize("a", "req/s", [sample(2)])
    found = ratio(RatioSpec("a / a", "a", "a", "rate", None), {"a": a})
    assert found is not None and found.target == "context"
    assert found.ok is None and found.rounds_met is None


def test_ratio_needs_both_figures_and_skips_rounds_without_a_value() -> None:
    a = summarize("a", "req/s", [sample(10, p99=None), sample(10)])
    b = summarize("b", "req/s", [sample(0), sample(5)])
    assert ratio(RatioSpec("a / c", "a", "c", "rate", None), {"a": a}) is None
    assert per_round(a.rounds, b.rounds, "rate") == [None, 2.0]  # a zero denominator
    assert per_round(a.rounds, b.rounds, "p99_ms") == [None, 1.0]  # no latency measured
    found = ratio(RatioSpec("a / b", "a", "b", "rate", at_least(1)), {"a": a, "b": b})
    assert found is not None and found.value == Spread(2.0, 2.0, 2.0)


def test_every_ratio_names_registered_figures() -> None:
    names = {f.name for f in figures.FIGURES}
    assert len(names) == len(figures.FIGURES)
    for spec in figures.RATIOS:
        assert {spec.numerator, spec.denominator} <= names, spec


def test_only_selects_by_name_or_prefix_in_round_order() -> None:
    options = runner.Options(only=frozenset({"ingest.burst_20k", "http.no_db"}))
    assert [f.name for f in runner.selected(options)] == [
        "http.no_db",
        "ingest.burst_20k",
        "ingest.burst_20k.batch100",
    ]
    with pytest.raises(ValueError, match=r"ingest\.burst"):
        runner.selected(runner.Options(only=frozenset({"ingest.burst"})))


DONE = (
    "Running 1s test @ http://127.0.0.1:1/\n  2 threads and 4 connections\n"
    'KWBENCH {"duration_us":2000000,"requests":1000,"statuses":{"201":990,"503":10},'
    '"connect":0,"read":2,"write":0,"timeout":1,"p50_us":4500,"p99_us":21000,"max_us":90000}\n'
)


def test_wrk_done_line_counts_non_2xx_and_socket_errors() -> None:
    found = wrk.to_sample(wrk.parse(DONE), cpu_s=0.5, wall_s=2.5)
    assert found.rate == pytest.approx(990 / 2)
    assert (found.p50_ms, found.p99_ms) == (4.5, 21.0)
    assert found.error_kinds == {"503": 10, "read": 2, "timeout": 1}
    assert found.errors == 13
    assert found.count == 1002  # answers plus requests lost on the socket
    assert found.client == "wrk" and found.seconds == 2.0


def test_wrk_output_without_done_line_is_refused() -> None:
    with pytest.raises(ValueError, match="KWBENCH"):
        wrk.parse("Running 1s test\n")


def test_wrk_durations_are_whole_seconds_of_at_least_one() -> None:
    assert [wrk.whole_seconds(s) for s in (0.3, 1.0, 4.6, 10.0)] == [1, 1, 5, 10]
