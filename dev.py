#!/usr/bin/env python3
"""Bootstrap: `python3 dev.py run|test|<kilowatch args>` makes .venv, installs pinned deps, runs."""
import hashlib
import os
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


def main() -> None:
    args = sys.argv[1:] or ["run"]
    ensure_installed()
    os.chdir(ROOT)
    if args[0] == "run":
        cmd = [str(BIN / "kilowatch"), "serve", *args[1:]]
    elif args[0] == "test":
        cmd = [str(BIN / "python"), "-m", "pytest", *args[1:]]
    else:
        cmd = [str(BIN / "kilowatch"), *args]
    os.execv(cmd[0], cmd)


if __name__ == "__main__":
    main()
