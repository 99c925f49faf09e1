"""Test and bench servers never outlive what started them: not a killed test run, not uvicorn."""

from __future__ import annotations

import selectors
import subprocess
import sys
import threading

import psutil
import pytest

from kilowatch.bench import server

TIMEOUT_S = 60  # hang guard only


def skip_pg15(request: pytest.FixtureRequest) -> None:
    # Process wiring does not depend on the PostgreSQL version.
    if request.node.callspec.params.get("server_url") == "pg15":
        pytest.skip("process lifetimes are checked on one server version")


def family(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def assert_all_gone(processes: list[psutil.Process]) -> None:
    _, alive = psutil.wait_procs(processes, timeout=TIMEOUT_S)
    assert not alive, [(p.pid, p.cmdline()) for p in alive]


def test_a_killed_test_run_takes_its_server_and_workers_along(
    db_url: str, request: pytest.FixtureRequest
) -> None:
    skip_pg15(request)
    # Stands for pytest (or kilowatch bench) killed with SIGKILL: no clean-up code runs.
    script = (
        "import sys, time\n"
        "from kilowatch.bench import server\n"
        "s = server.Server(sys.argv[1], workers=2)\n"
        "s.wait_ready()\n"
        "print(s.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script, db_url], stdout=subprocess.PIPE)
    try:
        assert parent.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(parent.stdout, selectors.EVENT_READ)
            assert selector.select(TIMEOUT_S), "the server did not start"
        uvicorn = family(int(parent.stdout.readline()))
        workers = [p for p in uvicorn if "multiprocessing" in " ".join(p.cmdline())]
        assert len(workers) >= 2, [p.cmdline() for p in uvicorn]
    finally:
        parent.kill()
        parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()
    assert_all_gone(uvicorn)


def test_uvicorn_killed_takes_its_workers_along(
    db_url: str, request: pytest.FixtureRequest
) -> None:
    skip_pg15(request)
    started = server.Server(db_url, workers=2)
    try:
        started.wait_ready()
        workers = family(started.pid)[1:]
        assert len(workers) >= 2
        started.process.kill()  # no graceful shutdown: the workers are told by the kernel
        assert_all_gone(workers)
    finally:
        started.stop()


def test_servers_start_only_from_the_main_thread(db_url: str) -> None:
    failures: list[BaseException] = []

    def start() -> None:
        try:
            server.Server(db_url, workers=1)
        except RuntimeError as exc:
            failures.append(exc)

    thread = threading.Thread(target=start)
    thread.start()
    thread.join(TIMEOUT_S)
    assert failures and "main thread" in str(failures[0])
