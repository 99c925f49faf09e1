"""The CLI as a user runs it: `kilowatch serve` on the embedded PostgreSQL, SIGTERM, migrate."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psutil
import pytest

START_TIMEOUT_S = 90  # hang guards only; nothing below asserts a duration
EXIT_TIMEOUT_S = 60


def kilowatch() -> list[str]:
    script = Path(sys.executable).with_name("kilowatch")
    return [str(script)] if script.exists() else [sys.executable, "-m", "kilowatch"]


def embedded_env() -> dict[str, str]:
    """The test's environment without any database URL, so the CLI starts its own server."""
    drop = {"DATABASE_URL", "KILOWATCH_DATABASE_URL"}
    return {k: v for k, v in os.environ.items() if k not in drop}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def postgres_processes(data_dir: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if proc.info["name"] == "postgres" and str(data_dir) in cmdline:
            found.append(proc)
    return found


def wait_for(condition: Callable[[], bool], proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not condition():
        assert proc.poll() is None, f"kilowatch exited ({proc.returncode}) before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def is_ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "kw"
    yield path
    # Never leave a server behind, even when an assertion failed.
    for proc in postgres_processes(path):
        proc.kill()


def launch(data_dir: Path, *args: str) -> tuple[subprocess.Popen[bytes], Path]:
    log = data_dir.parent / "kilowatch.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([*kilowatch(), *args, "--data-dir", str(data_dir)],
                                env=embedded_env(), cwd=data_dir.parent,
                                stdout=out, stderr=subprocess.STDOUT)
    return proc, log


def terminate(proc: subprocess.Popen[bytes], log: Path) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(EXIT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"kilowatch ignored SIGTERM:\n{log.read_text()}")


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_after_ready_leaves_no_postgres(data_dir: Path, workers: int) -> None:
    port = free_port()
    proc, log = launch(data_dir, "serve", "--port", str(port), "--workers", str(workers))
    try:
        wait_for(lambda: is_ready(port), proc, "/readyz 200")
        assert postgres_processes(data_dir), "the embedded server runs under the data dir"
        children = psutil.Process(proc.pid).children(recursive=True)
    finally:
        terminate(proc, log)
    assert postgres_processes(data_dir) == [], log.read_text()
    assert not any(child.is_running() and child.status() != psutil.STATUS_ZOMBIE
                   for child in children), "uvicorn workers survived"
    assert not (data_dir / "pg" / "postmaster.pid").exists()


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("phase", ["initdb", "server_start"])
def test_sigterm_during_startup_leaves_no_postgres(
    data_dir: Path, workers: int, phase: str
) -> None:
    # Signal while the embedded server is being created (initdb) or has just been launched,
    # before the API is ready: the points where a detached postmaster could be orphaned.
    def reached() -> bool:
        if phase == "initdb":
            return (data_dir / "pg").exists()
        # The postmaster pg_ctl launched (initdb's standalone backends have no socket option).
        return any("-k" in (p.info["cmdline"] or []) for p in postgres_processes(data_dir))

    port = free_port()
    proc, log = launch(data_dir, "serve", "--port", str(port), "--workers", str(workers))
    try:
        wait_for(reached, proc, f"the {phase} phase")
        assert not is_ready(port)
    finally:
        terminate(proc, log)
    # pg_ctl detaches the postmaster: give a just-forked one the chance to show up if orphaned.
    time.sleep(0.5)
    assert postgres_processes(data_dir) == [], log.read_text()


def test_serve_reuses_the_data_dir_on_the_next_start(data_dir: Path) -> None:
    for run in range(2):
        port = free_port()
        proc, log = launch(data_dir, "serve", "--port", str(port))
        try:
            wait_for(lambda: is_ready(port), proc, f"/readyz 200 on start {run + 1}")
        finally:
            terminate(proc, log)
    assert "migrations applied now: none" in log.read_text()
    assert postgres_processes(data_dir) == []


def test_migrate_applies_once_and_stops_the_server(data_dir: Path) -> None:
    outputs = []
    for _ in range(2):
        result = subprocess.run([*kilowatch(), "migrate", "--data-dir", str(data_dir)],
                                env=embedded_env(), cwd=data_dir.parent, capture_output=True,
                                text=True, timeout=START_TIMEOUT_S)
        assert result.returncode == 0, result.stdout + result.stderr
        outputs.append(result.stdout + result.stderr)
    assert "applied migrations: [1" in outputs[0]
    assert "none (up to date)" in outputs[1]
    assert (data_dir / "pg" / "PG_VERSION").exists()
    assert postgres_processes(data_dir) == []
