"""Runs compared: which ratios' spreads overlap in every pair of runs, and the chance of a miss."""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from kilowatch.bench import compare
from kilowatch.cli import app


def report(rounds: int, **ratios: tuple[float, float, float]) -> dict[str, Any]:
    """A report's JSON shape with the ratios given as (median, min, max)."""
    return {
        "options": {"rounds": rounds},
        "ratios": [
            {
                "name": name.replace("_", " "),
                "target": "≥ 1",
                "value": {"median": v[0], "min": v[1], "max": v[2]},
            }
            for name, v in ratios.items()
        ],
    }


def test_a_ratio_holds_when_every_pair_of_runs_overlaps() -> None:
    runs = [
        report(3, a=(1.0, 0.9, 1.1), b=(0.5, 0.45, 0.55)),
        report(3, a=(1.05, 1.0, 1.2), b=(0.52, 0.50, 0.53)),
        report(3, a=(1.1, 1.08, 1.3), b=(0.70, 0.60, 0.80)),
    ]
    a, b = compare.rows(runs)
    # a: runs 1 and 3 share 1.08–1.1; b: run 3's 0.60–0.80 is above both others.
    assert a.holds() and a.misses() == []
    assert not b.holds() and b.misses() == [(0, 2), (1, 2)]
    table = compare.as_markdown(runs)
    assert "| b | ≥ 1 | 0.50 [0.45–0.55] | 0.52 [0.50–0.53] | 0.70 [0.60–0.80] |" in table
    assert "✘ run 1 vs 3, run 2 vs 3" in table
    assert "1 of 2 ratios overlap" in table


def test_a_ratio_missing_from_a_run_is_judged_on_the_others() -> None:
    runs = [report(3, a=(1.0, 0.9, 1.1)), report(3), report(3, a=(1.0, 1.0, 1.0))]
    (a,) = compare.rows(runs)
    assert a.runs[1] is None and a.holds()
    only_one = compare.rows([report(3, a=(1.0, 0.9, 1.1)), report(3)])
    assert only_one[0].holds() is None


@pytest.mark.parametrize("rounds", [2, 3, 5])
def test_miss_chance_is_what_disjoint_runs_of_one_distribution_give(rounds: int) -> None:
    # Exact: every way of dealing 2n distinct values into two runs of n is equally likely.
    values = range(2 * rounds)
    deals = list(itertools.combinations(values, rounds))
    disjoint = 0
    for d in deals:
        rest = set(values) - set(d)
        disjoint += max(d) < min(rest) or min(d) > max(rest)
    assert compare.miss_chance(rounds) == pytest.approx(disjoint / len(deals))
    # And by sampling, as the bench's rounds would come.
    rng = random.Random(rounds)
    trials, misses = 20_000, 0
    for _ in range(trials):
        x = [rng.gauss(0, 1) for _ in range(rounds)]
        y = [rng.gauss(0, 1) for _ in range(rounds)]
        misses += max(x) < min(y) or max(y) < min(x)
    assert misses / trials == pytest.approx(compare.miss_chance(rounds), abs=0.01)


def test_the_command_prints_the_table_and_names_a_file_that_is_no_report(tmp_path: Path) -> None:
    paths = []
    for k, value in enumerate([(1.0, 0.9, 1.1), (2.0, 1.9, 2.1)]):
        path = tmp_path / f"run{k}.json"
        path.write_text(json.dumps(report(5, ratio=value)))
        paths.append(str(path))
    done = CliRunner().invoke(app, ["bench-compare", *paths])
    assert done.exit_code == 0, done.output
    assert "✘ run 1 vs 2" in done.output and "0.8% at 5 rounds" in done.output
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    failed = CliRunner().invoke(app, ["bench-compare", paths[0], str(bad)])
    assert failed.exit_code == 2 and "bad.json" in failed.output
    alone = CliRunner().invoke(app, ["bench-compare", paths[0]])
    assert alone.exit_code == 2
