"""Rich progress for a simulation run: simulated minutes, events written, rate."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

Report = Callable[[int, int], None]  # (simulated minutes done, events written so far)


@contextlib.contextmanager
def minute_bar(console: Console, label: str, minutes: int) -> Iterator[Report]:
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("min"),
        TextColumn("{task.fields[events]:,} events"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(label, total=minutes, events=0)

        def report(done: int, events: int) -> None:
            progress.update(task, completed=done, events=events)

        yield report
