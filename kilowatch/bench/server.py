"""The server under test: `kilowatch.app` under uvicorn in a child process that dies with us.

The child asks the kernel for SIGTERM when its parent goes (PR_SET_PDEATHSIG), and its uvicorn
workers do the same towards it (kilowatch.app), so a test run or a bench that is killed leaves
no server behind. That signal fires when the *thread* that started the child ends: start
servers from the main thread (a server started from a worker thread would die with it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import IO

READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """A started server process; `wait_ready()` (or `await ready()`), then `stop()`."""

    def __init__(
        self,
        database_url: str,
        workers: int = 2,
        *,
        log: Path | None = None,
        **settings: object,
    ) -> None:
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError(
                "start servers from the main thread: the child's parent-death signal fires "
                "when the thread that started it ends"
            )
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        env = {**os.environ, "KILOWATCH_DATABASE_URL": database_url}
        env.pop("DATABASE_URL", None)
        env.update({f"KILOWATCH_{key.upper()}": str(value) for key, value in settings.items()})
        stderr: IO[bytes] | None = log.open("ab") if log is not None else None
        try:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "kilowatch.bench.server",
                    "--port",
                    str(self.port),
                    "--workers",
                    str(workers),
                    "--parent",
                    str(os.getpid()),
                ],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        finally:
            if stderr is not None:
                stderr.close()

    @property
    def pid(self) -> int:
        return self.process.pid

    def _check_alive(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"the server exited with status {self.process.returncode}")

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        url = f"http://{self.address}/readyz"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            with (
                contextlib.suppress(OSError, urllib.error.URLError),
                urllib.request.urlopen(url, timeout=1) as response,
            ):
                if response.status == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"the server was not ready within {timeout:.0f} s")

    async def ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        """wait_ready() without blocking the event loop (which may run what the server needs,
        such as a test's database proxy)."""
        request = f"GET /readyz HTTP/1.1\r\nHost: {self.address}\r\nConnection: close\r\n\r\n"
        async with asyncio.timeout(timeout):
            while True:
                self._check_alive()
                with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                    reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                    try:
                        writer.write(request.encode())
                        status = await asyncio.wait_for(reader.readline(), 1)
                    finally:
                        writer.close()
                    if status.split()[1:2] == [b"200"]:
                        return
                await asyncio.sleep(0.1)

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM (uvicorn shuts down gracefully, its workers too); SIGKILL after `timeout`.
        Returns the exit status."""
        if self.process.poll() is None:
            self.process.terminate()
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()  # its workers get SIGTERM from the kernel (parent-death signal)
            return self.process.wait()


@contextlib.contextmanager
def running(
    database_url: str, workers: int = 2, *, log: Path | None = None, **settings: object
) -> Iterator[str]:
    """Starts the app on database_url with KILOWATCH_* settings; yields "127.0.0.1:port"."""
    server = Server(database_url, workers, log=log, **settings)
    try:
        server.wait_ready()
        yield server.address
    finally:
        server.stop()


def _serve() -> None:
    """The child: die with the parent, then uvicorn with Kilowatch's JSON logs."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, required=True)
    parser.add_argument("--parent", type=int, required=True)
    args = parser.parse_args()

    from kilowatch import lifetime

    lifetime.die_with_parent(args.parent)

    import uvicorn

    from kilowatch import logs
    from kilowatch.cli import HTTP_PROTOCOL

    uvicorn.run(
        "kilowatch.app:create_app",
        factory=True,
        host="127.0.0.1",
        port=args.port,
        workers=args.workers,
        log_config=logs.config(),
        log_level="warning",
        access_log=False,
        http=HTTP_PROTOCOL,  # as `kilowatch serve`: header/body timeouts, the request cap
    )


if __name__ == "__main__":
    _serve()
