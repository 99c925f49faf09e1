#!/usr/bin/env python3
"""Bootstrap: `python3 dev.py run|test|<kilowatch args>` makes .venv, installs pinned deps, runs."""

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".kilowatch-installed"


def ensure_installed() -> None:
    inputs = b"".join((ROOT / name).read_bytes() for name in ("pyproject.toml", "constraints.txt"))
    digest = hashlib.sha256(inputs).hexdigest()
    if STAMP.exists() and STAMP.read_text() == digest:
        return
    if not (BIN / "python").exists():
        venv.EnvBuilder(with_pip=True).create(VENV)
    pip = [str(BIN / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "-c", str(ROOT / "constraints.txt"), "-e", f"{ROOT}[test]"], check=True)
    STAMP.write_text(digest)


def ensure_browser() -> None:
    """Debian's chromium for tests/browser (and wrk for the bench's tests): installed with
    apt-get when missing and we are root.

    Quiet and idempotent: nothing runs when both exist. Where they cannot be installed (not
    root, no apt-get, no package lists), the tests that need them skip and say why.
    """
    if (Path("/usr/bin/chromium").exists() and shutil.which("wrk")) or os.name != "posix":
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return
    log = VENV / "apt-chromium.log"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    # fonts-liberation: the metric-compatible sans the dashboard's font stack falls back on.
    packages = ["chromium", "fonts-liberation", "wrk"]
    steps = (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages],
    )
    print("dev.py: installing Debian's chromium for the browser tests (once)", flush=True)
    with log.open("w") as out:
        for step in steps:
            try:
                done = subprocess.run(
                    step, stdout=out, stderr=out, env=env, timeout=900, check=False
                )
            except subprocess.TimeoutExpired:
                done = None
            if done is None or done.returncode != 0:
                print(f"dev.py: could not install chromium (see {log}); browser tests will skip")
                return


def check() -> None:
    """The static checks, before any test: lint, format and strict types of the package."""
    checks = (
        ["ruff", "check", "--quiet", "kilowatch"],
        ["ruff", "format", "--check", "--quiet", "kilowatch", "tests", "dev.py"],
        ["mypy", "kilowatch"],  # strict: [tool.mypy] in pyproject.toml
    )
    for argv in checks:
        done = subprocess.run([str(BIN / argv[0]), *argv[1:]], cwd=ROOT, check=False)
        if done.returncode != 0:
            sys.exit(f"dev.py: `{' '.join(argv)}` failed")


def main() -> None:
    args = sys.argv[1:] or ["run"]
    ensure_installed()
    os.chdir(ROOT)
    if args[0] == "run":
        cmd = [str(BIN / "kilowatch"), "serve", *args[1:]]
    elif args[0] == "test":
        ensure_browser()
        check()
        cmd = [str(BIN / "python"), "-m", "pytest", *args[1:]]
    else:
        cmd = [str(BIN / "kilowatch"), *args]
    os.execv(cmd[0], cmd)


if __name__ == "__main__":
    main()
