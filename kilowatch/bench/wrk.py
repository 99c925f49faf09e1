"""HTTP figures driven by `wrk` with the package's Lua scripts (lua/*.lua): far less client CPU.

Each script's `done()` prints one line, `KWBENCH {json}`: duration, responses by status, socket
errors and latency percentiles in microseconds, parsed here rather than wrk's own table. wrk's
durations are whole seconds (at least 1). Its CPU time is read from the kernel when it is reaped
(`os.wait4`), so it is exact and counts nothing else.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from kilowatch.bench.results import Sample

MARKER = "KWBENCH "
SOCKET_ERRORS = ("connect", "read", "write", "timeout")


def find() -> str | None:
    return shutil.which("wrk")


def version(binary: str) -> str:
    """`wrk debian/4.1.0-3+b2 [epoll]`: the first line of `wrk --version`, copyright cut."""
    done = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
    first = (done.stdout or done.stderr).strip().splitlines()[:1]
    return first[0].split(" Copyright")[0].strip() if first else "wrk"


@contextlib.contextmanager
def script(name: str) -> Iterator[Path]:
    """A Lua script shipped in kilowatch/bench/lua, as a file path wrk can open."""
    with resources.as_file(resources.files("kilowatch.bench").joinpath("lua", name)) as path:
        yield path


def whole_seconds(seconds: float) -> int:
    return max(1, round(seconds))


def parse(output: str) -> dict[str, Any]:
    """The `KWBENCH` line of a script's done(); ValueError when there is none."""
    for line in output.splitlines():
        if line.startswith(MARKER):
            parsed: dict[str, Any] = json.loads(line[len(MARKER) :])
            return parsed
    raise ValueError("wrk printed no KWBENCH line (did the script's done() run?)")


def to_sample(done: dict[str, Any], cpu_s: float, wall_s: float, note: str = "") -> Sample:
    """A Sample from a parsed done() line: non-2xx answers and socket errors count as errors."""
    statuses = {int(code): int(n) for code, n in done["statuses"].items()}
    ok = sum(n for code, n in statuses.items() if 200 <= code < 300)
    kinds = {str(code): n for code, n in sorted(statuses.items()) if not 200 <= code < 300}
    kinds |= {kind: int(done[kind]) for kind in SOCKET_ERRORS if done[kind]}
    seconds = done["duration_us"] / 1e6
    answered = int(done["requests"])
    return Sample(
        rate=ok / seconds if seconds > 0 else 0.0,
        p50_ms=done["p50_us"] / 1000 if answered else None,
        p99_ms=done["p99_us"] / 1000 if answered else None,
        # Timeouts are requests still counted when they are answered: not added again.
        count=answered + sum(int(done[k]) for k in ("connect", "read", "write")),
        errors=sum(kinds.values()),
        error_kinds=kinds,
        seconds=seconds,
        client_cpu=cpu_s / (wall_s * (os.cpu_count() or 1)) if wall_s > 0 else 0.0,
        client="wrk",
        note=note,
    )


def run(
    binary: str,
    url: str,
    script_name: str,
    *,
    threads: int,
    connections: int,
    seconds: float,
    args: Sequence[str] = (),
    note: str = "",
) -> Sample:
    """One wrk run of `seconds` (whole, at least 1) against url, with the script and its args."""
    duration = whole_seconds(seconds)
    threads = max(1, min(threads, connections))
    with script(script_name) as path:
        command = [
            binary,
            f"--threads={threads}",
            f"--connections={connections}",
            f"--duration={duration}s",
            "--timeout=10s",
            f"--script={path}",
            url,
            "--",
            *args,
        ]
        started = time.monotonic()
        with subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        ) as process:
            # A guard against a hang, not a measurement: wrk stops by itself after `duration`.
            watchdog = threading.Timer(duration + 60, process.kill)
            watchdog.start()
            try:
                assert process.stdout is not None
                output = process.stdout.read()
                _, status, usage = os.wait4(process.pid, 0)
            finally:
                watchdog.cancel()
            wall = time.monotonic() - started
            process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"wrk exited with status {process.returncode}: {output[-2000:]}")
    try:
        done = parse(output)
    except ValueError as exc:
        raise RuntimeError(f"{exc}: {output[-2000:]}") from exc
    return to_sample(done, usage.ru_utime + usage.ru_stime, wall, note)
