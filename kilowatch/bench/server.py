"""The server under test: `kilowatch.app` under uvicorn in its own process group."""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def running(database_url: str, workers: int = 2, **settings: object) -> Iterator[str]:
    """Starts the app on database_url with KILOWATCH_* settings; yields "127.0.0.1:port"."""
    port = free_port()
    env = {**os.environ, "KILOWATCH_DATABASE_URL": database_url}
    env.pop("DATABASE_URL", None)
    env.update({f"KILOWATCH_{key.upper()}": str(value) for key, value in settings.items()})
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "kilowatch.app:create_app", "--factory",
         "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
         "--log-level", "warning", "--no-access-log"],
        env=env, stdout=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_ready(f"http://127.0.0.1:{port}/readyz", process)
        yield f"127.0.0.1:{port}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with status {process.returncode}")
        with contextlib.suppress(OSError, urllib.error.URLError):
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        time.sleep(0.1)
    raise RuntimeError(f"the server was not ready within {timeout:.0f} s")
