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


def launch(
    data_dir: Path, *args: str, name: str = "kilowatch"
) -> tuple[subprocess.Popen[bytes], Path]:
    log = data_dir.parent / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*kilowatch(), *args, "--data-dir", str(data_dir)],
            env=embedded_env(),
            cwd=data_dir.parent,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return proc, log


CHILD_EXIT_S = 5.0


def terminate(proc: subprocess.Popen[bytes], log: Path) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(EXIT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()  # reaped here, not reported as a warning against a later test
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
    # A worker told of its parent's exit (parent-death signal) may take a moment to finish
    # exiting: survival means still running seconds later (CI once saw one mid-exit).
    _, alive = psutil.wait_procs(children, timeout=CHILD_EXIT_S)
    assert not [c for c in alive if c.status() != psutil.STATUS_ZOMBIE], "uvicorn workers survived"
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
        result = subprocess.run(
            [*kilowatch(), "migrate", "--data-dir", str(data_dir)],
            env=embedded_env(),
            cwd=data_dir.parent,
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT_S,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        outputs.append(result.stdout + result.stderr)
    assert "applied migrations: [1" in outputs[0]
    assert "none (up to date)" in outputs[1]
    assert (data_dir / "pg" / "PG_VERSION").exists()
    assert postgres_processes(data_dir) == []


# One owner of the embedded server: other commands on the same data dir use it, the last stops it.


def run(data_dir: Path, *args: str) -> str:
    result = subprocess.run(
        [*kilowatch(), *args, "--data-dir", str(data_dir)],
        env=embedded_env(),
        cwd=data_dir.parent,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def postmaster(data_dir: Path) -> int:
    """The pid of the server's postmaster (first line of postmaster.pid)."""
    return int((data_dir / "pg" / "postmaster.pid").read_text().split()[0])


def holds(proc: subprocess.Popen[bytes], path: Path) -> bool:
    try:
        return any(f.path == str(path) for f in psutil.Process(proc.pid).open_files())
    except psutil.NoSuchProcess:
        return False


def serving(data_dir: Path, name: str) -> tuple[subprocess.Popen[bytes], Path, int]:
    port = free_port()
    proc, log = launch(data_dir, "serve", "--port", str(port), name=name)
    wait_for(lambda: is_ready(port), proc, f"{name}: /readyz 200")
    return proc, log, port


def test_commands_beside_a_running_serve_use_its_server_and_leave_it_running(
    data_dir: Path, tmp_path: Path
) -> None:
    proc, log, port = serving(data_dir, "serve")
    try:
        server = postmaster(data_dir)
        assert "none (up to date)" in run(data_dir, "migrate")
        truth = tmp_path / "truth.json"
        run(data_dir, "simulate", "--vehicles", "2", "--meters", "2", "--hours", "1",
            "--truth", str(truth), "--backfill")  # fmt: skip
        assert truth.exists()
        assert postmaster(data_dir) == server, "the same server, never restarted"
        assert psutil.pid_exists(server) and is_ready(port)
    finally:
        terminate(proc, log)
    assert postgres_processes(data_dir) == [], log.read_text()


def test_the_last_of_two_serves_stops_the_server_whichever_started_it(data_dir: Path) -> None:
    first, first_log, _ = serving(data_dir, "first")
    try:
        second, second_log, second_port = serving(data_dir, "second")
        try:
            server = postmaster(data_dir)
            assert terminate(first, first_log) is not None
            assert is_ready(second_port), "the second serve lost its database"
            assert postmaster(data_dir) == server
        finally:
            terminate(second, second_log)
    finally:
        terminate(first, first_log)
    assert postgres_processes(data_dir) == [], second_log.read_text()


def test_a_killed_user_does_not_keep_the_server_alive(data_dir: Path) -> None:
    first, _, _ = serving(data_dir, "first")
    second, second_log, second_port = serving(data_dir, "second")
    try:
        first.kill()  # no clean-up runs: its locks go with it
        first.wait(EXIT_TIMEOUT_S)
        assert is_ready(second_port)
    finally:
        terminate(second, second_log)
    assert postgres_processes(data_dir) == [], second_log.read_text()


def test_concurrent_starters_on_a_fresh_data_dir_share_one_server(data_dir: Path) -> None:
    ports = [free_port(), free_port()]
    procs = [
        launch(data_dir, "serve", "--port", str(port), name=f"serve{n}")
        for n, port in enumerate(ports)
    ]
    try:
        for (proc, _), port in zip(procs, ports, strict=True):
            wait_for(lambda port=port: is_ready(port), proc, f"/readyz 200 on {port}")  # type: ignore[misc]
        postmasters = [p for p in postgres_processes(data_dir) if "-k" in p.cmdline()]
        assert len(postmasters) == 1, [p.cmdline() for p in postmasters]
    finally:
        for proc, log in procs:
            terminate(proc, log)
    assert postgres_processes(data_dir) == []


def test_sigterm_of_a_second_user_while_it_starts_leaves_the_server(data_dir: Path) -> None:
    proc, log, port = serving(data_dir, "serve")
    try:
        server = postmaster(data_dir)
        # A second serve, not a migrate: a migrate of a migrated database can finish before
        # it is seen holding the lock. Once it holds the users' lock file it is a user: signal
        # it there (it may be taking the server, migrating or starting uvicorn: the outcome
        # must be the same).
        second, second_log = launch(data_dir, "serve", "--port", str(free_port()), name="second")
        wait_for(lambda: holds(second, data_dir / "embedded.users"), second, "serve as a user")
        terminate(second, second_log)
        assert is_ready(port) and postmaster(data_dir) == server
    finally:
        terminate(proc, log)
    assert postgres_processes(data_dir) == []


# An app module whose import drops whatever interrupts it, as code that catches BaseException
# does: uvicorn imports the app before it handles signals, and a SIGTERM raised as SystemExit
# in there was lost (the server then ran on, SIGTERM ignored).
_DROPPING_APP = """
import time

print("importing", flush=True)
try:
    time.sleep(3)
except BaseException:
    pass


def create():
    async def app(scope, receive, send):
        while scope["type"] == "lifespan":
            message = await receive()
            if message["type"] == "lifespan.startup":
                print("started", flush=True)
                await send({"type": "lifespan.startup.complete"})
            else:
                print("stopped", flush=True)
                await send({"type": "lifespan.shutdown.complete"})
                return

    return app
"""
_RUNNER = """
import signal, sys
import uvicorn
from kilowatch import cli

for sig in (signal.SIGTERM, signal.SIGINT):
    signal.signal(sig, cli._exit_on_signal)  # as `cli.database` does
config = uvicorn.Config("dropping_app:create", factory=True, port=int(sys.argv[1]))
cli._serve_one(config)
"""


def test_sigterm_while_the_app_is_imported_shuts_the_server_down(tmp_path: Path) -> None:
    (tmp_path / "dropping_app.py").write_text(_DROPPING_APP)
    (tmp_path / "runner.py").write_text(_RUNNER)
    proc = subprocess.Popen(
        [sys.executable, str(tmp_path / "runner.py"), str(free_port())],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "importing"
        proc.send_signal(signal.SIGTERM)  # while the import sleeps
        output, _ = proc.communicate(timeout=EXIT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail("the server ignored SIGTERM")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # Held until uvicorn handled it: a graceful start and stop, then the signal's exit status.
    assert output.split() == ["started", "stopped"]
    assert proc.returncode == 128 + signal.SIGTERM
